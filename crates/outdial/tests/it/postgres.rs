//! The real binary on PostgreSQL (a fresh database on the local server): configuration, dialout, records,
//! restart with a token issued before it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly.

use crate::common;

use common::{ADMIN, BASIC, Gateway, client, temp_dir};
use serde_json::{Value, json};

#[tokio::test]
async fn the_gateway_runs_on_postgresql() {
    let url = outdial_store::testing::fresh_postgres()
        .await
        .expect("PostgreSQL at 127.0.0.1:5432 (scripts/test.sh starts it)");
    let mut g = Gateway::start_on(
        temp_dir(),
        url.clone(),
        &format!("{BASIC}\ndialoutLimitPerSecond = 100\n"),
        &[],
    );
    let tok = g.token(ADMIN.0, ADMIN.1, None).await;
    let r = client()
        .post(g.url("/api/v1/actions/dialout"))
        .bearer_auth(&tok)
        .header("Idempotency-Key", "pg-1")
        .json(&json!({"bot": "Bot1", "target": "tel:+1", "caller": "1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let id = r.json::<Value>().await.unwrap()["conversationId"]
        .as_str()
        .unwrap()
        .to_string();
    g.restart();
    let again = client()
        .post(g.url("/api/v1/actions/dialout"))
        .bearer_auth(&tok)
        .header("Idempotency-Key", "pg-1")
        .json(&json!({"bot": "Bot1", "target": "tel:+1", "caller": "1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        again.json::<Value>().await.unwrap()["conversationId"],
        id.as_str(),
        "idempotency survives restart"
    );
    let rec: Value = g
        .get(&format!("/api/v1/conversations/{id}"), ADMIN)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(rec["bot"], "Bot1");
    let ready: Value = g.get("/readyz", ADMIN).await.json().await.unwrap();
    assert_eq!(ready["checks"]["store"], "ok");
    g.kill();
    outdial_store::testing::drop_postgres(&url).await;
}
