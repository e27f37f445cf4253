//! SIP over TLS towards trunks. The stack's TLS settings are global, but a trunk may name its own CA roots and
//! server name, so the connection to a TLS trunk is opened here, with that trunk's settings, and handed to the
//! transport layer, which then carries the trunk's requests (and the far end's requests back) on it. One
//! connection per trunk address is kept and reused until it closes.
//!
//! rustls needs a process-wide crypto provider (ring and aws-lc-rs are both in the tree, so it cannot pick one
//! itself and the first handshake would panic): [`install_crypto_provider`] installs ring once.

use crate::resolver::Resolver;
use rsipstack::sip::{Host, HostWithPort, Transport};
use rsipstack::transport::tls::{TlsConfig, TlsConnection};
use rsipstack::transport::{SipAddr, SipConnection, TransportLayer};
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

/// How to verify a TLS trunk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsClient {
    /// PEM CA roots; the system's roots when None.
    pub ca_pem: Option<Vec<u8>>,
    /// Name the trunk's certificate must carry (and SNI); the address's host when None.
    pub server_name: Option<String>,
}

/// Where the system keeps its CA roots (Debian's ca-certificates).
const SYSTEM_ROOTS: [&str; 2] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
];

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub fn install_crypto_provider() {
    // Err means a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The system's CA roots, if the system has a bundle.
pub(crate) fn system_roots() -> Option<Vec<u8>> {
    SYSTEM_ROOTS.iter().find_map(|p| std::fs::read(p).ok())
}

/// Open TLS connections to trunks, by trunk address and settings.
pub(crate) struct TlsConnections {
    resolver: Resolver,
    system_roots: Option<Vec<u8>>,
    open: Mutex<HashMap<String, (SipAddr, SipConnection)>>,
    cancel: CancellationToken,
}

impl TlsConnections {
    pub(crate) fn new(resolver: Resolver, cancel: CancellationToken) -> Self {
        TlsConnections {
            resolver,
            system_roots: system_roots(),
            open: Mutex::new(HashMap::new()),
            cancel,
        }
    }

    pub(crate) fn system_config(&self) -> TlsConfig {
        TlsConfig {
            ca_certs: self.system_roots.clone(),
            ..Default::default()
        }
    }

    /// A live TLS connection to `destination` (`host[:port]`, SRV `_sips._tcp` when no port), registered with the
    /// transport layer; returns the address requests must be sent to so that they use it.
    pub(crate) async fn connect(
        &self,
        transport: &TransportLayer,
        destination: &str,
        settings: &TlsClient,
    ) -> Result<SipAddr, String> {
        let hp: HostWithPort = destination
            .try_into()
            .map_err(|e| format!("invalid TLS destination {destination}: {e}"))?;
        let name = match &hp.host {
            Host::Domain(d) => Some(d.to_string()),
            Host::IpAddr(_) => None,
        };
        let key = format!("{destination}|{:?}", settings);
        // Held while connecting, so that concurrent calls to one trunk share one connection.
        let mut open = self.open.lock().await;
        if let Some((addr, conn)) = open.get(&key)
            && conn.cancel_token().is_some_and(|t| !t.is_cancelled())
        {
            return Ok(addr.clone());
        }
        let addr = self
            .resolver
            .resolve_addr(&SipAddr::new(Transport::Tls, hp))
            .await?;
        let addr = SipAddr {
            r#type: Some(Transport::Tls),
            addr: HostWithPort {
                host: addr.addr.host,
                port: addr.addr.port.or(Some(5061.into())),
            },
        };
        let config = TlsConfig {
            ca_certs: settings.ca_pem.clone().or_else(|| self.system_roots.clone()),
            sni_hostname: settings.server_name.clone().or(name),
            ..Default::default()
        };
        let conn = tokio::time::timeout(
            CONNECT_TIMEOUT,
            TlsConnection::connect(&addr, Some(&config), None, Some(self.cancel.child_token())),
        )
        .await
        .map_err(|_| format!("TLS connection to {destination} timed out"))?
        .map_err(|e| format!("TLS connection to {destination} failed: {e}"))?;
        let conn = SipConnection::Tls(conn);
        transport.add_connection(conn.clone());
        open.insert(key, (addr.clone(), conn));
        Ok(addr)
    }
}
