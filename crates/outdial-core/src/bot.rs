//! Bots: connection settings and the outbound parameters of docs/configuration.md and docs/api.md.

use crate::frameworks::DirectLineFlavor;
use crate::validate::{Obj, Result, check_url, is_object_name};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
pub enum BotType {
    #[default]
    #[serde(rename = "ac-api")]
    AcApi,
    #[serde(rename = "ac-api-streaming")]
    AcApiStreaming,
    #[serde(rename = "directline")]
    DirectLine,
    #[serde(rename = "dialogflow-cx")]
    DialogflowCx,
    #[serde(rename = "dialogflow-es")]
    DialogflowEs,
}

/// What a streaming bot (`ac-api-streaming`) exchanges with the gateway (docs/bots.md, "Streaming bots").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum StreamingMode {
    /// The person's audio goes to the bot and the bot's audio to the person, unless the bot's `session.accepted`
    /// names no media format (then as `text`).
    #[default]
    Audio,
    /// Text both ways, as in the HTTP mode: the gateway recognises the person's speech and speaks the bot's
    /// messages.
    Text,
}

pub const BOT_TYPES: [&str; 5] = [
    "ac-api",
    "ac-api-streaming",
    "directline",
    "dialogflow-cx",
    "dialogflow-es",
];

/// A bot. Secret fields (`token`, `oauthClientSecret`, `notifySecret`) are write-only through the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Bot {
    /// Unique, 1–64 characters of `[A-Za-z0-9_.-]`.
    #[schema(pattern = "^[A-Za-z0-9_.-]{1,64}$")]
    pub name: String,
    #[serde(rename = "type", default)]
    pub bot_type: BotType,
    /// Where the bot is reached (required for `ac-api` and `ac-api-streaming`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bot_url: Option<String>,
    /// `ac-api-streaming` only: `audio` (default) or `text`.
    #[serde(default)]
    pub streaming_mode: StreamingMode,
    /// Bearer token sent to the bot (write-only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(write_only)]
    pub token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth_token_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth_client_id: Option<String>,
    /// Write-only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(write_only)]
    pub oauth_client_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth_scope: Option<String>,
    /// Trunk carrying this bot's calls; the default trunk when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trunk: Option<String>,
    #[serde(default = "default_language")]
    pub language: String,
    /// Who recognises the person's speech (docs/speech.md): `whisper` (local, the default), `deepgram`, `azure`,
    /// `google`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stt_provider: Option<crate::speech::SttEngine>,
    /// Who speaks the bot's messages: `espeak` (local, the default), `piper` (local neural voice, when installed),
    /// `deepgram`, `azure`, `google`, `elevenlabs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tts_provider: Option<crate::speech::TtsEngine>,
    /// The voice: an espeak-ng voice (`en-us+f3`), a Deepgram model (`aura-2-thalia-en`), an Azure voice
    /// (`en-US-JennyNeural`), a Google voice (`en-US-Standard-C`) or an ElevenLabs voice id; each engine's
    /// default for `language` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice_name: Option<String>,
    /// The recognition model of a cloud engine (Deepgram: `nova-2-phonecall` by default; Google: the API's default
    /// unless set, e.g. `telephony`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stt_model: Option<String>,
    /// The cloud speech providers' credentials, one object a provider (write-only; docs/speech.md):
    /// `deepgram: {apiKey, url?}`, `azure: {key, region, url?}`, `google: {serviceAccount?, url?}` (a Dialogflow
    /// bot's `credentials` when absent), `elevenlabs: {apiKey, modelId?, url?}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(write_only, value_type = Option<Object>)]
    pub speech_credentials: Option<Value>,
    /// A cloud text-to-speech request that fails twice is spoken by the local engine instead (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tts_fallback: Option<bool>,
    /// How the end of the person's turn is found: `smart` (default: a short pause after a complete sentence) or
    /// `fixed` (only the end-of-utterance silence).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpointing: Option<crate::speech::Endpointing>,
    /// Scope tag (`tag=<value>`) that policies use to cover a group of bots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_tag: Option<String>,
    /// Deprecated: OAuth scope a bearer token must carry to dial this bot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dialout_auth_scope: Option<String>,
    /// Allowed `caller` values; with exactly one, `caller` may be omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dialout_allowed_callers: Option<Vec<String>>,
    /// Dial requests per second (fractions allowed); 0 = no limit.
    #[serde(default)]
    pub dialout_limit_per_second: f64,
    /// 0–300; 0 = no limit.
    #[serde(default)]
    pub dialout_max_concurrent_calls: u32,
    /// 10–3600, default 1200.
    #[serde(default = "default_expiration")]
    pub dialout_concurrent_calls_expiration_seconds: u32,
    #[serde(default)]
    pub send_events_to_bot: Vec<String>,
    #[serde(default)]
    pub dialout_start_recognition_on_connect: bool,
    #[serde(default)]
    pub barge_in: bool,
    /// Key for `X-Outdial-Signature` on notifications of this bot's calls (write-only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(write_only)]
    pub notify_secret: Option<String>,
    /// Spoken when the bot cannot be reached at answer, before hanging up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_prompt: Option<String>,
    /// SIP headers of the answer whose values go to the bot in the start event.
    #[serde(default)]
    pub sip_headers_to_bot: Vec<String>,
    /// Tuning of machine detection for this bot's calls (defaults for absent fields; docs/configuration.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_detection_config: Option<crate::detection::MachineDetectionConfig>,
    /// `directline`: the Direct Line service (default `https://directline.botframework.com`; regional hosts such
    /// as `https://europe.directline.botframework.com`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direct_line_url: Option<String>,
    /// `directline`: the Direct Line channel's secret (write-only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(write_only)]
    pub bot_secret: Option<String>,
    /// `directline`: `standard` (Azure's Direct Line 3.0) or `offline-directline` (the npm package that runs
    /// botbuilder bots locally: no `/v3` in paths, polling, integer watermarks).
    #[serde(default)]
    pub direct_line_flavor: DirectLineFlavor,
    /// Dialogflow: the Google Cloud project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    /// Dialogflow: the agent's region (`global` by default; `us-central1`, `europe-west2`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Dialogflow CX: the agent's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// Dialogflow: the environment (draft when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// Dialogflow: the agent's language (`language` when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language_code: Option<String>,
    /// Dialogflow: the service account's JSON key, as an object (write-only). Tokens are fetched from its
    /// `token_uri`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(write_only, value_type = Option<Object>)]
    pub credentials: Option<Value>,
    /// Dialogflow: a base URL replacing `https://{location-}dialogflow.googleapis.com` (private endpoints).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_endpoint: Option<String>,
    /// How soon an utterance is taken as finished, 0–100 (Dialogflow CX's endpointer sensitivity; higher ends
    /// sooner): the silence that ends it is 1800 ms at 0, 600 ms at 75, 200 ms at 100. The gateway's
    /// `speech.end_silence_ms` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 100)]
    pub endpointer_sensitivity: Option<u8>,
    /// Seconds of silence after a prompt before `noUserInput` is sent (Dialogflow CX's no-speech timeout), until the
    /// bot sets `userNoInputTimeoutMS`; none by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_speech_timeout_sec: Option<f64>,
}

impl Bot {
    /// The silence that ends an utterance of this bot's calls, when the bot sets it (`endpointerSensitivity`).
    pub fn end_silence_ms(&self) -> Option<u32> {
        self.endpointer_sensitivity
            .map(|s| 200 + 16 * (100 - u32::from(s.min(100))))
    }

    /// Whether the bot lists this event in `sendEventsToBot`.
    pub fn wants_event(&self, name: &str) -> bool {
        self.send_events_to_bot.iter().any(|e| e == name)
    }
}

fn default_language() -> String {
    "en-US".into()
}
fn default_expiration() -> u32 {
    1200
}

/// Fields that are never returned.
pub const BOT_SECRETS: [&str; 6] = [
    "token",
    "oauthClientSecret",
    "notifySecret",
    "botSecret",
    "credentials",
    "speechCredentials",
];

const BOT_FIELDS: [&str; 25] = [
    "machineDetectionConfig",
    "streamingMode",
    "name",
    "type",
    "botUrl",
    "token",
    "oauthTokenUrl",
    "oauthClientId",
    "oauthClientSecret",
    "oauthScope",
    "trunk",
    "language",
    "voiceName",
    "authorizationTag",
    "dialoutAuthScope",
    "dialoutAllowedCallers",
    "dialoutLimitPerSecond",
    "dialoutMaxConcurrentCalls",
    "dialoutConcurrentCallsExpirationSeconds",
    "sendEventsToBot",
    "dialoutStartRecognitionOnConnect",
    "bargeIn",
    "notifySecret",
    "fallbackPrompt",
    "sipHeadersToBot",
];

/// SIP user-part characters (RFC 3261 `user`: unreserved, escaped, user-unreserved).
pub fn is_sip_user(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.!~*'()&=+$,;?/%".contains(&b))
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

impl Bot {
    /// Validates a bot body (API or configuration file) and builds the bot.
    pub fn parse(v: &Value) -> Result<Bot> {
        let o = Obj::new(v, "")?;
        o.required(&["name"])?;
        o.only(
            &[
                &BOT_FIELDS[..],
                &crate::frameworks::FIELDS[..],
                &crate::speech::FIELDS[..],
            ]
            .concat(),
        )?;
        let name = o.string("name", 1, 64)?.unwrap_or_default();
        if !is_object_name(name) {
            return Err(o.error("name", "should match pattern \"^[A-Za-z0-9_.-]{1,64}$\""));
        }
        let bot_type = match o.one_of("type", &BOT_TYPES)? {
            Some(t) => serde_json::from_value(Value::String(t.into())).unwrap_or_default(),
            None => BotType::AcApi,
        };
        let bot_url = o.string("botUrl", 1, 2048)?;
        if let Some(u) = bot_url {
            check_url(u, &["http", "https", "ws", "wss"]).map_err(|m| o.error("botUrl", m))?;
        } else if matches!(bot_type, BotType::AcApi | BotType::AcApiStreaming) {
            return Err(o.error("", "should have required property 'botUrl'"));
        }
        let fw = crate::frameworks::parse(&o, bot_type)?;
        let speech = crate::speech::parse(&o)?;
        let streaming_mode = match o.one_of("streamingMode", &["audio", "text"])? {
            Some("text") => StreamingMode::Text,
            _ => StreamingMode::Audio,
        };
        let oauth_token_url = o.string("oauthTokenUrl", 1, 2048)?;
        if let Some(u) = oauth_token_url {
            check_url(u, &["http", "https"]).map_err(|m| o.error("oauthTokenUrl", m))?;
        }
        let opt = |name: &str, max: usize| -> Result<Option<String>> {
            Ok(o.text(name, 1, max)?.map(str::to_string))
        };
        let trunk = o.string("trunk", 1, 64)?;
        if let Some(t) = trunk
            && !is_object_name(t)
        {
            return Err(o.error("trunk", "should match pattern \"^[A-Za-z0-9_.-]{1,64}$\""));
        }
        let language = o.string("language", 2, 35)?.unwrap_or("en-US");
        if !language.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(o.error("language", "should be a BCP 47 language tag such as en-US"));
        }
        let callers = o.strings("dialoutAllowedCallers", 1000, |s| {
            if is_sip_user(s) {
                Ok(())
            } else {
                Err("should contain only SIP user-part characters".into())
            }
        })?;
        let events = o.strings("sendEventsToBot", 32, |s| {
            if is_token(s) && s.len() <= 64 {
                Ok(())
            } else {
                Err("should be an event name".into())
            }
        })?;
        let headers = o.strings("sipHeadersToBot", 32, |s| {
            if is_token(s) && s.len() <= 64 {
                Ok(())
            } else {
                Err("should be a SIP header name".into())
            }
        })?;
        let expiration = o
            .integer("dialoutConcurrentCallsExpirationSeconds", 10, 3600)?
            .unwrap_or(1200);
        let max_calls = o.integer("dialoutMaxConcurrentCalls", 0, 300)?.unwrap_or(0);
        Ok(Bot {
            name: name.to_string(),
            bot_type,
            bot_url: bot_url.map(str::to_string),
            streaming_mode,
            token: opt("token", 4096)?,
            oauth_token_url: oauth_token_url.map(str::to_string),
            oauth_client_id: opt("oauthClientId", 256)?,
            oauth_client_secret: opt("oauthClientSecret", 1024)?,
            oauth_scope: opt("oauthScope", 1024)?,
            trunk: trunk.map(str::to_string),
            language: language.to_string(),
            stt_provider: speech.stt_provider,
            tts_provider: speech.tts_provider,
            voice_name: opt("voiceName", 128)?,
            stt_model: speech.stt_model,
            speech_credentials: speech.speech_credentials,
            tts_fallback: speech.tts_fallback,
            endpointing: speech.endpointing,
            authorization_tag: opt("authorizationTag", 128)?,
            dialout_auth_scope: opt("dialoutAuthScope", 256)?,
            dialout_allowed_callers: callers,
            dialout_limit_per_second: o
                .number("dialoutLimitPerSecond", Some(0.0), Some(10_000.0))?
                .unwrap_or(0.0),
            dialout_max_concurrent_calls: max_calls as u32,
            dialout_concurrent_calls_expiration_seconds: expiration as u32,
            send_events_to_bot: events.unwrap_or_default(),
            dialout_start_recognition_on_connect: o
                .boolean("dialoutStartRecognitionOnConnect")?
                .unwrap_or(false),
            barge_in: o.boolean("bargeIn")?.unwrap_or(false),
            notify_secret: opt("notifySecret", 256)?,
            machine_detection_config: o
                .value("machineDetectionConfig")
                .map(|v| crate::detection::MachineDetectionConfig::parse(v, "machineDetectionConfig"))
                .transpose()?,
            fallback_prompt: opt("fallbackPrompt", 2000)?,
            sip_headers_to_bot: headers.unwrap_or_default(),
            direct_line_url: fw.direct_line_url,
            bot_secret: fw.bot_secret,
            direct_line_flavor: fw.direct_line_flavor,
            project_id: fw.project_id,
            location: fw.location,
            agent_id: fw.agent_id,
            environment: fw.environment,
            language_code: fw.language_code,
            credentials: fw.credentials,
            api_endpoint: fw.api_endpoint,
            endpointer_sensitivity: fw.endpointer_sensitivity,
            no_speech_timeout_sec: fw.no_speech_timeout_sec,
        })
    }

    /// The bot as the API returns it: secret fields removed.
    pub fn view(&self) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Value::Object(m) = &mut v {
            for s in BOT_SECRETS {
                m.remove(s);
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> std::result::Result<Bot, String> {
        Bot::parse(&v).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_and_ranges() {
        let b = parse(json!({"name": "Bot1", "botUrl": "https://bot.example/api"})).unwrap();
        assert_eq!(b.dialout_concurrent_calls_expiration_seconds, 1200);
        assert_eq!(b.dialout_limit_per_second, 0.0);
        assert_eq!(b.language, "en-US");
        let base = json!({"name": "Bot1", "botUrl": "https://bot.example/api"});
        let with = |k: &str, v: Value| {
            let mut b = base.clone();
            b[k] = v;
            parse(b)
        };
        assert_eq!(
            with("dialoutMaxConcurrentCalls", json!(301)).unwrap_err(),
            "request/dialoutMaxConcurrentCalls should be <= 300"
        );
        assert_eq!(
            with("dialoutConcurrentCallsExpirationSeconds", json!(9)).unwrap_err(),
            "request/dialoutConcurrentCallsExpirationSeconds should be >= 10"
        );
        assert_eq!(
            with("machineDetectionConfig", json!({"greetingMs": 100})).unwrap_err(),
            "request/machineDetectionConfig/greetingMs should be >= 300"
        );
        let tuned = with("machineDetectionConfig", json!({"greetingMs": 2200})).unwrap();
        let cfg = tuned.machine_detection_config.unwrap();
        assert_eq!(
            (cfg.greeting_ms, cfg.maximum_words),
            (2200, 6),
            "absent fields keep their defaults"
        );
        assert_eq!(
            with("dialoutLimitPerSecond", json!(-1)).unwrap_err(),
            "request/dialoutLimitPerSecond should be >= 0"
        );
        assert_eq!(
            with("dialoutLimitPerSecond", json!(0.1))
                .unwrap()
                .dialout_limit_per_second,
            0.1
        );
        assert_eq!(
            with("bargeIn", json!("yes")).unwrap_err(),
            "request/bargeIn should be boolean"
        );
        assert_eq!(
            with("dialoutAllowedCallers", json!(["1-800", "a b"])).unwrap_err(),
            "request/dialoutAllowedCallers/1 should contain only SIP user-part characters"
        );
        assert_eq!(
            with("colour", json!(1)).unwrap_err(),
            "request should NOT have additional properties ('colour')"
        );
        assert_eq!(
            parse(json!({"name": "B"})).unwrap_err(),
            "request should have required property 'botUrl'"
        );
        assert_eq!(
            parse(json!({"name": "a b", "botUrl": "http://x"})).unwrap_err(),
            "request/name should match pattern \"^[A-Za-z0-9_.-]{1,64}$\""
        );
    }

    #[test]
    fn the_endpointer_sensitivity_sets_the_end_of_an_utterance() {
        let with = |s: Value| {
            parse(json!({"name": "B", "type": "dialogflow-es", "projectId": "p", "endpointerSensitivity": s}))
        };
        let ms = |s: u64| with(json!(s)).unwrap().end_silence_ms();
        assert_eq!((ms(0), ms(75), ms(100)), (Some(1800), Some(600), Some(200)));
        assert_eq!(
            with(json!(101)).unwrap_err(),
            "request/endpointerSensitivity should be <= 100"
        );
        let plain = parse(json!({"name": "B", "botUrl": "http://x"})).unwrap();
        assert_eq!(plain.end_silence_ms(), None, "the gateway's setting");
    }

    #[test]
    fn view_hides_secrets() {
        let b = parse(
            json!({"name": "B", "botUrl": "http://x", "token": "t0k", "notifySecret": "0123456789abcdef"}),
        )
        .unwrap();
        let v = b.view();
        assert!(v.get("token").is_none() && v.get("notifySecret").is_none());
        assert_eq!(v["name"], "B");
    }
}
