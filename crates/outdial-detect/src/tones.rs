//! Runs of a steady single tone, classified as fax tones (CED 2100 Hz, CNG 1100 Hz) or beeps. A beep is reported
//! at its trailing edge once a short guard shows no other tone follows at once (SIT tones are three tones in a
//! row); its level must be steady (dual tones such as ringback 440+480 Hz beat, and speech varies).

use crate::tone::{Tone, ToneTracker};
use crate::{Beep, Config};

/// How long after a tone ends another tone may start and make it part of a sequence.
const GUARD_MS: u64 = 60;
/// A run's frames may differ by this much in frequency …
const MAX_DRIFT_HZ: f32 = 20.0;
/// … and by this much in level.
const MAX_LEVEL_SPREAD_DB: f32 = 6.0;
const MIN_PURITY: f32 = 0.8;
/// Frames without the tone (lost packets left silent) that do not end a run when the tone comes back after them.
const MAX_GAP_FRAMES: u32 = 2;

/// A frame with next to nothing in it (below −50 dBFS RMS), as a lost packet left silent.
fn silent(frame: &[i16]) -> bool {
    let energy: f64 = frame.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    energy < 100.0 * 100.0 * frame.len() as f64
}

#[derive(Debug, PartialEq)]
pub enum Found {
    Fax(String),
    Beep(Beep),
}

#[derive(Debug, Clone, Copy)]
struct Run {
    start_ms: u64,
    end_ms: u64,
    freq_sum: f32,
    frames: u32,
    level_min: f32,
    level_max: f32,
}

impl Run {
    fn freq(&self) -> f32 {
        self.freq_sum / self.frames as f32
    }
    fn len_ms(&self) -> u64 {
        self.end_ms - self.start_ms
    }
}

#[derive(Debug)]
pub struct Tones {
    tracker: ToneTracker,
    run: Option<Run>,
    /// Frames without the tone since the open run's last tone frame.
    gap: u32,
    /// A finished run waiting out the guard before it is reported as a beep.
    pending: Option<Run>,
    /// End and frequency of the last tone run, to recognise sequences.
    last: Option<(u64, f32)>,
    fax_reported: bool,
    min_hz: f32,
    max_hz: f32,
    min_ms: u64,
    max_ms: u64,
}

impl Tones {
    pub fn new(cfg: &Config) -> Self {
        Tones {
            tracker: ToneTracker::default(),
            run: None,
            gap: 0,
            pending: None,
            last: None,
            fax_reported: false,
            min_hz: cfg.beep_min_hz as f32,
            max_hz: cfg.beep_max_hz as f32,
            min_ms: u64::from(cfg.beep_min_ms),
            max_ms: u64::from(cfg.beep_max_ms),
        }
    }

    /// Whether a tone is sounding now (so that it is not counted as speech).
    pub fn in_tone(&self) -> bool {
        self.run.is_some_and(|r| r.frames >= 3)
    }

    fn is_beep(&self, r: &Run) -> bool {
        let f = r.freq();
        f >= self.min_hz
            && f <= self.max_hz
            && (self.min_ms..=self.max_ms).contains(&r.len_ms())
            && r.level_max - r.level_min <= MAX_LEVEL_SPREAD_DB
    }

    /// A CNG burst (1100 Hz ± 38, 0.5 s; 300–700 ms allowed, since lost packets shorten or split it).
    fn is_cng(r: &Run) -> bool {
        (r.freq() - 1100.0).abs() <= 38.0 && (300..=700).contains(&r.len_ms())
    }

    /// One frame ending at `now_ms`. `fax_possible`: nothing has been decided and no one has spoken yet; only then
    /// is a fax tone a fax (afterwards a 1100 Hz tone is a beep like any other).
    pub fn feed(&mut self, frame: &[i16], now_ms: u64, fax_possible: bool) -> Option<Found> {
        let tone = self.tracker.analyse(frame).filter(|t| t.purity >= MIN_PURITY);
        let start_ms = now_ms - 20;
        let continues = |r: &Run, t: &Tone| (t.frequency_hz - r.freq()).abs() <= MAX_DRIFT_HZ;
        let mut ended = None;
        match (self.run.as_mut(), tone) {
            (Some(r), Some(t)) if continues(r, &t) => {
                r.end_ms = now_ms;
                r.freq_sum += t.frequency_hz;
                r.frames += 1;
                r.level_min = r.level_min.min(t.level_db);
                r.level_max = r.level_max.max(t.level_db);
                self.gap = 0;
            }
            // A frame or two of silence (a lost packet) does not end the run, if the same tone comes back. (A
            // dual tone's beating dips are not silent: they still end it.)
            (Some(_), None) if self.gap < MAX_GAP_FRAMES && silent(frame) => self.gap += 1,
            (_, t) => {
                self.gap = 0;
                ended = self.run.take();
                self.run = t.map(|t| Run {
                    start_ms,
                    end_ms: now_ms,
                    freq_sum: t.frequency_hz,
                    frames: 1,
                    level_min: t.level_db,
                    level_max: t.level_db,
                });
            }
        }
        // Fax tones are known while they sound.
        if let Some(r) = self.run
            && !self.fax_reported
            && fax_possible
        {
            let f = r.freq();
            if (f - 2100.0).abs() <= 15.0 + 8.0 && r.len_ms() >= 500 {
                self.fax_reported = true;
                return Some(Found::Fax("CED".into()));
            }
        }
        // A CNG burst is 0.5 s then silence: judged when it ends.
        if let Some(r) = ended
            && !self.fax_reported
            && fax_possible
            && Self::is_cng(&r)
        {
            self.fax_reported = true;
            return Some(Found::Fax("CNG".into()));
        }
        // A run that ended becomes a candidate beep; a tone starting within the guard makes it a sequence.
        if let Some(mut r) = ended
            && r.frames > 1
        {
            let last = self.last.replace((r.end_ms, r.freq()));
            if last
                .is_some_and(|(end, f)| r.start_ms - end <= GUARD_MS && (r.freq() - f).abs() > MAX_DRIFT_HZ)
            {
                // Right after another tone: part of a sequence (SIT), not a beep.
                self.pending = None;
                return None;
            }
            if let Some(p) = self.pending.take()
                && r.start_ms - p.end_ms <= GUARD_MS
            {
                if (r.freq() - p.freq()).abs() > MAX_DRIFT_HZ {
                    // Another tone right after: a sequence (SIT), not a beep.
                    return None;
                }
                // The same tone after a dip of a frame or two: one beep.
                r = Run {
                    start_ms: p.start_ms,
                    freq_sum: p.freq_sum + r.freq_sum,
                    frames: p.frames + r.frames,
                    level_min: p.level_min.min(r.level_min),
                    level_max: p.level_max.max(r.level_max),
                    ..r
                };
                // A CNG burst split by lost packets.
                if fax_possible && !self.fax_reported && Self::is_cng(&r) {
                    self.fax_reported = true;
                    return Some(Found::Fax("CNG".into()));
                }
            }
            self.pending = self.is_beep(&r).then_some(r);
            return None;
        }
        if let Some(p) = self.pending {
            let follows = self.run.is_some_and(|r| r.start_ms - p.end_ms <= GUARD_MS);
            // Something sounding right after waits for its end (one beep with a dip, or a sequence).
            if !follows && now_ms - p.end_ms >= GUARD_MS {
                self.pending = None;
                return Some(Found::Beep(Beep {
                    time_ms: p.end_ms,
                    frequency_hz: p.freq().round() as u32,
                    length_ms: p.len_ms(),
                }));
            }
        }
        None
    }
}
