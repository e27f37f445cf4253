//! The world's events as the conversation's inputs: SIP events (with the SDP answer checked), the bot's
//! activities (translated into the engine's typed actions and settings), recognition events, an opened bot.

use super::io::{CallIo, Opened};
use outdial_bots::{FromBot, Speech, activity};
use outdial_conversation::{BotActivity, BotInput, Failure, Input, MediaInput, SipInput, SttInput};
use outdial_core::ActivitySettings;
use outdial_media::parse_answer;
use outdial_sip::CallEvent;
use outdial_speech::SttEvent;
use serde_json::json;
use std::sync::Arc;

impl CallIo {
    /// The INVITE just left: without any response from the trunk within 2 s it is a silent INVITE (crate::health),
    /// told at that moment, whatever becomes of the call, so that an outage is known within seconds.
    pub(super) fn watch_invite(&self) {
        let (responded, health, trunk) = (
            self.trunk_responded.clone(),
            self.ctx.health.clone(),
            self.trunk.clone(),
        );
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            if !responded.load(std::sync::atomic::Ordering::Relaxed) {
                health.invite_outcome(&trunk, false);
            }
        });
    }

    /// The trunk answered the INVITE (any response): told to the trunk's health once.
    fn trunk_heard(&self) {
        if !self
            .trunk_responded
            .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            self.ctx.health.invite_outcome(&self.trunk, true);
        }
    }

    pub(super) fn sip_input(&mut self, event: Option<CallEvent>) -> Option<Input> {
        if let Some(
            CallEvent::Trying
            | CallEvent::Ringing { .. }
            | CallEvent::Answered { .. }
            | CallEvent::Failed { status: Some(_), .. },
        ) = &event
        {
            self.trunk_heard();
        }
        let e = match event {
            None => {
                self.sip = None;
                SipInput::Closed
            }
            Some(CallEvent::Trying) => SipInput::Trying,
            Some(CallEvent::Ringing { status, early_media }) => SipInput::Ringing { status, early_media },
            Some(CallEvent::Answered {
                sdp,
                session_id,
                call_id,
                dialog,
            }) => {
                let media = parse_answer(&String::from_utf8_lossy(&sdp))
                    .and_then(|a| match &self.rtp {
                        Some(rtp) => rtp.accepts(&a).map(|()| a),
                        None => Ok(a),
                    })
                    .map(|a| self.answer = Some(a))
                    .map_err(Failure::of);
                SipInput::Answered {
                    sbc_session_id: session_id.unwrap_or(call_id),
                    media,
                    dialog: serde_json::to_value(&*dialog).ok(),
                }
            }
            Some(CallEvent::Failed { status, reason }) => SipInput::Failed { status, reason },
            Some(CallEvent::Ended { by_remote, reason }) => SipInput::Ended { by_remote, reason },
            Some(CallEvent::TransferProgress { status, done }) => SipInput::TransferProgress { status, done },
            // The far end's new offer was answered: the media follows it (docs/trunks.md, "Re-INVITE and hold").
            Some(CallEvent::MediaChanged { sdp }) => {
                let sdp = String::from_utf8_lossy(&sdp);
                let hold = outdial_media::is_hold(&sdp);
                let answer = parse_answer(&sdp).ok();
                if let Some(m) = &self.media {
                    m.update(answer.as_ref(), hold);
                }
                if answer.is_some() {
                    self.answer = answer;
                }
                return Some(Input::Media(MediaInput::Hold(hold)));
            }
        };
        Some(Input::Sip(e))
    }

    pub(super) fn bot_input(&mut self, event: Option<FromBot>) -> Option<Input> {
        let e = match event? {
            FromBot::Activity(a) => {
                let (action, params) = activity::read(&a);
                let settings = ActivitySettings::from_params(&params);
                let record = json!({"type": a["type"], "name": a.get("name"), "text": a.get("text"), "params": params});
                BotInput::Activity(Box::new(BotActivity {
                    action,
                    settings,
                    record,
                }))
            }
            FromBot::Audio(bytes) => BotInput::Audio(self.link.as_ref()?.decode_audio(&bytes)),
            FromBot::AudioEnd => BotInput::AudioEnd,
            FromBot::Speech(Speech::Started) => BotInput::SpeechStarted,
            FromBot::Speech(Speech::Recognition { text, confidence }) => {
                BotInput::Recognition { text, confidence }
            }
            FromBot::Speech(Speech::Hypothesis(_)) => return None,
            FromBot::Failed(e) => BotInput::Failed(e.to_string()),
        };
        Some(Input::Bot(e))
    }

    pub(super) fn opened_input(&mut self, opened: Opened) -> Input {
        match opened {
            Ok((link, events)) => {
                let streams = link.streams();
                let detached = link.detached();
                self.link = Some(Arc::new(link));
                self.bot_events = Some(events);
                Input::Bot(BotInput::Opened {
                    streams,
                    link: detached,
                })
            }
            Err(e) => Input::Bot(BotInput::OpenFailed {
                refused: e.is_refusal(),
                why: e.to_string(),
            }),
        }
    }

    pub(super) fn stt_input(&mut self, event: Option<SttEvent>) -> Option<Input> {
        let e = match event {
            None => {
                self.stt = None;
                self.second_opinion = None;
                SttInput::Closed
            }
            Some(SttEvent::SpeechStarted) => SttInput::SpeechStarted,
            Some(SttEvent::Partial(t)) => SttInput::Partial(t.text),
            Some(SttEvent::Final(t)) => {
                metrics::histogram!("outdial_stt_seconds", "engine" => self.stt_engine)
                    .record(t.took_ms as f64 / 1000.0);
                SttInput::Final {
                    text: t.text,
                    confidence: t.confidence,
                    audio_ms: t.audio_ms,
                    took_ms: t.took_ms,
                }
            }
            Some(SttEvent::Failed(e)) => SttInput::Failed(e),
        };
        Some(Input::Stt(e))
    }
}
