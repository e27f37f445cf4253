//! The configuration objects (bots, trunks, applications) in their tables: a JSON document per name, its secrets
//! sealed at rest when the operator set a master key (docs/security.md). The `Store` impl bounds each call
//! (`bounded.rs`).

use crate::sql::{SqlStore, audited, corrupt};
use crate::{Kind, Result, StoreError, sealed};
use outdial_core::time::now_ms;
use serde_json::Value;
use sqlx::Row;

impl SqlStore {
    fn open_doc(&self, kind: Kind, body: &str) -> Result<Value> {
        let mut doc: Value = serde_json::from_str(body).map_err(corrupt)?;
        sealed::map_secrets(kind, &mut doc, |s| sealed::open(self.sealer(), s))?;
        Ok(doc)
    }

    fn seal_doc(&self, kind: Kind, doc: &Value) -> Result<String> {
        let mut doc = doc.clone();
        sealed::map_secrets(kind, &mut doc, |s| Ok(sealed::seal(self.sealer(), s)))?;
        Ok(doc.to_string())
    }

    pub(crate) async fn docs(&self, kind: Kind) -> Result<Vec<Value>> {
        let sql = format!("SELECT body FROM {} ORDER BY name", kind.table());
        let rows = sqlx::query(audited(sql)).fetch_all(&self.read).await?;
        rows.iter()
            .map(|r| self.open_doc(kind, &r.try_get::<String, _>("body")?))
            .collect()
    }

    pub(crate) async fn doc(&self, kind: Kind, name: &str) -> Result<Option<Value>> {
        let sql = format!("SELECT body FROM {} WHERE name = $1", kind.table());
        let row = sqlx::query(audited(sql))
            .bind(name)
            .fetch_optional(&self.read)
            .await?;
        row.map(|r| self.open_doc(kind, &r.try_get::<String, _>("body")?))
            .transpose()
    }

    /// Writes `doc` as `name` with `statement` (`{}` the table; `$1` the name, `$2` the sealed body, `$3` the
    /// time); the rows it changed.
    async fn put_doc(&self, statement: &str, kind: Kind, name: &str, doc: &Value) -> Result<u64> {
        let done = sqlx::query(audited(statement.replace("{}", kind.table())))
            .bind(name)
            .bind(self.seal_doc(kind, doc)?)
            .bind(now_ms())
            .execute(&self.write)
            .await?;
        Ok(done.rows_affected())
    }

    pub(crate) async fn insert_doc(&self, kind: Kind, name: &str, doc: &Value) -> Result<()> {
        let insert =
            "INSERT INTO {} (name, body, updated_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING";
        match self.put_doc(insert, kind, name, doc).await? {
            0 => Err(StoreError::Conflict(kind.noun(), name.to_string())),
            _ => Ok(()),
        }
    }

    pub(crate) async fn replace_doc(&self, kind: Kind, name: &str, doc: &Value) -> Result<()> {
        let update = "UPDATE {} SET body = $2, updated_at = $3 WHERE name = $1";
        match self.put_doc(update, kind, name, doc).await? {
            0 => Err(StoreError::NotFound(kind.noun(), name.to_string())),
            _ => Ok(()),
        }
    }

    pub(crate) async fn upsert_doc(&self, kind: Kind, name: &str, doc: &Value) -> Result<()> {
        let upsert = "INSERT INTO {} (name, body, updated_at) VALUES ($1, $2, $3) \
                      ON CONFLICT (name) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at";
        self.put_doc(upsert, kind, name, doc).await.map(drop)
    }

    pub(crate) async fn delete_doc(&self, kind: Kind, name: &str) -> Result<bool> {
        let sql = format!("DELETE FROM {} WHERE name = $1", kind.table());
        let done = sqlx::query(audited(sql)).bind(name).execute(&self.write).await?;
        Ok(done.rows_affected() > 0)
    }

    /// A number that changes whenever any object changes.
    pub(crate) async fn docs_version(&self) -> Result<i64> {
        // Counts change on deletes, maxima on updates: together they notice any change.
        let row = sqlx::query(
            "SELECT (SELECT COALESCE(MAX(updated_at), 0) FROM bots) + (SELECT COALESCE(MAX(updated_at), 0) FROM trunks) \
             + (SELECT COALESCE(MAX(updated_at), 0) FROM applications) AS m, \
             (SELECT COUNT(*) FROM bots) + (SELECT COUNT(*) FROM trunks) + (SELECT COUNT(*) FROM applications) AS n",
        )
        .fetch_one(&self.read)
        .await?;
        let m: i64 = row.try_get("m")?;
        let n: i64 = row.try_get("n")?;
        Ok(m.wrapping_mul(31).wrapping_add(n))
    }
}
