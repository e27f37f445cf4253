//! Group commit for conversation writes: a batch of callers' writes in one transaction (the task that gathers
//! them is `writer.rs`).
//!
//! Each statement sent to PostgreSQL costs a round trip: a conversation write in its own transaction costs four
//! of them. Under load many conversations are written at once, so one writer task drains the queue and writes a
//! whole batch in one transaction: one existence check, one multi-row upsert of conversations, one multi-row
//! insert of events. Callers still wait for their own commit; order is kept (one writer, FIFO), so event sequence
//! numbers follow the order of the calls. Under load the writer waits a moment for more writes before it begins
//! (`gather`).
//!
//! The statements are planned here as text and values ([`plan`]); they run through sqlx's pool
//! ([`write_batch`]: PostgreSQL, SQLite in memory) or, for a SQLite file, on the store's own thread
//! (`thread.rs`), where the whole transaction is one hop.

use crate::bounded::until;
use crate::rows::Rows;
use crate::statement::{Param, Statement};
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

/// The conversations that a batch's writes update, each once: they must exist.
pub(crate) fn updated(jobs: &[Vec<Write>]) -> Vec<&str> {
    let mut seen = HashSet::new();
    jobs.iter()
        .flatten()
        .filter_map(|w| match w {
            Write::Update(c, ..) => Some(c.id.as_str()),
            Write::Event(e) | Write::Attempt(_, e) => Some(e.conversation_id.as_str()),
            Write::Create(..) => None,
        })
        .filter(|id| seen.insert(*id))
        .collect()
}

/// The query of which of `ids` (not empty) are stored, and who owns them: rows of (id, owner).
pub(crate) fn owners<'a>(author: &Author, ids: &[&'a str]) -> Statement<'a> {
    let mut sql = String::from("SELECT id, owner FROM conversations WHERE id IN ");
    // One row of parameters: `($1, $2, …)`; on SQLite padded with the first id again ([`Rows`]).
    let listed = author.rows.padded(ids.len());
    author.rows.values(&mut sql, listed, 1);
    // PostgreSQL: the rows stay locked until the commit, so a takeover cannot slip in between.
    if author.lock_rows {
        sql.push_str(" FOR UPDATE");
    }
    let params = ids
        .iter()
        .chain(std::iter::repeat_n(&ids[0], listed - ids.len()))
        .map(|id| Param::Text(id))
        .collect();
    Statement { sql, params }
}

/// The conversations found by [`owners`]: those stored, and those of them another node owns now (it took them
/// over: this node writes no new state of them), with that node.
#[derive(Debug, Default)]
pub(crate) struct Found {
    pub known: HashSet<String>,
    pub taken: HashMap<String, String>,
}

impl Found {
    pub fn add(&mut self, author: &Author, id: String, owner: Option<String>) {
        if let Some(owner) = owner
            && *owner != *author.node
        {
            self.taken.insert(id.clone(), owner);
        }
        self.known.insert(id);
    }
}

/// What a batch writes once its conversations were looked up: each job's result (a refused job is left out
/// whole) and the statements that write the others, in order.
pub(crate) fn plan<'a>(
    author: &'a Author,
    jobs: &'a [Vec<Write>],
    mut found: Found,
) -> (Vec<Result<()>>, Vec<Statement<'a>>) {
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
        if let Err(e) = refused(job, &found.known, &found.taken) {
            results.push(Err(e));
            continue;
        }
        for w in job {
            let (conv, event) = match w {
                Write::Create(c, e) => {
                    found.known.insert(c.id.clone());
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
    let mut statements = Vec::with_capacity(4);
    let r = author.rows;
    if !rows.is_empty() {
        let mut sql = String::from(
            "INSERT INTO conversations (id, bot, client_id, state, created_at, updated_at, body, owner) ",
        );
        r.insert_source(&mut sql, 8, rows.len());
        sql.push_str(
            " ON CONFLICT (id) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at, body = excluded.body",
        );
        let params = rows.iter().flat_map(|c| {
            [
                Param::Text(&c.id),
                Param::Text(&c.bot),
                Param::Text(&c.client_id),
                Param::Text(&c.state),
                Param::Int(c.created_at),
                Param::Int(c.updated_at),
                Param::Text(&c.body),
                Param::Text(&author.node),
            ]
        });
        statements.push(padded(sql, r, rows.len(), 8, params));
    }
    if !events.is_empty() {
        let mut sql = String::from("INSERT INTO conversation_events (conversation_id, at, kind, data) ");
        r.insert_source(&mut sql, 4, events.len());
        let params = events.iter().flat_map(|e| {
            [
                Param::Text(&e.conversation_id),
                Param::Int(e.at),
                Param::Text(&e.kind),
                Param::Text(&e.data),
            ]
        });
        statements.push(padded(sql, r, events.len(), 4, params));
    }
    if !outbox.is_empty() {
        let mut sql = String::from(
            "INSERT INTO outbox (event_id, conversation_id, sequence, url, body, secret, status, attempts, \
             next_attempt_at, last_error, created_at, delivered_at, host) ",
        );
        r.insert_source(&mut sql, 13, outbox.len());
        // A notification already written (a write again after its commit's answer was lost, docs/operations.md)
        // is kept once: its row stays, the write goes on.
        sql.push_str(" ON CONFLICT (conversation_id, sequence) DO NOTHING");
        let params = outbox.iter().flat_map(|o| {
            [
                Param::Owned(o.event_id.to_string()),
                Param::Owned(o.conversation_id.to_string()),
                Param::Int(o.sequence),
                Param::Text(&o.url),
                Param::Text(&o.body),
                Param::opt_text(o.secret.as_deref()),
                Param::Text(o.status.as_str()),
                Param::Int(o.attempts),
                Param::Int(o.next_attempt_at),
                Param::opt_text(o.last_error.as_deref()),
                Param::Int(o.created_at),
                Param::opt_int(o.delivered_at),
                Param::Owned(crate::receiver_host(&o.url)),
            ]
        });
        statements.push(padded(sql, r, outbox.len(), 13, params));
    }
    if !attempts.is_empty() {
        // One statement for the batch's attempts: the rows' new values as a table of VALUES (columns `column1` …
        // `column6` in both databases), joined on the key.
        let mut sql = String::from(
            "UPDATE outbox SET status = v.column2, attempts = v.column3, next_attempt_at = v.column4, \
             last_error = v.column5, delivered_at = v.column6, claimed_by = NULL, claimed_until = NULL \
             FROM (VALUES ",
        );
        // Pad rows (SQLite) have a NULL key, which matches no row.
        r.values(&mut sql, 6, attempts.len());
        sql.push_str(") AS v WHERE outbox.event_id = v.column1");
        let params = attempts.iter().flat_map(|o| {
            [
                Param::Owned(o.event_id.to_string()),
                Param::Text(o.status.as_str()),
                Param::Int(o.attempts),
                Param::Int(o.next_attempt_at),
                Param::opt_text(o.last_error.as_deref()),
                Param::opt_int(o.delivered_at),
            ]
        });
        statements.push(padded(sql, r, attempts.len(), 6, params));
    }
    (results, statements)
}

/// A statement of `len` rows of `width` values, with the NULLs of its pad rows ([`Rows::padded`]).
fn padded<'a>(
    sql: String,
    rows: Rows,
    len: usize,
    width: usize,
    values: impl Iterator<Item = Param<'a>>,
) -> Statement<'a> {
    let mut params = Vec::with_capacity(rows.padded(len) * width);
    params.extend(values);
    params.resize(rows.padded(len) * width, Param::NullText);
    Statement { sql, params }
}

/// Writes the batch in one transaction through sqlx's pool; returns the result of each job (NotFound for writes
/// of unknown conversations, TakenOver for updates of taken ones: such a job is left out whole).
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
    let ids = updated(jobs);
    let mut found = Found::default();
    if !ids.is_empty() {
        for row in owners(author, &ids).query().fetch_all(&mut *tx).await? {
            found.add(author, row.try_get("id")?, row.try_get("owner")?);
        }
    }
    let (results, statements) = plan(author, jobs, found);
    for s in statements {
        s.query().execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(results)
}
