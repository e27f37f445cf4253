//! HTTPS for the API (docs/operations.md, "HTTPS"): rustls with the operator's PEM certificate and key, optional
//! client-certificate authentication against `http.tls_client_ca`, and renewals taken without a restart: the files
//! are checked every `http.tls_reload_sec` and, when they changed and load, new connections get the new
//! certificate. A renewal that does not load is logged and the old certificate stays.

use crate::config::Http;
use axum_server::tls_rustls::RustlsConfig;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("http.tls_cert and http.tls_key go together: set both or neither")]
    Incomplete,
    #[error("{path}: {why}")]
    File { path: PathBuf, why: String },
    #[error("the HTTPS configuration is not usable: {0}")]
    Config(String),
}

/// The files of the HTTPS configuration.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    cert: PathBuf,
    key: PathBuf,
    client_ca: Option<PathBuf>,
}

impl TlsFiles {
    /// The files `http` names; `None` for plain HTTP.
    pub fn of(http: &Http) -> Result<Option<TlsFiles>, TlsError> {
        match (&http.tls_cert, &http.tls_key) {
            (None, None) => Ok(None),
            (Some(cert), Some(key)) => Ok(Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: http.tls_client_ca.clone(),
            })),
            _ => Err(TlsError::Incomplete),
        }
    }

    /// The rustls configuration from the files as they are now.
    pub fn load(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let file = |path: &Path, why: String| TlsError::File {
            path: path.to_path_buf(),
            why,
        };
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&self.cert)
            .and_then(Iterator::collect)
            .map_err(|e| file(&self.cert, e.to_string()))?;
        if certs.is_empty() {
            return Err(file(&self.cert, "no certificate in the file".into()));
        }
        let key = PrivateKeyDer::from_pem_file(&self.key).map_err(|e| file(&self.key, e.to_string()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let builder = match &self.client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for c in CertificateDer::pem_file_iter(ca).map_err(|e| file(ca, e.to_string()))? {
                    let c = c.map_err(|e| file(ca, e.to_string()))?;
                    roots.add(c).map_err(|e| file(ca, e.to_string()))?;
                }
                let verifier =
                    rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .map_err(|e| file(ca, e.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder.with_single_cert(certs, key).map_err(|e| {
            TlsError::Config(format!("{} and {}: {e}", self.cert.display(), self.key.display()))
        })?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// When the files last changed (the newest modification time of the three).
    fn stamp(&self) -> Option<SystemTime> {
        [Some(&self.cert), Some(&self.key), self.client_ca.as_ref()]
            .into_iter()
            .flatten()
            .filter_map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
            .max()
    }
}

/// Checks the files every `every` and gives new connections the renewed certificate (runs until the process ends).
pub async fn watch(files: TlsFiles, config: RustlsConfig, every: Duration) {
    let mut last = files.stamp();
    let mut tick = tokio::time::interval(every.max(Duration::from_millis(200)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = files.stamp();
        if now == last {
            continue;
        }
        let f = files.clone();
        match tokio::task::spawn_blocking(move || f.load()).await {
            Ok(Ok(new)) => {
                config.reload_from_config(new);
                last = now;
                tracing::info!("HTTPS certificate reloaded from {}", files.cert.display());
            }
            Ok(Err(e)) => {
                // Retried at the next change (a renewal written in two steps is complete by then).
                last = now;
                tracing::warn!("HTTPS certificate not reloaded, the current one stays: {e}");
            }
            Err(e) => tracing::warn!("HTTPS certificate check failed: {e}"),
        }
    }
}
