//! The store's SQLite thread (docs/architecture.md, "The store"): the group commit's transactions on a SQLite
//! file, each in one hop.
//!
//! sqlx runs each SQLite statement on its connection's thread and wakes the caller's task with the answer: a
//! batch's transaction (BEGIN, the existence check, an insert per table, COMMIT, the connection given back and
//! checked) was eight hops there and back, two thread switches each, and at 500 calls/s SQLite's threads made a
//! quarter of the gateway's thread switches (BENCHMARKS.md, "Call setup", nineteenth sitting). Here one thread
//! owns a connection of its own: the writer task hands it a whole batch and is woken once, when it is committed.
//! The statements are the same as through sqlx's pool (`batch.rs` plans them both ways); they stay prepared in
//! the connection's cache.
//!
//! The store's other writes (configuration, keyed dialouts' idempotency records, the readiness probe) go through
//! sqlx's writing connection. The hot one, a keyed dialout, takes [`Turn`] first, as the thread does for each batch,
//! so the two connections never meet at SQLite's write lock, where the loser would sleep in SQLite's busy handler
//! (1 ms, 2 ms, 5 ms …) instead of queueing.
//!
//! Deadlines (`bounded.rs`) hold as before: a batch whose first caller stopped waiting before it began is not
//! written, and one whose deadline passes while its statements run is rolled back instead of committed. A
//! connection left inside a transaction (a COMMIT and its ROLLBACK both failed, as a full disk can make them) is
//! closed and a new one opened for the next batch.

use crate::batch::{Author, Found, Write, owners, plan, updated};
use crate::bounded::{ANSWER_WITHIN, until};
use crate::{Result, StoreError};
use rusqlite::{Connection, TransactionBehavior, params_from_iter};
use std::path::PathBuf;
use std::sync::{Arc, mpsc};
use tokio::sync::oneshot;
use tokio::time::Instant;

/// A batch's jobs (given back with the answer, for the writer to try them one by one when a statement was
/// refused) and each job's result.
pub(crate) type Answer = (Vec<Vec<Write>>, Result<Vec<Result<()>>>);

struct Batch {
    jobs: Vec<Vec<Write>>,
    deadline: Instant,
    reply: oneshot::Sender<Answer>,
}

/// The turn to write the SQLite file: held by the thread for each batch, and by a keyed dialout's transaction.
pub(crate) type Turn = Arc<tokio::sync::Mutex<()>>;

/// The thread; it ends when this is dropped (with the writer task).
#[derive(Debug)]
pub(crate) struct Thread {
    tx: mpsc::Sender<Batch>,
    turn: Turn,
}

impl Thread {
    /// Starts the thread that writes the SQLite file `path` as `author`.
    pub fn spawn(path: PathBuf, author: Author) -> std::io::Result<Thread> {
        let (tx, rx) = mpsc::channel();
        let turn = Turn::default();
        let ours = turn.clone();
        std::thread::Builder::new()
            .name("outdial-store".into())
            .spawn(move || run(&path, &author, &rx, &ours))?;
        Ok(Thread { tx, turn })
    }

    pub fn turn(&self) -> Turn {
        self.turn.clone()
    }

    /// Writes `jobs` in one transaction; by `deadline`, or [`StoreError::TimedOut`].
    pub async fn write(&self, jobs: Vec<Vec<Write>>, deadline: Instant) -> Answer {
        let (reply, answer) = oneshot::channel();
        if let Err(mpsc::SendError(batch)) = self.tx.send(Batch {
            jobs,
            deadline,
            reply,
        }) {
            return (batch.jobs, Err(stopped()));
        }
        match until(deadline, async { answer.await.map_err(|_| stopped()) }).await {
            Ok(answer) => answer,
            Err(e) => (Vec::new(), Err(e)),
        }
    }
}

fn stopped() -> StoreError {
    StoreError::Corrupt("the store's SQLite thread has stopped".into())
}

fn run(path: &std::path::Path, author: &Author, rx: &mpsc::Receiver<Batch>, turn: &Turn) {
    let mut conn: Option<Connection> = None;
    while let Ok(Batch {
        jobs,
        deadline,
        reply,
    }) = rx.recv()
    {
        // A caller that stopped waiting (a stuck statement ahead of it) is not written for.
        if reply.is_closed() || Instant::now() >= deadline {
            let _ = reply.send((jobs, Err(StoreError::TimedOut(ANSWER_WITHIN))));
            continue;
        }
        let mut c = match conn.take().map_or_else(|| open(path), Ok) {
            Ok(c) => c,
            Err(e) => {
                let _ = reply.send((jobs, Err(e)));
                continue;
            }
        };
        let result = {
            let _turn = turn.blocking_lock();
            write_on(&mut c, author, &jobs, deadline)
        };
        if c.is_autocommit() {
            conn = Some(c);
        }
        let _ = reply.send((jobs, result));
    }
}

/// The thread's connection, set up as sqlx's are (`sql.rs`; sqlx also turns foreign keys on), with room to keep
/// the statements prepared: a table's statements have a dozen texts (`rows.rs`).
fn open(path: &std::path::Path) -> Result<Connection> {
    let c = Connection::open(path).map_err(db)?;
    c.execute_batch(crate::sql::SQLITE_PRAGMAS).map_err(db)?;
    c.execute_batch("PRAGMA foreign_keys=ON;").map_err(db)?;
    c.set_prepared_statement_cache_capacity(64);
    Ok(c)
}

fn write_on(
    conn: &mut Connection,
    author: &Author,
    jobs: &[Vec<Write>],
    deadline: Instant,
) -> Result<Vec<Result<()>>> {
    // IMMEDIATE: the write lock is taken (or waited for, `busy_timeout`) at the start. A deferred transaction
    // that read first could not upgrade to writing after another connection's commit, and would fail at once.
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db)?;
    let ids = updated(jobs);
    let mut found = Found::default();
    if !ids.is_empty() {
        let s = owners(author, &ids);
        let mut stmt = tx.prepare_cached(&s.sql).map_err(db)?;
        let mut rows = stmt.query(params_from_iter(&s.params)).map_err(db)?;
        while let Some(row) = rows.next().map_err(db)? {
            found.add(author, row.get(0).map_err(db)?, row.get(1).map_err(db)?);
        }
    }
    let (results, statements) = plan(author, jobs, found);
    for s in statements {
        tx.prepare_cached(&s.sql)
            .and_then(|mut stmt| stmt.execute(params_from_iter(&s.params)))
            .map_err(db)?;
    }
    // Its first caller no longer waits: rolled back (the transaction is dropped), not committed.
    if Instant::now() >= deadline {
        return Err(StoreError::TimedOut(ANSWER_WITHIN));
    }
    tx.commit().map_err(db)?;
    Ok(results)
}

/// A SQLite error as sqlx gives one: the same codes, so a full disk (`checkpoint.rs`) and a refused statement
/// (`writer.rs`) read the same both ways.
fn db(e: rusqlite::Error) -> StoreError {
    match e {
        rusqlite::Error::SqliteFailure(f, message) => {
            StoreError::Db(sqlx::Error::Database(Box::new(SqliteError {
                code: f.extended_code,
                message: message.unwrap_or_else(|| f.to_string()),
            })))
        }
        other => StoreError::Corrupt(format!("SQLite: {other}")),
    }
}

#[derive(Debug, thiserror::Error)]
#[error("(code: {code}) {message}")]
struct SqliteError {
    /// The extended result code.
    code: i32,
    message: String,
}

impl sqlx::error::DatabaseError for SqliteError {
    fn message(&self) -> &str {
        &self.message
    }

    fn code(&self) -> Option<std::borrow::Cow<'_, str>> {
        Some(self.code.to_string().into())
    }

    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }

    fn kind(&self) -> sqlx::error::ErrorKind {
        use rusqlite::ffi;
        match self.code {
            ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
                sqlx::error::ErrorKind::UniqueViolation
            }
            ffi::SQLITE_CONSTRAINT_FOREIGNKEY => sqlx::error::ErrorKind::ForeignKeyViolation,
            ffi::SQLITE_CONSTRAINT_NOTNULL => sqlx::error::ErrorKind::NotNullViolation,
            ffi::SQLITE_CONSTRAINT_CHECK => sqlx::error::ErrorKind::CheckViolation,
            _ => sqlx::error::ErrorKind::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::db;
    use crate::{SqlStore, Store, StoreError};
    use std::time::Duration;

    fn threads_named(name: &str) -> usize {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .filter(|comm| comm.trim_end() == name)
            .count()
    }

    /// The threads named `name` once there are `want` of them, or after 2 s.
    async fn settled(name: &str, want: usize) -> usize {
        for _ in 0..40 {
            if threads_named(name) == want {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        threads_named(name)
    }

    /// On a SQLite file the conversations' writes are committed on a thread of the store's own, which goes with
    /// the store; in memory there is none (the pool's one connection holds the database).
    #[tokio::test]
    async fn a_sqlite_file_is_written_on_a_thread_of_its_own_that_goes_with_the_store() {
        let dir = std::env::temp_dir().join(format!("outdial-thread-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = SqlStore::connect(&format!("sqlite://{}/o.db", dir.display()))
            .await
            .unwrap();
        assert_eq!(settled("outdial-store", 1).await, 1);
        let req = serde_json::json!({"bot": "b", "target": "tel:+123", "caller": "100"});
        let conv = outdial_core::conversation::Conversation::new(
            uuid::Uuid::now_v7(),
            "app1",
            outdial_core::dialout::DialoutRequest::parse(&req).unwrap(),
            1,
        );
        store.create_conversation(&conv, None, 0).await.unwrap();
        store
            .append_event(conv.id, "note", &serde_json::json!({"n": 1}))
            .await
            .unwrap();
        let kinds: Vec<String> = store
            .events(conv.id)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect();
        assert_eq!(kinds, ["accepted", "note"]);
        // A node's writer replaces the first one, and its thread.
        let store = store.with_node("n1").unwrap();
        // Written by the new thread (so it runs, under its name), and the old one ends.
        store
            .append_event(conv.id, "note", &serde_json::json!({"n": 2}))
            .await
            .unwrap();
        assert_eq!(
            settled("outdial-store", 1).await,
            1,
            "the replaced writer's thread ended"
        );
        drop(store);
        assert_eq!(
            settled("outdial-store", 0).await,
            0,
            "the thread ends with the store"
        );
        let memory = SqlStore::connect("sqlite::memory:").await.unwrap();
        assert_eq!(threads_named("outdial-store"), 0);
        drop(memory);
        let _ = std::fs::remove_dir_all(dir);
    }

    /// The thread's SQLite errors read as sqlx's do: a full disk has SQLITE_FULL's code (`checkpoint.rs` marks the
    /// store full by it) and a refused statement is a database error (`writer.rs` then writes each job alone).
    #[test]
    fn sqlite_errors_read_as_sqlx_gives_them() {
        use rusqlite::ffi;
        let full = db(rusqlite::Error::SqliteFailure(
            ffi::Error::new(ffi::SQLITE_FULL),
            Some("database or disk is full".into()),
        ));
        let StoreError::Db(e) = &full else {
            panic!("{full:?}")
        };
        assert!(crate::checkpoint::is_full(e), "{e:?}");
        assert_eq!(
            full.to_string(),
            "database error: error returned from database: (code: 13) database or disk is full"
        );
        let unique = db(rusqlite::Error::SqliteFailure(
            ffi::Error::new(ffi::SQLITE_CONSTRAINT_UNIQUE),
            None,
        ));
        let StoreError::Db(sqlx::Error::Database(d)) = &unique else {
            panic!("{unique:?}")
        };
        assert!(d.is_unique_violation());
        assert!(matches!(
            db(rusqlite::Error::InvalidColumnIndex(3)),
            StoreError::Corrupt(_)
        ));
    }
}
