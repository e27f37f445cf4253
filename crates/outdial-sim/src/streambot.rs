//! The reference bot in streaming mode (`ac-api-streaming`, docs/bots.md, "Streaming bots"), at `/stream` of the reference
//! bot: it accepts the session in `raw/lpcm16_8` (or the first format offered that it knows), answers the user
//! stream, plays a 1.5 s prompt (a 440 Hz tone: this bot has no speech engine) when the `start` event arrives, and
//! listens: once it has heard at least 0.4 s of the person's voice followed by 0.7 s of quiet, it hangs up with
//! `botOperationResult` `heard` and `botOperationData` `speechMs=N` (how much loud audio it received). It records
//! the control frames it got (initiate, resume, end) for tests. Script `DropSocket` closes the socket once after
//! `start`, to exercise `session.resume`.

use crate::bot::{Inner, Script};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::response::Response;
use base64::Engine as _;
use parking_lot::Mutex;
use serde_json::{Value, json};
use std::sync::Arc;

pub(crate) async fn upgrade(State(s): State<Arc<Mutex<Inner>>>, ws: WebSocketUpgrade) -> Response {
    ws.on_upgrade(move |socket| session(socket, s))
}

/// HTTP mode's proactive channel (`websocketURL`, script `Proactive`): once the call's `start` event has arrived,
/// the bot pushes a message and a hangup.
pub(crate) async fn proactive(
    State(s): State<Arc<Mutex<Inner>>>,
    Path(id): Path<String>,
    ws: WebSocketUpgrade,
) -> Response {
    ws.on_upgrade(move |mut socket| async move {
        for _ in 0..100 {
            let started = s
                .lock()
                .received
                .get(&id)
                .is_some_and(|r| r.iter().any(|a| a["name"] == "start"));
            if started {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let push = json!({"activities": [
            {"type": "message", "id": uuid::Uuid::new_v4().to_string(), "text": "This is a proactive message. Goodbye."},
            {"type": "event", "id": uuid::Uuid::new_v4().to_string(), "name": "hangup",
             "activityParams": {"hangupReason": "proactive", "botOperationResult": "proactive"}}]});
        if socket.send(Message::Text(push.to_string().into())).await.is_ok() {
            while let Some(Ok(_)) = socket.recv().await {}
        }
    })
}

#[derive(Clone, Copy, PartialEq)]
enum Format {
    Mulaw,
    Pcm8,
    Pcm16,
}

impl Format {
    fn name(self) -> &'static str {
        match self {
            Format::Mulaw => "raw/mulaw",
            Format::Pcm8 => "raw/lpcm16_8",
            Format::Pcm16 => "raw/lpcm16",
        }
    }

    fn pick(offered: &Value) -> Format {
        let offered: Vec<&str> = offered
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        if offered.contains(&"raw/lpcm16_8") {
            return Format::Pcm8;
        }
        for f in offered {
            match f {
                "raw/mulaw" => return Format::Mulaw,
                "raw/lpcm16" => return Format::Pcm16,
                _ => {}
            }
        }
        Format::Pcm8
    }

    /// 8 kHz samples of a chunk (16 kHz is halved).
    fn decode(self, bytes: &[u8]) -> Vec<i16> {
        match self {
            Format::Mulaw => bytes
                .iter()
                .map(|&b| outdial_media::g711::ulaw_decode(b))
                .collect(),
            Format::Pcm8 => bytes
                .chunks_exact(2)
                .map(|c| i16::from_le_bytes([c[0], c[1]]))
                .collect(),
            Format::Pcm16 => bytes
                .chunks_exact(4)
                .map(|c| i16::from_le_bytes([c[0], c[1]]))
                .collect(),
        }
    }

    fn encode(self, pcm8k: &[i16]) -> Vec<u8> {
        match self {
            Format::Mulaw => pcm8k
                .iter()
                .map(|&s| outdial_media::g711::ulaw_encode(s))
                .collect(),
            Format::Pcm8 => pcm8k.iter().flat_map(|s| s.to_le_bytes()).collect(),
            Format::Pcm16 => pcm8k
                .iter()
                .flat_map(|s| [s.to_le_bytes(), s.to_le_bytes()].concat())
                .collect(),
        }
    }
}

/// What the bot has heard of the person so far.
#[derive(Default)]
struct Ear {
    loud_ms: u64,
    quiet_ms: u64,
    spoke: bool,
    done: bool,
}

async fn session(mut ws: WebSocket, s: Arc<Mutex<Inner>>) {
    let mut conversation = String::new();
    let mut format = Format::Pcm8;
    let mut ear = Ear::default();
    let mut pending = Vec::<i16>::new();
    let b64 = base64::engine::general_purpose::STANDARD;
    while let Some(Ok(msg)) = ws.recv().await {
        let Message::Text(text) = msg else { continue };
        let Ok(v) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        let kind = v["type"].as_str().unwrap_or("").to_string();
        if let Some(c) = v["conversationId"].as_str() {
            conversation = c.to_string();
        }
        if kind != "userStream.chunk" && kind != "activities" {
            s.lock()
                .frames
                .entry(conversation.clone())
                .or_default()
                .push(v.clone());
        }
        let mut out: Vec<Value> = Vec::new();
        match kind.as_str() {
            "connection.validate" => out.push(json!({"type": "connection.validated", "success": true})),
            "session.initiate" | "session.resume" => {
                if kind == "session.initiate" {
                    format = Format::pick(&v["supportedMediaFormats"]);
                }
                s.lock().received.entry(conversation.clone()).or_default();
                out.push(json!({"type": "session.accepted", "mediaFormat": format.name()}));
            }
            "userStream.start" => out.push(json!({"type": "userStream.started"})),
            "userStream.stop" => out.push(json!({"type": "userStream.stopped"})),
            "activities" => {
                let new: Vec<Value> = v["activities"].as_array().cloned().unwrap_or_default();
                let started = new.iter().any(|a| a["name"] == "start");
                let drop_now = {
                    let mut inner = s.lock();
                    inner
                        .received
                        .entry(conversation.clone())
                        .or_default()
                        .extend(new);
                    started && inner.script == Script::DropSocket && {
                        inner.script = Script::Silent;
                        true
                    }
                };
                if drop_now {
                    // The socket drops; outdial must come back with session.resume.
                    return;
                }
                if started {
                    out.push(
                        json!({"type": "playStream.start", "streamId": "1", "mediaFormat": format.name()}),
                    );
                    let tone: Vec<i16> = (0..12_000)
                        .map(|i| {
                            (8000.0 * (2.0 * std::f32::consts::PI * 440.0 * i as f32 / 8000.0).sin()) as i16
                        })
                        .collect();
                    for chunk in tone.chunks(800) {
                        out.push(json!({"type": "playStream.chunk", "streamId": "1",
                                        "audioChunk": b64.encode(format.encode(chunk))}));
                    }
                    out.push(json!({"type": "playStream.stop", "streamId": "1"}));
                }
            }
            "userStream.chunk" => {
                let Ok(bytes) = b64.decode(v["audioChunk"].as_str().unwrap_or("")) else {
                    continue;
                };
                pending.extend(format.decode(&bytes));
                while pending.len() >= 160 && !ear.done {
                    let frame: Vec<i16> = pending.drain(..160).collect();
                    let loud = outdial_detect::vad::level_db(&frame) > -35.0;
                    if loud {
                        if !ear.spoke {
                            out.push(json!({"type": "userStream.speech.started"}));
                        }
                        ear.spoke = true;
                        ear.loud_ms += 20;
                        ear.quiet_ms = 0;
                    } else if ear.spoke {
                        ear.quiet_ms += 20;
                    }
                    if ear.loud_ms >= 400 && ear.quiet_ms >= 700 {
                        ear.done = true;
                        out.push(json!({"type": "activities", "activities": [{
                            "type": "event", "id": uuid::Uuid::new_v4().to_string(), "name": "hangup",
                            "activityParams": {"hangupReason": "heard the person", "botOperationResult": "heard",
                                               "botOperationData": format!("speechMs={}", ear.loud_ms)}}]}));
                    }
                }
            }
            "session.end" => {
                s.lock().disconnected.insert(conversation.clone(), v.clone());
                return;
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
