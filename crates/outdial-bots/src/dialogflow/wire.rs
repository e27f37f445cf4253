//! Dialogflow's `detectIntent` (docs/bots.md, "Dialogflow CX" and "Dialogflow ES") to and from the engine's
//! encoding, the AudioCodes Bot API's activities ([`crate::activity`]).
//!
//! To the agent: the call's start is the `WELCOME` event with the call's fields (CX: as session parameters, also
//! under `event-WELCOME`; ES: as the event's parameters); other events (`machineDetection`, `dialoutInitiated`,
//! `noUserInput`, …) keep their name, with `value` as a parameter; what the person said is a text query; DTMF is a
//! CX `dtmf` query (an ES `DTMF` event). From the agent: text and `outputAudioText` / `telephonySynthesizeSpeech`
//! are spoken; custom payloads carry `activities`, `activityParams` and `sessionParams`; `endInteraction` hangs up
//! once the prompts have played; `liveAgentHandoff` and `telephonyTransferCall` transfer; `playAudio` /
//! `telephonyPlayAudio` play a recording.

use serde_json::{Map, Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edition {
    Cx,
    Es,
}

/// The `detectIntent` body for one engine activity; `None` for one the agent has no use for.
pub fn request(edition: Edition, a: &Value, language: &str) -> Option<Value> {
    let kind = a["type"].as_str().unwrap_or_default();
    let name = a["name"].as_str().unwrap_or_default();
    let (event, params) = match (kind, name) {
        ("message", _) => {
            let text = a["text"].as_str().unwrap_or_default();
            return Some(match edition {
                Edition::Cx => json!({"queryInput": {"text": {"text": text}, "languageCode": language}}),
                Edition::Es => json!({"queryInput": {"text": {"text": text, "languageCode": language}}}),
            });
        }
        ("event", "start") => ("WELCOME", a["parameters"].clone()),
        ("event", "dialoutInitiated") => ("dialoutInitiated", a["value"].clone()),
        ("event", "DTMF") if edition == Edition::Cx => {
            let digits = a["value"].as_str().unwrap_or_default();
            return Some(json!({"queryInput": {"dtmf": {"digits": digits}, "languageCode": language}}));
        }
        ("event", n) if !n.is_empty() => (n, json!({"value": a["value"]})),
        _ => return None,
    };
    let params = if params.is_object() { params } else { json!({}) };
    Some(match edition {
        // CX events take no parameters of their own: they go to the session, and whole under `event-<NAME>`.
        Edition::Cx => {
            let mut session = params.as_object().cloned().unwrap_or_default();
            session.insert(format!("event-{event}"), params.clone());
            json!({"queryInput": {"event": {"event": event}, "languageCode": language},
                   "queryParams": {"parameters": session}})
        }
        Edition::Es => {
            json!({"queryInput": {"event": {"name": event, "parameters": params, "languageCode": language}}})
        }
    })
}

fn activity(kind: &str, fields: Value) -> Value {
    let mut a = Map::new();
    a.insert("type".into(), kind.into());
    a.insert("id".into(), uuid::Uuid::new_v4().to_string().into());
    if let Value::Object(f) = fields {
        a.extend(f);
    }
    Value::Object(a)
}

fn say(text: &str) -> Option<Value> {
    (!text.trim().is_empty()).then(|| activity("message", json!({"text": text})))
}

/// A custom payload: its activities as they are, its settings as a `config` event.
fn payload(p: &Value, out: &mut Vec<Value>) {
    if p["activityParams"].is_object() || p["sessionParams"].is_object() {
        let mut cfg = json!({"name": "config"});
        for k in ["activityParams", "sessionParams"] {
            if p[k].is_object() {
                cfg[k] = p[k].clone();
            }
        }
        out.push(activity("event", cfg));
    }
    for a in p["activities"].as_array().into_iter().flatten() {
        if a.is_object() {
            let mut a = a.clone();
            if a.get("id").is_none() {
                a["id"] = json!(uuid::Uuid::new_v4().to_string());
            }
            out.push(a);
        }
    }
}

/// A transfer to `target`; `metadata` (a `liveAgentHandoff`'s) may add `handoverReason` and
/// `transferSipHeaders`, as a transfer's `activityParams` do.
fn transfer(target: &str, metadata: Option<&Value>) -> Value {
    let mut params = metadata
        .filter(|m| m.is_object())
        .cloned()
        .unwrap_or_else(|| json!({}));
    params["transferTarget"] = json!(target);
    activity("event", json!({"name": "transfer", "activityParams": params}))
}

/// One response message (CX `responseMessages[]`, ES `fulfillmentMessages[]`) as activities.
fn message(m: &Value, out: &mut Vec<Value>, end: &mut bool) {
    if let Some(texts) = m["text"]["text"].as_array() {
        let joined: Vec<&str> = texts.iter().filter_map(Value::as_str).collect();
        out.extend(say(&joined.join(" ")));
    }
    for spoken in [&m["outputAudioText"], &m["telephonySynthesizeSpeech"]] {
        if let Some(t) = spoken["ssml"].as_str().or(spoken["text"].as_str()) {
            out.extend(say(t));
        }
    }
    if m["payload"].is_object() {
        payload(&m["payload"], out);
    }
    for audio in [&m["playAudio"], &m["telephonyPlayAudio"]] {
        if let Some(uri) = audio["audioUri"].as_str() {
            out.push(activity(
                "event",
                json!({"name": "playUrl", "activityParams": {"playUrlUrl": uri}}),
            ));
        }
    }
    if m.get("endInteraction").is_some() {
        *end = true;
    }
    if let Some(meta) = m.get("liveAgentHandoff") {
        let target = meta["metadata"]["transferTarget"].as_str().unwrap_or_default();
        out.push(transfer(target, meta.get("metadata")));
    }
    if let Some(n) = m["telephonyTransferCall"]["phoneNumber"].as_str() {
        out.push(transfer(&format!("tel:{n}"), None));
    }
}

/// A `detectIntent` answer as activities, in order; an end of interaction is a `hangup` after them (it waits for
/// the prompts before it).
pub fn response(edition: Edition, answer: &Value) -> Vec<Value> {
    let q = &answer["queryResult"];
    let mut out = Vec::new();
    let mut end = false;
    let messages = match edition {
        Edition::Cx => &q["responseMessages"],
        Edition::Es => &q["fulfillmentMessages"],
    };
    let list = messages.as_array().cloned().unwrap_or_default();
    for m in &list {
        // ES messages of another platform (Facebook, Slack, …) are not for a phone call.
        let platform = m["platform"].as_str().unwrap_or("PLATFORM_UNSPECIFIED");
        if edition == Edition::Es && !matches!(platform, "PLATFORM_UNSPECIFIED" | "TELEPHONY") {
            continue;
        }
        message(m, &mut out, &mut end);
    }
    if edition == Edition::Es {
        if list.is_empty()
            && let Some(t) = q["fulfillmentText"].as_str()
        {
            out.extend(say(t));
        }
        end |= q["intent"]["endInteraction"] == true;
    }
    if end {
        // A payload's `hangupReason` names the end; else it is the end of the interaction.
        let reason = out
            .iter()
            .rev()
            .filter(|a| a["name"] == "config")
            .find_map(|a| a["activityParams"]["hangupReason"].as_str())
            .unwrap_or("end of interaction")
            .to_string();
        out.push(activity(
            "event",
            json!({"name": "hangup", "activityParams": {"hangupReason": reason}}),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activity::{self, BotAction, read};

    #[test]
    fn the_welcome_event_is_the_seeds() {
        let fields = json!({"callee": "+123456789", "caller": "1-800-111-111",
                            "dialoutMetadata": {"participantName": "Alice"}});
        let start = activity::start(fields.clone(), "en-US");
        let es = request(Edition::Es, &start, "en-US").unwrap();
        assert_eq!(
            es,
            json!({"queryInput": {"event": {"name": "WELCOME", "parameters": fields, "languageCode": "en-US"}}})
        );
        let cx = request(Edition::Cx, &start, "en-US").unwrap();
        assert_eq!(cx["queryInput"]["event"]["event"], "WELCOME");
        assert_eq!(cx["queryParams"]["parameters"]["event-WELCOME"], fields);
        assert_eq!(
            cx["queryParams"]["parameters"]["dialoutMetadata"]["participantName"],
            "Alice"
        );
        let md = activity::event("machineDetection", json!("voicemail-prompt-start"), "en-US");
        assert_eq!(
            request(Edition::Es, &md, "en-US").unwrap()["queryInput"]["event"],
            json!({"name": "machineDetection", "parameters": {"value": "voicemail-prompt-start"}, "languageCode": "en-US"})
        );
        let dtmf = activity::event("DTMF", json!("5"), "en-US");
        assert_eq!(
            request(Edition::Cx, &dtmf, "en-US").unwrap()["queryInput"]["dtmf"]["digits"],
            "5"
        );
    }

    #[test]
    fn responses_become_actions_in_order() {
        let cx = json!({"queryResult": {"responseMessages": [
            {"text": {"text": ["Hello", "Alice"]}},
            {"payload": {"activityParams": {"botOperationResult": "yes"}}},
            {"endInteraction": {}},
        ]}});
        let acts = response(Edition::Cx, &cx);
        let actions: Vec<BotAction> = acts.iter().map(|a| read(a).0).collect();
        assert_eq!(
            actions,
            [
                BotAction::Say("Hello Alice".into()),
                BotAction::Config,
                BotAction::Hangup(Some("end of interaction".into()))
            ]
        );
        assert_eq!(read(&acts[1]).1["botOperationResult"], "yes");
        let handoff = json!({"queryResult": {"responseMessages": [
            {"liveAgentHandoff": {"metadata": {"transferTarget": "sip:agent@example.com"}}}]}});
        assert!(matches!(&read(&response(Edition::Cx, &handoff)[0]).0,
            BotAction::Transfer { target, .. } if target == "sip:agent@example.com"));
        let es = json!({"queryResult": {"fulfillmentText": "Bye", "fulfillmentMessages": [
            {"platform": "FACEBOOK", "text": {"text": ["not for phones"]}},
            {"platform": "TELEPHONY", "telephonySynthesizeSpeech": {"ssml": "<speak>Bye</speak>"}},
            {"platform": "TELEPHONY", "telephonyTransferCall": {"phoneNumber": "+15550100"}}],
            "intent": {"endInteraction": false}}});
        let actions: Vec<BotAction> = response(Edition::Es, &es).iter().map(|a| read(a).0).collect();
        assert_eq!(actions.len(), 2, "{actions:?}");
        assert_eq!(actions[0], BotAction::Say("<speak>Bye</speak>".into()));
        assert!(matches!(&actions[1], BotAction::Transfer { target, .. } if target == "tel:+15550100"));
        let plain = json!({"queryResult": {"fulfillmentText": "Hi", "intent": {"endInteraction": true}}});
        let actions: Vec<BotAction> = response(Edition::Es, &plain).iter().map(|a| read(a).0).collect();
        assert_eq!(
            actions,
            [
                BotAction::Say("Hi".into()),
                BotAction::Hangup(Some("end of interaction".into()))
            ]
        );
    }
}
