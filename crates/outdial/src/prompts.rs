//! The bot's activities in the order the person must hear them (PROTOCOLS.md 1.2): a message is spoken after the
//! ones before it; a hangup or transfer that follows a message takes effect once that message has been heard.
//! Prompts are held while machine detection decides (prepared, not played), and the ones prepared for a person
//! are dropped when a machine answered.

use outdial_bots::activity::BotAction;
use std::collections::VecDeque;

#[derive(Debug, Default)]
pub struct Prompts {
    queue: VecDeque<BotAction>,
    /// A message is being played.
    pub playing: bool,
    /// Nothing plays (detection has not decided, or a machine's greeting is still going).
    pub held: bool,
}

/// What to do next.
#[derive(Debug, PartialEq)]
pub enum Next {
    /// Speak this.
    Say(String),
    /// Carry out this (not a message).
    Act(BotAction),
}

impl Prompts {
    pub fn push(&mut self, action: BotAction) {
        self.queue.push_back(action);
    }

    /// The next thing to do now: None while a message plays, while held, or when there is nothing.
    pub fn next(&mut self) -> Option<Next> {
        if self.playing || self.held {
            return None;
        }
        match self.queue.pop_front()? {
            BotAction::Say(text) => Some(Next::Say(text)),
            other => Some(Next::Act(other)),
        }
    }

    /// A machine answered: what was prepared for a person is not said.
    pub fn drop_messages(&mut self) {
        self.queue.retain(|a| !matches!(a, BotAction::Say(_)));
    }
}

/// Whether the person is speaking (two voiced 20 ms frames in a row): for barge-in, and to disarm the no-input
/// timer.
pub struct Listener {
    vad: outdial_detect::vad::Vad,
    voiced: u32,
}

impl Default for Listener {
    fn default() -> Self {
        Listener {
            vad: outdial_detect::vad::Vad::new(0.5, -45.0),
            voiced: 0,
        }
    }
}

impl Listener {
    /// Feeds the caller's audio (whole 20 ms frames); true when speech was heard in it.
    pub fn heard(&mut self, audio: &[i16]) -> bool {
        let heard = audio.chunks(outdial_media::FRAME).any(|f| {
            self.voiced = if self.vad.is_voice(f) { self.voiced + 1 } else { 0 };
            self.voiced >= 2
        });
        if heard {
            self.voiced = 0;
        }
        heard
    }

    pub fn reset(&mut self) {
        self.voiced = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hangup_waits_for_the_message_before_it() {
        let mut p = Prompts::default();
        p.push(BotAction::Say("Hello".into()));
        p.push(BotAction::Hangup(None));
        assert_eq!(p.next(), Some(Next::Say("Hello".into())));
        p.playing = true;
        assert_eq!(p.next(), None, "the hangup waits");
        p.playing = false;
        assert_eq!(p.next(), Some(Next::Act(BotAction::Hangup(None))));
        // Held during detection, then the person's prompts are dropped for a machine.
        p.held = true;
        p.push(BotAction::Say("Hi there".into()));
        p.push(BotAction::SendDtmf("1".into()));
        assert_eq!(p.next(), None);
        p.drop_messages();
        p.held = false;
        assert_eq!(p.next(), Some(Next::Act(BotAction::SendDtmf("1".into()))));
        assert_eq!(p.next(), None);
    }
}
