//! The master key of the secrets at rest (docs/operations.md, "Secrets at rest"): `OUTDIAL_MASTER_KEY` or the
//! file `secrets.key_file`; while rotating, the previous key in `OUTDIAL_MASTER_KEY_PREVIOUS` or
//! `secrets.previous_key_file`. The store is opened with it, and every secret still in clear or under the previous
//! key is sealed with the current one at start-up.

use crate::config::Secrets;
use anyhow::{Context, bail};
use outdial_store::{MasterKey, Sealer, SqlStore};
use std::path::Path;

/// Reads a key file: 64 hex digits or base64, readable by its owner only.
fn key_file(key: &str, path: &Path) -> anyhow::Result<MasterKey> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .with_context(|| format!("{key}: {}", path.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        bail!(
            "{key}: {} is readable by other users (mode {:o}); run chmod 600 on it",
            path.display(),
            mode & 0o777
        );
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("{key}: {}", path.display()))?;
    text.parse().with_context(|| format!("{key}: {}", path.display()))
}

fn key_from(env: &str, file_key: &str, file: Option<&Path>) -> anyhow::Result<Option<MasterKey>> {
    if let Ok(v) = std::env::var(env)
        && !v.trim().is_empty()
    {
        return v.parse().map(Some).with_context(|| env.to_string());
    }
    file.map(|p| key_file(file_key, p)).transpose()
}

/// The sealer of the configured master key, if one is set.
pub fn sealer(cfg: &Secrets) -> anyhow::Result<Option<Sealer>> {
    let current = key_from("OUTDIAL_MASTER_KEY", "secrets.key_file", cfg.key_file.as_deref())?;
    let previous = key_from(
        "OUTDIAL_MASTER_KEY_PREVIOUS",
        "secrets.previous_key_file",
        cfg.previous_key_file.as_deref(),
    )?;
    match (current, previous) {
        (Some(c), p) => Ok(Some(Sealer::new(&c, &p.into_iter().collect::<Vec<_>>()))),
        (None, Some(_)) => bail!(
            "a previous master key is set without a current one: set OUTDIAL_MASTER_KEY or secrets.key_file"
        ),
        (None, None) => Ok(None),
    }
}

/// Opens the store with the master key; seals what is not sealed with it yet, or warns that secrets are in clear.
pub async fn open_store(url: &str, cfg: &Secrets) -> anyhow::Result<SqlStore> {
    let sealer = sealer(cfg)?;
    let keyed = sealer.is_some();
    let store = SqlStore::connect_with(url, sealer)
        .await
        .with_context(|| format!("store {}", crate::serve::redact(url)))?;
    if keyed {
        let n = store.reseal().await.context("sealing the stored secrets")?;
        if n > 0 {
            tracing::info!("{n} stored secrets sealed with the current master key");
        }
    } else {
        tracing::warn!(
            "secrets are stored in clear: set OUTDIAL_MASTER_KEY or secrets.key_file to encrypt them \
             (docs/operations.md, \"Secrets at rest\")"
        );
    }
    Ok(store)
}
