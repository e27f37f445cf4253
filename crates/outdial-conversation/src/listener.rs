//! Whether the person is speaking, for barge-in and to disarm the no-input timer.

/// Whether the person is speaking (two voiced 20 ms frames in a row): for barge-in, and to disarm the no-input
/// timer.
#[derive(Default)]
pub struct Listener {
    /// Made when first needed (a prompt is played or answered): most calls' audio is never listened to this way,
    /// and a VAD holds ~8 KB.
    vad: Option<outdial_detect::vad::Vad>,
    voiced: u32,
}

impl Listener {
    /// Feeds the caller's audio (whole 20 ms frames); true when speech was heard in it.
    pub fn heard(&mut self, audio: &[i16]) -> bool {
        let vad = self
            .vad
            .get_or_insert_with(|| outdial_detect::vad::Vad::new(0.5, -45.0));
        let heard = audio.chunks(crate::FRAME).any(|f| {
            self.voiced = if vad.is_voice(f) { self.voiced + 1 } else { 0 };
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
