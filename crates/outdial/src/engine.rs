//! The call engine: one task per conversation, owning its state machine and receiving commands on one channel.
//!
//! Outbound SIP is not part of this build yet (it is the next piece of work): a conversation's task records
//! that and ends the conversation as `failed` with reasonCode `error`, so that every accepted conversation
//! still reaches exactly one terminal state, its dialer is notified, its concurrency slot is released, and the
//! record says why.

use async_trait::async_trait;
use dashmap::DashMap;
use outdial_api::engine::{AcceptedCall, CallEngine, HangupOutcome};
use outdial_core::conversation::{Conversation, ConversationState, ReasonCode};
use outdial_core::time::now_ms;
use outdial_core::{Application, Bot, Trunk};
use outdial_notify::Notifier;
use outdial_store::{Kind, OutboxRow, OutboxStatus, Store};
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
    notifier: Arc<Notifier>,
    live: Arc<DashMap<Uuid, mpsc::Sender<Command>>>,
}

/// Ends a conversation: its terminal state, the `ended`/`failed` event and (with a `notifyUrl`) the terminal
/// notification, in one transaction; then wakes the notifier.
async fn end(
    store: &dyn Store,
    notifier: &Notifier,
    conv: &mut Conversation,
    reason_code: ReasonCode,
    reason: &str,
    hangup_by: &str,
    notify_secret: Option<String>,
) -> outdial_store::Result<()> {
    let now = now_ms();
    conv.state = if conv.connect_time.is_some() {
        ConversationState::Ended
    } else {
        ConversationState::Failed
    };
    conv.reason_code = Some(reason_code);
    conv.reason = Some(reason.to_string());
    conv.hangup_by = Some(hangup_by.to_string());
    conv.ended_at = Some(now);
    conv.updated_at = now;
    let mut outbox = Vec::new();
    if let (Some(url), Some(status)) = (conv.request.notify_url.clone(), conv.state.outcome()) {
        conv.notify_seq += 1;
        let body = conv.notification(status, conv.notify_seq, now).to_string();
        outbox.push(OutboxRow {
            event_id: Uuid::new_v4(),
            conversation_id: conv.id,
            sequence: conv.notify_seq,
            url,
            body,
            secret: notify_secret,
            status: OutboxStatus::Pending,
            attempts: 0,
            next_attempt_at: now,
            last_error: None,
            created_at: now,
            delivered_at: None,
        });
    }
    let data = json!({"reasonCode": reason_code, "reason": reason, "hangupBy": hangup_by});
    store
        .transition(conv, conv.state.as_str(), &data, &outbox)
        .await?;
    if !outbox.is_empty() {
        notifier.wake();
    }
    Ok(())
}

impl Engine {
    pub fn new(store: Arc<dyn Store>, notifier: Arc<Notifier>) -> Self {
        Engine {
            store,
            notifier,
            live: Arc::new(DashMap::new()),
        }
    }

    /// Ends conversations a previous run left unfinished (a crash): reasonCode `error`, reason
    /// `gateway restarted`, with their terminal notification.
    pub async fn recover(&self) -> anyhow::Result<usize> {
        let left = self.store.live_conversations().await?;
        for mut c in left.iter().cloned() {
            let secret = self.notify_secret_of(&c).await;
            end(
                &*self.store,
                &self.notifier,
                &mut c,
                ReasonCode::Error,
                "gateway restarted",
                "system",
                secret,
            )
            .await?;
        }
        Ok(left.len())
    }

    /// The signing key a conversation's notifications use: its application's, else its bot's.
    async fn notify_secret_of(&self, c: &Conversation) -> Option<String> {
        let app: Option<Application> = self
            .store
            .get_object(Kind::Application, &c.client_id)
            .await
            .ok()
            .flatten()
            .and_then(|d| serde_json::from_value(d).ok());
        if let Some(s) = app.and_then(|a| a.notify_secret) {
            return Some(s);
        }
        let bot: Option<Bot> = self
            .store
            .get_object(Kind::Bot, &c.bot)
            .await
            .ok()
            .flatten()
            .and_then(|d| serde_json::from_value(d).ok());
        bot.and_then(|b| b.notify_secret)
    }
}

async fn run(
    store: Arc<dyn Store>,
    notifier: Arc<Notifier>,
    call: AcceptedCall,
    mut commands: mpsc::Receiver<Command>,
) {
    let AcceptedCall {
        mut conversation,
        lease,
        notify_secret,
        ..
    } = call;
    let id = conversation.id;
    let reason = match commands.try_recv() {
        Ok(Command::Hangup) => "ended by API",
        Err(_) => "outbound SIP calling is not available in this build yet",
    };
    if let Err(e) = end(
        &*store,
        &notifier,
        &mut conversation,
        ReasonCode::Error,
        reason,
        "system",
        notify_secret,
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
        let (store, notifier, live) = (self.store.clone(), self.notifier.clone(), self.live.clone());
        tokio::spawn(async move {
            run(store, notifier, call, rx).await;
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
