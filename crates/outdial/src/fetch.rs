//! The audio of a bot's `playUrl` (docs/bots.md): fetched off the conversation task, decoded to 8 kHz PCM.

use std::time::Duration;

/// Why a `playUrl` could not be played (the sentence goes into the timeline's `play-url-failed`).
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("playUrl {url}: {why}")]
    BadUrl { url: String, why: String },
    #[error("playUrl {url}: {why}")]
    Refused { url: String, why: String },
    #[error("cannot fetch {url}: {why}")]
    Unreachable { url: String, why: String },
    #[error("{url} answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{url} is larger than {PLAY_URL_MAX_BYTES} bytes")]
    TooLarge { url: String },
    #[error("{url} took longer than 10 s")]
    Timeout { url: String },
    #[error("{url}: {why}")]
    Body { url: String, why: String },
    #[error("{url} holds no audio")]
    Empty { url: String },
}

/// Largest audio file `playUrl` fetches (about 5 minutes of 16-bit 8 kHz audio).
const PLAY_URL_MAX_BYTES: usize = 5 * 1024 * 1024;

/// The audio of a bot's `playUrl` as 8 kHz PCM: fetched over HTTP (at most 5 MiB, 10 s), raw µ-law / A-law /
/// 16-bit PCM when `format` says so (`raw/mulaw`, `raw/alaw`, `raw/lpcm16_8`, `raw/lpcm16`), else a WAV file of any
/// rate and encoding the WAV reader knows.
pub async fn fetch_audio(
    client: &outdial_net::Guarded,
    url: &str,
    format: Option<&str>,
) -> Result<Vec<i16>, FetchError> {
    let u = || url.to_string();
    let parsed = url::Url::parse(url).map_err(|e| FetchError::BadUrl {
        url: u(),
        why: e.to_string(),
    })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        let why = "only http and https URLs are played".to_string();
        return Err(FetchError::BadUrl { url: u(), why });
    }
    // docs/security.md: the audio is fetched through the bots' network policy.
    let request = client
        .request(reqwest::Method::GET, parsed)
        .map_err(|e| FetchError::Refused {
            url: u(),
            why: e.to_string(),
        })?;
    let fetch = async {
        let mut r = request.send().await.map_err(|e| match outdial_net::refusal(&e) {
            Some(r) => FetchError::Refused {
                url: u(),
                why: r.to_string(),
            },
            None => FetchError::Unreachable {
                url: u(),
                why: e.to_string(),
            },
        })?;
        if !r.status().is_success() {
            let status = r.status().as_u16();
            return Err(FetchError::Status { url: u(), status });
        }
        let mut body = Vec::new();
        while let Some(chunk) = r.chunk().await.map_err(|e| FetchError::Body {
            url: u(),
            why: e.to_string(),
        })? {
            body.extend_from_slice(&chunk);
            if body.len() > PLAY_URL_MAX_BYTES {
                return Err(FetchError::TooLarge { url: u() });
            }
        }
        Ok(body)
    };
    let body = tokio::time::timeout(Duration::from_secs(10), fetch)
        .await
        .map_err(|_| FetchError::Timeout { url: u() })??;
    let pcm = match format.unwrap_or("") {
        "raw/alaw" => body
            .iter()
            .map(|&b| outdial_media::g711::alaw_decode(b))
            .collect(),
        f => match outdial_bots::MediaFormat::parse(f) {
            Some(raw) => crate::botlink::decode_raw(raw, &body),
            None => outdial_media::wav::decode_8k(&body).map_err(|e| FetchError::Body {
                url: u(),
                why: e.to_string(),
            })?,
        },
    };
    if pcm.is_empty() {
        return Err(FetchError::Empty { url: u() });
    }
    Ok(pcm)
}
