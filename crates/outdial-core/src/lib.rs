//! Domain types of outdial and the validation rules of its parameters.
//!
//! This crate does no I/O. Every object that can arrive from outside (an API body, an entry of the
//! configuration file) is validated here, by one set of rules, so that the API and the configuration
//! file can never disagree about what is valid.

pub mod action;
pub mod application;
pub mod bot;
pub mod conversation;
pub mod detection;
pub mod dialout;
pub mod frameworks;
pub mod iam;
pub mod patterns;
pub mod speech;
pub mod time;
pub mod trunk;
pub mod validate;

pub use action::{ActivitySettings, BotAction};
pub use application::{Application, Effect, Policy, Role};
pub use bot::{Bot, BotType, StreamingMode};
pub use conversation::{
    Conversation, ConversationState, ConversationStatus, EventKind, HangupBy, ReasonCode,
};
pub use detection::MachineDetectionConfig;
pub use dialout::{DialoutRequest, MachineDetection};
pub use trunk::{Transport, Trunk};
pub use validate::ValidationError;
