//! Delivery against a real HTTP receiver on 127.0.0.1 and a real SQLite store: retries, order, no retry on
//! 4xx, timeouts, signatures, network policy, giving up.

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use outdial_core::conversation::{Conversation, ConversationState};
use outdial_core::dialout::DialoutRequest;
use outdial_core::time::now_ms;
use outdial_notify::{NetworkPolicy, Notifier, Purpose, Settings, signature};
use outdial_store::{OutboxRow, OutboxStatus, SqlStore, Store};
use parking_lot::Mutex;
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// What the receiver does with the next request: answer this status after this delay.
type Script = Arc<Mutex<VecDeque<(u16, u64)>>>;

#[derive(Clone, Debug)]
struct Received {
    headers: HeaderMap,
    body: Value,
}

struct Receiver {
    addr: SocketAddr,
    got: Arc<Mutex<Vec<Received>>>,
    script: Script,
    task: tokio::task::JoinHandle<()>,
}

async fn receiver_on(listener: tokio::net::TcpListener, script: Vec<(u16, u64)>) -> Receiver {
    let addr = listener.local_addr().unwrap();
    let got: Arc<Mutex<Vec<Received>>> = Arc::default();
    let script: Script = Arc::new(Mutex::new(script.into()));
    let (g, s) = (got.clone(), script.clone());
    let app = Router::new().route(
        "/notify",
        post(move |headers: HeaderMap, body: String| {
            let (g, s) = (g.clone(), s.clone());
            async move {
                g.lock().push(Received {
                    headers,
                    body: serde_json::from_str(&body).unwrap(),
                });
                let (status, delay) = s.lock().pop_front().unwrap_or((200, 0));
                tokio::time::sleep(Duration::from_millis(delay)).await;
                let mut r =
                    axum::response::IntoResponse::into_response(StatusCode::from_u16(status).unwrap());
                if status == 429 {
                    r.headers_mut().insert("retry-after", "1".parse().unwrap());
                }
                r
            }
        }),
    );
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Receiver {
        addr,
        got,
        script,
        task,
    }
}

async fn receiver(script: Vec<(u16, u64)>) -> Receiver {
    receiver_on(
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        script,
    )
    .await
}

fn fast() -> Settings {
    Settings {
        timeout: Duration::from_millis(500),
        max_attempts: 4,
        retry_base: Duration::from_millis(100),
        max_delay: Duration::from_secs(2),
        poll: Duration::from_millis(50),
        // Out of the way of these tests; fairness.rs tests the breaker.
        breaker_after: 1000,
        breaker_open: Duration::from_secs(1),
    }
}

pub(crate) async fn store() -> Arc<dyn Store> {
    let dir = std::env::temp_dir().join(format!("outdial-notify-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    Arc::new(
        SqlStore::connect(&format!("sqlite://{}/n.db", dir.display()))
            .await
            .unwrap(),
    )
}

/// A conversation with `n` notifications to `url` in the outbox.
pub(crate) async fn queue(
    store: &Arc<dyn Store>,
    url: &str,
    n: i64,
    secret: Option<&str>,
) -> (Conversation, Vec<OutboxRow>) {
    let req =
        DialoutRequest::parse(&json!({"bot": "B", "target": "tel:+1", "caller": "1", "notifyUrl": url}))
            .unwrap();
    let mut c = Conversation::new(Uuid::new_v4(), "app", req, now_ms());
    store.create_conversation(&c, None, 0).await.unwrap();
    let mut rows = Vec::new();
    for seq in 1..=n {
        c.state = if seq == n {
            ConversationState::Failed
        } else {
            ConversationState::Ringing
        };
        c.updated_at = now_ms();
        let status = if seq == n {
            outdial_core::ConversationStatus::Failed
        } else {
            outdial_core::ConversationStatus::Ringing
        };
        let row = OutboxRow {
            event_id: Uuid::new_v4(),
            conversation_id: c.id,
            sequence: seq,
            url: url.to_string(),
            body: c.notification(status, seq, now_ms()).to_string(),
            secret: secret.map(str::to_string),
            status: OutboxStatus::Pending,
            attempts: 0,
            next_attempt_at: now_ms(),
            last_error: None,
            created_at: now_ms(),
            delivered_at: None,
        };
        store
            .transition(&c, c.state.as_str(), &json!({}), std::slice::from_ref(&row))
            .await
            .unwrap();
        rows.push(row);
    }
    (c, rows)
}

async fn settled(store: &Arc<dyn Store>, id: Uuid, n: usize) -> Vec<OutboxRow> {
    for _ in 0..200 {
        let rows = store.notifications(id).await.unwrap();
        if rows.len() == n && rows.iter().all(|r| r.status != OutboxStatus::Pending) {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("not settled: {:?}", store.notifications(id).await.unwrap());
}

fn start(store: &Arc<dyn Store>, policy: NetworkPolicy, settings: Settings) -> tokio::task::JoinHandle<()> {
    let n = Notifier::new(store.clone(), policy, settings).unwrap();
    tokio::spawn(n.run())
}

#[tokio::test]
async fn delivered_with_event_id_sequence_and_a_verifiable_signature() {
    let s = store().await;
    let r = receiver(vec![]).await;
    let url = format!("http://{}/notify", r.addr);
    let (c, rows) = queue(&s, &url, 2, Some("0123456789abcdef-secret")).await;
    let w = start(&s, NetworkPolicy::built_in(Purpose::Notifications), fast());
    let done = settled(&s, c.id, 2).await;
    assert!(
        done.iter()
            .all(|r| r.status == OutboxStatus::Delivered && r.attempts == 1)
    );
    let got = r.got.lock().clone();
    assert_eq!(got.len(), 2);
    for (g, row) in got.iter().zip(&rows) {
        assert_eq!(g.headers["x-outdial-event-id"], row.event_id.to_string().as_str());
        assert!(
            g.headers.get("authorization").is_none(),
            "no Authorization header, as the seed"
        );
        assert_eq!(g.body["sequence"], row.sequence);
        // The receiver's check: recompute the HMAC over "<t>.<body>".
        let sig = g.headers["x-outdial-signature"].to_str().unwrap();
        let t: i64 = sig
            .strip_prefix("t=")
            .unwrap()
            .split(',')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!((now_ms() / 1000 - t).abs() < 5);
        assert_eq!(sig, signature("0123456789abcdef-secret", t, &row.body));
    }
    assert_eq!(got[1].body["status"], "failed");
    let events = s.events(c.id).await.unwrap();
    let delivered: Vec<&Value> = events
        .iter()
        .filter(|e| e.kind == "notification")
        .map(|e| &e.data)
        .collect();
    assert_eq!(delivered.len(), 2);
    assert_eq!(delivered[0]["result"], "delivered");
    assert_eq!(delivered[0]["httpStatus"], 200);
    w.abort();
}

#[tokio::test]
async fn receiver_down_then_up_gets_everything_in_order() {
    let s = store().await;
    // Reserve a port, then close it: the receiver is down.
    let port = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/notify");
    let (c, _) = queue(&s, &url, 3, None).await;
    let w = start(
        &s,
        NetworkPolicy::built_in(Purpose::Notifications),
        Settings {
            max_attempts: 10,
            ..fast()
        },
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    let pending = s.notifications(c.id).await.unwrap();
    assert!(
        pending[0].attempts >= 1 && pending[0].status == OutboxStatus::Pending,
        "{pending:?}"
    );
    assert_eq!(pending[1].attempts, 0, "the second waits for the first");
    assert!(
        pending[0]
            .last_error
            .as_deref()
            .unwrap()
            .starts_with("cannot reach the receiver"),
        "{pending:?}"
    );
    let r = receiver_on(
        tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap(),
        vec![],
    )
    .await;
    settled(&s, c.id, 3).await;
    let seqs: Vec<i64> = r
        .got
        .lock()
        .iter()
        .map(|g| g.body["sequence"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, [1, 2, 3]);
    w.abort();
}

#[tokio::test]
async fn server_errors_and_429_are_retried_other_4xx_are_not() {
    let s = store().await;
    let r = receiver(vec![(500, 0), (429, 0), (200, 0), (400, 0)]).await;
    let url = format!("http://{}/notify", r.addr);
    let (c, _) = queue(&s, &url, 2, None).await;
    let w = start(&s, NetworkPolicy::built_in(Purpose::Notifications), fast());
    let rows = settled(&s, c.id, 2).await;
    assert_eq!((rows[0].status, rows[0].attempts), (OutboxStatus::Delivered, 3));
    assert_eq!((rows[1].status, rows[1].attempts), (OutboxStatus::Failed, 1));
    assert_eq!(
        rows[1].last_error.as_deref(),
        Some("receiver answered 400 Bad Request; not retried")
    );
    let events = s.events(c.id).await.unwrap();
    // 429's Retry-After: 1 was honoured: the attempt after it was scheduled at least 1 s later.
    let after_429 = events.iter().filter(|e| e.kind == "notification").nth(1).unwrap();
    assert_eq!(after_429.data["httpStatus"], 429);
    let next = outdial_core::time::parse_iso(after_429.data["nextAttemptAt"].as_str().unwrap()).unwrap();
    assert!(
        next - outdial_core::time::parse_iso(&after_429.at).unwrap() >= 950,
        "{after_429:?}"
    );
    let results: Vec<String> = events
        .iter()
        .filter(|e| e.kind == "notification")
        .map(|e| e.data["result"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(results, ["retry", "retry", "delivered", "failed"]);
    assert_eq!(r.got.lock().len(), 4, "the 400 was not retried");
    assert!(r.script.lock().is_empty());
    w.abort();
}

#[tokio::test]
async fn slow_receivers_time_out_and_are_retried_then_given_up() {
    let s = store().await;
    let r = receiver(vec![(200, 1500), (200, 0)]).await;
    let url = format!("http://{}/notify", r.addr);
    let (c, _) = queue(&s, &url, 1, None).await;
    let w = start(&s, NetworkPolicy::built_in(Purpose::Notifications), fast());
    let rows = settled(&s, c.id, 1).await;
    assert_eq!(
        (rows[0].status, rows[0].attempts),
        (OutboxStatus::Delivered, 2),
        "timed out once, then delivered"
    );
    let first = s
        .events(c.id)
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.kind == "notification")
        .unwrap();
    assert_eq!(first.data["error"], "no answer within 0.5 s");
    // A receiver that always fails is given up after max_attempts, and that is recorded.
    let always = receiver(vec![(503, 0); 10]).await;
    let (c2, _) = queue(&s, &format!("http://{}/notify", always.addr), 1, None).await;
    let rows = settled(&s, c2.id, 1).await;
    assert_eq!((rows[0].status, rows[0].attempts), (OutboxStatus::Failed, 4));
    assert_eq!(always.got.lock().len(), 4);
    w.abort();
    r.task.abort();
}

#[tokio::test]
async fn network_policy_refuses_without_connecting() {
    let s = store().await;
    let r = receiver(vec![]).await;
    let policy =
        NetworkPolicy::new(Purpose::Notifications, &["127.0.0.0/8".into(), "::1".into()], &[]).unwrap();
    let (c1, _) = queue(&s, "http://169.254.169.254/latest/meta-data", 1, None).await;
    let (c2, _) = queue(&s, &format!("http://localhost:{}/notify", r.addr.port()), 1, None).await;
    let (c3, _) = queue(&s, &format!("http://{}/notify", r.addr), 1, None).await;
    let w = start(&s, policy, fast());
    for (c, ip) in [(c1, "169.254.169.254"), (c2, "127.0.0.1"), (c3, "127.0.0.1")] {
        let rows = settled(&s, c.id, 1).await;
        assert_eq!((rows[0].status, rows[0].attempts), (OutboxStatus::Failed, 1));
        let err = rows[0].last_error.clone().unwrap();
        assert!(
            err.contains("refused by the notification network policy")
                && (err.contains(ip) || err.contains("::1")),
            "{err}"
        );
    }
    assert!(r.got.lock().is_empty(), "nothing reached the receiver");
    w.abort();
}

/// RFC 9110 §10.2.3: `Retry-After` may be an HTTP-date as well as seconds; both are honoured.
#[tokio::test]
async fn retry_after_as_an_http_date_is_honoured() {
    let s = store().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let calls = Arc::new(Mutex::new(0u32));
    let c2 = calls.clone();
    let app = Router::new().route(
        "/notify",
        post(move || {
            let c = c2.clone();
            async move {
                let mut n = c.lock();
                *n += 1;
                if *n == 1 {
                    let at = std::time::SystemTime::now() + Duration::from_secs(3);
                    let mut r = axum::response::IntoResponse::into_response(StatusCode::SERVICE_UNAVAILABLE);
                    r.headers_mut()
                        .insert("retry-after", httpdate::fmt_http_date(at).parse().unwrap());
                    r
                } else {
                    axum::response::IntoResponse::into_response(StatusCode::OK)
                }
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let (c, _) = queue(&s, &format!("http://{addr}/notify"), 1, None).await;
    let w = start(&s, NetworkPolicy::built_in(Purpose::Notifications), fast());
    let rows = settled(&s, c.id, 1).await;
    assert_eq!((rows[0].status, rows[0].attempts), (OutboxStatus::Delivered, 2));
    let events = s.events(c.id).await.unwrap();
    let first = events.iter().find(|e| e.kind == "notification").unwrap();
    assert_eq!(first.data["httpStatus"], 503);
    let next = outdial_core::time::parse_iso(first.data["nextAttemptAt"].as_str().unwrap()).unwrap();
    let waited = next - outdial_core::time::parse_iso(&first.at).unwrap();
    // The date is 3 s ahead and whole seconds: at least 2 s, where the backoff alone would wait about 100 ms.
    assert!(waited >= 2000, "retried after {waited} ms: {first:?}");
    w.abort();
}
