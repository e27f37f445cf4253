//! The call engine: one task per conversation, owning its state machine and receiving commands on one channel.
//!
//! Outbound SIP is not part of this build yet (it is the next piece of work): a conversation's task records
//! that and ends the conversation as `failed` with reasonCode `error`, so that every accepted conversation
//! still reaches exactly one terminal state, its concurrency slot is released, and the record says why.

use async_trait::async_trait;
use dashmap::DashMap;
use outdial_api::engine::{AcceptedCall, CallEngine, HangupOutcome};
use outdial_core::Trunk;
use outdial_core::conversation::{ConversationState, ReasonCode};
use outdial_core::time::now_ms;
use outdial_store::Store;
use serde_json::json;
use std::sync::Arc;
use tokio::sync::mpsc;
use uuid::Uuid;

#[derive(Debug)]
enum Command {
    Hangup,
}

pub struct Engine {
    store: Arc<dyn Store>,
    live: Arc<DashMap<Uuid, mpsc::Sender<Command>>>,
}

impl Engine {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Engine {
            store,
            live: Arc::new(DashMap::new()),
        }
    }

    /// Ends conversations a previous run left unfinished (a crash): `failed`/`ended` with `error`.
    pub async fn recover(&self) -> anyhow::Result<usize> {
        let left = self.store.live_conversations().await?;
        for mut c in left.iter().cloned() {
            let now = now_ms();
            let answered = c.state == ConversationState::Answered;
            c.state = if answered {
                ConversationState::Ended
            } else {
                ConversationState::Failed
            };
            c.reason_code = Some(ReasonCode::Error);
            c.reason = Some("gateway restarted".into());
            c.hangup_by = Some("system".into());
            c.ended_at = Some(now);
            c.updated_at = now;
            self.store
                .update_conversation(&c, c.state.as_str(), &json!({"reason": "gateway restarted"}))
                .await?;
        }
        Ok(left.len())
    }
}

async fn run(store: Arc<dyn Store>, call: AcceptedCall, mut commands: mpsc::Receiver<Command>) {
    let AcceptedCall {
        mut conversation,
        lease,
        ..
    } = call;
    let id = conversation.id;
    let reason = match commands.try_recv() {
        Ok(Command::Hangup) => "ended by API".to_string(),
        Err(_) => "outbound SIP calling is not available in this build yet".to_string(),
    };
    let now = now_ms();
    conversation.state = ConversationState::Failed;
    conversation.reason_code = Some(ReasonCode::Error);
    conversation.reason = Some(reason.clone());
    conversation.hangup_by = Some("system".into());
    conversation.ended_at = Some(now);
    conversation.updated_at = now;
    if let Err(e) = store
        .update_conversation(
            &conversation,
            "failed",
            &json!({"reasonCode": "error", "reason": reason}),
        )
        .await
    {
        tracing::error!(conversation = %id, "could not record the end of the conversation: {e}");
    }
    tracing::info!(conversation = %id, "conversation failed: {reason}");
    lease.release().await;
}

#[async_trait]
impl CallEngine for Engine {
    async fn start(&self, call: AcceptedCall) {
        let id = call.conversation.id;
        let (tx, rx) = mpsc::channel(8);
        self.live.insert(id, tx);
        let store = self.store.clone();
        let live = self.live.clone();
        tokio::spawn(async move {
            run(store, call, rx).await;
            live.remove(&id);
        });
    }

    async fn hangup(&self, id: Uuid) -> HangupOutcome {
        let Some(tx) = self.live.get(&id).map(|t| t.clone()) else {
            return HangupOutcome::NotRunning;
        };
        if tx.send(Command::Hangup).await.is_ok() {
            HangupOutcome::Ending
        } else {
            HangupOutcome::NotRunning
        }
    }

    fn trunk_usable(&self, _trunk: &Trunk) -> Result<(), String> {
        Ok(())
    }

    fn ready(&self) -> Result<(), String> {
        Ok(())
    }
}
