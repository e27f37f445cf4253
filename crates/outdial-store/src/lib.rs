//! Persistence of outdial: the [`Store`] trait and [`SqlStore`], its implementation on SQLite (the embedded
//! default) and PostgreSQL (clusters).
//!
//! One SQL text serves both databases (sqlx's `Any` driver; `$N` placeholders, which SQLite accepts too);
//! only the migrations differ per database. Configuration objects (bots, trunks, applications) are stored as
//! validated JSON documents; conversations as a document plus the columns that are queried.

mod batch;
mod bounded;
mod checkpoint;
mod cluster;
mod file;
mod gather;
mod objects;
mod rows;
mod sealed;
mod sql;
mod statement;
mod thread;
mod writer;

use async_trait::async_trait;
use outdial_core::conversation::{Conversation, ConversationEvent, ConversationState};
use serde_json::Value;
use uuid::Uuid;

pub use sealed::{BadKey, MasterKey, Sealer};
pub use sql::{Backend, SqlStore};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} '{1}' already exists")]
    Conflict(&'static str, String),
    #[error("{0} '{1}' not found")]
    NotFound(&'static str, String),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored document is not valid: {0}")]
    Corrupt(String),
    #[error("unsupported store URL '{0}': use sqlite://FILE or postgres://…")]
    Url(String),
    /// A stored secret cannot be opened (no master key, an unknown key, a damaged value).
    #[error("{0}")]
    Sealed(String),
    /// Another node of the cluster took the conversation over (docs/cluster.md): this node no longer writes it.
    #[error("conversation {0} was taken over by node '{1}'")]
    TakenOver(String, String),
    #[error("{0} changes of a conversation at once; at most {MAX_CHANGES}")]
    TooManyChanges(usize),
    /// SQLite's checkpoints or a commit failed for a full disk (`checkpoint.rs`): new conversations are refused until
    /// a checkpoint passes with room for the log.
    #[error("database or disk is full: the database file cannot grow; new conversations wait for free space")]
    DiskFull,
    /// The database could not be reached for a batch of writes (`batch.rs`).
    #[error("the database cannot be reached: {0}")]
    Unreachable(String),
    /// The database did not answer in time (`bounded.rs`).
    #[error("the database did not answer within {0:?}")]
    TimedOut(std::time::Duration),
    #[error("cannot set up the store file {path}: {why}")]
    File { path: String, why: String },
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// The receiver of a notification URL as the outbox groups rows: `host[:port]`, lower-case, without user info
/// (`""` for what is not a URL).
pub fn receiver_host(url: &str) -> String {
    let Some((_, rest)) = url.split_once("://") else {
        return String::new();
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    host.to_ascii_lowercase()
}

/// The most changes [`Store::record`] takes at once.
pub const MAX_CHANGES: usize = batch::MAX_JOB;

/// A change of a conversation, for [`Store::record`].
#[derive(Debug, Clone, Copy)]
pub enum Change<'a> {
    /// Its new state, a timeline event and the notifications it causes (as [`Store::transition`]).
    Transition {
        conversation: &'a Conversation,
        kind: &'a str,
        data: &'a Value,
        outbox: &'a [OutboxRow],
    },
    /// A timeline event (as [`Store::append_event`]).
    Event { kind: &'a str, data: &'a Value },
}

/// The kinds of configuration object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Bot,
    Trunk,
    Application,
}

impl Kind {
    pub fn table(self) -> &'static str {
        match self {
            Kind::Bot => "bots",
            Kind::Trunk => "trunks",
            Kind::Application => "applications",
        }
    }

    /// The write-only properties that hold secrets (sealed at rest, docs/security.md).
    pub fn secret_fields(self) -> &'static [&'static str] {
        match self {
            Kind::Bot => &outdial_core::bot::BOT_SECRETS,
            Kind::Trunk => &outdial_core::trunk::TRUNK_SECRETS,
            Kind::Application => &["notifySecret"],
        }
    }

    pub fn noun(self) -> &'static str {
        match self {
            Kind::Bot => "bot",
            Kind::Trunk => "trunk",
            Kind::Application => "application",
        }
    }
}

/// An idempotency key as remembered with the conversation it created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    pub client_id: String,
    pub key: String,
    /// SHA-256 of the request body, hex.
    pub body_hash: String,
    pub conversation_id: Uuid,
    pub created_at: i64,
}

/// What [`Store::create_conversation`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    New,
    /// The idempotency key was already used (within its lifetime) by this earlier record.
    Existing(IdempotencyRecord),
}

/// One status notification in the outbox (docs/api.md, "Status notifications").
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OutboxRow {
    /// `X-Outdial-Event-Id`, stable across retries.
    pub event_id: Uuid,
    pub conversation_id: Uuid,
    /// 1, 2, 3 … per conversation; a row is sent only after every earlier one is settled.
    pub sequence: i64,
    #[serde(skip)]
    pub url: String,
    /// The JSON body, exactly as sent.
    #[serde(skip)]
    pub body: String,
    /// HMAC key of `X-Outdial-Signature`, when the application or bot has one.
    #[serde(skip)]
    pub secret: Option<String>,
    pub status: OutboxStatus,
    pub attempts: i64,
    /// Unix milliseconds.
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub delivered_at: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutboxStatus {
    /// Waiting for its first or next attempt.
    Pending,
    /// A 2xx answer was received.
    Delivered,
    /// Given up (a non-retryable answer, the policy refused the target, or attempts exhausted).
    Failed,
}

impl OutboxStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxStatus::Pending => "pending",
            OutboxStatus::Delivered => "delivered",
            OutboxStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Self::Pending),
            "delivered" => Some(Self::Delivered),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// A node of a cluster as its last heartbeat left it (docs/cluster.md).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeRow {
    pub id: String,
    /// A fresh id per process: tells a restarted node from the run before it.
    #[serde(skip)]
    pub instance: String,
    /// Unix milliseconds.
    pub started_at: i64,
    pub heartbeat_at: i64,
    pub live_calls: i64,
    pub draining: bool,
    /// Where the node's API listens, as it said.
    pub api_url: String,
}

/// Filters of the conversation list; newest first.
#[derive(Debug, Clone, Default)]
pub struct ConversationFilter {
    pub bot: Option<String>,
    /// Only these bots (the caller's visibility); `None` = all.
    pub bots_in: Option<Vec<String>>,
    pub states: Option<Vec<ConversationState>>,
    pub since: Option<i64>,
    pub until: Option<i64>,
    /// Continue after this `(created_at, id)`.
    pub after: Option<(i64, Uuid)>,
    pub limit: u32,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Whether the database answers reads and takes a write.
    async fn ping(&self) -> Result<()>;

    /// All objects of a kind, by name.
    async fn list_objects(&self, kind: Kind) -> Result<Vec<Value>>;
    async fn get_object(&self, kind: Kind, name: &str) -> Result<Option<Value>>;
    /// Fails with [`StoreError::Conflict`] when the name is taken.
    async fn insert_object(&self, kind: Kind, name: &str, doc: &Value) -> Result<()>;
    /// Fails with [`StoreError::NotFound`] when there is no such object.
    async fn replace_object(&self, kind: Kind, name: &str, doc: &Value) -> Result<()>;
    /// Inserts or replaces (declarative configuration).
    async fn upsert_object(&self, kind: Kind, name: &str, doc: &Value) -> Result<()>;
    /// Returns whether something was deleted.
    async fn delete_object(&self, kind: Kind, name: &str) -> Result<bool>;
    /// The newest change time of any object of any kind (for cache refresh).
    async fn objects_version(&self) -> Result<i64>;

    /// Stores a new conversation with its `accepted` event, and its idempotency key when given, in one
    /// transaction. With a key that was already used within `idempotency_since`, stores nothing and returns
    /// the earlier record.
    async fn create_conversation(
        &self,
        conv: &Conversation,
        idempotency: Option<&IdempotencyRecord>,
        idempotency_since: i64,
    ) -> Result<Created>;
    async fn find_idempotency(
        &self,
        client_id: &str,
        key: &str,
        since: i64,
    ) -> Result<Option<IdempotencyRecord>>;
    async fn get_conversation(&self, id: Uuid) -> Result<Option<Conversation>>;
    async fn list_conversations(&self, filter: &ConversationFilter) -> Result<Vec<Conversation>>;
    /// Saves the conversation's new state together with a timeline event, in one transaction.
    async fn update_conversation(&self, conv: &Conversation, kind: &str, data: &Value) -> Result<()> {
        self.transition(conv, kind, data, &[]).await
    }
    /// Saves the conversation's new state, a timeline event and the notifications it causes, in one
    /// transaction (the outbox: a notification exists if and only if the state change does).
    async fn transition(
        &self,
        conv: &Conversation,
        kind: &str,
        data: &Value,
        outbox: &[OutboxRow],
    ) -> Result<()>;
    async fn append_event(&self, id: Uuid, kind: &str, data: &Value) -> Result<()>;
    /// Several changes of conversation `id`, in order, in one transaction: all or none (the first that cannot be
    /// made fails them all). At most [`MAX_CHANGES`] at once.
    async fn record(&self, id: Uuid, changes: &[Change<'_>]) -> Result<()>;
    async fn events(&self, id: Uuid) -> Result<Vec<ConversationEvent>>;
    /// This node's conversations not in a terminal state (for recovery after a crash): the ones its earlier run
    /// owned, and the ones no node owns, which it takes. Other nodes' conversations are left alone.
    async fn live_conversations(&self) -> Result<Vec<Conversation>>;

    /// The node id this store writes as the owner of the conversations it creates.
    fn node(&self) -> &str;
    /// Records this node's heartbeat.
    async fn heartbeat(&self, node: &NodeRow) -> Result<()>;
    /// Every node that beats or did, by id (a node that stopped cleanly has left).
    async fn nodes(&self) -> Result<Vec<NodeRow>>;
    /// Removes this process's heartbeat row (`id` and `instance`) when it stops cleanly; a later run's row stays.
    async fn leave(&self, id: &str, instance: &str) -> Result<()>;
    /// Takes over the live conversations of the nodes whose last heartbeat is before `stale_before`: each goes to
    /// exactly one node of the cluster, and is returned with the id of the node it was taken from.
    async fn take_over(&self, stale_before: i64) -> Result<Vec<(String, Conversation)>>;
    /// Claims the pending notifications `ids` for this node until `until` (unix ms); returns those it got (none
    /// that another node holds an unexpired claim on). A recorded attempt ends the claim.
    async fn claim_notifications(&self, ids: &[Uuid], now: i64, until: i64) -> Result<Vec<Uuid>>;

    /// Pending notifications whose time has come, oldest first, at most one per conversation: the one with the
    /// lowest sequence (a later notification waits for the earlier one); at most `per_host` per receiver host, so
    /// that one receiver's backlog (or its rows in flight) never hides another receiver's rows.
    async fn due_notifications(&self, now: i64, limit: u32, per_host: u32) -> Result<Vec<OutboxRow>>;
    /// Makes every pending row of a receiver host due at `now` (the receiver answered again).
    async fn hurry_host(&self, host: &str, now: i64) -> Result<u64>;
    /// Records the result of a delivery attempt (the row's new status, attempts, next time, error) and a
    /// `notification` event on the conversation's timeline, in one transaction.
    async fn record_attempt(&self, row: &OutboxRow, event: &Value) -> Result<()>;
    /// Every notification of a conversation, by sequence.
    async fn notifications(&self, conversation: Uuid) -> Result<Vec<OutboxRow>>;

    /// The token signing key, created on first use and shared by every node of a cluster.
    async fn signing_key(&self) -> Result<Vec<u8>>;
}

pub mod testing {
    //! Helpers for tests that need a real database of their own.

    use sqlx::Connection;

    /// The PostgreSQL server used by tests (`OUTDIAL_TEST_POSTGRES`, default the local one).
    pub fn postgres_admin_url() -> String {
        std::env::var("OUTDIAL_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
    }

    /// Creates a uniquely named database and returns its URL; runs of tests never share one.
    pub async fn fresh_postgres() -> Result<String, sqlx::Error> {
        sqlx::any::install_default_drivers();
        let admin = postgres_admin_url();
        let name = format!("outdial_t_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::AnyConnection::connect(&admin).await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await?;
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        Ok(format!("{base}/{name}"))
    }

    /// Drops a database made by [`fresh_postgres`] (best effort).
    pub async fn drop_postgres(url: &str) {
        let Some((_, name)) = url.rsplit_once('/') else {
            return;
        };
        if !name.starts_with("outdial_t_") {
            return;
        }
        if let Ok(mut conn) = sqlx::AnyConnection::connect(&postgres_admin_url()).await {
            let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
            let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await;
        }
    }
}
