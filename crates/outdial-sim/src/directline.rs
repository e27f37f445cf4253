//! A local Direct Line 3.0 service with the reference bot behind it (docs/bots.md, "Microsoft Bot Framework"), as
//! strict as Microsoft's: the secret or the conversation's token on every request (`403` with the service's error
//! body otherwise, `TokenExpired` for an expired token), activities that must have a `type` and a `from.id`
//! (`400 BadArgument`), string watermarks, our own activities echoed in the history, and the WebSocket stream of
//! activity sets. Its bot is the reference bot's [`Script`], spoken in Bot Framework activities.

use crate::bot::{Script, replies};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use parking_lot::Mutex;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::broadcast;

#[derive(Default)]
struct Conversation {
    history: Vec<Value>,
    /// The activities the client sent, as received.
    received: Vec<Value>,
    /// The same, in the reference bot's (AudioCodes) encoding.
    as_acapi: Vec<Value>,
    token: String,
    /// Unix ms after which the token is refused with `TokenExpired`.
    expires_at: u64,
}

#[derive(Default)]
struct Inner {
    script: Script,
    secret: String,
    conversations: HashMap<String, Conversation>,
    /// Lifetime of the tokens it hands out (seconds); 0: they are expired at once.
    token_secs: u64,
    /// Drop each stream socket after its first activity set (the client must reconnect).
    drop_streams: bool,
    requests: Vec<String>,
    streams: HashMap<String, broadcast::Sender<Value>>,
    base: String,
}

/// The running service.
#[derive(Clone)]
pub struct FakeDirectLine {
    /// `http://127.0.0.1:port`: the bot's `directLineUrl`.
    pub url: String,
    inner: Arc<Mutex<Inner>>,
}

impl FakeDirectLine {
    pub fn set_script(&self, s: Script) {
        self.inner.lock().script = s;
    }
    /// The lifetime of the tokens handed out from now on (0: already expired when handed out).
    pub fn set_token_secs(&self, secs: u64) {
        self.inner.lock().token_secs = secs;
    }
    pub fn drop_streams(&self, on: bool) {
        self.inner.lock().drop_streams = on;
    }
    /// What the client with `from.id` `user` sent, as received.
    pub fn received(&self, user: &str) -> Vec<Value> {
        let inner = self.inner.lock();
        inner
            .conversations
            .values()
            .find(|c| c.received.iter().any(|a| a["from"]["id"] == user))
            .map(|c| c.received.clone())
            .unwrap_or_default()
    }
    /// `METHOD path` of every request, in order.
    pub fn requests(&self) -> Vec<String> {
        self.inner.lock().requests.clone()
    }
}

pub async fn start(listen: SocketAddr, secret: &str, script: Script) -> std::io::Result<FakeDirectLine> {
    let inner = Arc::new(Mutex::new(Inner {
        script,
        secret: secret.to_string(),
        token_secs: 1800,
        ..Default::default()
    }));
    let app = Router::new()
        .route("/v3/directline/conversations", post(create))
        .route("/v3/directline/tokens/refresh", post(refresh))
        .route("/v3/directline/conversations/{id}", get(reconnect))
        .route(
            "/v3/directline/conversations/{id}/activities",
            post(receive).get(list),
        )
        .route("/v3/directline/conversations/{id}/stream", get(stream))
        .with_state(inner.clone());
    let url = crate::serve_http(listen, app).await?;
    inner.lock().base = url.clone();
    Ok(FakeDirectLine { url, inner })
}

type S = State<Arc<Mutex<Inner>>>;

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({"error": {"code": code, "message": message}}))).into_response()
}

fn bearer(h: &HeaderMap) -> Option<String> {
    h.get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::to_string)
}

/// Whether `h` may act on conversation `id` (the secret opens every conversation; a token its own).
fn authorized(inner: &Inner, h: &HeaderMap, id: Option<&str>) -> Result<(), Box<Response>> {
    let Some(b) = bearer(h) else {
        return Err(Box::new(error(
            StatusCode::UNAUTHORIZED,
            "BadArgument",
            "Missing token or secret",
        )));
    };
    if b == inner.secret {
        return Ok(());
    }
    let own = inner
        .conversations
        .iter()
        .find(|(cid, c)| c.token == b && id.is_none_or(|i| i == cid.as_str()));
    match own {
        Some((_, c)) if c.expires_at <= crate::bot::unix_ms() => Err(Box::new(error(
            StatusCode::FORBIDDEN,
            "TokenExpired",
            "Token expired",
        ))),
        Some(_) => Ok(()),
        None => Err(Box::new(error(
            StatusCode::FORBIDDEN,
            "BadArgument",
            "Invalid token or secret",
        ))),
    }
}

fn new_token(inner: &Inner) -> (String, u64) {
    let t = format!("tok.{}", uuid::Uuid::new_v4().simple());
    (t, crate::bot::unix_ms() + inner.token_secs * 1000)
}

async fn create(State(s): S, h: HeaderMap) -> Response {
    let mut inner = s.lock();
    inner.requests.push("POST /conversations".into());
    if inner.script == Script::Unauthorized {
        return error(StatusCode::FORBIDDEN, "BadArgument", "Invalid token or secret");
    }
    if bearer(&h).as_deref() != Some(inner.secret.as_str()) {
        return error(StatusCode::FORBIDDEN, "BadArgument", "Invalid token or secret");
    }
    let id = format!("{}-eu", uuid::Uuid::new_v4().simple());
    let (token, expires_at) = new_token(&inner);
    let stream_url = format!(
        "{}/v3/directline/conversations/{id}/stream?t={token}",
        inner.base.replace("http", "ws")
    );
    let body = json!({"conversationId": id, "token": token, "expires_in": inner.token_secs, "streamUrl": stream_url});
    inner.conversations.insert(
        id,
        Conversation {
            token,
            expires_at,
            ..Default::default()
        },
    );
    (StatusCode::CREATED, Json(body)).into_response()
}

async fn refresh(State(s): S, h: HeaderMap) -> Response {
    let mut inner = s.lock();
    inner.requests.push("POST /tokens/refresh".into());
    if let Err(r) = authorized(&inner, &h, None) {
        return *r;
    }
    let b = bearer(&h).unwrap_or_default();
    let (token, expires_at) = new_token(&inner);
    let secs = inner.token_secs;
    let Some((id, c)) = inner.conversations.iter_mut().find(|(_, c)| c.token == b) else {
        return error(
            StatusCode::FORBIDDEN,
            "BadArgument",
            "A conversation token is required",
        );
    };
    c.token = token.clone();
    c.expires_at = expires_at;
    Json(json!({"conversationId": id, "token": token, "expires_in": secs})).into_response()
}

async fn reconnect(
    State(s): S,
    h: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut inner = s.lock();
    inner.requests.push(format!(
        "GET /conversations/{{id}}?watermark={}",
        q.get("watermark").map_or("", |w| w)
    ));
    if let Err(r) = authorized(&inner, &h, Some(&id)) {
        return *r;
    }
    let base = inner.base.replace("http", "ws");
    let Some(c) = inner.conversations.get(&id) else {
        return error(StatusCode::NOT_FOUND, "BadArgument", "Conversation not found");
    };
    let w = q.get("watermark").map_or("", |w| w);
    Json(json!({"conversationId": id, "token": c.token, "expires_in": 1800,
                "streamUrl": format!("{base}/v3/directline/conversations/{id}/stream?t={}&watermark={w}", c.token)}))
    .into_response()
}

async fn list(
    State(s): S,
    h: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut inner = s.lock();
    inner.requests.push("GET /activities".into());
    if let Err(r) = authorized(&inner, &h, Some(&id)) {
        return *r;
    }
    let Some(c) = inner.conversations.get(&id) else {
        return error(StatusCode::NOT_FOUND, "BadArgument", "Conversation not found");
    };
    let from: usize = match q.get("watermark").map(|w| w.parse()) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => return error(StatusCode::BAD_REQUEST, "BadArgument", "Invalid watermark"),
    };
    let activities: Vec<Value> = c.history.iter().skip(from).cloned().collect();
    Json(json!({"activities": activities, "watermark": c.history.len().to_string()})).into_response()
}

async fn receive(State(s): S, h: HeaderMap, Path(id): Path<String>, body: axum::body::Bytes) -> Response {
    let script = {
        let mut inner = s.lock();
        inner.requests.push("POST /activities".into());
        if let Err(r) = authorized(&inner, &h, Some(&id)) {
            return *r;
        }
        inner.script
    };
    let Ok(a) = serde_json::from_slice::<Value>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "BadArgument",
            "The request body is not a JSON activity",
        );
    };
    if !a["type"].is_string() || !a["from"]["id"].is_string() {
        return error(
            StatusCode::BAD_REQUEST,
            "BadArgument",
            "An activity needs a type and from.id",
        );
    }
    match script {
        Script::Broken => {
            return error(
                StatusCode::BAD_GATEWAY,
                "BotError",
                "Failed to send activity: bot returned an error",
            );
        }
        Script::Slow => tokio::time::sleep(std::time::Duration::from_secs(30)).await,
        Script::Rubbish => return (StatusCode::OK, "<html><body>Bad gateway</body></html>").into_response(),
        _ => {}
    }
    let mut inner = s.lock();
    let base = inner.base.clone();
    let Some(c) = inner.conversations.get_mut(&id) else {
        return error(StatusCode::NOT_FOUND, "BadArgument", "Conversation not found");
    };
    if script.fails_after(&c.as_acapi) {
        return error(
            StatusCode::BAD_GATEWAY,
            "BotError",
            "Failed to send activity: bot returned an error",
        );
    }
    let mut echoed = a.clone();
    echoed["id"] = json!(format!("{id}|{:07}", c.history.len()));
    echoed["conversation"] = json!({"id": id});
    c.received.push(a.clone());
    c.history.push(echoed.clone());
    let mut set = vec![echoed.clone()];
    let new = to_acapi(&a);
    c.as_acapi.push(new.clone());
    for r in replies(script, &base, &c.as_acapi, &[new]) {
        let mut out = from_acapi(&r);
        out["id"] = json!(format!("{id}|{:07}", c.history.len()));
        out["conversation"] = json!({"id": id});
        c.history.push(out.clone());
        set.push(out);
    }
    let watermark = c.history.len().to_string();
    if let Some(tx) = inner.streams.get(&id) {
        let _ = tx.send(json!({"activities": set, "watermark": watermark}));
    }
    Json(json!({"id": echoed["id"]})).into_response()
}

async fn stream(
    State(s): S,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    ws: WebSocketUpgrade,
) -> Response {
    let (rx, backlog, drop_after) = {
        let mut inner = s.lock();
        inner.requests.push("GET /stream".into());
        let t = q.get("t").cloned().unwrap_or_default();
        let Some(c) = inner.conversations.get(&id) else {
            return error(StatusCode::NOT_FOUND, "BadArgument", "Conversation not found");
        };
        if c.token != t {
            return error(StatusCode::FORBIDDEN, "BadArgument", "Invalid token");
        }
        let from: usize = q
            .get("watermark")
            .and_then(|w| w.parse().ok())
            .unwrap_or(c.history.len());
        let backlog: Vec<Value> = c.history.iter().skip(from).cloned().collect();
        let backlog = (!backlog.is_empty())
            .then(|| json!({"activities": backlog, "watermark": c.history.len().to_string()}));
        let drop_after = inner.drop_streams;
        let tx = inner
            .streams
            .entry(id)
            .or_insert_with(|| broadcast::channel(64).0);
        (tx.subscribe(), backlog, drop_after)
    };
    ws.on_upgrade(move |socket| pump(socket, rx, backlog, drop_after))
}

async fn pump(
    mut socket: WebSocket,
    mut rx: broadcast::Receiver<Value>,
    backlog: Option<Value>,
    drop_after: bool,
) {
    if let Some(b) = backlog
        && socket.send(Message::Text(b.to_string().into())).await.is_err()
    {
        return;
    }
    // An empty frame first: Direct Line's keep-alive.
    let _ = socket.send(Message::Text("".into())).await;
    while let Ok(set) = rx.recv().await {
        if socket.send(Message::Text(set.to_string().into())).await.is_err() || drop_after {
            return;
        }
    }
}

/// A client's Bot Framework activity in the reference bot's encoding.
fn to_acapi(a: &Value) -> Value {
    match (a["type"].as_str(), a["name"].as_str()) {
        (Some("event"), Some("channel")) if a["value"] == "telephony" => {
            json!({"type": "event", "name": "start", "parameters": a["channelData"]})
        }
        (Some("message"), _) => json!({"type": "message", "text": a["text"]}),
        _ => a.clone(),
    }
}

/// The reference bot's activity as a Bot Framework bot sends it: settings in `channelData`, SSML in `speak`.
fn from_acapi(r: &Value) -> Value {
    let mut out =
        json!({"type": r["type"], "from": {"id": "refbot", "name": "Reference bot", "role": "bot"}});
    if r["type"] == "message" {
        out["text"] = r["text"].clone();
        out["speak"] = json!(format!(
            "<speak>{}</speak>",
            r["text"].as_str().unwrap_or_default()
        ));
    } else {
        out["name"] = r["name"].clone();
    }
    for key in ["activityParams", "sessionParams"] {
        if !r[key].is_null() {
            out["channelData"][key] = r[key].clone();
        }
    }
    out
}
