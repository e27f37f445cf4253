//! ElevenLabs (docs/speech.md, "ElevenLabs"): synthesis over HTTP from the streaming endpoint
//! (`POST /v1/text-to-speech/{voice_id}/stream?output_format=ulaw_8000`); each piece of µ-law audio is played as it
//! arrives. Auth: `xi-api-key`.

use super::{Cloud, base, section, stream_ulaw, text, whole_ulaw};
use crate::{SpeechError, TtsProvider};
use serde_json::{Value, json};
use url::Url;

const SECRET: &str = "speechCredentials.elevenlabs.apiKey";
pub const PUBLIC: &str = "https://api.elevenlabs.io";
/// A premade voice every account has ("Rachel"), when the bot names none.
pub const DEFAULT_VOICE: &str = "21m00Tcm4TlvDq8ikWAM";
const DEFAULT_MODEL: &str = "eleven_flash_v2_5";

#[derive(Debug, Clone)]
pub struct ElevenLabs {
    cloud: Cloud,
    key: String,
    base: Url,
    model: String,
}

impl ElevenLabs {
    pub fn new(cloud: Cloud, credentials: Option<&Value>) -> Result<Self, SpeechError> {
        let s = section(credentials, "elevenlabs")?;
        Ok(ElevenLabs {
            key: text(s, "apiKey")
                .ok_or_else(|| SpeechError::Auth(format!("no {SECRET}")))?
                .to_string(),
            base: base(s, PUBLIC)?,
            model: text(s, "modelId").unwrap_or(DEFAULT_MODEL).to_string(),
            cloud,
        })
    }
}

impl ElevenLabs {
    fn request(
        &self,
        text: &str,
        language: &str,
        voice: Option<&str>,
    ) -> Result<reqwest::RequestBuilder, SpeechError> {
        let voice = voice.unwrap_or(DEFAULT_VOICE);
        if !voice.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(SpeechError::Rejected(
                "an ElevenLabs voiceName is a voice id (letters and digits)".into(),
            ));
        }
        let mut u = self.base.clone();
        u.set_path(&format!("/v1/text-to-speech/{voice}/stream"));
        u.query_pairs_mut().append_pair("output_format", "ulaw_8000");
        let mut body = json!({"text": crate::plain_text(text), "model_id": self.model});
        if let Some(code) = language.split('-').next().filter(|c| c.len() == 2) {
            body["language_code"] = json!(code);
        }
        let req = self
            .cloud
            .client
            .request(reqwest::Method::POST, u)
            .map_err(super::refused)?;
        Ok(req.header("xi-api-key", &self.key).json(&body))
    }
}

#[async_trait::async_trait]
impl TtsProvider for ElevenLabs {
    async fn synthesize(
        &self,
        text: &str,
        language: &str,
        voice: Option<&str>,
    ) -> Result<Vec<i16>, SpeechError> {
        let req = self.request(text, language, voice)?;
        whole_ulaw("ElevenLabs", &self.cloud, req, SECRET).await
    }

    async fn synthesize_streaming(
        &self,
        text: &str,
        language: &str,
        voice: Option<&str>,
        part: &(dyn Fn(Vec<i16>) + Send + Sync),
    ) -> Result<(), SpeechError> {
        let req = self.request(text, language, voice)?;
        stream_ulaw("ElevenLabs", &self.cloud, req, SECRET, part).await
    }
}
