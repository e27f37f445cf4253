//! SQLite's checkpoints beside the writer (docs/architecture.md, "The store").
//!
//! In WAL mode SQLite copies the log back into the database file (and syncs both) inside the commit that finds
//! the log over 1,000 pages: on the store's single write connection, so every write queued behind that commit
//! (admissions, calls' states, notification attempts) would wait for the disk. A task here checkpoints from a
//! reading connection every [`EVERY`] instead (`PASSIVE`: it never waits for the writer nor blocks it). The
//! writer's own checkpoint then finds the log already copied and synced, and at its next transaction SQLite
//! starts the log again from its beginning (only a writer can).
//!
//! A full disk shows here first: the database file cannot grow, so the checkpoint fails with `SQLITE_FULL` while
//! commits may still fit in the log's space. From then until a checkpoint succeeds, [`Checkpoints::disk_full`]
//! holds: the store refuses new conversations and is not ready, and the log's space is kept for the calls already
//! up (docs/operations.md, "What happens when …").

use sqlx::{AnyPool, Row};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

/// How often the log is copied back.
pub(crate) const EVERY: Duration = Duration::from_millis(300);

/// The checkpoint task; it stops when this is dropped (with the last clone of the store).
#[derive(Debug)]
pub(crate) struct Checkpoints {
    task: JoinHandle<()>,
    full: Arc<AtomicBool>,
}

impl Drop for Checkpoints {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Whether `e` is SQLite's `SQLITE_FULL` (code 13).
fn is_full(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.code().as_deref() == Some("13"))
}

impl Checkpoints {
    /// Starts checkpointing the database behind `read` (a pool of reading connections to a SQLite file).
    pub(crate) fn spawn(read: AnyPool) -> Checkpoints {
        let full = Arc::new(AtomicBool::new(false));
        let flag = full.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(EVERY);
            tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                // One row: busy (0/1), the log's pages, the pages copied back. A full disk fails it (the
                // database file cannot grow): `disk_full` then holds until a checkpoint passes again.
                match sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                    .fetch_one(&read)
                    .await
                {
                    Ok(row) => {
                        flag.store(false, Ordering::Relaxed);
                        let pages: i64 = row.try_get(1).unwrap_or(0);
                        metrics::gauge!("outdial_store_wal_pages").set(pages.max(0) as f64);
                    }
                    Err(e) => {
                        if is_full(&e) {
                            flag.store(true, Ordering::Relaxed);
                        }
                        metrics::counter!("outdial_store_checkpoint_failures_total").increment(1);
                    }
                }
            }
        });
        Checkpoints { task, full }
    }

    /// The last checkpoint failed for a full disk.
    pub(crate) fn disk_full(&self) -> bool {
        self.full.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::EVERY;
    use crate::SqlStore;

    /// Pages committed below the writer's own threshold (1,000) reach the database file within a few ticks: the
    /// writer does not copy them itself, the task does.
    #[tokio::test]
    async fn the_log_goes_back_to_the_database_file_beside_the_writer() {
        let dir = std::env::temp_dir().join(format!("outdial-ckpt-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("o.db");
        let store = SqlStore::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        // Let the migrations' pages settle first.
        tokio::time::sleep(EVERY * 5).await;
        let before = std::fs::metadata(&path).unwrap().len();
        sqlx::raw_sql(
            "CREATE TABLE ballast (b BLOB); \
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 256) \
             INSERT INTO ballast SELECT randomblob(4000) FROM n;",
        )
        .execute(&store.write)
        .await
        .unwrap();
        let deadline = tokio::time::Instant::now() + EVERY * 30;
        let mut after = before;
        while tokio::time::Instant::now() < deadline {
            after = std::fs::metadata(&path).unwrap().len();
            if after >= before + 256 * 4000 {
                break;
            }
            tokio::time::sleep(EVERY / 2).await;
        }
        assert!(
            after >= before + 256 * 4000,
            "the database file grew from {before} to {after} bytes only"
        );
        drop(store);
        let _ = std::fs::remove_dir_all(dir);
    }
}
