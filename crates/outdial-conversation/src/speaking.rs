//! The bot's queue of actions carried out one at a time (docs/bots.md, "Order"): messages are synthesised
//! sentence by sentence and played as each sentence is ready, `playUrl` audio is fetched and played, a transfer
//! waits for its REFER's answer; whatever follows waits until the person has heard what came before.

use crate::machine::{Machine, Phase};
use crate::prompts::sentences;
use crate::{Effect, Failure, MediaEffect, SipEffect, SpeechEffect, TimerId};
use outdial_core::conversation::EventKind;
use outdial_core::{BotAction, HangupBy, ReasonCode};
use serde_json::json;
use std::collections::VecDeque;
use std::time::Duration;

/// What the bot's queue is doing.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Speaking {
    Idle,
    /// A message: its sentences not yet asked for, whether one is being synthesised, whether audio of it is
    /// being sent, and its size for the timeline.
    Say {
        job: u64,
        rest: VecDeque<String>,
        parts: usize,
        chars: usize,
        synthesizing: bool,
        audio_out: bool,
        heard: bool,
    },
    /// `playUrl`: its audio is being fetched.
    Fetch {
        job: u64,
        url: String,
    },
    /// Audio is being sent (a fetched file, a streaming bot's audio, an aborted message's last part).
    Audio,
    /// A REFER waits for its answer.
    Transfer {
        target: String,
    },
}

impl Speaking {
    /// Whether audio of the bot is being sent now.
    pub(crate) fn playing(&self) -> bool {
        match self {
            Speaking::Say { audio_out, .. } => *audio_out,
            Speaking::Audio => true,
            _ => false,
        }
    }

    /// The media loop sent everything it was given. True when what was being said is over (a message whose
    /// later sentences are still being synthesised is not).
    pub(crate) fn on_playout_done(&mut self) -> bool {
        match self {
            Speaking::Say {
                synthesizing: true,
                audio_out,
                ..
            } => {
                *audio_out = false;
                false
            }
            Speaking::Say { .. } | Speaking::Audio => {
                *self = Speaking::Idle;
                true
            }
            _ => false,
        }
    }
}

impl Machine {
    /// Carries out the bot's actions, in order, while nothing is being said.
    pub(crate) fn pump(&mut self) {
        while self.answered() && self.speaking == Speaking::Idle {
            let Some(action) = self.prompts.take_next() else {
                return;
            };
            self.act(action);
        }
    }

    fn act(&mut self, action: BotAction) {
        match action {
            BotAction::Say(text) => self.say(text),
            BotAction::Hangup(reason) => {
                let reason = reason.unwrap_or_else(|| "Bot disconnected".into());
                self.end_with_hangup(ReasonCode::BotDisconnected, reason, HangupBy::Bot);
            }
            BotAction::Transfer { target, headers, .. } => {
                self.speaking = Speaking::Transfer {
                    target: target.clone(),
                };
                self.emit(Effect::Sip(SipEffect::Refer { target, headers }));
            }
            BotAction::SendDtmf(digits) => {
                for c in digits
                    .chars()
                    .filter(|c| "0123456789*#ABCDabcd".contains(*c))
                    .take(20)
                {
                    self.emit(Effect::Media(MediaEffect::SendDtmf(c)));
                }
            }
            BotAction::PlayUrl { url, format } => {
                let job = self.job();
                self.speaking = Speaking::Fetch {
                    job,
                    url: url.clone(),
                };
                self.emit(Effect::Fetch { job, url, format });
            }
            // Immediate actions are handled on arrival; the rest only carry settings.
            BotAction::StartRecognition
            | BotAction::StopRecognition
            | BotAction::AbortPrompts
            | BotAction::Config
            | BotAction::Unknown(_) => {}
        }
    }

    fn say(&mut self, text: String) {
        let mut rest: VecDeque<String> = sentences(&text).into();
        let Some(first) = rest.pop_front() else {
            return;
        };
        let job = self.job();
        self.speaking = Speaking::Say {
            job,
            parts: rest.len() + 1,
            chars: text.chars().count(),
            rest,
            synthesizing: true,
            audio_out: false,
            heard: false,
        };
        let language = self.language.clone();
        self.emit(Effect::Speech(SpeechEffect::Synthesize {
            job,
            text: first,
            language,
            stream: true,
        }));
    }

    /// A piece of a message part's audio from a streaming engine; the part's end still comes as
    /// [`Machine::on_synthesized`].
    pub(crate) fn on_synthesized_part(&mut self, job: u64, pcm: Vec<i16>) {
        if matches!(&self.speaking, Speaking::Say { job: current, .. } if *current == job) && !pcm.is_empty()
        {
            self.play_part(pcm);
        }
    }

    /// Audio of the message being said goes out; the first of it is recorded as the prompt (and opens the
    /// barge-in tap).
    fn play_part(&mut self, pcm: Vec<i16>) {
        let barge_in = self.barge_in;
        let Speaking::Say {
            rest,
            parts,
            chars,
            audio_out,
            heard,
            ..
        } = &mut self.speaking
        else {
            return;
        };
        let first_ms = pcm.len() / 8;
        self.out.push(Effect::Media(MediaEffect::Play(pcm)));
        *audio_out = true;
        if *heard {
            return;
        }
        *heard = true;
        let part = *parts - rest.len() - 1;
        let data = json!({"chars": *chars, "parts": *parts, "firstPart": part, "firstAudioMs": first_ms});
        self.out.push(Effect::Record(crate::Record::Event {
            kind: EventKind::Prompt,
            data,
        }));
        if barge_in {
            // The person may interrupt: listen while the prompt plays.
            self.out.push(Effect::Media(MediaEffect::Tap(true)));
        }
        self.disarm_no_input();
    }

    pub(crate) fn on_synthesized(&mut self, job: u64, result: Result<Vec<i16>, Failure>) {
        if let Phase::Fallback { .. } = self.phase {
            return self.fallback_ready(job, result);
        }
        if !matches!(&self.speaking, Speaking::Say { job: current, .. } if *current == job) {
            return;
        }
        match result {
            Ok(pcm) if !pcm.is_empty() => self.play_part(pcm),
            Ok(_) => {}
            Err(Failure(reason)) => {
                tracing::warn!("cannot speak the bot's message: {reason}");
                self.record(
                    EventKind::SynthesisFailed,
                    json!({"reason": reason, "fallback": null}),
                );
            }
        }
        let language = self.language.clone();
        let Speaking::Say {
            rest,
            synthesizing,
            audio_out,
            ..
        } = &mut self.speaking
        else {
            return;
        };
        let next = rest.pop_front();
        if next.is_none() {
            *synthesizing = false;
        }
        let done = !*synthesizing && !*audio_out;
        if let Some(text) = next {
            self.emit(Effect::Speech(SpeechEffect::Synthesize {
                job,
                text,
                language,
                stream: true,
            }));
        }
        if done {
            // Nothing of it could be said: the next action.
            self.speaking = Speaking::Idle;
            self.pump();
        }
    }

    pub(crate) fn on_fetched(&mut self, job: u64, result: Result<Vec<i16>, Failure>) {
        let Speaking::Fetch { job: current, url } = &self.speaking else {
            return;
        };
        if *current != job {
            return;
        }
        let url = url.clone();
        match result {
            Ok(pcm) => {
                let data = json!({"url": url, "audioMs": pcm.len() / 8});
                self.emit(Effect::Media(MediaEffect::Play(pcm)));
                self.speaking = Speaking::Audio;
                self.disarm_no_input();
                self.record(EventKind::Prompt, data);
            }
            Err(Failure(reason)) => {
                tracing::warn!(conversation = %self.conv.id, "playUrl: {reason}");
                self.record(EventKind::PlayUrlFailed, json!({"url": url, "reason": reason}));
                self.speaking = Speaking::Idle;
                self.pump();
            }
        }
    }

    pub(crate) fn on_refer_answered(&mut self, result: Result<u16, Failure>) {
        let Speaking::Transfer { target } = &self.speaking else {
            return;
        };
        let target = target.clone();
        match result {
            Ok(status) if (200..300).contains(&status) => {
                self.end_with_hangup(ReasonCode::Transferred, target, HangupBy::Bot);
            }
            other => {
                let reason = match other {
                    Ok(s) => format!("REFER answered {s}"),
                    Err(Failure(e)) => e,
                };
                self.tell_bot("transferStatus", json!({"status": "failed", "reason": reason}));
                self.speaking = Speaking::Idle;
                self.pump();
            }
        }
    }

    /// The bot's `abortPrompts`: the messages not yet said are dropped, and the one playing stops.
    pub(crate) fn abort_prompts(&mut self) {
        self.prompts.drop_messages();
        match &self.speaking {
            Speaking::Say { audio_out: true, .. } | Speaking::Audio => {
                self.emit(Effect::Media(MediaEffect::StopPlayout));
                // Its end still comes from the media loop.
                self.speaking = Speaking::Audio;
            }
            Speaking::Say { .. } | Speaking::Fetch { .. } => {
                self.speaking = Speaking::Idle;
                self.pump();
            }
            Speaking::Idle | Speaking::Transfer { .. } => {}
        }
    }

    /// The bot failed (docs/calls.md, "The bot fails"): its `fallbackPrompt` is played to the end before the call
    /// is hung up — never dead air. Without one (or without audio) the call ends at once.
    pub(crate) fn fail_bot(&mut self, reason: String) {
        self.link = crate::machine::Link::None;
        let text = self.cfg.bot.fallback_prompt.clone();
        match text {
            Some(text) if self.media_on && self.answered() => {
                let skip_playout_done = self.speaking.playing();
                self.phase = Phase::Fallback {
                    reason,
                    skip_playout_done,
                };
                let job = self.job();
                self.speaking = Speaking::Idle;
                let language = self.language.clone();
                // Whole, not streamed: its length sets how long the call stays up for it.
                self.emit(Effect::Speech(SpeechEffect::Synthesize {
                    job,
                    text,
                    language,
                    stream: false,
                }));
                // Synthesis gets as long as a prompt may take; the timer is re-armed once the audio is known.
                self.emit(Effect::SetTimer(TimerId::FallbackEnd, Duration::from_secs(10)));
            }
            _ => self.end_with_hangup(ReasonCode::Error, reason, HangupBy::System),
        }
    }

    fn fallback_ready(&mut self, _job: u64, result: Result<Vec<i16>, Failure>) {
        let Phase::Fallback { reason, .. } = &self.phase else {
            return;
        };
        let reason = reason.clone();
        match result {
            Ok(pcm) if !pcm.is_empty() => {
                let audio = Duration::from_millis(pcm.len() as u64 / 8);
                let text = self.cfg.bot.fallback_prompt.clone().unwrap_or_default();
                self.emit(Effect::Media(MediaEffect::StopPlayout));
                self.emit(Effect::Media(MediaEffect::Play(pcm)));
                self.record(
                    EventKind::FallbackPrompt,
                    json!({"text": text, "audioMs": audio.as_millis() as u64}),
                );
                self.emit(Effect::SetTimer(
                    TimerId::FallbackEnd,
                    audio + Duration::from_secs(2),
                ));
            }
            other => {
                if let Err(e) = other {
                    tracing::warn!(conversation = %self.conv.id, "cannot speak the fallback prompt: {e}");
                }
                self.end_with_hangup(ReasonCode::Error, reason, HangupBy::System);
            }
        }
    }
}
