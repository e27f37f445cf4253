//! Machine detection in an answered call (docs/detection.md): the caller's audio goes to the
//! detector until it has nothing more to say, and its findings become steps for the conversation task:
//!
//! * `disconnect`: a machine or a fax → hang up (`machine-detected`, `voicemail detected` / `fax detected`);
//! * `detect`: a fax → hang up; a machine → bot event `voicemail-prompt-start`, then `voicemail-prompt-end-beep`
//!   at the beep (or when `voicemailEndTimeoutSec` passes), and the terminal notification says
//!   `machineDetection: "voicemail beep"` (or `"voicemail timeout"`).

use outdial_core::{MachineDetection, MachineDetectionConfig};
use outdial_detect::{Detector, Event, Verdict};
use serde_json::{Value, json};

#[derive(Debug, PartialEq)]
pub enum Step {
    /// The verdict, and the conversation's `detection` record: store it, notify when asked. `revised`: it
    /// replaces a person's verdict (docs/detection.md, "A person's hello, rechecked").
    Verdict {
        verdict: Verdict,
        record: Value,
        revised: bool,
    },
    /// A `machineDetection` event for the bot, with this value.
    BotEvent(&'static str),
    /// Hang up with reasonCode `machine-detected` and this reason.
    HangUp(&'static str),
    /// The voicemail greeting ended (the updated `detection` record).
    GreetingEnd(Value),
    /// Start waiting `voicemailEndTimeoutSec` for the beep.
    AwaitBeep,
    /// The second opinion (docs/detection.md): recognise the caller's words, starting with this audio (from the
    /// answer), and pass them to [`Detection::on_transcript`].
    Transcribe(Vec<i16>),
}

/// The audio kept from the answer for the second opinion (8 s).
const KEEP_SAMPLES: usize = 8 * 8000;

pub struct Detection {
    detector: Detector,
    mode: MachineDetection,
    record: Value,
    greeting_ended: bool,
    /// The caller's audio from the answer, until the verdict (for the second opinion).
    kept: Vec<i16>,
    /// The second opinion's recognition runs.
    transcribing: bool,
    /// How much audio to keep: none when the second opinion is off.
    keep: usize,
}

impl Detection {
    /// None when the dialout did not ask for detection.
    pub fn new(mode: MachineDetection, cfg: Option<&MachineDetectionConfig>) -> Option<Self> {
        if mode == MachineDetection::Disabled {
            return None;
        }
        let cfg = cfg.cloned().unwrap_or_default();
        let mut detector = Detector::new(cfg.clone());
        // docs/detection.md, "Second opinion": in `disconnect` mode a machine is hung up whatever its words say.
        detector.words_for_machines(mode != MachineDetection::Disconnect || cfg.screening_verdict);
        Some(Detection {
            detector,
            mode,
            record: Value::Null,
            greeting_ended: false,
            kept: Vec::new(),
            transcribing: false,
            keep: if cfg.second_opinion_ms > 0 {
                KEEP_SAMPLES
            } else {
                0
            },
        })
    }

    /// Whether audio should still be fed.
    pub fn listening(&self) -> bool {
        self.detector.listening() && !self.greeting_ended
    }

    /// One 20 ms frame of the caller's audio.
    pub fn on_frame(&mut self, frame: &[i16]) -> Vec<Step> {
        if !self.listening() {
            return Vec::new();
        }
        if self.detector.verdict().is_none() && !self.transcribing && self.kept.len() < self.keep {
            self.kept.extend_from_slice(frame);
        }
        let events = self.detector.feed(frame);
        self.steps(events)
    }

    /// Words from the second opinion's recognition: a final transcript, or the words so far of the utterance.
    pub fn on_transcript(&mut self, text: &str, is_final: bool) -> Vec<Step> {
        let events = self.detector.transcript(text, is_final);
        self.steps(events)
    }

    /// The second opinion's recognition ended (or never started) without settling the verdict.
    pub fn on_no_transcript(&mut self) -> Vec<Step> {
        let events = self.detector.no_transcript();
        self.steps(events)
    }

    /// Whether a person's verdict is being rechecked (docs/detection.md, "A person's hello, rechecked").
    pub fn rechecking(&self) -> bool {
        self.detector.listening() && self.detector.verdict() == Some(Verdict::Human)
    }

    /// Whether a verdict waits for the second opinion's words.
    pub fn wants_words(&self) -> bool {
        self.transcribing && self.detector.verdict().is_none()
    }

    fn steps(&mut self, events: Vec<Event>) -> Vec<Step> {
        let mut steps = Vec::new();
        for event in events {
            match event {
                Event::WantTranscript => {
                    self.transcribing = true;
                    steps.push(Step::Transcribe(std::mem::take(&mut self.kept)));
                }
                Event::Decision(d) => {
                    self.kept = Vec::new();
                    self.record = json!({
                        "result": d.verdict,
                        "cause": d.cause,
                        "confidence": (f64::from(d.confidence) * 100.0).round() / 100.0,
                        "latencyMs": d.latency_ms,
                        "evidence": d.evidence,
                    });
                    steps.push(Step::Verdict {
                        verdict: d.verdict,
                        record: self.record.clone(),
                        revised: d.evidence.revised.is_some(),
                    });
                    match (d.verdict, self.mode) {
                        (Verdict::Fax, _) => steps.push(Step::HangUp("fax detected")),
                        (Verdict::Machine, MachineDetection::Disconnect) => {
                            steps.push(Step::HangUp("voicemail detected"))
                        }
                        (Verdict::Machine, MachineDetection::Detect) => {
                            steps.push(Step::BotEvent("voicemail-prompt-start"));
                            steps.push(Step::AwaitBeep);
                        }
                        // A screening service asks who calls: the bot is told, and speaks.
                        (Verdict::Screening, _) => steps.push(Step::BotEvent("call-screening")),
                        _ => {}
                    }
                }
                Event::Beep(b) => {
                    if self.mode == MachineDetection::Detect
                        && self.detector.verdict() == Some(Verdict::Machine)
                    {
                        self.record["greetingEnd"] =
                            json!({"kind": "beep", "timeMs": b.time_ms, "frequencyHz": b.frequency_hz});
                        steps.extend(self.greeting_end("voicemail beep"));
                    }
                }
            }
        }
        steps
    }

    /// `voicemailEndTimeoutSec` passed without a beep.
    pub fn on_beep_timeout(&mut self, after_ms: u64) -> Vec<Step> {
        if self.greeting_ended {
            return Vec::new();
        }
        self.record["greetingEnd"] = json!({"kind": "timeout", "timeMs": after_ms});
        self.greeting_end("voicemail timeout")
    }

    fn greeting_end(&mut self, how: &'static str) -> Vec<Step> {
        self.greeting_ended = true;
        self.record["voicemail"] = Value::String(how.into());
        vec![
            Step::GreetingEnd(self.record.clone()),
            Step::BotEvent("voicemail-prompt-end-beep"),
        ]
    }
}
