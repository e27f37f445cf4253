//! [`SqlStore`]: the [`Store`] on SQLite or PostgreSQL through sqlx's `Any` driver.

use crate::batch::{ConvRow, EventRow, Write};
use crate::bounded::{ANSWER_WITHIN, bounded, until};
use crate::checkpoint::Checkpoints;
use crate::file::{create_private, owner_only, sqlite_path};
use crate::sealed::{self, Sealer};
use crate::writer::Writer;
use crate::{
    Change, ConversationFilter, Created, IdempotencyRecord, Kind, MAX_CHANGES, NodeRow, OutboxRow,
    OutboxStatus, Result, Store, StoreError,
};
use async_trait::async_trait;
use outdial_core::conversation::{Conversation, ConversationEvent};
use outdial_core::time::{iso, now_ms};
use serde_json::Value;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// The owner of the conversations a store writes before [`SqlStore::with_node`].
const LOCAL_NODE: &str = "local";

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The store on a SQL database. Cloning shares the pools.
#[derive(Clone)]
pub struct SqlStore {
    /// SQLite has one writer at a time: a single write connection avoids busy waits; reads go in parallel.
    pub(crate) write: AnyPool,
    pub(crate) read: AnyPool,
    backend: Backend,
    /// Group commit of conversation writes.
    writer: Writer,
    /// Seals secrets at rest when the operator set a master key (docs/security.md).
    sealer: Option<Arc<Sealer>>,
    /// The node id written as the owner of new conversations (docs/cluster.md); `local` until set.
    node: Arc<str>,
    /// The SQLite file, which the writer writes on a thread of its own (`thread.rs`); none in memory or on
    /// PostgreSQL.
    file: Option<PathBuf>,
    /// SQLite's checkpoints, beside the writer (`checkpoint.rs`); none in memory or on PostgreSQL. The task
    /// stops with the last clone of the store.
    checkpoints: Option<Arc<Checkpoints>>,
}

impl std::fmt::Debug for SqlStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStore")
            .field("backend", &self.backend)
            .finish()
    }
}

pub(crate) fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

/// Set on every SQLite connection when it is opened. `temp_store=MEMORY`: the temporary tables of a statement (a
/// sort, an `IN` list, a `VALUES` table) stay in memory instead of a file created and deleted in `/var/tmp` for each
/// such statement, ~100 a second at 500 calls a second (BENCHMARKS.md, "Call setup", eighteenth sitting).
pub(crate) const SQLITE_PRAGMAS: &str = "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=10000; PRAGMA temp_store=MEMORY;";

impl SqlStore {
    /// Connects (`sqlite://FILE`, `sqlite::memory:`, `postgres://…`) and runs the migrations; secrets are stored
    /// as they are.
    pub async fn connect(url: &str) -> Result<SqlStore> {
        Self::connect_with(url, None).await
    }

    /// Connects; secrets are sealed with `sealer` when there is one. A SQLite file and its WAL and shared-memory
    /// files are readable by their owner only (0600), also when they existed before.
    pub async fn connect_with(url: &str, sealer: Option<Sealer>) -> Result<SqlStore> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::Url(url.to_string()));
        };
        let store = match backend {
            Backend::Sqlite => {
                if let Some(path) = sqlite_path(url) {
                    create_private(&path)?;
                    owner_only(&path)?;
                }
                let url = sqlite_url(url);
                let opts = || {
                    // No ping before each use: sqlx's default costs a round trip to the connection's thread every
                    // time a connection is taken, and a SQLite file's connection does not go stale. A connection
                    // whose transaction failed is closed, never reused (`batch::write_batch`).
                    AnyPoolOptions::new()
                        .acquire_timeout(Duration::from_secs(10))
                        .test_before_acquire(false)
                        .after_connect(|conn, _| {
                            Box::pin(async move {
                                sqlx::raw_sql(SQLITE_PRAGMAS).execute(conn).await?;
                                Ok(())
                            })
                        })
                };
                let write = opts().max_connections(1).connect(&url).await?;
                let (read, checkpoints) = if url.contains(":memory:") {
                    (write.clone(), None)
                } else {
                    let read = opts().max_connections(4).connect(&url).await?;
                    let checkpoints = Arc::new(Checkpoints::spawn(read.clone(), sqlite_path(&url)));
                    (read, Some(checkpoints))
                };
                let file = sqlite_path(&url);
                SqlStore {
                    writer: Writer::spawn(write.clone(), file.clone(), LOCAL_NODE.into(), backend)?,
                    write,
                    read,
                    backend,
                    sealer: None,
                    node: LOCAL_NODE.into(),
                    file,
                    checkpoints,
                }
            }
            Backend::Postgres => {
                let pool = AnyPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(10))
                    .after_release(crate::bounded::released)
                    .connect(url)
                    .await?;
                SqlStore {
                    writer: Writer::spawn(pool.clone(), None, LOCAL_NODE.into(), backend)?,
                    write: pool.clone(),
                    read: pool,
                    backend,
                    sealer: None,
                    node: LOCAL_NODE.into(),
                    file: None,
                    checkpoints: None,
                }
            }
        };
        match backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&store.write).await?,
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&store.write).await?,
        }
        if let Some(path) = sqlite_path(url) {
            owner_only(&path)?;
        }
        Ok(SqlStore {
            sealer: sealer.map(Arc::new),
            ..store
        })
    }

    /// The same store, writing as node `node` of a cluster (docs/cluster.md): new conversations are owned by it,
    /// and a conversation another node took over is no longer written by it.
    pub fn with_node(self, node: &str) -> Result<SqlStore> {
        let node: Arc<str> = node.into();
        Ok(SqlStore {
            writer: Writer::spawn(self.write.clone(), self.file.clone(), node.clone(), self.backend)?,
            node,
            ..self
        })
    }

    /// The transactions the conversation writer has begun (docs/architecture.md, "The store"): with the writes
    /// made meanwhile, how well they were gathered.
    pub fn transactions(&self) -> u64 {
        self.writer.transactions()
    }

    /// The write of a conversation's new state, its event and its notifications (their secrets sealed).
    fn update(&self, conv: &Conversation, kind: &str, data: &Value, outbox: &[OutboxRow]) -> Result<Write> {
        let event = event_row(conv.id, kind, data, conv.updated_at);
        let outbox = outbox
            .iter()
            .map(|r| OutboxRow {
                secret: r.secret.as_deref().map(|s| sealed::seal(self.sealer(), s)),
                ..r.clone()
            })
            .collect();
        Ok(Write::Update(conv_row(conv)?, event, outbox))
    }

    pub(crate) fn sealer(&self) -> Option<&Sealer> {
        self.sealer.as_deref()
    }

    /// New conversations are refused while SQLite's checkpoints find the disk full: what is left of the log's
    /// space is kept for the calls already up (`checkpoint.rs`).
    fn room_for_new(&self) -> Result<()> {
        match &self.checkpoints {
            Some(c) if c.disk_full() => Err(StoreError::DiskFull),
            _ => Ok(()),
        }
    }

    /// A write's result, after a failure for a full disk has marked the store full (`checkpoint.rs`).
    fn noted<T>(&self, written: Result<T>) -> Result<T> {
        if let (Err(e), Some(c)) = (&written, &self.checkpoints) {
            c.note(e);
        }
        written
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The conversation and its idempotency key, in one transaction on `conn`.
    async fn create_with_key(
        &self,
        conn: &mut sqlx::pool::PoolConnection<sqlx::Any>,
        conv: &Conversation,
        k: &IdempotencyRecord,
        idempotency_since: i64,
    ) -> Result<Created> {
        // SQLite: the write lock is taken (or waited for) at the start. Another connection may commit between this
        // transaction's read of the key and its first write (the writer's thread, `thread.rs`, if not for its turn;
        // another process): a deferred transaction could not upgrade to writing then, and would fail at once
        // (`SQLITE_BUSY_SNAPSHOT`) instead of waiting.
        let mut tx = match self.backend {
            Backend::Sqlite => sqlx::Connection::begin_with(&mut **conn, "BEGIN IMMEDIATE").await?,
            Backend::Postgres => sqlx::Connection::begin(&mut **conn).await?,
        };
        let existing = sqlx::query(
            "SELECT client_id, key, body_hash, conversation_id, created_at FROM idempotency_keys \
             WHERE client_id = $1 AND key = $2",
        )
        .bind(&k.client_id)
        .bind(&k.key)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = existing {
            let rec = idempotency_from(&row)?;
            if rec.created_at >= idempotency_since {
                return Ok(Created::Existing(rec));
            }
            sqlx::query("DELETE FROM idempotency_keys WHERE client_id = $1 AND key = $2")
                .bind(&k.client_id)
                .bind(&k.key)
                .execute(&mut *tx)
                .await?;
        }
        // docs/cluster.md: two nodes given the same key at once both get here; the key's row decides, and the one
        // that did not write it answers with the other's conversation.
        let inserted = sqlx::query(
            "INSERT INTO idempotency_keys (client_id, key, body_hash, conversation_id, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (client_id, key) DO NOTHING",
        )
        .bind(&k.client_id)
        .bind(&k.key)
        .bind(&k.body_hash)
        .bind(k.conversation_id.to_string())
        .bind(k.created_at)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            tx.rollback().await?;
            let row = sqlx::query(
                "SELECT client_id, key, body_hash, conversation_id, created_at FROM idempotency_keys \
                 WHERE client_id = $1 AND key = $2",
            )
            .bind(&k.client_id)
            .bind(&k.key)
            .fetch_one(&mut **conn)
            .await?;
            return Ok(Created::Existing(idempotency_from(&row)?));
        }
        let body = serde_json::to_string(conv).map_err(corrupt)?;
        sqlx::query(
            "INSERT INTO conversations (id, bot, client_id, state, created_at, updated_at, body, owner) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(conv.id.to_string())
        .bind(&conv.bot)
        .bind(&conv.client_id)
        .bind(conv.state.as_str())
        .bind(conv.created_at)
        .bind(conv.updated_at)
        .bind(body)
        .bind(self.node())
        .execute(&mut *tx)
        .await?;
        let data = serde_json::json!({"bot": conv.bot, "clientId": conv.client_id});
        Self::insert_event(&mut *tx, conv.id, conv.state.as_str(), &data, conv.created_at).await?;
        tx.commit().await?;
        Ok(Created::New)
    }

    async fn insert_event<'c, E>(exec: E, id: Uuid, kind: &str, data: &Value, at: i64) -> Result<()>
    where
        E: sqlx::Executor<'c, Database = sqlx::Any>,
    {
        sqlx::query(
            "INSERT INTO conversation_events (conversation_id, at, kind, data) VALUES ($1, $2, $3, $4)",
        )
        .bind(id.to_string())
        .bind(at)
        .bind(kind)
        .bind(data.to_string())
        .execute(exec)
        .await?;
        Ok(())
    }
}

/// Creates the SQLite file when missing (`mode=rwc`).
fn sqlite_url(url: &str) -> String {
    if url.contains(":memory:") || url.contains("mode=") {
        url.to_string()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    }
}

fn conv_row(c: &Conversation) -> Result<ConvRow> {
    Ok(ConvRow {
        id: c.id.to_string(),
        bot: c.bot.clone(),
        client_id: c.client_id.clone(),
        state: c.state.as_str().to_string(),
        created_at: c.created_at,
        updated_at: c.updated_at,
        body: serde_json::to_string(c).map_err(corrupt)?,
    })
}

fn event_row(id: Uuid, kind: &str, data: &Value, at: i64) -> EventRow {
    EventRow {
        conversation_id: id.to_string(),
        at,
        kind: kind.to_string(),
        data: data.to_string(),
    }
}

fn outbox_from(sealer: Option<&Sealer>, r: &AnyRow) -> Result<OutboxRow> {
    let event_id: String = r.try_get("event_id")?;
    let conv: String = r.try_get("conversation_id")?;
    let status: String = r.try_get("status")?;
    Ok(OutboxRow {
        event_id: event_id.parse().map_err(corrupt)?,
        conversation_id: conv.parse().map_err(corrupt)?,
        sequence: r.try_get("sequence")?,
        url: r.try_get("url")?,
        body: r.try_get("body")?,
        secret: r
            .try_get::<Option<String>, _>("secret")?
            .map(|s| sealed::open(sealer, &s))
            .transpose()?,
        status: OutboxStatus::parse(&status).ok_or_else(|| corrupt(format!("outbox status '{status}'")))?,
        attempts: r.try_get("attempts")?,
        next_attempt_at: r.try_get("next_attempt_at")?,
        last_error: r.try_get("last_error")?,
        created_at: r.try_get("created_at")?,
        delivered_at: r.try_get("delivered_at")?,
    })
}

fn conversation_from(row: &AnyRow) -> Result<Conversation> {
    let body: String = row.try_get("body")?;
    serde_json::from_str(&body).map_err(corrupt)
}

fn idempotency_from(row: &AnyRow) -> Result<IdempotencyRecord> {
    let conv: String = row.try_get("conversation_id")?;
    Ok(IdempotencyRecord {
        client_id: row.try_get("client_id")?,
        key: row.try_get("key")?,
        body_hash: row.try_get("body_hash")?,
        conversation_id: conv.parse().map_err(corrupt)?,
        created_at: row.try_get("created_at")?,
    })
}

#[async_trait]
impl Store for SqlStore {
    async fn ping(&self) -> Result<()> {
        bounded(async {
            self.room_for_new()?;
            sqlx::query("SELECT 1").execute(&self.read).await?;
            // A store that reads but cannot write (a full disk) is not ready: one small write through the writers' pool.
            let probe = sqlx::query(
                "INSERT INTO store_probe (id, at) VALUES ('probe', $1) ON CONFLICT (id) DO UPDATE SET at = excluded.at",
            )
            .bind(now_ms())
            .execute(&self.write)
            .await;
            self.noted(probe.map_err(StoreError::from)).map(drop)
        })
        .await
    }

    async fn list_objects(&self, kind: Kind) -> Result<Vec<Value>> {
        bounded(self.docs(kind)).await
    }

    async fn get_object(&self, kind: Kind, name: &str) -> Result<Option<Value>> {
        bounded(self.doc(kind, name)).await
    }

    async fn insert_object(&self, kind: Kind, name: &str, doc: &Value) -> Result<()> {
        bounded(self.insert_doc(kind, name, doc)).await
    }

    async fn replace_object(&self, kind: Kind, name: &str, doc: &Value) -> Result<()> {
        bounded(self.replace_doc(kind, name, doc)).await
    }

    async fn upsert_object(&self, kind: Kind, name: &str, doc: &Value) -> Result<()> {
        bounded(self.upsert_doc(kind, name, doc)).await
    }

    async fn delete_object(&self, kind: Kind, name: &str) -> Result<bool> {
        bounded(self.delete_doc(kind, name)).await
    }

    async fn objects_version(&self) -> Result<i64> {
        bounded(self.docs_version()).await
    }

    async fn create_conversation(
        &self,
        conv: &Conversation,
        idempotency: Option<&IdempotencyRecord>,
        idempotency_since: i64,
    ) -> Result<Created> {
        self.room_for_new()?;
        let Some(k) = idempotency else {
            let data = serde_json::json!({"bot": conv.bot, "clientId": conv.client_id});
            let event = event_row(conv.id, conv.state.as_str(), &data, conv.created_at);
            let written = self.writer.write(Write::Create(conv_row(conv)?, event)).await;
            return self.noted(written).map(|()| Created::New);
        };
        let deadline = tokio::time::Instant::now() + ANSWER_WITHIN;
        // On a SQLite file, in turn with the writer's thread (`thread.rs`).
        let _turn = match self.writer.turn() {
            Some(turn) => Some(until(deadline, async { Ok(turn.lock().await) }).await?),
            None => None,
        };
        // A connection whose transaction failed (a full disk can fail the COMMIT and leave SQLite inside the
        // transaction) is closed, never given back to the pool: later writes would go into that transaction.
        let mut conn = until(deadline, async { Ok(self.write.acquire().await?) }).await?;
        let created = until(
            deadline,
            self.create_with_key(&mut conn, conv, k, idempotency_since),
        )
        .await;
        if created.is_err() {
            conn.close_on_drop();
        }
        self.noted(created)
    }

    async fn find_idempotency(
        &self,
        client_id: &str,
        key: &str,
        since: i64,
    ) -> Result<Option<IdempotencyRecord>> {
        bounded(async {
            let row = sqlx::query(
                "SELECT client_id, key, body_hash, conversation_id, created_at FROM idempotency_keys \
                 WHERE client_id = $1 AND key = $2 AND created_at >= $3",
            )
            .bind(client_id)
            .bind(key)
            .bind(since)
            .fetch_optional(&self.read)
            .await?;
            row.as_ref().map(idempotency_from).transpose()
        })
        .await
    }

    async fn get_conversation(&self, id: Uuid) -> Result<Option<Conversation>> {
        bounded(async {
            let row = sqlx::query("SELECT body FROM conversations WHERE id = $1")
                .bind(id.to_string())
                .fetch_optional(&self.read)
                .await?;
            row.as_ref().map(conversation_from).transpose()
        })
        .await
    }

    async fn list_conversations(&self, f: &ConversationFilter) -> Result<Vec<Conversation>> {
        bounded(async {
            let mut sql = String::from("SELECT body FROM conversations WHERE 1 = 1");
            let mut args: Vec<Arg> = Vec::new();
            let mut push = |sql: &mut String, clause: &str, a: Arg| {
                args.push(a);
                sql.push_str(&clause.replace('?', &format!("${}", args.len())));
            };
            if let Some(b) = &f.bot {
                push(&mut sql, " AND bot = ?", Arg::Text(b.clone()));
            }
            if let Some(bots) = &f.bots_in {
                if bots.is_empty() {
                    return Ok(Vec::new());
                }
                sql.push_str(" AND bot IN (");
                for (i, b) in bots.iter().enumerate() {
                    push(&mut sql, if i == 0 { "?" } else { ", ?" }, Arg::Text(b.clone()));
                }
                sql.push(')');
            }
            if let Some(states) = &f.states {
                if states.is_empty() {
                    return Ok(Vec::new());
                }
                sql.push_str(" AND state IN (");
                for (i, s) in states.iter().enumerate() {
                    push(
                        &mut sql,
                        if i == 0 { "?" } else { ", ?" },
                        Arg::Text(s.as_str().into()),
                    );
                }
                sql.push(')');
            }
            if let Some(t) = f.since {
                push(&mut sql, " AND created_at >= ?", Arg::Int(t));
            }
            if let Some(t) = f.until {
                push(&mut sql, " AND created_at < ?", Arg::Int(t));
            }
            if let Some((t, id)) = f.after {
                push(&mut sql, " AND (created_at < ?", Arg::Int(t));
                push(&mut sql, " OR (created_at = ?", Arg::Int(t));
                push(&mut sql, " AND id < ?))", Arg::Text(id.to_string()));
            }
            push(
                &mut sql,
                " ORDER BY created_at DESC, id DESC LIMIT ?",
                Arg::Int(i64::from(f.limit.max(1))),
            );
            let mut q = sqlx::query(audited(sql));
            for a in args {
                q = match a {
                    Arg::Text(s) => q.bind(s),
                    Arg::Int(i) => q.bind(i),
                };
            }
            let rows = q.fetch_all(&self.read).await?;
            rows.iter().map(conversation_from).collect()
        })
        .await
    }

    async fn transition(
        &self,
        conv: &Conversation,
        kind: &str,
        data: &Value,
        outbox: &[OutboxRow],
    ) -> Result<()> {
        let written = self.writer.write(self.update(conv, kind, data, outbox)?).await;
        self.noted(written)
    }

    async fn record(&self, id: Uuid, changes: &[Change<'_>]) -> Result<()> {
        if changes.len() > MAX_CHANGES {
            return Err(StoreError::TooManyChanges(changes.len()));
        }
        let now = now_ms();
        let writes = changes
            .iter()
            .map(|c| match *c {
                Change::Transition {
                    conversation,
                    kind,
                    data,
                    outbox,
                } => {
                    debug_assert_eq!(conversation.id, id, "a change of another conversation");
                    self.update(conversation, kind, data, outbox)
                }
                Change::Event { kind, data } => Ok(Write::Event(event_row(id, kind, data, now))),
            })
            .collect::<Result<Vec<_>>>()?;
        let written = self.writer.write_all(writes).await;
        self.noted(written)
    }

    async fn due_notifications(&self, now: i64, limit: u32, per_host: u32) -> Result<Vec<OutboxRow>> {
        bounded(async {
            // The oldest due rows first (through the pending index, a bounded scan: 16 reads' worth), then at most
            // `per_host` of them per receiver host.
            //
            // The limits are written into the text, not bound: SQLite plans a bound LIMIT with its value and marks the
            // statement to be prepared again whenever that parameter is bound, so the notifier's every read parsed and
            // planned this query anew (~4 % of the gateway's CPU at 500 calls/s, BENCHMARKS.md, "Call setup"). They
            // are the notifier's settings: the text stays the same, and stays prepared.
            let sql = format!(
                "SELECT * FROM (SELECT w.*, ROW_NUMBER() OVER (PARTITION BY w.host ORDER BY w.next_attempt_at, \
                 w.created_at) AS host_rank FROM (SELECT o.* FROM outbox o WHERE o.status = 'pending' \
                 AND o.next_attempt_at <= $1 AND (o.claimed_until IS NULL OR o.claimed_until <= $1 OR o.claimed_by = $2) \
                 AND NOT EXISTS (SELECT 1 FROM outbox p WHERE \
                 p.conversation_id = o.conversation_id AND p.status = 'pending' AND p.sequence < o.sequence) \
                 ORDER BY o.next_attempt_at, o.created_at LIMIT {scan}) w) d \
                 WHERE d.host_rank <= {per_host} ORDER BY d.next_attempt_at, d.created_at LIMIT {limit}",
                scan = u64::from(limit) * 16,
            );
            let rows = sqlx::query(audited(sql))
                .bind(now)
                .bind(self.node())
                .fetch_all(&self.read)
                .await?;
            rows.iter().map(|r| outbox_from(self.sealer(), r)).collect()
        })
        .await
    }

    async fn hurry_host(&self, host: &str, now: i64) -> Result<u64> {
        bounded(async {
            let done = sqlx::query(
                "UPDATE outbox SET next_attempt_at = $2 WHERE host = $1 AND status = 'pending' AND next_attempt_at > $2",
            )
            .bind(host)
            .bind(now)
            .execute(&self.write)
            .await?;
            Ok(done.rows_affected())
        })
        .await
    }

    async fn record_attempt(&self, row: &OutboxRow, event: &Value) -> Result<()> {
        let ev = event_row(row.conversation_id, "notification", event, now_ms());
        let written = self.writer.write(Write::Attempt(row.clone(), ev)).await;
        self.noted(written)
    }

    async fn notifications(&self, conversation: Uuid) -> Result<Vec<OutboxRow>> {
        bounded(async {
            let rows = sqlx::query("SELECT * FROM outbox WHERE conversation_id = $1 ORDER BY sequence")
                .bind(conversation.to_string())
                .fetch_all(&self.read)
                .await?;
            rows.iter().map(|r| outbox_from(self.sealer(), r)).collect()
        })
        .await
    }

    async fn append_event(&self, id: Uuid, kind: &str, data: &Value) -> Result<()> {
        let written = self
            .writer
            .write(Write::Event(event_row(id, kind, data, now_ms())))
            .await;
        self.noted(written)
    }

    async fn events(&self, id: Uuid) -> Result<Vec<ConversationEvent>> {
        bounded(async {
            let rows = sqlx::query(
                "SELECT seq, at, kind, data FROM conversation_events WHERE conversation_id = $1 ORDER BY seq",
            )
            .bind(id.to_string())
            .fetch_all(&self.read)
            .await?;
            rows.iter()
                .map(|r| {
                    let data: String = r.try_get("data")?;
                    Ok(ConversationEvent {
                        seq: r.try_get("seq")?,
                        at: iso(r.try_get("at")?),
                        kind: r.try_get("kind")?,
                        data: serde_json::from_str(&data).map_err(corrupt)?,
                    })
                })
                .collect()
        })
        .await
    }

    async fn live_conversations(&self) -> Result<Vec<Conversation>> {
        bounded(async { self.own_live().await }).await
    }

    fn node(&self) -> &str {
        &self.node
    }

    async fn heartbeat(&self, node: &NodeRow) -> Result<()> {
        bounded(async { self.beat(node).await }).await
    }

    async fn nodes(&self) -> Result<Vec<NodeRow>> {
        bounded(async { self.node_rows().await }).await
    }

    async fn leave(&self, id: &str, instance: &str) -> Result<()> {
        bounded(async {
            sqlx::query("DELETE FROM nodes WHERE id = $1 AND instance = $2")
                .bind(id)
                .bind(instance)
                .execute(&self.write)
                .await?;
            Ok(())
        })
        .await
    }

    async fn take_over(&self, stale_before: i64) -> Result<Vec<(String, Conversation)>> {
        bounded(async { self.take(stale_before).await }).await
    }

    async fn claim_notifications(&self, ids: &[Uuid], now: i64, until: i64) -> Result<Vec<Uuid>> {
        bounded(async { self.claim(ids, now, until).await }).await
    }

    async fn signing_key(&self) -> Result<Vec<u8>> {
        bounded(async {
            use base64::Engine as _;
            let b64 = base64::engine::general_purpose::STANDARD;
            // Insert-if-absent then read, so concurrent first starts of several nodes agree on one key.
            let candidate: [u8; 32] = rand::random();
            sqlx::query("INSERT INTO signing_keys (id, secret, created_at) VALUES ('current', $1, $2) ON CONFLICT (id) DO NOTHING")
                .bind(sealed::seal(self.sealer(), &b64.encode(candidate)))
                .bind(now_ms())
                .execute(&self.write)
                .await?;
            let row = sqlx::query("SELECT secret FROM signing_keys WHERE id = 'current'")
                .fetch_one(&self.write)
                .await?;
            let s = sealed::open(self.sealer(), &row.try_get::<String, _>("secret")?)?;
            b64.decode(s).map_err(corrupt)
        })
        .await
    }
}

/// Marks SQL built here from fixed table names and `$N` placeholders (never from input) as audited.
pub(crate) fn audited(sql: String) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(sql)
}

enum Arg {
    Text(String),
    Int(i64),
}
