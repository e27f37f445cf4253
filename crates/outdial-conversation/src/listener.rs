//! Whether the person is speaking, for barge-in and to disarm the no-input timer.

/// Whether the person is speaking (two voiced 20 ms frames in a row): for barge-in, and to disarm the no-input
/// timer.
pub struct Listener {
    vad: outdial_detect::vad::Vad,
    voiced: u32,
}

impl Default for Listener {
    fn default() -> Self {
        Listener {
            vad: outdial_detect::vad::Vad::new(0.5, -45.0),
            voiced: 0,
        }
    }
}

impl Listener {
    /// Feeds the caller's audio (whole 20 ms frames); true when speech was heard in it.
    pub fn heard(&mut self, audio: &[i16]) -> bool {
        let heard = audio.chunks(crate::FRAME).any(|f| {
            self.voiced = if self.vad.is_voice(f) { self.voiced + 1 } else { 0 };
            self.voiced >= 2
        });
        if heard {
            self.voiced = 0;
        }
        heard
    }

    pub fn reset(&mut self) {
        self.voiced = 0;
    }
}
