//! Bot connectors. Every bot framework sits behind [`BotConnector`]: open a bot conversation for a call, send it
//! activities, receive the bot's activities in order, close it with a reason. This crate has the AudioCodes Bot
//! API in HTTP mode ([`acapi::AcApi`], PROTOCOLS.md 1.1); streaming mode, Direct Line and Dialogflow come next.

pub mod acapi;
pub mod activity;
pub mod oauth;

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BotError {
    /// Connection refused or reset, timeout, or a 5xx answer (PRODUCT.md 7.5).
    #[error("bot unreachable: {0}")]
    Unreachable(String),
    /// A 4xx answer (bad token, unknown conversation, bad request).
    #[error("bot refused the request: HTTP {status}: {body}")]
    Refused { status: u16, body: String },
    /// An answer that does not follow the protocol.
    #[error("bot answered outside the protocol: {0}")]
    Protocol(String),
}

/// What a bot conversation produces.
#[derive(Debug, Clone, PartialEq)]
pub enum FromBot {
    /// One of the bot's activities (de-duplicated by `id`, in the bot's order).
    Activity(Value),
    /// The bot conversation failed for good (after one retry); the call should end with `error`.
    Failed(BotError),
}

#[async_trait::async_trait]
pub trait BotConnector: Send + Sync {
    /// The operator's "test connection".
    async fn validate(&self) -> Result<(), BotError>;
    /// Opens the bot conversation of the call `conversation`.
    async fn open(&self, conversation: &str) -> Result<BotSession, BotError>;
}

enum Command {
    Send(Vec<Value>, Option<oneshot::Sender<()>>),
    Close {
        reason: String,
        reason_code: String,
        done: oneshot::Sender<()>,
    },
}

/// An open bot conversation: a task of its own does the exchanges one at a time, so activities reach the bot in
/// order and never twice at once. Dropping the session closes the conversation with reason `call ended`.
pub struct BotSession {
    pub events: mpsc::Receiver<FromBot>,
    commands: mpsc::Sender<Command>,
}

impl BotSession {
    /// Queues activities for the bot.
    pub async fn send(&self, activities: Vec<Value>) {
        let _ = self.commands.send(Command::Send(activities, None)).await;
    }

    /// Sends activities and waits until the bot has answered them (or the exchange failed).
    pub async fn deliver(&self, activities: Vec<Value>) {
        let (done, delivered) = oneshot::channel();
        if self
            .commands
            .send(Command::Send(activities, Some(done)))
            .await
            .is_ok()
        {
            let _ = delivered.await;
        }
    }

    /// Ends the bot conversation (the bot is told why) and waits until it is told.
    pub async fn close(&self, reason: &str, reason_code: &str) {
        let (done, told) = oneshot::channel();
        let cmd = Command::Close {
            reason: reason.to_string(),
            reason_code: reason_code.to_string(),
            done,
        };
        if self.commands.send(cmd).await.is_ok() {
            let _ = told.await;
        }
    }
}
