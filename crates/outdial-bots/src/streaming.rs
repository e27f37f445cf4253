//! The AudioCodes Bot API in streaming mode (`ac-api-streaming`, docs/bots.md, "Streaming bots"): one WebSocket per call, JSON
//! text frames. outdial sends `session.initiate` (with the call's fields) and waits for `session.accepted` (the bot
//! picks the media format, or names none: a text bot), then the call's activities, and the person's audio as
//! `userStream.chunk` (base64) while a user stream is on: the conversation starts it after the answer and the
//! `start` activity, and stops it when the bot has recognised what the person said ([`BotSession::user_stream`]).
//! The bot sends activities, its audio (`playStream.start` / `.chunk` / `.stop`) and speech events
//! (`userStream.speech.*`, for barge-in and transcripts). A dropped socket is reopened once with `session.resume`;
//! `session.end` tells the bot why the call ended, and the socket is closed with code 1000.
//!
//! A text bot (`streamingMode: text`, or a `session.accepted` without `mediaFormat`) gets no audio: it exchanges
//! activities as in the HTTP mode, and the gateway does the speech.

use crate::ws::{Socket, clip, connect, send};
use crate::{BotConnector, BotError, BotSession, Command, FromBot, MediaFormat, Speech};
use base64::Engine as _;
use futures_util::StreamExt;
use outdial_core::StreamingMode;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// The formats outdial offers, best first (8 kHz is what the call carries: no resampling).
const OFFERED: [MediaFormat; 3] = [
    MediaFormat::Lpcm16_8k,
    MediaFormat::Mulaw,
    MediaFormat::Lpcm16_16k,
];

#[derive(Debug, Clone)]
pub struct AcStreaming {
    /// docs/security.md: the socket's address passes the bots' network policy.
    guard: outdial_net::Guarded,
    url: String,
    token: Option<String>,
    bot_name: String,
    mode: StreamingMode,
    timeout: Duration,
}

/// The call's fields that `session.initiate` carries (those of the `start` event that describe the call).
const CALL_FIELDS: [&str; 6] = [
    "caller",
    "callee",
    "callerHost",
    "calleeHost",
    "callerDisplayName",
    "outboundTarget",
];

impl AcStreaming {
    /// `bot_url`: `ws://`, `wss://` (or `http(s)://`, taken as the same address over WebSocket).
    pub fn new(
        guard: outdial_net::Guarded,
        bot_url: &str,
        token: Option<String>,
        bot_name: &str,
        mode: StreamingMode,
    ) -> Result<Self, BotError> {
        let url = crate::ws::ws_url(bot_url);
        if !(url.starts_with("ws://") || url.starts_with("wss://")) {
            return Err(BotError::Protocol(format!(
                "botUrl {bot_url} is not a WebSocket URL"
            )));
        }
        Ok(AcStreaming {
            guard,
            url,
            token,
            bot_name: bot_name.to_string(),
            mode,
            timeout: Duration::from_secs(10),
        })
    }

    async fn connect(&self) -> Result<Socket, BotError> {
        connect(&self.guard, &self.url, self.token.as_deref(), self.timeout).await
    }

    /// Sends `first` and waits for `session.accepted` (its media format, if it names one) or `session.error`.
    async fn handshake(&self, ws: &mut Socket, first: Value) -> Result<Option<MediaFormat>, BotError> {
        send(ws, &first).await?;
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            let frame = tokio::time::timeout_at(deadline, ws.next())
                .await
                .map_err(|_| BotError::Unreachable("no session.accepted within 10 s".into()))?;
            let v = match frame {
                Some(Ok(Message::Text(t))) => serde_json::from_str::<Value>(&t)
                    .map_err(|_| BotError::Protocol(format!("a {}-byte frame that is not JSON", t.len())))?,
                Some(Ok(Message::Close(_))) | None => {
                    return Err(BotError::Unreachable("the bot closed the WebSocket".into()));
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(BotError::Unreachable(e.to_string())),
            };
            match v["type"].as_str() {
                Some("session.accepted") => {
                    let Some(f) = v["mediaFormat"].as_str().filter(|f| !f.is_empty()) else {
                        return Ok(None);
                    };
                    return MediaFormat::parse(f)
                        .filter(|f| OFFERED.contains(f))
                        .map(Some)
                        .ok_or_else(|| {
                            BotError::Protocol(format!("the bot chose media format {}, not offered", clip(f)))
                        });
                }
                Some("session.error") => {
                    let reason = v["reason"].as_str().unwrap_or("session.error");
                    return Err(BotError::SessionRefused(clip(reason)));
                }
                _ => {}
            }
        }
    }
}

#[async_trait::async_trait]
impl BotConnector for AcStreaming {
    async fn validate(&self) -> Result<(), BotError> {
        let mut ws = self.connect().await?;
        send(&mut ws, &json!({"type": "connection.validate"})).await?;
        let answer = tokio::time::timeout(self.timeout, ws.next())
            .await
            .map_err(|_| BotError::Unreachable("no connection.validated within 10 s".into()))?;
        let _ = ws.close(None).await;
        match answer {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(&t).unwrap_or(Value::Null);
                if v["type"] == "connection.validated" && v["success"] != false {
                    Ok(())
                } else {
                    Err(BotError::Protocol(format!(
                        "validation answered a {}-byte frame that is not connection.validated",
                        t.len()
                    )))
                }
            }
            Some(Ok(_)) => Err(BotError::Protocol(
                "validation answered a frame that is not text".into(),
            )),
            Some(Err(e)) => Err(BotError::Unreachable(e.to_string())),
            None => Err(BotError::Unreachable("the bot closed the WebSocket".into())),
        }
    }

    async fn open(&self, conversation: &str, call: &Value) -> Result<BotSession, BotError> {
        let mut ws = self.connect().await?;
        let audio = self.mode == StreamingMode::Audio;
        let mut initiate = json!({"type": "session.initiate", "conversationId": conversation,
            "expectAudioMessages": audio, "botName": self.bot_name});
        if audio {
            initiate["supportedMediaFormats"] = json!(OFFERED.iter().map(|f| f.as_str()).collect::<Vec<_>>());
        }
        for field in CALL_FIELDS {
            if let Some(v) = call.get(field) {
                initiate[field] = v.clone();
            }
        }
        let accepted = self.handshake(&mut ws, initiate).await?;
        // A text bot: no audio either way, whatever the bot named.
        let format = accepted.filter(|_| audio);
        let (events_tx, events) = mpsc::channel(256);
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let (audio_tx, audio_rx) = mpsc::channel(256);
        tokio::spawn(run(
            self.clone(),
            Session {
                conversation: conversation.to_string(),
                format,
                stream: Stream::default(),
            },
            ws,
            events_tx,
            (commands_rx, audio_rx),
        ));
        Ok(BotSession {
            events: Some(events),
            commands,
            audio: format.map(|_| audio_tx),
            media: format,
            detached: None,
        })
    }
}

/// The user stream (the person's audio to the bot).
#[derive(Debug, Default, Clone, Copy)]
struct Stream {
    /// The conversation wants it on (`userStream.start` sent, `userStream.stop` not).
    on: bool,
    /// The bot answered `userStream.started` (and not yet `userStream.stopped`).
    started: bool,
}

struct Session {
    conversation: String,
    format: Option<MediaFormat>,
    stream: Stream,
}

impl Session {
    fn frame(&self, kind: &str) -> Value {
        json!({"type": kind, "conversationId": self.conversation})
    }

    /// Starts or stops the user stream (audio bots only; a repeated request is not sent twice).
    async fn user_stream(&mut self, ws: &mut Socket, on: bool) -> Result<(), BotError> {
        if self.format.is_none() || self.stream.on == on {
            return Ok(());
        }
        self.stream.on = on;
        if !on {
            self.stream.started = false;
        }
        send(
            ws,
            &self.frame(if on { "userStream.start" } else { "userStream.stop" }),
        )
        .await
    }
}

/// One streaming conversation.
async fn run(
    bot: AcStreaming,
    mut session: Session,
    mut ws: Socket,
    events: mpsc::Sender<FromBot>,
    (mut commands, mut audio): (mpsc::UnboundedReceiver<Box<Command>>, mpsc::Receiver<Vec<u8>>),
) {
    let mut seen: HashSet<String> = HashSet::new();
    let mut resumed = false;
    let b64 = base64::engine::general_purpose::STANDARD;
    loop {
        tokio::select! {
            cmd = commands.recv() => {
                let out = match cmd.map(|c| *c) {
                    Some(Command::Send(activities, done)) => {
                        let v = json!({"type": "activities", "conversationId": session.conversation,
                                       "activities": activities});
                        let r = send(&mut ws, &v).await;
                        if let Some(done) = done {
                            let _ = done.send(r.clone());
                        }
                        r
                    }
                    Some(Command::UserStream(on)) => session.user_stream(&mut ws, on).await,
                    Some(Command::Close { reason, reason_code, done }) => {
                        end(&mut ws, &mut session, &reason, &reason_code).await;
                        let _ = done.send(());
                        return;
                    }
                    None => {
                        end(&mut ws, &mut session, "call ended", "client-disconnected").await;
                        return;
                    }
                };
                if let Err(e) = out {
                    tracing::warn!(conversation = session.conversation, "bot WebSocket: {e}");
                }
            }
            Some(bytes) = audio.recv() => {
                if session.stream.on && session.stream.started {
                    let mut v = session.frame("userStream.chunk");
                    v["audioChunk"] = b64.encode(bytes).into();
                    if let Err(e) = send(&mut ws, &v).await {
                        tracing::warn!(conversation = session.conversation, "bot WebSocket: {e}");
                    }
                }
            }
            frame = ws.next() => {
                let text = match frame {
                    Some(Ok(Message::Text(t))) => t.to_string(),
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Binary(_) | Message::Frame(_))) => continue,
                    // Dropped: reopened once with session.resume.
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                        if !resumed && let Some(new) = resume(&bot, &mut session).await {
                            resumed = true;
                            ws = new;
                            continue;
                        }
                        let why = BotError::Unreachable("the bot's WebSocket closed".into());
                        let _ = events.send(FromBot::Failed(why)).await;
                        return;
                    }
                };
                let Ok(v) = serde_json::from_str::<Value>(&text) else {
                    tracing::warn!(conversation = session.conversation, "the bot sent a frame that is not JSON: {}", clip(&text));
                    continue;
                };
                let event = match v["type"].as_str().unwrap_or("") {
                    "activities" => {
                        for act in v["activities"].as_array().into_iter().flatten() {
                            if let Some(id) = act["id"].as_str() && !seen.insert(id.to_string()) {
                                continue;
                            }
                            if events.send(FromBot::Activity(act.clone())).await.is_err() {
                                return;
                            }
                        }
                        continue;
                    }
                    "userStream.started" => {
                        session.stream.started = session.stream.on;
                        continue;
                    }
                    "userStream.stopped" => {
                        session.stream.started = false;
                        continue;
                    }
                    // A text bot's audio has nowhere to go.
                    _ if session.format.is_none() && v["type"].as_str().is_some_and(|t| t.starts_with("playStream.")) => continue,
                    "playStream.chunk" => match b64.decode(v["audioChunk"].as_str().unwrap_or("")) {
                        Ok(bytes) => FromBot::Audio(bytes),
                        Err(_) => continue,
                    },
                    "playStream.stop" => FromBot::AudioEnd,
                    "userStream.speech.started" => FromBot::Speech(Speech::Started),
                    "userStream.speech.hypothesis" => FromBot::Speech(Speech::Hypothesis(alternative(&v).0)),
                    "userStream.speech.recognition" => {
                        let (text, confidence) = alternative(&v);
                        FromBot::Speech(Speech::Recognition { text, confidence })
                    }
                    "session.error" => {
                        let reason = v["reason"].as_str().unwrap_or("session.error");
                        let _ = events.send(FromBot::Failed(BotError::SessionRefused(clip(reason)))).await;
                        return;
                    }
                    _ => continue,
                };
                if events.send(event).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// The first alternative of a speech event: its text and confidence.
fn alternative(v: &Value) -> (String, f32) {
    let a = v["alternatives"].get(0).unwrap_or(v);
    (
        a["text"].as_str().unwrap_or_default().to_string(),
        a["confidence"].as_f64().unwrap_or(0.0) as f32,
    )
}

/// A new socket for the conversation after the old one dropped: `session.resume` (the session keeps its media
/// format), then the user stream again if it was on.
async fn resume(bot: &AcStreaming, session: &mut Session) -> Option<Socket> {
    let mut ws = bot.connect().await.ok()?;
    let first = session.frame("session.resume");
    bot.handshake(&mut ws, first).await.ok()?;
    let was_on = session.stream.on;
    session.stream = Stream::default();
    if was_on {
        session.user_stream(&mut ws, true).await.ok()?;
    }
    tracing::info!(conversation = session.conversation, "bot WebSocket resumed");
    Some(ws)
}

/// The end of the session: the user stream stopped (if on), `session.end` with the reason, and a close frame with
/// code 1000.
async fn end(ws: &mut Socket, session: &mut Session, reason: &str, reason_code: &str) {
    let _ = session.user_stream(ws, false).await;
    let mut v = session.frame("session.end");
    v["reasonCode"] = reason_code.into();
    v["reason"] = reason.into();
    let _ = send(ws, &v).await;
    let frame = CloseFrame {
        code: CloseCode::Normal,
        reason: "session ended".into(),
    };
    let _ = ws.close(Some(frame)).await;
}
