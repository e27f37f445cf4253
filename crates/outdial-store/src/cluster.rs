//! The store's part of cluster mode (docs/cluster.md): node heartbeats, conversation ownership and takeover,
//! and claims on notifications.
//!
//! Exactly-once rests on conditional updates: a conversation changes owner only while it still names the lost
//! node, and a notification is claimed only while nobody else holds an unexpired claim on it. On PostgreSQL two
//! nodes that update the same row at once are ordered by its row lock, and the second one's condition is checked
//! again on the row the first one left, so it no longer matches.

use crate::sql::{Backend, SqlStore};
use crate::{NodeRow, Result, Store, StoreError};
use outdial_core::conversation::Conversation;
use sqlx::Row;
use uuid::Uuid;

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

const LIVE: &str = "state NOT IN ('ended', 'failed')";

impl SqlStore {
    pub(crate) async fn beat(&self, n: &NodeRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO nodes (id, instance, started_at, heartbeat_at, live_calls, draining, api_url) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO UPDATE SET instance = excluded.instance, \
             started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at, live_calls = excluded.live_calls, \
             draining = excluded.draining, api_url = excluded.api_url",
        )
        .bind(&n.id)
        .bind(&n.instance)
        .bind(n.started_at)
        .bind(n.heartbeat_at)
        .bind(n.live_calls)
        .bind(i64::from(n.draining))
        .bind(&n.api_url)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    pub(crate) async fn node_rows(&self) -> Result<Vec<NodeRow>> {
        let rows = sqlx::query("SELECT * FROM nodes ORDER BY id")
            .fetch_all(&self.write)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(NodeRow {
                    id: r.try_get("id")?,
                    instance: r.try_get("instance")?,
                    started_at: r.try_get("started_at")?,
                    heartbeat_at: r.try_get("heartbeat_at")?,
                    live_calls: r.try_get("live_calls")?,
                    draining: r.try_get::<i64, _>("draining")? != 0,
                    api_url: r.try_get("api_url")?,
                })
            })
            .collect()
    }

    /// This node's unfinished conversations: the ones its earlier run owned, and the ones nobody owns (written
    /// before cluster mode), which it takes first.
    pub(crate) async fn own_live(&self) -> Result<Vec<Conversation>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE conversations SET owner = $1 WHERE owner IS NULL AND {LIVE}"
        )))
        .bind(self.node())
        .execute(&self.write)
        .await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT body FROM conversations WHERE owner = $1 AND {LIVE} ORDER BY created_at"
        )))
        .bind(self.node())
        .fetch_all(&self.write)
        .await?;
        rows.iter().map(body).collect()
    }

    /// Takes the live conversations of nodes whose last heartbeat is older than `stale_before` (or that never
    /// beat); each with the node it was taken from. A conversation goes to exactly one taker.
    pub(crate) async fn take(&self, stale_before: i64) -> Result<Vec<(String, Conversation)>> {
        let me = self.node();
        let candidates = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT id, owner FROM conversations WHERE {LIVE} AND owner IS NOT NULL AND owner <> $1 \
             AND owner NOT IN (SELECT id FROM nodes WHERE heartbeat_at >= $2) ORDER BY created_at LIMIT 1000"
        )))
        .bind(me)
        .bind(stale_before)
        .fetch_all(&self.write)
        .await?;
        let mut taken = Vec::new();
        for c in candidates {
            let id: String = c.try_get("id")?;
            let owner: String = c.try_get("owner")?;
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE conversations SET owner = $1 WHERE id = $2 AND owner = $3 AND {LIVE} \
                 AND owner NOT IN (SELECT id FROM nodes WHERE heartbeat_at >= $4) RETURNING body"
            )))
            .bind(me)
            .bind(&id)
            .bind(&owner)
            .bind(stale_before)
            .fetch_optional(&self.write)
            .await?;
            if let Some(row) = row {
                taken.push((owner, body(&row)?));
            }
        }
        Ok(taken)
    }

    /// Claims the pending notifications `ids` for this node until `until`: those nobody else holds an unexpired
    /// claim on. Returns the ones claimed.
    pub(crate) async fn claim(&self, ids: &[Uuid], now: i64, until: i64) -> Result<Vec<Uuid>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        // SQLite is one node's store (docs/cluster.md): nobody else can send its rows, so nothing is written.
        if self.backend() == Backend::Sqlite {
            return Ok(ids.to_vec());
        }
        let list: Vec<String> = (0..ids.len()).map(|i| format!("${}", i + 4)).collect();
        let claimable =
            "status = 'pending' AND (claimed_until IS NULL OR claimed_until <= $2 OR claimed_by = $1)";
        // PostgreSQL: rows another node is claiming right now are skipped, not waited for.
        let lock = match self.backend() {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE outbox SET claimed_by = $1, claimed_until = $3 WHERE event_id IN (SELECT event_id FROM outbox \
             WHERE event_id IN ({}) AND {claimable}{lock}) AND {claimable} RETURNING event_id",
            list.join(", ")
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(self.node())
            .bind(now)
            .bind(until);
        for id in ids {
            q = q.bind(id.to_string());
        }
        let rows = q.fetch_all(&self.write).await?;
        rows.iter()
            .map(|r| r.try_get::<String, _>("event_id")?.parse().map_err(corrupt))
            .collect()
    }
}

fn body(row: &sqlx::any::AnyRow) -> Result<Conversation> {
    let body: String = row.try_get("body")?;
    serde_json::from_str(&body).map_err(corrupt)
}
