//! Voice activity per 20 ms frame of 8 kHz audio: earshot's neural VAD (16 kHz, 256-sample frames: the audio is
//! upsampled ×2 and re-framed) gated by level, so that line noise is never voice. The gate adapts to the line
//! (docs/detection.md, "Levels"): it sits `NOISE_MARGIN_DB` above the measured noise floor, never under the
//! configured `minVoiceLevelDb` — so a greeting at −35 dBFS on a quiet line is heard, and hiss at −50 dBFS is not
//! taken for speech on a noisy one.

use earshot::Detector as Earshot;
use std::collections::VecDeque;

/// The gate's height above the noise floor.
const NOISE_MARGIN_DB: f32 = 6.0;
/// The floor is the quietest frame of the last 1.5 s (speech has pauses well within that) …
const FLOOR_WINDOW_FRAMES: usize = 75;
/// … and the gate never rises above this, whatever the noise.
const MAX_GATE_DB: f32 = -40.0;

pub struct Vad {
    /// The network's state (~8 KB) on the heap: a `Vad` lives inside each call's state machine, which its task's
    /// future holds more than once (BENCHMARKS.md, "Media": memory per call).
    net: Box<Earshot>,
    /// The levels (dBFS) of the last frames, for the noise floor.
    recent: VecDeque<f32>,
    last_level: f32,
    buf: Vec<i16>,
    last_score: f32,
    prev: i16,
    threshold: f32,
    min_level_db: f32,
}

impl std::fmt::Debug for Vad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vad").field("threshold", &self.threshold).finish()
    }
}

/// The sum of the squares of the samples, exact (a frame of 2^33 samples would be needed to overflow it).
pub(crate) fn energy(samples: &[i16]) -> u64 {
    samples
        .iter()
        .map(|&s| (i32::from(s) * i32::from(s)) as u64)
        .sum()
}

/// Level of a frame in dBFS.
pub fn level_db(frame: &[i16]) -> f32 {
    if frame.is_empty() {
        return -120.0;
    }
    // Summed as integers: exact (as the f64 sum was, below 2^53) and in vector registers, where a float sum is a
    // chain of dependent additions (this runs for every frame of every call being detected).
    let e = energy(frame) as f64 / frame.len() as f64;
    (10.0 * (e / (32768.0 * 32768.0) + 1e-12).log10()) as f32
}

impl Vad {
    pub fn new(threshold: f32, min_level_db: f32) -> Self {
        Vad {
            net: Box::default(),
            recent: VecDeque::with_capacity(FLOOR_WINDOW_FRAMES),
            last_level: -120.0,
            buf: Vec::with_capacity(640),
            last_score: 0.0,
            prev: 0,
            threshold,
            min_level_db,
        }
    }

    /// Whether this 20 ms frame (160 samples at 8 kHz) holds voice.
    pub fn is_voice(&mut self, frame: &[i16]) -> bool {
        for &s in frame {
            // Linear interpolation to 16 kHz.
            self.buf.push(((i32::from(self.prev) + i32::from(s)) / 2) as i16);
            self.buf.push(s);
            self.prev = s;
        }
        let mut best = self.last_score;
        let mut ran = false;
        while self.buf.len() >= 256 {
            let score = self.net.predict_i16(&self.buf[..256]);
            self.buf.drain(..256);
            best = if ran { best.max(score) } else { score };
            ran = true;
            self.last_score = score;
        }
        let level = level_db(frame);
        self.last_level = level;
        if self.recent.len() == FLOOR_WINDOW_FRAMES {
            self.recent.pop_front();
        }
        self.recent.push_back(level);
        best >= self.threshold && level >= self.gate()
    }

    /// The level (dBFS) of the last frame judged.
    pub fn last_level(&self) -> f32 {
        self.last_level
    }

    /// The noise floor (dBFS): the quietest recent frame.
    pub fn floor(&self) -> Option<f32> {
        self.recent.iter().copied().reduce(f32::min)
    }

    /// The level (dBFS) under which a frame is not voice, now.
    pub fn gate(&self) -> f32 {
        let cap = MAX_GATE_DB.max(self.min_level_db);
        self.floor().map_or(self.min_level_db, |f| {
            (f + NOISE_MARGIN_DB).clamp(self.min_level_db, cap)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The level from the integer sum is the level of the float sum it replaced, to the bit, on frames from
    /// silence to full scale.
    #[test]
    fn the_level_is_the_float_sums_to_the_bit() {
        let mut x: u32 = 12345;
        for scale in [0i32, 1, 30, 1000, 32767, 65535] {
            let frame: Vec<i16> = (0..160)
                .map(|_| {
                    x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    ((i64::from(x >> 16) * i64::from(scale) / 65536) - i64::from(scale) / 2) as i16
                })
                .chain([i16::MIN, i16::MAX])
                .collect();
            let e: f64 = frame.iter().map(|&s| f64::from(s) * f64::from(s)).sum::<f64>() / frame.len() as f64;
            let float_sum = (10.0 * (e / (32768.0 * 32768.0) + 1e-12).log10()) as f32;
            assert_eq!(level_db(&frame).to_bits(), float_sum.to_bits(), "scale {scale}");
        }
        assert_eq!(level_db(&[]), -120.0);
    }
}
