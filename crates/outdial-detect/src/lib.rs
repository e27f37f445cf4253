//! Who answered: a person, an answering machine, a fax — and, after a machine, where its greeting ends (the
//! beep). docs/detection.md describes the approach. The detectors run in parallel on 20 ms frames of 8 kHz audio:
//!
//! * voice activity and cadence ([`cadence`], Asterisk `app_amd`-style rules on a neural VAD);
//! * tones ([`tone`]): a stable single tone of 400–2100 Hz is a beep (reported at its trailing edge, after a
//!   short guard that rejects SIT sequences); 2100 Hz ≥ 500 ms (CED) or a 1100 Hz burst of 300–700 ms (CNG,
//!   also when lost packets split it) before any speech is a fax; after speech a 1100 Hz tone is a beep.
//!
//! The verdict is the first detector that is sure; after a `machine` verdict the tone detector keeps looking for
//! the beep. The same code runs live and in `outdial detect FILE`.

pub mod cadence;
pub mod tone;
pub mod vad;
/// WAV reading lives with the other audio formats in outdial-media.
pub use outdial_media::wav;

mod config;
mod tones;

pub use config::{Config, ConfigError};

use serde::Serialize;

/// Samples per frame (20 ms at 8 kHz).
pub const FRAME: usize = 160;
const FRAME_MS: u64 = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Human,
    Machine,
    Fax,
    Unknown,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Human => "human",
            Verdict::Machine => "machine",
            Verdict::Fax => "fax",
            Verdict::Unknown => "unknown",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    pub verdict: Verdict,
    /// Asterisk-style, e.g. `HUMAN-800-800`, `LONGGREETING-1500-1500`, `CED`, `BEEP-1000Hz-500ms`.
    pub cause: String,
    pub confidence: f32,
    /// From the start of the audio (the answer) to the verdict.
    pub latency_ms: u64,
}

/// The end of a voicemail greeting.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Beep {
    /// Trailing edge, from the start of the audio.
    pub time_ms: u64,
    pub frequency_hz: u32,
    pub length_ms: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Decision(Decision),
    Beep(Beep),
}

/// One call's detectors.
#[derive(Debug)]
pub struct Detector {
    vad: vad::Vad,
    cadence: cadence::Cadence,
    tones: tones::Tones,
    elapsed_ms: u64,
    decided: Option<Verdict>,
    beep_found: bool,
}

impl Detector {
    pub fn new(cfg: Config) -> Self {
        Detector {
            vad: vad::Vad::new(cfg.vad_threshold, cfg.min_voice_level_db),
            cadence: cadence::Cadence::new(&cfg),
            tones: tones::Tones::new(&cfg),
            elapsed_ms: 0,
            decided: None,
            beep_found: false,
        }
    }

    pub fn verdict(&self) -> Option<Verdict> {
        self.decided
    }

    /// Whether the detector still has anything to say (no verdict yet, or a machine whose beep is not found).
    pub fn listening(&self) -> bool {
        match self.decided {
            None => true,
            Some(Verdict::Machine) => !self.beep_found,
            Some(_) => false,
        }
    }

    /// Feeds one 20 ms frame (160 samples); returns what it decided.
    pub fn feed(&mut self, frame: &[i16]) -> Vec<Event> {
        let mut out = Vec::new();
        if !self.listening() {
            return out;
        }
        self.elapsed_ms += FRAME_MS;
        let now = self.elapsed_ms;
        // After the verdict only the beep matters: the (costlier) voice detector rests.
        let voice = self.decided.is_none() && self.vad.is_voice(frame);
        let fax_possible = self.decided.is_none() && self.cadence.words() == 0;
        let tone = self.tones.feed(frame, now, fax_possible);
        // Tones first: a fax is certain, and a beep ends the greeting.
        match tone {
            Some(tones::Found::Fax(cause)) => {
                out.push(self.decide(Verdict::Fax, cause, 0.99));
                return out;
            }
            Some(tones::Found::Beep(beep)) if self.decided != Some(Verdict::Human) => {
                if self.decided.is_none() {
                    let cause = format!("BEEP-{}Hz-{}ms", beep.frequency_hz, beep.length_ms);
                    out.push(self.decide(Verdict::Machine, cause, 0.95));
                }
                self.beep_found = true;
                out.push(Event::Beep(beep));
                return out;
            }
            _ => {}
        }
        if self.decided.is_none() {
            // A tone is not a word.
            let voice = voice && !self.tones.in_tone();
            if let Some((verdict, cause, confidence)) = self.cadence.feed(voice) {
                out.push(self.decide(verdict, cause, confidence));
            }
        }
        out
    }

    fn decide(&mut self, verdict: Verdict, cause: String, confidence: f32) -> Event {
        self.decided = Some(verdict);
        Event::Decision(Decision {
            verdict,
            cause,
            confidence,
            latency_ms: self.elapsed_ms,
        })
    }
}

/// What a whole recording gives (the `outdial detect` output).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Analysis {
    pub decision: Decision,
    pub greeting_end: Option<Beep>,
}

/// Runs a detector over 8 kHz audio to its end (or until nothing more can be learned). Audio that ends before a
/// verdict is `unknown` with cause `TOOSHORT-<ms>`.
pub fn analyse(cfg: &Config, samples: &[i16]) -> Analysis {
    let mut d = Detector::new(cfg.clone());
    let mut decision = None;
    let mut beep = None;
    for frame in samples.chunks(FRAME) {
        let mut f = frame.to_vec();
        f.resize(FRAME, 0);
        for e in d.feed(&f) {
            match e {
                Event::Decision(x) => decision = Some(x),
                Event::Beep(b) => beep = Some(b),
            }
        }
        if !d.listening() {
            break;
        }
    }
    let total = samples.len() as u64 / 8;
    Analysis {
        decision: decision.unwrap_or(Decision {
            verdict: Verdict::Unknown,
            cause: format!("TOOSHORT-{total}"),
            confidence: 0.0,
            latency_ms: total,
        }),
        greeting_end: beep,
    }
}
