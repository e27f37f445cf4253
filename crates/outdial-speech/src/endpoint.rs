//! Where utterances start and end in 16 kHz audio (docs/speech.md, "Turn-taking"): a voice-activity network
//! (`earshot`) frame by frame; speech starts after 3 voiced frames in a row (48 ms) and ends after `end_silence_ms`
//! without voice. With smart endpointing, a shorter pause (`early_end_ms`) first hands the words so far to the
//! recogniser ([`Step::Pause`]): when they make a complete sentence, the turn ends there ([`Endpointer::end_now`]).
//! With a look-ahead (`lookahead_ms`, shorter than `early_end_ms`) the words are handed over at that shorter pause
//! so that their text is ready when the pause reaches `early_end_ms` ([`Step::PauseHeld`]): the decision still
//! waits for the whole pause, the recognition does not.

use crate::stt::{RATE, SttOptions};
use std::collections::VecDeque;

/// earshot's frame: 16 ms at 16 kHz.
const VAD_FRAME: usize = 256;
const FRAME_MS: u32 = 16;
/// Audio kept from before the start, so the first syllable is not clipped: 300 ms.
const PREROLL: usize = RATE * 3 / 10;

#[derive(Debug, PartialEq)]
pub(crate) enum Step {
    Started,
    Partial(Vec<i16>),
    /// A pause of the look-ahead (else of `early_end_ms`), numbered `pause`, in utterance number `n`: the words so
    /// far, to judge whether the turn is over.
    Pause {
        n: u64,
        pause: u64,
        pcm: Vec<i16>,
    },
    /// Pause number `pause` of utterance `n` has lasted `early_end_ms` with no voice: its words, if complete, end
    /// the turn now. Always after that pause's `Pause`.
    PauseHeld {
        n: u64,
        pause: u64,
    },
    /// Utterance number `n` ended (silence, its maximum length, or the end of the stream).
    Utterance {
        n: u64,
        pcm: Vec<i16>,
    },
}

pub(crate) struct Endpointer {
    vad: earshot::Detector<earshot::DefaultPredictor>,
    pending: Vec<i16>,
    preroll: VecDeque<i16>,
    utterance: Vec<i16>,
    speaking: bool,
    voiced_run: u32,
    silence_ms: u32,
    since_partial_ms: u32,
    end_silence_ms: u32,
    early_end_ms: Option<u32>,
    /// The pause at which the words are handed over, at most `early_end_ms`.
    lookahead_ms: u32,
    partial_ms: Option<u32>,
    max_samples: usize,
    /// The utterance being spoken (or the last one), counted from 1.
    number: u64,
    /// A `Pause` was sent for the silence going on now.
    paused: bool,
    /// A `PauseHeld` was sent for the silence going on now.
    held: bool,
    /// Pauses sent and utterances started, counted from 1: a pause's number is current until the next of either.
    pauses: u64,
    /// Voice came back after the last `Pause`.
    resumed: bool,
}

impl Endpointer {
    pub(crate) fn new(o: &SttOptions) -> Self {
        let end_silence_ms = o.end_silence_ms.max(FRAME_MS);
        let early_end_ms = o.early_end_ms.filter(|&e| e > 0 && e < end_silence_ms);
        Endpointer {
            vad: earshot::Detector::default(),
            pending: Vec::new(),
            preroll: VecDeque::with_capacity(PREROLL + VAD_FRAME),
            utterance: Vec::new(),
            speaking: false,
            voiced_run: 0,
            silence_ms: 0,
            since_partial_ms: 0,
            end_silence_ms,
            early_end_ms,
            lookahead_ms: match (o.lookahead_ms.filter(|&l| l > 0), early_end_ms) {
                (Some(l), Some(e)) => l.min(e),
                (_, e) => e.unwrap_or(0),
            },
            partial_ms: o.partial_interval_ms.filter(|&p| p > 0),
            max_samples: o.max_utterance_ms as usize * RATE / 1000,
            number: 0,
            paused: false,
            held: false,
            pauses: 0,
            resumed: false,
        }
    }

    pub(crate) fn push(&mut self, pcm: &[i16]) -> Vec<Step> {
        self.pending.extend_from_slice(pcm);
        let mut steps = Vec::new();
        let mut at = 0;
        while self.pending.len() - at >= VAD_FRAME {
            let frame: Vec<i16> = self.pending[at..at + VAD_FRAME].to_vec();
            at += VAD_FRAME;
            let voiced = self.vad.predict_i16(&frame) >= 0.5 && level_db(&frame) >= -45.0;
            if !self.speaking {
                self.preroll.extend(&frame);
                while self.preroll.len() > PREROLL {
                    self.preroll.pop_front();
                }
                self.voiced_run = if voiced { self.voiced_run + 1 } else { 0 };
                if self.voiced_run >= 3 {
                    self.speaking = true;
                    self.number += 1;
                    // A new utterance supersedes the last pause (its words are no longer the whole turn).
                    self.pauses += 1;
                    self.paused = false;
                    self.resumed = false;
                    self.silence_ms = 0;
                    self.since_partial_ms = 0;
                    self.utterance = self.preroll.drain(..).collect();
                    steps.push(Step::Started);
                }
                continue;
            }
            self.utterance.extend_from_slice(&frame);
            if voiced {
                self.silence_ms = 0;
                if self.paused {
                    self.paused = false;
                    self.resumed = true;
                }
            } else {
                self.silence_ms += FRAME_MS;
            }
            self.since_partial_ms += FRAME_MS;
            if self.silence_ms >= self.end_silence_ms || self.utterance.len() >= self.max_samples {
                steps.extend(self.finish());
            } else if let Some(e) = self.early_end_ms
                && self.silence_ms >= self.lookahead_ms
            {
                if !self.paused {
                    self.paused = true;
                    self.held = false;
                    self.resumed = false;
                    self.pauses += 1;
                    steps.push(Step::Pause {
                        n: self.number,
                        pause: self.pauses,
                        pcm: self.utterance.clone(),
                    });
                }
                if !self.held && self.silence_ms >= e {
                    self.held = true;
                    steps.push(Step::PauseHeld {
                        n: self.number,
                        pause: self.pauses,
                    });
                }
            } else if let Some(p) = self.partial_ms
                && self.since_partial_ms >= p
                && self.silence_ms == 0
            {
                self.since_partial_ms = 0;
                steps.push(Step::Partial(self.utterance.clone()));
            }
        }
        self.pending.drain(..at);
        steps
    }

    /// Ends the utterance being spoken, if any (keeps 200 ms of the silence after it).
    pub(crate) fn finish(&mut self) -> Option<Step> {
        if !self.speaking {
            return None;
        }
        self.speaking = false;
        self.voiced_run = 0;
        let trailing = (self.silence_ms as usize * RATE / 1000).saturating_sub(RATE / 5);
        let keep = self.utterance.len().saturating_sub(trailing);
        self.utterance.truncate(keep);
        Some(Step::Utterance {
            n: self.number,
            pcm: std::mem::take(&mut self.utterance),
        })
    }

    /// Whether the person spoke again after pause number `pause` (a later pause, or a later utterance, means so).
    pub(crate) fn resumed_since(&self, pause: u64) -> bool {
        self.pauses != pause || self.resumed
    }

    /// The turn ended at utterance `n`'s pause: the utterance is closed without another recognition.
    pub(crate) fn end_now(&mut self, n: u64) {
        if self.speaking && self.number == n {
            self.speaking = false;
            self.voiced_run = 0;
            self.utterance.clear();
        }
    }
}

fn level_db(frame: &[i16]) -> f32 {
    let e: f64 = frame.iter().map(|&s| f64::from(s) * f64::from(s)).sum::<f64>() / frame.len().max(1) as f64;
    (10.0 * (e / (32768.0 * 32768.0) + 1e-12).log10()) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(ms: usize, hz: f32, amp: f32) -> Vec<i16> {
        (0..ms * RATE / 1000)
            .map(|i| (amp * (2.0 * std::f32::consts::PI * hz * i as f32 / RATE as f32).sin()) as i16)
            .collect()
    }

    #[test]
    fn silence_and_a_steady_tone_are_not_speech() {
        let mut ep = Endpointer::new(&SttOptions::default());
        assert!(ep.push(&vec![0; RATE * 2]).is_empty());
        // A pure tone (a beep) at a speech level: the network does not call it voice.
        let steps = ep.push(&tone(1000, 1000.0, 8000.0));
        assert!(steps.is_empty(), "{steps:?}");
    }

    #[test]
    fn an_early_pause_longer_than_the_end_silence_is_ignored() {
        let o = SttOptions {
            end_silence_ms: 300,
            early_end_ms: Some(400),
            ..Default::default()
        };
        assert_eq!(Endpointer::new(&o).early_end_ms, None);
    }
}
