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
//! commits may still fit in the log's space (a commit that fails for it marks the disk full too,
//! [`Checkpoints::note`]). From then [`Checkpoints::disk_full`] holds: the store refuses new conversations and is not
//! ready, and the log's space is kept for the calls already up (docs/operations.md, "What happens when …").
//!
//! It holds until a checkpoint passes *and* the file system has room for the whole log to be copied back. A
//! checkpoint alone is not enough: one with nothing new to copy, or whose pages all exist in the file already,
//! passes on a disk that is still full, and the next commit would fill the log's space again.

use sqlx::{AnyPool, Row};
use std::path::{Path, PathBuf};
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
pub(crate) fn is_full(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.code().as_deref() == Some("13"))
}

/// How a checkpoint went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Passed,
    /// `SQLITE_FULL`: the database file cannot grow.
    Full,
    /// Any other failure (a lock, an I/O error): it says nothing about space.
    Failed,
}

/// Bytes the file system still gives, and bytes the log holds (0 without a log file).
#[derive(Debug, Clone, Copy)]
struct Room {
    free: u64,
    log: u64,
}

/// Whether the disk counts as full after a checkpoint (see the module's notes).
fn still_full(was_full: bool, outcome: Outcome, room: impl FnOnce() -> Option<Room>) -> bool {
    match outcome {
        Outcome::Full => true,
        Outcome::Failed => was_full,
        Outcome::Passed if !was_full => false,
        // Without a reading of the file system, a passing checkpoint is the best sign there is.
        Outcome::Passed => room().is_some_and(|r| r.free < r.log),
    }
}

/// The room beside the database file at `db`: what this process may still write (root also writes into the
/// blocks a file system keeps for it, so that an operator who frees space below that reserve is not ignored), and
/// the log's size.
fn room(db: &Path) -> Option<Room> {
    let dir = db
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let fs = rustix::fs::statvfs(dir).ok()?;
    let mut log = db.as_os_str().to_owned();
    log.push("-wal");
    let log = std::fs::metadata(PathBuf::from(log)).map_or(0, |m| m.len());
    let blocks = if rustix::process::geteuid().is_root() {
        fs.f_bfree
    } else {
        fs.f_bavail
    };
    Some(Room {
        free: blocks.saturating_mul(fs.f_frsize),
        log,
    })
}

impl Checkpoints {
    /// Starts checkpointing the database file `db` behind `read` (a pool of reading connections to it).
    pub(crate) fn spawn(read: AnyPool, db: Option<PathBuf>) -> Checkpoints {
        let full = Arc::new(AtomicBool::new(false));
        let flag = full.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(EVERY);
            tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                // One row: busy (0/1), the log's pages, the pages copied back.
                let outcome = match sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                    .fetch_one(&read)
                    .await
                {
                    Ok(row) => {
                        let pages: i64 = row.try_get(1).unwrap_or(0);
                        metrics::gauge!("outdial_store_wal_pages").set(pages.max(0) as f64);
                        Outcome::Passed
                    }
                    Err(e) => {
                        metrics::counter!("outdial_store_checkpoint_failures_total").increment(1);
                        if is_full(&e) {
                            Outcome::Full
                        } else {
                            Outcome::Failed
                        }
                    }
                };
                let was = flag.load(Ordering::Relaxed);
                flag.store(
                    still_full(was, outcome, || room(db.as_deref()?)),
                    Ordering::Relaxed,
                );
            }
        });
        Checkpoints { task, full }
    }

    /// The disk is full (see the module's notes).
    pub(crate) fn disk_full(&self) -> bool {
        self.full.load(Ordering::Relaxed)
    }

    /// A write failed with `e`: a full disk marks the store full until the checkpoints find room again.
    pub(crate) fn note(&self, e: &crate::StoreError) {
        if let crate::StoreError::Db(e) = e
            && is_full(e)
        {
            self.full.store(true, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{EVERY, Outcome, Room, still_full};
    use crate::{SqlStore, Store, StoreError};

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
        ballast(&store, 256, 4000).await;
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

    /// A passing checkpoint ends a full disk only when the file system has room for the log: one that passes
    /// with nothing to copy on a still-full disk (the flapping CI saw: ready between two refused dialouts) does not.
    #[test]
    fn a_full_disk_holds_until_a_checkpoint_passes_with_room_for_the_log() {
        let tight = || {
            Some(Room {
                free: 0,
                log: 64 * 1024,
            })
        };
        let roomy = || {
            Some(Room {
                free: 2 << 20,
                log: 64 * 1024,
            })
        };
        assert!(still_full(false, Outcome::Full, roomy));
        assert!(still_full(true, Outcome::Passed, tight));
        assert!(still_full(true, Outcome::Failed, roomy));
        assert!(!still_full(true, Outcome::Passed, roomy));
        assert!(
            !still_full(false, Outcome::Passed, tight),
            "only a failure marks the disk full"
        );
        assert!(!still_full(false, Outcome::Failed, tight));
        assert!(
            !still_full(true, Outcome::Passed, || None),
            "no reading: the checkpoint decides"
        );
    }

    /// On a real full disk (a 2 MiB tmpfs; needs root, as CI runs): freeing a little space lets a checkpoint pass
    /// but is no room for the log, so the store stays full; freeing the rest ends it. CI once saw a store taken for
    /// ready between two dialouts refused for a full disk.
    #[tokio::test]
    async fn a_little_space_back_is_not_the_end_of_a_full_disk() {
        let disk = Tmpfs::mount("2m");
        let dir = disk.0.clone();
        let store = SqlStore::connect(&format!("sqlite://{}/o.db", dir.display()))
            .await
            .unwrap();
        // A log of ~300 KB, copied back: SQLite then writes into the log's file from its start again.
        ballast(&store, 100, 3000).await;
        tokio::time::sleep(EVERY * 4).await;
        // The file system filled to the last block; then ~30 KB of new pages, which fit in the log's file but
        // not in the database file.
        let filler = dir.join("filler");
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&filler).unwrap();
            while f.write_all(&[0u8; 4096]).and_then(|()| f.sync_all()).is_ok() {}
        }
        for _ in 0..10 {
            let _ = sqlx::query("INSERT INTO ballast VALUES (randomblob(3000))")
                .execute(&store.write)
                .await;
        }
        let full = |r: &crate::Result<()>| matches!(r, Err(StoreError::DiskFull));
        let mut marked = false;
        for _ in 0..20 {
            if full(&store.ping().await) {
                marked = true;
                break;
            }
            tokio::time::sleep(EVERY / 2).await;
        }
        assert!(marked, "a full disk is found: {:?}", store.ping().await);

        // 64 KiB back: a checkpoint can copy the new pages back, but there is no room for the whole log.
        let len = std::fs::metadata(&filler).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&filler)
            .unwrap()
            .set_len(len.saturating_sub(64 << 10))
            .unwrap();
        for _ in 0..8 {
            tokio::time::sleep(EVERY / 2).await;
            let r = store.ping().await;
            assert!(
                full(&r),
                "still full with 64 KiB back (log {} bytes): {r:?}",
                log_len(&dir)
            );
        }

        std::fs::remove_file(&filler).unwrap();
        let mut back = false;
        for _ in 0..20 {
            tokio::time::sleep(EVERY / 2).await;
            if store.ping().await.is_ok() {
                back = true;
                break;
            }
        }
        assert!(
            back,
            "ready again once the space is back: {:?}",
            store.ping().await
        );
        drop(store);
    }

    /// A table of `rows` random blobs of `size` bytes, in one transaction.
    async fn ballast(store: &SqlStore, rows: u32, size: u32) {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE TABLE ballast (b BLOB); \
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows}) \
             INSERT INTO ballast SELECT randomblob({size}) FROM n;"
        )))
        .execute(&store.write)
        .await
        .unwrap();
    }

    /// A tmpfs of the given size, unmounted (and its folder removed) on drop, also when the test fails.
    struct Tmpfs(std::path::PathBuf);

    impl Tmpfs {
        fn mount(size: &str) -> Tmpfs {
            let dir = std::env::temp_dir().join(format!("outdial-full-{}", uuid::Uuid::now_v7()));
            std::fs::create_dir_all(&dir).unwrap();
            let mounted = std::process::Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
                .arg(&dir)
                .status()
                .is_ok_and(|s| s.success());
            assert!(
                mounted,
                "this test mounts a tmpfs and needs root (as the test command runs in CI)"
            );
            Tmpfs(dir)
        }
    }

    impl Drop for Tmpfs {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.0)
                .status();
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn log_len(dir: &std::path::Path) -> u64 {
        std::fs::metadata(dir.join("o.db-wal")).map_or(0, |m| m.len())
    }
}
