//! SQLite's WAL checkpoints, off the writer (docs/architecture.md, "The store").
//!
//! By default the connection whose commit takes the WAL past 1,000 pages copies them into the database file then
//! and there, with three `fsync`s: at 500 calls/s that was the store's one write connection every ~220 ms, and no
//! write committed meanwhile (BENCHMARKS.md, "Call setup"). The write connection has automatic checkpoints off;
//! this task checkpoints from a reading connection instead, passively: it copies what no reader still needs and
//! never waits for the writer, which goes on appending. Once a checkpoint has copied everything, the next write
//! starts the WAL from its beginning again, so it stays about as large as what is written between two checkpoints.

use sqlx::AnyPool;
use std::sync::Weak;
use std::time::Duration;

/// How often: the WAL holds about this long's writes (~3 MB at 500 calls/s).
pub(crate) const EVERY: Duration = Duration::from_millis(500);

/// Checkpoints every [`EVERY`] until the store (`alive`) is gone.
pub(crate) async fn run(read: AnyPool, alive: Weak<()>) {
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tick.tick().await;
        if alive.strong_count() == 0 {
            return;
        }
        match sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&read).await {
            Ok(_) => failing = false,
            // A full disk, say: said once per spell; the next tick tries again.
            Err(e) if !failing => {
                failing = true;
                tracing::warn!("cannot checkpoint the store's write-ahead log: {e}");
            }
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use crate::{SqlStore, Store};
    use outdial_core::conversation::Conversation;
    use outdial_core::dialout::DialoutRequest;
    use serde_json::json;
    use uuid::Uuid;

    /// The write connection leaves checkpoints to the checkpointer, and the WAL stays as large as one spell of
    /// writes between two checkpoints instead of growing with every write.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wal_is_checkpointed_off_the_writer_and_stays_bounded() {
        let dir = std::env::temp_dir().join(format!("outdial-wal-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let s = SqlStore::connect(&format!("sqlite://{}/c.db", dir.display()))
            .await
            .unwrap();
        let auto: i64 = sqlx::query_scalar("PRAGMA wal_autocheckpoint")
            .fetch_one(&s.write)
            .await
            .unwrap();
        assert_eq!(auto, 0, "the write connection does not checkpoint");

        let req = DialoutRequest::parse(&json!({"bot": "B", "target": "tel:+123", "caller": "100"})).unwrap();
        let conv = Conversation::new(Uuid::new_v4(), "app", req, 1_000);
        s.create_conversation(&conv, None, 0).await.unwrap();
        let mut sizes = Vec::new();
        for round in 0..4 {
            let writes: Vec<_> = (0..500)
                .map(|i| {
                    let s = s.clone();
                    tokio::spawn(async move {
                        let data = json!({"round": round, "i": i, "pad": "x".repeat(200)});
                        s.append_event(conv.id, "bot-event", &data).await.unwrap();
                    })
                })
                .collect();
            for w in writes {
                w.await.unwrap();
            }
            sizes.push(std::fs::metadata(dir.join("c.db-wal")).unwrap().len());
            tokio::time::sleep(super::EVERY * 2 + std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(s.events(conv.id).await.unwrap().len(), 1 + 4 * 500);
        assert!(
            sizes[3] < sizes[0] * 2,
            "the WAL grew round by round: {sizes:?} bytes"
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}
