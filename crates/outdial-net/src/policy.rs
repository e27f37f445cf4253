//! Which addresses the gateway may reach (SSRF protection). Dialers choose `notifyUrl`, bot editors choose bot
//! URLs and bots choose `playUrl`; the operator chooses which networks each may reach. Always refused: link-local
//! addresses (which include the cloud metadata address 169.254.169.254), other known metadata addresses,
//! unspecified, multicast and broadcast addresses, also when an IPv6 address embeds them (IPv4-mapped,
//! IPv4-compatible, NAT64, 6to4, Teredo, ISATAP). The operator adds `deny_cidrs`; `allow_cidrs` re-allow parts of
//! them. Host names are checked on every resolution (a custom resolver), so DNS rebinding cannot slip through;
//! redirects are not followed.

use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

/// Whose URLs a policy guards: each has its own operator lists (`[notifications]`, `[bots]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// `notifyUrl`.
    Notifications,
    /// Bot URLs, their OAuth token endpoints, the URLs bots hand back and `playUrl`.
    Bots,
}

impl std::fmt::Display for Purpose {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Purpose::Notifications => "notification",
            Purpose::Bots => "bot",
        })
    }
}

#[derive(Debug, Clone)]
pub struct NetworkPolicy {
    pub purpose: Purpose,
    pub deny: Vec<IpNet>,
    pub allow: Vec<IpNet>,
}

/// The marker of a refusal in error chains.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{ip} is refused by the {purpose} network policy")]
pub struct Refused {
    pub ip: IpAddr,
    pub purpose: Purpose,
}

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

/// The IPv4 addresses an IPv6 address carries (RFC 4291 mapped and compatible, RFC 6052 NAT64, RFC 3056 6to4,
/// RFC 4380 Teredo server and client, RFC 5214 ISATAP).
fn embedded_v4(v6: Ipv6Addr) -> Vec<Ipv4Addr> {
    let s = v6.segments();
    let v4 = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    let mut out = Vec::new();
    if let Some(m) = v6.to_ipv4_mapped() {
        out.push(m);
    }
    // IPv4-compatible (::a.b.c.d), except :: and ::1 themselves.
    if s[..6] == [0; 6] && !(s[6] == 0 && s[7] <= 1) {
        out.push(v4(s[6], s[7]));
    }
    // NAT64: the well-known 64:ff9b::/96 and the local-use 64:ff9b:1::/48 (as /96).
    if s[0] == 0x64 && s[1] == 0xff9b && (s[2..6] == [0; 4] || s[2] == 1) {
        out.push(v4(s[6], s[7]));
    }
    if s[0] == 0x2002 {
        out.push(v4(s[1], s[2]));
    }
    if s[0] == 0x2001 && s[1] == 0 {
        out.push(v4(s[2], s[3]));
        out.push(v4(!s[6], !s[7]));
    }
    if (s[4] == 0 || s[4] == 0x200) && s[5] == 0x5efe {
        out.push(v4(s[6], s[7]));
    }
    out
}

impl NetworkPolicy {
    /// No operator lists: only the built-in refusals.
    pub fn built_in(purpose: Purpose) -> Self {
        NetworkPolicy {
            purpose,
            deny: Vec::new(),
            allow: Vec::new(),
        }
    }

    /// Parses the operator's CIDR lists; an entry that is not a CIDR or address is an error naming it.
    pub fn new(purpose: Purpose, deny: &[String], allow: &[String]) -> Result<Self, BadCidr> {
        let parse = |s: &String| -> Result<IpNet, BadCidr> {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| BadCidr(s.clone()))
        };
        Ok(NetworkPolicy {
            purpose,
            deny: deny.iter().map(parse).collect::<Result<_, _>>()?,
            allow: allow.iter().map(parse).collect::<Result<_, _>>()?,
        })
    }

    /// Whether the policy lets the gateway reach `ip` (and every IPv4 address it embeds).
    pub fn check(&self, ip: IpAddr) -> Result<(), Refused> {
        let refused = Refused {
            ip,
            purpose: self.purpose,
        };
        let mut all = vec![ip];
        if let IpAddr::V6(v6) = ip {
            all.extend(embedded_v4(v6).into_iter().map(IpAddr::V4));
        }
        // A mapped address stands for its IPv4 address alone (operator lists name IPv4 networks).
        if let IpAddr::V6(v6) = ip
            && let Some(m) = v6.to_ipv4_mapped()
        {
            all[0] = IpAddr::V4(m);
        }
        if all.iter().all(|a| self.permits(*a)) {
            Ok(())
        } else {
            Err(refused)
        }
    }

    fn permits(&self, ip: IpAddr) -> bool {
        if ip == IpAddr::V4(Ipv4Addr::BROADCAST) {
            return false;
        }
        let always = ALWAYS_DENIED
            .iter()
            .filter_map(|c| c.parse::<IpNet>().ok())
            .any(|n| n.contains(&ip));
        if always {
            return false;
        }
        !self.deny.iter().any(|n| n.contains(&ip)) || self.allow.iter().any(|n| n.contains(&ip))
    }

    /// The addresses a name resolved to that the policy allows; when none is left, the refusal of one of them
    /// (None when there was no address at all).
    pub fn keep_allowed(
        &self,
        addrs: impl IntoIterator<Item = SocketAddr>,
    ) -> Result<Vec<SocketAddr>, Option<Refused>> {
        let mut refused = None;
        let allowed: Vec<SocketAddr> = addrs
            .into_iter()
            .filter(|a| match self.check(a.ip()) {
                Ok(()) => true,
                Err(r) => {
                    refused = Some(r);
                    false
                }
            })
            .collect();
        if allowed.is_empty() {
            Err(refused)
        } else {
            Ok(allowed)
        }
    }
}

/// A resolver that drops addresses the policy refuses (and fails when none is left).
pub struct PolicyResolver(pub Arc<NetworkPolicy>);

impl reqwest::dns::Resolve for PolicyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.0.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs = tokio::net::lookup_host((host.as_str(), 0)).await?;
            match policy.keep_allowed(addrs) {
                Ok(allowed) => Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs),
                Err(Some(r)) => Err(Box::new(r) as Box<dyn std::error::Error + Send + Sync>),
                Err(None) => Err(format!("{host} has no address").into()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_is_refused_in_every_ipv6_form() {
        let p = NetworkPolicy::built_in(Purpose::Bots);
        for bad in [
            "::ffff:169.254.169.254",
            "::a9fe:a9fe",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::a9fe:a9fe",
            "2002:a9fe:a9fe::1",
            "2001:0:a9fe:a9fe::1",
            "2001:0:4136:e378:8000:63bf:5601:5601", // Teredo client 169.254.169.254 (obfuscated)
            "fe80::5efe:a9fe:a9fe",
            "2001:db8::5efe:a9fe:a9fe", // ISATAP
            "::ffff:100.100.100.200",
            "64:ff9b::e000:1", // multicast
        ] {
            let ip: IpAddr = bad.parse().unwrap();
            assert_eq!(
                p.check(ip),
                Err(Refused {
                    ip,
                    purpose: Purpose::Bots
                }),
                "{bad}"
            );
        }
        for ok in ["::1", "2001:db8::1", "64:ff9b::c000:20a", "2002:c000:20a::1"] {
            assert!(p.check(ok.parse().unwrap()).is_ok(), "{ok}");
        }
        let private = NetworkPolicy::new(Purpose::Notifications, &["10.0.0.0/8".into()], &[]).unwrap();
        assert_eq!(
            private
                .check("64:ff9b::a00:1".parse().unwrap())
                .unwrap_err()
                .to_string(),
            "64:ff9b::a00:1 is refused by the notification network policy"
        );
    }

    #[test]
    fn built_in_and_operator_rules() {
        let p = NetworkPolicy::new(
            Purpose::Notifications,
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
            NetworkPolicy::built_in(Purpose::Bots)
                .check("127.0.0.1".parse().unwrap())
                .is_ok(),
            "loopback is allowed by default"
        );
        assert_eq!(
            NetworkPolicy::new(Purpose::Bots, &["nope".into()], &[])
                .unwrap_err()
                .to_string(),
            "'nope' is not a CIDR (like 10.0.0.0/8) or an IP address"
        );
    }
}
