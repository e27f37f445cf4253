//! The API with an in-process call engine that keeps conversations alive until hung up: the concurrency
//! limit, its release on every path and its expiry, over a real socket and a real SQLite store.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly.

use async_trait::async_trait;
use outdial_api::auth::{AuthSettings, Authenticator, hash_secret};
use outdial_api::catalog::Catalog;
use outdial_api::engine::{AcceptedCall, CallEngine, EngineError, HangupOutcome};
use outdial_api::{App, router};
use outdial_core::Trunk;
use outdial_limits::LocalLimiter;
use outdial_store::{Kind, SqlStore, Store};
use parking_lot::Mutex;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// Holds accepted calls (and so their leases) until `hangup`.
#[derive(Default)]
struct HoldingEngine {
    calls: Mutex<HashMap<Uuid, AcceptedCall>>,
}

#[async_trait]
impl CallEngine for HoldingEngine {
    async fn start(&self, call: AcceptedCall) {
        self.calls.lock().insert(call.conversation.id, call);
    }
    async fn hangup(&self, id: Uuid) -> HangupOutcome {
        match self.calls.lock().remove(&id) {
            Some(_) => HangupOutcome::Ending, // dropping the call drops its lease
            None => HangupOutcome::NotRunning,
        }
    }
    fn trunk_usable(&self, trunk: &Trunk) -> Result<(), EngineError> {
        if trunk.name == "down" {
            Err(EngineError::TrunkDown(
                "trunk 'down' is not answering OPTIONS".into(),
            ))
        } else {
            Ok(())
        }
    }
    fn ready(&self) -> Result<(), EngineError> {
        Ok(())
    }
}

struct Api {
    base: String,
    engine: Arc<HoldingEngine>,
}

async fn start(bot: Value) -> Api {
    let dir = std::env::temp_dir().join(format!("outdial-api-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let store: Arc<dyn Store> = Arc::new(
        SqlStore::connect(&format!("sqlite://{}/t.db", dir.display()))
            .await
            .unwrap(),
    );
    store
        .upsert_object(
            Kind::Trunk,
            "t1",
            &json!({"name": "t1", "address": "127.0.0.1:5099", "default": true}),
        )
        .await
        .unwrap();
    store
        .upsert_object(
            Kind::Trunk,
            "down",
            &json!({"name": "down", "address": "127.0.0.1:5098"}),
        )
        .await
        .unwrap();
    let name = bot["name"].as_str().unwrap().to_string();
    store.upsert_object(Kind::Bot, &name, &bot).await.unwrap();
    let app = json!({"clientId": "a", "name": "a", "enabled": true, "secretHash": hash_secret("a-secret-1").unwrap(),
        "policies": [{"role": "OUTDIAL/ADMIN", "scope": "*", "effect": "allow"}]});
    store.upsert_object(Kind::Application, "a", &app).await.unwrap();
    let catalog = Catalog::load(store.clone()).await.unwrap();
    let auth = Authenticator::new(
        AuthSettings::default(),
        catalog.clone(),
        &store.signing_key().await.unwrap(),
    )
    .unwrap();
    let engine = Arc::new(HoldingEngine::default());
    let state = Arc::new(App::new(
        store,
        catalog,
        auth,
        Arc::new(LocalLimiter::new()),
        engine.clone(),
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router(state)).await });
    Api { base, engine }
}

impl Api {
    async fn dial(&self, bot: &str) -> (u16, Option<String>, Value) {
        let r = reqwest::Client::new()
            .post(format!("{}/api/v1/actions/dialout", self.base))
            .basic_auth("a", Some("a-secret-1"))
            .json(&json!({"bot": bot, "target": "tel:+1", "caller": "1"}))
            .send()
            .await
            .unwrap();
        let retry = r
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_string());
        (r.status().as_u16(), retry, r.json().await.unwrap())
    }

    async fn hangup(&self, id: &str) -> u16 {
        reqwest::Client::new()
            .delete(format!("{}/api/v1/conversations/{id}", self.base))
            .basic_auth("a", Some("a-secret-1"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }
}

#[tokio::test]
async fn concurrency_limit_is_released_by_hangup() {
    let api = start(json!({"name": "B", "botUrl": "http://x", "dialoutMaxConcurrentCalls": 2})).await;
    let (s1, _, v1) = api.dial("B").await;
    let (s2, _, _) = api.dial("B").await;
    assert_eq!((s1, s2), (200, 200));
    let (s, retry, v) = api.dial("B").await;
    assert_eq!((s, retry.as_deref()), (429, Some("1")));
    assert_eq!(
        v["error"],
        "dialout concurrent calls limit for bot 'B' reached (2)"
    );
    assert_eq!(
        api.engine.calls.lock().len(),
        2,
        "the refused request reached no engine"
    );
    // Hanging one up through the API frees its slot.
    assert_eq!(api.hangup(v1["conversationId"].as_str().unwrap()).await, 202);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(api.dial("B").await.0, 200);
    assert_eq!(api.dial("B").await.0, 429);
    assert_eq!(api.hangup(&Uuid::new_v4().to_string()).await, 404);
}

#[tokio::test]
async fn concurrency_slots_expire() {
    let api = start(
        json!({"name": "B", "botUrl": "http://x", "dialoutMaxConcurrentCalls": 1,
        "dialoutConcurrentCallsExpirationSeconds": 10}),
    )
    .await;
    assert_eq!(api.dial("B").await.0, 200);
    assert_eq!(api.dial("B").await.0, 429);
    tokio::time::sleep(Duration::from_millis(9_000)).await;
    assert_eq!(api.dial("B").await.0, 429, "still counted before the expiry");
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert_eq!(
        api.dial("B").await.0,
        200,
        "counted at most dialoutConcurrentCallsExpirationSeconds"
    );
    assert_eq!(
        api.engine.calls.lock().len(),
        2,
        "the first call is still alive; only its slot expired"
    );
}

#[tokio::test]
async fn unusable_trunk_answers_503_and_consumes_nothing() {
    let api =
        start(json!({"name": "B", "botUrl": "http://x", "trunk": "down", "dialoutMaxConcurrentCalls": 1}))
            .await;
    let (s, _, v) = api.dial("B").await;
    assert_eq!(
        (s, v["error"].as_str()),
        (503, Some("trunk 'down' is not answering OPTIONS"))
    );
    assert!(api.engine.calls.lock().is_empty());
}
