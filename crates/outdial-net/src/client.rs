//! [`Guarded`]: an HTTP client whose every request passes the network policy, and the checked address lookup for
//! WebSocket connections.
//!
//! * Host names are checked each time they are resolved ([`PolicyResolver`]), literal addresses before the
//!   request is made: reqwest hands literals straight to the socket.
//! * Proxies from the environment (`HTTP_PROXY`, …) are ignored: through a proxy the policy would never see the
//!   address a name resolves to. Redirects are not followed (a redirect could lead anywhere).

use crate::policy::{NetworkPolicy, PolicyResolver, Refused};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use url::Url;

/// Why a guarded request could not be started.
#[derive(Debug, thiserror::Error)]
pub enum GuardedError {
    #[error("{url}: only http and https URLs are fetched")]
    Scheme { url: String },
    #[error("{url} has no host")]
    NoHost { url: String },
    #[error(transparent)]
    Refused(#[from] Refused),
    #[error("{host}: {why}")]
    Resolve { host: String, why: String },
}

/// An HTTP client bound to one network policy. Cloning shares the connection pool.
#[derive(Debug, Clone)]
pub struct Guarded {
    client: reqwest::Client,
    policy: Arc<NetworkPolicy>,
}

impl Guarded {
    /// A client with this policy; `timeout` bounds each request and `connect` each connection.
    pub fn new(policy: NetworkPolicy, timeout: Duration, connect: Duration) -> Result<Self, reqwest::Error> {
        let policy = Arc::new(policy);
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(timeout)
            .connect_timeout(connect)
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(PolicyResolver(policy.clone()))
            .user_agent(concat!("outdial/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Guarded { client, policy })
    }

    pub fn policy(&self) -> &NetworkPolicy {
        &self.policy
    }

    /// Checks an http(s) URL whose host is a literal address (names are checked when they resolve).
    pub fn check_url(&self, url: &Url) -> Result<(), GuardedError> {
        if !matches!(url.scheme(), "http" | "https" | "ws" | "wss") {
            return Err(GuardedError::Scheme { url: url.to_string() });
        }
        let literal = match url.host() {
            Some(url::Host::Ipv4(a)) => IpAddr::V4(a),
            Some(url::Host::Ipv6(a)) => IpAddr::V6(a),
            Some(url::Host::Domain(_)) => return Ok(()),
            None => {
                return Err(GuardedError::NoHost { url: url.to_string() });
            }
        };
        Ok(self.policy.check(literal)?)
    }

    /// A request to `url`, once the policy allows its address.
    pub fn request(
        &self,
        method: reqwest::Method,
        url: Url,
    ) -> Result<reqwest::RequestBuilder, GuardedError> {
        self.check_url(&url)?;
        Ok(self.client.request(method, url))
    }

    /// The addresses of `url`'s host that the policy allows, for a connection made outside reqwest (WebSocket).
    pub async fn resolve(&self, url: &Url) -> Result<Vec<SocketAddr>, GuardedError> {
        self.check_url(url)?;
        let host = url.host_str().unwrap_or_default().trim_matches(['[', ']']);
        let port = url.port_or_known_default().unwrap_or(80);
        let addrs = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| GuardedError::Resolve {
                host: host.to_string(),
                why: e.to_string(),
            })?;
        self.policy.keep_allowed(addrs).map_err(|refused| match refused {
            Some(r) => r.into(),
            None => GuardedError::Resolve {
                host: host.to_string(),
                why: "no address".into(),
            },
        })
    }
}

/// The policy's refusal in a reqwest error chain, if that is why the request failed.
pub fn refusal(e: &reqwest::Error) -> Option<&Refused> {
    std::iter::successors(std::error::Error::source(e), |s| s.source())
        .find_map(|s| s.downcast_ref::<Refused>())
}
