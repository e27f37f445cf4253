//! What the bot sends (docs/bots.md): its settings take effect at once, the commands about listening and prompts
//! too, and every other action waits its turn in the queue.

use crate::machine::{Link, Listening, Machine, Phase};
use crate::speaking::Speaking;
use crate::{BotActivity, BotEffect, BotInput, Effect, MediaEffect, SpeechEffect, ToBot};
use outdial_core::conversation::EventKind;
use outdial_core::{ActivitySettings, BotAction};
use serde_json::json;

impl Machine {
    pub(crate) fn on_bot_input(&mut self, e: BotInput) {
        match e {
            BotInput::Opened { streams } => self.on_bot_opened(streams),
            BotInput::OpenFailed(why) => self.on_bot_open_failed(why),
            BotInput::Delivered => self.on_delivered(),
            other => self.on_bot_answered(other),
        }
    }

    /// The bot is there and the call answered: the `start` event, and listening when asked for at once.
    pub(crate) fn bot_ready(&mut self, streams: bool) {
        let params = self.conv.start_parameters();
        self.record(
            EventKind::BotEvent,
            json!({"type": "event", "name": "start", "value": null}),
        );
        self.emit(Effect::Bot(BotEffect::Send(ToBot::Start(params))));
        if (self.cfg.bot.dialout_start_recognition_on_connect || self.barge_in) && !streams {
            self.listen();
        }
    }

    pub(crate) fn on_bot_opened(&mut self, streams: bool) {
        self.link = Link::Open { streams };
        match self.phase {
            Phase::Initiating => {
                let params = self.conv.start_parameters();
                self.record(
                    EventKind::BotEvent,
                    json!({"type": "event", "name": "dialoutInitiated"}),
                );
                self.emit(Effect::Bot(BotEffect::Deliver(ToBot::DialoutInitiated(params))));
            }
            Phase::Answered => self.bot_ready(streams),
            _ => {}
        }
    }

    pub(crate) fn on_bot_open_failed(&mut self, why: String) {
        self.link = Link::None;
        match self.phase {
            // The call goes on; the bot is opened again at the answer.
            Phase::Initiating => {
                tracing::warn!(conversation = %self.conv.id, "dialoutInitiated not sent: {why}");
                self.invite();
            }
            Phase::Answered => self.fail_bot(why),
            _ => {}
        }
    }

    pub(crate) fn on_delivered(&mut self) {
        if self.phase == Phase::Initiating {
            self.invite();
        }
    }

    /// The bot's activities and audio (after the bot conversation is open).
    pub(crate) fn on_bot_answered(&mut self, e: BotInput) {
        match e {
            BotInput::Activity(activity) => {
                let BotActivity {
                    action,
                    settings,
                    record,
                } = *activity;
                self.record(EventKind::BotActivity, record);
                self.settle(settings);
                match action {
                    BotAction::StartRecognition => self.listen(),
                    BotAction::StopRecognition => {
                        if self.listening == Listening::On {
                            self.emit(Effect::Speech(SpeechEffect::StopRecognition));
                        }
                        self.listening = Listening::StoppedByBot;
                    }
                    BotAction::AbortPrompts => self.abort_prompts(),
                    other => {
                        self.prompts.push(other);
                        self.pump();
                    }
                }
            }
            BotInput::Audio(pcm) => {
                // A streaming bot speaks: its audio is played as it comes.
                if self.media_on && self.answered() {
                    self.emit(Effect::Media(MediaEffect::Play(pcm)));
                    if self.speaking == Speaking::Idle {
                        self.speaking = Speaking::Audio;
                    }
                }
            }
            BotInput::AudioEnd => {}
            BotInput::SpeechStarted => {
                if self.barge_in && self.prompt_playing() {
                    self.barge_in_now();
                }
            }
            BotInput::Recognition { text, confidence } => {
                let data = json!({"text": text, "confidence": confidence, "by": "bot"});
                self.record(EventKind::Recognition, data);
            }
            BotInput::Failed(why) => self.fail_bot(why),
            BotInput::Opened { .. } | BotInput::OpenFailed(_) | BotInput::Delivered => {}
        }
    }

    /// The settings an activity carries.
    fn settle(&mut self, s: ActivitySettings) {
        if let Some(r) = s.bot_operation_result {
            self.conv.bot_operation_result = Some(r);
        }
        if let Some(d) = s.bot_operation_data {
            self.conv.bot_operation_data = Some(d);
        }
        if let Some(b) = s.barge_in {
            self.barge_in = b;
        }
        if let Some(ms) = s.no_input_timeout_ms {
            self.no_input_ms = ms;
        }
        if let Some(l) = s.language {
            self.language = l;
        }
    }
}
