//! Voice activity per 20 ms frame of 8 kHz audio: earshot's neural VAD (16 kHz, 256-sample frames: the audio is
//! upsampled ×2 and re-framed) gated by level, so that line noise far below speech is never voice.

use earshot::Detector as Earshot;

pub struct Vad {
    net: Earshot,
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

/// Level of a frame in dBFS.
pub fn level_db(frame: &[i16]) -> f32 {
    if frame.is_empty() {
        return -120.0;
    }
    let e: f64 = frame.iter().map(|&s| f64::from(s) * f64::from(s)).sum::<f64>() / frame.len() as f64;
    (10.0 * (e / (32768.0 * 32768.0) + 1e-12).log10()) as f32
}

impl Vad {
    pub fn new(threshold: f32, min_level_db: f32) -> Self {
        Vad {
            net: Earshot::default(),
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
        best >= self.threshold && level_db(frame) >= self.min_level_db
    }
}
