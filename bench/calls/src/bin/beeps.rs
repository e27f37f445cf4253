//! The beep detector on a sweep of beeps, and on speech (docs/detection.md, "Beeps"; BENCHMARKS.md, "Beep sweep"):
//!
//!     outdial-bench-beeps [CORPUS_DIR ...]
//!
//! Recall: beeps of every attack/decay ramp 0–50 ms × frequency 400–2100 Hz × level −35 to −6 dBFS × line noise
//! (none, −60, −50 dBFS) × three timing offsets, plus harmonics, a wobble and two-tone beeps; a beep counts as found
//! when its reported end is within 300 ms of the true one. All through a µ-law round trip. False beeps: every
//! beep reported in a corpus's speech (people's answers and machine greetings, before the true beep less 300 ms;
//! SIT intercepts included), over the files of speech.

use outdial_detect::{Config, beeps, wav};
use outdial_media::g711::{ulaw_decode, ulaw_encode};
use std::f32::consts::PI;
use std::path::Path;

const RAMPS: [usize; 6] = [0, 10, 20, 30, 40, 50];
const FREQS: [f32; 8] = [400.0, 500.0, 700.0, 1000.0, 1200.0, 1400.0, 1800.0, 2100.0];
const LEVELS: [f32; 6] = [-35.0, -30.0, -24.0, -18.0, -12.0, -6.0];
const NOISES: [Option<f32>; 3] = [None, Some(-60.0), Some(-50.0)];
const OFFSETS: [usize; 3] = [0, 53, 111];

/// A small, seeded noise source (no dependency for it).
struct Noise(u64);

impl Noise {
    fn uniform(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 40) as f32 / (1u64 << 24) as f32
    }
    /// Roughly Gaussian (sum of four uniforms), unit variance.
    fn gauss(&mut self) -> f32 {
        ((0..4).map(|_| self.uniform()).sum::<f32>() - 2.0) * 3f32.sqrt()
    }
}

struct Shape {
    parts: Vec<(f32, usize)>,
    ramp_ms: usize,
    harmonics: Vec<f32>,
    wobble: f32,
}

/// The beep at `level_db` (RMS of its steady part), after 600 ms of line, then 1 s of line.
fn render(
    s: &Shape,
    level_db: f32,
    noise_db: Option<f32>,
    offset: usize,
    rng: &mut Noise,
) -> (Vec<i16>, u64) {
    let mut tone = Vec::new();
    let norm = (1.0 + s.harmonics.iter().map(|a| a * a).sum::<f32>()).sqrt();
    let amp = 32768.0 * 10f32.powf(level_db / 20.0) * 2f32.sqrt() / norm;
    for &(hz, ms) in &s.parts {
        let n = ms * 8;
        let ramp = (s.ramp_ms * 8).max(1) as f32;
        for i in 0..n {
            let t = i as f32 / 8000.0;
            let env = (i as f32 / ramp).min((n - 1 - i) as f32 / ramp).min(1.0)
                * (1.0 + s.wobble * (2.0 * PI * 6.0 * t).sin());
            let mut v = (2.0 * PI * hz * t).sin();
            for (h, a) in s.harmonics.iter().enumerate() {
                v += a * (2.0 * PI * hz * (h as f32 + 2.0) * t).sin();
            }
            tone.push(amp * env * v);
        }
    }
    let lead = 600 * 8 + offset;
    let mut audio = vec![0f32; lead];
    audio.extend(tone);
    let truth = audio.len() as u64 / 8;
    audio.extend(vec![0f32; 8000]);
    let sigma = noise_db.map_or(0.0, |d| 32768.0 * 10f32.powf(d / 20.0));
    let out = audio
        .into_iter()
        .map(|x| {
            ulaw_decode(ulaw_encode(
                (x + sigma * rng.gauss()).clamp(-32768.0, 32767.0) as i16
            ))
        })
        .collect();
    (out, truth)
}

fn shapes() -> Vec<(String, Shape)> {
    let mut v = Vec::new();
    for ramp_ms in RAMPS {
        for f in FREQS {
            v.push((
                format!("pure, ramps {ramp_ms} ms"),
                Shape {
                    parts: vec![(f, 300)],
                    ramp_ms,
                    harmonics: vec![],
                    wobble: 0.0,
                },
            ));
        }
    }
    for f in [500.0, 800.0, 1000.0] {
        v.push((
            "harmonics (−6, −10 dB)".into(),
            Shape {
                parts: vec![(f, 300)],
                ramp_ms: 20,
                harmonics: vec![0.5, 0.3],
                wobble: 0.0,
            },
        ));
        v.push((
            "wobble (4.4 dB)".into(),
            Shape {
                parts: vec![(2.0 * f, 400)],
                ramp_ms: 20,
                harmonics: vec![],
                wobble: 0.25,
            },
        ));
        v.push((
            "two tones".into(),
            Shape {
                parts: vec![(f, 150), (f * 1.4, 150)],
                ramp_ms: 10,
                harmonics: vec![],
                wobble: 0.0,
            },
        ));
    }
    v
}

fn main() -> anyhow::Result<()> {
    let cfg = Config::default();
    let mut rng = Noise(20261126);
    let mut by_kind: std::collections::BTreeMap<String, (u32, u32, Vec<u64>)> = Default::default();
    let mut by_level: std::collections::BTreeMap<i32, (u32, u32)> = Default::default();
    let mut by_noise: std::collections::BTreeMap<String, (u32, u32)> = Default::default();
    let mut missed = Vec::new();
    for (kind, shape) in shapes() {
        for level in LEVELS {
            for noise in NOISES {
                for offset in OFFSETS {
                    let (audio, truth) = render(&shape, level, noise, offset, &mut rng);
                    let found = beeps(&cfg, &audio)
                        .into_iter()
                        .find(|b| b.time_ms.abs_diff(truth) <= 300);
                    let e = by_kind.entry(kind.clone()).or_default();
                    e.1 += 1;
                    let l = by_level.entry(level as i32).or_default();
                    l.1 += 1;
                    let nk = noise.map_or("none".to_string(), |d| format!("{d} dBFS"));
                    let n = by_noise.entry(nk).or_default();
                    n.1 += 1;
                    if let Some(b) = found {
                        e.0 += 1;
                        e.2.push(b.time_ms.abs_diff(truth));
                        l.0 += 1;
                        n.0 += 1;
                    } else if missed.len() < 20 {
                        missed.push(format!(
                            "{kind} {:?} {level} dBFS noise {noise:?} offset {offset}",
                            shape.parts
                        ));
                    }
                }
            }
        }
    }
    let (found, total): (u32, u32) = by_kind.values().fold((0, 0), |(f, t), e| (f + e.0, t + e.1));
    println!(
        "beep sweep: {found}/{total} found ({:.2} %), end within 300 ms",
        100.0 * found as f64 / total as f64
    );
    println!(
        "{:<26}{:>10}{:>10}{:>16}",
        "shape", "found", "of", "|end err| p50"
    );
    for (k, (f, t, errs)) in by_kind.iter_mut() {
        errs.sort_unstable();
        let p50 = errs.get(errs.len() / 2).map_or("-".into(), |e| format!("{e} ms"));
        println!("{k:<26}{f:>10}{t:>10}{p50:>16}");
    }
    println!(
        "by level (dBFS): {}",
        by_level
            .iter()
            .map(|(k, (f, t))| format!("{k}: {f}/{t}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "by noise: {}",
        by_noise
            .iter()
            .map(|(k, (f, t))| format!("{k}: {f}/{t}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for m in &missed {
        println!("  missed: {m}");
    }
    for dir in std::env::args().skip(1) {
        false_beeps(&cfg, Path::new(&dir))?;
    }
    Ok(())
}

/// Beeps reported in speech: people's answers, greetings before their beep, intercepts.
fn false_beeps(cfg: &Config, dir: &Path) -> anyhow::Result<()> {
    let labels = std::fs::read_to_string(dir.join("labels.csv"))?;
    let (mut files, mut with_false, mut false_total) = (0, 0, 0);
    let mut examples = Vec::new();
    for line in labels.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() < 5 || f[1] == "fax" {
            continue;
        }
        let truth: Option<u64> = f[4].parse().ok();
        let audio = wav::read_8k(&dir.join(f[0]))?;
        let wrong: Vec<_> = beeps(cfg, &audio)
            .into_iter()
            .filter(|b| truth.is_none_or(|t| b.time_ms + 300 < t))
            .collect();
        files += 1;
        if !wrong.is_empty() {
            with_false += 1;
            false_total += wrong.len();
            if examples.len() < 10 {
                examples.push(format!("{} {:?}", f[0], wrong));
            }
        }
    }
    println!(
        "false beeps in the speech of {}: {with_false} of {files} files ({:.2} %), {false_total} beeps",
        dir.display(),
        100.0 * with_false as f64 / files.max(1) as f64
    );
    for e in examples {
        println!("  {e}");
    }
    Ok(())
}
