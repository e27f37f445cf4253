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
pub mod cues;
mod opinion;
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
    /// A call-screening service (only with `screeningVerdict`; else `machine` with cause `SCREENING`).
    Screening,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Human => "human",
            Verdict::Machine => "machine",
            Verdict::Fax => "fax",
            Verdict::Unknown => "unknown",
            Verdict::Screening => "screening",
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
    /// What the verdict rests on.
    pub evidence: Evidence,
}

/// What the detector had measured when it decided (docs/detection.md, "Evidence").
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Evidence {
    /// Mean level of the frames taken for voice (dBFS, 0.1 dB), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub voice_level_db: Option<f64>,
    /// The line's noise floor (dBFS, 0.1 dB): the voice gate sits above it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub noise_floor_db: Option<f64>,
    /// Words counted.
    pub words: u32,
    /// Voice heard since the first word (ms).
    pub voice_ms: u32,
    /// Silence right before the verdict (ms).
    pub silence_ms: u32,
    /// The tone that decided (a fax tone or a beep).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tone: Option<ToneEvidence>,
    /// What the second opinion heard (the start of the transcript).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transcript: Option<String>,
    /// How long the verdict waited for the second opinion (ms): its cost in latency.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_ms: Option<u64>,
    /// The `human` verdict this one replaced (docs/detection.md, "A person's hello, rechecked").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revised: Option<Revised>,
}

/// A verdict given before, and replaced.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Revised {
    pub result: Verdict,
    pub cause: String,
    pub latency_ms: u64,
}

/// After a `human` verdict: rechecked until `until_ms` (from the answer).
#[derive(Debug)]
struct Recheck {
    until_ms: u64,
    /// Voice of the utterance going on (a pause of `afterGreetingSilenceMs` starts a new one).
    voice_ms: u32,
    silence_ms: u32,
    first: Revised,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToneEvidence {
    pub frequency_hz: u32,
    pub length_ms: u64,
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
    /// The cadence is unsure: transcribe the call's audio from the answer and pass the words to
    /// [`Detector::transcript`] (once per call).
    WantTranscript,
}

/// One call's detectors.
#[derive(Debug)]
pub struct Detector {
    /// The voice detector while voice can still change the verdict; dropped once only tones can (a machine's beep
    /// search, a settled person), which frees its network's ~8 KB for the rest of the call (docs/architecture.md,
    /// "Memory per call").
    vad: Option<vad::Vad>,
    cadence: cadence::Cadence,
    tones: tones::Tones,
    elapsed_ms: u64,
    decided: Option<Verdict>,
    beep_found: bool,
    /// Sum and count of the voice frames' levels (dB).
    voice_level: (f64, u32),
    opinion: opinion::SecondOpinion,
    screening_verdict: bool,
    /// `humanRecheckMs`, `greetingMs`, `afterGreetingSilenceMs`.
    recheck_ms: u32,
    greeting_ms: u32,
    pause_ms: u32,
    recheck: Option<Recheck>,
}

impl Detector {
    pub fn new(cfg: Config) -> Self {
        Detector {
            vad: Some(vad::Vad::new(cfg.vad_threshold, cfg.min_voice_level_db)),
            cadence: cadence::Cadence::new(&cfg),
            tones: tones::Tones::new(&cfg),
            elapsed_ms: 0,
            decided: None,
            beep_found: false,
            voice_level: (0.0, 0),
            opinion: opinion::SecondOpinion::new(cfg.second_opinion_ms),
            screening_verdict: cfg.screening_verdict,
            recheck_ms: cfg.human_recheck_ms,
            greeting_ms: cfg.greeting_ms,
            pause_ms: cfg.after_greeting_silence_ms,
            recheck: None,
        }
    }

    /// Whether a machine verdict by cadence (or `unknown`) also waits for words (by default it does). Off when
    /// the words cannot change what happens to a machine — `disconnect` mode without `screeningVerdict` — so that
    /// the hang-up is not delayed; a person's longer answer still gets its second opinion.
    pub fn words_for_machines(&mut self, on: bool) {
        self.opinion.machines = on;
    }

    /// Words from the call's speech recognition, after [`Event::WantTranscript`]: a final transcript, or the words
    /// so far of the utterance being spoken (`is_final` false).
    pub fn transcript(&mut self, text: &str, is_final: bool) -> Vec<Event> {
        if self.decided.is_some() || !self.opinion.is_holding() {
            return Vec::new();
        }
        match self.opinion.heard(text, is_final) {
            opinion::Reading::Machine(cue) => {
                let verdict = if cue == cues::Cue::Screening && self.screening_verdict {
                    Verdict::Screening
                } else {
                    Verdict::Machine
                };
                vec![self.decide(verdict, cue.cause().into(), 0.9, None)]
            }
            opinion::Reading::Person(cause) => vec![self.decide(Verdict::Human, cause, 0.8, None)],
            opinion::Reading::Stands => self.decide_held().into_iter().collect(),
            opinion::Reading::Wait => Vec::new(),
        }
    }

    /// No words will come (no recogniser, or it failed): the held verdict stands.
    pub fn no_transcript(&mut self) -> Vec<Event> {
        if self.decided.is_some() {
            return Vec::new();
        }
        self.decide_held().into_iter().collect()
    }

    fn decide_held(&mut self) -> Option<Event> {
        let h = self.opinion.current()?;
        Some(self.decide(h.verdict, h.cause, h.confidence, None))
    }

    pub fn verdict(&self) -> Option<Verdict> {
        self.decided
    }

    /// Whether the detector still has anything to say (no verdict yet, a machine whose beep is not found, or a
    /// person's verdict being rechecked).
    pub fn listening(&self) -> bool {
        match self.decided {
            None => true,
            Some(Verdict::Machine) => !self.beep_found,
            Some(Verdict::Human) => self.rechecking(),
            Some(_) => false,
        }
    }

    fn rechecking(&self) -> bool {
        self.decided == Some(Verdict::Human)
            && self
                .recheck
                .as_ref()
                .is_some_and(|r| self.elapsed_ms < r.until_ms)
    }

    /// Feeds one 20 ms frame (160 samples); returns what it decided.
    pub fn feed(&mut self, frame: &[i16]) -> Vec<Event> {
        let mut out = Vec::new();
        if !self.listening() {
            return out;
        }
        self.elapsed_ms += FRAME_MS;
        let now = self.elapsed_ms;
        // After a machine verdict only the beep matters: the (costlier) voice detector went with the verdict, and a
        // person's goes when the recheck is over.
        let rechecking = self.rechecking();
        if self.decided.is_some() && !rechecking {
            self.vad = None;
        }
        let level = self
            .vad
            .as_mut()
            .and_then(|vad| vad.is_voice(frame).then(|| vad.last_level()));
        let voice = level.is_some();
        if let Some(level) = level {
            self.voice_level.0 += f64::from(level);
            self.voice_level.1 += 1;
        }
        let fax_possible = self.decided.is_none() && self.cadence.words() == 0;
        let tone = self.tones.feed(frame, now, fax_possible);
        // Tones first: a fax is certain, and a beep ends the greeting.
        match tone {
            Some(tones::Found::Fax(cause, tone)) => {
                out.push(self.decide(Verdict::Fax, cause, 0.99, Some(tone)));
                return out;
            }
            // A carrier's announcement follows: no person, and no beep will come.
            Some(tones::Found::Sit(tone)) if self.decided.is_none() => {
                out.push(self.decide(Verdict::Machine, "SIT".into(), 0.9, Some(tone)));
                return out;
            }
            // After a person's verdict (while it is rechecked) a beep turns it into a machine's.
            Some(tones::Found::Beep(beep)) => {
                if self.decided.is_none() || rechecking {
                    let cause = format!("BEEP-{}Hz-{}ms", beep.frequency_hz, beep.length_ms);
                    let tone = ToneEvidence {
                        frequency_hz: beep.frequency_hz,
                        length_ms: beep.length_ms,
                    };
                    out.push(self.decide(Verdict::Machine, cause, 0.95, Some(tone)));
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
            if voice {
                self.opinion.voice();
            }
            if let Some((verdict, cause, confidence)) = self.cadence.feed(voice) {
                let (voice_ms, words) = (self.cadence.voice_ms(), self.cadence.words());
                if self.opinion.holds(verdict, &cause, voice_ms, words) {
                    if self.opinion.hold(verdict, cause, confidence, now, voice_ms) {
                        out.push(Event::WantTranscript);
                    }
                    if let Some(cause) = self.opinion.long_answer() {
                        out.push(self.decide(Verdict::Human, cause, 0.8, None));
                        return out;
                    }
                    if self.opinion.settled_without_words(voice_ms) {
                        out.extend(self.decide_held());
                        return out;
                    }
                } else {
                    out.push(self.decide(verdict, cause, confidence, None));
                }
            }
            if self.opinion.expired(now) {
                out.extend(self.decide_held());
            }
        } else if rechecking {
            out.extend(self.recheck_frame(voice && !self.tones.in_tone()));
        }
        out
    }

    /// One frame after a person's verdict: one utterance of `greetingMs` of voice without a pause is a greeting
    /// that opened with a hello (docs/detection.md, "A person's hello, rechecked").
    fn recheck_frame(&mut self, voice: bool) -> Option<Event> {
        let r = self.recheck.as_mut()?;
        if voice {
            r.voice_ms += FRAME_MS as u32;
            r.silence_ms = 0;
        } else {
            r.silence_ms += FRAME_MS as u32;
            if r.silence_ms >= self.pause_ms {
                r.voice_ms = 0;
            }
        }
        if r.voice_ms < self.greeting_ms {
            return None;
        }
        let cause = format!("LONGGREETING-{}-{}", r.voice_ms, self.greeting_ms);
        Some(self.decide(Verdict::Machine, cause, 0.8, None))
    }

    /// Whether the voice detector still runs: until the verdict, and while a person's verdict is rechecked. After
    /// that only tones matter, and it is dropped with its memory.
    pub fn hears_voice(&self) -> bool {
        self.vad.is_some()
    }

    fn decide(
        &mut self,
        verdict: Verdict,
        cause: String,
        confidence: f32,
        tone: Option<ToneEvidence>,
    ) -> Event {
        let revised = self.recheck.take().map(|r| r.first);
        if verdict == Verdict::Human && revised.is_none() && self.recheck_ms > 0 {
            self.recheck = Some(Recheck {
                until_ms: self.elapsed_ms + u64::from(self.recheck_ms),
                voice_ms: 0,
                silence_ms: 0,
                first: Revised {
                    result: verdict,
                    cause: cause.clone(),
                    latency_ms: self.elapsed_ms,
                },
            });
        }
        self.decided = Some(verdict);
        let held_ms = self.opinion.held_ms(self.elapsed_ms);
        self.opinion.take();
        let tenth = |x: f64| (x * 10.0).round() / 10.0;
        let (sum, n) = self.voice_level;
        let decision = Event::Decision(Decision {
            verdict,
            cause,
            confidence,
            latency_ms: self.elapsed_ms,
            evidence: Evidence {
                voice_level_db: (n > 0).then(|| tenth(sum / f64::from(n))),
                noise_floor_db: self
                    .vad
                    .as_ref()
                    .and_then(vad::Vad::floor)
                    .map(|f| tenth(f64::from(f))),
                words: self.cadence.words(),
                voice_ms: self.cadence.voice_ms(),
                silence_ms: self.cadence.silence_ms(),
                tone,
                transcript: self.opinion.snippet(),
                held_ms,
                revised,
            },
        });
        // Only a recheck still listens for voice; and the caller stops feeding a detector that no longer listens
        // (a person's verdict without a recheck), so the voice detector goes now, its floor taken above. No decision
        // comes after that.
        if !self.rechecking() {
            self.vad = None;
        }
        decision
    }
}

/// Every beep the tone detector finds in 8 kHz audio, whatever else is heard (no verdict stops it, and no tone is
/// taken for a fax): for measuring the beep detector alone (`bench/beeps.sh`).
pub fn beeps(cfg: &Config, samples: &[i16]) -> Vec<Beep> {
    let mut tones = tones::Tones::new(cfg);
    let mut out = Vec::new();
    let mut now = 0;
    // Silence at the end lets a beep at the very end be judged (after the 60 ms guard).
    let tail = [0i16; FRAME * 5];
    for frame in samples.chunks(FRAME).chain(tail.chunks(FRAME)) {
        let mut f = frame.to_vec();
        f.resize(FRAME, 0);
        now += FRAME_MS;
        if let Some(tones::Found::Beep(b)) = tones.feed(&f, now, false) {
            out.push(b);
        }
    }
    out
}

/// What a whole recording gives (the `outdial detect` output).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Analysis {
    pub decision: Decision,
    pub greeting_end: Option<Beep>,
}

/// Runs a detector over 8 kHz audio to its end (or until nothing more can be learned), without a second opinion
/// (no words: the cadence's verdict stands at once). Audio that ends before a verdict is `unknown` with cause
/// `TOOSHORT-<ms>`.
pub fn analyse(cfg: &Config, samples: &[i16]) -> Analysis {
    run(cfg, samples, None)
}

/// An offline recogniser: 8 kHz audio of one utterance → its words (`None`: it failed).
pub type Transcribe<'a> = &'a mut dyn FnMut(&[i16]) -> Option<String>;

/// A pause this long ends an utterance for the offline recogniser of [`analyse_with_words`] (as the live
/// endpointer's, `speech.early_end_ms`).
const OFFLINE_ENDPOINT_MS: u32 = 200;

/// [`analyse`] with a second opinion, as live recognition would give it: once the detector asks for words, each
/// utterance (audio since the previous one, ended by a pause of 200 ms, or by the audio's end) goes to
/// `transcribe` and its text reaches the detector as a final transcript at that moment. The recogniser's own
/// delay is not counted (live it adds its time, 0.1–1 s, to a verdict that waits for words). `transcribe`
/// returning `None` means the recogniser failed: the cadence's verdict stands.
pub fn analyse_with_words(cfg: &Config, samples: &[i16], transcribe: Transcribe<'_>) -> Analysis {
    run(cfg, samples, Some(transcribe))
}

fn run(cfg: &Config, samples: &[i16], mut transcribe: Option<Transcribe<'_>>) -> Analysis {
    let mut d = Detector::new(cfg.clone());
    let mut decision = None;
    let mut beep = None;
    // Once the detector asked for words: where the next utterance starts; and whether voice came since.
    let mut words_from: Option<usize> = None;
    let mut untranscribed = false;
    for (i, frame) in samples.chunks(FRAME).enumerate() {
        let mut f = frame.to_vec();
        f.resize(FRAME, 0);
        let mut events = d.feed(&f);
        if events.contains(&Event::WantTranscript) {
            match transcribe {
                Some(_) => words_from = Some(0),
                None => events.extend(d.no_transcript()),
            }
        }
        let silence = d.cadence.silence_ms();
        untranscribed |= silence == 0;
        let now = ((i + 1) * FRAME).min(samples.len());
        let ended = silence >= OFFLINE_ENDPOINT_MS || now == samples.len();
        if let (Some(from), Some(transcribe)) = (words_from, transcribe.as_mut())
            && ended
            && untranscribed
            && d.verdict().is_none()
        {
            words_from = Some(now);
            untranscribed = false;
            events.extend(match transcribe(&samples[from..now]) {
                Some(text) => d.transcript(&text, true),
                None => d.no_transcript(),
            });
        }
        for e in events {
            match e {
                Event::Decision(x) => decision = Some(x),
                Event::Beep(b) => beep = Some(b),
                Event::WantTranscript => {}
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
            evidence: Evidence::default(),
        }),
        greeting_end: beep,
    }
}
