//! Per-bot dialout limits (docs/configuration.md and docs/api.md): a rate limit (generic cell rate algorithm with fractional
//! rates, burst `max(1, ceil(r))`) and a concurrency limit (one lease per conversation, released when the
//! conversation ends or when it expires).
//!
//! Both sit behind [`Limiter`] so that the cluster implementation (Redis) plugs in without touching callers.
//! Time comes from `tokio::time`, so tests can run on paused time.

use async_trait::async_trait;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use uuid::Uuid;

/// Why a request was refused, and when it may be tried again.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LimitError {
    #[error("dialout rate limit for bot '{bot}' exceeded ({rate} per second)")]
    Rate {
        bot: String,
        rate: f64,
        retry_after: Duration,
    },
    #[error("dialout concurrent calls limit for bot '{bot}' reached ({max})")]
    Concurrency {
        bot: String,
        max: u32,
        retry_after: Duration,
    },
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

/// The limits of one bot, as configured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BotLimits {
    /// Requests per second; 0 = none.
    pub per_second: f64,
    /// Conversations alive at once; 0 = none.
    pub max_concurrent: u32,
    /// How long a lease counts at most.
    pub lease_expiry: Duration,
}

#[async_trait]
pub trait Limiter: Send + Sync + 'static {
    /// Checks both limits for one dial request of `bot` and, when it passes, takes one rate cell and
    /// (when a concurrency limit is set) a lease for `conversation`. Nothing is consumed on refusal.
    async fn admit(&self, bot: &str, limits: &BotLimits, conversation: Uuid) -> Result<(), LimitError>;

    /// Releases the lease of `conversation` (no-op when it has none or it expired).
    async fn release(&self, bot: &str, conversation: Uuid);

    /// Number of live leases of `bot`.
    async fn active(&self, bot: &str) -> usize;
}

#[derive(Default)]
struct BotState {
    /// Theoretical arrival time of the next cell (GCRA).
    tat: Option<Instant>,
    leases: HashMap<Uuid, Instant>,
}

/// A conversation's concurrency slot. Dropping it releases the slot, so every exit path of a conversation
/// gives its slot back; [`Lease::release`] does it now and waits for it.
pub struct Lease {
    inner: Option<(Arc<dyn Limiter>, String, Uuid)>,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("conversation", &self.inner.as_ref().map(|i| i.2))
            .finish()
    }
}

impl Lease {
    pub fn new(limiter: Arc<dyn Limiter>, bot: &str, conversation: Uuid) -> Self {
        Lease {
            inner: Some((limiter, bot.to_string(), conversation)),
        }
    }

    /// A lease that holds nothing (no concurrency limit).
    pub fn none() -> Self {
        Lease { inner: None }
    }

    pub async fn release(mut self) {
        if let Some((l, bot, id)) = self.inner.take() {
            l.release(&bot, id).await;
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some((l, bot, id)) = self.inner.take()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn(async move { l.release(&bot, id).await });
        }
    }
}

/// The single-process limiter.
#[derive(Default, Clone)]
pub struct LocalLimiter {
    bots: Arc<Mutex<HashMap<String, BotState>>>,
}

impl LocalLimiter {
    pub fn new() -> Self {
        Self::default()
    }
}

/// One GCRA step. Returns the new TAT, or how long to wait.
pub fn gcra(tat: Option<Instant>, now: Instant, per_second: f64) -> Result<Instant, Duration> {
    let interval = Duration::from_secs_f64(1.0 / per_second);
    let burst = per_second.ceil().max(1.0);
    let tolerance = interval.mul_f64(burst - 1.0);
    let tat = tat.unwrap_or(now).max(now);
    let allowed_at = tat.checked_sub(tolerance).unwrap_or(now);
    if allowed_at > now {
        Err(allowed_at - now)
    } else {
        Ok(tat + interval)
    }
}

#[async_trait]
impl Limiter for LocalLimiter {
    async fn admit(&self, bot: &str, limits: &BotLimits, conversation: Uuid) -> Result<(), LimitError> {
        let now = Instant::now();
        let mut bots = self.bots.lock();
        let state = bots.entry(bot.to_string()).or_default();
        let new_tat = if limits.per_second > 0.0 {
            match gcra(state.tat, now, limits.per_second) {
                Ok(t) => Some(t),
                Err(retry_after) => {
                    return Err(LimitError::Rate {
                        bot: bot.into(),
                        rate: limits.per_second,
                        retry_after,
                    });
                }
            }
        } else {
            None
        };
        if limits.max_concurrent > 0 {
            state.leases.retain(|_, expires| *expires > now);
            if state.leases.len() >= limits.max_concurrent as usize {
                // A slot frees when a call ends, which may be any moment; the earliest expiry bounds the wait.
                let earliest = state.leases.values().min().copied().unwrap_or(now);
                let retry_after = (earliest - now).min(Duration::from_secs(1));
                return Err(LimitError::Concurrency {
                    bot: bot.into(),
                    max: limits.max_concurrent,
                    retry_after,
                });
            }
            state.leases.insert(conversation, now + limits.lease_expiry);
        }
        if new_tat.is_some() {
            state.tat = new_tat;
        }
        Ok(())
    }

    async fn release(&self, bot: &str, conversation: Uuid) {
        if let Some(state) = self.bots.lock().get_mut(bot) {
            state.leases.remove(&conversation);
        }
    }

    async fn active(&self, bot: &str) -> usize {
        let now = Instant::now();
        self.bots
            .lock()
            .get(bot)
            .map_or(0, |s| s.leases.values().filter(|e| **e > now).count())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(per_second: f64, max: u32) -> BotLimits {
        BotLimits {
            per_second,
            max_concurrent: max,
            lease_expiry: Duration::from_secs(10),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn half_per_second_allows_one_then_waits_two_seconds() {
        let l = LocalLimiter::new();
        let lim = limits(0.5, 0);
        l.admit("b", &lim, Uuid::new_v4()).await.unwrap();
        let e = l.admit("b", &lim, Uuid::new_v4()).await.unwrap_err();
        assert_eq!(e.retry_after_secs(), 2);
        assert_eq!(
            e.to_string(),
            "dialout rate limit for bot 'b' exceeded (0.5 per second)"
        );
        tokio::time::advance(Duration::from_millis(1999)).await;
        assert!(l.admit("b", &lim, Uuid::new_v4()).await.is_err());
        tokio::time::advance(Duration::from_millis(1)).await;
        l.admit("b", &lim, Uuid::new_v4()).await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn burst_is_ceil_of_rate() {
        let l = LocalLimiter::new();
        let lim = limits(2.5, 0);
        for _ in 0..3 {
            l.admit("b", &lim, Uuid::new_v4()).await.unwrap();
        }
        assert!(l.admit("b", &lim, Uuid::new_v4()).await.is_err());
        tokio::time::advance(Duration::from_millis(400)).await;
        l.admit("b", &lim, Uuid::new_v4()).await.unwrap();
        // Sustained: 2.5/s over 10 s admits about 25.
        tokio::time::advance(Duration::from_secs(5)).await;
        let mut n = 0;
        for _ in 0..1000 {
            if l.admit("b", &lim, Uuid::new_v4()).await.is_ok() {
                n += 1;
            }
            tokio::time::advance(Duration::from_millis(10)).await;
        }
        assert!((24..=28).contains(&n), "{n}");
    }

    #[tokio::test(start_paused = true)]
    async fn leases_release_and_expire() {
        let l = LocalLimiter::new();
        let lim = limits(0.0, 2);
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        l.admit("b", &lim, a).await.unwrap();
        l.admit("b", &lim, b).await.unwrap();
        let e = l.admit("b", &lim, Uuid::new_v4()).await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "dialout concurrent calls limit for bot 'b' reached (2)"
        );
        l.release("b", a).await;
        l.admit("b", &lim, Uuid::new_v4()).await.unwrap();
        assert!(l.admit("b", &lim, Uuid::new_v4()).await.is_err());
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(l.active("b").await, 0);
        l.admit("b", &lim, Uuid::new_v4()).await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn dropping_a_lease_releases_it() {
        let l = LocalLimiter::new();
        let shared: Arc<dyn Limiter> = Arc::new(l.clone());
        let id = Uuid::new_v4();
        l.admit("b", &limits(0.0, 1), id).await.unwrap();
        drop(Lease::new(shared.clone(), "b", id));
        tokio::task::yield_now().await;
        assert_eq!(l.active("b").await, 0);
        let id = Uuid::new_v4();
        l.admit("b", &limits(0.0, 1), id).await.unwrap();
        Lease::new(shared, "b", id).release().await;
        assert_eq!(l.active("b").await, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn refused_by_concurrency_consumes_no_rate() {
        let l = LocalLimiter::new();
        let lim = limits(1.0, 1);
        l.admit("b", &lim, Uuid::new_v4()).await.unwrap();
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(matches!(
            l.admit("b", &lim, Uuid::new_v4()).await,
            Err(LimitError::Concurrency { .. })
        ));
        assert_eq!(l.active("b").await, 1);
    }
}
