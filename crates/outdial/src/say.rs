//! `outdial say`: speaks a text with the gateway's own text-to-speech engines into an 8 kHz WAV file, as a bot's
//! message would be heard on a call. Operators use it to hear the voices; the detection corpus uses it for its
//! neural-voice recordings.

use anyhow::Context;
use outdial_speech::TtsProvider;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(clap::Args)]
pub struct SayArgs {
    /// The engine: espeak (espeak-ng) or piper (the Piper neural voice of scripts/install.sh).
    #[arg(long, default_value = "espeak")]
    pub engine: String,
    /// Language (BCP 47, as a bot's `language`).
    #[arg(long, default_value = "en-US")]
    pub language: String,
    /// Voice (as a bot's `voiceName`; espeak-ng voices such as en-us+f2).
    #[arg(long)]
    pub voice: Option<String>,
    /// Where to write the WAV file (8 kHz, 16-bit PCM, mono).
    #[arg(long, short)]
    pub out: PathBuf,
    /// The text (or SSML starting with `<speak`).
    pub text: String,
}

pub async fn run(args: SayArgs) -> anyhow::Result<()> {
    let engine: Arc<dyn TtsProvider> = match args.engine.as_str() {
        "espeak" => Arc::new(outdial_speech::Espeak::find()?),
        "piper" => {
            let piper = tokio::task::spawn_blocking(outdial_speech::Piper::load_default).await??;
            Arc::new(piper)
        }
        other => anyhow::bail!("unknown engine {other:?}: espeak or piper"),
    };
    let pcm = engine
        .synthesize(&args.text, &args.language, args.voice.as_deref())
        .await?;
    anyhow::ensure!(!pcm.is_empty(), "the engine produced no audio");
    std::fs::write(&args.out, outdial_media::wav::encode_pcm16(&pcm, 8000))
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    Ok(())
}
