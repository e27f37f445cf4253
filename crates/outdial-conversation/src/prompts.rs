//! The bot's actions in the order the person must hear them (docs/bots.md, "Order"): a message is spoken after
//! the ones before it; a hangup or transfer that follows a message takes effect once that message has been heard.
//! Prompts are held while machine detection decides (prepared, not played), and the ones prepared for a person
//! are dropped when a machine answered.

use outdial_core::BotAction;
use std::collections::VecDeque;

#[derive(Debug, Default)]
pub struct Prompts {
    queue: VecDeque<BotAction>,
    /// Nothing plays (detection has not decided, or a machine's greeting is still going).
    pub held: bool,
}

impl Prompts {
    pub fn push(&mut self, action: BotAction) {
        self.queue.push_back(action);
    }

    /// The next action to carry out now: None while held, or when there is nothing.
    pub fn take_next(&mut self) -> Option<BotAction> {
        if self.held {
            return None;
        }
        self.queue.pop_front()
    }

    /// A machine answered, or the bot aborted its prompts: the messages not yet said are not said.
    pub fn drop_messages(&mut self) {
        self.queue
            .retain(|a| !matches!(a, BotAction::Say(_) | BotAction::PlayUrl { .. }));
    }
}

/// A message in the pieces it is synthesised in: its sentences (ending in `.`, `?` or `!` before a space), a piece
/// shorter than 30 characters joined to the next. SSML stays whole.
pub fn sentences(text: &str) -> Vec<String> {
    if text.trim_start().starts_with('<') {
        return vec![text.to_string()];
    }
    let mut parts: Vec<String> = Vec::new();
    let mut cur = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        cur.push(c);
        let ends = ".?!".contains(c) && chars.peek().is_none_or(|n| n.is_whitespace());
        if ends && cur.trim().chars().count() >= 30 {
            parts.push(cur.trim().to_string());
            cur.clear();
        }
    }
    if !cur.trim().is_empty() {
        parts.push(cur.trim().to_string());
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_synthesised_sentence_by_sentence() {
        assert_eq!(
            sentences("Hello Alice, this is the reference bot. Would you like to hear about our new offer?"),
            vec![
                "Hello Alice, this is the reference bot.",
                "Would you like to hear about our new offer?"
            ]
        );
        // Short sentences go with the next; a dot inside a number does not split; SSML stays whole.
        assert_eq!(
            sentences("Hi. It costs 3.50 dollars today. Bye."),
            vec!["Hi. It costs 3.50 dollars today.", "Bye."]
        );
        assert_eq!(
            sentences("<speak>One. Two.</speak>"),
            vec!["<speak>One. Two.</speak>"]
        );
        assert_eq!(sentences(""), Vec::<String>::new());
    }

    #[test]
    fn held_prompts_wait_and_a_machine_drops_the_messages() {
        let mut p = Prompts {
            held: true,
            ..Default::default()
        };
        p.push(BotAction::Say("Hi there".into()));
        p.push(BotAction::SendDtmf("1".into()));
        assert_eq!(p.take_next(), None);
        p.drop_messages();
        p.held = false;
        assert_eq!(p.take_next(), Some(BotAction::SendDtmf("1".into())));
        assert_eq!(p.take_next(), None);
    }
}
