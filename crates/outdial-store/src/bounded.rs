//! A database that stops answering (docs/operations.md, "What happens when …"): PostgreSQL behind a network
//! partition or a failover keeps every connection open and silent, and TCP gives up on them only after ~15
//! minutes. Without limits a dialout would wait that long, the store's writer with it, and the pool's places
//! would stay taken after the database is back.
//!
//! * Every store operation answers within [`ANSWER_WITHIN`] ([`bounded`]). A write given to the store's writer
//!   (`batch.rs`) carries that deadline: a transaction is bounded by the earliest of its writes', a write still
//!   queued at its deadline is not written, and when the database did not answer a batch its writes all fail at
//!   once rather than being tried again one by one.
//! * A connection given back to the pool is checked within [`CHECK_WITHIN`] ([`released`]); one that does not
//!   answer is dropped at once, so its place goes to a new connection.

use crate::{Result, StoreError};
use sqlx::Connection as _;
use sqlx::pool::PoolConnectionMetadata;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// The longest a store operation waits for the database.
pub(crate) const ANSWER_WITHIN: Duration = Duration::from_secs(5);

/// The longest a connection given back to the pool may take to show it still answers.
const CHECK_WITHIN: Duration = Duration::from_secs(2);

/// `work`'s result, or [`StoreError::TimedOut`] once [`ANSWER_WITHIN`] has passed (the work is dropped: a
/// transaction it had open is rolled back by the database when its connection goes).
pub(crate) async fn bounded<T>(work: impl Future<Output = Result<T>>) -> Result<T> {
    until(tokio::time::Instant::now() + ANSWER_WITHIN, work).await
}

/// `work`'s result, or [`StoreError::TimedOut`] at `deadline` (a caller's, who asked [`ANSWER_WITHIN`] before).
pub(crate) async fn until<T>(
    deadline: tokio::time::Instant,
    work: impl Future<Output = Result<T>>,
) -> Result<T> {
    tokio::time::timeout_at(deadline, work)
        .await
        .unwrap_or(Err(StoreError::TimedOut(ANSWER_WITHIN)))
}

/// The pool's check of a connection given back (`after_release`): an error drops it without a goodbye. sqlx then
/// pings it once more itself, which a connection that answered here answers at once.
pub(crate) fn released(
    conn: &mut sqlx::AnyConnection,
    _: PoolConnectionMetadata,
) -> Pin<Box<dyn Future<Output = std::result::Result<bool, sqlx::Error>> + Send + '_>> {
    Box::pin(async move {
        match tokio::time::timeout(CHECK_WITHIN, conn.ping()).await {
            Ok(answered) => answered.map(|()| true),
            Err(_) => Err(sqlx::Error::PoolTimedOut),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::ANSWER_WITHIN;
    use crate::{SqlStore, Store, StoreError};
    use outdial_core::conversation::Conversation;
    use outdial_core::dialout::DialoutRequest;
    use std::time::Duration;
    use uuid::Uuid;

    /// SQLite's write lock is held elsewhere (as a stuck transaction would hold it): a write given to the writer
    /// (on a file, its own thread's, `thread.rs`) is answered `TimedOut` by its deadline (not after SQLite's 10 s
    /// `busy_timeout`), is not written later, and the writer goes on once the lock is free.
    #[tokio::test]
    async fn a_write_stuck_behind_the_database_is_answered_by_its_deadline_and_not_written() {
        let dir = std::env::temp_dir().join(format!("outdial-bounded-{}", Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = SqlStore::connect(&format!("sqlite://{}/o.db", dir.display()))
            .await
            .unwrap();
        let conv = || {
            let req = serde_json::json!({"bot": "b", "target": "tel:+123", "caller": "100"});
            Conversation::new(Uuid::now_v7(), "app1", DialoutRequest::parse(&req).unwrap(), 1)
        };
        let mut held = store.write.acquire().await.unwrap();
        sqlx::raw_sql("BEGIN IMMEDIATE")
            .execute(&mut *held)
            .await
            .unwrap();
        let stuck = conv();
        let asked = tokio::time::Instant::now();
        let r = store.create_conversation(&stuck, None, 0).await;
        let waited = asked.elapsed();
        assert!(matches!(r, Err(StoreError::TimedOut(_))), "{r:?}");
        assert!(
            waited >= ANSWER_WITHIN && waited < ANSWER_WITHIN + Duration::from_secs(2),
            "answered after {waited:?}"
        );
        // The thread gets the lock when it is given back, finds its batch's deadline past and rolls it back.
        sqlx::raw_sql("ROLLBACK").execute(&mut *held).await.unwrap();
        drop(held);
        let next = conv();
        store.create_conversation(&next, None, 0).await.unwrap();
        assert!(store.get_conversation(next.id).await.unwrap().is_some());
        assert!(
            store.get_conversation(stuck.id).await.unwrap().is_none(),
            "a write whose caller was told it failed is not written"
        );
        drop(store);
        let _ = std::fs::remove_dir_all(dir);
    }
}
