//! Azure Speech (docs/speech.md, "Azure"): synthesis over REST (`/cognitiveservices/v1`, SSML, output
//! `raw-8khz-8bit-mono-mulaw`) and recognition of each utterance over the REST API for short audio
//! (`/speech/recognition/conversation/cognitiveservices/v1`, 16 kHz WAV, `format=detailed`). Auth:
//! `Ocp-Apim-Subscription-Key`.
//!
//! Why REST per utterance and not the real-time WebSocket: Microsoft publishes that protocol only through its
//! Speech SDK (it is the SDK's internal wire format, versioned with it), while the short-audio REST API is a
//! documented contract. The gateway's own endpointer cuts the utterances (as for Whisper), so a final comes one
//! REST round trip after the person stops; partial transcripts are not available with this engine.

use super::{Cloud, base, section, send, status_error, text, wav_16k, xml_escape};
use crate::stt::{RecognizeFuture, SttOptions, SttProvider, SttStream};
use crate::{SpeechError, Transcript, TtsProvider};
use serde_json::Value;
use std::sync::Arc;
use url::Url;

const SECRET: &str = "speechCredentials.azure.key";
const OUTPUT: &str = "raw-8khz-8bit-mono-mulaw";

#[derive(Debug, Clone)]
pub struct Azure {
    cloud: Cloud,
    key: String,
    tts: Url,
    stt: Url,
}

impl Azure {
    /// From a bot's `speechCredentials.azure`: `key`, `region` (the public hosts
    /// `{region}.tts.speech.microsoft.com` and `{region}.stt.speech.microsoft.com`) or `url` (one host for both).
    pub fn new(cloud: Cloud, credentials: Option<&Value>) -> Result<Self, SpeechError> {
        let s = section(credentials, "azure")?;
        let key = text(s, "key").ok_or_else(|| SpeechError::Auth(format!("no {SECRET}")))?;
        // The bot's checks make `region` present unless `url` is, which then wins.
        let region = text(s, "region").unwrap_or_default();
        Ok(Azure {
            cloud,
            key: key.to_string(),
            tts: base(s, &format!("https://{region}.tts.speech.microsoft.com"))?,
            stt: base(s, &format!("https://{region}.stt.speech.microsoft.com"))?,
        })
    }

    async fn recognize(&self, pcm: Vec<i16>, language: String) -> Result<Transcript, SpeechError> {
        let started = tokio::time::Instant::now();
        let mut u = self.stt.clone();
        u.set_path("/speech/recognition/conversation/cognitiveservices/v1");
        u.query_pairs_mut()
            .append_pair("language", &language)
            .append_pair("format", "detailed");
        let req = self.cloud.client.request(reqwest::Method::POST, u).map(|r| {
            r.header("Ocp-Apim-Subscription-Key", &self.key)
                .header("Content-Type", "audio/wav; codecs=audio/pcm; samplerate=16000")
                .header("Accept", "application/json")
                .body(wav_16k(&pcm))
        });
        let a = send("Azure Speech", &self.cloud, req).await?;
        if !(200..300).contains(&a.status) {
            return Err(status_error("Azure Speech", a.status, &a.body, SECRET));
        }
        let v: Value = serde_json::from_slice(&a.body).map_err(|_| {
            SpeechError::Protocol(format!(
                "Azure Speech: a {}-byte answer that is not JSON",
                a.body.len()
            ))
        })?;
        let audio_ms = (pcm.len() / 16) as u64;
        let took_ms = started.elapsed().as_millis() as u64;
        match v["RecognitionStatus"].as_str() {
            Some("Success") => {
                let best = &v["NBest"][0];
                let text = best["Display"]
                    .as_str()
                    .or(v["DisplayText"].as_str())
                    .unwrap_or_default()
                    .to_string();
                Ok(Transcript {
                    text,
                    confidence: best["Confidence"].as_f64().unwrap_or(0.0) as f32,
                    audio_ms,
                    took_ms,
                })
            }
            // Heard nothing it could transcribe.
            Some("NoMatch" | "InitialSilenceTimeout" | "BabbleTimeout") => Ok(Transcript {
                text: String::new(),
                confidence: 0.0,
                audio_ms,
                took_ms,
            }),
            Some(s) if outdial_net::plain_word(s) => Err(SpeechError::Unavailable(format!(
                "Azure Speech could not recognise the utterance ({s})"
            ))),
            _ => Err(SpeechError::Protocol(
                "Azure Speech answered no RecognitionStatus".into(),
            )),
        }
    }
}

/// The voice of `language` when the bot names none.
fn default_voice(language: &str) -> &'static str {
    match language {
        "en-US" => "en-US-JennyNeural",
        "en-GB" => "en-GB-SoniaNeural",
        "de-DE" => "de-DE-KatjaNeural",
        "fr-FR" => "fr-FR-DeniseNeural",
        "es-ES" => "es-ES-ElviraNeural",
        _ => "en-US-AvaMultilingualNeural",
    }
}

/// The SSML Azure reads: a `<speak>` with the version, namespace and language it requires, and a `<voice>`.
/// The inside of a bot's own `<speak>` is kept as it is (in the bot's `<voice>` when it names one); plain text is
/// escaped.
pub fn ssml(text: &str, language: &str, voice: Option<&str>) -> String {
    let t = text.trim();
    let inner = match t.strip_prefix("<speak") {
        Some(rest) => {
            let body = rest.split_once('>').map_or("", |(_, b)| b);
            body.trim_end()
                .strip_suffix("</speak>")
                .unwrap_or(body)
                .to_string()
        }
        None => xml_escape(t),
    };
    let voiced = if inner.contains("<voice") {
        inner
    } else {
        let voice = voice.unwrap_or_else(|| default_voice(language));
        format!("<voice name='{}'>{inner}</voice>", xml_escape(voice))
    };
    format!(
        "<speak version='1.0' xmlns='http://www.w3.org/2001/10/synthesis' xml:lang='{}'>{voiced}</speak>",
        xml_escape(language)
    )
}

#[async_trait::async_trait]
impl TtsProvider for Azure {
    async fn synthesize(
        &self,
        text: &str,
        language: &str,
        voice: Option<&str>,
    ) -> Result<Vec<i16>, SpeechError> {
        let mut u = self.tts.clone();
        u.set_path("/cognitiveservices/v1");
        let req = self.cloud.client.request(reqwest::Method::POST, u).map(|r| {
            r.header("Ocp-Apim-Subscription-Key", &self.key)
                .header("Content-Type", "application/ssml+xml")
                .header("X-Microsoft-OutputFormat", OUTPUT)
                .body(ssml(text, language, voice))
        });
        let a = send("Azure Speech", &self.cloud, req).await?;
        if !(200..300).contains(&a.status) {
            return Err(status_error("Azure Speech", a.status, &a.body, SECRET));
        }
        Ok(super::from_ulaw(&a.body))
    }
}

impl SttProvider for Azure {
    fn name(&self) -> &'static str {
        "azure"
    }

    fn stream(&self, options: SttOptions) -> SttStream {
        let me = self.clone();
        let recognize = move |pcm, language| {
            let me = me.clone();
            Box::pin(async move { me.recognize(pcm, language).await }) as RecognizeFuture
        };
        super::per_utterance("azure", Arc::new(recognize), options)
    }
}

#[cfg(test)]
mod tests {
    use super::ssml;

    #[test]
    fn ssml_has_what_azure_requires() {
        let head = "<speak version='1.0' xmlns='http://www.w3.org/2001/10/synthesis' xml:lang='en-US'>";
        assert_eq!(
            ssml("Tom & <Jerry>", "en-US", None),
            format!("{head}<voice name='en-US-JennyNeural'>Tom &amp; &lt;Jerry&gt;</voice></speak>")
        );
        assert_eq!(
            ssml(
                "<speak>Press <emphasis>one</emphasis></speak>",
                "en-US",
                Some("en-US-GuyNeural")
            ),
            format!("{head}<voice name='en-US-GuyNeural'>Press <emphasis>one</emphasis></voice></speak>")
        );
        let own = "<speak version='1.0'><voice name='de-DE-KatjaNeural'>Hallo</voice></speak>";
        assert_eq!(
            ssml(own, "en-US", None),
            format!("{head}<voice name='de-DE-KatjaNeural'>Hallo</voice></speak>")
        );
    }
}
