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
    /// The verdict, and the conversation's `detection` record: store it, notify when asked.
    Verdict(Verdict, Value),
    /// A `machineDetection` event for the bot, with this value.
    BotEvent(&'static str),
    /// Hang up with reasonCode `machine-detected` and this reason.
    HangUp(&'static str),
    /// The voicemail greeting ended (the updated `detection` record).
    GreetingEnd(Value),
    /// Start waiting `voicemailEndTimeoutSec` for the beep.
    AwaitBeep,
}

pub struct Detection {
    detector: Detector,
    mode: MachineDetection,
    record: Value,
    greeting_ended: bool,
}

impl Detection {
    /// None when the dialout did not ask for detection.
    pub fn new(mode: MachineDetection, cfg: Option<&MachineDetectionConfig>) -> Option<Self> {
        if mode == MachineDetection::Disabled {
            return None;
        }
        Some(Detection {
            detector: Detector::new(cfg.cloned().unwrap_or_default()),
            mode,
            record: Value::Null,
            greeting_ended: false,
        })
    }

    /// Whether audio should still be fed.
    pub fn listening(&self) -> bool {
        self.detector.listening() && !self.greeting_ended
    }

    /// One 20 ms frame of the caller's audio.
    pub fn on_frame(&mut self, frame: &[i16]) -> Vec<Step> {
        let mut steps = Vec::new();
        if !self.listening() {
            return steps;
        }
        for event in self.detector.feed(frame) {
            match event {
                Event::Decision(d) => {
                    self.record = json!({
                        "result": d.verdict,
                        "cause": d.cause,
                        "confidence": (f64::from(d.confidence) * 100.0).round() / 100.0,
                        "latencyMs": d.latency_ms,
                        "evidence": d.evidence,
                    });
                    steps.push(Step::Verdict(d.verdict, self.record.clone()));
                    match (d.verdict, self.mode) {
                        (Verdict::Fax, _) => steps.push(Step::HangUp("fax detected")),
                        (Verdict::Machine, MachineDetection::Disconnect) => {
                            steps.push(Step::HangUp("voicemail detected"))
                        }
                        (Verdict::Machine, MachineDetection::Detect) => {
                            steps.push(Step::BotEvent("voicemail-prompt-start"));
                            steps.push(Step::AwaitBeep);
                        }
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
