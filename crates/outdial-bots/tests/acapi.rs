//! The AudioCodes Bot API connector against a fake bot that follows docs/bots.md (a real HTTP server on
//! 127.0.0.1): relative URLs, Bearer tokens, refresh, de-duplication, retry, disconnect, failures.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, response::IntoResponse};
use outdial_bots::acapi::AcApi;
use outdial_bots::{BotConnector, BotError, FromBot};
use parking_lot::Mutex;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

#[derive(Default)]
struct Bot {
    received: Vec<Value>,
    refreshes: u32,
    disconnects: Vec<Value>,
    fail_next: u32,
    calls: u32,
    tokens_issued: u32,
}

type Shared = Arc<Mutex<Bot>>;

fn authorized(h: &HeaderMap) -> bool {
    h.get("authorization").and_then(|v| v.to_str().ok()) == Some("Bearer secret-token")
}

async fn fake_bot() -> (String, Shared) {
    let state: Shared = Arc::default();
    let app = Router::new()
        .route(
            "/bot",
            get(|h: HeaderMap| async move {
                if !authorized(&h) {
                    return (StatusCode::UNAUTHORIZED, Json(json!({"error": "bad token"}))).into_response();
                }
                Json(json!({"type": "ac-bot-api", "success": true})).into_response()
            })
            .post(|h: HeaderMap, Json(b): Json<Value>| async move {
                if !authorized(&h) {
                    return StatusCode::UNAUTHORIZED.into_response();
                }
                let id = b["conversation"].as_str().unwrap().to_string();
                Json(json!({
                    "activitiesURL": format!("conversation/{id}/activities"),
                    "refreshURL": format!("conversation/{id}/refresh"),
                    "disconnectURL": format!("conversation/{id}/disconnect"),
                    "expiresSeconds": 2,
                }))
                .into_response()
            }),
        )
        .route(
            "/conversation/{id}/activities",
            post(
                |State(s): State<Shared>, Path(id): Path<String>, Json(b): Json<Value>| async move {
                    let mut bot = s.lock();
                    if id != "c-1" {
                        return StatusCode::NOT_FOUND.into_response();
                    }
                    if bot.fail_next > 0 {
                        bot.fail_next -= 1;
                        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
                    }
                    bot.calls += 1;
                    bot.received
                        .extend(b["activities"].as_array().unwrap().iter().cloned());
                    let greeting = json!({"type": "message", "id": "m1", "text": "Hello Alice"});
                    let answer = match bot.calls {
                        1 => json!({"activities": [greeting]}),
                        // A repeat of m1 (to be ignored) and a hangup with the bot's result.
                        2 => json!({"activities": [greeting, {"type": "event", "id": "h1", "name": "hangup",
                        "activityParams": {"hangupReason": "done", "botOperationResult": "yes"}}]}),
                        _ => json!({}),
                    };
                    Json(answer).into_response()
                },
            ),
        )
        .route(
            "/token",
            post(|State(s): State<Shared>, body: String| async move {
                // application/x-www-form-urlencoded, RFC 6749 4.4.
                let ok = body.contains("grant_type=client_credentials")
                    && body.contains("client_id=outdial")
                    && body.contains("client_secret=s3cret");
                if !ok {
                    return (StatusCode::UNAUTHORIZED, Json(json!({"error": "invalid_client"})))
                        .into_response();
                }
                s.lock().tokens_issued += 1;
                Json(json!({"access_token": "secret-token", "token_type": "Bearer", "expires_in": 3600}))
                    .into_response()
            }),
        )
        .route(
            "/conversation/{id}/refresh",
            post(|State(s): State<Shared>| async move {
                s.lock().refreshes += 1;
                Json(json!({"expiresSeconds": 2}))
            }),
        )
        .route(
            "/conversation/{id}/disconnect",
            post(|State(s): State<Shared>, Json(b): Json<Value>| async move {
                s.lock().disconnects.push(b);
                Json(json!({}))
            }),
        )
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/bot", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, state)
}

fn api(url: &str, token: &str) -> AcApi {
    AcApi::new(url, Some(token.to_string()), Duration::from_secs(2)).unwrap()
}

async fn next(s: &mut outdial_bots::BotSession) -> FromBot {
    tokio::time::timeout(Duration::from_secs(3), s.next_event())
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn a_conversation_from_start_to_disconnect() {
    let (url, bot) = fake_bot().await;
    let a = api(&url, "secret-token");
    a.validate().await.unwrap();
    let mut s = a.open("c-1", &serde_json::Value::Null).await.unwrap();
    let start = outdial_bots::activity::start(json!({"callee": "+123456789"}), "en-US");
    s.send(vec![start.clone()]);
    let FromBot::Activity(greeting) = next(&mut s).await else {
        panic!()
    };
    assert_eq!(greeting["text"], "Hello Alice");
    assert_eq!(bot.lock().received, vec![start]);
    // The repeated m1 is dropped; the hangup comes through.
    s.send(vec![outdial_bots::activity::message("yes please", 0.9, "en-US")]);
    let FromBot::Activity(hangup) = next(&mut s).await else {
        panic!()
    };
    assert_eq!(hangup["name"], "hangup");
    // Refreshed at half of expiresSeconds (2 s).
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert!(bot.lock().refreshes >= 1, "refreshed");
    s.close("Bot hung up", "bot-disconnected").await;
    assert_eq!(
        bot.lock().disconnects,
        vec![json!({"conversation": "c-1", "reason": "Bot hung up", "reasonCode": "bot-disconnected"})]
    );
}

#[tokio::test]
async fn tokens_failures_and_retries() {
    let (url, bot) = fake_bot().await;
    assert_eq!(
        api(&url, "wrong").validate().await,
        Err(BotError::Refused {
            status: 401,
            bytes: "{\"error\":\"bad token\"}".len()
        })
    );
    // docs/security.md: the answer's body is never echoed.
    assert_eq!(
        api(&url, "wrong").validate().await.unwrap_err().to_string(),
        "bot refused the request: HTTP 401 (21-byte answer)"
    );
    let mut s = api(&url, "secret-token")
        .open("c-1", &serde_json::Value::Null)
        .await
        .unwrap();
    // One 500 is retried; two end the bot conversation.
    bot.lock().fail_next = 1;
    s.send(vec![json!({"type": "event", "name": "x"})]);
    assert!(matches!(next(&mut s).await, FromBot::Activity(_)));
    bot.lock().fail_next = 2;
    s.send(vec![json!({"type": "event", "name": "y"})]);
    match next(&mut s).await {
        FromBot::Failed(BotError::Unreachable(why)) => assert!(why.ends_with("HTTP 500"), "{why}"),
        other => panic!("{other:?}"),
    }
    // An unknown conversation is refused with 404.
    let mut other = api(&url, "secret-token")
        .open("c-2", &serde_json::Value::Null)
        .await
        .unwrap();
    other.send(vec![json!({"type": "event", "name": "z"})]);
    assert!(matches!(
        next(&mut other).await,
        FromBot::Failed(BotError::Refused { status: 404, .. })
    ));
    // Nobody listening: unreachable at once, saying why.
    let err = api("http://127.0.0.1:9/bot", "t")
        .open("c-3", &serde_json::Value::Null)
        .await
        .err()
        .unwrap();
    assert!(
        matches!(&err, BotError::Unreachable(w) if w.contains("refused")),
        "{err}"
    );
    assert!(err.to_string().starts_with("bot unreachable: "));
}

#[tokio::test]
async fn oauth_client_credentials_towards_the_bot() {
    use outdial_bots::oauth::{Client, TokenCache};
    let (url, bot) = fake_bot().await;
    let token_url = url.replace("/bot", "/token");
    let http = outdial_net::Guarded::new(
        outdial_net::NetworkPolicy::built_in(outdial_net::Purpose::Bots),
        Duration::from_secs(2),
        Duration::from_secs(2),
    )
    .unwrap();
    let cache = TokenCache::default();
    let client = |secret: &str| Client {
        token_url: token_url.clone(),
        client_id: "outdial".into(),
        client_secret: secret.into(),
        scope: Some("bot.read".into()),
    };
    let a = AcApi::with_oauth(http.clone(), &url, client("s3cret"), cache.clone()).unwrap();
    a.validate().await.unwrap();
    // Another call's connector shares the cached token.
    let b = AcApi::with_oauth(http.clone(), &url, client("s3cret"), cache.clone()).unwrap();
    b.open("c-1", &serde_json::Value::Null).await.unwrap();
    assert_eq!(bot.lock().tokens_issued, 1);
    // Bad client credentials: the token endpoint's refusal is the error.
    let bad = AcApi::with_oauth(http, &url, client("wrong"), cache).unwrap();
    match bad.validate().await {
        Err(BotError::Refused { status: 401, bytes }) => assert!(bytes > 0),
        other => panic!("{other:?}"),
    }
}
