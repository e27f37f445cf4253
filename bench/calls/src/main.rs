//! `outdial-bench-calls BASE_URL CLIENT SECRET BOT RATE SECONDS`: posts dialouts at RATE per second for SECONDS
//! (each with a notifyUrl on a receiver of its own), waits for every conversation's terminal notification and
//! prints what arrived: achieved call rate, lost notifications, dialout→answered latency percentiles.
//! With `CALLS_TIMELINE=FILE` it also writes each call's line to FILE (for a tail's diagnosis): when its dialout
//! was sent (ms after the first), how long the API took to accept it, and dialout→answered (ms; empty if never).
#![allow(clippy::print_stdout)]

use axum::Router;
use axum::routing::post;
use parking_lot::Mutex;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

#[derive(Default)]
struct Seen {
    accepted: HashMap<String, Instant>,
    /// When the API's answer to each accepted dialout came.
    responded: HashMap<String, Instant>,
    answered: HashMap<String, Instant>,
    terminal: HashMap<String, String>,
    notifications: u64,
    /// Arrival minus the notification's `timestamp` (written with the state change), in ms.
    lag_ms: Vec<f64>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, base, client, secret, bot, rate, seconds] = args.as_slice() else {
        anyhow::bail!("usage: outdial-bench-calls BASE_URL CLIENT SECRET BOT RATE SECONDS");
    };
    let rate: f64 = rate.parse()?;
    let seconds: f64 = seconds.parse()?;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let notify_url = format!("http://{}/n", listener.local_addr()?);
    let s = seen.clone();
    let app = Router::new().route(
        "/n",
        post(move |body: String| {
            let s = s.clone();
            async move {
                let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                let id = v["conversationId"].as_str().unwrap_or_default().to_string();
                let mut s = s.lock();
                s.notifications += 1;
                if let Some(ts) = v["timestamp"]
                    .as_str()
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                {
                    let lag = chrono::Utc::now()
                        .signed_duration_since(ts)
                        .num_microseconds()
                        .unwrap_or(0) as f64
                        / 1000.0;
                    s.lag_ms.push(lag);
                }
                match v["status"].as_str() {
                    Some("answered") => {
                        s.answered.insert(id, Instant::now());
                    }
                    Some(st @ ("completed" | "failed")) => {
                        let rc = v["reasonCode"].as_str().unwrap_or("");
                        s.terminal.insert(id, format!("{st}/{rc}"));
                    }
                    _ => {}
                }
                "ok"
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });

    let http = reqwest::Client::builder().pool_max_idle_per_host(256).build()?;
    let url = format!("{base}/api/v1/actions/dialout");
    let total = (rate * seconds).round() as u64;
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let refused = Arc::new(Mutex::new(HashMap::<u16, u64>::new()));
    let mut tasks = Vec::new();
    for _ in 0..total {
        tick.tick().await;
        let (http, url, seen, refused) = (http.clone(), url.clone(), seen.clone(), refused.clone());
        let body = json!({"bot": bot, "target": "tel:+15550100", "caller": "1000", "notifyUrl": notify_url, "answerTimeoutSec": 10});
        let (client, secret) = (client.clone(), secret.clone());
        tasks.push(tokio::spawn(async move {
            let t0 = Instant::now();
            match http
                .post(&url)
                .basic_auth(client, Some(secret))
                .json(&body)
                .send()
                .await
            {
                Ok(r) if r.status().is_success() => {
                    if let Ok(v) = r.json::<Value>().await
                        && let Some(id) = v["conversationId"].as_str()
                    {
                        let mut s = seen.lock();
                        s.accepted.insert(id.to_string(), t0);
                        s.responded.insert(id.to_string(), Instant::now());
                    }
                }
                Ok(r) => *refused.lock().entry(r.status().as_u16()).or_default() += 1,
                Err(_) => *refused.lock().entry(0).or_default() += 1,
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let sending = started.elapsed();
    // Wait for every accepted conversation's terminal notification (bounded).
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let done = {
            let s = seen.lock();
            s.accepted.keys().all(|id| s.terminal.contains_key(id))
        };
        if done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let s = seen.lock();
    if let Ok(path) = std::env::var("CALLS_TIMELINE") {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let mut lines: Vec<(f64, String)> = s
            .accepted
            .iter()
            .map(|(id, t0)| {
                let sent = ms(*t0 - started);
                let api = s.responded.get(id).map(|t| ms(*t - *t0)).unwrap_or(f64::NAN);
                let answered = s
                    .answered
                    .get(id)
                    .map(|t| format!("{:.1}", ms(*t - *t0)))
                    .unwrap_or_default();
                (sent, format!("{sent:.1} {api:.1} {answered} {id}"))
            })
            .collect();
        lines.sort_by(|a, b| a.0.total_cmp(&b.0));
        let text: Vec<String> = lines.into_iter().map(|(_, l)| l).collect();
        std::fs::write(&path, text.join("\n") + "\n")?;
    }
    let mut setup: Vec<f64> = s
        .accepted
        .iter()
        .filter_map(|(id, t0)| s.answered.get(id).map(|t| (*t - *t0).as_secs_f64() * 1000.0))
        .collect();
    setup.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        setup
            .get(((setup.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    let mut outcomes: HashMap<&str, u64> = HashMap::new();
    for v in s.terminal.values() {
        *outcomes.entry(v.as_str()).or_default() += 1;
    }
    let missing = s
        .accepted
        .keys()
        .filter(|id| !s.terminal.contains_key(*id))
        .count();
    println!(
        "target {rate}/s for {seconds} s: {} dialouts sent in {:.2} s ({:.0}/s)",
        total,
        sending.as_secs_f64(),
        total as f64 / sending.as_secs_f64()
    );
    println!("accepted {}, refused {:?}", s.accepted.len(), refused.lock());
    println!(
        "answered notifications {}, terminal notifications {}, missing terminal {missing}",
        s.answered.len(),
        s.terminal.len()
    );
    println!(
        "outcomes {outcomes:?}; notifications received {}",
        s.notifications
    );
    println!(
        "dialout→answered ms: p50 {:.1}, p90 {:.1}, p99 {:.1}, max {:.1}",
        pct(0.5),
        pct(0.9),
        pct(0.99),
        pct(1.0)
    );
    let mut lag = s.lag_ms.clone();
    lag.sort_by(f64::total_cmp);
    let lp = |p: f64| {
        lag.get(((lag.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    println!(
        "notification lag ms (state change → received): p50 {:.1}, p90 {:.1}, p99 {:.1}, max {:.1}",
        lp(0.5),
        lp(0.9),
        lp(0.99),
        lp(1.0)
    );
    Ok(())
}
