//! [`LocalLimiter`]: the limits held in this process (one node, or a cluster node while Redis is down and the
//! operator chose `on_redis_down = "open"`).

use crate::{LimitError, Limiter, Scope, Subject, gcra};
use async_trait::async_trait;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use uuid::Uuid;

#[derive(Default)]
struct State {
    /// Theoretical arrival time of the next cell (GCRA).
    tat: Option<Instant>,
    leases: HashMap<Uuid, Instant>,
}

/// The single-process limiter.
#[derive(Default, Clone)]
pub struct LocalLimiter {
    states: Arc<Mutex<HashMap<(Scope, String), State>>>,
}

impl LocalLimiter {
    pub fn new() -> Self {
        Self::default()
    }
}

/// Why `subject` refuses now, or the new TAT its admission would set.
fn check(state: &mut State, s: &Subject, now: Instant) -> Result<Option<Instant>, LimitError> {
    let new_tat = if s.limits.per_second > 0.0 {
        match gcra(state.tat, now, s.limits.per_second) {
            Ok(t) => Some(t),
            Err(retry_after) => {
                return Err(LimitError::Rate {
                    scope: s.scope,
                    name: s.name.clone(),
                    rate: s.limits.per_second,
                    retry_after,
                });
            }
        }
    } else {
        None
    };
    if s.limits.max_concurrent > 0 {
        state.leases.retain(|_, expires| *expires > now);
        if state.leases.len() >= s.limits.max_concurrent as usize {
            // A slot frees when a call ends, which may be any moment; the earliest expiry bounds the wait.
            let earliest = state.leases.values().min().copied().unwrap_or(now);
            return Err(LimitError::Concurrency {
                scope: s.scope,
                name: s.name.clone(),
                max: s.limits.max_concurrent,
                retry_after: (earliest - now).min(Duration::from_secs(1)),
            });
        }
    }
    Ok(new_tat)
}

#[async_trait]
impl Limiter for LocalLimiter {
    async fn admit(&self, subjects: &[Subject], conversation: Uuid) -> Result<(), LimitError> {
        let now = Instant::now();
        let mut states = self.states.lock();
        let mut tats = Vec::with_capacity(subjects.len());
        for s in subjects {
            let state = states.entry((s.scope, s.name.clone())).or_default();
            tats.push(check(state, s, now)?);
        }
        for (s, tat) in subjects.iter().zip(tats) {
            let state = states.entry((s.scope, s.name.clone())).or_default();
            if tat.is_some() {
                state.tat = tat;
            }
            if s.limits.max_concurrent > 0 {
                state.leases.insert(conversation, now + s.limits.lease_expiry);
            }
        }
        Ok(())
    }

    async fn release(&self, subjects: &[(Scope, String)], conversation: Uuid) {
        let mut states = self.states.lock();
        for key in subjects {
            if let Some(state) = states.get_mut(key) {
                state.leases.remove(&conversation);
            }
        }
    }

    async fn active(&self, scope: Scope, name: &str) -> Result<usize, LimitError> {
        let now = Instant::now();
        Ok(self
            .states
            .lock()
            .get(&(scope, name.to_string()))
            .map_or(0, |s| s.leases.values().filter(|e| **e > now).count()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Lease, Limits};

    fn bot(per_second: f64, max: u32) -> Vec<Subject> {
        vec![Subject::new(
            Scope::Bot,
            "b",
            Limits {
                per_second,
                max_concurrent: max,
                lease_expiry: Duration::from_secs(10),
            },
        )]
    }

    #[tokio::test(start_paused = true)]
    async fn half_per_second_allows_one_then_waits_two_seconds() {
        let l = LocalLimiter::new();
        let lim = bot(0.5, 0);
        l.admit(&lim, Uuid::new_v4()).await.unwrap();
        let e = l.admit(&lim, Uuid::new_v4()).await.unwrap_err();
        assert_eq!(e.retry_after_secs(), 2);
        assert_eq!(
            e.to_string(),
            "dialout rate limit for bot 'b' exceeded (0.5 per second)"
        );
        tokio::time::advance(Duration::from_millis(1999)).await;
        assert!(l.admit(&lim, Uuid::new_v4()).await.is_err());
        tokio::time::advance(Duration::from_millis(1)).await;
        l.admit(&lim, Uuid::new_v4()).await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn burst_is_ceil_of_rate() {
        let l = LocalLimiter::new();
        let lim = bot(2.5, 0);
        for _ in 0..3 {
            l.admit(&lim, Uuid::new_v4()).await.unwrap();
        }
        assert!(l.admit(&lim, Uuid::new_v4()).await.is_err());
        tokio::time::advance(Duration::from_millis(400)).await;
        l.admit(&lim, Uuid::new_v4()).await.unwrap();
        // Sustained: 2.5/s over 10 s admits about 25.
        tokio::time::advance(Duration::from_secs(5)).await;
        let mut n = 0;
        for _ in 0..1000 {
            if l.admit(&lim, Uuid::new_v4()).await.is_ok() {
                n += 1;
            }
            tokio::time::advance(Duration::from_millis(10)).await;
        }
        assert!((24..=28).contains(&n), "{n}");
    }

    #[tokio::test(start_paused = true)]
    async fn leases_release_and_expire() {
        let l = LocalLimiter::new();
        let lim = bot(0.0, 2);
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        l.admit(&lim, a).await.unwrap();
        l.admit(&lim, b).await.unwrap();
        let e = l.admit(&lim, Uuid::new_v4()).await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "dialout concurrent calls limit for bot 'b' reached (2)"
        );
        l.release(&[(Scope::Bot, "b".into())], a).await;
        l.admit(&lim, Uuid::new_v4()).await.unwrap();
        assert!(l.admit(&lim, Uuid::new_v4()).await.is_err());
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(l.active(Scope::Bot, "b").await.unwrap(), 0);
        l.admit(&lim, Uuid::new_v4()).await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn dropping_a_lease_releases_it() {
        let l = LocalLimiter::new();
        let shared: Arc<dyn Limiter> = Arc::new(l.clone());
        let id = Uuid::new_v4();
        l.admit(&bot(0.0, 1), id).await.unwrap();
        drop(Lease::of(shared.clone(), &bot(0.0, 1), id));
        tokio::task::yield_now().await;
        assert_eq!(l.active(Scope::Bot, "b").await.unwrap(), 0);
        let id = Uuid::new_v4();
        l.admit(&bot(0.0, 1), id).await.unwrap();
        Lease::of(shared, &bot(0.0, 1), id).release().await;
        assert_eq!(l.active(Scope::Bot, "b").await.unwrap(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn refused_by_concurrency_consumes_no_rate() {
        let l = LocalLimiter::new();
        let lim = bot(1.0, 1);
        l.admit(&lim, Uuid::new_v4()).await.unwrap();
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(matches!(
            l.admit(&lim, Uuid::new_v4()).await,
            Err(LimitError::Concurrency { .. })
        ));
        assert_eq!(l.active(Scope::Bot, "b").await.unwrap(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_trunk_limit_refuses_without_consuming_the_bots() {
        let l = LocalLimiter::new();
        let trunk = Subject::new(
            Scope::Trunk,
            "t",
            Limits {
                per_second: 0.0,
                max_concurrent: 1,
                lease_expiry: Duration::from_secs(60),
            },
        );
        let both = [bot(1.0, 5)[0].clone(), trunk];
        l.admit(&both, Uuid::new_v4()).await.unwrap();
        tokio::time::advance(Duration::from_secs(1)).await;
        let e = l.admit(&both, Uuid::new_v4()).await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "call concurrent calls limit for trunk 't' reached (1)"
        );
        assert_eq!(l.active(Scope::Bot, "b").await.unwrap(), 1, "no bot lease taken");
        // The bot's rate cell was not used: the bot alone passes at once.
        l.admit(&both[..1], Uuid::new_v4()).await.unwrap();
    }
}
