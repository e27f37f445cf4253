//! The local Dialogflow services' request schema checks and answers (see `dialogflow.rs`): `detectIntent` bodies
//! as the v3 (CX) and v2 (ES) REST references define them, and the reference bot's activities as response
//! messages.

use serde_json::{Map, Value, json};

fn unknown(m: &Map<String, Value>, allowed: &[&str], at: &str) -> Result<(), String> {
    match m.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(format!(
            "Invalid JSON payload received. Unknown name \"{k}\" at '{at}': Cannot find field."
        )),
        None => Ok(()),
    }
}

fn object<'a>(v: &'a Value, at: &str) -> Result<&'a Map<String, Value>, String> {
    v.as_object()
        .ok_or_else(|| format!("Invalid value at '{at}', must be an object"))
}

fn string<'a>(m: &'a Map<String, Value>, k: &str, at: &str) -> Result<&'a str, String> {
    match m.get(k) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(Value::String(_)) | None => Err(format!("Field '{at}.{k}' is required.")),
        Some(_) => Err(format!("Invalid value at '{at}.{k}' (TYPE_STRING)")),
    }
}

/// Checks a `detectIntent` body; returns what it says as a reference-bot activity.
pub fn check(cx: bool, req: &Value) -> Result<Value, String> {
    let top = object(req, "")?;
    let allowed: &[&str] = if cx {
        &[
            "queryInput",
            "queryParams",
            "outputAudioConfig",
            "outputAudioConfigMask",
        ]
    } else {
        &[
            "queryInput",
            "queryParams",
            "outputAudioConfig",
            "outputAudioConfigMask",
            "inputAudio",
        ]
    };
    unknown(top, allowed, "")?;
    let qi = object(
        top.get("queryInput").ok_or("Field 'queryInput' is required.")?,
        "query_input",
    )?;
    if cx {
        unknown(
            qi,
            &[
                "text",
                "intent",
                "audio",
                "event",
                "dtmf",
                "toolCallResult",
                "languageCode",
            ],
            "query_input",
        )?;
        string(qi, "languageCode", "query_input")?;
        let params = match top.get("queryParams") {
            Some(qp) => {
                let qp = object(qp, "query_params")?;
                unknown(
                    qp,
                    &[
                        "timeZone",
                        "geoLocation",
                        "sessionEntityTypes",
                        "payload",
                        "parameters",
                        "currentPage",
                        "disableWebhook",
                        "analyzeQueryTextSentiment",
                        "webhookHeaders",
                        "flowVersions",
                        "channel",
                        "sessionTtl",
                        "endUserMetadata",
                    ],
                    "query_params",
                )?;
                qp.get("parameters").cloned().unwrap_or(json!({}))
            }
            None => json!({}),
        };
        let inputs = ["text", "intent", "audio", "event", "dtmf"]
            .iter()
            .filter(|k| qi.contains_key(**k))
            .count();
        if inputs != 1 {
            return Err("Exactly one input of query_input must be set.".into());
        }
        if let Some(t) = qi.get("text") {
            let t = object(t, "query_input.text")?;
            unknown(t, &["text"], "query_input.text")?;
            return Ok(json!({"type": "message", "text": string(t, "text", "query_input.text")?}));
        }
        if let Some(d) = qi.get("dtmf") {
            let d = object(d, "query_input.dtmf")?;
            unknown(d, &["digits", "finishDigit"], "query_input.dtmf")?;
            return Ok(json!({"type": "event", "name": "DTMF", "value": d.get("digits")}));
        }
        let e = object(
            qi.get("event")
                .ok_or("Only text, dtmf and event queries are served here.")?,
            "query_input.event",
        )?;
        unknown(e, &["event"], "query_input.event")?;
        let name = string(e, "event", "query_input.event")?;
        // The call's fields reach the agent as session parameters, and whole under `event-<NAME>`.
        let fields = params
            .get(format!("event-{name}"))
            .cloned()
            .unwrap_or(Value::Null);
        return Ok(activity(name, fields));
    }
    unknown(qi, &["audioConfig", "text", "event", "dtmf"], "query_input")?;
    let inputs = ["audioConfig", "text", "event", "dtmf"]
        .iter()
        .filter(|k| qi.contains_key(**k))
        .count();
    if inputs != 1 {
        return Err("Exactly one of query_input's audio_config, text, event or dtmf must be set.".into());
    }
    if let Some(t) = qi.get("text") {
        let t = object(t, "query_input.text")?;
        unknown(t, &["text", "languageCode"], "query_input.text")?;
        string(t, "languageCode", "query_input.text")?;
        return Ok(json!({"type": "message", "text": string(t, "text", "query_input.text")?}));
    }
    let e = object(
        qi.get("event")
            .ok_or("Only text and event queries are served here.")?,
        "query_input.event",
    )?;
    unknown(e, &["name", "parameters", "languageCode"], "query_input.event")?;
    string(e, "languageCode", "query_input.event")?;
    let name = string(e, "name", "query_input.event")?;
    Ok(activity(
        name,
        e.get("parameters").cloned().unwrap_or(Value::Null),
    ))
}

/// An event as the reference bot knows it: `WELCOME` is its `start`; others carry `value`.
fn activity(name: &str, params: Value) -> Value {
    if name == "WELCOME" {
        json!({"type": "event", "name": "start", "parameters": params})
    } else {
        json!({"type": "event", "name": name, "value": params["value"]})
    }
}

/// The reference bot's replies as a `detectIntent` answer.
pub fn answer(cx: bool, req: &Value, replies: &[Value]) -> Value {
    let mut messages = Vec::new();
    let mut end = false;
    for r in replies {
        match (r["type"].as_str(), r["name"].as_str()) {
            (Some("message"), _) => messages.push(json!({"text": {"text": [r["text"]]}})),
            // The result rides in a custom payload; the end of the interaction hangs up.
            (_, Some("hangup")) => {
                messages.push(json!({"payload": {"activityParams": r["activityParams"]}}));
                end = true;
            }
            // The transfer's settings (target, reason, SIP headers) in the handoff's metadata.
            (_, Some("transfer")) if cx => {
                messages.push(json!({"liveAgentHandoff": {"metadata": r["activityParams"]}}));
            }
            _ => messages.push(json!({"payload": {"activities": [r]}})),
        }
    }
    let language = req["queryInput"]["languageCode"]
        .as_str()
        .or(req["queryInput"]["event"]["languageCode"].as_str())
        .or(req["queryInput"]["text"]["languageCode"].as_str())
        .unwrap_or("en");
    let id = uuid::Uuid::new_v4().to_string();
    if cx {
        if end {
            messages.push(json!({"endInteraction": {}}));
        }
        json!({"responseId": id, "queryResult": {"languageCode": language, "responseMessages": messages,
               "currentPage": {"name": "projects/p/locations/l/agents/a/flows/f/pages/START_PAGE",
                               "displayName": "Start Page"},
               "match": {"matchType": "EVENT", "confidence": 1.0}}})
    } else {
        let text = messages
            .iter()
            .filter_map(|m| m["text"]["text"][0].as_str())
            .collect::<Vec<_>>()
            .join(" ");
        json!({"responseId": id, "queryResult": {"languageCode": language, "fulfillmentText": text,
               "fulfillmentMessages": messages, "allRequiredParamsPresent": true,
               "intent": {"name": "projects/p/agent/intents/1", "displayName": "reference", "endInteraction": end}}})
    }
}
