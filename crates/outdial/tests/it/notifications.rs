//! Status notifications from the real binary to a real HTTP receiver: content, signature, delivery status in
//! the record, survival of `kill -9`, recovery of conversations a crash left unfinished, SSRF refusal.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly.

use crate::common;

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::post;
use common::{ADMIN, BASIC, Gateway};
use parking_lot::Mutex;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

type Got = Arc<Mutex<Vec<(HeaderMap, Value)>>>;

async fn receiver(listener: tokio::net::TcpListener) -> Got {
    let got: Got = Arc::default();
    let g = got.clone();
    let app = Router::new().route(
        "/n",
        post(move |h: HeaderMap, body: String| {
            let g = g.clone();
            async move {
                g.lock().push((h, serde_json::from_str(&body).unwrap()));
                "ok"
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    got
}

async fn wait_for(got: &Got, n: usize) -> Vec<(HeaderMap, Value)> {
    for _ in 0..200 {
        if got.lock().len() >= n {
            return got.lock().clone();
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{} notifications arrived, expected {n}", got.lock().len());
}

async fn dial(g: &Gateway, who: (&str, &str), url: &str) -> String {
    let r = g
        .post(
            "/api/v1/actions/dialout",
            who,
            &json!({"bot": "Bot1", "target": "tel:+1", "caller": "1", "notifyUrl": url, "answerTimeoutSec": 1}),
        )
        .await;
    assert_eq!(r.status(), 200);
    r.json::<Value>().await.unwrap()["conversationId"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn the_terminal_notification_arrives_signed_and_is_recorded() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/n?token=dialer-secret", listener.local_addr().unwrap());
    let got = receiver(listener).await;
    let g = Gateway::start(BASIC).await;
    g.create("applications", json!({"clientId": "d", "clientSecret": "d-secret-1", "notifySecret": "0123456789abcdef-sig",
        "policies": [{"role": "VAIC/BOTS/DIALOUT", "scope": "*"}, {"role": "VAIC/CALLS/READ", "scope": "*"}]})).await;
    let id = dial(&g, ("d", "d-secret-1"), &url).await;
    let (headers, body) = wait_for(&got, 1).await.remove(0);
    assert_eq!(body["conversationId"], id.as_str());
    assert_eq!(body["status"], "failed");
    assert_eq!(body["reasonCode"], "no-answer");
    assert_eq!(body["reason"], "answer timeout after 1 s");
    assert_eq!(body["sequence"], 1);
    assert_eq!(body["hangupBy"], "system");
    assert!(outdial_core::time::parse_iso(body["timestamp"].as_str().unwrap()).is_some());
    assert!(body.get("connectTime").is_none(), "never answered");
    let sig = headers["x-outdial-signature"].to_str().unwrap();
    let t: i64 = sig[2..].split(',').next().unwrap().parse().unwrap();
    assert_eq!(
        sig,
        outdial_notify::signature("0123456789abcdef-sig", t, &body.to_string()),
        "verifiable"
    );
    // Delivery status is part of the record, and of the timeline.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rec: Value = g
        .get(&format!("/api/v1/conversations/{id}"), ("d", "d-secret-1"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(rec["notifications"][0]["status"], "delivered");
    assert_eq!(
        rec["notifications"][0]["eventId"],
        headers["x-outdial-event-id"].to_str().unwrap()
    );
    assert_eq!(
        rec["request"]["notifyUrl"].as_str().unwrap().split('?').nth(1),
        Some("token=***")
    );
    let events: Value = g
        .get(&format!("/api/v1/conversations/{id}/events"), ADMIN)
        .await
        .json()
        .await
        .unwrap();
    let kinds: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["accepted", "dialing", "failed", "notification"]);
}

#[tokio::test]
async fn undelivered_notifications_survive_kill_9_and_unfinished_calls_are_recovered() {
    // The receiver is down: reserve its port and close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/n");
    let mut g = Gateway::start(&format!("[notifications]\nretry_base_ms = 200\n{BASIC}")).await;
    let id = dial(&g, ADMIN, &url).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let rec: Value = g
        .get(&format!("/api/v1/conversations/{id}"), ADMIN)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(rec["notifications"][0]["status"], "pending");
    let event_id = rec["notifications"][0]["eventId"].as_str().unwrap().to_string();

    g.kill(); // SIGKILL
    // Simulate a crash in the middle of a call: a second conversation still "dialing" in the store.
    let live = dial_stored_as_live(&g);
    let got = receiver(tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap()).await;
    g.restart();
    let all = wait_for(&got, 2).await;
    let first = all
        .iter()
        .find(|(_, b)| b["conversationId"] == id.as_str())
        .unwrap();
    assert_eq!(
        first.0["x-outdial-event-id"],
        event_id.as_str(),
        "same event id as before the crash"
    );
    let recovered = all
        .iter()
        .find(|(_, b)| b["conversationId"] == live.as_str())
        .unwrap();
    assert_eq!(
        (recovered.1["status"].as_str(), recovered.1["reasonCode"].as_str()),
        (Some("failed"), Some("error"))
    );
    assert_eq!(recovered.1["reason"], "gateway restarted");
    let rec: Value = g
        .get(&format!("/api/v1/conversations/{live}"), ADMIN)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(rec["state"], "failed");
    assert!(
        g.log()
            .contains("ended 1 conversation(s) left unfinished by the previous run")
    );
}

/// Writes a conversation in state `dialing` straight into the stopped gateway's SQLite file (as a crash mid-call
/// leaves it) and returns its id.
fn dial_stored_as_live(g: &Gateway) -> String {
    let id = uuid::Uuid::new_v4().to_string();
    let script = r#"
import sqlite3, sys, json, time
db, id, url = sys.argv[1], sys.argv[2], sys.argv[3]
now = int(time.time() * 1000)
body = {"id": id, "bot": "Bot1", "clientId": "admin", "state": "dialing", "createdAt": now, "updatedAt": now,
        "request": {"bot": "Bot1", "target": "tel:+2", "caller": "1", "notifyUrl": url, "answerTimeoutSec": 20,
                    "machineDetection": "disabled", "voicemailEndTimeoutSec": 20}, "dialingAt": now}
c = sqlite3.connect(db)
c.execute("insert into conversations (id, bot, client_id, state, created_at, updated_at, body) values (?,?,?,?,?,?,?)",
          (id, "Bot1", "admin", "dialing", now, now, json.dumps(body)))
c.commit()
"#;
    let rec_url = format!("http://127.0.0.1:{}/n", receiver_port(g));
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(g.dir.join("outdial.db"))
        .arg(&id)
        .arg(rec_url)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    id
}

/// The port of the receiver the first conversation notifies (read back from the store).
fn receiver_port(g: &Gateway) -> u16 {
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg("import sqlite3,sys;print(sqlite3.connect(sys.argv[1]).execute('select url from outbox limit 1').fetchone()[0])")
        .arg(g.dir.join("outdial.db"))
        .output()
        .unwrap();
    let url = String::from_utf8(out.stdout).unwrap();
    url.trim()
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches("/n")
        .parse()
        .unwrap()
}

#[tokio::test]
async fn metadata_addresses_are_refused() {
    let g = Gateway::start(BASIC).await;
    let id = dial(&g, ADMIN, "http://169.254.169.254/latest/meta-data/").await;
    let mut rec = Value::Null;
    for _ in 0..200 {
        rec = g
            .get(&format!("/api/v1/conversations/{id}"), ADMIN)
            .await
            .json()
            .await
            .unwrap();
        if rec["notifications"][0]["status"] == "failed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(rec["notifications"][0]["status"], "failed");
    assert_eq!(
        rec["notifications"][0]["lastError"],
        "169.254.169.254 is refused by the notification network policy"
    );
    assert_eq!(rec["notifications"][0]["attempts"], 1);
}

/// docs/security.md: a proxy in the environment (HTTP_PROXY) does not carry notifications past the network policy:
/// proxies from the environment are ignored, so the policy sees every address a notifyUrl resolves to.
#[tokio::test]
async fn environment_proxies_do_not_bypass_the_network_policy() {
    // A "proxy" that only counts who connects to it.
    let proxy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy_url = format!("http://{}", proxy.local_addr().unwrap());
    proxy.set_nonblocking(true).unwrap();
    let config = format!("{BASIC}\n[notifications]\ndeny_cidrs = [\"127.0.0.0/8\", \"::1\"]\n");
    let g = Gateway::start_with(&config, &[("HTTP_PROXY", &proxy_url), ("http_proxy", &proxy_url)]).await;
    let id = dial(&g, ADMIN, "http://localhost:9/n").await;
    let mut rec = Value::Null;
    for _ in 0..200 {
        rec = g
            .get(&format!("/api/v1/conversations/{id}"), ADMIN)
            .await
            .json()
            .await
            .unwrap();
        if rec["notifications"][0]["status"] == "failed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(rec["notifications"][0]["status"], "failed", "{rec}");
    let err = rec["notifications"][0]["lastError"].as_str().unwrap_or_default();
    assert!(
        err.contains("refused by the notification network policy"),
        "{err}"
    );
    assert!(proxy.accept().is_err(), "nobody connected to the proxy");
}
