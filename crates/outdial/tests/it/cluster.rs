//! Cluster mode (docs/cluster.md): several real gateways on one PostgreSQL (a fresh database) and one Redis (a
//! private `redis-server`), sipp as the far end.

use crate::common::{self, ADMIN, Gateway, Got, client, error_of, receiver, temp_dir};
use outdial_testkit::{RedisServer, Sipp};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use tokio::time::Instant;

/// Every node beats each second and is lost after 4 s.
const FAST: &str = "[cluster]\nheartbeat_sec = 1\nnode_timeout_sec = 4\n\n[http]\nconfig_refresh_sec = 1\n\n";

fn trunk_and_bot(sipp_port: u16, bot_extra: &str) -> String {
    format!(
        "[[trunks]]\nname = \"sbc\"\naddress = \"127.0.0.1:{sipp_port}\"\nkeepAliveSec = 0\n\n\
         [[bots]]\nname = \"Bot1\"\nbotUrl = \"http://127.0.0.1:9/bot\"\n{bot_extra}\n"
    )
}

/// A fresh database on the local PostgreSQL.
async fn fresh_pg() -> String {
    outdial_store::testing::fresh_postgres()
        .await
        .expect("PostgreSQL at 127.0.0.1:5432 (scripts/test.sh starts it)")
}

fn node(pg: &str, id: &str, config: &str) -> Gateway {
    Gateway::start_on(
        temp_dir(),
        pg.to_string(),
        config,
        &[("OUTDIAL_CLUSTER__NODE_ID", id)],
    )
}

async fn dial(g: &Gateway, url: &str) -> String {
    common::dialout(
        g,
        &json!({"bot": "Bot1", "target": "tel:+123456789", "caller": "1-800-111", "notifyUrl": url}),
    )
    .await
}

/// The terminal notifications (`completed`, `failed`) per conversation.
fn terminals(got: &Got) -> HashMap<String, Vec<Value>> {
    let mut m: HashMap<String, Vec<Value>> = HashMap::new();
    for n in got.lock().iter() {
        if n["status"] == "completed" || n["status"] == "failed" {
            m.entry(n["conversationId"].as_str().unwrap().to_string())
                .or_default()
                .push(n.clone());
        }
    }
    m
}

async fn until(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let t = Instant::now();
    while !check() {
        assert!(t.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn answered(got: &Got, n: usize) {
    until("all answered", Duration::from_secs(20), || {
        got.lock().iter().filter(|v| v["status"] == "answered").count() >= n
    })
    .await;
}

/// Node B starting on the store while node A holds 20 answered calls touches none of them: each goes on until the
/// far end hangs up and ends with one `completed` notification (client-disconnected).
#[tokio::test]
async fn a_node_starting_leaves_the_other_nodes_calls_alone() {
    let pg = fresh_pg().await;
    let sipp = Sipp::uas(
        "uas_answer_then_bye.xml",
        &["-d", "5000", "-m", "20", "-timeout", "60s"],
    );
    let config = common::with_bot(&format!("{FAST}{}", trunk_and_bot(sipp.port, ""))).await;
    let mut a = node(&pg, "node-a", &config);
    let (url, got) = receiver().await;
    let mut ids = Vec::new();
    for _ in 0..20 {
        ids.push(dial(&a, &url).await);
    }
    answered(&got, 20).await;
    let mut b = node(&pg, "node-b", &config);
    until("the far end hung up every call", Duration::from_secs(20), || {
        terminals(&got).len() == 20
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let t = terminals(&got);
    for id in &ids {
        let n = &t[id];
        assert_eq!(n.len(), 1, "{id}: {n:?}");
        assert_eq!(
            (n[0]["reasonCode"].as_str(), n[0]["reason"].as_str()),
            (Some("client-disconnected"), Some("Client disconnected")),
            "{id}"
        );
    }
    assert_eq!(sipp.exit_code(), 0);
    assert!(!b.log().contains("left unfinished"), "{}", b.log());
    assert!(!a.log().contains("taken over"), "{}", a.log());
    a.kill();
    b.kill();
    outdial_store::testing::drop_postgres(&pg).await;
}

/// `kill -9` of a node holding 20 answered calls: within the node timeout + 5 s the far end has a BYE for each
/// call, each conversation has exactly one terminal notification (`error`, `node node-a lost`) although two
/// nodes looked for them, and the dead node's leases (in Redis) are free again.
#[tokio::test]
async fn the_calls_of_a_killed_node_get_their_bye_from_another_node() {
    let pg = fresh_pg().await;
    let redis = RedisServer::start();
    let sipp = Sipp::uas("uas_answer_wait_bye.xml", &["-m", "20", "-timeout", "60s"]);
    let limits = format!("[limits]\nredis_url = \"{}\"\n\n", redis.url());
    let bot = "dialoutMaxConcurrentCalls = 20\ndialoutConcurrentCallsExpirationSeconds = 3600";
    let refbot = outdial_sim::bot::start("127.0.0.1:0".parse().unwrap(), outdial_sim::bot::Script::Silent)
        .await
        .unwrap();
    let config = format!("{FAST}{limits}{}", trunk_and_bot(sipp.port, bot))
        .replace("http://127.0.0.1:9/bot", &refbot.url);
    let mut a = node(&pg, "node-a", &config);
    let mut b = node(&pg, "node-b", &config);
    let mut c = node(&pg, "node-c", &config);
    let (url, got) = receiver().await;
    let mut ids = Vec::new();
    for _ in 0..20 {
        ids.push(dial(&a, &url).await);
    }
    answered(&got, 20).await;
    let r = b
        .post(
            "/api/v1/actions/dialout",
            ADMIN,
            &json!({"bot": "Bot1", "target": "tel:+1", "caller": "1"}),
        )
        .await;
    assert_eq!(r.status(), 429, "20 leases held, seen from another node");
    a.kill();
    let killed = Instant::now();
    assert_eq!(sipp.exit_code(), 0, "sipp got a BYE for each of the 20 calls");
    let took = killed.elapsed();
    assert!(took < Duration::from_secs(4 + 5), "BYEs {took:?} after the kill");
    until("20 terminal notifications", Duration::from_secs(10), || {
        terminals(&got).len() == 20
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let t = terminals(&got);
    for id in &ids {
        let n = &t[id];
        assert_eq!(n.len(), 1, "exactly one terminal notification for {id}: {n:?}");
        assert_eq!(
            (
                n[0]["status"].as_str(),
                n[0]["reasonCode"].as_str(),
                n[0]["reason"].as_str()
            ),
            (Some("completed"), Some("error"), Some("node node-a lost")),
        );
        // The bot conversation was closed by the node that took the call over.
        let told = refbot.disconnected(id).unwrap_or_default();
        assert_eq!(
            (told["reason"].as_str(), told["reasonCode"].as_str()),
            (Some("node node-a lost"), Some("error")),
            "{id}: {told}"
        );
    }
    // The leases are free: 20 more calls are admitted at once.
    for _ in 0..20 {
        let r = c
            .post(
                "/api/v1/actions/dialout",
                ADMIN,
                &json!({"bot": "Bot1", "target": "tel:+1", "caller": "1"}),
            )
            .await;
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }
    let (lb, lc) = (b.log(), c.log());
    assert!(
        lb.contains("node 'node-a' lost") || lc.contains("node 'node-a' lost"),
        "{lb}\n{lc}"
    );
    let status: Value = b.get("/api/v1/cluster", ADMIN).await.json().await.unwrap();
    let states: HashMap<&str, &str> = status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["id"].as_str().unwrap(), n["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        states,
        HashMap::from([("node-a", "lost"), ("node-b", "up"), ("node-c", "up")])
    );
    b.kill();
    c.kill();
    outdial_store::testing::drop_postgres(&pg).await;
}

/// Limits across three nodes: 10 dialouts/s driven at 60/s over three nodes for 10 s admits at most 110, the rest
/// get 429 with Retry-After; 5 concurrent calls at most over three nodes, checked all along.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_hold_for_the_cluster() {
    let pg = fresh_pg().await;
    let redis = RedisServer::start();
    let sipp = Sipp::uas(
        "uas_answer_then_bye.xml",
        &["-d", "1500", "-m", "1000", "-timeout", "60s"],
    );
    let limits = format!("[limits]\nredis_url = \"{}\"\n\n", redis.url());
    let config = common::with_bot(&format!(
        "{FAST}{limits}{}\n[[bots]]\nname = \"Few\"\nbotUrl = \"http://127.0.0.1:9/bot\"\ntrunk = \"sbc\"\n\
         dialoutMaxConcurrentCalls = 5\n",
        trunk_and_bot(sipp.port, "dialoutLimitPerSecond = 10\ntrunk = \"sbc\"")
    ))
    .await;
    let nodes: Vec<Gateway> = ["n1", "n2", "n3"]
        .iter()
        .map(|id| node(&pg, id, &config))
        .collect();

    // 60 requests a second: one driver per node at 20 a second, one request in flight at a time on each.
    let http = client();
    let mut drivers = tokio::task::JoinSet::new();
    for g in &nodes {
        let (url, http) = (g.url("/api/v1/actions/dialout"), http.clone());
        drivers.spawn(async move {
            let (mut ok, mut refused, mut sent) = (0, 0, 0);
            let start = Instant::now();
            let mut tick = tokio::time::interval(Duration::from_millis(50));
            while start.elapsed() < Duration::from_secs(10) {
                tick.tick().await;
                let r = http
                    .post(&url)
                    .basic_auth(ADMIN.0, Some(ADMIN.1))
                    .json(&json!({"bot": "Bot1", "target": "tel:+1", "caller": "1"}))
                    .send()
                    .await
                    .unwrap();
                sent += 1;
                match r.status().as_u16() {
                    200 => ok += 1,
                    429 if r.headers().contains_key("retry-after") => refused += 1,
                    s => panic!("{s}: {}", r.text().await.unwrap()),
                }
            }
            (ok, refused, sent)
        });
    }
    let (mut ok, mut refused, mut sent) = (0, 0, 0);
    for (o, r, s) in drivers.join_all().await {
        (ok, refused, sent) = (ok + o, refused + r, sent + s);
    }
    assert!(sent >= 400, "{sent} sent in 10 s");
    // At most the limit's 100 and its burst. Fewer when the machine stalls: a stalled driver's missed requests
    // come in a burst afterwards and the cells of the stall are gone (seen: 69 and 88 on a loaded 2-core CI
    // machine). A limit held by each node alone instead of shared would admit ~300.
    assert!((60..=110).contains(&ok), "{ok} admitted, {refused} refused");

    // Concurrency: 20 tries a second over the three nodes for 6 s, calls of 1.5 s; the live count never passes 5.
    let (url, _got) = receiver().await;
    let watcher = {
        let g = nodes[0].base.clone();
        tokio::spawn(async move {
            let mut most = 0;
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(7) {
                let page: Value = client()
                    .get(format!("{g}/api/v1/conversations?bot=Few&status=live&limit=500"))
                    .basic_auth(ADMIN.0, Some(ADMIN.1))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                most = most.max(page["conversations"].as_array().unwrap().len());
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            most
        })
    };
    let (mut ok, mut full, mut i) = (0, 0, 0);
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    while start.elapsed() < Duration::from_secs(6) {
        tick.tick().await;
        let body = json!({"bot": "Few", "target": "tel:+1", "caller": "1", "notifyUrl": url});
        let r = nodes[i % 3].post("/api/v1/actions/dialout", ADMIN, &body).await;
        match r.status().as_u16() {
            200 => ok += 1,
            429 => full += 1,
            s => panic!("{s}: {}", r.text().await.unwrap()),
        }
        i += 1;
    }
    let most = watcher.await.unwrap();
    assert!(most <= 5, "{most} live at once");
    assert!(
        most >= 4 && ok >= 10 && full > 0,
        "most {most}, admitted {ok}, refused {full}"
    );
    drop(nodes);
    outdial_store::testing::drop_postgres(&pg).await;
}

/// Redis stopped while a node runs: dialouts get 503 with a clear error and /readyz says why; within 5 s of
/// Redis coming back, dialouts pass again.
#[tokio::test]
async fn redis_stopped_mid_run_gives_503_then_recovers() {
    let mut redis = RedisServer::start();
    let config = format!(
        "{}\n[limits]\nredis_url = \"{}\"\n\n[[bots]]\nname = \"Bot2\"\nbotUrl = \"http://127.0.0.1:9/bot\"\n\
         dialoutLimitPerSecond = 100\n",
        common::BASIC,
        redis.url()
    );
    let g = Gateway::start(&config).await;
    let body = json!({"bot": "Bot2", "target": "tel:+1", "caller": "1"});
    let dial = || g.post("/api/v1/actions/dialout", ADMIN, &body);
    assert_eq!(dial().await.status(), 200);
    redis.stop();
    let r = dial().await;
    assert_eq!(r.headers()["retry-after"], "5");
    assert_eq!(
        error_of(r).await,
        (
            503,
            "the gateway cannot check dial limits right now (the cluster's limit store cannot be reached); try \
             again shortly"
                .into()
        )
    );
    let ready = g.get("/readyz", ADMIN).await;
    assert_eq!(ready.status(), 503);
    let checks: Value = ready.json().await.unwrap();
    let limits = checks["checks"]["limits"].as_str().unwrap();
    assert!(
        limits.starts_with("error: limiter unavailable: Redis"),
        "{limits}"
    );
    redis.start_again();
    let back = Instant::now();
    while dial().await.status() != 200 {
        assert!(back.elapsed() < Duration::from_secs(5), "not back within 5 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(g.get("/readyz", ADMIN).await.status(), 200);
}

/// Configuration made on one node reaches the others within `http.config_refresh_sec`: a trunk and a bot made on
/// A dial from B; an application made on A gets tokens from B, and once disabled on A its token stops working on B.
#[tokio::test]
async fn configuration_changes_reach_every_node() {
    let pg = fresh_pg().await;
    let config = format!("{FAST}{}", common::BASIC);
    let (mut a, mut b) = (node(&pg, "a", &config), node(&pg, "b", &config));
    a.create("trunks", json!({"name": "t2", "address": "127.0.0.1:5099"}))
        .await;
    a.create(
        "bots",
        json!({"name": "Bot2", "botUrl": "http://127.0.0.1:9/bot", "trunk": "t2"}),
    )
    .await;
    let (id, secret) = a
        .app("dialer", json!([{"role": "VAIC/BOTS/DIALOUT", "scope": "Bot2"}]))
        .await;
    let body = json!({"bot": "Bot2", "target": "tel:+1", "caller": "1"});
    let t = Instant::now();
    let tok = loop {
        let r = client()
            .post(b.url("/oauth/token"))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", &id),
                ("client_secret", &secret),
            ])
            .send()
            .await
            .unwrap();
        if r.status() == 200 {
            break r.json::<Value>().await.unwrap()["access_token"]
                .as_str()
                .unwrap()
                .to_string();
        }
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "B does not know the application"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let dial_b = |tok: String| {
        let (url, body) = (b.url("/api/v1/actions/dialout"), body.clone());
        async move {
            client()
                .post(url)
                .bearer_auth(tok)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    loop {
        let r = dial_b(tok.clone()).await;
        if r.status() == 200 {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "B: {}",
            r.text().await.unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = a
        .send(
            reqwest::Method::PATCH,
            "/api/v1/applications/dialer",
            ADMIN,
            Some(&json!({"enabled": false})),
        )
        .await;
    assert_eq!(r.status(), 200);
    let t = Instant::now();
    loop {
        let r = dial_b(tok.clone()).await;
        if r.status() == 401 {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "the disabled application's token still works on B"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    a.kill();
    b.kill();
    outdial_store::testing::drop_postgres(&pg).await;
}

/// `POST /api/v1/admin/drain` on one node: it refuses dialouts (503) and fails /readyz while the other node
/// takes them; the cluster status shows it draining; `DELETE` takes it back. `outdial cluster status` lists both.
#[tokio::test]
async fn one_node_drained_by_the_api_while_the_other_serves() {
    let pg = fresh_pg().await;
    let config = format!("{FAST}{}", common::BASIC);
    let (mut a, mut b) = (node(&pg, "a", &config), node(&pg, "b", &config));
    let body = json!({"bot": "Bot1", "target": "tel:+1", "caller": "1"});
    let r = a
        .send(reqwest::Method::POST, "/api/v1/admin/drain", ADMIN, None)
        .await;
    assert_eq!(r.status(), 202);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (v["node"].as_str(), v["draining"].as_bool()),
        (Some("a"), Some(true))
    );
    let (s, e) = error_of(a.post("/api/v1/actions/dialout", ADMIN, &body).await).await;
    assert_eq!(
        (s, e.as_str()),
        (503, "the gateway is shutting down and accepts no new calls")
    );
    assert_eq!(a.get("/readyz", ADMIN).await.status(), 503);
    assert_eq!(
        b.post("/api/v1/actions/dialout", ADMIN, &body).await.status(),
        200
    );
    let t = Instant::now();
    loop {
        let v: Value = b.get("/api/v1/cluster", ADMIN).await.json().await.unwrap();
        let a_state = v["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["id"] == "a")
            .map(|n| n["state"].clone());
        if a_state == Some(json!("draining")) {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(3), "{v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_outdial"))
        .args([
            "cluster",
            "status",
            "--url",
            &b.base,
            "--client-id",
            ADMIN.0,
            "--client-secret",
            ADMIN.1,
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("  a ") && l.contains("draining")),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l.starts_with("* b ") && l.contains("up")),
        "{text}"
    );
    let r = a
        .send(reqwest::Method::DELETE, "/api/v1/admin/drain", ADMIN, None)
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        a.post("/api/v1/actions/dialout", ADMIN, &body).await.status(),
        200
    );
    assert_eq!(a.get("/readyz", ADMIN).await.status(), 200);
    // A dialer application may not drain.
    let (id, secret) = a
        .app("dialer", json!([{"role": "VAIC/BOTS/DIALOUT", "scope": "*"}]))
        .await;
    let (s, e) = error_of(
        a.send(reqwest::Method::POST, "/api/v1/admin/drain", (&id, &secret), None)
            .await,
    )
    .await;
    assert_eq!(
        (s, e.as_str()),
        (403, "application 'dialer' is not allowed to drain the gateway")
    );
    a.kill();
    b.kill();
    outdial_store::testing::drop_postgres(&pg).await;
}

/// Two nodes deliver one backlog of 2,000 notifications (500 conversations × 4) to one receiver: each is
/// delivered once, in order per conversation, and both nodes take part.
#[tokio::test]
async fn two_nodes_deliver_one_backlog_once_and_in_order() {
    use outdial_store::{OutboxRow, OutboxStatus, SqlStore, Store};
    let pg = fresh_pg().await;
    let seen: std::sync::Arc<parking_lot::Mutex<Vec<(String, String, i64)>>> = Default::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/n", listener.local_addr().unwrap());
    {
        let seen = seen.clone();
        let app = axum::Router::new().route(
            "/n",
            axum::routing::post(move |h: axum::http::HeaderMap, body: String| {
                let seen = seen.clone();
                async move {
                    let v: Value = serde_json::from_str(&body).unwrap();
                    let event = h["x-outdial-event-id"].to_str().unwrap().to_string();
                    let conv = v["conversationId"].as_str().unwrap().to_string();
                    seen.lock().push((event, conv, v["sequence"].as_i64().unwrap()));
                    "ok"
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    }
    let seed = SqlStore::connect(&pg).await.unwrap().with_node("seed").unwrap();
    for _ in 0..500 {
        let req = outdial_core::dialout::DialoutRequest::parse(
            &json!({"bot": "Bot1", "target": "tel:+1", "caller": "1"}),
        )
        .unwrap();
        let mut c = outdial_core::conversation::Conversation::new(uuid::Uuid::now_v7(), "admin", req, 1);
        seed.create_conversation(&c, None, 0).await.unwrap();
        c.state = outdial_core::conversation::ConversationState::Ended;
        let rows: Vec<OutboxRow> = (1..=4)
            .map(|sequence| OutboxRow {
                event_id: uuid::Uuid::new_v4(),
                conversation_id: c.id,
                sequence,
                url: url.clone(),
                body: json!({"conversationId": c.id, "sequence": sequence}).to_string(),
                secret: None,
                status: OutboxStatus::Pending,
                attempts: 0,
                next_attempt_at: 0,
                last_error: None,
                created_at: 0,
                delivered_at: None,
            })
            .collect();
        seed.transition(&c, "ended", &json!({}), &rows).await.unwrap();
    }
    let config = format!("{FAST}{}", common::BASIC);
    let (mut a, mut b) = (node(&pg, "a", &config), node(&pg, "b", &config));
    until("2,000 deliveries", Duration::from_secs(60), || {
        seen.lock().len() >= 2000
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let seen = seen.lock().clone();
    assert_eq!(seen.len(), 2000, "each delivered once");
    let events: HashSet<&str> = seen.iter().map(|(e, ..)| e.as_str()).collect();
    assert_eq!(events.len(), 2000);
    let mut order: HashMap<&str, Vec<i64>> = HashMap::new();
    for (_, conv, seq) in &seen {
        order.entry(conv).or_default().push(*seq);
    }
    assert_eq!(order.len(), 500);
    assert!(
        order.values().all(|s| s == &[1, 2, 3, 4]),
        "in order per conversation"
    );
    for g in [&a, &b] {
        let m = common::metrics(g).await;
        let delivered = m
            .lines()
            .find(|l| l.starts_with("outdial_notification_attempts_total{result=\"delivered\"}"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse::<f64>().ok())
            .unwrap_or(0.0);
        assert!(delivered > 0.0, "both nodes deliver:\n{m}");
    }
    a.kill();
    b.kill();
    outdial_store::testing::drop_postgres(&pg).await;
}

/// SIGTERM on a node with 10 answered calls: its new dialouts get 503 at once while the other node takes them;
/// after the drain timeout its calls are ended with BYE (sipp gets all 10) and one notification each, and the
/// process exits 0. The other node takes none of them over.
#[tokio::test]
async fn sigterm_on_a_node_with_ten_calls_drains_it_and_the_other_node_serves() {
    let pg = fresh_pg().await;
    let sipp = Sipp::uas("uas_answer_wait_bye.xml", &["-m", "10", "-timeout", "60s"]);
    let config = common::with_bot(&format!(
        "{FAST}[shutdown]\ndrain_timeout_sec = 2\n\n{}",
        trunk_and_bot(sipp.port, "")
    ))
    .await;
    let (mut a, mut b) = (node(&pg, "a", &config), node(&pg, "b", &config));
    let (url, got) = receiver().await;
    for _ in 0..10 {
        dial(&a, &url).await;
    }
    answered(&got, 10).await;
    a.terminate();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let body = json!({"bot": "Bot1", "target": "tel:+1", "caller": "1"});
    assert_eq!(
        a.post("/api/v1/actions/dialout", ADMIN, &body).await.status(),
        503
    );
    let r = b.post("/api/v1/actions/dialout", ADMIN, &body).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert_eq!(sipp.exit_code(), 0, "sipp got a BYE for each of the 10 calls");
    until("10 terminal notifications", Duration::from_secs(10), || {
        terminals(&got).len() == 10
    })
    .await;
    assert_eq!(
        a.wait_exit(Duration::from_secs(15)),
        Some(0),
        "exit 0 after the drain"
    );
    // A node that stopped cleanly has left the cluster's list (a killed one would show `lost`).
    let v: Value = b.get("/api/v1/cluster", ADMIN).await.json().await.unwrap();
    let ids: Vec<&str> = v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["b"], "{v}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    for (id, n) in terminals(&got) {
        assert_eq!(n.len(), 1, "{id}: {n:?}");
        assert_eq!(
            (n[0]["reasonCode"].as_str(), n[0]["reason"].as_str()),
            (Some("error"), Some("gateway shutting down")),
        );
    }
    b.kill();
    outdial_store::testing::drop_postgres(&pg).await;
}
