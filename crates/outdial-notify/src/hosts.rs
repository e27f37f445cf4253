//! Fair delivery per receiver (docs/operations.md, "Notifications"). Each receiver host has its own queue (the
//! outbox is read a few rows per host at a time) and at most [`PER_HOST`] notifications in flight, so a slow receiver
//! holds only its own slots. A receiver that keeps failing to answer (timeouts, refused connections) trips a circuit
//! breaker: while it is open, its rows are not sent (each such turn is recorded as an attempt that waits for the
//! breaker), and others go on; when it half-opens, one row probes the receiver. The first answer from a receiver
//! that was failing makes all its pending rows due at once.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;

/// Notifications in flight per receiver host (and rows read per host at a time): as many as the whole worker had
/// before delivery was per host, so one dialer's receiver still takes 1,000 notifications a second (BENCHMARKS.md).
pub const PER_HOST: usize = 64;

/// What the breaker says about sending to a host now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Admit {
    /// Send (a slot is taken: call [`Hosts::done`]).
    Send,
    /// The host has all its slots in use, or its probe is in flight: leave the row for a later turn.
    Busy,
    /// The breaker is open for this long yet: do not send.
    Open(Duration),
}

/// How an attempt went, as far as the breaker cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    /// The receiver answered (any status): it is there.
    Answered,
    /// No answer: timeout, refused or reset connection.
    Silent,
}

#[derive(Debug, Default)]
struct Host {
    in_flight: usize,
    /// Attempts in a row without an answer.
    silent: u32,
    open_until: Option<Instant>,
    open_for: Duration,
    probing: bool,
}

#[derive(Debug)]
pub(crate) struct Hosts {
    hosts: Mutex<HashMap<String, Host>>,
    /// Attempts in a row without an answer that open the breaker.
    trip_after: u32,
    first_open: Duration,
    max_open: Duration,
}

impl Hosts {
    pub(crate) fn new(trip_after: u32, first_open: Duration, max_open: Duration) -> Hosts {
        Hosts {
            hosts: Mutex::new(HashMap::new()),
            trip_after: trip_after.max(1),
            first_open,
            max_open,
        }
    }

    pub(crate) fn admit(&self, host: &str) -> Admit {
        let mut hosts = self.hosts.lock();
        let h = hosts.entry(host.to_string()).or_default();
        let now = Instant::now();
        if let Some(until) = h.open_until {
            if now < until {
                return Admit::Open(until - now);
            }
            // Half-open: one probe at a time.
            if h.probing {
                return Admit::Busy;
            }
            h.probing = true;
            h.in_flight += 1;
            return Admit::Send;
        }
        if h.in_flight >= PER_HOST {
            return Admit::Busy;
        }
        h.in_flight += 1;
        Admit::Send
    }

    /// Records how a sent attempt went; true when a receiver that was failing answered again (its pending rows
    /// should be made due).
    pub(crate) fn done(&self, host: &str, answer: Answer) -> bool {
        let mut hosts = self.hosts.lock();
        let Some(h) = hosts.get_mut(host) else {
            return false;
        };
        h.in_flight = h.in_flight.saturating_sub(1);
        h.probing = false;
        match answer {
            Answer::Answered => {
                let recovered = h.silent > 0 || h.open_until.is_some();
                h.silent = 0;
                h.open_until = None;
                h.open_for = Duration::ZERO;
                recovered
            }
            Answer::Silent => {
                h.silent += 1;
                if h.silent >= self.trip_after {
                    h.open_for = if h.open_for.is_zero() {
                        self.first_open
                    } else {
                        (h.open_for * 2).min(self.max_open)
                    };
                    h.open_until = Some(Instant::now() + h.open_for);
                }
                false
            }
        }
    }

    /// Forgets hosts with nothing in flight and a closed breaker (bounded memory).
    /// Gives back a slot that [`Hosts::admit`] gave, for a row that is not sent after all (another node of the
    /// cluster claimed it).
    pub(crate) fn release(&self, host: &str) {
        if let Some(h) = self.hosts.lock().get_mut(host) {
            h.in_flight = h.in_flight.saturating_sub(1);
            h.probing = false;
        }
    }

    pub(crate) fn tidy(&self) {
        self.hosts
            .lock()
            .retain(|_, h| h.in_flight > 0 || h.open_until.is_some() || h.silent > 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn slots_breaker_probe_and_recovery() {
        let hosts = Hosts::new(3, Duration::from_secs(10), Duration::from_secs(60));
        for _ in 0..PER_HOST {
            assert_eq!(hosts.admit("slow:80"), Admit::Send);
        }
        assert_eq!(hosts.admit("slow:80"), Admit::Busy, "all slots in use");
        assert_eq!(
            hosts.admit("fast:80"),
            Admit::Send,
            "another host is not affected"
        );
        for _ in 0..3 {
            assert!(!hosts.done("slow:80", Answer::Silent));
        }
        assert_eq!(hosts.admit("slow:80"), Admit::Open(Duration::from_secs(10)));
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(hosts.admit("slow:80"), Admit::Send, "half-open: one probe");
        assert_eq!(hosts.admit("slow:80"), Admit::Busy, "only one");
        assert!(!hosts.done("slow:80", Answer::Silent));
        assert_eq!(
            hosts.admit("slow:80"),
            Admit::Open(Duration::from_secs(20)),
            "open twice as long"
        );
        tokio::time::advance(Duration::from_secs(20)).await;
        assert_eq!(hosts.admit("slow:80"), Admit::Send);
        assert!(hosts.done("slow:80", Answer::Answered), "recovered");
        assert_eq!(hosts.admit("slow:80"), Admit::Send);
    }
}
