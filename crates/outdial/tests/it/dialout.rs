//! `POST /api/v1/actions/dialout` against the real binary: validation messages, body errors, limits,
//! idempotency, trunk rules.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly.

use crate::common;

use common::{ADMIN, BASIC, Gateway, client, error_of};
use serde_json::{Value, json};

async fn dial(g: &Gateway, body: Value) -> (u16, String) {
    error_of(g.post("/api/v1/actions/dialout", ADMIN, &body).await).await
}

#[tokio::test]
async fn every_validation_rule_has_its_message() {
    let g = Gateway::start(&format!(
        "{BASIC}\ndialoutAllowedCallers = [\"1-800-111\", \"1-800-222\"]\n"
    ))
    .await;
    let ok = json!({"bot": "Bot1", "target": "tel:+123456789", "caller": "1-800-111"});
    let with = |k: &str, v: Value| {
        let mut b = ok.clone();
        b[k] = v;
        b
    };
    let without = |k: &str| {
        let mut b = ok.clone();
        b.as_object_mut().unwrap().remove(k);
        b
    };
    let cases: Vec<(Value, &str)> = vec![
        (without("bot"), "request should have required property 'bot'"),
        (
            without("target"),
            "request should have required property 'target'",
        ),
        (
            with("answerTimeoutSec", json!(301)),
            "request/answerTimeoutSec should be <= 300",
        ),
        (
            with("answerTimeoutSec", json!(0)),
            "request/answerTimeoutSec should be >= 1",
        ),
        (
            with("answerTimeoutSec", json!("20")),
            "request/answerTimeoutSec should be number",
        ),
        (
            with("voicemailEndTimeoutSec", json!(301)),
            "request/voicemailEndTimeoutSec should be <= 300",
        ),
        (
            with("machineDetection", json!("maybe")),
            "request/machineDetection should be equal to one of the allowed values: disabled, disconnect, detect",
        ),
        (
            with("machineDetections", json!("detect")),
            "request should NOT have additional properties ('machineDetections')",
        ),
        (
            with("target", json!("mailto:a@b")),
            "request/target should be a tel: or sip: URI",
        ),
        (
            with("target", json!("tel:+12 34")),
            "request/target should be a tel: or sip: URI",
        ),
        (
            with("caller", json!("a b")),
            "request/caller should contain only SIP user-part characters",
        ),
        (
            with("callerHost", json!("bad host")),
            "request/callerHost should be a host name or IP address",
        ),
        (
            with("callerDisplayName", json!("x".repeat(129))),
            "request/callerDisplayName should NOT be longer than 128 characters",
        ),
        (
            with("callerDisplayName", json!("a\u{7}b")),
            "request/callerDisplayName should NOT contain control characters",
        ),
        (
            with("callerDisplayName", json!("x\" <sip:evil@attacker.example>")),
            "request/callerDisplayName should not contain '<'",
        ),
        (
            with("callerDisplayName", json!("Clinic \"Front\"")),
            "request/callerDisplayName should not end with '\"'",
        ),
        (
            with("notifyUrl", json!("ftp://x/y")),
            "request/notifyUrl should be an absolute http or https URL",
        ),
        (
            with("notifyUrl", json!("/relative")),
            "request/notifyUrl should be an absolute http or https URL",
        ),
        (with("metadata", json!([1])), "request/metadata should be object"),
        (
            with("metadata", json!({"big": "x".repeat(16 * 1024)})),
            "request/metadata should NOT be larger than 16384 bytes",
        ),
        (
            with("notifyEvents", json!(["ringing", "rung"])),
            "request/notifyEvents/1 should be equal to one of the allowed values: ringing, machineDetection",
        ),
        (with("bot", json!(7)), "request/bot should be string"),
        (json!([1, 2]), "request should be object"),
    ];
    for (body, message) in cases {
        assert_eq!(dial(&g, body.clone()).await, (400, message.to_string()), "{body}");
    }
    // What the bot's configuration refuses is a conflict with it (the same body passes for another bot).
    for (body, message) in [
        (
            with("caller", json!("1-800-999")),
            "caller '1-800-999' is not allowed for bot 'Bot1'",
        ),
        (
            without("caller"),
            "request should have required property 'caller'",
        ),
    ] {
        assert_eq!(dial(&g, body.clone()).await, (409, message.to_string()), "{body}");
    }
    // And a valid one, with every property, passes.
    let full = json!({"bot": "Bot1", "target": "tel:+1-800-(555).0100", "caller": "1-800-222", "callerHost": "example.com",
        "callerDisplayName": "Clinic \"Front\" desk", "notifyUrl": "https://dialer.example/n?key=s3cret", "metadata": {"participantName": "Alice"},
        "answerTimeoutSec": 1, "machineDetection": "detect", "voicemailEndTimeoutSec": 300, "notifyEvents": ["ringing", "machineDetection"]});
    let r = g.post("/api/v1/actions/dialout", ADMIN, &full).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json;charset=UTF-8");
    let id = r.json::<Value>().await.unwrap()["conversationId"]
        .as_str()
        .unwrap()
        .to_string();
    let rec: Value = g
        .get(&format!("/api/v1/conversations/{id}"), ADMIN)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        rec["request"]["notifyUrl"], "https://dialer.example/n?key=***",
        "secrets in notifyUrl are masked"
    );
    assert_eq!(rec["request"]["metadata"], json!({"participantName": "Alice"}));
}

#[tokio::test]
async fn body_errors_413_415_and_json() {
    let g = Gateway::start(BASIC).await;
    let post = |ct: &str, body: Vec<u8>| {
        client()
            .post(g.url("/api/v1/actions/dialout"))
            .basic_auth(ADMIN.0, Some(ADMIN.1))
            .header("content-type", ct)
            .body(body)
            .send()
    };
    let (s, e) = error_of(post("text/plain", b"{}".to_vec()).await.unwrap()).await;
    assert_eq!((s, e.as_str()), (415, "Content-Type must be application/json"));
    let (s, e) = error_of(post("application/json", vec![b' '; 64 * 1024 + 1]).await.unwrap()).await;
    assert_eq!((s, e.as_str()), (413, "request body is larger than 65536 bytes"));
    let (s, e) = error_of(
        post("application/json;charset=UTF-8", b"{\"bot\": ".to_vec())
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 400);
    assert!(
        e.starts_with("request body is not valid JSON: EOF while parsing"),
        "{e}"
    );
    // A missing Content-Type is not JSON either.
    let r = client()
        .post(g.url("/api/v1/actions/dialout"))
        .basic_auth(ADMIN.0, Some(ADMIN.1))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    // Exactly at the limit is accepted as far as size goes (then fails as JSON whitespace-only).
    let (s, _) = error_of(post("application/json", vec![b' '; 64 * 1024]).await.unwrap()).await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn fractional_rate_limit_answers_429_with_retry_after() {
    let g = Gateway::start(&format!("{BASIC}\ndialoutLimitPerSecond = 0.5\n")).await;
    let body = json!({"bot": "Bot1", "target": "tel:+1", "caller": "1"});
    assert_eq!(
        g.post("/api/v1/actions/dialout", ADMIN, &body).await.status(),
        200
    );
    let r = g.post("/api/v1/actions/dialout", ADMIN, &body).await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "2");
    assert_eq!(
        error_of(r).await.1,
        "dialout rate limit for bot 'Bot1' exceeded (0.5 per second)"
    );
    // Requests refused by validation or authorization consume nothing: after 2 s exactly one more passes.
    let (s, _) = dial(&g, json!({"bot": "Bot1", "target": "x"})).await;
    assert_eq!(s, 400);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(
        g.post("/api/v1/actions/dialout", ADMIN, &body).await.status(),
        200
    );
    assert_eq!(
        g.post("/api/v1/actions/dialout", ADMIN, &body).await.status(),
        429
    );
    let metrics = common::metrics(&g).await;
    assert!(
        metrics.contains("outdial_limit_rejections_total{bot=\"Bot1\",limit=\"rate\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("outdial_dialouts_total{result=\"accepted\"} 2"),
        "{metrics}"
    );
}

#[tokio::test]
async fn single_allowed_caller_fills_the_caller() {
    let g = Gateway::start(&format!("{BASIC}\ndialoutAllowedCallers = [\"1-800-111\"]\n")).await;
    let r = g
        .post(
            "/api/v1/actions/dialout",
            ADMIN,
            &json!({"bot": "Bot1", "target": "sip:alice@example.com"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let id = r.json::<Value>().await.unwrap()["conversationId"]
        .as_str()
        .unwrap()
        .to_string();
    let rec: Value = g
        .get(&format!("/api/v1/conversations/{id}"), ADMIN)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(rec["request"]["caller"], "1-800-111");
}

#[tokio::test]
async fn trunk_rules() {
    let g = Gateway::start(
        r#"
# 127.0.0.1:5099 answers nothing. These tests dial it many times for the API's answers; without this, three
# silent INVITEs would mark the trunk down and later dialouts would get 503 (docs/operations.md, "Trunk health").
[sip]
trunk_down_after = 1000

[[trunks]]
name = "nomd"
address = "127.0.0.1:5099"
machineDetection = false
[[trunks]]
name = "other"
address = "127.0.0.1:5098"
[[bots]]
name = "Bot1"
botUrl = "http://127.0.0.1:9/bot"
trunk = "nomd"
[[bots]]
name = "Orphan"
botUrl = "http://127.0.0.1:9/bot"
"#,
    )
    .await;
    let (s, e) = dial(
        &g,
        json!({"bot": "Bot1", "target": "tel:+1", "caller": "1", "machineDetection": "detect"}),
    )
    .await;
    assert_eq!(
        (s, e.as_str()),
        (
            409,
            "machine detection is disabled for trunk 'nomd' of bot 'Bot1'; use machineDetection 'disabled'"
        )
    );
    assert_eq!(
        dial(&g, json!({"bot": "Bot1", "target": "tel:+1", "caller": "1"}))
            .await
            .0,
        200
    );
    let (s, e) = dial(&g, json!({"bot": "Orphan", "target": "tel:+1", "caller": "1"})).await;
    assert_eq!(
        (s, e.as_str()),
        (
            503,
            "bot 'Orphan' names no trunk and there is no single default trunk"
        )
    );
}

#[tokio::test]
async fn idempotency_key_returns_the_first_conversation() {
    let g = Gateway::start(&format!("{BASIC}\ndialoutLimitPerSecond = 0.1\n")).await;
    let body = json!({"bot": "Bot1", "target": "tel:+1", "caller": "1"});
    let send = |key: &'static str, body: Value| {
        client()
            .post(g.url("/api/v1/actions/dialout"))
            .basic_auth(ADMIN.0, Some(ADMIN.1))
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
    };
    let first = send("order-42", body.clone()).await.unwrap();
    assert_eq!(first.status(), 200);
    let id = first.json::<Value>().await.unwrap()["conversationId"].clone();
    // Same key and body: same answer, even though the rate limit would now refuse a new call.
    let again = send("order-42", body.clone()).await.unwrap();
    assert_eq!(again.status(), 200);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.json::<Value>().await.unwrap()["conversationId"], id);
    let (s, e) = error_of(
        send(
            "order-42",
            json!({"bot": "Bot1", "target": "tel:+2", "caller": "1"}),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(
        (s, e.as_str()),
        (
            409,
            "Idempotency-Key 'order-42' was already used with a different request body"
        )
    );
    let list: Value = g.get("/api/v1/conversations", ADMIN).await.json().await.unwrap();
    assert_eq!(
        list["conversations"].as_array().unwrap().len(),
        1,
        "no second call was placed"
    );
    // A new key is a new call (and meets the rate limit).
    assert_eq!(send("order-43", body.clone()).await.unwrap().status(), 429);
    let long: &'static str = Box::leak("k".repeat(256).into_boxed_str());
    let (s, e) = error_of(send(long, body).await.unwrap()).await;
    assert_eq!(
        (s, e.as_str()),
        (
            400,
            "Idempotency-Key header should be 1 to 255 visible ASCII characters"
        )
    );
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let g = Gateway::start(BASIC).await;
    let (s, e) = error_of(client().get(g.url("/api/v1/nope")).send().await.unwrap()).await;
    assert_eq!((s, e.as_str()), (404, "no such endpoint; see /docs for the API"));
    let (s, _) = error_of(g.get("/api/v1/actions/dialout", ADMIN).await).await;
    assert_eq!(s, 405);
}

/// What a public campaign dialer sends: an empty `caller` from an empty form field, and a bare E.164 number.
#[tokio::test]
async fn an_empty_caller_and_a_bare_number_are_accepted_as_dialers_send_them() {
    let g = Gateway::start(&format!("{BASIC}\ndialoutAllowedCallers = [\"1-800-111\"]\n")).await;
    let r = g
        .post(
            "/api/v1/actions/dialout",
            ADMIN,
            &json!({"bot": "Bot1", "target": "+15551234567", "caller": ""}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let id = r.json::<Value>().await.unwrap()["conversationId"]
        .as_str()
        .unwrap()
        .to_string();
    let rec: Value = g
        .get(&format!("/api/v1/conversations/{id}"), ADMIN)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(rec["request"]["target"], "tel:+15551234567");
    assert_eq!(
        rec["request"]["caller"], "1-800-111",
        "the bot's only caller, as when caller is left out"
    );
    // A SIP target may not smuggle headers or unknown parameters into the INVITE.
    for target in [
        "sip:alice@example.com?Subject=hi",
        "sip:alice@example.com;maddr=10.0.0.1",
    ] {
        let (status, msg) = dial(&g, json!({"bot": "Bot1", "target": target})).await;
        assert_eq!(
            (status, msg.as_str()),
            (400, "request/target should be a tel: or sip: URI"),
            "{target}"
        );
    }
}

/// Configuration changes never go back in time (issue 12 item 10): under concurrent writes, each application's
/// trunk and bot are usable by its very next request — no `400 trunk … not found`, no `404 bot … not found`.
#[tokio::test]
async fn concurrent_configuration_writes_are_visible_to_the_next_request() {
    // Many objects make each reload take a while, so that reloads overlap as on a busy gateway.
    let mut config = BASIC.to_string();
    for i in 0..400 {
        config.push_str(&format!(
            "\n[[bots]]\nname = \"Filler{i}\"\nbotUrl = \"http://127.0.0.1:9/bot\"\n"
        ));
    }
    let g = std::sync::Arc::new(Gateway::start(&config).await);
    let mut tasks = Vec::new();
    for i in 0..40 {
        let g = g.clone();
        tasks.push(tokio::spawn(async move {
            let trunk = json!({"name": format!("T{i}"), "address": "127.0.0.1:9", "keepAliveSec": 0});
            let r = g.post("/api/v1/trunks", ADMIN, &trunk).await;
            assert_eq!(r.status(), 201, "trunk T{i}");
            let bot = json!({"name": format!("C{i}"), "botUrl": "http://127.0.0.1:9/bot", "trunk": format!("T{i}")});
            let r = g.post("/api/v1/bots", ADMIN, &bot).await;
            let s = r.status();
            assert_eq!(s, 201, "bot C{i} on T{i}: {}", r.text().await.unwrap());
            let dial = json!({"bot": format!("C{i}"), "target": "tel:+1", "caller": "1"});
            let r = g.post("/api/v1/actions/dialout", ADMIN, &dial).await;
            let s = r.status();
            assert_eq!(s, 200, "dialout C{i}: {}", r.text().await.unwrap());
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}
