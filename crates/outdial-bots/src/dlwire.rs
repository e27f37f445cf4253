//! Bot Framework activities (docs/bots.md, "Microsoft Bot Framework") to and from the engine's encoding, the
//! AudioCodes Bot API's activities ([`crate::activity`]).
//!
//! To the bot: the call's start is `event` `channel` with `value: telephony` and the call's fields in
//! `channelData`; other events keep their name and value; what the person said is a `message`; everything carries
//! `from` and `locale`. From the bot: a `message` is spoken (`speak`, else `text`); an `event` is an action by its
//! name (`hangup`, `transfer`, …); settings come in `channelData.activityParams` / `channelData.sessionParams`;
//! `endOfConversation` hangs up.

use serde_json::{Map, Value, json};

/// An engine activity as a Bot Framework activity sent by `user`.
pub fn to_directline(a: &Value, user: &Value, locale: &str) -> Value {
    let kind = a["type"].as_str().unwrap_or_default();
    let name = a["name"].as_str().unwrap_or_default();
    let mut out = match (kind, name) {
        ("event", "start") => json!({
            "type": "event", "name": "channel", "value": "telephony",
            "channelData": a["parameters"].clone(),
        }),
        // dialoutInitiated carries the start event's fields: in channelData too, where the start has them.
        ("event", "dialoutInitiated") => json!({
            "type": "event", "name": name, "value": a["value"].clone(), "channelData": a["value"].clone(),
        }),
        ("event", _) => json!({"type": "event", "name": name, "value": a["value"].clone()}),
        ("message", _) => json!({
            "type": "message", "text": a["text"].clone(),
            "channelData": {"confidence": a["parameters"]["confidence"].clone()},
        }),
        _ => a.clone(),
    };
    if let Some(o) = out.as_object_mut() {
        o.insert("from".into(), user.clone());
        o.insert("locale".into(), locale.into());
        if let Some(id) = a["id"].as_str() {
            o.insert("id".into(), id.into());
        }
        if let Some(ts) = a["timestamp"].as_str() {
            o.insert("timestamp".into(), ts.into());
        }
    }
    out
}

/// A bot's Bot Framework activity as an engine activity; `None` for what a voice call has no use for (`typing`,
/// `conversationUpdate`, a message with nothing to say).
pub fn from_directline(a: &Value) -> Option<Value> {
    let kind = a["type"].as_str()?.to_ascii_lowercase();
    let mut out = Map::new();
    match kind.as_str() {
        "message" => {
            let said = [&a["speak"], &a["text"]]
                .into_iter()
                .filter_map(Value::as_str)
                .find(|s| !s.trim().is_empty())?;
            out.insert("type".into(), "message".into());
            out.insert("text".into(), said.into());
        }
        "event" => {
            out.insert("type".into(), "event".into());
            out.insert("name".into(), a["name"].as_str()?.into());
            if !a["value"].is_null() {
                out.insert("value".into(), a["value"].clone());
            }
        }
        // A bot that ends the conversation hangs up, with its text as the reason.
        "endofconversation" => {
            out.insert("type".into(), "event".into());
            out.insert("name".into(), "hangup".into());
            if let Some(t) = a["text"].as_str().filter(|t| !t.is_empty()) {
                out.insert("activityParams".into(), json!({"hangupReason": t}));
            }
        }
        _ => return None,
    }
    if let Some(id) = a["id"].as_str() {
        out.insert("id".into(), id.into());
    }
    // Settings: in channelData (the Bot Framework's place for channel-specific data), or at the top level.
    for key in ["activityParams", "sessionParams"] {
        let mut params = Map::new();
        for source in [&a[key], &a["channelData"][key]] {
            if let Value::Object(m) = source {
                params.extend(m.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
        }
        if let Some(Value::Object(m)) = out.get(key) {
            let mut merged = m.clone();
            merged.extend(params);
            params = merged;
        }
        if !params.is_empty() {
            out.insert(key.into(), Value::Object(params));
        }
    }
    Some(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activity;

    #[test]
    fn the_start_event_is_the_seeds() {
        let params = json!({"callee": "+123456789", "caller": "1-800-111-111",
                            "dialoutMetadata": {"participantName": "Alice"}});
        let user = json!({"id": "12345678"});
        let a = to_directline(&activity::start(params.clone(), "en-US"), &user, "en-US");
        assert_eq!(a["type"], "event");
        assert_eq!(a["name"], "channel");
        assert_eq!(a["value"], "telephony");
        assert_eq!(a["channelData"], params);
        assert_eq!(a["from"]["id"], "12345678");
        assert_eq!(a["locale"], "en-US");
        let md = to_directline(
            &activity::event("machineDetection", json!("voicemail-prompt-start"), "en-US"),
            &user,
            "en-US",
        );
        assert_eq!(
            (&md["type"], &md["name"], &md["value"]),
            (
                &json!("event"),
                &json!("machineDetection"),
                &json!("voicemail-prompt-start")
            )
        );
        let said = to_directline(&activity::message("yes please", 0.9, "en-US"), &user, "en-US");
        assert_eq!(
            (said["type"].as_str(), said["text"].as_str()),
            (Some("message"), Some("yes please"))
        );
    }

    #[test]
    fn the_bots_activities_become_actions() {
        let m = from_directline(
            &json!({"type": "message", "id": "1", "text": "Hi", "speak": "<speak>Hi</speak>",
            "channelData": {"activityParams": {"bargeIn": true}}}),
        )
        .unwrap();
        assert_eq!(m["text"], "<speak>Hi</speak>", "speak wins over text");
        assert_eq!(m["activityParams"]["bargeIn"], true);
        let h = from_directline(&json!({"type": "event", "name": "hangup",
            "channelData": {"activityParams": {"botOperationResult": "yes"}}}))
        .unwrap();
        let (action, params) = activity::read(&h);
        assert_eq!(action, activity::BotAction::Hangup(None));
        assert_eq!(params["botOperationResult"], "yes");
        let e = from_directline(&json!({"type": "endOfConversation", "text": "done"})).unwrap();
        assert_eq!(
            activity::read(&e).0,
            activity::BotAction::Hangup(Some("done".into()))
        );
        assert!(from_directline(&json!({"type": "typing"})).is_none());
        assert!(from_directline(&json!({"type": "message", "text": ""})).is_none());
    }
}
