//! The conversation of one call, written sans-IO (docs/architecture.md, "The conversation engine").
//!
//! [`Machine`] is the whole logic of a call from the INVITE to its end — the lifecycle of docs/calls.md, the bot's
//! actions in order (docs/bots.md), machine detection (docs/detection.md), prompts, listening, timers — as one
//! function: [`Machine::on`] takes an [`Input`] and returns the [`Effect`]s to carry out. It does no I/O and never
//! waits, so every input can arrive at any time and its handling is tested in microseconds.
//!
//! [`driver::run`] runs a machine against an [`driver::Io`]: it waits for the next input (the world's events,
//! the results of slow work, fired timers), feeds it to the machine and hands the effects to the `Io`, which
//! carries out quick ones at once and spawns slow ones (synthesis, fetches, opening the bot) whose results come
//! back as inputs. The loop awaits nothing else.

mod bot;
pub mod detection;
pub mod driver;
mod effect;
mod input;
pub mod listener;
mod machine;
mod media;
pub mod prompts;
mod sip;
mod speaking;

/// Samples per 20 ms frame at 8 kHz.
pub const FRAME: usize = 160;

pub use effect::{BotEffect, Effect, MediaEffect, Record, SipEffect, SpeechEffect, TimerId, ToBot};
pub use input::{ApiCommand, BotActivity, BotInput, Failure, Input, MediaInput, SipInput, SttInput};
pub use machine::{CallSettings, Machine};
