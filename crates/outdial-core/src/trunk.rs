//! Trunks: where outbound INVITEs go (docs/configuration.md).

use crate::validate::{Obj, Result, is_object_name};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    #[default]
    Udp,
    Tcp,
    Tls,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum Srtp {
    #[default]
    Off,
    Optional,
    Required,
}

/// A SIP trunk or SBC. `password` is write-only through the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Trunk {
    /// Unique, 1–64 characters of `[A-Za-z0-9_.-]`.
    #[schema(pattern = "^[A-Za-z0-9_.-]{1,64}$")]
    pub name: String,
    /// `host[:port]` or a SIP URI; DNS SRV is used when no port is given.
    pub address: String,
    #[serde(default)]
    pub transport: Transport,
    /// The trunk used by bots that name none. With a single trunk, that trunk.
    #[serde(default)]
    pub default: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Digest password (write-only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(write_only)]
    pub password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub realm: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbound_proxy: Option<String>,
    /// Host part of From when the dialout gives no `callerHost`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller_host: Option<String>,
    /// Whether dialouts through this trunk may ask for machine detection (default true).
    #[serde(default = "yes")]
    pub machine_detection: bool,
    /// Response header that carries the trunk's session id (default `Session-ID`, else the Call-ID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id_header: Option<String>,
    /// 0 = no limit.
    #[serde(default)]
    pub max_calls_per_second: f64,
    /// 0 = no limit.
    #[serde(default)]
    pub max_concurrent_calls: u32,
    /// Extra headers added to every INVITE.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Follow 3xx redirections (at most 3 hops).
    #[serde(default = "yes")]
    pub follow_redirects: bool,
    /// OPTIONS keep-alive interval in seconds; 0 = off.
    #[serde(default = "default_keepalive")]
    pub keep_alive_sec: u32,
    /// Offered codecs in order of preference.
    #[serde(default = "default_codecs")]
    pub codecs: Vec<String>,
    /// PEM file of CA roots for TLS (default: the system's roots).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_ca_file: Option<String>,
    /// Server name for TLS SNI and verification (default: the address's host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_server_name: Option<String>,
    #[serde(default)]
    pub srtp: Srtp,
    /// Session timer (RFC 4028, docs/trunks.md): the `Session-Expires` asked for, 90–86400 s; 0 = no timer.
    #[serde(default = "default_session_timer")]
    pub session_timer_sec: u32,
}

fn default_session_timer() -> u32 {
    1800
}

fn yes() -> bool {
    true
}
fn default_keepalive() -> u32 {
    30
}
fn default_codecs() -> Vec<String> {
    vec!["pcmu".into(), "pcma".into(), "telephone-event".into()]
}

pub const TRUNK_SECRETS: [&str; 1] = ["password"];
pub const CODECS: [&str; 5] = ["pcmu", "pcma", "telephone-event", "g722", "opus"];

const TRUNK_FIELDS: [&str; 21] = [
    "sessionTimerSec",
    "name",
    "address",
    "transport",
    "default",
    "username",
    "password",
    "realm",
    "outboundProxy",
    "callerHost",
    "machineDetection",
    "sessionIdHeader",
    "maxCallsPerSecond",
    "maxConcurrentCalls",
    "headers",
    "followRedirects",
    "keepAliveSec",
    "codecs",
    "tlsCaFile",
    "tlsServerName",
    "srtp",
];

/// A host name, an IPv4 address or an IPv6 literal (bare or in brackets).
pub fn is_host(s: &str) -> bool {
    if s.is_empty() || s.len() > 253 {
        return false;
    }
    let inner = s.strip_prefix('[').and_then(|x| x.strip_suffix(']')).unwrap_or(s);
    if inner.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    s.split('.').all(|l| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    })
}

/// `host`, `host:port`, `[v6]:port`, or a `sip:`/`sips:` URI of those.
pub fn is_sip_address(s: &str) -> bool {
    let s = s
        .strip_prefix("sips:")
        .or_else(|| s.strip_prefix("sip:"))
        .unwrap_or(s);
    let s = s.split(';').next().unwrap_or("");
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        match rest.split_once(']') {
            Some((h, p)) => (h, p.strip_prefix(':')),
            None => return false,
        }
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h, Some(p)),
            _ => (s, None),
        }
    };
    is_host(host) && port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0))
}

impl Trunk {
    pub fn parse(v: &Value) -> Result<Trunk> {
        let o = Obj::new(v, "")?;
        o.required(&["name", "address"])?;
        o.only(&TRUNK_FIELDS)?;
        let name = o.string("name", 1, 64)?.unwrap_or_default();
        if !is_object_name(name) {
            return Err(o.error("name", "should match pattern \"^[A-Za-z0-9_.-]{1,64}$\""));
        }
        let address = o.string("address", 1, 512)?.unwrap_or_default();
        if !is_sip_address(address) {
            return Err(o.error("address", "should be host[:port] or a sip: URI"));
        }
        let outbound_proxy = o.string("outboundProxy", 1, 512)?;
        if let Some(p) = outbound_proxy
            && !is_sip_address(p)
        {
            return Err(o.error("outboundProxy", "should be host[:port] or a sip: URI"));
        }
        let caller_host = o.string("callerHost", 1, 253)?;
        if let Some(h) = caller_host
            && !is_host(h)
        {
            return Err(o.error("callerHost", "should be a host name or IP address"));
        }
        let transport = match o.one_of("transport", &["udp", "tcp", "tls"])? {
            Some("tcp") => Transport::Tcp,
            Some("tls") => Transport::Tls,
            _ => Transport::Udp,
        };
        let srtp = match o.one_of("srtp", &["off", "optional", "required"])? {
            Some("optional") => Srtp::Optional,
            Some("required") => Srtp::Required,
            _ => Srtp::Off,
        };
        let mut headers = BTreeMap::new();
        match o.value("headers") {
            None => {}
            Some(Value::Object(m)) => {
                for (k, v) in m {
                    let ok_name = !k.is_empty()
                        && k.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"-_.!%*+`'~".contains(&b));
                    if !ok_name {
                        return Err(
                            o.error("headers", format!("should have SIP header names as keys ('{k}')"))
                        );
                    }
                    match v {
                        Value::String(s) if !s.chars().any(char::is_control) && s.len() <= 1024 => {
                            headers.insert(k.clone(), s.clone());
                        }
                        _ => {
                            return Err(o.error(
                                &format!("headers/{k}"),
                                "should be string without control characters",
                            ));
                        }
                    }
                }
            }
            Some(_) => return Err(o.error("headers", "should be object")),
        }
        let codecs = o.strings("codecs", 8, |s| {
            if CODECS.contains(&s) {
                Ok(())
            } else {
                Err(format!(
                    "should be equal to one of the allowed values: {}",
                    CODECS.join(", ")
                ))
            }
        })?;
        let text =
            |n: &str, max: usize| -> Result<Option<String>> { Ok(o.text(n, 1, max)?.map(str::to_string)) };
        Ok(Trunk {
            name: name.to_string(),
            address: address.to_string(),
            transport,
            default: o.boolean("default")?.unwrap_or(false),
            username: text("username", 256)?,
            password: text("password", 256)?,
            realm: text("realm", 256)?,
            outbound_proxy: outbound_proxy.map(str::to_string),
            caller_host: caller_host.map(str::to_string),
            machine_detection: o.boolean("machineDetection")?.unwrap_or(true),
            session_id_header: text("sessionIdHeader", 64)?,
            max_calls_per_second: o
                .number("maxCallsPerSecond", Some(0.0), Some(100_000.0))?
                .unwrap_or(0.0),
            max_concurrent_calls: o.integer("maxConcurrentCalls", 0, 1_000_000)?.unwrap_or(0) as u32,
            headers,
            follow_redirects: o.boolean("followRedirects")?.unwrap_or(true),
            keep_alive_sec: o.integer("keepAliveSec", 0, 3600)?.unwrap_or(30) as u32,
            codecs: codecs.unwrap_or_else(default_codecs),
            tls_ca_file: text("tlsCaFile", 4096)?,
            tls_server_name: text("tlsServerName", 253)?,
            srtp,
            session_timer_sec: match o.integer("sessionTimerSec", 0, 86_400)? {
                None => default_session_timer(),
                Some(s @ (0 | 90..)) => s as u32,
                Some(_) => return Err(o.error("sessionTimerSec", "should be 0 or >= 90")),
            },
        })
    }

    pub fn view(&self) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Value::Object(m) = &mut v {
            for s in TRUNK_SECRETS {
                m.remove(s);
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn addresses() {
        for ok in [
            "sbc.example.com",
            "10.0.0.5:5060",
            "[::1]:5062",
            "sip:sbc.example.com;transport=tcp",
            "127.0.0.1",
        ] {
            assert!(is_sip_address(ok), "{ok}");
        }
        for bad in ["", "sbc example", "host:0", "host:99999", "[::1", "-bad-.com"] {
            assert!(!is_sip_address(bad), "{bad}");
        }
    }

    #[test]
    fn parse_and_view() {
        let t = Trunk::parse(
            &json!({"name": "t1", "address": "127.0.0.1:5060", "password": "pw", "transport": "tls"}),
        )
        .unwrap();
        assert_eq!(t.transport, Transport::Tls);
        assert!(t.machine_detection);
        assert!(t.view().get("password").is_none());
        let e = Trunk::parse(&json!({"name": "t1", "address": "x", "transport": "sctp"})).unwrap_err();
        assert_eq!(
            e.to_string(),
            "request/transport should be equal to one of the allowed values: udp, tcp, tls"
        );
    }
}
