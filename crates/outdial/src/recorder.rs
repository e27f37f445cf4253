//! The one writer of conversation state: a state change goes into the store with its notification (the outbox)
//! in one transaction, then the notifier is woken (docs/api.md, "Status notifications"). No other code writes
//! conversation state.
//!
//! Each conversation gets a [`Recording`]: its records are written in order, driven from the conversation's input
//! loop beside its other inputs, so the conversation never waits for the store. The records that queue up while a
//! write is under way are written together, in one transaction (docs/architecture.md, "The store"). A write that
//! fails is retried (the store may come back); the conversation's records stay in order meanwhile.

use outdial_conversation::Record;
use outdial_core::conversation::ConversationStatus;
use outdial_core::time::now_ms;
use outdial_core::{Conversation, ReasonCode};
use outdial_limits::Lease;
use outdial_notify::Notifier;
use outdial_store::{Change, MAX_CHANGES, OutboxRow, OutboxStatus, Store, StoreError};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// How long a failing write is retried before it is given up (the store stays down this long).
const RETRY_FOR: Duration = Duration::from_secs(300);

/// Writes conversation state and its notifications.
#[derive(Clone)]
pub struct Recorder {
    store: Arc<dyn Store>,
    notifier: Arc<Notifier>,
}

impl Recorder {
    pub fn new(store: Arc<dyn Store>, notifier: Arc<Notifier>) -> Self {
        Recorder { store, notifier }
    }

    /// Writes records of conversation `id` now (at most [`MAX_CHANGES`]), in one transaction, all or none:
    /// transitions with their notifications (signed with `secret`), and timeline events. True when notifications were
    /// written: the caller wakes the notifier (after freeing the slot, [`Recording::release_with_end`]).
    async fn write(&self, id: Uuid, records: &[Record], secret: Option<&str>) -> Result<bool, StoreError> {
        let outboxes: Vec<Vec<OutboxRow>> = records
            .iter()
            .map(|r| match r {
                Record::Transition {
                    conversation, notify, ..
                } => notify
                    .and_then(|status| outbox_row(conversation, status, secret))
                    .into_iter()
                    .collect(),
                Record::Event { .. } => Vec::new(),
            })
            .collect();
        let changes: Vec<Change<'_>> = records
            .iter()
            .zip(&outboxes)
            .map(|(r, outbox)| match r {
                Record::Transition {
                    conversation,
                    kind,
                    data,
                    ..
                } => Change::Transition {
                    conversation,
                    kind: kind.as_str(),
                    data,
                    outbox,
                },
                Record::Event { kind, data } => Change::Event {
                    kind: kind.as_str(),
                    data,
                },
            })
            .collect();
        self.store.record(id, &changes).await?;
        Ok(outboxes.iter().any(|o| !o.is_empty()))
    }

    /// Ends a conversation that has no task (recovery after a crash, a call that failed before it began): its
    /// terminal state and notification; its concurrency slot is freed once they are stored, before the notifier
    /// is woken (see [`Recording::release_with_end`]).
    pub async fn end(
        &self,
        mut conv: Conversation,
        reason_code: ReasonCode,
        reason: &str,
        secret: Option<&str>,
        slot: Lease,
    ) -> Result<(), StoreError> {
        let (kind, data, status) = conv.finish(reason_code, reason, outdial_core::HangupBy::System, now_ms());
        if conv.request.notify_url.is_some() {
            conv.notify_seq += 1;
        }
        let record = Record::Transition {
            kind,
            conversation: Box::new(conv.clone()),
            data,
            notify: Some(status),
        };
        let written = self.write(conv.id, std::slice::from_ref(&record), secret).await;
        self.after_write(matches!(written, Ok(true)), Some(slot)).await;
        written.map(|_| ())
    }

    /// After a write: frees the slot that went with it, then wakes the notifier when notifications were written —
    /// in that order, so the slot is free before the terminal notification can leave (docs/api.md, "Limits").
    async fn after_write(&self, notified: bool, slot: Option<Lease>) {
        if let Some(slot) = slot {
            slot.release().await;
        }
        if notified {
            self.notifier.wake();
        }
    }

    /// The ordered writer of one conversation.
    pub fn start(&self, id: Uuid, secret: Option<String>) -> Recording {
        Recording {
            recorder: self.clone(),
            id,
            secret,
            queue: VecDeque::new(),
            writing: None,
            slot: None,
            ended: false,
        }
    }

    /// Writes `records`, retrying while the store fails (for [`RETRY_FOR`]); true when notifications were written.
    async fn write_retrying(&self, id: Uuid, records: &[Record], secret: Option<&str>) -> bool {
        let started = tokio::time::Instant::now();
        let mut wait = Duration::from_millis(100);
        loop {
            match self.write(id, records, secret).await {
                Ok(notified) => return notified,
                Err(e) => {
                    metrics::counter!("outdial_store_write_errors_total").increment(1);
                    if started.elapsed() >= RETRY_FOR {
                        tracing::error!(conversation = %id, "gave up recording {}: {e}", kinds(records));
                        return false;
                    }
                    tracing::error!(conversation = %id, "cannot record {} (retrying in {wait:?}): {e}", kinds(records));
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}

/// The records' kinds, for a log line: `answered, sip-provisional`.
fn kinds(records: &[Record]) -> String {
    let kind = |r: &Record| match r {
        Record::Transition { kind, .. } | Record::Event { kind, .. } => kind.as_str(),
    };
    records.iter().map(kind).collect::<Vec<_>>().join(", ")
}

/// The outbox row of a notification: the conversation's `notify_seq` is its number.
fn outbox_row(conv: &Conversation, status: ConversationStatus, secret: Option<&str>) -> Option<OutboxRow> {
    let url = conv.request.notify_url.clone()?;
    let now = now_ms();
    Some(OutboxRow {
        // Time-ordered: the outbox's key index grows at its end instead of at a random page per row.
        event_id: Uuid::now_v7(),
        conversation_id: conv.id,
        sequence: conv.notify_seq,
        url,
        body: conv.notification(status, conv.notify_seq, now).to_string(),
        secret: secret.map(str::to_string),
        status: OutboxStatus::Pending,
        attempts: 0,
        next_attempt_at: now,
        last_error: None,
        created_at: now,
        delivered_at: None,
    })
}

/// The ordered writer of one conversation: records are written one after the other, in order, by the
/// conversation's own task (driven from its input loop, so the loop never waits and no other task is woken).
pub struct Recording {
    recorder: Recorder,
    id: Uuid,
    secret: Option<String>,
    queue: VecDeque<Record>,
    writing: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    /// The conversation's concurrency slot, freed with its terminal record ([`Recording::release_with_end`]).
    slot: Option<Lease>,
    /// The terminal record has been queued.
    ended: bool,
}

/// Whether `r` is a conversation's terminal state.
fn is_end(r: &Record) -> bool {
    matches!(r, Record::Transition { conversation, .. } if conversation.state.is_terminal())
}

impl Recording {
    /// Queues a record (never waits, never drops). docs/operations.md, "Logs": every state change is one `info` line
    /// with the conversation id.
    pub fn record(&mut self, record: Record) {
        if let Record::Transition { conversation, .. } = &record
            && !conversation.state.is_terminal()
        {
            tracing::info!(conversation = %self.id, "conversation {}", conversation.state.as_str());
        }
        self.ended |= is_end(&record);
        self.queue.push_back(record);
        self.start_next();
    }

    /// Frees the conversation's concurrency slot once its terminal record (queued next, or queued already) is
    /// stored, and before the notifier is woken for its notification: a dialer that lists the live conversations
    /// never sees more than the limit, and one that dials again when the terminal notification comes is admitted
    /// (docs/api.md, "Limits"). A write given up frees it too; so does the end of the conversation's task.
    pub fn release_with_end(&mut self, slot: Lease) {
        self.slot = Some(slot);
        // The terminal record may be queued already, written or under way: the slot then goes when what is
        // queued is written, or at once when that is done.
        if self.ended && self.writing.is_none() && self.queue.is_empty() {
            drop(self.slot.take());
        }
    }

    fn start_next(&mut self) {
        if self.writing.is_some() {
            return;
        }
        if !self.queue.is_empty() {
            let n = self.queue.len().min(MAX_CHANGES);
            let records: Vec<Record> = self.queue.drain(..n).collect();
            let slot = if records.iter().any(is_end) {
                self.slot.take()
            } else {
                None
            };
            let (recorder, id, secret) = (self.recorder.clone(), self.id, self.secret.clone());
            self.writing = Some(Box::pin(async move {
                let notified = recorder.write_retrying(id, &records, secret.as_deref()).await;
                recorder.after_write(notified, slot).await;
            }));
        }
    }

    /// Drives the write in progress to its end and starts the next; pending while there is none. Cancel-safe:
    /// a write interrupted here goes on at the next call.
    pub async fn progress(&mut self) {
        match self.writing.as_mut() {
            Some(w) => {
                w.as_mut().await;
                self.writing = None;
                if self.ended && self.queue.is_empty() {
                    // A slot handed over after its terminal record's write began goes now.
                    drop(self.slot.take());
                }
                self.start_next();
            }
            None => std::future::pending().await,
        }
    }

    /// Waits until everything queued is written (or given up).
    pub async fn close(mut self) {
        while self.writing.is_some() {
            self.progress().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use outdial_core::conversation::EventKind;
    use outdial_core::dialout::DialoutRequest;
    use outdial_store::SqlStore;
    use serde_json::json;

    /// docs/architecture.md, "The store": what a conversation records while its previous write is under way goes
    /// into the store together, in one transaction, in order.
    #[tokio::test]
    async fn records_that_queue_up_are_written_together_in_order() {
        let dir = std::env::temp_dir().join(format!("outdial-recorder-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let sql = SqlStore::connect(&format!("sqlite://{}/r.db", dir.display()))
            .await
            .unwrap();
        let store: Arc<dyn Store> = Arc::new(sql.clone());
        let policy =
            outdial_notify::NetworkPolicy::new(outdial_notify::Purpose::Notifications, &[], &[]).unwrap();
        let notifier = Notifier::new(store.clone(), policy, Default::default()).unwrap();
        let req = DialoutRequest::parse(&json!({"bot": "B", "target": "tel:+123", "caller": "100"})).unwrap();
        let conv = Conversation::new(Uuid::new_v4(), "app", req, 1_000);
        store.create_conversation(&conv, None, 0).await.unwrap();

        let before = sql.transactions();
        let mut rec = Recorder::new(store.clone(), notifier).start(conv.id, None);
        for n in 0..12 {
            rec.record(Record::Event {
                kind: EventKind::BotEvent,
                data: json!({"n": n}),
            });
        }
        rec.close().await;
        // The first alone (its write began at once), then the eleven queued behind it: 8 and 3.
        assert_eq!(sql.transactions() - before, 3);
        let ns: Vec<i64> = store.events(conv.id).await.unwrap()[1..]
            .iter()
            .map(|e| e.data["n"].as_i64().unwrap())
            .collect();
        assert_eq!(ns, (0..12).collect::<Vec<_>>());
        std::fs::remove_dir_all(&dir).ok();
    }

    /// docs/api.md, "Limits": a conversation's concurrency slot is freed once its terminal state is stored, not
    /// before — a dialer listing the live conversations never sees more than the limit — and before the notifier
    /// is woken for its terminal notification. The store's write is held back by a second connection holding
    /// SQLite's write lock.
    #[tokio::test]
    async fn the_slot_is_freed_once_the_end_is_stored() {
        use outdial_limits::{Limiter, Limits, LocalLimiter, Scope, Subject};
        use sqlx::Connection;

        let dir = std::env::temp_dir().join(format!("outdial-recorder-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}/r.db", dir.display());
        let store: Arc<dyn Store> = Arc::new(SqlStore::connect(&url).await.unwrap());
        let policy =
            outdial_notify::NetworkPolicy::new(outdial_notify::Purpose::Notifications, &[], &[]).unwrap();
        let notifier = Notifier::new(store.clone(), policy, Default::default()).unwrap();
        let limiter: Arc<dyn Limiter> = Arc::new(LocalLimiter::new());
        let limits = Limits {
            per_second: 0.0,
            max_concurrent: 1,
            lease_expiry: Duration::from_secs(60),
        };
        let subjects = [Subject::new(Scope::Bot, "B", limits)];
        let req = DialoutRequest::parse(
            &json!({"bot": "B", "target": "tel:+123", "caller": "100", "notifyUrl": "http://127.0.0.1:9/n"}),
        )
        .unwrap();
        let mut conv = Conversation::new(Uuid::new_v4(), "app", req, 1_000);
        limiter.admit(&subjects, conv.id).await.unwrap();
        let slot = Lease::of(limiter.clone(), &subjects, conv.id);
        store.create_conversation(&conv, None, 0).await.unwrap();

        let mut lock = sqlx::AnyConnection::connect(&url).await.unwrap();
        sqlx::raw_sql("BEGIN IMMEDIATE").execute(&mut lock).await.unwrap();
        let mut rec = Recorder::new(store.clone(), notifier).start(conv.id, None);
        // As the conversation's world gets them: the slot, then the terminal record.
        rec.release_with_end(slot);
        let (kind, data, status) = conv.finish(
            ReasonCode::ClientDisconnected,
            "done",
            outdial_core::HangupBy::Callee,
            2_000,
        );
        conv.notify_seq += 1;
        rec.record(Record::Transition {
            kind,
            conversation: Box::new(conv.clone()),
            data,
            notify: Some(status),
        });
        // The write waits for the lock: the conversation is still live in the store, and its slot still held.
        assert!(
            tokio::time::timeout(Duration::from_millis(300), rec.progress())
                .await
                .is_err()
        );
        let stored = store.get_conversation(conv.id).await.unwrap().unwrap();
        assert!(
            !stored.state.is_terminal(),
            "{:?} stored before the write",
            stored.state
        );
        assert_eq!(limiter.active(Scope::Bot, "B").await.unwrap(), 1);
        let other = Uuid::new_v4();
        assert!(
            limiter.admit(&subjects, other).await.is_err(),
            "a second call admitted over the limit"
        );

        sqlx::raw_sql("COMMIT").execute(&mut lock).await.unwrap();
        rec.close().await;
        let stored = store.get_conversation(conv.id).await.unwrap().unwrap();
        assert!(stored.state.is_terminal(), "{:?} stored", stored.state);
        assert_eq!(limiter.active(Scope::Bot, "B").await.unwrap(), 0);
        limiter.admit(&subjects, other).await.unwrap();
        std::fs::remove_dir_all(&dir).ok();
    }

    /// docs/architecture.md, "The store": a notification's id is time-ordered (UUID version 7), so the outbox's
    /// key index grows at its end; a random id dirtied a random page of it in every transaction.
    #[test]
    fn notification_ids_follow_the_order_they_are_made_in() {
        let req = DialoutRequest::parse(
            &json!({"bot": "B", "target": "tel:+123", "caller": "100", "notifyUrl": "http://127.0.0.1:9/n"}),
        )
        .unwrap();
        let mut conv = Conversation::new(Uuid::now_v7(), "app", req, 1_000);
        let mut ids = Vec::new();
        for status in [
            ConversationStatus::Ringing,
            ConversationStatus::Answered,
            ConversationStatus::Completed,
        ] {
            conv.notify_seq += 1;
            let row = outbox_row(&conv, status, None).unwrap();
            assert_eq!(row.event_id.get_version_num(), 7);
            ids.push(row.event_id);
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
    }
}
