//! `outdial detect`: the live detector (same code, same parameters) run on WAV files — one JSON line per file —
//! and, with `--report`, over a labelled corpus: confusion matrix, accuracy per class, latency percentiles.

use anyhow::Context;
use outdial_core::MachineDetectionConfig;
use outdial_detect::{Analysis, analyse, analyse_with_words, wav};
use serde_json::{Value, json};
use std::path::PathBuf;

mod report;

#[derive(clap::Args)]
pub struct DetectArgs {
    /// WAV files (8 kHz µ-law / A-law / PCM, or any rate: resampled).
    files: Vec<PathBuf>,
    /// machineDetectionConfig as JSON, or @FILE holding it (defaults otherwise).
    #[arg(long)]
    config: Option<String>,
    /// Report on a labelled corpus: DIR/labels.csv (file,label,split,speech_end_ms,beep_end_ms).
    #[arg(long)]
    report: Option<PathBuf>,
    /// With --report: the split to report on (the held-out `test` split by default; `all` for every file).
    #[arg(long, default_value = "test")]
    split: String,
    /// Run the second opinion from words with the local Whisper (as a live call would with its recogniser), in
    /// this language (BCP 47; with --report, the language a source's name starts with, e.g. `fr-ca-june`).
    #[arg(long, num_args = 0..=1, default_missing_value = "en-US", value_name = "LANGUAGE")]
    words: Option<String>,
}

/// The local Whisper as the second opinion's recogniser (`--words`).
pub struct Words(outdial_speech::Whisper);

impl Words {
    fn load() -> anyhow::Result<Words> {
        let dir = outdial_speech::Whisper::find_default()?;
        Ok(Words(outdial_speech::Whisper::load(&dir, 0)?))
    }

    /// Analyses 8 kHz audio with words in `language`; a recognition that fails leaves the cadence's verdict.
    fn analyse(&self, cfg: &MachineDetectionConfig, samples: &[i16], language: &str) -> Analysis {
        analyse_with_words(cfg, samples, &mut |pcm: &[i16]| {
            let pcm16 = outdial_speech::stt::Upsampler::default().process(pcm);
            self.0.transcribe(&pcm16, language).ok().map(|t| t.text)
        })
    }
}

/// One recording's analysis: with the second opinion's words when `words` is given, else cadence and tones.
fn analyse_audio(
    cfg: &MachineDetectionConfig,
    samples: &[i16],
    words: Option<&Words>,
    language: &str,
) -> Analysis {
    match words {
        Some(w) => w.analyse(cfg, samples, language),
        None => analyse(cfg, samples),
    }
}

fn config(arg: Option<&str>) -> anyhow::Result<MachineDetectionConfig> {
    let Some(arg) = arg else {
        return Ok(MachineDetectionConfig::default());
    };
    let text = match arg.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("--config {path}"))?,
        None => arg.to_string(),
    };
    let v: Value = serde_json::from_str(&text).context("--config: not JSON")?;
    MachineDetectionConfig::parse(&v, "machineDetectionConfig").map_err(|e| anyhow::anyhow!("--config: {e}"))
}

/// The JSON line of one file.
pub fn line(file: &str, a: &Analysis) -> Value {
    json!({
        "file": file,
        "verdict": a.decision.verdict,
        "cause": a.decision.cause,
        "confidence": (f64::from(a.decision.confidence) * 100.0).round() / 100.0,
        "latencyMs": a.decision.latency_ms,
        "evidence": a.decision.evidence,
        "greetingEnd": a.greeting_end.as_ref().map(|b| json!({
            "kind": "beep", "timeMs": b.time_ms, "frequencyHz": b.frequency_hz,
        })),
    })
}

/// Exit code 0, or 1 when a file could not be read.
pub fn run(args: DetectArgs) -> anyhow::Result<u8> {
    let cfg = config(args.config.as_deref())?;
    let words = args.words.as_ref().map(|_| Words::load()).transpose()?;
    let language = args.words.as_deref().unwrap_or("en-US");
    if let Some(dir) = &args.report {
        report::report(dir, &args.split, &cfg, words.as_ref())?;
        return Ok(0);
    }
    if args.files.is_empty() {
        anyhow::bail!("give WAV files, or --report DIR");
    }
    let mut code = 0;
    for f in &args.files {
        let name = f.display().to_string();
        match wav::read_8k(f) {
            Ok(samples) => {
                let a = analyse_audio(&cfg, &samples, words.as_ref(), language);
                println!("{}", line(&name, &a));
            }
            Err(e) => {
                println!("{}", json!({"file": name, "error": e.to_string()}));
                code = 1;
            }
        }
    }
    Ok(code)
}
