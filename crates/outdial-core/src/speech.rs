//! A bot's speech settings (docs/speech.md): the engine that recognises the person's words (`sttProvider`), the
//! one that speaks the bot's messages (`ttsProvider`), and the cloud providers' credentials (`speechCredentials`,
//! write-only, sealed whole at rest).

use crate::validate::{Obj, Result, check_url};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// Who recognises the person's speech.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum SttEngine {
    /// Deepgram's streaming recognition over WebSocket (`/v1/listen`).
    Deepgram,
    /// Azure Speech (REST recognition of each utterance the gateway's endpointer cuts).
    Azure,
    /// Google Cloud Speech-to-Text (REST `speech:recognize` of each utterance).
    Google,
    /// Moonshine base on this node (English only; no network, no account): its encoder reads the utterance's own
    /// length, so short answers are recognised several times faster than by Whisper (docs/speech.md, "Local
    /// recognisers").
    Moonshine,
    /// Whisper tiny on this node (no network, no account). A value stored by an older release that names no
    /// engine of this one reads as this.
    #[default]
    #[serde(other)]
    Whisper,
}

/// Who speaks the bot's messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum TtsEngine {
    /// The Piper neural voice on this node, when installed (espeak-ng otherwise).
    Piper,
    /// Deepgram Aura (`/v1/speak`).
    Deepgram,
    /// Azure Speech (REST, SSML).
    Azure,
    /// Google Cloud Text-to-Speech (`text:synthesize`).
    Google,
    /// ElevenLabs (streaming `text-to-speech/{voice}/stream`).
    Elevenlabs,
    /// espeak-ng on this node. A value stored by an older release that names no engine of this one reads as this.
    #[default]
    #[serde(other)]
    Espeak,
}

/// How the end of the person's turn is found (docs/speech.md, "Turn-taking").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum Endpointing {
    /// Only the end-of-utterance silence (`speech.end_silence_ms`, or `endpointerSensitivity`) ends a turn: for
    /// bots that take numbers or spelled words, where people pause after complete-looking fragments.
    Fixed,
    /// A short pause (`speech.early_end_ms`, 200 ms) ends the turn when the words so far make a complete
    /// sentence; otherwise the full end-of-utterance silence does. A value stored by an older release that names
    /// no mode of this one reads as this.
    #[default]
    #[serde(other)]
    Smart,
}

impl Endpointing {
    pub const NAMES: [&str; 2] = ["smart", "fixed"];
}

impl SttEngine {
    pub const NAMES: [&str; 5] = ["whisper", "moonshine", "deepgram", "azure", "google"];

    /// Whether it runs on this node.
    pub fn is_local(self) -> bool {
        matches!(self, SttEngine::Whisper | SttEngine::Moonshine)
    }

    /// The name a bot gives it.
    pub fn as_str(self) -> &'static str {
        match self {
            SttEngine::Deepgram => "deepgram",
            SttEngine::Azure => "azure",
            SttEngine::Google => "google",
            SttEngine::Whisper => "whisper",
            SttEngine::Moonshine => "moonshine",
        }
    }
}

impl TtsEngine {
    pub const NAMES: [&str; 6] = ["espeak", "piper", "deepgram", "azure", "google", "elevenlabs"];

    pub fn is_local(self) -> bool {
        matches!(self, TtsEngine::Espeak | TtsEngine::Piper)
    }
}

/// The speech fields of a bot body, checked.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Speech {
    pub stt_provider: Option<SttEngine>,
    pub tts_provider: Option<TtsEngine>,
    pub stt_model: Option<String>,
    pub speech_credentials: Option<Value>,
    pub tts_fallback: Option<bool>,
    pub endpointing: Option<Endpointing>,
}

/// The fields this module reads.
pub const FIELDS: [&str; 6] = [
    "sttProvider",
    "ttsProvider",
    "sttModel",
    "speechCredentials",
    "ttsFallback",
    "endpointing",
];

fn engine<T: serde::de::DeserializeOwned>(o: &Obj<'_>, name: &str, names: &[&str]) -> Result<Option<T>> {
    Ok(o.one_of(name, names)?
        .and_then(|s| serde_json::from_value(Value::String(s.into())).ok()))
}

/// Reads the speech fields of a bot body.
pub fn parse(o: &Obj<'_>) -> Result<Speech> {
    let stt_model = o.string("sttModel", 1, 128)?;
    if let Some(m) = stt_model
        && !m
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
    {
        return Err(o.error(
            "sttModel",
            "should contain only letters, digits, '-', '_', '.' and ':'",
        ));
    }
    Ok(Speech {
        stt_provider: engine(o, "sttProvider", &SttEngine::NAMES)?,
        tts_provider: engine(o, "ttsProvider", &TtsEngine::NAMES)?,
        stt_model: stt_model.map(str::to_string),
        speech_credentials: o.value("speechCredentials").map(credentials).transpose()?,
        tts_fallback: o.boolean("ttsFallback")?,
        endpointing: engine(o, "endpointing", &Endpointing::NAMES)?,
    })
}

/// `speechCredentials`: one object a provider, each with its secret and an optional `url` replacing the
/// provider's public address (a private endpoint, a regional one, a proxy).
fn credentials(v: &Value) -> Result<Value> {
    let c = Obj::new(v, "speechCredentials")?;
    c.only(&["deepgram", "azure", "google", "elevenlabs"])?;
    let url = |p: &Obj<'_>| -> Result<()> {
        if let Some(u) = p.string("url", 1, 2048)? {
            check_url(u, &["http", "https", "ws", "wss"]).map_err(|m| p.error("url", m))?;
        }
        Ok(())
    };
    let key = |p: &Obj<'_>, name: &str| -> Result<()> {
        p.required(&[name])?;
        p.text(name, 8, 1024)?;
        Ok(())
    };
    if let Some(d) = c.value("deepgram") {
        let p = Obj::new(d, "speechCredentials/deepgram")?;
        p.only(&["apiKey", "url"])?;
        key(&p, "apiKey")?;
        url(&p)?;
    }
    if let Some(a) = c.value("azure") {
        let p = Obj::new(a, "speechCredentials/azure")?;
        p.only(&["key", "region", "url"])?;
        key(&p, "key")?;
        url(&p)?;
        match p.string("region", 2, 64)? {
            Some(r) if !r.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()) => {
                return Err(p.error("region", "should be an Azure region such as westeurope"));
            }
            None if p.value("url").is_none() => p.required(&["region"])?,
            _ => {}
        }
    }
    if let Some(g) = c.value("google") {
        let p = Obj::new(g, "speechCredentials/google")?;
        p.only(&["serviceAccount", "url"])?;
        url(&p)?;
        if let Some(sa) = p.value("serviceAccount") {
            crate::frameworks::service_account(sa, "speechCredentials/google/serviceAccount")?;
        }
    }
    if let Some(e) = c.value("elevenlabs") {
        let p = Obj::new(e, "speechCredentials/elevenlabs")?;
        p.only(&["apiKey", "url", "modelId"])?;
        key(&p, "apiKey")?;
        url(&p)?;
        p.string("modelId", 1, 128)?;
    }
    Ok(v.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse_body(v: Value) -> std::result::Result<Speech, String> {
        let o = Obj::new(&v, "").unwrap();
        parse(&o).map_err(|e| e.to_string())
    }

    #[test]
    fn engines_are_named_and_checked() {
        let s = parse_body(json!({"sttProvider": "deepgram", "ttsProvider": "elevenlabs"})).unwrap();
        assert_eq!(s.stt_provider, Some(SttEngine::Deepgram));
        assert_eq!(s.tts_provider, Some(TtsEngine::Elevenlabs));
        let e = parse_body(json!({"sttProvider": "watson"})).unwrap_err();
        assert!(e.contains("sttProvider should be equal to one of"), "{e}");
        // What an older release stored reads as the local engine.
        let old: TtsEngine = serde_json::from_value(json!("festival")).unwrap();
        assert_eq!(old, TtsEngine::Espeak);
    }

    #[test]
    fn endpointing_is_smart_or_fixed() {
        assert_eq!(parse_body(json!({})).unwrap().endpointing, None);
        let s = parse_body(json!({"endpointing": "fixed"})).unwrap();
        assert_eq!(s.endpointing, Some(Endpointing::Fixed));
        let e = parse_body(json!({"endpointing": "sometimes"})).unwrap_err();
        assert_eq!(
            e,
            "request/endpointing should be equal to one of the allowed values: smart, fixed"
        );
        assert_eq!(Endpointing::default(), Endpointing::Smart);
    }

    #[test]
    fn credentials_name_the_field_at_fault() {
        let e = parse_body(json!({"speechCredentials": {"deepgram": {}}})).unwrap_err();
        assert_eq!(
            e,
            "request/speechCredentials/deepgram should have required property 'apiKey'"
        );
        let e = parse_body(json!({"speechCredentials": {"azure": {"key": "0123456789"}}})).unwrap_err();
        assert_eq!(
            e,
            "request/speechCredentials/azure should have required property 'region'"
        );
        let e = parse_body(
            json!({"speechCredentials": {"azure": {"key": "0123456789", "region": "West Europe"}}}),
        )
        .unwrap_err();
        assert!(e.contains("should be an Azure region"), "{e}");
        let e = parse_body(json!({"speechCredentials": {"watson": {}}})).unwrap_err();
        assert!(e.contains("should NOT have additional properties"), "{e}");
        let e = parse_body(
            json!({"speechCredentials": {"elevenlabs": {"apiKey": "0123456789", "url": "ftp://x"}}}),
        )
        .unwrap_err();
        assert!(e.starts_with("request/speechCredentials/elevenlabs/url"), "{e}");
        let ok = json!({"speechCredentials": {"azure": {"key": "0123456789", "url": "http://127.0.0.1:9"}}});
        assert!(parse_body(ok).is_ok());
    }
}
