//! espeak-ng, the local text-to-speech engine that is always there (a Debian package).

use crate::{SpeechError, TtsProvider};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// espeak-ng, run once per prompt.
#[derive(Debug, Clone)]
pub struct Espeak {
    binary: PathBuf,
    /// Words per minute.
    pub speed: u32,
}

const TIMEOUT: Duration = Duration::from_secs(10);

impl Espeak {
    /// espeak-ng from `PATH`.
    pub fn find() -> Result<Espeak, SpeechError> {
        let found = std::env::var_os("PATH")
            .into_iter()
            .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .map(|dir| dir.join("espeak-ng"))
            .find(|p| Path::new(p).is_file());
        found
            .map(|binary| Espeak { binary, speed: 165 })
            .ok_or(SpeechError::Missing("espeak-ng", "espeak-ng"))
    }

    /// The espeak-ng program.
    pub fn binary(&self) -> &Path {
        &self.binary
    }

    /// The espeak-ng voice for a BCP 47 language (`en-US` → `en-us`, `de-DE` → `de`), unless one is named.
    fn voice(language: &str, voice: Option<&str>) -> String {
        if let Some(v) = voice.filter(|v| !v.is_empty()) {
            return v.to_string();
        }
        let l = language.to_ascii_lowercase();
        match l.as_str() {
            "en-us" | "en-gb" | "pt-br" | "es-419" => l,
            _ => l.split('-').next().unwrap_or("en").to_string(),
        }
    }
}

#[async_trait::async_trait]
impl TtsProvider for Espeak {
    async fn synthesize(
        &self,
        text: &str,
        language: &str,
        voice: Option<&str>,
    ) -> Result<Vec<i16>, SpeechError> {
        let mut cmd = tokio::process::Command::new(&self.binary);
        cmd.arg("-v")
            .arg(Self::voice(language, voice))
            .arg("-s")
            .arg(self.speed.to_string())
            .arg("--stdout");
        if text.trim_start().starts_with("<speak") {
            cmd.arg("-m");
        }
        // The text as one argument after "--": it is never read as an option.
        cmd.arg("--").arg(text).kill_on_drop(true);
        let out = tokio::time::timeout(TIMEOUT, cmd.output())
            .await
            .map_err(|_| SpeechError::Tts("espeak-ng took longer than 10 s".into()))?
            .map_err(|e| SpeechError::Tts(format!("cannot run espeak-ng: {e}")))?;
        if !out.status.success() {
            let why = String::from_utf8_lossy(&out.stderr).trim().to_string();
            return Err(SpeechError::Tts(format!("espeak-ng: {why}")));
        }
        outdial_media::wav::decode_8k(&out.stdout)
            .map_err(|e| SpeechError::Tts(format!("espeak-ng output: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voices_from_languages() {
        assert_eq!(Espeak::voice("en-US", None), "en-us");
        assert_eq!(Espeak::voice("de-DE", None), "de");
        assert_eq!(Espeak::voice("fr-FR", Some("fr+f3")), "fr+f3");
    }

    #[tokio::test]
    async fn speaks_text_and_ssml_at_8_khz() {
        let tts = Espeak::find().expect("espeak-ng is installed (scripts/test.sh installs it)");
        let pcm = tts
            .synthesize("Hello Alice, this is a test.", "en-US", None)
            .await
            .unwrap();
        // About two seconds of 8 kHz audio, and not silence.
        assert!((8_000..40_000).contains(&pcm.len()), "{}", pcm.len());
        assert!(pcm.iter().map(|s| s.saturating_abs()).max().unwrap() > 3000);
        let ssml = tts
            .synthesize(
                "<speak>Hello <break time=\"500ms\"/> there</speak>",
                "en-US",
                None,
            )
            .await
            .unwrap();
        assert!(ssml.len() > 4_000);
        // Text that looks like an option is spoken, not obeyed.
        assert!(!tts.synthesize("--help", "en-US", None).await.unwrap().is_empty());
    }
}
