//! The second opinion from words (docs/detection.md, "Second opinion"). When the cadence's verdict is uncertain —
//! a greeting longer than a "hello?" followed by a pause, a long answer taken for a greeting, no verdict in time —
//! the verdict is held while speech recognition transcribes the first seconds, for at most `secondOpinionMs`.
//! Meanwhile the cadence goes on (a "Hello." that a greeting follows turns into a machine) and tones still decide
//! at once. The words then settle it: a machine's phrase ([`crate::cues`]) → `machine` with its cause; a person's
//! words → the cadence's verdict. No words in time, or no recogniser → the cadence's verdict.

use crate::Verdict;
use crate::cues::{Cue, classify};

/// A "hello?" or "hello, who is this?" is shorter than this much voice: a person, decided at once.
const SURE_HUMAN_VOICE_MS: u32 = 1400;
/// The words kept as evidence.
const SNIPPET_CHARS: usize = 160;

#[derive(Debug, Clone)]
pub(crate) struct Held {
    pub verdict: Verdict,
    pub cause: String,
    pub confidence: f32,
    pub since_ms: u64,
}

#[derive(Debug)]
pub(crate) struct SecondOpinion {
    limit_ms: u64,
    /// Whether a machine verdict by cadence waits for words too (only when they can change what happens).
    pub machines: bool,
    held: Option<Held>,
    asked: bool,
    /// The final transcripts so far, and the words so far of the utterance being spoken.
    heard: String,
    partial: String,
}

/// What the words said.
pub(crate) enum Reading {
    /// A machine's phrase.
    Machine(Cue),
    /// No machine phrase, and enough words for the held verdict to stand: a person's words, or a dozen words of
    /// a greeting.
    Stands,
    /// Nothing yet: wait for more words or the limit.
    Wait,
}

impl SecondOpinion {
    pub fn new(limit_ms: u32) -> Self {
        SecondOpinion {
            limit_ms: u64::from(limit_ms),
            machines: true,
            held: None,
            asked: false,
            heard: String::new(),
            partial: String::new(),
        }
    }

    /// Whether this cadence verdict waits for words.
    pub fn holds(&self, verdict: Verdict, cause: &str, voice_ms: u32, words: u32) -> bool {
        if self.limit_ms == 0 {
            return false;
        }
        self.held.is_some()
            || match verdict {
                Verdict::Human => voice_ms >= SURE_HUMAN_VOICE_MS,
                Verdict::Machine => self.machines && words > 0 && !cause.starts_with("INITIALSILENCE"),
                Verdict::Unknown => self.machines && words > 0,
                Verdict::Fax | Verdict::Screening => false,
            }
    }

    /// Keeps the cadence's newest view (a machine outweighs a person, anything outweighs unknown). True the first
    /// time: the transcript is to be asked for.
    pub fn hold(&mut self, verdict: Verdict, cause: String, confidence: f32, now_ms: u64) -> bool {
        match &mut self.held {
            Some(h) => {
                let newer = h.verdict == Verdict::Unknown
                    || (h.verdict == Verdict::Human && verdict == Verdict::Machine);
                if newer {
                    *h = Held {
                        since_ms: h.since_ms,
                        verdict,
                        cause,
                        confidence,
                    };
                }
                false
            }
            None => {
                self.held = Some(Held {
                    verdict,
                    cause,
                    confidence,
                    since_ms: now_ms,
                });
                !std::mem::replace(&mut self.asked, true)
            }
        }
    }

    pub fn is_holding(&self) -> bool {
        self.held.is_some()
    }

    pub fn expired(&self, now_ms: u64) -> bool {
        self.held
            .as_ref()
            .is_some_and(|h| now_ms.saturating_sub(h.since_ms) >= self.limit_ms)
    }

    pub fn take(&mut self) -> Option<Held> {
        self.held.take()
    }

    pub fn current(&self) -> Option<Held> {
        self.held.clone()
    }

    /// How long the verdict has been held.
    pub fn held_ms(&self, now_ms: u64) -> Option<u64> {
        self.held.as_ref().map(|h| now_ms.saturating_sub(h.since_ms))
    }

    /// More of the transcript: a final one, or the words so far of the utterance being spoken.
    pub fn heard(&mut self, text: &str, is_final: bool) -> Reading {
        let text = text.trim();
        self.partial.clear();
        if !is_final {
            self.partial.push_str(text);
        } else if !text.is_empty() {
            if !self.heard.is_empty() {
                self.heard.push(' ');
            }
            self.heard.push_str(text);
        }
        let all = self.all();
        if let Some((cue, _)) = classify(&all) {
            return Reading::Machine(cue);
        }
        let words = all.split_whitespace().count();
        match &self.held {
            Some(h) if h.verdict == Verdict::Human && words > 0 => Reading::Stands,
            Some(_) if words >= 12 => Reading::Stands,
            _ => Reading::Wait,
        }
    }

    fn all(&self) -> String {
        format!("{} {}", self.heard, self.partial).trim().to_string()
    }

    /// The words so far, shortened for the evidence.
    pub fn snippet(&self) -> Option<String> {
        let all = self.all();
        (!all.is_empty()).then(|| all.chars().take(SNIPPET_CHARS).collect())
    }
}
