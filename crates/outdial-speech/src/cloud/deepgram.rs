//! Deepgram (docs/speech.md, "Deepgram"): streaming recognition over WebSocket (`/v1/listen`: 16 kHz linear16,
//! interim results, endpointing, VAD events, `KeepAlive`, the `CloseStream` handshake) and Aura synthesis over REST
//! (`/v1/speak`, µ-law 8 kHz, no container). Auth: `Authorization: Token <apiKey>`.

use super::{Cloud, base, le_bytes, section, status_error, text};
use crate::stt::{SttEvent, SttOptions, SttProvider, SttStream};
use crate::{SpeechError, Transcript, TtsProvider};
use futures_util::{SinkExt, StreamExt};
use outdial_net::ws::{IntoClientRequest, Message, WsError};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use url::Url;

pub const PUBLIC: &str = "https://api.deepgram.com";
const SECRET: &str = "speechCredentials.deepgram.apiKey";
/// Deepgram closes a stream that hears nothing for 10 s: a `KeepAlive` goes out after this much quiet.
const KEEPALIVE: Duration = Duration::from_secs(4);
/// A stream that keeps dropping is given up after this many openings in a row that failed.
const REOPENS: u32 = 3;

#[derive(Debug, Clone)]
pub struct Deepgram {
    cloud: Cloud,
    key: String,
    base: Url,
    model: String,
}

impl Deepgram {
    /// From a bot's `speechCredentials` (its `deepgram` section) and `sttModel`.
    pub fn new(cloud: Cloud, credentials: Option<&Value>, model: Option<&str>) -> Result<Self, SpeechError> {
        let s = section(credentials, "deepgram")?;
        Ok(Deepgram {
            key: text(s, "apiKey")
                .ok_or_else(|| SpeechError::Auth(format!("no {SECRET}")))?
                .to_string(),
            base: base(s, PUBLIC)?,
            model: model.unwrap_or("nova-2-phonecall").to_string(),
            cloud,
        })
    }

    fn listen_url(&self, o: &SttOptions) -> Url {
        let mut u = self.base.clone();
        let _ = u.set_scheme(if u.scheme() == "http" { "ws" } else { "wss" });
        u.set_path("/v1/listen");
        u.query_pairs_mut()
            .append_pair("model", &self.model)
            .append_pair("language", &o.language)
            .append_pair("encoding", "linear16")
            .append_pair("sample_rate", "16000")
            .append_pair("channels", "1")
            .append_pair("interim_results", "true")
            .append_pair("endpointing", &o.end_silence_ms.to_string())
            .append_pair("utterance_end_ms", "1000")
            .append_pair("vad_events", "true")
            .append_pair("smart_format", "true");
        u
    }

    async fn open(&self, o: &SttOptions) -> Result<outdial_net::ws::Socket, SpeechError> {
        let mut req = self
            .listen_url(o)
            .as_str()
            .into_client_request()
            .map_err(|e| SpeechError::Rejected(format!("Deepgram URL: {e}")))?;
        let auth = format!("Token {}", self.key)
            .parse()
            .map_err(|_| SpeechError::Auth(format!("{SECRET} is not a valid header value")))?;
        req.headers_mut().insert("Authorization", auth);
        outdial_net::ws::connect(&self.cloud.client, req, self.cloud.timeout)
            .await
            .map_err(|e| match e {
                WsError::Refused { status, body } => status_error("Deepgram", status, &body, SECRET),
                WsError::Guarded(outdial_net::GuardedError::Refused(r)) => SpeechError::Policy(r.to_string()),
                WsError::Timeout { .. } => super::timed_out("Deepgram"),
                other => SpeechError::Unavailable(format!("Deepgram is unreachable: {other}")),
            })
    }
}

#[async_trait::async_trait]
impl TtsProvider for Deepgram {
    async fn synthesize(
        &self,
        text: &str,
        _language: &str,
        voice: Option<&str>,
    ) -> Result<Vec<i16>, SpeechError> {
        super::whole_ulaw("Deepgram", &self.cloud, self.speak(text, voice)?, SECRET).await
    }

    /// Aura's answer comes as it is made (chunked raw µ-law): each piece plays as it arrives.
    async fn synthesize_streaming(
        &self,
        text: &str,
        _language: &str,
        voice: Option<&str>,
        part: &(dyn Fn(Vec<i16>) + Send + Sync),
    ) -> Result<(), SpeechError> {
        super::stream_ulaw("Deepgram", &self.cloud, self.speak(text, voice)?, SECRET, part).await
    }
}

impl Deepgram {
    fn speak(&self, text: &str, voice: Option<&str>) -> Result<reqwest::RequestBuilder, SpeechError> {
        let mut u = self.base.clone();
        u.set_path("/v1/speak");
        u.query_pairs_mut()
            .append_pair("model", voice.unwrap_or("aura-2-thalia-en"))
            .append_pair("encoding", "mulaw")
            .append_pair("sample_rate", "8000")
            .append_pair("container", "none");
        // Aura reads plain text: SSML's tags are dropped.
        let body = json!({"text": crate::plain_text(text)});
        let req = self
            .cloud
            .client
            .request(reqwest::Method::POST, u)
            .map_err(super::refused)?;
        Ok(req
            .header("Authorization", format!("Token {}", self.key))
            .json(&body))
    }
}

impl SttProvider for Deepgram {
    fn name(&self) -> &'static str {
        "deepgram"
    }

    fn stream(&self, options: SttOptions) -> SttStream {
        let (audio, audio_rx) = mpsc::unbounded_channel();
        let (tx, events) = mpsc::channel(64);
        tokio::spawn(listen(self.clone(), options, audio_rx, tx));
        SttStream {
            audio: Some(audio),
            events,
        }
    }
}

/// How one stream's results become utterances: finals of a turn are joined until `speech_final` (or
/// `UtteranceEnd`); interims show as partials on top of them.
#[derive(Default)]
struct Turn {
    finals: Vec<String>,
    confidence: f32,
    start_s: Option<f64>,
    end_s: f64,
}

impl Turn {
    fn text_with(&self, interim: &str) -> String {
        let mut parts: Vec<&str> = self.finals.iter().map(String::as_str).collect();
        if !interim.is_empty() {
            parts.push(interim);
        }
        parts.join(" ")
    }

    fn take(&mut self, took_ms: u64) -> Option<Transcript> {
        let t = std::mem::take(self);
        (!t.finals.is_empty()).then(|| Transcript {
            text: t.text_with(""),
            confidence: t.confidence / t.finals.len() as f32,
            audio_ms: ((t.end_s - t.start_s.unwrap_or(0.0)).max(0.0) * 1000.0) as u64,
            took_ms,
        })
    }
}

/// When the audio up to each point of the stream was sent, to tell how long after the end of an utterance its
/// final came.
#[derive(Default)]
struct Sent {
    ms: u64,
    marks: VecDeque<(u64, Instant)>,
}

impl Sent {
    fn push(&mut self, samples: usize) {
        self.ms += (samples / 16) as u64;
        self.marks.push_back((self.ms, Instant::now()));
        while self.marks.len() > 1500 {
            self.marks.pop_front();
        }
    }

    /// Milliseconds since the audio up to `at_s` (stream time) was sent.
    fn since(&self, at_s: f64) -> u64 {
        let at = (at_s * 1000.0) as u64;
        self.marks
            .iter()
            .find(|(ms, _)| *ms >= at)
            .map_or(0, |(_, t)| t.elapsed().as_millis() as u64)
    }
}

/// Reads one `Results`/`SpeechStarted`/`UtteranceEnd` message into events.
fn on_message(v: &Value, turn: &mut Turn, sent: &Sent) -> Vec<SttEvent> {
    match v["type"].as_str() {
        Some("SpeechStarted") => vec![SttEvent::SpeechStarted],
        Some("UtteranceEnd") => turn
            .take(sent.since(turn.end_s))
            .map(SttEvent::Final)
            .into_iter()
            .collect(),
        Some("Results") => {
            let alt = &v["channel"]["alternatives"][0];
            let transcript = alt["transcript"].as_str().unwrap_or_default().trim();
            let start = v["start"].as_f64().unwrap_or(0.0);
            let end = start + v["duration"].as_f64().unwrap_or(0.0);
            if v["is_final"].as_bool() == Some(true) {
                if !transcript.is_empty() {
                    turn.finals.push(transcript.to_string());
                    turn.confidence += alt["confidence"].as_f64().unwrap_or(0.0) as f32;
                    turn.start_s.get_or_insert(start);
                    turn.end_s = end;
                }
                if v["speech_final"].as_bool() == Some(true) || v["from_finalize"].as_bool() == Some(true) {
                    return turn
                        .take(sent.since(end))
                        .map(SttEvent::Final)
                        .into_iter()
                        .collect();
                }
                Vec::new()
            } else if transcript.is_empty() {
                Vec::new()
            } else {
                vec![SttEvent::Partial(Transcript {
                    text: turn.text_with(transcript),
                    confidence: alt["confidence"].as_f64().unwrap_or(0.0) as f32,
                    audio_ms: ((end - turn.start_s.unwrap_or(start)) * 1000.0) as u64,
                    took_ms: 0,
                })]
            }
        }
        _ => Vec::new(),
    }
}

/// One recognition: the WebSocket, reopened when it drops (what was said across the drop is lost, the call is
/// not), given up after [`REOPENS`] failed openings in a row or a refused key.
async fn listen(
    dg: Deepgram,
    options: SttOptions,
    mut audio: mpsc::UnboundedReceiver<Vec<i16>>,
    tx: mpsc::Sender<SttEvent>,
) {
    let mut failures = 0;
    let mut finishing = false;
    let mut sent = Sent::default();
    loop {
        if tx.is_closed() {
            // Nobody listens any more.
            return;
        }
        let ws = match dg.open(&options).await {
            Ok(ws) => ws,
            Err(e) => {
                super::failed("deepgram", &e);
                failures += 1;
                let give_up = !e.is_retryable() || failures >= REOPENS;
                let _ = tx.send(SttEvent::Failed(e.to_string())).await;
                if give_up || finishing {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(250 * u64::from(failures))).await;
                continue;
            }
        };
        let (mut sink, mut stream) = ws.split();
        let mut turn = Turn::default();
        let mut last_sent = Instant::now();
        let mut deadline = None::<Instant>;
        let dropped = loop {
            let keepalive = tokio::time::sleep_until(last_sent + KEEPALIVE);
            let closing = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                pcm = audio.recv(), if !finishing => {
                    let frame = match pcm {
                        Some(pcm) => {
                            sent.push(pcm.len());
                            Message::Binary(le_bytes(&pcm).into())
                        }
                        None => {
                            // The close handshake: Deepgram sends what it still has, then closes.
                            finishing = true;
                            deadline = Some(Instant::now() + dg.cloud.timeout);
                            Message::Text(json!({"type": "CloseStream"}).to_string().into())
                        }
                    };
                    last_sent = Instant::now();
                    if let Err(e) = sink.send(frame).await {
                        break Some(e.to_string());
                    }
                }
                () = keepalive => {
                    last_sent = Instant::now();
                    if let Err(e) = sink.send(Message::Text(json!({"type": "KeepAlive"}).to_string().into())).await {
                        break Some(e.to_string());
                    }
                }
                () = closing => break None,
                m = stream.next() => match m {
                    Some(Ok(Message::Text(t))) => {
                        failures = 0;
                        let Ok(v) = serde_json::from_str::<Value>(&t) else { continue };
                        for e in on_message(&v, &mut turn, &sent) {
                            if tx.send(e).await.is_err() {
                                return;
                            }
                        }
                    }
                    Some(Ok(Message::Close(_))) | None if finishing => break None,
                    Some(Ok(Message::Close(f))) => {
                        break Some(f.map_or_else(|| "closed".to_string(), |f| format!("closed ({})", f.code)));
                    }
                    None => break Some("the connection dropped".to_string()),
                    Some(Err(e)) => break Some(e.to_string()),
                    Some(Ok(_)) => {}
                },
            }
        };
        // What was heard of the turn is not thrown away.
        if let Some(t) = turn.take(0) {
            let _ = tx.send(SttEvent::Final(t)).await;
        }
        match dropped {
            None => return,
            Some(why) if finishing => {
                let _ = tx
                    .send(SttEvent::Failed(format!("Deepgram stream ended: {why}")))
                    .await;
                return;
            }
            Some(why) => {
                let reason = format!("Deepgram stream dropped ({why}); reopening");
                super::failed("deepgram", &SpeechError::Unavailable(reason.clone()));
                if tx.send(SttEvent::Failed(reason)).await.is_err() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finals_join_until_speech_final_and_interims_show_on_top() {
        let mut turn = Turn::default();
        let sent = Sent::default();
        let r = |t: &str, fin: bool, sf: bool, start: f64| {
            json!({"type": "Results", "start": start, "duration": 1.0, "is_final": fin, "speech_final": sf,
                   "channel": {"alternatives": [{"transcript": t, "confidence": 0.9}]}})
        };
        let partial = on_message(&r("yes", false, false, 0.0), &mut turn, &sent);
        assert!(matches!(&partial[..], [SttEvent::Partial(t)] if t.text == "yes"));
        assert!(on_message(&r("yes please", true, false, 0.0), &mut turn, &sent).is_empty());
        let partial = on_message(&r("call me", false, false, 1.0), &mut turn, &sent);
        assert!(matches!(&partial[..], [SttEvent::Partial(t)] if t.text == "yes please call me"));
        let fin = on_message(&r("call me tomorrow", true, true, 1.0), &mut turn, &sent);
        let [SttEvent::Final(t)] = &fin[..] else {
            panic!("{fin:?}")
        };
        assert_eq!(t.text, "yes please call me tomorrow");
        assert_eq!(t.audio_ms, 2000);
        // An empty speech_final (silence) says nothing; UtteranceEnd with nothing pending neither.
        assert!(on_message(&r("", true, true, 3.0), &mut turn, &sent).is_empty());
        assert!(on_message(&json!({"type": "UtteranceEnd"}), &mut turn, &sent).is_empty());
        assert!(matches!(
            &on_message(&json!({"type": "SpeechStarted"}), &mut turn, &sent)[..],
            [SttEvent::SpeechStarted]
        ));
    }
}
