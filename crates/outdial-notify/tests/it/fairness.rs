//! Fair delivery per receiver (docs/operations.md, "Notifications"): a receiver that never answers, with 400
//! notifications pending for it, does not delay another receiver's notifications by more than 100 ms (p99); it never
//! has more than `PER_HOST` requests in flight; when it answers again, its backlog is delivered at once.

use crate::delivery::{queue, store};
use axum::Router;
use axum::routing::post;
use outdial_core::time::now_ms;
use outdial_notify::{NetworkPolicy, Notifier, PER_HOST, Purpose, Settings};
use outdial_store::OutboxStatus;
use parking_lot::Mutex;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// A receiver that hangs (holds every request) until `answer` is set; when each request started.
struct Hanging {
    url: String,
    answer: Arc<AtomicBool>,
    started: Arc<Mutex<Vec<tokio::time::Instant>>>,
}

async fn hanging() -> Hanging {
    let answer = Arc::new(AtomicBool::new(false));
    let started: Arc<Mutex<Vec<tokio::time::Instant>>> = Arc::default();
    let (a, st) = (answer.clone(), started.clone());
    let app = Router::new().route(
        "/notify",
        post(move || {
            let (a, st) = (a.clone(), st.clone());
            async move {
                st.lock().push(tokio::time::Instant::now());
                if !a.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                }
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/notify", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Hanging { url, answer, started }
}

/// A healthy receiver on another host (127.0.0.2): when each notification arrived (Unix ms), by conversation.
async fn healthy() -> (String, Arc<Mutex<Vec<(String, i64)>>>) {
    let got: Arc<Mutex<Vec<(String, i64)>>> = Arc::default();
    let g = got.clone();
    let app = Router::new().route(
        "/notify",
        post(move |body: String| {
            let g = g.clone();
            async move {
                let v: serde_json::Value = serde_json::from_str(&body).unwrap();
                g.lock()
                    .push((v["conversationId"].as_str().unwrap().to_string(), now_ms()));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.2:0").await.unwrap();
    let url = format!("http://{}/notify", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_never_answers_does_not_delay_the_others() {
    let s = store().await;
    let slow = hanging().await;
    let (fast_url, arrivals) = healthy().await;
    let mut backlog = Vec::new();
    for _ in 0..400 {
        backlog.push(queue(&s, &slow.url, 1, None).await.0.id);
    }
    let settings = Settings {
        timeout: Duration::from_secs(1),
        max_attempts: 100,
        retry_base: Duration::from_millis(200),
        max_delay: Duration::from_secs(3),
        poll: Duration::from_millis(500),
        breaker_after: 5,
        breaker_open: Duration::from_secs(1),
    };
    let notifier = Notifier::new(
        s.clone(),
        NetworkPolicy::built_in(Purpose::Notifications),
        settings,
    )
    .unwrap();
    let worker = tokio::spawn(notifier.clone().run());
    tokio::time::sleep(Duration::from_millis(300)).await;

    // 60 notifications for the healthy receiver while the other one hangs, each queued as the engine does: the
    // row is written, then the worker is woken.
    let mut created = Vec::new();
    for _ in 0..60 {
        let (c, rows) = queue(&s, &fast_url, 1, None).await;
        notifier.wake();
        created.push((c.id.to_string(), rows[0].created_at));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for _ in 0..100 {
        if arrivals.lock().len() >= 60 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = arrivals.lock().clone();
    assert_eq!(
        got.len(),
        60,
        "every notification of the healthy receiver arrived"
    );
    let mut delays: Vec<i64> = created
        .iter()
        .map(|(id, at)| got.iter().find(|(g, _)| g == id).unwrap().1 - at)
        .collect();
    delays.sort_unstable();
    let p99 = delays[(delays.len() * 99).div_ceil(100) - 1];
    let median = delays[delays.len() / 2];
    println!(
        "healthy receiver delay: median {median} ms, p99 {p99} ms, max {} ms",
        delays[delays.len() - 1]
    );
    assert!(p99 <= 100, "p99 {p99} ms: {delays:?}");
    // Each request to the hanging receiver stays in flight for the 1 s timeout: no 0.9 s window may hold more than
    // PER_HOST of their starts.
    let starts = slow.started.lock().clone();
    let most = starts
        .iter()
        .map(|t| {
            starts
                .iter()
                .filter(|u| **u >= *t && **u - *t < Duration::from_millis(900))
                .count()
        })
        .max()
        .unwrap_or(0);
    assert!(
        !starts.is_empty() && most <= PER_HOST,
        "{most} requests in flight at once (at most {PER_HOST})"
    );

    // The receiver comes back: its backlog is delivered at once, not at the pace of its backoff.
    slow.answer.store(true, Ordering::SeqCst);
    let back = tokio::time::Instant::now();
    let mut delivered = 0;
    for _ in 0..200 {
        delivered = 0;
        for id in &backlog {
            if s.notifications(*id).await.unwrap()[0].status == OutboxStatus::Delivered {
                delivered += 1;
            }
        }
        if delivered == backlog.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took = back.elapsed();
    println!("backlog of 400 delivered {took:?} after the receiver came back");
    assert_eq!(delivered, 400, "the whole backlog was delivered");
    // The breaker half-opens within 3 s (its longest open time here); then everything is due at once.
    assert!(took < Duration::from_secs(10), "took {took:?}");
    worker.abort();
}
