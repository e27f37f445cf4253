//! Group commit for conversation writes: a batch of callers' writes in one transaction (the task that gathers
//! them is `writer.rs`).
//!
//! Each statement sent to the database costs a round trip (for SQLite, a hop to sqlx's worker thread and back,
//! ~0.1 ms on a busy 2-core machine): a conversation write in its own transaction costs four of them. Under load
//! many conversations are written at once, so one writer task drains the queue and writes a whole batch in one
//! transaction: one existence check, one multi-row upsert of conversations, one multi-row insert of events.
//! Callers still wait for their own commit; order is kept (one writer, FIFO), so event sequence numbers follow
//! the order of the calls. Under load the writer waits a moment for more writes before it begins (`gather`).

use crate::bounded::until;
use crate::rows::Rows;
use crate::{OutboxRow, Result, StoreError};
use sqlx::{AnyPool, Row};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use tokio::time::Instant;

/// At most this many jobs per transaction, of at most [`MAX_JOB`] writes each: bind parameters stay below
/// SQLite's 32766 (256 × 8 writes × 13 parameters at worst, the outbox's).
pub(crate) const MAX_BATCH: usize = 256;
pub(crate) const MAX_JOB: usize = 8;

/// The conversation columns of a write.
#[derive(Debug, Clone)]
pub(crate) struct ConvRow {
    pub id: String,
    pub bot: String,
    pub client_id: String,
    pub state: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub body: String,
}

#[derive(Debug, Clone)]
pub(crate) struct EventRow {
    pub conversation_id: String,
    pub at: i64,
    pub kind: String,
    pub data: String,
}

#[derive(Debug)]
pub(crate) enum Write {
    /// A new conversation and its first event.
    Create(ConvRow, EventRow),
    /// A new state of an existing conversation, its event and its notifications; fails with NotFound when
    /// there is no such conversation.
    Update(ConvRow, EventRow, Vec<OutboxRow>),
    /// The result of a notification attempt and its timeline event.
    Attempt(OutboxRow, EventRow),
    /// An event of an existing conversation.
    Event(EventRow),
}

/// Who writes: the node that owns what it creates, whether the database locks the rows it checks, and how its
/// bind parameters are written.
#[derive(Clone)]
pub(crate) struct Author {
    pub node: Arc<str>,
    pub lock_rows: bool,
    pub rows: Rows,
}

/// Binds the NULLs of the pad rows of a statement of `len` rows of `width` values ([`Rows::padded`]).
fn pad<'q>(mut q: AnyQuery<'q>, rows: Rows, len: usize, width: usize) -> AnyQuery<'q> {
    for _ in 0..(rows.padded(len) - len) * width {
        q = q.bind(None::<String>);
    }
    q
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

/// Adds `row` to `rows` in first-seen order of its `key`, replacing the row of the same key already there (the last
/// write of a batch wins; `index` maps each key to its place).
fn keep_last<'a, T, K: std::hash::Hash + Eq>(
    rows: &mut Vec<&'a T>,
    index: &mut HashMap<K, usize>,
    key: K,
    row: &'a T,
) {
    match index.get(&key) {
        Some(&i) => rows[i] = row,
        None => {
            index.insert(key, rows.len());
            rows.push(row);
        }
    }
}

/// Why a job cannot be written: its first write of a conversation that does not exist (neither stored nor created
/// earlier in the batch or the job), or that updates a conversation another node took over.
fn refused(job: &[Write], known: &HashSet<String>, taken: &HashMap<String, String>) -> Result<()> {
    let mut created: HashSet<&str> = HashSet::new();
    for w in job {
        let id = match w {
            Write::Create(c, _) => {
                created.insert(c.id.as_str());
                continue;
            }
            Write::Update(c, ..) => c.id.as_str(),
            Write::Event(e) | Write::Attempt(_, e) => e.conversation_id.as_str(),
        };
        if !known.contains(id) && !created.contains(id) {
            return Err(StoreError::NotFound("conversation", id.to_string()));
        }
        if let Write::Update(..) = w
            && let Some(owner) = taken.get(id)
        {
            return Err(StoreError::TakenOver(id.to_string(), owner.clone()));
        }
    }
    Ok(())
}

/// Writes the batch in one transaction; returns the result of each job (NotFound for writes of unknown
/// conversations, TakenOver for updates of taken ones: such a job is left out whole).
pub(crate) async fn write_batch(
    pool: &AnyPool,
    author: &Author,
    writes: &[Vec<Write>],
    deadline: Instant,
) -> Result<Vec<Result<()>>> {
    // docs/operations.md, "What happens when …": a connection whose transaction failed is closed, never reused.
    // A full disk can fail the COMMIT and leave SQLite inside the transaction; on that connection every later
    // "transaction" would be a savepoint of the failed one, answered as committed and never written.
    // docs/operations.md: a database that stops answering fails the batch by its first caller's deadline, so the
    // writes queued behind it are not held; its connection goes with it.
    let mut conn = until(deadline, async { Ok(pool.acquire().await?) }).await?;
    let result = until(deadline, write_on(&mut conn, author, writes)).await;
    if result.is_err() {
        conn.close_on_drop();
    }
    result
}

async fn write_on(
    conn: &mut sqlx::pool::PoolConnection<sqlx::Any>,
    author: &Author,
    jobs: &[Vec<Write>],
) -> Result<Vec<Result<()>>> {
    let mut tx = sqlx::Connection::begin(&mut **conn).await?;
    // Which conversations that are updated exist (created in this batch, or stored)?
    let updated: Vec<&str> = jobs
        .iter()
        .flatten()
        .filter_map(|w| match w {
            Write::Update(c, ..) => Some(c.id.as_str()),
            Write::Event(e) | Write::Attempt(_, e) => Some(e.conversation_id.as_str()),
            Write::Create(..) => None,
        })
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let mut known: HashSet<String> = HashSet::new();
    // Conversations another node owns now (it took them over): this node writes no new state of them.
    let mut taken: HashMap<String, String> = HashMap::new();
    if !updated.is_empty() {
        let mut sql = String::from("SELECT id, owner FROM conversations WHERE id IN ");
        // One row of parameters: `($1, $2, …)`; on SQLite padded with the first id again ([`Rows`]).
        let listed = author.rows.padded(updated.len());
        author.rows.values(&mut sql, listed, 1);
        // PostgreSQL: the rows stay locked until the commit, so a takeover cannot slip in between.
        if author.lock_rows {
            sql.push_str(" FOR UPDATE");
        }
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in updated
            .iter()
            .chain(std::iter::repeat_n(&updated[0], listed - updated.len()))
        {
            q = q.bind(*id);
        }
        for row in q.fetch_all(&mut *tx).await? {
            let id: String = row.try_get("id")?;
            if let Some(owner) = row.try_get::<Option<String>, _>("owner")?
                && *owner != *author.node
            {
                taken.insert(id.clone(), owner);
            }
            known.insert(id);
        }
    }
    let mut results = Vec::with_capacity(jobs.len());
    // Last state per conversation, in first-seen order; events in call order.
    let mut rows: Vec<&ConvRow> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut events: Vec<&EventRow> = Vec::new();
    let mut outbox: Vec<&OutboxRow> = Vec::new();
    let mut attempts: Vec<&OutboxRow> = Vec::new();
    let mut attempt_index: HashMap<uuid::Uuid, usize> = HashMap::new();
    for job in jobs {
        // All or none: a job with a write that cannot be made is left out whole.
        if let Err(e) = refused(job, &known, &taken) {
            results.push(Err(e));
            continue;
        }
        for w in job {
            let (conv, event) = match w {
                Write::Create(c, e) => {
                    known.insert(c.id.clone());
                    (Some(c), e)
                }
                Write::Update(c, e, _) => (Some(c), e),
                Write::Event(e) | Write::Attempt(_, e) => (None, e),
            };
            if let Some(c) = conv {
                keep_last(&mut rows, &mut index, c.id.as_str(), c);
            }
            events.push(event);
            match w {
                Write::Update(_, _, rows) => outbox.extend(rows.iter()),
                // A notification's later attempt in the same batch replaces its earlier one.
                Write::Attempt(row, _) => keep_last(&mut attempts, &mut attempt_index, row.event_id, row),
                _ => {}
            }
        }
        results.push(Ok(()));
    }
    if !rows.is_empty() {
        let mut sql = String::from(
            "INSERT INTO conversations (id, bot, client_id, state, created_at, updated_at, body, owner) ",
        );
        author.rows.insert_source(&mut sql, 8, rows.len());
        sql.push_str(
            " ON CONFLICT (id) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at, body = excluded.body",
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for c in &rows {
            q = q
                .bind(c.id.as_str())
                .bind(c.bot.as_str())
                .bind(c.client_id.as_str())
                .bind(c.state.as_str())
                .bind(c.created_at)
                .bind(c.updated_at)
                .bind(c.body.as_str())
                .bind(&*author.node);
        }
        q = pad(q, author.rows, rows.len(), 8);
        q.execute(&mut *tx).await?;
    }
    if !events.is_empty() {
        let mut sql = String::from("INSERT INTO conversation_events (conversation_id, at, kind, data) ");
        author.rows.insert_source(&mut sql, 4, events.len());
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for e in &events {
            q = q
                .bind(e.conversation_id.as_str())
                .bind(e.at)
                .bind(e.kind.as_str())
                .bind(e.data.as_str());
        }
        q = pad(q, author.rows, events.len(), 4);
        q.execute(&mut *tx).await?;
    }
    if !outbox.is_empty() {
        let mut sql = String::from(
            "INSERT INTO outbox (event_id, conversation_id, sequence, url, body, secret, status, attempts, \
             next_attempt_at, last_error, created_at, delivered_at, host) ",
        );
        author.rows.insert_source(&mut sql, 13, outbox.len());
        // A notification already written (a write again after its commit's answer was lost, docs/operations.md)
        // is kept once: its row stays, the write goes on.
        sql.push_str(" ON CONFLICT (conversation_id, sequence) DO NOTHING");
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for r in &outbox {
            q = q
                .bind(r.event_id.to_string())
                .bind(r.conversation_id.to_string())
                .bind(r.sequence)
                .bind(r.url.as_str())
                .bind(r.body.as_str())
                .bind(r.secret.clone())
                .bind(r.status.as_str())
                .bind(r.attempts)
                .bind(r.next_attempt_at)
                .bind(r.last_error.clone())
                .bind(r.created_at)
                .bind(r.delivered_at)
                .bind(crate::receiver_host(&r.url));
        }
        q = pad(q, author.rows, outbox.len(), 13);
        q.execute(&mut *tx).await?;
    }
    if !attempts.is_empty() {
        // One statement for the batch's attempts (each statement is a round trip to SQLite's thread): the rows'
        // new values as a table of VALUES (columns `column1` … `column6` in both databases), joined on the key.
        let mut sql = String::from(
            "UPDATE outbox SET status = v.column2, attempts = v.column3, next_attempt_at = v.column4, \
             last_error = v.column5, delivered_at = v.column6, claimed_by = NULL, claimed_until = NULL \
             FROM (VALUES ",
        );
        // Pad rows (SQLite) have a NULL key, which matches no row.
        author.rows.values(&mut sql, 6, attempts.len());
        sql.push_str(") AS v WHERE outbox.event_id = v.column1");
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for r in &attempts {
            q = q
                .bind(r.event_id.to_string())
                .bind(r.status.as_str())
                .bind(r.attempts)
                .bind(r.next_attempt_at)
                .bind(r.last_error.clone())
                .bind(r.delivered_at);
        }
        q = pad(q, author.rows, attempts.len(), 6);
        q.execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(results)
}
