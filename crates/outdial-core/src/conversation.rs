//! Conversations: one dial request and everything that follows from it (docs/calls.md).

use crate::dialout::DialoutRequest;
use crate::time::iso;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

/// `accepted → dialing → ringing → answered → ended`, or `… → failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ConversationState {
    Accepted,
    Dialing,
    Ringing,
    Answered,
    Ended,
    Failed,
}

impl ConversationState {
    pub const ALL: [&'static str; 6] = ["accepted", "dialing", "ringing", "answered", "ended", "failed"];

    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Ended | Self::Failed)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Dialing => "dialing",
            Self::Ringing => "ringing",
            Self::Answered => "answered",
            Self::Ended => "ended",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().position(|x| *x == s).map(|i| {
            [
                Self::Accepted,
                Self::Dialing,
                Self::Ringing,
                Self::Answered,
                Self::Ended,
                Self::Failed,
            ][i]
        })
    }

    /// The notification status of a terminal state.
    pub fn outcome(self) -> Option<ConversationStatus> {
        match self {
            Self::Ended => Some(ConversationStatus::Completed),
            Self::Failed => Some(ConversationStatus::Failed),
            _ => None,
        }
    }
}

/// The `status` of notifications.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ConversationStatus {
    Ringing,
    Answered,
    Completed,
    Failed,
    /// Opt-in (`notifyEvents: ["machineDetection"]`): the detector's verdict, as soon as it is known.
    #[serde(rename = "machineDetection")]
    MachineDetection,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ReasonCode {
    NoAnswer,
    Busy,
    Declined,
    Error,
    BotDisconnected,
    ClientDisconnected,
    Transferred,
    MachineDetected,
}

impl ReasonCode {
    /// The reasonCode of a final SIP response ≥ 300 before answer (docs/calls.md, "Every way a call ends").
    pub fn for_sip_status(status: u16) -> ReasonCode {
        match status {
            408 | 480 | 487 => ReasonCode::NoAnswer,
            486 | 600 => ReasonCode::Busy,
            403 | 603 | 607 => ReasonCode::Declined,
            _ => ReasonCode::Error,
        }
    }
}

/// Who ended a call (`hangupBy` in notifications and records).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HangupBy {
    /// The far end: a final response, or its BYE.
    Callee,
    /// The bot: `hangup` or a transfer.
    Bot,
    /// The gateway: a timeout, detection, the API, a failure.
    System,
}

impl HangupBy {
    pub fn as_str(self) -> &'static str {
        match self {
            HangupBy::Callee => "callee",
            HangupBy::Bot => "bot",
            HangupBy::System => "system",
        }
    }
}

/// The kinds of a conversation's timeline events (docs/calls.md, "The timeline"). Their names on the wire are
/// [`EventKind::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    Accepted,
    Dialing,
    Ringing,
    SipProvisional,
    Answered,
    MachineDetection,
    GreetingEnd,
    Prompt,
    PlayUrlFailed,
    Recognition,
    RecognitionFailed,
    SynthesisFailed,
    BotActivity,
    BotEvent,
    /// The bot conversation is open and another node could close it (its link is stored).
    BotConnected,
    BargeIn,
    Dtmf,
    TransferProgress,
    MediaStats,
    FallbackPrompt,
    Notification,
    Ended,
    Failed,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Accepted => "accepted",
            EventKind::Dialing => "dialing",
            EventKind::Ringing => "ringing",
            EventKind::SipProvisional => "sip-provisional",
            EventKind::Answered => "answered",
            EventKind::MachineDetection => "machine-detection",
            EventKind::GreetingEnd => "greeting-end",
            EventKind::Prompt => "prompt",
            EventKind::PlayUrlFailed => "play-url-failed",
            EventKind::Recognition => "recognition",
            EventKind::RecognitionFailed => "recognition-failed",
            EventKind::SynthesisFailed => "synthesis-failed",
            EventKind::BotActivity => "bot-activity",
            EventKind::BotEvent => "bot-event",
            EventKind::BotConnected => "bot-connected",
            EventKind::BargeIn => "barge-in",
            EventKind::Dtmf => "dtmf",
            EventKind::TransferProgress => "transfer-progress",
            EventKind::MediaStats => "media-stats",
            EventKind::FallbackPrompt => "fallback-prompt",
            EventKind::Notification => "notification",
            EventKind::Ended => "ended",
            EventKind::Failed => "failed",
        }
    }

    /// The event of entering a state.
    pub fn of_state(state: ConversationState) -> EventKind {
        match state {
            ConversationState::Accepted => EventKind::Accepted,
            ConversationState::Dialing => EventKind::Dialing,
            ConversationState::Ringing => EventKind::Ringing,
            ConversationState::Answered => EventKind::Answered,
            ConversationState::Ended => EventKind::Ended,
            ConversationState::Failed => EventKind::Failed,
        }
    }
}

/// A stored conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Conversation {
    pub id: Uuid,
    pub bot: String,
    /// The application that asked for the call.
    pub client_id: String,
    pub state: ConversationState,
    pub request: DialoutRequest,
    /// Unix milliseconds.
    pub created_at: i64,
    pub updated_at: i64,
    #[serde(default)]
    pub dialing_at: Option<i64>,
    #[serde(default)]
    pub ringing_at: Option<i64>,
    #[serde(default)]
    pub connect_time: Option<i64>,
    #[serde(default)]
    pub ended_at: Option<i64>,
    #[serde(default)]
    pub reason_code: Option<ReasonCode>,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub sip_status: Option<u16>,
    #[serde(default)]
    pub sbc_session_id: Option<String>,
    #[serde(default)]
    pub hangup_by: Option<HangupBy>,
    #[serde(default)]
    pub bot_operation_result: Option<String>,
    #[serde(default)]
    pub bot_operation_data: Option<String>,
    #[serde(default)]
    pub detection: Option<Value>,
    /// Sequence number of the last notification written for this conversation.
    #[serde(default)]
    pub notify_seq: i64,
    /// The answered call's SIP dialog (opaque here: the SIP crate's saved dialog), stored with the answer so that a
    /// restarted gateway can end the call with BYE (docs/operations.md). Never shown through the API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sip_dialog: Option<Value>,
    /// What another node needs to close the bot conversation when it takes the call over (docs/cluster.md), as the
    /// bot's connector gave it (the AudioCodes Bot API's `disconnectURL`). Never shown through the API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bot_link: Option<Value>,
}

impl Conversation {
    pub fn new(id: Uuid, client_id: &str, request: DialoutRequest, now_ms: i64) -> Self {
        Conversation {
            id,
            bot: request.bot.clone(),
            client_id: client_id.to_string(),
            state: ConversationState::Accepted,
            request,
            created_at: now_ms,
            updated_at: now_ms,
            dialing_at: None,
            ringing_at: None,
            connect_time: None,
            ended_at: None,
            reason_code: None,
            reason: None,
            sip_status: None,
            sbc_session_id: None,
            hangup_by: None,
            bot_operation_result: None,
            bot_operation_data: None,
            detection: None,
            notify_seq: 0,
            sip_dialog: None,
            bot_link: None,
        }
    }

    /// Puts the conversation in its terminal state (`ended` after an answer, else `failed`) with its reason, and
    /// returns the event of that state, its data and the status of the terminal notification (docs/calls.md).
    pub fn finish(
        &mut self,
        reason_code: ReasonCode,
        reason: &str,
        by: HangupBy,
        now_ms: i64,
    ) -> (EventKind, Value, ConversationStatus) {
        self.state = if self.connect_time.is_some() {
            ConversationState::Ended
        } else {
            ConversationState::Failed
        };
        self.reason_code = Some(reason_code);
        self.reason = Some(reason.to_string());
        self.hangup_by = Some(by);
        self.ended_at = Some(now_ms);
        self.updated_at = now_ms;
        let data = serde_json::json!({"reasonCode": reason_code, "reason": reason, "hangupBy": by, "sipStatus": self.sip_status});
        let status = self.state.outcome().unwrap_or(ConversationStatus::Failed);
        (EventKind::of_state(self.state), data, status)
    }

    /// The body of a status notification (docs/api.md, "Status notifications"): the seed's fields for the status, `sequence` and
    /// `timestamp`, and on terminal notifications the rich fields.
    pub fn notification(&self, status: ConversationStatus, sequence: i64, now_ms: i64) -> Value {
        let mut n = serde_json::Map::new();
        let mut put = |k: &str, v: Value| {
            n.insert(k.to_string(), v);
        };
        put("conversationId", Value::String(self.id.to_string()));
        put("status", serde_json::to_value(status).unwrap_or(Value::Null));
        let terminal = matches!(status, ConversationStatus::Completed | ConversationStatus::Failed);
        if terminal {
            if let Some(rc) = self.reason_code {
                put("reasonCode", serde_json::to_value(rc).unwrap_or(Value::Null));
            }
            if let Some(r) = &self.reason {
                put("reason", Value::String(r.clone()));
            }
        }
        if matches!(
            status,
            ConversationStatus::Answered | ConversationStatus::Completed
        ) && let Some(t) = self.connect_time
        {
            put("connectTime", Value::String(iso(t)));
        }
        if status == ConversationStatus::MachineDetection
            && let Some(d) = &self.detection
        {
            put("machineDetection", d["result"].clone());
            put("detection", d.clone());
        }
        if status == ConversationStatus::Completed {
            // `detect` mode found a machine: how its greeting ended.
            if let Some(v) = self.detection.as_ref().and_then(|d| d["voicemail"].as_str()) {
                put("machineDetection", Value::String(v.to_string()));
            }
            if let Some(d) = self.call_duration() {
                put("callDuration", serde_json::json!(d));
            }
            if let Some(s) = &self.sbc_session_id {
                put("sbcSessionID", Value::String(s.clone()));
            }
        }
        if terminal {
            if let Some(r) = &self.bot_operation_result {
                put("botOperationResult", Value::String(r.clone()));
            }
            if let Some(d) = &self.bot_operation_data {
                put("botOperationData", Value::String(d.clone()));
            }
            if let Some(s) = self.sip_status {
                put("sipStatus", serde_json::json!(s));
            }
            if let Some(h) = self.hangup_by {
                put("hangupBy", Value::String(h.as_str().into()));
            }
            if let (Some(d), Some(r)) = (self.dialing_at, self.ringing_at) {
                put("postDialDelayMs", serde_json::json!(r - d));
            }
            if let (Some(r), Some(end)) = (self.ringing_at, self.connect_time.or(self.ended_at)) {
                put("ringDurationMs", serde_json::json!(end - r));
            }
            if let Some(d) = &self.detection {
                put("detection", d.clone());
            }
        }
        put("sequence", serde_json::json!(sequence));
        put("timestamp", Value::String(iso(now_ms)));
        Value::Object(n)
    }

    /// The call's fields for the bot (docs/bots.md): the `parameters` of the `start` event and the `value` of
    /// `dialoutInitiated`. Fields without a value are left out, so the seed's dialout gives the seed's event plus
    /// `outboundTarget` and the two conversation ids.
    pub fn start_parameters(&self) -> Value {
        let r = &self.request;
        let mut p = serde_json::Map::new();
        p.insert("callee".into(), crate::dialout::callee_of(&r.target).into());
        if let Some(c) = &r.caller {
            p.insert("caller".into(), c.clone().into());
        }
        if let Some(h) = callee_host(&r.target) {
            p.insert("calleeHost".into(), h.into());
        }
        if let Some(h) = &r.caller_host {
            p.insert("callerHost".into(), h.clone().into());
        }
        if let Some(d) = &r.caller_display_name {
            p.insert("callerDisplayName".into(), d.clone().into());
        }
        p.insert("outboundTarget".into(), r.target.clone().into());
        if let Some(m) = &r.metadata {
            p.insert("dialoutMetadata".into(), Value::Object(m.clone()));
        }
        p.insert("vaigConversationId".into(), self.id.to_string().into());
        p.insert("conversationId".into(), self.id.to_string().into());
        Value::Object(p)
    }

    /// Seconds from connect to end, when both are known.
    pub fn call_duration(&self) -> Option<f64> {
        Some((self.ended_at? - self.connect_time?) as f64 / 1000.0)
    }

    pub fn view(&self) -> ConversationView {
        ConversationView {
            conversation_id: self.id,
            bot: self.bot.clone(),
            client_id: self.client_id.clone(),
            state: self.state,
            status: self.state.outcome(),
            request: self.request.redacted(),
            created_at: iso(self.created_at),
            updated_at: iso(self.updated_at),
            dialing_at: self.dialing_at.map(iso),
            ringing_at: self.ringing_at.map(iso),
            connect_time: self.connect_time.map(iso),
            ended_at: self.ended_at.map(iso),
            call_duration: self.call_duration(),
            reason_code: self.reason_code,
            reason: self.reason.clone(),
            sip_status: self.sip_status,
            sbc_session_id: self.sbc_session_id.clone(),
            hangup_by: self.hangup_by,
            bot_operation_result: self.bot_operation_result.clone(),
            bot_operation_data: self.bot_operation_data.clone(),
            detection: self.detection.clone(),
        }
    }
}

/// A conversation record as the API returns it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConversationView {
    pub conversation_id: Uuid,
    pub bot: String,
    pub client_id: String,
    pub state: ConversationState,
    /// `completed` or `failed` once the conversation has ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<ConversationStatus>,
    /// The dial request, with the credentials and query values of `notifyUrl` masked.
    pub request: DialoutRequest,
    pub created_at: String,
    pub updated_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dialing_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ringing_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_duration: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason_code: Option<ReasonCode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sip_status: Option<u16>,
    #[serde(rename = "sbcSessionID", skip_serializing_if = "Option::is_none")]
    pub sbc_session_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hangup_by: Option<HangupBy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bot_operation_result: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bot_operation_data: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub detection: Option<Value>,
}

/// One entry of a conversation's timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConversationEvent {
    /// Increasing within the conversation.
    pub seq: i64,
    /// ISO 8601 UTC.
    pub at: String,
    /// e.g. `accepted`, `dialing`, `sip-response`, `answered`, `notification`, `ended`.
    pub kind: String,
    #[schema(value_type = Object)]
    pub data: Value,
}

/// The host of a `sip:`/`sips:` target (none for `tel:`).
fn callee_host(target: &str) -> Option<String> {
    let rest = target
        .strip_prefix("sips:")
        .or_else(|| target.strip_prefix("sip:"))?;
    let addr = rest.split([';', '?']).next()?;
    let host = addr.rsplit_once('@').map_or(addr, |(_, h)| h);
    (!host.is_empty()).then(|| host.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sip_statuses_map_to_reason_codes() {
        use ReasonCode::*;
        for (s, rc) in [
            (408, NoAnswer),
            (480, NoAnswer),
            (487, NoAnswer),
            (486, Busy),
            (600, Busy),
            (603, Declined),
            (403, Declined),
            (607, Declined),
            (404, Error),
            (484, Error),
            (488, Error),
            (500, Error),
            (503, Error),
        ] {
            assert_eq!(ReasonCode::for_sip_status(s), rc, "{s}");
        }
    }

    #[test]
    fn notification_fields_follow_the_status() {
        let req = DialoutRequest::parse(&json!({"bot": "B", "target": "tel:+1", "caller": "1"})).unwrap();
        let mut c = Conversation::new(Uuid::nil(), "app", req, 1_000);
        c.dialing_at = Some(1_000);
        c.ringing_at = Some(1_200);
        c.connect_time = Some(3_000);
        let answered = c.notification(ConversationStatus::Answered, 1, 3_001);
        assert_eq!(
            answered,
            json!({"conversationId": "00000000-0000-0000-0000-000000000000", "status": "answered",
                   "connectTime": "1970-01-01T00:00:03.000Z", "sequence": 1, "timestamp": "1970-01-01T00:00:03.001Z"})
        );
        c.ended_at = Some(13_500);
        c.state = ConversationState::Ended;
        c.reason_code = Some(ReasonCode::ClientDisconnected);
        c.reason = Some("Client disconnected".into());
        c.sbc_session_id = Some("abc".into());
        c.sip_status = Some(200);
        c.hangup_by = Some(HangupBy::Callee);
        c.bot_operation_result = Some("sale".into());
        let done = c.notification(ConversationStatus::Completed, 2, 13_501);
        assert_eq!(done["callDuration"], json!(10.5));
        assert_eq!(done["reasonCode"], "client-disconnected");
        assert_eq!(done["sbcSessionID"], "abc");
        assert_eq!(done["botOperationResult"], "sale");
        assert_eq!(
            (done["postDialDelayMs"].as_i64(), done["ringDurationMs"].as_i64()),
            (Some(200), Some(1800))
        );
        let failed = c.notification(ConversationStatus::Failed, 2, 0);
        assert!(failed.get("connectTime").is_none() && failed.get("callDuration").is_none());
    }
}
