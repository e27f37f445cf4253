//! Dial limits (docs/configuration.md, docs/cluster.md): per bot and per trunk, a rate limit (generic cell rate
//! algorithm with fractional rates, burst `max(1, ceil(r))`) and a concurrency limit (one lease per conversation,
//! released when the conversation ends or when it expires).
//!
//! Both sit behind [`Limiter`]: [`LocalLimiter`] holds them in this process, [`RedisLimiter`] for every node of a
//! cluster (one atomic Lua script per admission). Time comes from `tokio::time` locally (tests run on paused
//! time) and from the Redis server's clock in a cluster (one clock for all nodes).

mod local;
mod redis;

pub use local::LocalLimiter;
pub use redis::{RedisDown, RedisLimiter};

use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// What a limit belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// `dialoutLimitPerSecond`, `dialoutMaxConcurrentCalls`.
    Bot,
    /// `maxCallsPerSecond`, `maxConcurrentCalls`.
    Trunk,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Bot => "bot",
            Scope::Trunk => "trunk",
        }
    }

    fn limit_name(self) -> &'static str {
        match self {
            Scope::Bot => "dialout",
            Scope::Trunk => "call",
        }
    }
}

/// Why a request was refused, and when it may be tried again.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LimitError {
    #[error("{} rate limit for {} '{name}' exceeded ({rate} per second)", scope.limit_name(), scope.as_str())]
    Rate {
        scope: Scope,
        name: String,
        rate: f64,
        retry_after: Duration,
    },
    #[error("{} concurrent calls limit for {} '{name}' reached ({max})", scope.limit_name(), scope.as_str())]
    Concurrency {
        scope: Scope,
        name: String,
        max: u32,
        retry_after: Duration,
    },
    /// The shared limits cannot be checked (Redis cannot be reached, or answered nonsense).
    #[error("limiter unavailable: {0}")]
    Unavailable(String),
}

impl LimitError {
    /// Whole seconds for a `Retry-After` header (at least 1).
    pub fn retry_after_secs(&self) -> u64 {
        match self {
            LimitError::Rate { retry_after, .. } | LimitError::Concurrency { retry_after, .. } => {
                retry_after.as_secs_f64().ceil().max(1.0) as u64
            }
            LimitError::Unavailable(_) => 1,
        }
    }
}

/// The limits of one bot or trunk, as configured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Requests per second; 0 = none.
    pub per_second: f64,
    /// Conversations alive at once; 0 = none.
    pub max_concurrent: u32,
    /// How long a lease counts at most.
    pub lease_expiry: Duration,
}

/// The name kept for the bots' limits.
pub type BotLimits = Limits;

impl Limits {
    pub fn is_none(&self) -> bool {
        self.per_second <= 0.0 && self.max_concurrent == 0
    }
}

/// One bot or trunk whose limits an admission checks.
#[derive(Debug, Clone, PartialEq)]
pub struct Subject {
    pub scope: Scope,
    pub name: String,
    pub limits: Limits,
}

impl Subject {
    pub fn new(scope: Scope, name: &str, limits: Limits) -> Subject {
        Subject {
            scope,
            name: name.to_string(),
            limits,
        }
    }
}

#[async_trait]
pub trait Limiter: Send + Sync + 'static {
    /// Checks the limits of every subject for one dial request and, when all pass, takes one rate cell of each
    /// and (where a concurrency limit is set) a lease for `conversation`, all at once. Nothing is consumed on
    /// refusal.
    async fn admit(&self, subjects: &[Subject], conversation: Uuid) -> Result<(), LimitError>;

    /// Releases the leases of `conversation` (no-op where it has none or they expired).
    async fn release(&self, subjects: &[(Scope, String)], conversation: Uuid);

    /// Number of live leases of a bot or trunk.
    async fn active(&self, scope: Scope, name: &str) -> Result<usize, LimitError>;

    /// Whether the limits can be checked now (`/readyz`); `Ok(Some(why))` when they are checked by this node only
    /// for now (degraded).
    async fn health(&self) -> Result<Option<String>, LimitError> {
        Ok(None)
    }
}

/// A conversation's concurrency slots. Dropping it releases them, so every exit path of a conversation gives
/// its slots back; [`Lease::release`] does it now and waits for it.
pub struct Lease {
    inner: Option<Held>,
}

/// The limiter, the bots and trunks whose leases are held, and the conversation holding them.
type Held = (Arc<dyn Limiter>, Vec<(Scope, String)>, Uuid);

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("conversation", &self.inner.as_ref().map(|i| i.2))
            .finish()
    }
}

impl Lease {
    /// The leases an admission of `subjects` took (those with a concurrency limit).
    pub fn of(limiter: Arc<dyn Limiter>, subjects: &[Subject], conversation: Uuid) -> Self {
        let held: Vec<(Scope, String)> = subjects
            .iter()
            .filter(|s| s.limits.max_concurrent > 0)
            .map(|s| (s.scope, s.name.clone()))
            .collect();
        if held.is_empty() {
            return Lease::none();
        }
        Lease {
            inner: Some((limiter, held, conversation)),
        }
    }

    /// A lease that holds nothing (no concurrency limit).
    pub fn none() -> Self {
        Lease { inner: None }
    }

    pub async fn release(mut self) {
        if let Some((l, held, id)) = self.inner.take() {
            l.release(&held, id).await;
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some((l, held, id)) = self.inner.take()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn(async move { l.release(&held, id).await });
        }
    }
}

/// One GCRA step. Returns the new TAT, or how long to wait.
pub fn gcra(
    tat: Option<tokio::time::Instant>,
    now: tokio::time::Instant,
    per_second: f64,
) -> Result<tokio::time::Instant, Duration> {
    let interval = Duration::from_secs_f64(1.0 / per_second);
    let tolerance = interval.mul_f64(burst(per_second) - 1.0);
    let tat = tat.unwrap_or(now).max(now);
    let allowed_at = tat.checked_sub(tolerance).unwrap_or(now);
    if allowed_at > now {
        Err(allowed_at - now)
    } else {
        Ok(tat + interval)
    }
}

/// Cells that may go at once: `max(1, ceil(rate))`.
pub fn burst(per_second: f64) -> f64 {
    per_second.ceil().max(1.0)
}
