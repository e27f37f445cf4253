//! The SQLite file on disk (docs/security.md): created readable by its owner only, and narrowed when an earlier
//! version left it (or its WAL and shared-memory files) wider.

use crate::{Result, StoreError};

/// The file of a `sqlite:` URL (None for an in-memory database).
pub(crate) fn sqlite_path(url: &str) -> Option<std::path::PathBuf> {
    let rest = url.strip_prefix("sqlite:")?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && !path.contains(":memory:")).then(|| path.into())
}

fn file_error(path: &std::path::Path) -> impl Fn(std::io::Error) -> StoreError + '_ {
    |e| StoreError::File {
        path: path.display().to_string(),
        why: e.to_string(),
    }
}

/// docs/security.md: the database file is created 0600 before SQLite opens it (SQLite gives the WAL and
/// shared-memory files the mode of the database file). Only before connecting: closing a descriptor of the file
/// would drop the process's POSIX locks on it, which SQLite's connections rely on.
pub(crate) fn create_private(path: &std::path::Path) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if !path.exists() {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(file_error(path))?;
    }
    Ok(())
}

/// Narrows the database file and its `-wal`, `-shm` and `-journal` files to 0600 when an earlier version left them
/// wider (by path: no descriptor is opened, so SQLite's locks stay).
pub(crate) fn owner_only(path: &std::path::Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let p = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
        if let Ok(meta) = std::fs::metadata(&p)
            && meta.permissions().mode() & 0o077 != 0
        {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).map_err(file_error(path))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::SqlStore;

    /// Every connection of both pools keeps a statement's temporary tables in memory (`temp_store` 2): no file is
    /// created and deleted in the temporary folder for a sort or an `IN` list.
    #[tokio::test]
    async fn temporary_tables_stay_in_memory() {
        let dir = std::env::temp_dir().join(format!("outdial-temp-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = SqlStore::connect(&format!("sqlite://{}/o.db", dir.display()))
            .await
            .unwrap();
        for pool in [&store.write, &store.read] {
            let mut conns = Vec::new();
            for _ in 0..pool.options().get_max_connections() {
                conns.push(pool.acquire().await.unwrap());
            }
            for conn in &mut conns {
                let mode: i64 = sqlx::query_scalar("PRAGMA temp_store")
                    .fetch_one(&mut **conn)
                    .await
                    .unwrap();
                assert_eq!(mode, 2, "temp_store of a connection");
            }
        }
        drop(store);
        let _ = std::fs::remove_dir_all(dir);
    }
}
