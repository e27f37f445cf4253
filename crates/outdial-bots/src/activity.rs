//! Activities (docs/bots.md): what outdial sends to bots, and how to read what they send back.

use outdial_core::time::{iso, now_ms};
use serde_json::{Map, Value, json};

/// A new activity of `type` with its `id`, `timestamp` and `language`.
fn base(kind: &str, language: &str) -> Map<String, Value> {
    let mut a = Map::new();
    a.insert("type".into(), kind.into());
    a.insert("id".into(), uuid::Uuid::new_v4().to_string().into());
    a.insert("timestamp".into(), iso(now_ms()).into());
    a.insert("language".into(), language.into());
    a
}

/// An `event` activity with a `value`.
pub fn event(name: &str, value: Value, language: &str) -> Value {
    let mut a = base("event", language);
    a.insert("name".into(), name.into());
    a.insert("value".into(), value);
    Value::Object(a)
}

/// The call-initiation event: `start` with the call's fields in `parameters` (docs/bots.md).
pub fn start(parameters: Value, language: &str) -> Value {
    let mut a = base("event", language);
    a.insert("name".into(), "start".into());
    a.insert("parameters".into(), parameters);
    Value::Object(a)
}

/// What the person said.
pub fn message(text: &str, confidence: f32, language: &str) -> Value {
    let mut a = base("message", language);
    a.insert("text".into(), text.into());
    a.insert("parameters".into(), json!({"confidence": confidence}));
    Value::Object(a)
}

pub use outdial_core::action::{ActivitySettings, BotAction};

/// Reads a bot activity: the action and the settings it carries (`activityParams` and `sessionParams` merged,
/// session first).
pub fn read(a: &Value) -> (BotAction, Map<String, Value>) {
    let mut params = Map::new();
    for key in ["sessionParams", "activityParams"] {
        if let Some(Value::Object(m)) = a.get(key) {
            params.extend(m.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
    }
    let text = |k: &str| params.get(k).and_then(Value::as_str).map(str::to_string);
    // Types and names are matched without regard to case: AudioCodes' own samples send `"type": "Event"`.
    let kind = a["type"].as_str().map(str::to_ascii_lowercase);
    let name = a["name"].as_str();
    let lower = name.map(str::to_ascii_lowercase);
    let action = match (kind.as_deref(), lower.as_deref()) {
        (Some("message"), _) => BotAction::Say(a["text"].as_str().unwrap_or_default().to_string()),
        (Some("event"), Some("hangup")) => BotAction::Hangup(text("hangupReason")),
        (Some("event"), Some("transfer" | "handover")) => BotAction::Transfer {
            target: text("transferTarget").unwrap_or_default(),
            reason: text("handoverReason"),
            headers: params
                .get("transferSipHeaders")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|h| Some((h["name"].as_str()?.to_string(), h["value"].as_str()?.to_string())))
                .collect(),
        },
        (Some("event"), Some("senddtmf")) => BotAction::SendDtmf(text("dtmfDigits").unwrap_or_default()),
        (Some("event"), Some("playurl")) => BotAction::PlayUrl {
            url: text("playUrlUrl").unwrap_or_default(),
            format: text("playUrlMediaFormat"),
        },
        (Some("event"), Some("startrecognition")) => BotAction::StartRecognition,
        (Some("event"), Some("stoprecognition")) => BotAction::StopRecognition,
        (Some("event"), Some("abortprompts")) => BotAction::AbortPrompts,
        (Some("event"), Some("config")) => BotAction::Config,
        (_, Some(_)) => BotAction::Unknown(name.unwrap_or_default().to_string()),
        (kind, None) => BotAction::Unknown(kind.unwrap_or("unknown").to_string()),
    };
    (action, params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_bots_send() {
        let (a, p) =
            read(&json!({"type": "message", "text": "Hello Alice", "sessionParams": {"bargeIn": true}}));
        assert_eq!(a, BotAction::Say("Hello Alice".into()));
        assert_eq!(p["bargeIn"], true);
        let (a, p) = read(&json!({"type": "event", "name": "hangup",
            "activityParams": {"hangupReason": "done", "botOperationResult": "yes"}}));
        assert_eq!(a, BotAction::Hangup(Some("done".into())));
        assert_eq!(p["botOperationResult"], "yes");
        let (a, _) = read(
            &json!({"type": "event", "name": "handover", "activityParams": {"transferTarget": "tel:+1",
            "transferSipHeaders": [{"name": "X-A", "value": "1"}, {"name": "bad"}]}}),
        );
        assert_eq!(
            a,
            BotAction::Transfer {
                target: "tel:+1".into(),
                reason: None,
                headers: vec![("X-A".into(), "1".into())],
            }
        );
        let (a, _) = read(&json!({"type": "event", "name": "playUrl",
            "activityParams": {"playUrlUrl": "http://x/a.wav", "playUrlMediaFormat": "raw/mulaw"}}));
        assert_eq!(
            a,
            BotAction::PlayUrl {
                url: "http://x/a.wav".into(),
                format: Some("raw/mulaw".into())
            }
        );
        // Matched without regard to case (AudioCodes' sample bot sends "Event").
        let (a, _) = read(&json!({"type": "Event", "name": "hangup"}));
        assert_eq!(a, BotAction::Hangup(None));
        let (a, _) = read(&json!({"type": "event", "name": "abortPrompts"}));
        assert_eq!(a, BotAction::AbortPrompts);
        let (a, _) = read(&json!({"type": "event", "name": "StartRecognition"}));
        assert_eq!(a, BotAction::StartRecognition);
        let (a, p) = read(&json!({"type": "event", "name": "config", "sessionParams": {"bargeIn": true}}));
        assert_eq!(a, BotAction::Config);
        assert_eq!(ActivitySettings::from_params(&p).barge_in, Some(true));
        let (a, _) = read(&json!({"type": "event", "name": "somethingNew"}));
        assert_eq!(a, BotAction::Unknown("somethingNew".into()));
        let e = event("machineDetection", json!("voicemail-prompt-start"), "en-US");
        assert_eq!(
            (e["type"].as_str(), e["name"].as_str()),
            (Some("event"), Some("machineDetection"))
        );
        assert!(e["id"].as_str().unwrap().len() == 36 && e["timestamp"].as_str().unwrap().ends_with('Z'));
    }
}
