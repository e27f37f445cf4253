//! A reference AudioCodes bot (Bot API, HTTP mode, docs/bots.md) on 127.0.0.1: it greets the person by the
//! dialout's `participantName`, ends the call (`hangup` with a `botOperationResult`) or stays silent, as scripted,
//! and keeps every activity it received so that tests and the demo can show what a bot sees. The same bot speaks
//! the streaming mode at `/stream` ([`crate::streambot`]).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use parking_lot::Mutex;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

/// How the bot behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Script {
    /// Answers every request with no activity.
    #[default]
    Silent,
    /// Greets on `start`, then hangs up at once with `botOperationResult` `greeted`.
    GreetAndHangUp,
    /// Asks for a transfer to `sip:agent@example.com` on `start`.
    Transfer,
    /// Every request fails with 503 (an unreachable bot).
    Broken,
    /// Greets with `userNoInputTimeoutMS` 1000 and hangs up at the first `noUserInput` event.
    NoInput,
    /// Takes 15 s to answer the create request (a bot that hangs).
    Slow,
    /// Takes 3 s to answer the create request (within the client's timeout), then answers nothing.
    LateOpen,
    /// Answers the create request with something that is not JSON.
    Rubbish,
    /// Greets by name and asks a yes/no question; a "yes" or "no" from the person ends the call with
    /// `botOperationResult` `yes` / `no` and what was heard in `botOperationData`; anything else is asked again.
    /// On an answering machine it leaves a message after the beep (or the greeting's timeout) and hangs up with
    /// `voicemail`.
    Ask,
    /// Answers `start` with `startRecognition` (listens before saying anything) and nothing else.
    ListenFirst,
    /// Streaming mode: closes the WebSocket once after the `start` event (outdial must resume the session).
    DropSocket,
    /// Answers nothing over HTTP but offers a `websocketURL`, and pushes a message and a hangup
    /// (`botOperationResult` `proactive`) over it once the call has started.
    Proactive,
    /// Plays its own recording with `playUrl` (`/audio/prompt.wav`, "Yes please."), then one that does not exist,
    /// then hangs up.
    PlayUrl,
    /// Plays `/audio/slow.wav`, a recording its server answers only after 10 s (a slow media server).
    PlayUrlSlow,
    /// Opens conversations but answers every activity with 401 (a bot that refuses the call).
    Unauthorized,
    /// Greets like `Ask`, then fails every later request with 503 (a bot that breaks during the call).
    GreetThenFail,
}

impl Script {
    /// Whether a request that comes after `earlier` activities fails (`GreetThenFail` once the call started).
    pub(crate) fn fails_after(self, earlier: &[Value]) -> bool {
        self == Script::GreetThenFail && earlier.iter().any(|a| a["name"] == "start")
    }
}

#[derive(Default)]
pub(crate) struct Inner {
    pub(crate) script: Script,
    /// Activities received, by conversation, in order.
    pub(crate) received: HashMap<String, Vec<Value>>,
    /// When each message activity (what the person said) arrived: conversation → Unix ms, in order.
    messages_at: HashMap<String, Vec<u64>>,
    /// Disconnect bodies, by conversation.
    pub(crate) disconnected: HashMap<String, Value>,
    /// Streaming mode: the control frames received (`session.initiate`, `session.resume`, …), by conversation.
    pub(crate) frames: HashMap<String, Vec<Value>>,
    /// `http://host:port` of the bot (for the URLs of its own audio).
    base: String,
}

/// The running bot.
#[derive(Clone)]
pub struct RefBot {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
}

impl RefBot {
    pub fn received(&self, conversation: &str) -> Vec<Value> {
        self.inner
            .lock()
            .received
            .get(conversation)
            .cloned()
            .unwrap_or_default()
    }

    /// When the person's messages reached the bot (Unix ms), in order.
    pub fn messages_at(&self, conversation: &str) -> Vec<u64> {
        self.inner
            .lock()
            .messages_at
            .get(conversation)
            .cloned()
            .unwrap_or_default()
    }

    /// Streaming mode: the control frames of a conversation (`session.initiate`, `session.resume`,
    /// `session.end`, …), in order.
    pub fn frames(&self, conversation: &str) -> Vec<Value> {
        self.inner
            .lock()
            .frames
            .get(conversation)
            .cloned()
            .unwrap_or_default()
    }

    /// The streaming endpoint of this bot (`ac-api-streaming`).
    pub fn stream_url(&self) -> String {
        self.url.replace("http://", "ws://").replace("/bot", "/stream")
    }

    /// The WebSocket address of one of the reference bots written from AudioCodes' protocol: `text`, `echo` or
    /// `refuse` (see `wsbot`).
    pub fn ws_url(&self, which: &str) -> String {
        self.url
            .replace("http://", "ws://")
            .replace("/bot", &format!("/ws/{which}"))
    }

    pub fn disconnected(&self, conversation: &str) -> Option<Value> {
        self.inner.lock().disconnected.get(conversation).cloned()
    }

    pub fn set_script(&self, script: Script) {
        self.inner.lock().script = script;
    }

    /// Where the `playUrl` scripts say the recordings are (`http://host:port`); the bot's own server by default.
    pub fn set_media_base(&self, base: &str) {
        self.inner.lock().base = base.to_string();
    }
}

fn activity(kind: &str, fields: Value) -> Value {
    let mut a = json!({"type": kind, "id": uuid::Uuid::new_v4().to_string()});
    if let (Some(a), Some(f)) = (a.as_object_mut(), fields.as_object()) {
        a.extend(f.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    a
}

/// The answer to a batch of activities (`new`), given everything received so far.
pub(crate) fn replies(script: Script, base: &str, received: &[Value], new: &[Value]) -> Vec<Value> {
    if matches!(script, Script::NoInput | Script::Ask) && new.iter().any(|a| a["name"] == "noUserInput") {
        return vec![activity(
            "event",
            json!({"name": "hangup",
            "activityParams": {"hangupReason": "no input", "botOperationResult": "no-input"}}),
        )];
    }
    if script == Script::Ask
        && let Some(said) = new.iter().find(|a| a["type"] == "message")
    {
        return answer(said["text"].as_str().unwrap_or_default());
    }
    if script == Script::Ask
        && new.iter().any(|a| {
            a["name"] == "machineDetection"
                && a["value"]
                    .as_str()
                    .is_some_and(|v| v.starts_with("voicemail-prompt-end"))
        })
    {
        return vec![
            activity(
                "message",
                json!({"text": "Hello, this is the reference bot with news about our offer. Please call us back."}),
            ),
            activity(
                "event",
                json!({"name": "hangup",
                "activityParams": {"hangupReason": "left a voicemail", "botOperationResult": "voicemail"}}),
            ),
        ];
    }
    if !new.iter().any(|a| a["name"] == "start") {
        return Vec::new();
    }
    let start = received
        .iter()
        .find(|a| a["type"] == "event" && a["name"] == "start");
    let Some(start) = start else { return Vec::new() };
    let name = start["parameters"]["dialoutMetadata"]["participantName"]
        .as_str()
        .unwrap_or("there");
    match script {
        Script::GreetAndHangUp => vec![
            activity(
                "message",
                json!({"text": format!("Hello {name}, this is the reference bot. Goodbye.")}),
            ),
            activity(
                "event",
                json!({"name": "hangup",
                "activityParams": {"hangupReason": "greeted and done", "botOperationResult": "greeted",
                                   "botOperationData": format!("name={name}")}}),
            ),
        ],
        Script::Transfer => vec![activity(
            "event",
            json!({"name": "transfer",
            "activityParams": {"transferTarget": "sip:agent@example.com", "handoverReason": "wants a person",
                               "transferSipHeaders": [{"name": "X-Transfer-Reason", "value": "wants a person"}]}}),
        )],
        Script::NoInput => vec![activity(
            "message",
            json!({"text": format!("Hello {name}."), "sessionParams": {"userNoInputTimeoutMS": 1000}}),
        )],
        Script::Ask | Script::GreetThenFail => vec![activity(
            "message",
            json!({"text": format!("Hello {name}, this is the reference bot. Would you like to hear about our new offer?")}),
        )],
        Script::ListenFirst => vec![activity("event", json!({"name": "startRecognition"}))],
        Script::PlayUrl => {
            vec![
                activity(
                    "event",
                    json!({"name": "playUrl", "activityParams": {"playUrlUrl": format!("{base}/audio/prompt.wav")}}),
                ),
                activity(
                    "event",
                    json!({"name": "playUrl", "activityParams": {"playUrlUrl": format!("{base}/audio/missing.wav")}}),
                ),
                activity(
                    "event",
                    json!({"name": "hangup", "activityParams": {"hangupReason": "played"}}),
                ),
            ]
        }
        Script::PlayUrlSlow => vec![activity(
            "event",
            json!({"name": "playUrl", "activityParams": {"playUrlUrl": format!("{base}/audio/slow.wav")}}),
        )],
        Script::Silent
        | Script::Broken
        | Script::Unauthorized
        | Script::Slow
        | Script::LateOpen
        | Script::Rubbish
        | Script::DropSocket
        | Script::Proactive => Vec::new(),
    }
}

/// The `Ask` script's reply to what the person said.
fn answer(text: &str) -> Vec<Value> {
    let words: Vec<String> = text
        .to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect();
    let has = |w: &str| words.iter().any(|x| x == w);
    let (reply, result) = if has("yes") || has("yeah") || has("sure") {
        ("Great, an agent will call you back. Goodbye.", "yes")
    } else if has("no") || has("nope") {
        ("No problem. Goodbye.", "no")
    } else {
        return vec![activity(
            "message",
            json!({"text": "Sorry, please say yes or no."}),
        )];
    };
    vec![
        activity("message", json!({"text": reply})),
        activity(
            "event",
            json!({"name": "hangup",
            "activityParams": {"hangupReason": format!("answered {result}"), "botOperationResult": result,
                               "botOperationData": text}}),
        ),
    ]
}

pub async fn start(listen: SocketAddr, script: Script) -> std::io::Result<RefBot> {
    let inner = Arc::new(Mutex::new(Inner {
        script,
        ..Default::default()
    }));
    let app = Router::new()
        .route(
            "/bot",
            get(|State(s): State<Arc<Mutex<Inner>>>| async move {
                if s.lock().script == Script::Broken {
                    return StatusCode::SERVICE_UNAVAILABLE.into_response();
                }
                Json(json!({"type": "ac-bot-api", "success": true})).into_response()
            })
            .post(|State(s): State<Arc<Mutex<Inner>>>, Json(b): Json<Value>| async move {
                let script = s.lock().script;
                match script {
                    Script::Broken => return StatusCode::SERVICE_UNAVAILABLE.into_response(),
                    Script::Slow => tokio::time::sleep(std::time::Duration::from_secs(15)).await,
                    Script::LateOpen => tokio::time::sleep(std::time::Duration::from_secs(3)).await,
                    Script::Rubbish => return "<html>oops</html>".into_response(),
                    _ => {}
                }
                let Some(id) = b["conversation"].as_str() else {
                    return (StatusCode::BAD_REQUEST, "no conversation").into_response();
                };
                s.lock().received.entry(id.to_string()).or_default();
                let mut created = json!({
                    "activitiesURL": format!("conversation/{id}/activities"),
                    "refreshURL": format!("conversation/{id}/refresh"),
                    "disconnectURL": format!("conversation/{id}/disconnect"),
                    "expiresSeconds": 120,
                });
                if script == Script::Proactive {
                    created["websocketURL"] = json!(format!("conversation/{id}/ws"));
                }
                Json(created).into_response()
            }),
        )
        .route(
            "/conversation/{id}/activities",
            post(|State(s): State<Arc<Mutex<Inner>>>, Path(id): Path<String>, Json(b): Json<Value>| async move {
                let mut inner = s.lock();
                let script = inner.script;
                let base = inner.base.clone();
                let Some(list) = inner.received.get_mut(&id) else {
                    return StatusCode::NOT_FOUND.into_response();
                };
                let new: Vec<Value> = b["activities"].as_array().cloned().unwrap_or_default();
                let failing = script.fails_after(list);
                list.extend(new.iter().cloned());
                if failing {
                    return StatusCode::SERVICE_UNAVAILABLE.into_response();
                }
                if script == Script::Unauthorized {
                    return (StatusCode::UNAUTHORIZED, Json(json!({"error": "not allowed to call"}))).into_response();
                }
                let out = replies(script, &base, list, &new);
                let now = unix_ms();
                let said = new.iter().filter(|a| a["type"] == "message").count();
                inner.messages_at.entry(id).or_default().extend(std::iter::repeat_n(now, said));
                Json(json!({"activities": out})).into_response()
            }),
        )
        .route("/conversation/{id}/refresh", post(|| async { Json(json!({"expiresSeconds": 120})) }))
        .route(
            "/conversation/{id}/disconnect",
            post(|State(s): State<Arc<Mutex<Inner>>>, Path(id): Path<String>, Json(b): Json<Value>| async move {
                s.lock().disconnected.insert(id, b);
                Json(json!({}))
            }),
        )
        .route("/stream", get(crate::streambot::upgrade))
        .route("/ws/text", get(crate::wsbot::text))
        .route("/ws/echo", get(crate::wsbot::echo))
        .route("/ws/refuse", get(crate::wsbot::refuse))
        .route("/conversation/{id}/ws", get(crate::streambot::proactive))
        .route(
            "/audio/prompt.wav",
            get(|| async { ([("content-type", "audio/wav")], crate::YES_PLEASE) }),
        )
        .route(
            "/audio/slow.wav",
            get(|| async {
                tokio::time::sleep(std::time::Duration::from_secs(10)).await;
                ([("content-type", "audio/wav")], crate::YES_PLEASE)
            }),
        )
        .with_state(inner.clone());
    let base = crate::serve_http(listen, app).await?;
    inner.lock().base = base.clone();
    Ok(RefBot {
        url: format!("{base}/bot"),
        inner,
    })
}

/// Wall-clock milliseconds since the Unix epoch.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
