//! Delivery of status notifications (docs/api.md, "Status notifications") from the store's outbox.
//!
//! The call engine writes a notification into the outbox in the same transaction as the state change that
//! causes it; [`Notifier::run`] delivers what is due: at least once, a conversation's notifications in order
//! (the store hands out only the lowest pending sequence of each conversation), retried with exponential
//! backoff and jitter on timeouts, connection errors, 429 and 5xx, never on other answers. Every attempt is
//! recorded on the conversation's timeline. Rows survive restarts: a notification written before a crash is
//! delivered by the next run.

mod hosts;
mod recent;
mod sign;

pub use hosts::PER_HOST;
pub use outdial_net::{NetworkPolicy, Purpose, Refused};
pub use sign::signature;

use hosts::{Admit, Answer, Hosts};

use outdial_core::time::now_ms;
use outdial_store::{OutboxRow, OutboxStatus, Store};
use parking_lot::Mutex;
use serde_json::json;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct Settings {
    /// Per request.
    pub timeout: Duration,
    /// Attempts before giving up.
    pub max_attempts: u32,
    /// First retry delay; doubles with each attempt (with jitter), capped at `max_delay`.
    pub retry_base: Duration,
    pub max_delay: Duration,
    /// How often the outbox is checked when nothing wakes the worker.
    pub poll: Duration,
    /// Attempts in a row without an answer (timeouts, refused connections) that open a receiver's breaker.
    pub breaker_after: u32,
    /// How long a breaker first stays open; doubles each time the probe fails, up to `max_delay`.
    pub breaker_open: Duration,
}

impl Settings {
    /// How long a node's claim on a notification lasts (docs/cluster.md): two attempts' timeouts and some room;
    /// a node that dies while sending leaves the row to the others after it.
    pub fn claim_lease(&self) -> Duration {
        self.timeout * 2 + Duration::from_secs(5)
    }
}

impl Default for Settings {
    /// 10 attempts over about an hour (7 s · (2⁹ − 1) ≈ 60 min), 10 s timeout.
    fn default() -> Self {
        Settings {
            timeout: Duration::from_secs(10),
            max_attempts: 10,
            retry_base: Duration::from_secs(7),
            max_delay: Duration::from_secs(30 * 60),
            poll: Duration::from_millis(500),
            breaker_after: 5,
            breaker_open: Duration::from_secs(10),
        }
    }
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Delivered(u16),
    /// Worth another try (timeout, connection error, 429, 5xx); the receiver may have said when.
    Retry {
        error: String,
        status: Option<u16>,
        after: Option<Duration>,
    },
    /// Not worth another try (other 4xx, 3xx, refused by the network policy, bad URL).
    GiveUp {
        error: String,
        status: Option<u16>,
    },
}

/// After a wake-up, how long the outbox read waits for more rows to come. Under load every call writes its
/// notifications a few milliseconds apart; reading the outbox once per write (and once per finished attempt) was
/// most of the store's work at 500 calls/s. Adds at most this much to a notification's lag.
const GATHER: Duration = Duration::from_millis(5);

pub struct Notifier {
    store: Arc<dyn Store>,
    /// docs/security.md: every notification passes the `[notifications]` network policy.
    client: outdial_net::Guarded,
    settings: Settings,
    /// Slots and breakers per receiver host.
    hosts: Hosts,
    wake: Arc<Notify>,
    in_flight: Mutex<HashSet<Uuid>>,
    /// When each recent attempt was recorded: a row read before that moment is stale and is skipped, so a
    /// notification is not sent twice because a read raced with the record of its delivery.
    finished: Mutex<recent::Recent>,
}

impl Notifier {
    pub fn new(
        store: Arc<dyn Store>,
        policy: NetworkPolicy,
        settings: Settings,
    ) -> Result<Arc<Notifier>, reqwest::Error> {
        let client = outdial_net::Guarded::new(policy, settings.timeout, settings.timeout)?;
        Ok(Arc::new(Notifier {
            store,
            client,
            hosts: Hosts::new(settings.breaker_after, settings.breaker_open, settings.max_delay),
            settings,
            wake: Arc::new(Notify::new()),
            in_flight: Mutex::new(HashSet::new()),
            finished: Mutex::new(recent::Recent::default()),
        }))
    }

    /// Call after writing outbox rows, so they go out without waiting for the next poll.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Delivers due notifications until the task is dropped.
    pub async fn run(self: Arc<Self>) {
        loop {
            let read_at = Instant::now();
            match self.store.due_notifications(now_ms(), 256, PER_HOST as u32).await {
                Ok(rows) => {
                    self.finished.lock().expire(read_at);
                    self.hosts.tidy();
                    let mut chosen = Vec::new();
                    for row in rows {
                        if self
                            .finished
                            .lock()
                            .get(&row.event_id)
                            .is_some_and(|at| at >= read_at)
                        {
                            continue;
                        }
                        if self.in_flight.lock().contains(&row.event_id) {
                            continue;
                        }
                        let host = outdial_store::receiver_host(&row.url);
                        let admit = self.hosts.admit(&host);
                        if admit == Admit::Busy {
                            continue;
                        }
                        chosen.push((row, host, admit));
                    }
                    // docs/cluster.md: a row goes out from the node that claims it; the others leave it.
                    let claimed = self.claim(&chosen).await;
                    for (row, host, admit) in chosen {
                        if !claimed.contains(&row.event_id) {
                            if admit == Admit::Send {
                                self.hosts.release(&host);
                            }
                            continue;
                        }
                        self.in_flight.lock().insert(row.event_id);
                        let me = self.clone();
                        tokio::spawn(async move {
                            let id = row.event_id;
                            match admit {
                                Admit::Open(wait) => me.hold(row, &host, wait).await,
                                _ => me.attempt(row, &host).await,
                            }
                            me.finished.lock().insert(id, Instant::now());
                            me.in_flight.lock().remove(&id);
                            me.wake.notify_one();
                        });
                    }
                }
                Err(e) => tracing::warn!("cannot read the notification outbox: {e}"),
            }
            tokio::select! {
                // The rows written meanwhile are read together: one read of the outbox serves many calls' writes.
                _ = self.wake.notified() => tokio::time::sleep(GATHER).await,
                _ = tokio::time::sleep(self.settings.poll) => {}
            }
        }
    }

    /// Claims the chosen rows for this node for [`Settings::claim_lease`]; none when the store fails.
    async fn claim(&self, chosen: &[(OutboxRow, String, Admit)]) -> HashSet<Uuid> {
        if chosen.is_empty() {
            return HashSet::new();
        }
        let ids: Vec<Uuid> = chosen.iter().map(|(r, ..)| r.event_id).collect();
        let now = now_ms();
        let until = now + self.settings.claim_lease().as_millis() as i64;
        match self.store.claim_notifications(&ids, now, until).await {
            Ok(got) => got.into_iter().collect(),
            Err(e) => {
                tracing::warn!("cannot claim notifications: {e}");
                HashSet::new()
            }
        }
    }

    /// One attempt at one row, and its record; a receiver that answers again after failing gets its pending rows
    /// made due at once.
    async fn attempt(&self, row: OutboxRow, host: &str) {
        let outcome = self.send(&row).await;
        let answer = match &outcome {
            Outcome::Retry { status: None, .. } => Answer::Silent,
            _ => Answer::Answered,
        };
        self.record(row, outcome).await;
        if self.hosts.done(host, answer) {
            match self.store.hurry_host(host, now_ms()).await {
                Ok(n) => tracing::info!(
                    "notification receiver {host} answers again: {n} pending notifications are due now"
                ),
                Err(e) => tracing::warn!("cannot hurry the notifications of {host}: {e}"),
            }
        }
    }

    /// A row of a receiver whose breaker is open: not sent; recorded as an attempt that waits for the breaker.
    async fn hold(&self, row: OutboxRow, host: &str, wait: Duration) {
        let outcome = Outcome::Retry {
            error: format!(
                "not sent: {host} did not answer {} attempts in a row (next try in {} s)",
                self.settings.breaker_after,
                wait.as_secs().max(1)
            ),
            status: None,
            after: Some(wait),
        };
        self.record(row, outcome).await;
    }

    /// Records an attempt's outcome: the row's new state and the conversation's timeline.
    async fn record(&self, mut row: OutboxRow, outcome: Outcome) {
        let now = now_ms();
        row.attempts += 1;
        let (status, error) = match &outcome {
            Outcome::Delivered(s) => (Some(*s), None),
            Outcome::Retry { error, status, .. } | Outcome::GiveUp { error, status } => {
                (*status, Some(error.clone()))
            }
        };
        match &outcome {
            Outcome::Delivered(_) => {
                row.status = OutboxStatus::Delivered;
                row.delivered_at = Some(now);
                metrics::histogram!("outdial_notification_lag_seconds")
                    .record((now - row.created_at) as f64 / 1000.0);
            }
            Outcome::Retry { after, .. } if (row.attempts as u32) < self.settings.max_attempts => {
                let delay = self.backoff(row.attempts as u32).max(after.unwrap_or_default());
                row.next_attempt_at = now + delay.as_millis() as i64;
            }
            // Not retryable, or out of attempts.
            Outcome::Retry { .. } | Outcome::GiveUp { .. } => {
                row.status = OutboxStatus::Failed;
                metrics::counter!("outdial_notifications_failed_total").increment(1);
            }
        }
        let result = match row.status {
            OutboxStatus::Delivered => "delivered",
            OutboxStatus::Pending => "retry",
            OutboxStatus::Failed => "failed",
        };
        row.last_error = error.clone();
        metrics::counter!("outdial_notification_attempts_total", "result" => result).increment(1);
        let mut event = json!({"eventId": row.event_id, "sequence": row.sequence, "attempt": row.attempts, "result": result});
        if let Some(s) = status {
            event["httpStatus"] = json!(s);
        }
        if let Some(e) = &error {
            event["error"] = json!(e);
        }
        if row.status == OutboxStatus::Pending {
            event["nextAttemptAt"] = json!(outdial_core::time::iso(row.next_attempt_at));
        }
        match result {
            "delivered" => {
                tracing::debug!(conversation = %row.conversation_id, sequence = row.sequence, "notification delivered")
            }
            "retry" => {
                tracing::info!(conversation = %row.conversation_id, sequence = row.sequence, attempt = row.attempts, "notification will be retried: {}", error.as_deref().unwrap_or(""))
            }
            _ => {
                tracing::warn!(conversation = %row.conversation_id, sequence = row.sequence, attempt = row.attempts, "notification given up: {}", error.as_deref().unwrap_or(""))
            }
        }
        if let Err(e) = self.store.record_attempt(&row, &event).await {
            // The row stays as it was: it will be tried again (at least once).
            tracing::error!(conversation = %row.conversation_id, "cannot record a notification attempt: {e}");
        }
    }

    fn backoff(&self, attempts: u32) -> Duration {
        let exp = self
            .settings
            .retry_base
            .saturating_mul(1u32 << attempts.saturating_sub(1).min(20));
        let capped = exp.min(self.settings.max_delay);
        // Jitter: 50–100 % of the step, so receivers that come back are not hit by every gateway at once.
        capped.mul_f64(0.5 + rand::random::<f64>() / 2.0)
    }

    /// Sends one notification.
    pub async fn send(&self, row: &OutboxRow) -> Outcome {
        let give_up = |error: String| Outcome::GiveUp { error, status: None };
        let url = match url::Url::parse(&row.url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => u,
            _ => return give_up(format!("notifyUrl '{}' is not an http(s) URL", row.url)),
        };
        let mut req = match self.client.request(reqwest::Method::POST, url) {
            Ok(r) => r,
            Err(e) => return give_up(e.to_string()),
        };
        req = req
            .header("content-type", "application/json")
            .header("x-outdial-event-id", row.event_id.to_string())
            .body(row.body.clone());
        if let Some(secret) = &row.secret {
            req = req.header(
                "x-outdial-signature",
                signature(secret, now_ms() / 1000, &row.body),
            );
        }
        match req.send().await {
            Ok(resp) => {
                let s = resp.status();
                let code = s.as_u16();
                if s.is_success() {
                    Outcome::Delivered(code)
                } else if code == 429 || s.is_server_error() {
                    let after = resp
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| retry_after(v, std::time::SystemTime::now()));
                    Outcome::Retry {
                        error: format!("receiver answered {s}"),
                        status: Some(code),
                        after,
                    }
                } else {
                    Outcome::GiveUp {
                        error: format!("receiver answered {s}; not retried"),
                        status: Some(code),
                    }
                }
            }
            Err(e) => {
                if let Some(r) = outdial_net::refusal(&e) {
                    give_up(r.to_string())
                } else if e.is_timeout() {
                    Outcome::Retry {
                        error: format!("no answer within {} s", self.settings.timeout.as_secs_f64()),
                        status: None,
                        after: None,
                    }
                } else {
                    Outcome::Retry {
                        error: format!("cannot reach the receiver: {}", root_cause(&e)),
                        status: None,
                        after: None,
                    }
                }
            }
        }
    }
}

fn root_cause(e: &dyn std::error::Error) -> String {
    let mut last = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        last = s.to_string();
        cur = s.source();
    }
    last
}

/// A `Retry-After` value (RFC 9110 §10.2.3): whole seconds, or an HTTP-date (IMF-fixdate, or the obsolete RFC 850
/// and asctime forms), as the wait from `now`; a date in the past is no wait. At most an hour.
pub fn retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let v = value.trim();
    let wait = match v.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => {
            let at = httpdate::parse_http_date(v).ok()?;
            at.duration_since(now).unwrap_or(Duration::ZERO)
        }
    };
    Some(wait.min(Duration::from_secs(3600)))
}

#[cfg(test)]
mod retry_after_tests {
    use super::retry_after;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    #[test]
    fn both_forms_of_retry_after_are_honoured() {
        // Sun, 06 Nov 1994 08:49:37 GMT, RFC 9110's example.
        let date = UNIX_EPOCH + Duration::from_secs(784_111_777);
        let now = date - Duration::from_secs(120);
        assert_eq!(retry_after("5", now), Some(Duration::from_secs(5)));
        assert_eq!(retry_after(" 7 ", now), Some(Duration::from_secs(7)));
        for form in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            assert_eq!(retry_after(form, now), Some(Duration::from_secs(120)), "{form}");
        }
        assert_eq!(
            retry_after("Sun, 06 Nov 1994 08:49:37 GMT", date + Duration::from_secs(9)),
            Some(Duration::ZERO)
        );
        assert_eq!(
            retry_after("99999", SystemTime::now()),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(retry_after("soon", now), None);
        assert_eq!(retry_after("-3", now), None);
    }
}
