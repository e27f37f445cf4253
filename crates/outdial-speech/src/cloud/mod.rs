//! Cloud speech providers (docs/speech.md): Deepgram, Azure Speech, Google Cloud and ElevenLabs, behind the same
//! [`TtsProvider`](crate::TtsProvider) and [`SttProvider`](crate::SttProvider) traits as the local engines. Every
//! request goes through the gateway's network policy ([`outdial_net::Guarded`]); a provider's answer is never
//! echoed, only its status and error word (docs/security.md).

pub mod azure;
pub mod deepgram;
pub mod elevenlabs;
pub mod google;

use crate::SpeechError;
use crate::stt::{RecognizeFuture, Recognizer, SttOptions, SttStream};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use url::Url;

/// What the cloud engines of every call share.
#[derive(Debug, Clone)]
pub struct Cloud {
    /// The client of the bots' network policy (one connection pool for all calls).
    pub client: outdial_net::Guarded,
    /// Google access tokens, shared with the Dialogflow connectors.
    pub google_tokens: outdial_net::google::GoogleTokens,
    /// A request (or a WebSocket's opening) with no answer by then has failed.
    pub timeout: Duration,
}

/// A provider's settings from a bot's `speechCredentials` (docs/speech.md).
pub(crate) fn section<'a>(credentials: Option<&'a Value>, provider: &str) -> Result<&'a Value, SpeechError> {
    credentials
        .map(|c| &c[provider])
        .filter(|v| v.is_object())
        .ok_or_else(|| SpeechError::Auth(format!("the bot has no speechCredentials.{provider}")))
}

pub(crate) fn text<'a>(v: &'a Value, field: &str) -> Option<&'a str> {
    v[field].as_str().filter(|s| !s.is_empty())
}

/// `speechCredentials.<provider>.url` when set, else the public address.
pub(crate) fn base(v: &Value, public: &str) -> Result<Url, SpeechError> {
    let u = text(v, "url").unwrap_or(public);
    Url::parse(u.trim_end_matches('/')).map_err(|e| SpeechError::Rejected(format!("{u}: {e}")))
}

/// Streaming for an engine that recognises one utterance a request (Azure, Google): the gateway's endpointer
/// cuts the utterances, each is sent once (and once more when that is worth it); no partials, each would be a
/// billed request.
pub(crate) fn per_utterance(
    provider: &'static str,
    recognize: Recognizer,
    mut options: SttOptions,
) -> SttStream {
    options.partial_interval_ms = None;
    crate::stt::stream(
        Arc::new(move |pcm, language| {
            let recognize = recognize.clone();
            Box::pin(async move { once_more(provider, || recognize(pcm.clone(), language.clone())).await })
                as RecognizeFuture
        }),
        options,
    )
}

/// A request made again once when it failed in a way worth retrying (5xx, busy, no answer, dropped); every
/// failure counts in `outdial_speech_failures_total`.
pub async fn once_more<T, F, Fut>(provider: &'static str, attempt: F) -> Result<T, SpeechError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, SpeechError>>,
{
    once_more_while(provider, || true, attempt).await
}

/// [`once_more`], made again only if `may_retry()` still holds after the failure (a synthesis whose audio has
/// already been played is not made again).
pub async fn once_more_while<T, F, Fut>(
    provider: &'static str,
    may_retry: impl Fn() -> bool,
    mut attempt: F,
) -> Result<T, SpeechError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, SpeechError>>,
{
    match attempt().await {
        Err(e) if e.is_retryable() && may_retry() => {
            failed(provider, &e);
            attempt().await.inspect_err(|e| failed(provider, e))
        }
        other => other.inspect_err(|e| failed(provider, e)),
    }
}

/// Counts a provider's failure (`outdial_speech_failures_total{provider, kind}`).
pub fn failed(provider: &'static str, e: &SpeechError) {
    let kind = match e {
        SpeechError::Auth(_) => "auth",
        SpeechError::Unavailable(_) => "unavailable",
        SpeechError::Rejected(_) => "rejected",
        SpeechError::Policy(_) => "policy",
        _ => "protocol",
    };
    metrics::counter!("outdial_speech_failures_total", "provider" => provider, "kind" => kind).increment(1);
}

/// One answer of a provider.
pub(crate) struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Sends `req` (built by `cloud.client`), reads the whole answer within the timeout.
pub(crate) async fn send(
    provider: &str,
    cloud: &Cloud,
    req: Result<reqwest::RequestBuilder, outdial_net::GuardedError>,
) -> Result<Answer, SpeechError> {
    let req = req.map_err(refused)?;
    let exchange = async {
        let resp = req.send().await.map_err(|e| transport(provider, &e))?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await.map_err(|e| transport(provider, &e))?;
        Ok(Answer {
            status,
            body: body.to_vec(),
        })
    };
    tokio::time::timeout(cloud.timeout, exchange)
        .await
        .map_err(|_| timed_out(provider))?
}

/// A synthesis answered as a stream of raw µ-law 8 kHz audio (Deepgram's `/v1/speak`, ElevenLabs' `/stream`):
/// each piece goes to `part` as it arrives; the answer's head and each piece must come within the timeout (a
/// stream that stalls fails). A refusal is read whole and named as [`status_error`] does.
pub(crate) async fn stream_ulaw(
    provider: &str,
    cloud: &Cloud,
    req: reqwest::RequestBuilder,
    secret: &str,
    part: &(dyn Fn(Vec<i16>) + Send + Sync),
) -> Result<(), SpeechError> {
    let limit = cloud.timeout;
    let mut resp = tokio::time::timeout(limit, req.send())
        .await
        .map_err(|_| timed_out(provider))?
        .map_err(|e| transport(provider, &e))?;
    let status = resp.status().as_u16();
    if !(200..300).contains(&status) {
        let body = tokio::time::timeout(limit, resp.bytes())
            .await
            .map_err(|_| timed_out(provider))?
            .map_err(|e| transport(provider, &e))?;
        return Err(status_error(provider, status, &body, secret));
    }
    while let Some(bytes) = tokio::time::timeout(limit, resp.chunk())
        .await
        .map_err(|_| timed_out(provider))?
        .map_err(|e| transport(provider, &e))?
    {
        if !bytes.is_empty() {
            part(from_ulaw(&bytes));
        }
    }
    Ok(())
}

/// [`stream_ulaw`]'s pieces joined: the whole message.
pub(crate) async fn whole_ulaw(
    provider: &str,
    cloud: &Cloud,
    req: reqwest::RequestBuilder,
    secret: &str,
) -> Result<Vec<i16>, SpeechError> {
    let all = parking_lot::Mutex::new(Vec::new());
    stream_ulaw(provider, cloud, req, secret, &|pcm| all.lock().extend(pcm)).await?;
    Ok(all.into_inner())
}

/// A request the network policy or the URL refused.
pub(crate) fn refused(e: outdial_net::GuardedError) -> SpeechError {
    match e {
        outdial_net::GuardedError::Refused(r) => SpeechError::Policy(r.to_string()),
        other => SpeechError::Rejected(other.to_string()),
    }
}

pub(crate) fn timed_out(provider: &str) -> SpeechError {
    SpeechError::Unavailable(format!("{provider} gave no answer in time"))
}

pub(crate) fn transport(provider: &str, e: &reqwest::Error) -> SpeechError {
    if let Some(r) = outdial_net::refusal(e) {
        return SpeechError::Policy(r.to_string());
    }
    if e.is_timeout() {
        return timed_out(provider);
    }
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    SpeechError::Unavailable(format!("{provider} is unreachable: {cause}"))
}

/// The error word a provider put in its error body: Deepgram's `err_code`, Google's `error.status`, Azure's
/// `error.code`, ElevenLabs' `detail.status`; only a plain word is shown.
pub(crate) fn error_word(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    [
        &v["err_code"],
        &v["error"]["status"],
        &v["error"]["code"],
        &v["detail"]["status"],
        &v["error"],
    ]
    .into_iter()
    .filter_map(Value::as_str)
    .find(|w| outdial_net::plain_word(w))
    .map(str::to_string)
}

/// A provider's failure status as one sentence naming the cause; `secret` is the setting to check on 401/403.
pub(crate) fn status_error(provider: &str, status: u16, body: &[u8], secret: &str) -> SpeechError {
    let word = error_word(body).map_or_else(String::new, |w| format!(" {w}"));
    match status {
        401 | 403 => SpeechError::Auth(format!(
            "{provider} refused the credentials (HTTP {status}{word}): check {secret}"
        )),
        408 | 429 => SpeechError::Unavailable(format!("{provider} is busy (HTTP {status}{word})")),
        s if s >= 500 => SpeechError::Unavailable(format!("{provider} failed (HTTP {s}{word})")),
        s => SpeechError::Rejected(format!("{provider} refused the request (HTTP {s}{word})")),
    }
}

/// µ-law bytes to 16-bit PCM.
pub(crate) fn from_ulaw(bytes: &[u8]) -> Vec<i16> {
    bytes
        .iter()
        .map(|&b| outdial_media::g711::ulaw_decode(b))
        .collect()
}

/// 16 kHz PCM as a WAV file (the REST recognisers' input).
pub(crate) fn wav_16k(pcm: &[i16]) -> Vec<u8> {
    let data = (pcm.len() * 2) as u32;
    let mut w = Vec::with_capacity(44 + data as usize);
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(36 + data).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&16u32.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes());
    w.extend_from_slice(&16_000u32.to_le_bytes());
    w.extend_from_slice(&32_000u32.to_le_bytes());
    w.extend_from_slice(&2u16.to_le_bytes());
    w.extend_from_slice(&16u16.to_le_bytes());
    w.extend_from_slice(b"data");
    w.extend_from_slice(&data.to_le_bytes());
    for s in pcm {
        w.extend_from_slice(&s.to_le_bytes());
    }
    w
}

/// Little-endian 16-bit PCM bytes.
pub(crate) fn le_bytes(pcm: &[i16]) -> Vec<u8> {
    pcm.iter().flat_map(|s| s.to_le_bytes()).collect()
}

/// Escapes text for SSML.
pub(crate) fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}
