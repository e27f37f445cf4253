//! Basic authentication's cache (docs/security.md, "Secrets"): a burst of requests with the same credentials
//! costs one Argon2 check, at a dialer's first burst and again when the remembered check expires.

use outdial_api::auth::{AuthSettings, Authenticator, hash_secret};
use outdial_api::catalog::Catalog;
use outdial_store::{Kind, SqlStore, Store};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

async fn authenticator(ttl: Duration) -> (Arc<Authenticator>, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("outdial-auth-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let store: Arc<dyn Store> = Arc::new(
        SqlStore::connect(&format!("sqlite://{}/t.db", dir.display()))
            .await
            .unwrap(),
    );
    for id in ["a", "b"] {
        let app = json!({"clientId": id, "name": id, "enabled": true,
            "secretHash": hash_secret(&format!("{id}-secret-1")).unwrap(),
            "policies": [{"role": "OUTDIAL/ADMIN", "scope": "*", "effect": "allow"}]});
        store.upsert_object(Kind::Application, id, &app).await.unwrap();
    }
    let catalog = Catalog::load(store.clone()).await.unwrap();
    let settings = AuthSettings {
        cache_ttl: ttl,
        ..AuthSettings::default()
    };
    let auth = Authenticator::new(settings, catalog, &store.signing_key().await.unwrap()).unwrap();
    (Arc::new(auth), dir)
}

/// `n` checks of `id` / `secret` at once; the error texts of those that failed.
async fn burst(auth: &Arc<Authenticator>, id: &str, secret: &str, n: usize) -> Vec<String> {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (auth, id, secret) = (auth.clone(), id.to_string(), secret.to_string());
            tokio::spawn(async move { auth.check_client(&id, &secret).await })
        })
        .collect();
    let mut errors = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(caller) => assert_eq!(caller.client_id, id),
            Err(e) => errors.push(e.to_string()),
        }
    }
    errors
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_with_the_same_credentials_costs_one_check() {
    let (auth, dir) = authenticator(Duration::from_millis(500)).await;
    assert!(burst(&auth, "a", "a-secret-1", 24).await.is_empty());
    assert_eq!(
        auth.secret_checks(),
        1,
        "24 requests that missed the cache together"
    );
    // Remembered: no check at all.
    assert!(burst(&auth, "a", "a-secret-1", 8).await.is_empty());
    assert_eq!(auth.secret_checks(), 1);
    // Other credentials are checked on their own, beside it.
    assert!(burst(&auth, "b", "b-secret-1", 8).await.is_empty());
    assert_eq!(auth.secret_checks(), 2);
    // A wrong secret is never remembered: each try is checked (one at a time), and each fails.
    let errors = burst(&auth, "a", "a-secret-2", 4).await;
    assert_eq!(errors.len(), 4);
    assert!(
        errors.iter().all(|e| e.contains("invalid client credentials")),
        "{errors:?}"
    );
    assert_eq!(auth.secret_checks(), 6);
    // Once the remembered check expires, the next burst again costs one.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(burst(&auth, "a", "a-secret-1", 16).await.is_empty());
    assert_eq!(auth.secret_checks(), 7);
    assert_eq!(
        auth.checks_in_flight(),
        0,
        "every finished check leaves nothing behind"
    );
    // Requests dropped mid-check (clients that hang up), each with another wrong secret: nothing stays behind.
    let dropped: Vec<_> = (0..8)
        .map(|n| {
            let auth = auth.clone();
            tokio::spawn(async move { auth.check_client("a", &format!("guess-{n}")).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert!(auth.checks_in_flight() > 0, "the guesses are under way");
    for t in &dropped {
        t.abort();
    }
    for t in dropped {
        assert!(t.await.unwrap_err().is_cancelled());
    }
    assert_eq!(auth.checks_in_flight(), 0);
    std::fs::remove_dir_all(&dir).ok();
}
