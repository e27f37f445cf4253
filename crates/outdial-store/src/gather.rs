//! How long the store's writer gathers writes before it commits them (docs/architecture.md, "The store").
//!
//! Every transaction has a cost of its own, however many writes it carries: on PostgreSQL a round trip per
//! statement (BEGIN, the existence check, an insert per table, COMMIT); on a SQLite file a hop to the store's thread
//! (`thread.rs`) and the pages each commit writes to the log (the tables' and indexes' last pages, again and again).
//! Without waiting, the writer commits whatever is queued the moment it is free; at 500 calls/s that was a few
//! writes per transaction, and the round trips (then sqlx's hops, one per statement) were most of the store's CPU.
//! Under load it now waits up to [`LINGER`] after a batch's first write, so that one transaction carries the writes
//! of many calls. Under light load it never waits: a lone conversation's writes are committed at once.

use tokio::sync::mpsc;
use tokio::time::{Duration, Instant};

/// The longest a write waits for others under load (it adds at most this much to a notification's lag).
pub(crate) const LINGER: Duration = Duration::from_millis(2);

/// The writes per second above which the writer lingers, counted over a [`WINDOW`].
const BUSY_PER_SECOND: u32 = 1_000;
const WINDOW: Duration = Duration::from_millis(100);

/// The rate of writes: those of the last whole window, and those of the current one.
#[derive(Debug)]
pub(crate) struct Load {
    started: Instant,
    current: u32,
    last: u32,
}

impl Load {
    pub fn new(now: Instant) -> Load {
        Load {
            started: now,
            current: 0,
            last: 0,
        }
    }

    /// Counts `n` writes that came at `now`.
    pub fn note(&mut self, n: usize, now: Instant) {
        let elapsed = now.saturating_duration_since(self.started);
        if elapsed >= WINDOW {
            // A window with no writes in between leaves nothing to go on.
            self.last = if elapsed >= WINDOW * 2 { 0 } else { self.current };
            self.current = 0;
            self.started = now;
        }
        self.current = self.current.saturating_add(n.try_into().unwrap_or(u32::MAX));
    }

    /// Whether writes come fast enough that waiting for more pays: the last window's rate, or the current one's
    /// once it alone has passed the mark.
    pub fn busy(&self) -> bool {
        let mark = BUSY_PER_SECOND * WINDOW.as_millis() as u32 / 1000;
        self.last >= mark || self.current >= mark
    }
}

/// Adds to `batch` what comes on `rx` within [`LINGER`] of now, up to `max` jobs in all.
pub(crate) async fn linger<T>(rx: &mut mpsc::Receiver<T>, batch: &mut Vec<T>, max: usize, load: &mut Load) {
    let until = Instant::now() + LINGER;
    while batch.len() < max {
        // `recv_many` is cancel safe: nothing is lost when the deadline comes first.
        match tokio::time::timeout_at(until, rx.recv_many(batch, max - batch.len())).await {
            Ok(0) | Err(_) => return,
            Ok(n) => load.note(n, Instant::now()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_lone_writer_never_waits_and_a_busy_one_does() {
        let t0 = Instant::now();
        let mut load = Load::new(t0);
        // A conversation's burst of writes: ten in a millisecond, then quiet.
        load.note(10, t0);
        assert!(!load.busy(), "ten writes are not load");
        load.note(1, t0 + Duration::from_millis(150));
        assert!(!load.busy());
        // 500 calls/s: ~5 writes a millisecond.
        let t1 = t0 + Duration::from_secs(1);
        for ms in 0..100 {
            load.note(5, t1 + Duration::from_millis(ms));
        }
        assert!(load.busy(), "5,000 writes a second are load");
        // The load stops: after two quiet windows the writer no longer waits.
        load.note(1, t1 + Duration::from_millis(400));
        assert!(!load.busy(), "a quiet spell ends the waiting");
    }

    #[tokio::test(start_paused = true)]
    async fn lingering_gathers_what_comes_within_the_window_and_no_more() {
        let (tx, mut rx) = mpsc::channel(16);
        let mut load = Load::new(Instant::now());
        let sender = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            for i in 0..3 {
                tx.send(i).await.unwrap();
            }
            // Too late for this batch.
            tokio::time::sleep(LINGER * 2).await;
            tx.send(99).await.unwrap();
        });
        let started = Instant::now();
        let mut batch = vec![-1];
        linger(&mut rx, &mut batch, 16, &mut load).await;
        assert_eq!(batch, vec![-1, 0, 1, 2]);
        let waited = started.elapsed();
        assert!(
            waited >= LINGER && waited < LINGER * 2,
            "it waits the whole window when there is room: {waited:?}"
        );
        // A full batch goes at once.
        let mut full = vec![0; 16];
        let before = Instant::now();
        linger(&mut rx, &mut full, 16, &mut load).await;
        assert_eq!(before.elapsed(), Duration::ZERO);
        sender.await.unwrap();
        assert_eq!(rx.recv().await, Some(99));
    }
}
