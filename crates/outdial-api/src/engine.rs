//! The seam between the API and the call engine: the API hands over accepted conversations and asks for
//! hang-ups; the engine (in the `outdial` binary) owns each conversation until its terminal state.

use async_trait::async_trait;
use outdial_core::{Bot, Conversation, Trunk};
use outdial_limits::Lease;
use uuid::Uuid;

/// A conversation the API accepted, with everything needed to place its call.
#[derive(Debug)]
pub struct AcceptedCall {
    pub conversation: Conversation,
    pub bot: Bot,
    pub trunk: Trunk,
    /// The concurrency slot; released when dropped.
    pub lease: Lease,
    /// Key of `X-Outdial-Signature` (the application's `notifySecret`, else the bot's).
    pub notify_secret: Option<String>,
}

/// What a hang-up request found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HangupOutcome {
    /// The engine is ending the conversation.
    Ending,
    /// The engine does not run this conversation (it ended, or another node owns it).
    NotRunning,
}

/// What the engine answers when it cannot do what the API asks. Each carries the sentence the API's caller reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// The trunk cannot carry calls now (503).
    #[error("{0}")]
    TrunkDown(String),
    /// The node has no room for another call now (no free RTP port): 503.
    #[error("{0}")]
    Busy(String),
    /// The engine's transports are not ready (`/readyz`).
    #[error("{0}")]
    NotReady(String),
    /// A bot did not pass its connection test.
    #[error("{0}")]
    BotTest(String),
}

#[async_trait]
pub trait CallEngine: Send + Sync + 'static {
    /// Takes over an accepted conversation (already stored in state `accepted`).
    async fn start(&self, call: AcceptedCall);
    /// Ends a live conversation (reasonCode `error`, reason `ended by API`).
    async fn hangup(&self, id: Uuid) -> HangupOutcome;
    /// Whether calls can go out through this trunk now (`Err` says why not: 503).
    fn trunk_usable(&self, trunk: &Trunk) -> Result<(), EngineError>;
    /// Readiness of the engine's own transports (`/readyz`).
    fn ready(&self) -> Result<(), EngineError>;
    /// The operator's "test connection" of a bot: Ok when the bot answers its protocol's validation.
    async fn test_bot(&self, bot: &outdial_core::Bot) -> Result<(), EngineError> {
        Err(EngineError::BotTest(format!(
            "bot '{}' cannot be tested by this engine",
            bot.name
        )))
    }
    /// Calls this node runs now.
    fn live_calls(&self) -> usize {
        0
    }
    /// The keep-alive state of each watched trunk (`up`, `down: why`, `unknown`), for `/readyz`.
    fn trunk_states(&self) -> Vec<(String, String)> {
        Vec::new()
    }
}
