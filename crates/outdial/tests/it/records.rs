//! Conversation records (pages, events, hang-up through the API) and the operations endpoints (health,
//! readiness, metrics, the OpenAPI document and its docs page) against the real binary.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly.

use crate::common;

use common::{ADMIN, BASIC, Gateway, client, error_of};
use reqwest::Method;
use serde_json::{Value, json};

/// Waits until the conversation reaches `state` and returns its record.
async fn wait_state(g: &Gateway, id: &str, state: &str) -> Value {
    let mut rec = Value::Null;
    for _ in 0..100 {
        rec = g
            .get(&format!("/api/v1/conversations/{id}"), ADMIN)
            .await
            .json()
            .await
            .unwrap();
        if rec["state"] == state {
            return rec;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("conversation {id} did not reach {state}: {rec}");
}

#[tokio::test]
async fn conversations_records_pages_events_and_hangup() {
    let g = Gateway::start(BASIC).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let r = g
            .post(
                "/api/v1/actions/dialout",
                ADMIN,
                &json!({"bot": "Bot1", "target": format!("tel:+1{i}"), "caller": "1"}),
            )
            .await;
        ids.push(
            r.json::<Value>().await.unwrap()["conversationId"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let page: Value = g
        .get("/api/v1/conversations?limit=2", ADMIN)
        .await
        .json()
        .await
        .unwrap();
    let got: Vec<&str> = page["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["conversationId"].as_str().unwrap())
        .collect();
    assert_eq!(got, [ids[4].as_str(), ids[3].as_str()], "newest first");
    let cursor = page["nextCursor"].as_str().unwrap();
    let page2: Value = g
        .get(&format!("/api/v1/conversations?limit=2&cursor={cursor}"), ADMIN)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page2["conversations"][0]["conversationId"], ids[2].as_str());
    let page3: Value = g
        .get(
            &format!(
                "/api/v1/conversations?limit=2&cursor={}",
                page2["nextCursor"].as_str().unwrap()
            ),
            ADMIN,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page3["conversations"].as_array().unwrap().len(), 1);
    assert!(page3.get("nextCursor").is_none());
    for (q, msg) in [
        (
            "limit=0",
            "query parameter 'limit' should be an integer from 1 to 500",
        ),
        (
            "status=done",
            "query parameter 'status' should be one of: accepted, dialing, ringing, answered, ended, failed, completed, live",
        ),
        (
            "since=yesterday",
            "query parameter 'since' should be an RFC 3339 date-time",
        ),
        (
            "cursor=zzz",
            "query parameter 'cursor' is not a cursor returned by this endpoint",
        ),
        (
            "colour=red",
            "unknown query parameter 'colour'; known: bot, status, since, until, limit, cursor",
        ),
    ] {
        assert_eq!(
            error_of(g.get(&format!("/api/v1/conversations?{q}"), ADMIN).await).await,
            (400, msg.to_string()),
            "{q}"
        );
    }
    // The trunk (127.0.0.1:5099) does not answer: live now, hung up through the API.
    let live: Value = g
        .get("/api/v1/conversations?status=live&bot=Bot1", ADMIN)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(live["conversations"].as_array().unwrap().len(), 5);
    let r = g
        .send(
            Method::DELETE,
            &format!("/api/v1/conversations/{}", ids[0]),
            ADMIN,
            None,
        )
        .await;
    assert_eq!(r.status(), 202);
    let rec = wait_state(&g, &ids[0], "failed").await;
    assert_eq!(
        (
            rec["status"].as_str(),
            rec["reasonCode"].as_str(),
            rec["reason"].as_str()
        ),
        (Some("failed"), Some("error"), Some("ended by API"))
    );
    let events: Value = g
        .get(&format!("/api/v1/conversations/{}/events", ids[0]), ADMIN)
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
    assert_eq!(kinds, ["accepted", "dialing", "failed"]);
    assert_eq!(
        events[1]["data"]["requestUri"], "sip:+10@127.0.0.1:5099;user=phone",
        "tel: target through the trunk"
    );
    assert_eq!(
        error_of(
            g.send(
                Method::DELETE,
                &format!("/api/v1/conversations/{}", ids[0]),
                ADMIN,
                None
            )
            .await
        )
        .await,
        (409, format!("conversation '{}' has already ended", ids[0]))
    );
    assert_eq!(
        error_of(g.get("/api/v1/conversations/not-a-uuid", ADMIN).await).await,
        (400, "conversation id 'not-a-uuid' is not a UUID".into())
    );
    let missing = uuid::Uuid::new_v4();
    assert_eq!(
        error_of(g.get(&format!("/api/v1/conversations/{missing}"), ADMIN).await).await,
        (404, format!("conversation '{missing}' not found"))
    );
}

#[tokio::test]
async fn health_ready_metrics_openapi_docs() {
    let g = Gateway::start(BASIC).await;
    let c = client();
    assert_eq!(c.get(g.url("/healthz")).send().await.unwrap().status(), 200);
    // docs/security.md: anyone learns whether the gateway is ready; only an authenticated caller learns why.
    let anonymous: Value = c
        .get(g.url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(anonymous, json!({"status": "ready"}));
    let wrong: Value = c
        .get(g.url("/readyz"))
        .basic_auth(ADMIN.0, Some("wrong-secret"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(wrong, json!({"status": "ready"}));
    let ready: Value = g.get("/readyz", ADMIN).await.json().await.unwrap();
    assert_eq!(ready["checks"]["store"], "ok");
    assert_eq!(ready["checks"]["trunks"]["t1"], "unknown", "{ready}");
    let doc: Value = c
        .get(g.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/api/v1/actions/dialout"]["post"].is_object());
    assert!(
        c.get(g.url("/docs/"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
            .contains("swagger")
    );
    g.get("/api/v1/bots", ADMIN).await;
    let m = c
        .get(g.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        m.contains("outdial_http_requests_total{method=\"GET\",route=\"/api/v1/bots\",status=\"200\"} 1"),
        "{m}"
    );
    // docs/operations.md, "Metrics": every metric says what it is, and a watched trunk is 0 until it answers.
    assert!(
        m.contains("# HELP outdial_http_requests_total API requests by method, route template and status"),
        "{m}"
    );
    assert!(m.contains("outdial_trunk_up{trunk=\"t1\"} 0"), "{m}");
}
