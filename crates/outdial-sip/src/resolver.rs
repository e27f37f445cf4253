//! Where requests go (RFC 3263): a trunk address with a port is resolved with A/AAAA; one without a port is
//! looked up as SRV (`_sip._udp`, `_sip._tcp`, `_sips._tcp` by transport), ordered by priority and weight, then
//! A/AAAA, falling back to the transport's default port. Queries go to the system's resolvers, or to the
//! nameservers the operator lists (`sip.nameservers`, `ip:port`).

use async_trait::async_trait;
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use rsipstack::resolver::sip_resolver::{LookupSource, SrvRecord, resolve_logic};
use rsipstack::sip::{Host, HostWithPort, Transport};
use rsipstack::transport::SipAddr;
use rsipstack::transport::transport_layer::DomainResolver;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// A DNS resolver for SIP targets, shared by the transport layer and the TLS connector.
#[derive(Clone)]
pub(crate) struct Resolver {
    dns: Arc<TokioResolver>,
}

impl Resolver {
    /// The system's configuration when `nameservers` is empty.
    pub(crate) fn new(nameservers: &[SocketAddr]) -> Result<Self, String> {
        let mut builder = if nameservers.is_empty() {
            TokioResolver::builder_tokio().map_err(|e| format!("system DNS configuration: {e}"))?
        } else {
            let servers = nameservers
                .iter()
                .map(|s| {
                    let mut udp = ConnectionConfig::udp();
                    udp.port = s.port();
                    let mut tcp = ConnectionConfig::tcp();
                    tcp.port = s.port();
                    NameServerConfig::new(s.ip(), true, vec![udp, tcp])
                })
                .collect();
            TokioResolver::builder_with_config(
                ResolverConfig::from_parts(None, vec![], servers),
                TokioRuntimeProvider::default(),
            )
        };
        let opts = builder.options_mut();
        opts.ip_strategy = LookupIpStrategy::Ipv4thenIpv6;
        opts.timeout = Duration::from_secs(2);
        opts.attempts = 2;
        let dns = builder.build().map_err(|e| format!("DNS resolver: {e}"))?;
        Ok(Resolver { dns: Arc::new(dns) })
    }

    /// The address (IP and port) and transport of a target.
    pub(crate) async fn resolve_addr(&self, target: &SipAddr) -> Result<SipAddr, String> {
        let Host::Domain(domain) = &target.addr.host else {
            return Ok(target.clone());
        };
        if domain.0 == "invalid" || domain.0.ends_with(".invalid") {
            return Err(format!("{domain} is a placeholder and is not resolved"));
        }
        let secure = matches!(target.r#type, Some(Transport::Tls));
        let found = resolve_logic(self, domain, target.addr.port, target.r#type, secure)
            .await
            .map_err(|e| format!("cannot resolve {}: {e}", target.addr))?;
        let first = found
            .first()
            .ok_or_else(|| format!("cannot resolve {}: no address", target.addr))?;
        Ok(SipAddr {
            r#type: Some(first.transport),
            addr: HostWithPort {
                host: Host::IpAddr(first.addr.ip()),
                port: Some(first.addr.port().into()),
            },
        })
    }
}

#[async_trait]
impl LookupSource for Resolver {
    async fn lookup_srv(&self, name: &str) -> Result<Vec<SrvRecord>, String> {
        let found = self.dns.srv_lookup(name).await.map_err(|e| e.to_string())?;
        Ok(found
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::SRV(srv) => Some(SrvRecord {
                    target: srv.target.to_string().trim_end_matches('.').to_string(),
                    port: srv.port,
                    priority: srv.priority,
                    weight: srv.weight,
                }),
                _ => None,
            })
            .collect())
    }

    async fn lookup_a_aaaa(&self, name: &str) -> Result<Vec<IpAddr>, String> {
        let found = self.dns.lookup_ip(name).await.map_err(|e| e.to_string())?;
        Ok(found.iter().collect())
    }
}

#[async_trait]
impl DomainResolver for Resolver {
    async fn resolve(&self, target: &SipAddr) -> rsipstack::Result<SipAddr> {
        self.resolve_addr(target)
            .await
            .map_err(rsipstack::Error::DnsResolutionError)
    }
}
