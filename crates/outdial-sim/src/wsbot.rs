//! Reference bots written from AudioCodes' WebSocket Bot API (`ac-api-streaming`, docs/bots.md, "Streaming bots"),
//! as AudioCodes' own Bot API SDK behaves: it answers `session.initiate` / `session.resume` with
//! `session.accepted`, `userStream.start` / `.stop` with `userStream.started` / `.stopped`, and records every frame
//! it gets (audio chunks aside) and the close frame, in order, for tests.
//!
//! * `/ws/text`: a text bot. Its `session.accepted` names no media format; it greets on `start` with a question,
//!   and at the first `message` (what the person said, recognised by the gateway) it says goodbye and hangs up
//!   with `"type": "Event"` (as AudioCodes' sample bot writes it), `botOperationResult` `heard` and what it heard
//!   in `botOperationData`.
//! * `/ws/echo`: a voice-echo bot in `raw/lpcm16_8`. It listens to the user stream; when the person has spoken
//!   (0.4 s of voice, then 0.7 s of quiet) it sends `userStream.speech.recognition` and plays what it heard back
//!   once the gateway has stopped the user stream. When the stream starts again after its second echo it hangs
//!   up (`botOperationResult` `echoed`, `botOperationData` `turns=2`).
//! * `/ws/refuse`: answers `session.initiate` with `session.error` (`reason` "campaign closed").

use crate::bot::Inner;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use base64::Engine as _;
use parking_lot::Mutex;
use serde_json::{Value, json};
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Echo,
    Refuse,
}

pub(crate) async fn text(State(s): State<Arc<Mutex<Inner>>>, ws: WebSocketUpgrade) -> Response {
    ws.on_upgrade(move |socket| session(socket, s, Kind::Text))
}

pub(crate) async fn echo(State(s): State<Arc<Mutex<Inner>>>, ws: WebSocketUpgrade) -> Response {
    ws.on_upgrade(move |socket| session(socket, s, Kind::Echo))
}

pub(crate) async fn refuse(State(s): State<Arc<Mutex<Inner>>>, ws: WebSocketUpgrade) -> Response {
    ws.on_upgrade(move |socket| session(socket, s, Kind::Refuse))
}

fn activity(kind: &str, fields: Value) -> Value {
    let mut a = json!({"type": kind, "id": uuid::Uuid::new_v4().to_string()});
    if let (Some(a), Value::Object(f)) = (a.as_object_mut(), fields) {
        a.extend(f);
    }
    a
}

/// The echo bot's ear: one utterance at a time.
#[derive(Default)]
struct Ear {
    utterance: Vec<i16>,
    loud_ms: u64,
    quiet_ms: u64,
}

impl Ear {
    /// A 20 ms frame; true when an utterance has just ended.
    fn hear(&mut self, frame: &[i16]) -> bool {
        let loud = outdial_detect::vad::level_db(frame) > -35.0;
        if loud {
            self.loud_ms += 20;
            self.quiet_ms = 0;
        } else if self.loud_ms > 0 {
            self.quiet_ms += 20;
        }
        if self.loud_ms > 0 {
            self.utterance.extend_from_slice(frame);
        }
        self.loud_ms >= 400 && self.quiet_ms >= 700
    }
}

struct Echo {
    ear: Ear,
    pending: Vec<i16>,
    /// What was heard and is to be played back once the user stream stops.
    to_play: Option<Vec<i16>>,
    streaming: bool,
    echoes: u32,
}

async fn session(mut ws: WebSocket, s: Arc<Mutex<Inner>>, kind: Kind) {
    let mut conversation = String::new();
    let mut echo = Echo {
        ear: Ear::default(),
        pending: Vec::new(),
        to_play: None,
        streaming: false,
        echoes: 0,
    };
    let b64 = base64::engine::general_purpose::STANDARD;
    let record = |conversation: &str, v: Value| {
        s.lock()
            .frames
            .entry(conversation.to_string())
            .or_default()
            .push(v);
    };
    while let Some(Ok(msg)) = ws.recv().await {
        let text = match msg {
            Message::Text(t) => t,
            Message::Close(frame) => {
                let (code, reason) = frame.map_or((0, String::new()), |f| (f.code, f.reason.to_string()));
                record(
                    &conversation,
                    json!({"type": "close", "code": code, "reason": reason}),
                );
                return;
            }
            _ => continue,
        };
        let Ok(v) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        let kind_of = v["type"].as_str().unwrap_or("").to_string();
        if let Some(c) = v["conversationId"].as_str() {
            conversation = c.to_string();
        }
        if kind_of != "userStream.chunk" {
            record(&conversation, v.clone());
        }
        let mut out: Vec<Value> = Vec::new();
        match kind_of.as_str() {
            "session.initiate" if kind == Kind::Refuse => {
                out.push(json!({"type": "session.error", "conversationId": conversation, "reason": "campaign closed"}));
            }
            "session.initiate" | "session.resume" => {
                s.lock().received.entry(conversation.clone()).or_default();
                out.push(match kind {
                    Kind::Echo => json!({"type": "session.accepted", "mediaFormat": "raw/lpcm16_8"}),
                    _ => json!({"type": "session.accepted"}),
                });
            }
            "userStream.start" => {
                echo.streaming = true;
                out.push(json!({"type": "userStream.started"}));
                if kind == Kind::Echo && echo.echoes >= 2 {
                    out.push(json!({"type": "activities", "activities": [activity("Event", json!({
                        "name": "hangup", "activityParams": {"hangupReason": "echoed twice",
                        "botOperationResult": "echoed", "botOperationData": format!("turns={}", echo.echoes)}}))]}));
                }
            }
            "userStream.stop" => {
                echo.streaming = false;
                out.push(json!({"type": "userStream.stopped"}));
                // It answers once the stream has stopped, as the SDK's voice bots do.
                if let Some(pcm) = echo.to_play.take() {
                    echo.echoes += 1;
                    let id = format!("echo-{}", echo.echoes);
                    out.push(
                        json!({"type": "playStream.start", "streamId": id, "mediaFormat": "raw/lpcm16_8"}),
                    );
                    for chunk in pcm.chunks(1600) {
                        let bytes: Vec<u8> = chunk.iter().flat_map(|x| x.to_le_bytes()).collect();
                        out.push(json!({"type": "playStream.chunk", "streamId": id, "audioChunk": b64.encode(bytes)}));
                    }
                    out.push(json!({"type": "playStream.stop", "streamId": id}));
                }
            }
            "activities" => {
                let new: Vec<Value> = v["activities"].as_array().cloned().unwrap_or_default();
                s.lock()
                    .received
                    .entry(conversation.clone())
                    .or_default()
                    .extend(new.iter().cloned());
                if kind != Kind::Text {
                    continue;
                }
                for a in new {
                    if a["type"] == "event" && a["name"] == "start" {
                        let question = "Hello, this is the text bot. Would you like to hear more?";
                        out.push(json!({"type": "activities", "activities": [activity("message", json!({"text": question}))]}));
                    } else if a["type"] == "message" {
                        let heard = a["text"].as_str().unwrap_or_default().to_string();
                        out.push(json!({"type": "activities", "activities": [
                            activity("message", json!({"text": "Thank you. Goodbye."})),
                            activity("Event", json!({"name": "hangup", "activityParams": {
                                "hangupReason": "text bot done", "botOperationResult": "heard",
                                "botOperationData": heard}}))]}));
                    }
                }
            }
            "userStream.chunk" if kind == Kind::Echo && echo.streaming && echo.to_play.is_none() => {
                let Ok(bytes) = b64.decode(v["audioChunk"].as_str().unwrap_or("")) else {
                    continue;
                };
                echo.pending
                    .extend(bytes.chunks_exact(2).map(|c| i16::from_le_bytes([c[0], c[1]])));
                while echo.pending.len() >= 160 && echo.to_play.is_none() {
                    let frame: Vec<i16> = echo.pending.drain(..160).collect();
                    if echo.ear.hear(&frame) {
                        let heard = std::mem::take(&mut echo.ear).utterance;
                        out.push(json!({"type": "userStream.speech.recognition",
                            "alternatives": [{"text": format!("utterance {}", echo.echoes + 1), "confidence": 0.9}]}));
                        echo.to_play = Some(heard);
                        echo.pending.clear();
                    }
                }
            }
            "session.end" => {
                s.lock().disconnected.insert(conversation.clone(), v.clone());
            }
            _ => {}
        }
        for frame in out {
            if ws.send(Message::Text(frame.to_string().into())).await.is_err() {
                return;
            }
        }
    }
}
