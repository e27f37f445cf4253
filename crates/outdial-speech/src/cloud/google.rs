//! Google Cloud (docs/speech.md, "Google Cloud"): Text-to-Speech REST `v1/text:synthesize` (MULAW, 8 kHz; the
//! audio comes back base64 in a WAV) and Speech-to-Text REST `v1/speech:recognize` of each utterance (LINEAR16,
//! 16 kHz). Auth: the service account's access token ([`outdial_net::google`], shared with the Dialogflow
//! connectors); a refused token is fetched again once.
//!
//! Why REST per utterance and not gRPC `StreamingRecognize`: streaming needs Google's protobuf definitions compiled
//! into the gateway (tonic and prost, `protoc` at build time) for one provider; the REST API is the same
//! recognition without them. The gateway's endpointer cuts the utterances, so a final comes one round trip after
//! the person stops; partial transcripts are not available with this engine.

use super::{Answer, Cloud, base, send, status_error};
use crate::stt::{RecognizeFuture, SttOptions, SttProvider, SttStream};
use crate::{SpeechError, Transcript, TtsProvider};
use base64::Engine as _;
use outdial_net::google::ServiceAccount;
use serde_json::{Value, json};
use std::sync::Arc;
use url::Url;

const SECRET: &str = "speechCredentials.google.serviceAccount";

#[derive(Debug, Clone)]
pub struct Google {
    cloud: Cloud,
    sa: ServiceAccount,
    tts: Url,
    stt: Url,
    model: Option<String>,
}

impl Google {
    /// From a bot's `speechCredentials.google` (`serviceAccount`, `url`); without a `serviceAccount`, the bot's
    /// Dialogflow `credentials`.
    pub fn new(
        cloud: Cloud,
        credentials: Option<&Value>,
        dialogflow: Option<&Value>,
        model: Option<&str>,
    ) -> Result<Self, SpeechError> {
        let s = credentials.map(|c| &c["google"]).filter(|v| v.is_object());
        let key = s
            .map(|s| &s["serviceAccount"])
            .filter(|v| v.is_object())
            .or(dialogflow)
            .ok_or_else(|| SpeechError::Auth(format!("the bot has no {SECRET}")))?;
        let sa = ServiceAccount::from_json(key).map_err(|e| SpeechError::Auth(e.to_string()))?;
        let s = s.unwrap_or(&Value::Null);
        Ok(Google {
            cloud,
            sa,
            tts: base(s, "https://texttospeech.googleapis.com")?,
            stt: base(s, "https://speech.googleapis.com")?,
            model: model.map(str::to_string),
        })
    }

    /// A POST with the access token; a 401 fetches a new token once.
    async fn post(&self, what: &str, url: Url, body: &Value) -> Result<Value, SpeechError> {
        let mut retried = false;
        loop {
            let token = self
                .cloud
                .google_tokens
                .token(&self.cloud.client, &self.sa)
                .await
                .map_err(|e| match e {
                    outdial_net::google::AuthError::Unavailable(s) => SpeechError::Unavailable(s),
                    outdial_net::google::AuthError::Policy(r) => SpeechError::Policy(r.to_string()),
                    other => SpeechError::Auth(other.to_string()),
                })?;
            let req = self
                .cloud
                .client
                .request(reqwest::Method::POST, url.clone())
                .map(|r| r.bearer_auth(token).json(body));
            let Answer { status, body: b } = send(what, &self.cloud, req).await?;
            if status == 401 && !retried {
                retried = true;
                self.cloud.google_tokens.forget(&self.sa);
                continue;
            }
            if !(200..300).contains(&status) {
                return Err(status_error(what, status, &b, SECRET));
            }
            return serde_json::from_slice(&b).map_err(|_| {
                SpeechError::Protocol(format!("{what}: a {}-byte answer that is not JSON", b.len()))
            });
        }
    }

    async fn recognize(&self, pcm: Vec<i16>, language: String) -> Result<Transcript, SpeechError> {
        let started = tokio::time::Instant::now();
        let mut u = self.stt.clone();
        u.set_path("/v1/speech:recognize");
        let mut config = json!({"encoding": "LINEAR16", "sampleRateHertz": 16000, "languageCode": language,
                                "enableAutomaticPunctuation": true});
        if let Some(m) = &self.model {
            config["model"] = json!(m);
        }
        let content = base64::engine::general_purpose::STANDARD.encode(super::le_bytes(&pcm));
        let v = self
            .post(
                "Google Speech-to-Text",
                u,
                &json!({"config": config, "audio": {"content": content}}),
            )
            .await?;
        let results = v["results"].as_array().map(Vec::as_slice).unwrap_or_default();
        let best: Vec<&Value> = results.iter().map(|r| &r["alternatives"][0]).collect();
        let text = best
            .iter()
            .filter_map(|a| a["transcript"].as_str())
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        let confidence =
            best.iter().filter_map(|a| a["confidence"].as_f64()).sum::<f64>() / best.len().max(1) as f64;
        Ok(Transcript {
            text,
            confidence: confidence as f32,
            audio_ms: (pcm.len() / 16) as u64,
            took_ms: started.elapsed().as_millis() as u64,
        })
    }
}

#[async_trait::async_trait]
impl TtsProvider for Google {
    async fn synthesize(
        &self,
        text: &str,
        language: &str,
        voice: Option<&str>,
    ) -> Result<Vec<i16>, SpeechError> {
        let mut u = self.tts.clone();
        u.set_path("/v1/text:synthesize");
        let input = if text.trim_start().starts_with("<speak") {
            json!({"ssml": text})
        } else {
            json!({"text": text})
        };
        let mut v = json!({"languageCode": language});
        if let Some(name) = voice {
            v["name"] = json!(name);
        }
        let body = json!({"input": input, "voice": v,
                          "audioConfig": {"audioEncoding": "MULAW", "sampleRateHertz": 8000}});
        let answer = self.post("Google Text-to-Speech", u, &body).await?;
        let audio = answer["audioContent"]
            .as_str()
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .ok_or_else(|| SpeechError::Protocol("Google Text-to-Speech answered no audioContent".into()))?;
        // MULAW comes in a WAV.
        outdial_media::wav::decode_8k(&audio)
            .map_err(|e| SpeechError::Protocol(format!("Google Text-to-Speech audio: {e}")))
    }
}

impl SttProvider for Google {
    fn name(&self) -> &'static str {
        "google"
    }

    fn stream(&self, options: SttOptions) -> SttStream {
        let me = self.clone();
        let recognize = move |pcm, language| {
            let me = me.clone();
            Box::pin(async move { me.recognize(pcm, language).await }) as RecognizeFuture
        };
        super::per_utterance("google", Arc::new(recognize), options)
    }
}
