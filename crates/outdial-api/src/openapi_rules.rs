//! The validation rules of `outdial-core` written into the OpenAPI document (docs/api.md, "The OpenAPI
//! document"), so that a request the document allows is never refused for its form: lengths, ranges, patterns
//! (`outdial_core::patterns`, tested against the validators), the request bodies of `PUT` (no `name`: it comes
//! from the path) and `PATCH` (JSON merge patches: every field optional, `null` removes an optional one), and the
//! OAuth form. What JSON Schema cannot say (a body whose bot or trunk does not exist) is answered 404 or 409.

use outdial_core::patterns as p;
use serde_json::{Map, Value, json};

fn text(min: usize, max: usize) -> Value {
    json!({"type": "string", "minLength": min, "maxLength": max, "pattern": p::TEXT})
}

fn pattern(pat: &str, max: usize) -> Value {
    json!({"type": "string", "pattern": pat, "maxLength": max})
}

fn service_account() -> Value {
    json!({"type": "object", "writeOnly": true,
           "description": "The service account's JSON key (write-only).",
           "required": ["client_email", "private_key", "token_uri"],
           "properties": {
               "type": {"type": "string", "enum": ["service_account"]},
               "client_email": {"type": "string", "minLength": 3, "maxLength": 320},
               "private_key": {"type": "string", "minLength": 64, "maxLength": 16384,
                               "pattern": "-----BEGIN (RSA )?PRIVATE KEY-----"},
               "token_uri": pattern(p::HTTP_URL, 2048)}})
}

/// `speechCredentials` (docs/speech.md): one object a provider, write-only.
fn speech_credentials() -> Value {
    let section = |required: &[&str], props: Value| json!({"type": "object", "required": required, "additionalProperties": false, "properties": props});
    let mut url = pattern(p::HTTP_URL, 2048);
    url["type"] = json!(["string", "null"]);
    let mut azure = section(
        &["key"],
        json!({"key": text(8, 1024), "region": pattern("^[a-z0-9]{2,64}$", 64), "url": url}),
    );
    azure["anyOf"] = json!([{"required": ["region"]}, {"required": ["url"]}]);
    json!({"type": "object", "writeOnly": true, "additionalProperties": false,
           "description": "The cloud speech providers' credentials (write-only; docs/speech.md).",
           "properties": {
               "deepgram": section(&["apiKey"], json!({"apiKey": text(8, 1024), "url": url})),
               "azure": azure,
               "google": section(&[], json!({"serviceAccount": service_account(), "url": url})),
               "elevenlabs": section(&["apiKey"], json!({"apiKey": text(8, 1024), "url": url,
                                                         "modelId": {"type": ["string", "null"], "minLength": 1, "maxLength": 128}}))}})
}

fn integer(min: i64, max: i64) -> Value {
    json!({"type": "integer", "minimum": min, "maximum": max})
}

fn number(min: f64, max: f64) -> Value {
    json!({"type": "number", "minimum": min, "maximum": max})
}

fn names(pat: &str, max_items: usize) -> Value {
    json!({"type": "array", "maxItems": max_items, "items": {"type": "string", "pattern": pat}})
}

/// Each request-body schema's fields, as the validator checks them.
fn rules() -> Vec<(&'static str, Vec<(&'static str, Value)>)> {
    vec![
        (
            "DialoutRequest",
            vec![
                ("target", pattern(p::TARGET, 512)),
                ("caller", pattern(p::CALLER, 64)),
                ("callerHost", pattern(p::HOST, 253)),
                (
                    "callerDisplayName",
                    json!({"type": "string", "maxLength": 128, "pattern": p::DISPLAY_NAME}),
                ),
                ("notifyUrl", pattern(p::HTTP_URL, 2048)),
                (
                    "notifyEvents",
                    json!({"type": "array", "maxItems": 8, "items": {"type": "string",
                    "enum": outdial_core::dialout::NOTIFY_EVENTS}}),
                ),
            ],
        ),
        (
            "Bot",
            vec![
                ("botUrl", pattern(p::BOT_URL, 2048)),
                ("token", text(1, 4096)),
                ("oauthTokenUrl", pattern(p::HTTP_URL, 2048)),
                ("oauthClientId", text(1, 256)),
                ("oauthClientSecret", text(1, 1024)),
                ("oauthScope", text(1, 1024)),
                ("trunk", pattern(p::NAME, 64)),
                ("language", pattern(p::LANGUAGE, 35)),
                (
                    "sttProvider",
                    json!({"type": "string", "enum": outdial_core::speech::SttEngine::NAMES}),
                ),
                (
                    "ttsProvider",
                    json!({"type": "string", "enum": outdial_core::speech::TtsEngine::NAMES}),
                ),
                (
                    "endpointing",
                    json!({"type": "string", "enum": outdial_core::speech::Endpointing::NAMES}),
                ),
                ("sttModel", pattern("^[A-Za-z0-9_.:-]{1,128}$", 128)),
                ("speechCredentials", speech_credentials()),
                ("voiceName", text(1, 128)),
                ("authorizationTag", text(1, 128)),
                ("dialoutAuthScope", text(1, 256)),
                ("dialoutAllowedCallers", names(p::SIP_USER, 1000)),
                ("dialoutLimitPerSecond", number(0.0, 10_000.0)),
                ("dialoutMaxConcurrentCalls", integer(0, 300)),
                ("dialoutConcurrentCallsExpirationSeconds", integer(10, 3600)),
                ("sendEventsToBot", names(p::TOKEN, 32)),
                ("sipHeadersToBot", names(p::TOKEN, 32)),
                ("notifySecret", text(1, 256)),
                ("fallbackPrompt", text(1, 2000)),
                ("directLineUrl", pattern(p::HTTP_URL, 2048)),
                ("botSecret", text(1, 1024)),
                ("projectId", pattern(p::RESOURCE_ID, 128)),
                ("location", pattern(p::RESOURCE_ID, 64)),
                ("agentId", pattern(p::RESOURCE_ID, 128)),
                ("environment", pattern(p::RESOURCE_ID, 128)),
                ("languageCode", pattern(p::LANGUAGE, 35)),
                ("apiEndpoint", pattern(p::HTTP_URL, 2048)),
                ("endpointerSensitivity", integer(0, 100)),
                ("noSpeechTimeoutSec", number(0.5, 60.0)),
                ("credentials", service_account()),
            ],
        ),
        (
            "MachineDetectionConfig",
            vec![
                ("initialSilenceMs", integer(500, 10_000)),
                ("greetingMs", integer(300, 10_000)),
                ("afterGreetingSilenceMs", integer(200, 5_000)),
                ("totalAnalysisMs", integer(1_000, 30_000)),
                ("minWordLengthMs", integer(20, 1_000)),
                ("betweenWordsSilenceMs", integer(20, 1_000)),
                ("maximumWords", integer(1, 20)),
                ("maximumWordLengthMs", integer(500, 10_000)),
                ("vadThreshold", number(0.05, 0.95)),
                ("minVoiceLevelDb", number(-80.0, -10.0)),
                ("beepMinHz", integer(300, 1199)),
                ("beepMaxHz", integer(1200, 2200)),
                ("beepMinMs", integer(60, 499)),
                ("beepMaxMs", integer(500, 10_000)),
                ("secondOpinionMs", integer(0, 10_000)),
                ("humanRecheckMs", integer(0, 10_000)),
            ],
        ),
        (
            "Trunk",
            vec![
                ("address", pattern(p::SIP_ADDRESS, 512)),
                ("outboundProxy", pattern(p::SIP_ADDRESS, 512)),
                ("callerHost", pattern(p::HOST, 253)),
                ("username", text(1, 256)),
                ("password", text(1, 256)),
                ("realm", text(1, 256)),
                ("sessionIdHeader", text(1, 64)),
                ("maxCallsPerSecond", number(0.0, 100_000.0)),
                ("maxConcurrentCalls", integer(0, 1_000_000)),
                ("keepAliveSec", integer(0, 3600)),
                (
                    "sessionTimerSec",
                    json!({"anyOf": [{"type": "integer", "enum": [0]},
                    {"type": "integer", "minimum": 90, "maximum": 86_400}]}),
                ),
                (
                    "headers",
                    json!({"type": "object", "propertyNames": {"pattern": p::HEADER_NAME},
                    "additionalProperties": text(0, 1024)}),
                ),
                (
                    "codecs",
                    json!({"type": "array", "maxItems": 8, "items": {"type": "string",
                    "enum": outdial_core::trunk::CODECS}}),
                ),
                ("tlsCaFile", text(1, 4096)),
                ("tlsServerName", text(1, 253)),
            ],
        ),
        (
            "ApplicationInput",
            vec![
                ("clientId", pattern(p::CLIENT_ID, 128)),
                ("clientSecret", text(8, 256)),
                ("name", text(0, 128)),
                ("notifySecret", text(16, 256)),
            ],
        ),
        ("Policy", vec![("scope", pattern(p::SCOPE, 1024))]),
    ]
}

/// Request schemas: a copy of each schema that is also used in answers gets the rules (an answer may hold values
/// the rules' patterns do not generate, such as a configured `botUrl` with an IP address).
const INPUTS: [(&str, &str); 4] = [
    ("Bot", "BotInput"),
    ("Trunk", "TrunkInput"),
    ("Policy", "PolicyInput"),
    ("MachineDetectionConfig", "MachineDetectionConfigInput"),
];

/// The resources written by `POST` / `PUT` / `PATCH`: input schema, and its name field (taken from the path by
/// `PUT` and `PATCH`).
const RESOURCES: [(&str, &str); 3] = [
    ("BotInput", "name"),
    ("TrunkInput", "name"),
    ("ApplicationInput", "clientId"),
];

pub(crate) fn apply(doc: &mut Value) {
    let Some(schemas) = doc["components"]["schemas"].as_object_mut() else {
        return;
    };
    for (shared, input) in INPUTS {
        if let Some(s) = schemas.get(shared).cloned() {
            schemas.insert(input.into(), s);
        }
    }
    let rules = rules();
    for (schema, fields) in rules {
        let schema = INPUTS
            .iter()
            .find(|(shared, _)| *shared == schema)
            .map_or(schema, |(_, input)| input);
        let Some(s) = schemas.get_mut(schema).and_then(Value::as_object_mut) else {
            continue;
        };
        // Nested objects refuse unknown fields too.
        s.insert("additionalProperties".into(), Value::Bool(false));
        let Some(props) = s.get_mut("properties").and_then(Value::as_object_mut) else {
            continue;
        };
        for (field, rule) in fields {
            props.insert(field.into(), rule);
        }
        for v in props.values_mut() {
            retarget(v);
        }
    }
    // What each bot type requires (docs/bots.md): `botUrl` for the AudioCodes Bot API, the agent for Dialogflow.
    if let Some(bot) = schemas.get_mut("BotInput").and_then(Value::as_object_mut) {
        let of = |t: &[&str]| json!({"type": {"enum": t}});
        bot.insert(
            "anyOf".into(),
            json!([{"required": ["botUrl"], "properties": of(&["ac-api", "ac-api-streaming"])},
                   {"required": ["type"], "properties": of(&["directline"])},
                   {"required": ["type", "projectId", "agentId"], "properties": of(&["dialogflow-cx"])},
                   {"required": ["type", "projectId"], "properties": of(&["dialogflow-es"])}]),
        );
    }
    let mut extra = Map::new();
    for (schema, name) in RESOURCES {
        let Some(base) = schemas.get(schema).cloned() else {
            continue;
        };
        extra.insert(format!("{schema}Replacement"), replacement(&base, name));
        extra.insert(format!("{schema}Patch"), patch(&base, name));
    }
    if let Some(base) = schemas.get("MachineDetectionConfigInput") {
        extra.insert("MachineDetectionConfigInputPatch".into(), patch(base, ""));
    }
    schemas.extend(extra);
    // A new application needs its secret (a replacement keeps the old one when it has none).
    if let Some(req) = schemas
        .get_mut("ApplicationInput")
        .and_then(|s| s.get_mut("required"))
        .and_then(Value::as_array_mut)
    {
        req.push("clientSecret".into());
    }
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(ops) = item.as_object_mut() else {
            continue;
        };
        for (method, op) in ops.iter_mut() {
            rewire(path, method, op);
        }
    }
}

/// A `$ref` to a shared schema, pointed at its input copy (also inside arrays and `oneOf`).
fn retarget(v: &mut Value) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get_mut("$ref")
                && let Some((_, input)) = INPUTS
                    .iter()
                    .find(|(shared, _)| r.as_str() == format!("#/components/schemas/{shared}"))
            {
                *r = format!("#/components/schemas/{input}");
            }
            for (_, inner) in m.iter_mut() {
                retarget(inner);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(retarget),
        _ => {}
    }
}

/// The `PUT` body: the object without its name (the path's; a `name` equal to it is tolerated).
fn replacement(base: &Value, name: &str) -> Value {
    let mut s = base.clone();
    if let Some(props) = s["properties"].as_object_mut() {
        props.remove(name);
    }
    if let Some(req) = s["required"].as_array_mut() {
        req.retain(|r| r != name);
    }
    s
}

/// A member of a merge patch that may be `null` (removing it), with `null` allowed inside nested objects too
/// (RFC 7396 merges them member by member).
fn nullable(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(Value::String(r)) = v.get_mut("$ref")
        && r.ends_with("MachineDetectionConfigInput")
    {
        r.push_str("Patch");
    }
    if let Some(extra) = v.get_mut("additionalProperties")
        && extra.is_object()
    {
        *extra = json!({"oneOf": [extra.clone(), {"type": "null"}]});
    }
    json!({"oneOf": [v, {"type": "null"}]})
}

/// An inline object of a merge patch: each member that is not required may be `null` (absent), at every depth.
fn merged_members(v: &mut Value) {
    let required: Vec<String> = v["required"]
        .as_array()
        .map(|r| r.iter().filter_map(|x| x.as_str().map(String::from)).collect())
        .unwrap_or_default();
    if let Some(props) = v.get_mut("properties").and_then(Value::as_object_mut) {
        for (k, p) in props.iter_mut() {
            merged_members(p);
            if !required.contains(k) {
                *p = json!({"oneOf": [p.clone(), {"type": "null"}]});
            }
        }
    }
}

/// The `PATCH` body (RFC 7396): every field optional, `null` removes an optional field without a condition.
fn patch(base: &Value, name: &str) -> Value {
    let mut s = replacement(base, name);
    let required: Vec<String> = s["required"]
        .as_array()
        .map(|r| r.iter().filter_map(|x| x.as_str().map(String::from)).collect())
        .unwrap_or_default();
    if let Some(o) = s.as_object_mut() {
        o.remove("required");
        o.remove("anyOf");
    }
    if let Some(props) = s["properties"].as_object_mut() {
        for (k, v) in props.iter_mut() {
            // Required fields, and `botUrl` (required by most bot types), cannot be removed.
            if required.contains(k) || k == "botUrl" {
                continue;
            }
            // The speech credentials are replaced whole, as a merge patch applied to nothing (docs/speech.md): a
            // `null` member that is not required, at any depth, is as if absent (`{"elevenlabs": null}`).
            if k == "speechCredentials" {
                merged_members(v);
            }
            *v = nullable(v);
        }
    }
    s
}

fn conflict() -> Value {
    json!({"description": "The body names a bot or trunk that does not exist, or conflicts with another object \
                           (a second default trunk, an existing name)",
           "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}})
}

fn rewire(path: &str, method: &str, op: &mut Value) {
    let resource = match path {
        "/api/v1/bots" | "/api/v1/bots/{name}" => "BotInput",
        "/api/v1/trunks" | "/api/v1/trunks/{name}" => "TrunkInput",
        "/api/v1/applications" | "/api/v1/applications/{clientId}" => "ApplicationInput",
        "/api/v1/actions/dialout" => {
            for param in op["parameters"].as_array_mut().into_iter().flatten() {
                if param["name"] == "Idempotency-Key" {
                    param["schema"] = json!({"type": "string", "pattern": "^[!-~]{1,255}$"});
                }
            }
            return;
        }
        "/oauth/token" => {
            op["requestBody"]["required"] = Value::Bool(true);
            op["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"] = json!({
                "type": "object", "required": ["grant_type"],
                "properties": {
                    "grant_type": {"type": "string", "enum": ["client_credentials"]},
                    "scope": {"type": "string", "description": "space-separated OAuth scopes"},
                },
                "description": "client_id and client_secret may be given here instead of an HTTP Basic header, \
                                never both."});
            return;
        }
        "/api/v1/conversations" => {
            for param in op["parameters"].as_array_mut().into_iter().flatten() {
                match param["name"].as_str() {
                    Some("since" | "until") => {
                        param["schema"] = json!({"type": "string", "format": "date-time"})
                    }
                    Some("cursor") => param["schema"] = json!({"type": "string", "pattern": CURSOR}),
                    _ => {}
                }
            }
            return;
        }
        _ => return,
    };
    let (kind, media) = match method {
        "post" => ("", "application/json"),
        "put" => ("Replacement", "application/json"),
        "patch" => ("Patch", "application/merge-patch+json"),
        _ => return,
    };
    if op["requestBody"]["content"].get(media).is_none() {
        return;
    }
    op["requestBody"]["content"][media]["schema"] =
        json!({"$ref": format!("#/components/schemas/{resource}{kind}")});
    if let Some(responses) = op["responses"].as_object_mut() {
        responses.entry("409").or_insert_with(conflict);
    }
}

/// A conversation list cursor: `<creation time in ms>.<conversation id>`.
pub(crate) const CURSOR: &str =
    "^[0-9]{1,15}\\.[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$";
