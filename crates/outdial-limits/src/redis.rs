//! [`RedisLimiter`]: the dial limits of a whole cluster in one Redis (docs/cluster.md).
//!
//! One admission is one Lua script (atomic in Redis): for each subject (the bot, its trunk) it checks the GCRA
//! cell (`…:tat`, microseconds of the Redis clock) and the leases (`…:leases`, a sorted set of conversation ids
//! scored by their expiry), and only when every subject passes takes a cell and a lease of each. Leases of a node
//! that dies expire by themselves; both keys expire when idle.

use crate::{LimitError, Limiter, LocalLimiter, Scope, Subject, burst};
use async_trait::async_trait;
use parking_lot::Mutex;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// What an admission gets while Redis cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisDown {
    /// Refused (503): no limit can be exceeded.
    Closed,
    /// Checked by this node alone, with a warning and `outdial_limiter_fallback_total`.
    Open,
}

const ADMIT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local n = #KEYS / 2
local tats = {}
for i = 1, n do
  local a = 1 + (i - 1) * 4
  local interval, burst, maxc = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  if interval > 0 then
    local tat = tonumber(redis.call('GET', KEYS[2 * i - 1]) or now)
    if tat < now then tat = now end
    local allowed_at = tat - interval * (burst - 1)
    if allowed_at > now then return {i, 1, math.ceil(allowed_at - now)} end
    tats[i] = tat + interval
  end
  if maxc > 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[2 * i], '-inf', now)
    if redis.call('ZCARD', KEYS[2 * i]) >= maxc then
      local first = redis.call('ZRANGE', KEYS[2 * i], 0, 0, 'WITHSCORES')
      return {i, 2, math.ceil(tonumber(first[2]) - now)}
    end
  end
end
for i = 1, n do
  local a = 1 + (i - 1) * 4
  local maxc, expiry = tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4])
  if tats[i] then
    redis.call('SET', KEYS[2 * i - 1], string.format('%.0f', tats[i]), 'PX', math.ceil((tats[i] - now) / 1000) + 1000)
  end
  if maxc > 0 then
    redis.call('ZADD', KEYS[2 * i], now + expiry, ARGV[1])
    redis.call('PEXPIRE', KEYS[2 * i], math.ceil(expiry / 1000) + 1000)
  end
end
return {0, 0, 0}
"#;

const ACTIVE: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
return redis.call('ZCOUNT', KEYS[1], '(' .. string.format('%.0f', now), '+inf')
"#;

/// Each call to Redis gets this long at most: an admission never waits longer on a Redis that hangs.
const REDIS_TIMEOUT: Duration = Duration::from_millis(500);

pub struct RedisLimiter {
    client: redis::Client,
    conn: tokio::sync::Mutex<Option<ConnectionManager>>,
    prefix: String,
    on_down: RedisDown,
    local: LocalLimiter,
    admit: redis::Script,
    active: redis::Script,
    /// Whether the last call to Redis failed (one log line per outage, not one per request).
    down: Mutex<bool>,
}

impl std::fmt::Debug for RedisLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLimiter")
            .field("prefix", &self.prefix)
            .finish()
    }
}

fn unavailable(e: impl std::fmt::Display) -> LimitError {
    LimitError::Unavailable(format!("Redis: {e}"))
}

impl RedisLimiter {
    /// A limiter on the Redis at `url` (`redis://host:port/db`); keys start with `prefix`. It connects on first
    /// use (and again whenever the connection is lost), so a gateway starts while Redis is down.
    pub fn new(url: &str, prefix: &str, on_down: RedisDown) -> Result<Arc<RedisLimiter>, LimitError> {
        let client = redis::Client::open(url).map_err(unavailable)?;
        Ok(Arc::new(RedisLimiter {
            client,
            conn: tokio::sync::Mutex::new(None),
            prefix: prefix.to_string(),
            on_down,
            local: LocalLimiter::new(),
            admit: redis::Script::new(ADMIT),
            active: redis::Script::new(ACTIVE),
            down: Mutex::new(false),
        }))
    }

    fn key(&self, scope: Scope, name: &str, what: &str) -> String {
        format!("{}{}:{name}:{what}", self.prefix, scope.as_str())
    }

    async fn connection(&self) -> Result<ConnectionManager, LimitError> {
        // While a first connection is being made, others wait for it at most as long as it may take: during an
        // outage admissions fail after 1 s each, never queued one behind another.
        let mut conn = tokio::time::timeout(REDIS_TIMEOUT * 2, self.conn.lock())
            .await
            .map_err(|_| unavailable("no connection within 1 s"))?;
        if let Some(c) = conn.as_ref() {
            return Ok(c.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(REDIS_TIMEOUT)
            .set_response_timeout(REDIS_TIMEOUT)
            .set_number_of_retries(1);
        let c = tokio::time::timeout(
            REDIS_TIMEOUT * 2,
            ConnectionManager::new_with_config(self.client.clone(), config),
        )
        .await
        .map_err(|_| unavailable("no connection within 1 s"))?
        .map_err(unavailable)?;
        *conn = Some(c.clone());
        Ok(c)
    }

    /// Notes a call's outcome: one line when Redis goes away, one when it is back.
    fn saw<T>(&self, r: &Result<T, LimitError>) {
        let mut down = self.down.lock();
        match (r, *down) {
            (Err(e), false) => {
                tracing::error!("dial limits: {e}");
                *down = true;
            }
            (Ok(_), true) => {
                tracing::info!("dial limits: Redis answers again");
                *down = false;
            }
            _ => {}
        }
    }

    async fn admit_shared(&self, subjects: &[Subject], conversation: Uuid) -> Result<Vec<i64>, LimitError> {
        let mut conn = self.connection().await?;
        let mut inv = self.admit.prepare_invoke();
        inv.arg(conversation.to_string());
        for s in subjects {
            inv.key(self.key(s.scope, &s.name, "tat"));
            inv.key(self.key(s.scope, &s.name, "leases"));
            let interval_us = if s.limits.per_second > 0.0 {
                1e6 / s.limits.per_second
            } else {
                0.0
            };
            inv.arg(interval_us)
                .arg(burst(s.limits.per_second))
                .arg(s.limits.max_concurrent)
                .arg(s.limits.lease_expiry.as_micros() as u64);
        }
        let r = tokio::time::timeout(REDIS_TIMEOUT, inv.invoke_async::<Vec<i64>>(&mut conn))
            .await
            .map_err(|_| unavailable("no answer within 500 ms"))?
            .map_err(unavailable)?;
        if r.len() != 3 {
            return Err(unavailable(format!("unexpected answer {r:?}")));
        }
        Ok(r)
    }
}

#[async_trait]
impl Limiter for RedisLimiter {
    async fn admit(&self, subjects: &[Subject], conversation: Uuid) -> Result<(), LimitError> {
        let subjects: Vec<Subject> = subjects.iter().filter(|s| !s.limits.is_none()).cloned().collect();
        if subjects.is_empty() {
            return Ok(());
        }
        let r = self.admit_shared(&subjects, conversation).await;
        self.saw(&r);
        let r = match r {
            Ok(r) => r,
            Err(e) if self.on_down == RedisDown::Open => {
                metrics::counter!("outdial_limiter_fallback_total").increment(1);
                tracing::warn!("dial limits checked by this node alone: {e}");
                return self.local.admit(&subjects, conversation).await;
            }
            Err(e) => return Err(e),
        };
        let (which, kind, wait_us) = (r[0], r[1], r[2].max(0) as u64);
        let Some(s) = usize::try_from(which - 1).ok().and_then(|i| subjects.get(i)) else {
            return Ok(());
        };
        let retry_after = Duration::from_micros(wait_us);
        Err(if kind == 1 {
            LimitError::Rate {
                scope: s.scope,
                name: s.name.clone(),
                rate: s.limits.per_second,
                retry_after,
            }
        } else {
            LimitError::Concurrency {
                scope: s.scope,
                name: s.name.clone(),
                max: s.limits.max_concurrent,
                retry_after: retry_after.min(Duration::from_secs(1)),
            }
        })
    }

    async fn release(&self, subjects: &[(Scope, String)], conversation: Uuid) {
        self.local.release(subjects, conversation).await;
        let Ok(mut conn) = self.connection().await else {
            // Not released now: the lease expires by itself.
            return;
        };
        let mut pipe = redis::pipe();
        for (scope, name) in subjects {
            pipe.zrem(self.key(*scope, name, "leases"), conversation.to_string())
                .ignore();
        }
        let r = tokio::time::timeout(REDIS_TIMEOUT, pipe.query_async::<()>(&mut conn)).await;
        if !matches!(r, Ok(Ok(()))) {
            tracing::warn!(%conversation, "lease not released in Redis now; it expires by itself");
        }
    }

    async fn active(&self, scope: Scope, name: &str) -> Result<usize, LimitError> {
        let mut conn = self.connection().await?;
        let inv = self.active.key(self.key(scope, name, "leases"));
        let n = tokio::time::timeout(REDIS_TIMEOUT, inv.invoke_async::<i64>(&mut conn))
            .await
            .map_err(|_| unavailable("no answer within 500 ms"))?
            .map_err(unavailable)?;
        Ok(n.max(0) as usize)
    }

    async fn health(&self) -> Result<Option<String>, LimitError> {
        let ping = async {
            let mut conn = self.connection().await?;
            tokio::time::timeout(REDIS_TIMEOUT, redis::cmd("PING").query_async::<String>(&mut conn))
                .await
                .map_err(|_| unavailable("no answer within 500 ms"))?
                .map_err(unavailable)
        };
        let r = ping.await;
        self.saw(&r);
        match (r, self.on_down) {
            (Ok(_), _) => Ok(None),
            (Err(e), RedisDown::Open) => Ok(Some(format!("{e}; limits are checked by each node alone"))),
            (Err(e), RedisDown::Closed) => Err(e),
        }
    }
}
