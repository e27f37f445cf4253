//! The SIP side of the lifecycle (docs/calls.md): provisional responses, the answer, final responses, the far
//! end's BYE, and the answer to a REFER.

use crate::detection::Detection;
use crate::machine::{Link, Machine, Phase};
use crate::{BotEffect, Effect, Failure, MediaEffect, SipInput, TimerId};
use outdial_core::conversation::{ConversationState, ConversationStatus, EventKind};
use outdial_core::time::now_ms;
use outdial_core::{HangupBy, ReasonCode};
use serde_json::json;

impl Machine {
    pub(crate) fn on_sip(&mut self, e: SipInput) {
        if let Phase::Fallback { reason, .. } = &self.phase {
            // The bot has failed and its fallback prompt plays: only the far end leaving matters now.
            if matches!(e, SipInput::Ended { .. } | SipInput::Closed) {
                let reason = reason.clone();
                self.end(ReasonCode::Error, reason, HangupBy::System, false);
            }
            return;
        }
        match e {
            SipInput::Trying => {}
            SipInput::Ringing { status, early_media } => {
                let data = json!({"sipStatus": status, "earlyMedia": early_media});
                if self.conv.state == ConversationState::Dialing {
                    let now = now_ms();
                    self.conv.state = ConversationState::Ringing;
                    self.conv.ringing_at = Some(now);
                    self.conv.updated_at = now;
                    let wanted = self.conv.request.notify_events.iter().any(|e| e == "ringing");
                    self.transition(
                        EventKind::Ringing,
                        data,
                        wanted.then_some(ConversationStatus::Ringing),
                    );
                } else {
                    self.record(EventKind::SipProvisional, data);
                }
            }
            SipInput::Answered {
                sbc_session_id,
                media,
                dialog,
            } => {
                self.conv.sip_dialog = dialog;
                self.on_answered(sbc_session_id, media)
            }
            SipInput::Failed { status, reason } => {
                self.conv.sip_status = status;
                let (rc, by) = match status {
                    Some(s) => (ReasonCode::for_sip_status(s), HangupBy::Callee),
                    None => (ReasonCode::Error, HangupBy::System),
                };
                self.end(rc, reason, by, false);
            }
            SipInput::Ended {
                by_remote: true,
                reason,
            } => {
                let reason = reason.unwrap_or_else(|| "Client disconnected".into());
                self.end(ReasonCode::ClientDisconnected, reason, HangupBy::Callee, false);
            }
            SipInput::Ended {
                by_remote: false,
                reason,
            } => self.end(
                ReasonCode::Error,
                reason.unwrap_or_else(|| "the call was ended".into()),
                HangupBy::System,
                false,
            ),
            SipInput::Closed => self.end(
                ReasonCode::Error,
                "the SIP call ended without an outcome".into(),
                HangupBy::System,
                false,
            ),
            SipInput::TransferProgress { status, done } => self.record(
                EventKind::TransferProgress,
                json!({"sipStatus": status, "done": done}),
            ),
            SipInput::ReferAnswered(result) => self.on_refer_answered(result),
        }
    }

    fn on_answered(&mut self, sbc_session_id: String, media: Result<(), Failure>) {
        self.emit(Effect::CancelTimer(TimerId::AnswerTimeout));
        self.conv.sip_status = Some(200);
        self.conv.sbc_session_id = Some(sbc_session_id);
        if let Err(Failure(why)) = media {
            // A 200 whose SDP cannot be used never connected anybody: one notification, `failed`.
            self.end_with_hangup(ReasonCode::Error, why, HangupBy::System);
            return;
        }
        let now = now_ms();
        self.phase = Phase::Answered;
        self.conv.state = ConversationState::Answered;
        self.conv.connect_time = Some(now);
        self.conv.ringing_at.get_or_insert(now);
        self.conv.updated_at = now;
        let data = json!({"sbcSessionID": self.conv.sbc_session_id});
        self.transition(EventKind::Answered, data, Some(ConversationStatus::Answered));
        self.emit(Effect::Media(MediaEffect::Start));
        self.media_on = true;
        self.detection = Detection::new(
            self.conv.request.machine_detection,
            self.cfg.bot.machine_detection_config.as_ref(),
        );
        // The bot's first prompts wait for the verdict.
        self.prompts.held = self.detection.is_some();
        self.emit(Effect::SetTimer(TimerId::MaxDuration, self.cfg.max_call_duration));
        match self.link {
            Link::None => {
                self.link = Link::Opening;
                self.emit(Effect::Bot(BotEffect::Open(self.conv.start_parameters())));
            }
            Link::Open { streams } => self.bot_ready(streams),
            Link::Opening => {}
        }
    }
}
