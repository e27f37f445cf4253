//! `[cluster]` and `[limits]` (docs/cluster.md, docs/configuration.md): which node this is, how it beats, and
//! where the dial limits of the whole cluster are held.

use super::{ConfigError, bad};
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Cluster {
    /// This node's id (default: the host name): unique per node, and the same across its restarts, so that a
    /// restarted node ends its own calls and no other node's.
    pub node_id: Option<String>,
    /// How often the node beats.
    pub heartbeat_sec: u64,
    /// A node that has not beaten for this long is lost: another node ends its calls.
    pub node_timeout_sec: u64,
}

impl Default for Cluster {
    fn default() -> Self {
        Cluster {
            node_id: None,
            heartbeat_sec: 2,
            node_timeout_sec: 10,
        }
    }
}

/// What dialouts get while Redis cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RedisDown {
    /// 503 (the default): no limit is exceeded.
    Closed,
    /// This node's own limits, with a warning and `outdial_limiter_fallback_total`.
    Open,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// `redis://host:port/db`: the bots' and trunks' limits are held for the whole cluster; unset, each node
    /// holds its own.
    pub redis_url: Option<String>,
    /// Prefix of every Redis key.
    pub redis_prefix: String,
    pub on_redis_down: RedisDown,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            redis_url: None,
            redis_prefix: "outdial:".into(),
            on_redis_down: RedisDown::Closed,
        }
    }
}

/// The checked `[cluster]` settings.
#[derive(Debug, Clone)]
pub struct Node {
    pub id: String,
    pub heartbeat: Duration,
    pub timeout: Duration,
}

fn is_node_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// The host name, as a node id (`local` when it cannot be read or is not one).
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| is_node_id(h))
        .unwrap_or_else(|| "local".into())
}

impl Cluster {
    pub fn checked(&self) -> Result<Node, ConfigError> {
        let id = match &self.node_id {
            Some(id) if is_node_id(id) => id.clone(),
            Some(_) => {
                return Err(bad(
                    "cluster.node_id",
                    "should be 1–64 characters of [A-Za-z0-9._-]",
                ));
            }
            None => host_name(),
        };
        if !(1..=60).contains(&self.heartbeat_sec) {
            return Err(bad("cluster.heartbeat_sec", "should be from 1 to 60"));
        }
        if self.node_timeout_sec < 2 * self.heartbeat_sec || self.node_timeout_sec > 600 {
            return Err(bad(
                "cluster.node_timeout_sec",
                "should be at least twice cluster.heartbeat_sec, and at most 600",
            ));
        }
        Ok(Node {
            id,
            heartbeat: Duration::from_secs(self.heartbeat_sec),
            timeout: Duration::from_secs(self.node_timeout_sec),
        })
    }
}

impl Limits {
    pub fn check(&self) -> Result<(), ConfigError> {
        if let Some(u) = &self.redis_url
            && !(u.starts_with("redis://") || u.starts_with("rediss://"))
        {
            return Err(bad("limits.redis_url", "should be a redis:// or rediss:// URL"));
        }
        if self.redis_prefix.len() > 64 || self.redis_prefix.contains(char::is_whitespace) {
            return Err(bad(
                "limits.redis_prefix",
                "should be at most 64 characters, without spaces",
            ));
        }
        Ok(())
    }
}
