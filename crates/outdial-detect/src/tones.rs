//! Runs of a steady single tone, classified as fax tones (CED 2100 Hz, CNG 1100 Hz) or beeps (docs/detection.md,
//! "Beeps"). Tones that follow one another within a short guard form a sequence: one tone or two (a two-tone
//! beep) is a beep, reported at the trailing edge of its last tone once the guard shows nothing follows; three or
//! more are a SIT sequence, not a beep. A beep's level may rise (attack) and fall (decay) at its edges and wobble
//! a little in between, but its core must be steady: dual tones such as ringback beat, and speech varies.

use crate::tone::{Tone, ToneTracker};
use crate::{Beep, Config, ToneEvidence};

/// How long after a tone ends another tone may start and make it part of a sequence.
const GUARD_MS: u64 = 60;
/// A run's frames may differ by this much in frequency …
const MAX_DRIFT_HZ: f32 = 20.0;
/// … and its core (without attack and decay) by this much in level.
const MAX_LEVEL_SPREAD_DB: f32 = 6.0;
/// Attack and decay: frames this far under the run's loudest, rising (attack) or falling (decay) …
const EDGE_DB: f32 = 3.0;
/// … for at most this many frames at the start (the decay may be longer: recorded beeps ring out).
const MAX_ATTACK_FRAMES: usize = 5;
const MIN_PURITY: f32 = 0.8;
/// A tone's frames have a flat envelope (median); two tones close together beat (ringback 440+480 Hz).
const MIN_FLATNESS: f32 = 0.5;
/// Frames without the tone (lost packets left silent) that do not end a run when the tone comes back after them.
const MAX_GAP_FRAMES: u32 = 2;
/// Runs shorter than this before a tone are blips (a vowel's end, a click), not part of a sequence.
const MIN_PART_MS: u64 = 60;
/// Levels kept per run (5 s): enough for any beep; a longer tone is not a beep anyway.
const MAX_LEVELS: usize = 250;

/// A frame with next to nothing in it (below −50 dBFS RMS), as a lost packet left silent.
fn silent(frame: &[i16]) -> bool {
    let energy: f64 = frame.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    energy < 100.0 * 100.0 * frame.len() as f64
}

#[derive(Debug, PartialEq)]
pub enum Found {
    /// The cause (`CED`, `CNG`) and the tone.
    Fax(String, ToneEvidence),
    /// A special information tone sequence (three rising tones before a carrier's announcement); the last tone.
    Sit(ToneEvidence),
    Beep(Beep),
}

#[derive(Debug, Clone)]
struct Run {
    start_ms: u64,
    end_ms: u64,
    freq_sum: f32,
    frames: u32,
    /// Each tone frame's level (dBFS) …
    levels: Vec<f32>,
    /// … and envelope flatness.
    flatness: Vec<f32>,
    /// Whether every frame was tonal without the help of harmonics.
    plain: bool,
}

impl Run {
    fn new(start_ms: u64, t: &Tone) -> Self {
        Run {
            start_ms,
            end_ms: start_ms + 20,
            freq_sum: t.frequency_hz,
            frames: 1,
            levels: vec![t.level_db],
            flatness: vec![t.flatness],
            plain: t.fundamental >= MIN_PURITY,
        }
    }

    fn freq(&self) -> f32 {
        self.freq_sum / self.frames as f32
    }

    fn len_ms(&self) -> u64 {
        self.end_ms - self.start_ms
    }

    fn evidence(&self) -> ToneEvidence {
        ToneEvidence {
            frequency_hz: self.freq().round() as u32,
            length_ms: self.len_ms(),
        }
    }

    fn same_tone(&self, other: &Run) -> bool {
        (self.freq() - other.freq()).abs() <= MAX_DRIFT_HZ
    }

    /// `next` (the same tone after a dip of a frame or two) joined to this run.
    fn join(&mut self, next: Run) {
        self.end_ms = next.end_ms;
        self.freq_sum += next.freq_sum;
        self.frames += next.frames;
        self.plain &= next.plain;
        self.levels.extend(next.levels);
        self.levels.truncate(MAX_LEVELS);
        self.flatness.extend(next.flatness);
        self.flatness.truncate(MAX_LEVELS);
    }

    /// Whether the tone does not beat, and its level is steady once the attack (a rise of at most 100 ms) and the
    /// decay (a fall) are set aside.
    fn steady(&self) -> bool {
        let l = &self.levels;
        if l.is_empty() {
            return false;
        }
        let mut flat = self.flatness.clone();
        flat.sort_by(f32::total_cmp);
        if flat[flat.len() / 2] < MIN_FLATNESS {
            return false;
        }
        let low = l.iter().copied().fold(f32::MIN, f32::max) - EDGE_DB;
        let mut a = 0;
        while a < MAX_ATTACK_FRAMES && a + 1 < l.len() && l[a] < low && l[a] <= l[a + 1] + 1.0 {
            a += 1;
        }
        let mut b = l.len();
        while b > a + 1 && l[b - 1] < low && (b == l.len() || l[b - 1] + 1.0 >= l[b]) {
            b -= 1;
        }
        let core = &l[a..b];
        let (min, max) = core
            .iter()
            .fold((f32::MAX, f32::MIN), |(lo, hi), &x| (lo.min(x), hi.max(x)));
        max - min <= MAX_LEVEL_SPREAD_DB
    }
}

#[derive(Debug)]
pub struct Tones {
    tracker: ToneTracker,
    run: Option<Run>,
    /// Frames without the tone since the open run's last tone frame.
    gap: u32,
    /// Finished runs, each starting within the guard after the one before: waiting out the guard to be judged.
    seq: Vec<Run>,
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
            seq: Vec::new(),
            fax_reported: false,
            min_hz: cfg.beep_min_hz as f32,
            max_hz: cfg.beep_max_hz as f32,
            min_ms: u64::from(cfg.beep_min_ms),
            max_ms: u64::from(cfg.beep_max_ms),
        }
    }

    /// Whether a tone is sounding now (so that it is not counted as speech).
    /// Only a plain tone counts: voiced speech can look like a tone with harmonics for a few frames, and its
    /// voice must still be heard.
    pub fn in_tone(&self) -> bool {
        self.run.as_ref().is_some_and(|r| r.frames >= 3 && r.plain)
    }

    fn in_band(&self, r: &Run) -> bool {
        (self.min_hz..=self.max_hz).contains(&r.freq()) && r.steady()
    }

    /// A finished sequence: one tone or two in the band, steady, as long as a beep → the beep; three tones
    /// rising through 900–1800 Hz, each 200–450 ms (ITU-T E.180 SIT segments) → a SIT.
    fn judge(&self, seq: &[Run]) -> Option<Found> {
        let last = seq.last()?;
        let first = seq.first()?;
        if let [a, b, c] = seq
            && [a, b, c]
                .iter()
                .all(|r| (850.0..=1850.0).contains(&r.freq()) && (200..=450).contains(&r.len_ms()))
            && a.freq() < b.freq()
            && b.freq() < c.freq()
        {
            return Some(Found::Sit(c.evidence()));
        }
        let len = last.end_ms - first.start_ms;
        let beep = seq.len() <= 2
            && seq.iter().all(|r| self.in_band(r))
            && (seq.len() == 1 || seq.iter().all(|r| r.len_ms() >= MIN_PART_MS))
            && (self.min_ms..=self.max_ms).contains(&len);
        beep.then(|| {
            Found::Beep(Beep {
                time_ms: last.end_ms,
                frequency_hz: last.freq().round() as u32,
                length_ms: len,
            })
        })
    }

    /// A CNG burst (1100 Hz ± 38, 0.5 s; 300–700 ms allowed, since lost packets shorten or split it).
    fn is_cng(r: &Run) -> bool {
        (r.freq() - 1100.0).abs() <= 38.0 && (300..=700).contains(&r.len_ms())
    }

    /// One frame ending at `now_ms`. `fax_possible`: nothing has been decided and no one has spoken yet; only then
    /// is a fax tone a fax (afterwards a 1100 Hz tone is a beep like any other).
    pub fn feed(&mut self, frame: &[i16], now_ms: u64, fax_possible: bool) -> Option<Found> {
        let tone = self.tracker.analyse(frame).filter(|t| t.purity >= MIN_PURITY);
        let mut ended = None;
        match (self.run.as_mut(), tone) {
            (Some(r), Some(t)) if (t.frequency_hz - r.freq()).abs() <= MAX_DRIFT_HZ => {
                r.end_ms = now_ms;
                r.freq_sum += t.frequency_hz;
                r.frames += 1;
                r.plain &= t.fundamental >= MIN_PURITY;
                if r.levels.len() < MAX_LEVELS {
                    r.levels.push(t.level_db);
                    r.flatness.push(t.flatness);
                }
                self.gap = 0;
            }
            // A frame or two of silence (a lost packet) does not end the run, if the same tone comes back. (A
            // dual tone's beating dips are not silent: they still end it.)
            (Some(_), None) if self.gap < MAX_GAP_FRAMES && silent(frame) => self.gap += 1,
            (_, t) => {
                self.gap = 0;
                ended = self.run.take();
                self.run = t.map(|t| Run::new(now_ms - 20, &t));
            }
        }
        // Fax tones are known while they sound.
        if let Some(r) = &self.run
            && !self.fax_reported
            && fax_possible
            && (r.freq() - 2100.0).abs() <= 15.0 + 8.0
            && r.len_ms() >= 500
        {
            self.fax_reported = true;
            return Some(Found::Fax("CED".into(), r.evidence()));
        }
        if let Some(r) = ended.filter(|r| r.frames > 1) {
            match self.seq.last_mut() {
                // The same tone after a dip of a frame or two: one tone.
                Some(p) if r.start_ms - p.end_ms <= GUARD_MS && p.same_tone(&r) => p.join(r),
                Some(p) if r.start_ms - p.end_ms <= GUARD_MS => {
                    // Another tone right after: a sequence. Blips before it (a vowel's end, a click) are not part.
                    if p.len_ms() < MIN_PART_MS {
                        self.seq.pop();
                    }
                    self.seq.push(r);
                }
                _ => self.seq = vec![r],
            }
            // A CNG burst (perhaps split by lost packets) is judged when it ends.
            if let Some(last) = self.seq.last()
                && fax_possible
                && !self.fax_reported
                && Self::is_cng(last)
            {
                self.fax_reported = true;
                let tone = last.evidence();
                self.seq.clear();
                return Some(Found::Fax("CNG".into(), tone));
            }
            return None;
        }
        let end = self.seq.last()?.end_ms;
        let follows = self.run.as_ref().is_some_and(|r| r.start_ms - end <= GUARD_MS);
        // Something sounding right after waits for its end (one beep with a dip, or a sequence).
        if follows || now_ms - end < GUARD_MS {
            return None;
        }
        let seq = std::mem::take(&mut self.seq);
        self.judge(&seq)
    }
}
