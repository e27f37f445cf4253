//! Single-tone tracking per 20 ms frame: the spectrum's strongest peak between 300 and 2200 Hz, its frequency
//! (interpolated between bins) and how much of the frame's energy it and its harmonics hold. A frame is tonal when
//! one peak (with its 2nd and 3rd harmonics, as a recorded or clipped beep has them) holds most of the energy —
//! dual tones (ringback 440+480 Hz, busy 480+620 Hz) and speech are not.

use realfft::{RealFftPlanner, RealToComplex};
use std::sync::{Arc, OnceLock};

const N: usize = 256;
const RATE: f32 = 8000.0;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tone {
    pub frequency_hz: f32,
    /// Share of the frame's energy in the peak (0–1).
    pub purity: f32,
    /// The share of the peak alone, without its harmonics.
    pub fundamental: f32,
    pub level_db: f32,
    /// The quietest 5 ms of the frame over its loudest (0–1): near 1 for a tone, low for two tones close together
    /// (ringback 440+480 Hz beats 40 times a second, so a null falls in every 25 ms).
    pub flatness: f32,
}

pub struct ToneTracker {
    fft: Arc<dyn RealToComplex<f32>>,
    input: Vec<f32>,
    spectrum: Vec<realfft::num_complex::Complex<f32>>,
    window: Vec<f32>,
    power: Vec<f32>,
    /// The transform's working space, kept: `process` would allocate it for every frame.
    scratch: Vec<realfft::num_complex::Complex<f32>>,
}

/// The one plan of the 256-point transform, shared by every call's trackers (planning it per tracker cost each
/// call its own twiddle tables).
fn plan() -> Arc<dyn RealToComplex<f32>> {
    static PLAN: OnceLock<Arc<dyn RealToComplex<f32>>> = OnceLock::new();
    PLAN.get_or_init(|| RealFftPlanner::<f32>::new().plan_fft_forward(N))
        .clone()
}

impl std::fmt::Debug for ToneTracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ToneTracker")
    }
}

impl Default for ToneTracker {
    fn default() -> Self {
        let fft = plan();
        let spectrum = fft.make_output_vec();
        let scratch = fft.make_scratch_vec();
        // Hann window over the 160 samples of a frame; zero padding to 256.
        let window = (0..160)
            .map(|i| 0.5 - 0.5 * (2.0 * std::f32::consts::PI * i as f32 / 159.0).cos())
            .collect();
        ToneTracker {
            fft,
            input: vec![0.0; N],
            spectrum,
            window,
            power: vec![0.0; N / 2 + 1],
            scratch,
        }
    }
}

impl ToneTracker {
    /// The dominant tone of a 160-sample frame, if its level is above -45 dBFS.
    pub fn analyse(&mut self, frame: &[i16]) -> Option<Tone> {
        let level = crate::vad::level_db(frame);
        if level < -45.0 {
            return None;
        }
        self.input.fill(0.0);
        for ((x, &s), w) in self.input.iter_mut().zip(frame).zip(&self.window) {
            *x = f32::from(s) / 32768.0 * w;
        }
        self.fft
            .process_with_scratch(&mut self.input, &mut self.spectrum, &mut self.scratch)
            .ok()?;
        for (p, c) in self.power.iter_mut().zip(&self.spectrum) {
            *p = c.norm_sqr();
        }
        let total: f32 = self.power[2..].iter().sum();
        let lo = (300.0 / RATE * N as f32) as usize;
        let hi = (2200.0 / RATE * N as f32) as usize;
        let (k, _) = self.power[lo..=hi]
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))?;
        let k = k + lo;
        // The Hann main lobe spans ±2 bins.
        let peak: f32 = self.power[k - 2..=k + 2].iter().sum();
        let (a, b, c) = (
            self.power[k - 1].sqrt(),
            self.power[k].sqrt(),
            self.power[k + 1].sqrt(),
        );
        let denom = a - 2.0 * b + c;
        let offset = if denom.abs() > f32::EPSILON {
            (0.5 * (a - c) / denom).clamp(-0.5, 0.5)
        } else {
            0.0
        };
        // Harmonics weaker than the tone itself count as the tone's — unless there is energy under the tone:
        // then the peak is itself one harmonic of many (voiced speech), not a beep's fundamental.
        let below: f32 = self.power[2..k - 2].iter().sum();
        let harmonics: f32 = [2.0, 3.0]
            .iter()
            .map(|h| (h * (k as f32 + offset)).round() as usize)
            .filter(|&kh| kh + 2 < self.power.len())
            .map(|kh| self.power[kh - 2..=kh + 2].iter().sum::<f32>())
            .filter(|&e| e < peak && below < 0.1 * total)
            .sum();
        Some(Tone {
            frequency_hz: (k as f32 + offset) * RATE / N as f32,
            purity: if total > 0.0 {
                (peak + harmonics).min(total) / total
            } else {
                0.0
            },
            fundamental: if total > 0.0 { peak / total } else { 0.0 },
            level_db: level,
            flatness: flatness(frame),
        })
    }
}

/// Envelope flatness of a frame: RMS of its quietest quarter over its loudest.
fn flatness(frame: &[i16]) -> f32 {
    let (mut min, mut max) = (f32::MAX, 0.0f32);
    for c in frame.chunks(frame.len().div_ceil(4).max(1)) {
        let rms = (crate::vad::energy(c) as f32 / c.len() as f32).sqrt();
        (min, max) = (min.min(rms), max.max(rms));
    }
    if max > 0.0 { min / max } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(f: &[f32], n: usize, offset: usize) -> Vec<i16> {
        (offset..offset + n)
            .map(|i| {
                let t = i as f32 / 8000.0;
                let v: f32 = f
                    .iter()
                    .map(|f| (2.0 * std::f32::consts::PI * f * t).sin())
                    .sum::<f32>();
                (v / f.len() as f32 * 8000.0) as i16
            })
            .collect()
    }

    #[test]
    fn pure_tones_are_found_within_a_few_hertz_and_distant_dual_tones_are_not_pure() {
        let mut t = ToneTracker::default();
        for f in [400.0, 1000.0, 1100.0, 1400.0, 2100.0] {
            let tone = t.analyse(&sine(&[f], 160, 0)).unwrap();
            assert!((tone.frequency_hz - f).abs() < 8.0, "{f}: {tone:?}");
            assert!(tone.purity > 0.9, "{f}: {tone:?}");
        }
        let busy = t.analyse(&sine(&[480.0, 620.0], 160, 0)).unwrap();
        assert!(busy.purity < 0.7, "{busy:?}");
        // Close dual tones look pure but beat: their envelope is not flat.
        for offset in [0, 37, 80] {
            let tone = t.analyse(&sine(&[1000.0], 160, offset)).unwrap();
            assert!(tone.flatness > 0.9, "{tone:?}");
            let ring = t.analyse(&sine(&[440.0, 480.0], 160, offset)).unwrap();
            assert!(ring.flatness < 0.5, "{ring:?}");
            let uk = t.analyse(&sine(&[400.0, 450.0], 160, offset)).unwrap();
            assert!(uk.flatness < 0.5, "{uk:?}");
        }
        assert_eq!(t.analyse(&[0i16; 160]), None);
    }
}
