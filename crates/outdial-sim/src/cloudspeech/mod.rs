//! Local fakes of the cloud speech APIs outdial speaks (docs/speech.md), on one address since their paths do not
//! overlap, each following its public API: paths, auth headers, query parameters, body schemas, framing and the
//! provider's own error bodies and codes.
//!
//! * Deepgram: `GET /v1/listen` (WebSocket, [`listen`]) and `POST /v1/speak`; `Authorization: Token <key>`;
//!   errors `{"err_code", "err_msg", "request_id"}`.
//! * Azure Speech: `POST /cognitiveservices/v1` (SSML → `X-Microsoft-OutputFormat`) and
//!   `POST /speech/recognition/conversation/cognitiveservices/v1` (short audio); `Ocp-Apim-Subscription-Key`.
//! * Google Cloud: `POST /v1/text:synthesize`, `POST /v1/speech:recognize`, and a token endpoint `POST /token`
//!   that verifies the service account's JWT as Google does; Google's error envelope.
//! * ElevenLabs: `POST /v1/text-to-speech/{voice_id}/stream` (chunked µ-law); `xi-api-key`; errors
//!   `{"detail": {"status", "message"}}`.
//!
//! "Recognition" is the fake's: an utterance it hears (voiced audio by energy) is transcribed as the transcript it
//! was given; synthesis is a 440 Hz tone 50 ms a character of the text, so its length tells what was spoken.

mod listen;
mod rest;

use axum::Router;
use axum::routing::{get, post};
use parking_lot::Mutex;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;

pub const DEEPGRAM_KEY: &str = "dg-test-key-0123456789";
pub const AZURE_KEY: &str = "az-test-key-0123456789";
pub const ELEVENLABS_KEY: &str = "xi-test-key-0123456789";
pub const ELEVENLABS_VOICE: &str = "21m00Tcm4TlvDq8ikWAM";

/// What goes wrong, for the next requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Every key and token is refused (401).
    Unauthorized,
    /// The provider fails (5xx, its own error body).
    ServerError,
    /// No answer at all (the request hangs for a minute).
    Hang,
    /// The connection drops in the middle: a WebSocket after half a second of speech, a body after its first
    /// part.
    Drop,
}

/// One request the fake took.
#[derive(Debug, Clone)]
pub struct Request {
    /// `deepgram`, `azure`, `google` or `elevenlabs`.
    pub provider: &'static str,
    pub path: String,
    pub query: String,
    /// The JSON body (or `{"ssml": …}` for Azure's synthesis, `{"wavBytes": n}` for its recognition).
    pub body: Value,
}

#[derive(Default)]
pub(crate) struct Inner {
    pub base: String,
    pub transcript: String,
    pub fault: Option<(Fault, u32)>,
    pub requests: Vec<Request>,
    pub tokens: Vec<String>,
    pub token_requests: u64,
    /// WebSocket streams opened, and closed by the client's `CloseStream`.
    pub streams_opened: u32,
    pub streams_closed: u32,
    /// The last stream's messages (`KeepAlive`, `CloseStream`), in order.
    pub control: Vec<String>,
}

impl Inner {
    /// The fault in force for this request, if any (each request uses one of its count).
    pub fn take_fault(&mut self) -> Option<Fault> {
        let (f, n) = self.fault.as_mut()?;
        let f = *f;
        *n -= 1;
        if *n == 0 {
            self.fault = None;
        }
        Some(f)
    }

    pub fn record(&mut self, provider: &'static str, path: &str, query: &str, body: Value) {
        self.requests.push(Request {
            provider,
            path: path.to_string(),
            query: query.to_string(),
            body,
        });
    }
}

pub(crate) type Shared = Arc<Mutex<Inner>>;

#[derive(Clone)]
pub struct FakeSpeech {
    /// `http://127.0.0.1:port`: every provider's `url`.
    pub url: String,
    inner: Shared,
}

impl FakeSpeech {
    /// What every utterance heard is transcribed as.
    pub fn set_transcript(&self, t: &str) {
        self.inner.lock().transcript = t.to_string();
    }
    /// `fault` for the next `times` requests (or WebSocket openings).
    pub fn fail(&self, fault: Fault, times: u32) {
        self.inner.lock().fault = (times > 0).then_some((fault, times));
    }
    pub fn requests(&self) -> Vec<Request> {
        self.inner.lock().requests.clone()
    }
    pub fn token_requests(&self) -> u64 {
        self.inner.lock().token_requests
    }
    /// (opened, closed with `CloseStream`) Deepgram streams.
    pub fn streams(&self) -> (u32, u32) {
        let i = self.inner.lock();
        (i.streams_opened, i.streams_closed)
    }
    /// The control messages of the streams (`KeepAlive`, `CloseStream`).
    pub fn control(&self) -> Vec<String> {
        self.inner.lock().control.clone()
    }

    /// A bot's `speechCredentials` for every provider, all pointed here.
    pub fn credentials(&self) -> Value {
        let mut sa = crate::dialogflow::service_account(&self.url);
        sa["token_uri"] = json!(format!("{}/token", self.url));
        json!({
            "deepgram": {"apiKey": DEEPGRAM_KEY, "url": self.url},
            "azure": {"key": AZURE_KEY, "region": "westeurope", "url": self.url},
            "google": {"serviceAccount": sa, "url": self.url},
            "elevenlabs": {"apiKey": ELEVENLABS_KEY, "url": self.url},
        })
    }
}

pub async fn start(listen: SocketAddr) -> std::io::Result<FakeSpeech> {
    let inner: Shared = Arc::new(Mutex::new(Inner {
        transcript: "yes please".into(),
        ..Default::default()
    }));
    let app = Router::new()
        .route("/v1/listen", get(listen::upgrade))
        .route("/v1/speak", post(rest::deepgram_speak))
        .route("/cognitiveservices/v1", post(rest::azure_tts))
        .route(
            "/speech/recognition/conversation/cognitiveservices/v1",
            post(rest::azure_stt),
        )
        .route("/token", post(rest::google_token))
        .route("/v1/text:synthesize", post(rest::google_tts))
        .route("/v1/speech:recognize", post(rest::google_stt))
        .route("/v1/text-to-speech/{voice}/stream", post(rest::elevenlabs))
        .with_state(inner.clone());
    let url = crate::serve_http(listen, app).await?;
    inner.lock().base = url.clone();
    Ok(FakeSpeech { url, inner })
}

/// The fake's synthesis: 50 ms of a 440 Hz tone a character of `text`, as 8 kHz samples.
pub fn tone_for(text: &str) -> Vec<i16> {
    let n = text.chars().count() * 400;
    (0..n)
        .map(|i| (8000.0 * (2.0 * std::f32::consts::PI * 440.0 * i as f32 / 8000.0).sin()) as i16)
        .collect()
}

/// 20 ms frames of 16 kHz audio that are voiced, by energy.
pub(crate) fn voiced_frames(pcm: &[i16]) -> impl Iterator<Item = bool> + '_ {
    pcm.chunks(320).map(|f| {
        let e = f.iter().map(|&s| f64::from(s) * f64::from(s)).sum::<f64>() / f.len().max(1) as f64;
        e.sqrt() > 300.0
    })
}

/// The words of SSML or text.
pub(crate) fn words_of(s: &str) -> String {
    let mut out = String::new();
    let mut tag = false;
    for c in s.chars() {
        match c {
            '<' => tag = true,
            '>' => tag = false,
            c if !tag => out.push(c),
            _ => {}
        }
    }
    let out = out
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&");
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}
