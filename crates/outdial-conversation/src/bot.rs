//! What the bot sends (docs/bots.md): its settings take effect at once, the commands about listening and prompts
//! too, and every other action waits its turn in the queue.

use crate::machine::{Link, Listening, Machine, Phase, UserStream};
use crate::speaking::Speaking;
use crate::{BotActivity, BotEffect, BotInput, Effect, MediaEffect, SpeechEffect, ToBot};
use outdial_core::conversation::EventKind;
use outdial_core::{ActivitySettings, BotAction, HangupBy, ReasonCode};
use serde_json::json;

impl Machine {
    pub(crate) fn on_bot_input(&mut self, e: BotInput) {
        match e {
            BotInput::Opened { streams, link } => self.on_bot_opened(streams, link),
            BotInput::OpenFailed { why, refused } => self.on_bot_open_failed(why, refused),
            BotInput::Delivered(result) => self.on_delivered(result),
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
        if streams {
            // The person's audio goes to the bot from now on, after the `start` activity.
            self.set_user_stream(UserStream::On);
        } else if self.cfg.bot.dialout_start_recognition_on_connect || self.barge_in {
            self.listen();
        }
    }

    /// Starts or stops the streaming bot's user stream (only when that changes it).
    pub(crate) fn set_user_stream(&mut self, to: UserStream) {
        let was_on = self.user_stream == UserStream::On;
        self.user_stream = to;
        let on = to == UserStream::On;
        if on != was_on {
            self.emit(Effect::Bot(BotEffect::UserStream(on)));
        }
    }

    /// The bot's audio has played to its end: a user stream paused after a recognition starts again.
    pub(crate) fn bot_audio_played(&mut self) {
        if self.user_stream == (UserStream::Paused { ended: true }) {
            self.set_user_stream(UserStream::On);
        }
    }

    pub(crate) fn on_bot_opened(&mut self, streams: bool, link: Option<serde_json::Value>) {
        self.link = Link::Open { streams };
        if link.is_some() {
            // docs/cluster.md: stored now, so that a node taking the call over can close the bot conversation.
            self.conv.bot_link = link;
            self.transition(EventKind::BotConnected, json!({}), None);
        }
        match self.phase {
            Phase::Initiating => {
                let params = self.conv.start_parameters();
                self.record(
                    EventKind::BotEvent,
                    json!({"type": "event", "name": "dialoutInitiated"}),
                );
                self.emit(Effect::Bot(BotEffect::Deliver(ToBot::DialoutInitiated(params))));
            }
            Phase::Answered => {
                self.bot_ready(streams);
                self.send_waiting();
            }
            _ => {}
        }
    }

    pub(crate) fn on_bot_open_failed(&mut self, why: String, refused: bool) {
        self.link = Link::None;
        self.waiting.clear();
        match self.phase {
            // A bot that says no before the call stops it: the phone never rings.
            Phase::Initiating if refused => self.end(ReasonCode::Error, why, HangupBy::System, false),
            // One that cannot be reached does not: the bot is opened again at the answer.
            Phase::Initiating => {
                tracing::warn!(conversation = %self.conv.id, "dialoutInitiated not sent: {why}");
                self.invite();
            }
            Phase::Answered => self.fail_bot(why),
            _ => {}
        }
    }

    /// `dialoutInitiated` was answered: the INVITE goes out, unless the bot refused it (or failed), which stops
    /// the call before the phone rings.
    pub(crate) fn on_delivered(&mut self, result: Result<(), String>) {
        if self.phase != Phase::Initiating {
            return;
        }
        match result {
            Ok(()) => self.invite(),
            Err(why) => self.end(ReasonCode::Error, why, HangupBy::System, false),
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
            BotInput::AudioEnd => {
                if let UserStream::Paused { .. } = self.user_stream {
                    self.user_stream = UserStream::Paused { ended: true };
                    if !self.speaking.playing() {
                        self.bot_audio_played();
                    }
                }
            }
            BotInput::SpeechStarted => {
                if self.barge_in && self.prompt_playing() {
                    self.barge_in_now();
                }
            }
            BotInput::Recognition { text, confidence } => {
                let data = json!({"text": text, "confidence": confidence, "by": "bot"});
                self.record(EventKind::Recognition, data);
                // Without barge-in the person is not heard again until the bot has answered.
                if !self.barge_in && self.user_stream == UserStream::On {
                    self.set_user_stream(UserStream::Paused { ended: false });
                }
            }
            BotInput::Failed(why) => self.fail_bot(why),
            BotInput::Opened { .. } | BotInput::OpenFailed { .. } | BotInput::Delivered(_) => {}
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
