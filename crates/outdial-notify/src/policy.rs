//! Where notifications may go (SSRF protection). The dialer chooses `notifyUrl`; the operator chooses which
//! networks it may reach. Always refused: link-local addresses (which include the cloud metadata address
//! 169.254.169.254), other known metadata addresses, unspecified, multicast and broadcast addresses. The operator
//! adds `deny_cidrs`; `allow_cidrs` re-allow parts of them. Host names are checked on every resolution (a custom
//! resolver), so DNS rebinding cannot slip through; redirects are not followed.

use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

#[derive(Debug, Clone, Default)]
pub struct NetworkPolicy {
    pub deny: Vec<IpNet>,
    pub allow: Vec<IpNet>,
}

/// The marker of a refusal in error chains.
#[derive(Debug, thiserror::Error)]
#[error("{0} is refused by the notification network policy")]
pub struct Refused(pub IpAddr);

const ALWAYS_DENIED: [&str; 8] = [
    "169.254.0.0/16",     // IPv4 link-local, includes 169.254.169.254 (AWS, GCP, Azure metadata)
    "fe80::/10",          // IPv6 link-local
    "fd00:ec2::254/128",  // AWS metadata over IPv6
    "100.100.100.200/32", // Alibaba Cloud metadata
    "0.0.0.0/8",
    "::/128",
    "224.0.0.0/4",
    "ff00::/8",
];

/// An entry of the operator's CIDR lists that is not a CIDR or an address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a CIDR (like 10.0.0.0/8) or an IP address")]
pub struct BadCidr(pub String);

impl NetworkPolicy {
    /// Parses the operator's CIDR lists; an entry that is not a CIDR or address is an error naming it.
    pub fn new(deny: &[String], allow: &[String]) -> Result<Self, BadCidr> {
        let parse = |s: &String| -> Result<IpNet, BadCidr> {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| BadCidr(s.clone()))
        };
        Ok(NetworkPolicy {
            deny: deny.iter().map(parse).collect::<Result<_, _>>()?,
            allow: allow.iter().map(parse).collect::<Result<_, _>>()?,
        })
    }

    pub fn check(&self, ip: IpAddr) -> Result<(), Refused> {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        if ip == IpAddr::V4(std::net::Ipv4Addr::BROADCAST) {
            return Err(Refused(ip));
        }
        let always = ALWAYS_DENIED
            .iter()
            .filter_map(|c| c.parse::<IpNet>().ok())
            .any(|n| n.contains(&ip));
        if always {
            return Err(Refused(ip));
        }
        if self.deny.iter().any(|n| n.contains(&ip)) && !self.allow.iter().any(|n| n.contains(&ip)) {
            return Err(Refused(ip));
        }
        Ok(())
    }
}

/// A resolver that drops addresses the policy refuses (and fails when none is left).
pub struct PolicyResolver(pub Arc<NetworkPolicy>);

impl reqwest::dns::Resolve for PolicyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.0.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refused = None;
            let allowed: Vec<SocketAddr> = addrs
                .into_iter()
                .filter(|a| match policy.check(a.ip()) {
                    Ok(()) => true,
                    Err(r) => {
                        refused = Some(r);
                        false
                    }
                })
                .collect();
            if allowed.is_empty() {
                return Err(match refused {
                    Some(r) => Box::new(r) as Box<dyn std::error::Error + Send + Sync>,
                    None => format!("{host} has no address").into(),
                });
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_and_operator_rules() {
        let p = NetworkPolicy::new(
            &["10.0.0.0/8".into(), "127.0.0.1".into()],
            &["10.1.0.0/16".into()],
        )
        .unwrap();
        for bad in [
            "169.254.169.254",
            "fe80::1",
            "0.0.0.0",
            "::",
            "224.0.0.1",
            "255.255.255.255",
            "10.2.3.4",
            "127.0.0.1",
            "::ffff:169.254.169.254",
            "100.100.100.200",
        ] {
            assert!(p.check(bad.parse().unwrap()).is_err(), "{bad}");
        }
        for ok in ["10.1.2.3", "127.0.0.2", "192.0.2.10", "2001:db8::1"] {
            assert!(p.check(ok.parse().unwrap()).is_ok(), "{ok}");
        }
        assert!(
            NetworkPolicy::default()
                .check("127.0.0.1".parse().unwrap())
                .is_ok(),
            "loopback is allowed by default"
        );
        assert_eq!(
            NetworkPolicy::new(&["nope".into()], &[]).unwrap_err().to_string(),
            "'nope' is not a CIDR (like 10.0.0.0/8) or an IP address"
        );
    }
}
