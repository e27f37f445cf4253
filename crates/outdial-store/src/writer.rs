//! The store's writer task (`batch.rs` plans what it gathers): callers hand it their writes and wait for their
//! own commit, each with a deadline (`bounded.rs`). Its transactions go through sqlx's pool, or for a SQLite file
//! to the store's SQLite thread (`thread.rs`).

use crate::batch::{Author, MAX_BATCH, MAX_JOB, Write, write_batch};
use crate::bounded::ANSWER_WITHIN;
use crate::gather::{self, Load};
use crate::rows::Rows;
use crate::sql::Backend;
use crate::thread::{Answer, Thread, Turn};
use crate::{Result, StoreError};
use sqlx::AnyPool;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// A caller's writes (one conversation's changes, in order), committed all or none, where their result goes, and
/// when the caller stops waiting (`bounded.rs`).
type Job = (Vec<Write>, oneshot::Sender<Result<()>>, Instant);

#[derive(Clone, Debug)]
pub(crate) struct Writer {
    tx: mpsc::Sender<Job>,
    /// Transactions begun so far.
    transactions: Arc<AtomicU64>,
    /// The turn to write a SQLite file, when the writer has a thread (`thread.rs`).
    turn: Option<Turn>,
}

impl Writer {
    /// The writer of node `node` (docs/cluster.md): it creates conversations owned by `node`, and refuses to
    /// update one that another node owns (it was taken over). It writes the SQLite file `file` on a thread of its
    /// own, anything else through `pool`.
    pub fn spawn(pool: AnyPool, file: Option<PathBuf>, node: Arc<str>, backend: Backend) -> Result<Writer> {
        let (tx, rx) = mpsc::channel(4096);
        let author = Author {
            node,
            lock_rows: backend == Backend::Postgres,
            rows: match backend {
                Backend::Postgres => Rows::Exact,
                Backend::Sqlite => Rows::Padded,
            },
        };
        let engine = match file {
            Some(path) if backend == Backend::Sqlite => {
                let thread = Thread::spawn(path.clone(), author.clone()).map_err(|e| StoreError::File {
                    path: path.display().to_string(),
                    why: format!("cannot start the store's thread: {e}"),
                })?;
                Engine::Thread(thread)
            }
            _ => Engine::Pool(pool, author),
        };
        let turn = match &engine {
            Engine::Thread(thread) => Some(thread.turn()),
            Engine::Pool(..) => None,
        };
        let transactions = Arc::new(AtomicU64::new(0));
        tokio::spawn(run(engine, rx, transactions.clone()));
        Ok(Writer {
            tx,
            transactions,
            turn,
        })
    }

    /// The turn to write the SQLite file, for writes made beside the writer (`thread.rs`).
    pub fn turn(&self) -> Option<&Turn> {
        self.turn.as_ref()
    }

    pub fn transactions(&self) -> u64 {
        self.transactions.load(Ordering::Relaxed)
    }

    pub async fn write(&self, w: Write) -> Result<()> {
        self.write_all(vec![w]).await
    }

    /// Writes `ws` (at most [`MAX_JOB`]) in one transaction, all or none: the first failing write fails them all.
    pub async fn write_all(&self, ws: Vec<Write>) -> Result<()> {
        debug_assert!(ws.len() <= MAX_JOB);
        let (reply, done) = oneshot::channel();
        self.tx
            .send((ws, reply, Instant::now() + ANSWER_WITHIN))
            .await
            .map_err(|_| StoreError::Corrupt("the store writer has stopped".into()))?;
        done.await
            .map_err(|_| StoreError::Corrupt("the store writer has stopped".into()))?
    }
}

/// Where the writer's transactions go.
enum Engine {
    Pool(AnyPool, Author),
    Thread(Thread),
}

impl Engine {
    /// Writes `jobs` in one transaction by `deadline`; gives them back with the answer.
    async fn write(&self, jobs: Vec<Vec<Write>>, deadline: Instant) -> Answer {
        match self {
            Engine::Pool(pool, author) => {
                let result = write_batch(pool, author, &jobs, deadline).await;
                (jobs, result)
            }
            Engine::Thread(thread) => thread.write(jobs, deadline).await,
        }
    }
}

async fn run(engine: Engine, mut rx: mpsc::Receiver<Job>, transactions: Arc<AtomicU64>) {
    // Every transaction is counted; a job written alone gets its own result.
    let transaction = async |jobs: Vec<Vec<Write>>, deadline: Instant| {
        transactions.fetch_add(1, Ordering::Relaxed);
        engine.write(jobs, deadline).await
    };
    let alone = async |job: Vec<Write>, deadline: Instant| {
        transaction(vec![job], deadline)
            .await
            .1
            .and_then(|mut v| v.remove(0))
    };
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    let mut load = Load::new(Instant::now());
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        load.note(batch.len(), Instant::now());
        if load.busy() {
            gather::linger(&mut rx, &mut batch, MAX_BATCH, &mut load).await;
        }
        // A job whose caller stopped waiting (a stuck transaction ahead of it) is not written.
        let now = Instant::now();
        let (jobs, late): (Vec<Job>, Vec<Job>) = std::mem::take(&mut batch)
            .into_iter()
            .partition(|(.., deadline)| *deadline > now);
        for (_, reply, _) in late {
            let _ = reply.send(Err(StoreError::TimedOut(ANSWER_WITHIN)));
        }
        let n: usize = jobs.iter().map(|(ws, ..)| ws.len()).sum();
        metrics::histogram!("outdial_store_batch_writes").record(n as f64);
        let Some(first) = jobs.iter().map(|(.., deadline)| *deadline).min() else {
            continue;
        };
        if jobs.len() == 1 {
            let (w, reply, deadline) = jobs.into_iter().next().expect("one job");
            let _ = reply.send(alone(w, deadline).await);
            continue;
        }
        let mut writes = Vec::with_capacity(jobs.len());
        let mut replies = Vec::with_capacity(jobs.len());
        for (w, reply, deadline) in jobs {
            writes.push(w);
            replies.push((reply, deadline));
        }
        match transaction(writes, first).await {
            (_, Ok(results)) => {
                for ((reply, _), r) in replies.into_iter().zip(results) {
                    let _ = reply.send(r);
                }
            }
            // The database refused a statement (nothing was committed): write each alone so one bad write
            // cannot fail the others.
            (writes, Err(StoreError::Db(sqlx::Error::Database(_)))) => {
                for (w, (reply, deadline)) in writes.into_iter().zip(replies) {
                    let _ = reply.send(alone(w, deadline).await);
                }
            }
            // It did not answer, or cannot be reached: each write alone would wait as long again.
            (_, Err(e)) => {
                let why = e.to_string();
                for (reply, _) in replies {
                    let _ = reply.send(Err(match e {
                        StoreError::TimedOut(d) => StoreError::TimedOut(d),
                        _ => StoreError::Unreachable(why.clone()),
                    }));
                }
            }
        }
    }
}
