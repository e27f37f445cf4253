//! The voice cadence rules (after Asterisk `app_amd`): initial silence, greeting length, silence after the
//! greeting, number of words, longest word, total analysis time — on per-frame voice decisions.

use crate::{Config, Verdict};

const FRAME_MS: u32 = 20;

#[derive(Debug)]
pub struct Cadence {
    cfg: Config,
    total: u32,
    voice_run: u32,
    silence_run: u32,
    in_word: bool,
    words: u32,
    /// Voice heard since the first word.
    greeting_voice: u32,
}

impl Cadence {
    pub fn new(cfg: &Config) -> Self {
        Cadence {
            cfg: cfg.clone(),
            total: 0,
            voice_run: 0,
            silence_run: 0,
            in_word: false,
            words: 0,
            greeting_voice: 0,
        }
    }

    pub fn words(&self) -> u32 {
        self.words
    }

    /// Voice heard since the first word (ms).
    pub fn voice_ms(&self) -> u32 {
        self.greeting_voice
    }

    /// The silence now (ms).
    pub fn silence_ms(&self) -> u32 {
        self.silence_run
    }

    /// One frame; a verdict with its cause and confidence when the rules decide.
    pub fn feed(&mut self, voice: bool) -> Option<(Verdict, String, f32)> {
        let c = &self.cfg;
        self.total += FRAME_MS;
        if voice {
            self.silence_run = 0;
            self.voice_run += FRAME_MS;
            if self.words > 0 || self.in_word {
                self.greeting_voice += FRAME_MS;
            }
            if !self.in_word && self.voice_run >= c.min_word_length_ms {
                self.in_word = true;
                self.words += 1;
                // The word's beginning counts as greeting.
                self.greeting_voice += self.voice_run - FRAME_MS;
                if self.words >= c.maximum_words {
                    let cause = format!("MAXWORDS-{}-{}", self.words, c.maximum_words);
                    return Some((Verdict::Machine, cause, 0.85));
                }
            }
            if self.in_word && self.voice_run >= c.maximum_word_length_ms {
                let cause = format!("LONGWORD-{}-{}", self.voice_run, c.maximum_word_length_ms);
                return Some((Verdict::Machine, cause, 0.8));
            }
            if self.greeting_voice >= c.greeting_ms {
                let cause = format!("LONGGREETING-{}-{}", self.greeting_voice, c.greeting_ms);
                return Some((Verdict::Machine, cause, 0.85));
            }
        } else {
            self.silence_run += FRAME_MS;
            if self.silence_run >= c.between_words_silence_ms {
                self.in_word = false;
                self.voice_run = 0;
            }
            if self.words == 0 && self.silence_run >= c.initial_silence_ms {
                let cause = format!("INITIALSILENCE-{}-{}", self.silence_run, c.initial_silence_ms);
                return Some((Verdict::Machine, cause, 0.7));
            }
            if self.words > 0 && self.silence_run >= c.after_greeting_silence_ms {
                let cause = format!("HUMAN-{}-{}", self.silence_run, c.after_greeting_silence_ms);
                return Some((Verdict::Human, cause, 0.85));
            }
        }
        if self.total >= c.total_analysis_ms {
            return Some((Verdict::Unknown, format!("TOOLONG-{}", self.total), 0.3));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(pattern: &[(bool, u32)]) -> Option<(Verdict, String)> {
        // Asterisk's defaults (outdial's own defaults were tuned on the corpus).
        let cfg = Config {
            greeting_ms: 1500,
            maximum_words: 3,
            ..Config::default()
        };
        let mut c = Cadence::new(&cfg);
        for &(voice, ms) in pattern {
            for _ in 0..ms / 20 {
                if let Some((v, cause, _)) = c.feed(voice) {
                    return Some((v, cause));
                }
            }
        }
        None
    }

    #[test]
    fn asterisk_style_rules() {
        // "Hello?" then waiting.
        assert_eq!(
            run(&[(false, 400), (true, 600), (false, 2000)]),
            Some((Verdict::Human, "HUMAN-800-800".into()))
        );
        // A long greeting.
        assert_eq!(
            run(&[(false, 300), (true, 1000), (false, 200), (true, 1000)])
                .unwrap()
                .1,
            "LONGGREETING-1500-1500"
        );
        // Three short words.
        assert_eq!(
            run(&[(true, 200), (false, 300), (true, 200), (false, 300), (true, 200)])
                .unwrap()
                .1,
            "MAXWORDS-3-3"
        );
        // Nobody says anything.
        assert_eq!(run(&[(false, 3000)]).unwrap().1, "INITIALSILENCE-2500-2500");
        // A click is not a word.
        assert_eq!(
            run(&[(true, 40), (false, 3000)]).unwrap().1,
            "INITIALSILENCE-2500-2500"
        );
    }
}
