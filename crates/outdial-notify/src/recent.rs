//! The notifications whose attempt was recorded lately, and when: a row read from the store before that moment is
//! stale (the read raced with the record of its delivery) and is skipped. Entries leave in the order they came, so
//! expiring them costs only the expired ones (the read loop runs at every outbox write: going through every entry,
//! with a clock reading each, was 6 % of the gateway's CPU at 500 calls/s).

use std::collections::{HashMap, VecDeque};
use std::time::Duration;
use tokio::time::Instant;
use uuid::Uuid;

/// How long a finished attempt is remembered.
pub(crate) const KEEP: Duration = Duration::from_secs(10);

#[derive(Debug, Default)]
pub(crate) struct Recent {
    at: HashMap<Uuid, Instant>,
    order: VecDeque<(Instant, Uuid)>,
}

impl Recent {
    pub fn insert(&mut self, id: Uuid, at: Instant) {
        self.at.insert(id, at);
        self.order.push_back((at, id));
    }

    /// When `id`'s last attempt was recorded, if within [`KEEP`] of the last [`Recent::expire`].
    pub fn get(&self, id: &Uuid) -> Option<Instant> {
        self.at.get(id).copied()
    }

    /// Forgets what was recorded more than [`KEEP`] before `now`.
    pub fn expire(&mut self, now: Instant) {
        let Some(cutoff) = now.checked_sub(KEEP) else {
            return;
        };
        while let Some(&(at, id)) = self.order.front() {
            if at >= cutoff {
                break;
            }
            self.order.pop_front();
            // A later attempt of the same row keeps its own entry.
            if self.at.get(&id) == Some(&at) {
                self.at.remove(&id);
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.at.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn entries_expire_in_order_and_a_later_attempt_keeps_its_own() {
        let mut r = Recent::default();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let t0 = Instant::now();
        r.insert(a, t0);
        r.insert(b, t0 + Duration::from_secs(3));
        r.insert(a, t0 + Duration::from_secs(6));
        r.expire(t0 + Duration::from_secs(11));
        assert_eq!(
            r.get(&a),
            Some(t0 + Duration::from_secs(6)),
            "a's second attempt stays"
        );
        assert_eq!(r.get(&b), Some(t0 + Duration::from_secs(3)));
        r.expire(t0 + Duration::from_secs(14));
        assert_eq!(r.get(&b), None);
        assert_eq!(r.len(), 1);
        r.expire(t0 + Duration::from_secs(17));
        assert_eq!(r.len(), 0);
    }
}
