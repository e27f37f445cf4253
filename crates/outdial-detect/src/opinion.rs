//! The second opinion from words (docs/detection.md, "Second opinion"). When the cadence's verdict is uncertain —
//! a greeting longer than a "hello?" followed by a pause, a long answer taken for a greeting, no verdict in time —
//! the verdict is held while speech recognition transcribes the first seconds, for at most `secondOpinionMs`.
//! Meanwhile the cadence goes on (a "Hello." that a greeting follows turns into a machine) and tones still decide
//! at once. The words then settle it: a machine's phrase ([`crate::cues`]) → `machine` with its cause; a person's
//! words → the cadence's verdict. No words in time, or no recogniser → the cadence's verdict.
//!
//! A long answer: the cadence takes a person's "hello, one moment please" (about 2 s of voice said at once) for a
//! greeting by its length. When such a speaker stops — a pause of `afterGreetingSilenceMs` after at most
//! [`LONG_ANSWER_MAX_VOICE_MS`] of voice — and their words hold no machine's phrase, the verdict is a person's
//! (docs/detection.md, "Second opinion": a person's longer answer).

use crate::Verdict;
use crate::cues::{Cue, classify};

/// A "hello?" or "hello, who is this?" is shorter than this much voice: a person, decided at once.
const SURE_HUMAN_VOICE_MS: u32 = 1400;
/// The words kept as evidence.
const SNIPPET_CHARS: usize = 160;
/// At most this much voice before a pause can be a person's longer answer; a greeting is longer.
pub const LONG_ANSWER_MAX_VOICE_MS: u32 = 3000;

/// A machine verdict by length alone (a long greeting, many words): a person's longer answer looks the same.
fn by_length(verdict: Verdict, cause: &str) -> bool {
    verdict == Verdict::Machine && (cause.starts_with("LONGGREETING") || cause.starts_with("MAXWORDS"))
}

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
    /// The speaker stopped after a machine verdict by length, short enough for a person's answer: the cadence's
    /// cause for the pause (`HUMAN-…`).
    paused: Option<String>,
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
    /// A person's longer answer (see the module's doc): a person, with the cause of their pause.
    Person(String),
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
            paused: None,
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
                Verdict::Machine => {
                    words > 0
                        && !cause.starts_with("INITIALSILENCE")
                        && (self.machines
                            || (by_length(verdict, cause) && voice_ms <= LONG_ANSWER_MAX_VOICE_MS))
                }
                Verdict::Unknown => self.machines && words > 0,
                Verdict::Fax | Verdict::Screening => false,
            }
    }

    /// Keeps the cadence's newest view (a machine outweighs a person, anything outweighs unknown; a pause after
    /// a machine verdict by length is kept aside as a possible long answer). True the first time: the transcript
    /// is to be asked for.
    pub fn hold(
        &mut self,
        verdict: Verdict,
        cause: String,
        confidence: f32,
        now_ms: u64,
        voice_ms: u32,
    ) -> bool {
        match &mut self.held {
            Some(h) => {
                if verdict == Verdict::Human
                    && by_length(h.verdict, &h.cause)
                    && voice_ms <= LONG_ANSWER_MAX_VOICE_MS
                    && self.paused.is_none()
                {
                    self.paused = Some(cause.clone());
                }
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

    /// Voice again: whatever pause was seen has ended.
    pub fn voice(&mut self) {
        self.paused = None;
    }

    /// Without words for machines (`disconnect` mode), a machine verdict by length waits only while it could be
    /// a person's longer answer: past [`LONG_ANSWER_MAX_VOICE_MS`] of voice it stands at once.
    pub fn settled_without_words(&self, voice_ms: u32) -> bool {
        !self.machines
            && voice_ms > LONG_ANSWER_MAX_VOICE_MS
            && self.held.as_ref().is_some_and(|h| h.verdict == Verdict::Machine)
    }

    /// A person's longer answer: they stopped, and their words (a final transcript) hold no machine's phrase.
    /// The cause of the pause.
    pub fn long_answer(&self) -> Option<String> {
        let cause = self.paused.as_ref()?;
        (!self.heard.is_empty() && classify(&self.heard).is_none()).then(|| cause.clone())
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
        if let Some(cause) = self.long_answer() {
            return Reading::Person(cause);
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
