//! The settings of the bot frameworks reached through a vendor API (docs/bots.md): Microsoft Bot Framework over
//! Direct Line 3.0 (`directline`) and Google Dialogflow CX / ES over REST `detectIntent` (`dialogflow-cx`,
//! `dialogflow-es`). The names are VoiceAI Connect's, so bot configurations are portable.

use crate::bot::BotType;
use crate::validate::{Obj, Result, check_url};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// Which Direct Line service a `directline` bot is reached through (docs/bots.md, "Microsoft Bot Framework").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "kebab-case")]
pub enum DirectLineFlavor {
    /// Direct Line 3.0 as Azure runs it: `/v3/directline/...`, the WebSocket stream, string watermarks.
    #[default]
    Standard,
    /// The npm package `offline-directline`, which runs botbuilder bots locally: paths without `/v3`, polling
    /// only, integer watermarks.
    OfflineDirectline,
}

pub const DIRECT_LINE_URL: &str = "https://directline.botframework.com";

/// The framework fields of a bot body, checked for its type.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Frameworks {
    pub direct_line_url: Option<String>,
    pub bot_secret: Option<String>,
    pub direct_line_flavor: DirectLineFlavor,
    pub project_id: Option<String>,
    pub location: Option<String>,
    pub agent_id: Option<String>,
    pub environment: Option<String>,
    pub language_code: Option<String>,
    pub credentials: Option<Value>,
    pub api_endpoint: Option<String>,
    pub endpointer_sensitivity: Option<u8>,
    pub no_speech_timeout_sec: Option<f64>,
}

/// The fields this module reads.
pub const FIELDS: [&str; 12] = [
    "endpointerSensitivity",
    "noSpeechTimeoutSec",
    "directLineUrl",
    "botSecret",
    "directLineFlavor",
    "projectId",
    "location",
    "agentId",
    "environment",
    "languageCode",
    "credentials",
    "apiEndpoint",
];

/// `[a-z0-9-]` words as Google names projects, locations, agents and environments (`[A-Za-z0-9_-]` for ids).
fn is_resource_id(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Reads the framework fields of a bot body of type `t`.
pub fn parse(o: &Obj<'_>, t: BotType) -> Result<Frameworks> {
    let id = |name: &str, max: usize| -> Result<Option<String>> {
        match o.string(name, 1, max)? {
            Some(s) if !is_resource_id(s) => {
                Err(o.error(name, "should contain only letters, digits, '-' and '_'"))
            }
            other => Ok(other.map(str::to_string)),
        }
    };
    let url = |name: &str| -> Result<Option<String>> {
        let u = o.string(name, 1, 2048)?;
        if let Some(u) = u {
            check_url(u, &["http", "https"]).map_err(|m| o.error(name, m))?;
        }
        Ok(u.map(str::to_string))
    };
    let f = Frameworks {
        direct_line_url: url("directLineUrl")?,
        bot_secret: o.text("botSecret", 1, 1024)?.map(str::to_string),
        direct_line_flavor: match o.one_of("directLineFlavor", &["standard", "offline-directline"])? {
            Some("offline-directline") => DirectLineFlavor::OfflineDirectline,
            _ => DirectLineFlavor::Standard,
        },
        project_id: id("projectId", 128)?,
        location: id("location", 64)?,
        agent_id: id("agentId", 128)?,
        environment: id("environment", 128)?,
        language_code: match o.string("languageCode", 2, 35)? {
            Some(l) if !l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') => {
                return Err(o.error("languageCode", "should be a BCP 47 language tag such as en-US"));
            }
            l => l.map(str::to_string),
        },
        credentials: o
            .value("credentials")
            .map(|v| service_account(v, "credentials"))
            .transpose()?,
        api_endpoint: url("apiEndpoint")?,
        endpointer_sensitivity: o.integer("endpointerSensitivity", 0, 100)?.map(|s| s as u8),
        no_speech_timeout_sec: o.number("noSpeechTimeoutSec", Some(0.5), Some(60.0))?,
    };
    // Secrets are not required: a PUT keeps the stored ones, `offline-directline` takes no secret, and a private
    // Dialogflow endpoint may authorise by itself. Without them, the service says so at the first request.
    match t {
        BotType::DialogflowCx => o.required(&["projectId", "agentId"])?,
        BotType::DialogflowEs => o.required(&["projectId"])?,
        _ => {}
    }
    Ok(f)
}

/// A service-account key as Google hands it out (JSON) at `path`: the fields outdial uses must be there.
pub(crate) fn service_account(v: &Value, path: &str) -> Result<Value> {
    let k = Obj::new(v, path)?;
    k.required(&["client_email", "private_key", "token_uri"])?;
    k.string("client_email", 3, 320)?;
    let key = k.string("private_key", 64, 16_384)?.unwrap_or_default();
    if !key.contains("-----BEGIN PRIVATE KEY-----") && !key.contains("-----BEGIN RSA PRIVATE KEY-----") {
        return Err(k.error(
            "private_key",
            "should be a PEM private key (-----BEGIN PRIVATE KEY-----)",
        ));
    }
    let token_uri = k.string("token_uri", 1, 2048)?.unwrap_or_default();
    check_url(token_uri, &["http", "https"]).map_err(|m| k.error("token_uri", m))?;
    if let Some(t) = k.string("type", 1, 64)?
        && t != "service_account"
    {
        return Err(k.error("type", "should be equal to 'service_account'"));
    }
    Ok(v.clone())
}
