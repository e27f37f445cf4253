//! The AudioCodes Bot API in streaming mode (`ac-api-streaming`, docs/bots.md, "Streaming bots"): one WebSocket per call, JSON
//! text frames. outdial sends `session.initiate` and waits for `session.accepted` (the bot picks the media
//! format), then the call's activities, and the person's audio as `userStream.chunk` (base64) once the bot has
//! answered `userStream.start`. The bot sends activities, its audio (`playStream.start` / `.chunk` / `.stop`) and
//! speech events (`userStream.speech.*`, for barge-in and transcripts). A dropped socket is reopened once with
//! `session.resume`; `session.end` tells the bot why the call ended.

use crate::{BotConnector, BotError, BotSession, Command, FromBot, MediaFormat, Speech};
use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

pub(crate) type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

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
    timeout: Duration,
}

impl AcStreaming {
    /// `bot_url`: `ws://`, `wss://` (or `http(s)://`, taken as the same address over WebSocket).
    pub fn new(
        guard: outdial_net::Guarded,
        bot_url: &str,
        token: Option<String>,
        bot_name: &str,
    ) -> Result<Self, BotError> {
        let url = ws_url(bot_url);
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
            timeout: Duration::from_secs(10),
        })
    }

    async fn connect(&self) -> Result<Socket, BotError> {
        connect(&self.guard, &self.url, self.token.as_deref(), self.timeout).await
    }

    /// Sends `first` and waits for `session.accepted` (its media format) or `session.error`.
    async fn handshake(&self, ws: &mut Socket, first: Value) -> Result<MediaFormat, BotError> {
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
                    let f = v["mediaFormat"].as_str().unwrap_or("raw/lpcm16_8");
                    return MediaFormat::parse(f)
                        .filter(|f| OFFERED.contains(f))
                        .ok_or_else(|| {
                            BotError::Protocol(format!("the bot chose media format {f}, not offered"))
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

/// `http(s)://` as `ws(s)://` (the same address over WebSocket); other URLs unchanged.
pub(crate) fn ws_url(url: &str) -> String {
    if let Some(rest) = url.strip_prefix("http://") {
        format!("ws://{rest}")
    } else if let Some(rest) = url.strip_prefix("https://") {
        format!("wss://{rest}")
    } else {
        url.to_string()
    }
}

/// A WebSocket to `url` (`ws://` / `wss://`), with `Authorization: Bearer <token>` when there is a token. The
/// address is resolved and checked by `guard`'s network policy, and the connection made to a checked address.
pub(crate) async fn connect(
    guard: &outdial_net::Guarded,
    url: &str,
    token: Option<&str>,
    timeout: Duration,
) -> Result<Socket, BotError> {
    let parsed = url::Url::parse(url).map_err(|e| BotError::Protocol(format!("WebSocket URL {url}: {e}")))?;
    let mut request = url
        .into_client_request()
        .map_err(|e| BotError::Protocol(format!("WebSocket URL {url}: {e}")))?;
    if let Some(t) = token.filter(|t| !t.is_empty()) {
        let value = format!("Bearer {t}")
            .parse()
            .map_err(|_| BotError::Protocol("the bot token is not a valid header value".into()))?;
        request.headers_mut().insert("Authorization", value);
    }
    let open = async {
        let addrs = guard.resolve(&parsed).await?;
        let stream = tokio::net::TcpStream::connect(&addrs[..])
            .await
            .map_err(|e| BotError::Unreachable(format!("{url}: {e}")))?;
        let _ = stream.set_nodelay(true);
        Ok::<_, BotError>(tokio_tungstenite::client_async_tls_with_config(request, stream, None, None).await)
    };
    match tokio::time::timeout(timeout, open).await {
        Err(_) => Err(BotError::Unreachable(format!(
            "no WebSocket connection to {url} within {} s",
            timeout.as_secs()
        ))),
        Ok(Err(e)) => Err(e),
        Ok(Ok(Err(tokio_tungstenite::tungstenite::Error::Http(r)))) => Err(BotError::Refused {
            status: r.status().as_u16(),
            bytes: r.body().as_ref().map_or(0, Vec::len),
        }),
        Ok(Ok(Err(e))) => Err(BotError::Unreachable(format!("{url}: {e}"))),
        Ok(Ok(Ok((ws, _)))) => Ok(ws),
    }
}

async fn send(ws: &mut Socket, v: &Value) -> Result<(), BotError> {
    ws.send(Message::Text(v.to_string().into()))
        .await
        .map_err(|e| BotError::Unreachable(format!("WebSocket send: {e}")))
}

fn clip(s: &str) -> String {
    s.chars().take(200).collect()
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

    async fn open(&self, conversation: &str) -> Result<BotSession, BotError> {
        let mut ws = self.connect().await?;
        let initiate = json!({"type": "session.initiate", "conversationId": conversation,
            "expectAudioMessages": true, "botName": self.bot_name,
            "supportedMediaFormats": OFFERED.iter().map(|f| f.as_str()).collect::<Vec<_>>()});
        let format = self.handshake(&mut ws, initiate).await?;
        send(
            &mut ws,
            &json!({"type": "userStream.start", "conversationId": conversation}),
        )
        .await?;
        let (events_tx, events) = mpsc::channel(256);
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let (audio, audio_rx) = mpsc::channel(256);
        tokio::spawn(run(
            self.clone(),
            conversation.to_string(),
            ws,
            events_tx,
            (commands_rx, audio_rx),
        ));
        Ok(BotSession {
            events,
            commands,
            audio: Some(audio),
            media: Some(format),
        })
    }
}

/// One streaming conversation.
async fn run(
    bot: AcStreaming,
    conversation: String,
    mut ws: Socket,
    events: mpsc::Sender<FromBot>,
    (mut commands, mut audio): (mpsc::UnboundedReceiver<Command>, mpsc::Receiver<Vec<u8>>),
) {
    let mut seen: HashSet<String> = HashSet::new();
    let mut streaming = false;
    let mut resumed = false;
    let b64 = base64::engine::general_purpose::STANDARD;
    loop {
        tokio::select! {
            cmd = commands.recv() => {
                let out = match cmd {
                    Some(Command::Send(activities, done)) => {
                        let v = json!({"type": "activities", "conversationId": conversation, "activities": activities});
                        let r = send(&mut ws, &v).await;
                        if let Some(done) = done {
                            let _ = done.send(());
                        }
                        r
                    }
                    Some(Command::Close { reason, reason_code, done }) => {
                        end(&mut ws, &conversation, &reason, &reason_code).await;
                        let _ = done.send(());
                        return;
                    }
                    None => {
                        end(&mut ws, &conversation, "call ended", "client-disconnected").await;
                        return;
                    }
                };
                if let Err(e) = out {
                    tracing::warn!(conversation, "bot WebSocket: {e}");
                }
            }
            Some(bytes) = audio.recv() => {
                if streaming {
                    let v = json!({"type": "userStream.chunk", "conversationId": conversation,
                                   "audioChunk": b64.encode(bytes)});
                    if let Err(e) = send(&mut ws, &v).await {
                        tracing::warn!(conversation, "bot WebSocket: {e}");
                    }
                }
            }
            frame = ws.next() => {
                let text = match frame {
                    Some(Ok(Message::Text(t))) => t.to_string(),
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Binary(_) | Message::Frame(_))) => continue,
                    // Dropped: reopened once with session.resume.
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                        if !resumed && let Some(new) = resume(&bot, &conversation).await {
                            resumed = true;
                            streaming = false;
                            ws = new;
                            continue;
                        }
                        let why = BotError::Unreachable("the bot's WebSocket closed".into());
                        let _ = events.send(FromBot::Failed(why)).await;
                        return;
                    }
                };
                let Ok(v) = serde_json::from_str::<Value>(&text) else {
                    tracing::warn!(conversation, "the bot sent a frame that is not JSON: {}", clip(&text));
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
                        streaming = true;
                        continue;
                    }
                    "userStream.stopped" => {
                        streaming = false;
                        continue;
                    }
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
                        let reason = v["reason"].as_str().unwrap_or("session.error").to_string();
                        let _ = events.send(FromBot::Failed(BotError::Protocol(reason))).await;
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

/// A new socket for the conversation after the old one dropped (`session.resume`, then the user stream again).
async fn resume(bot: &AcStreaming, conversation: &str) -> Option<Socket> {
    let mut ws = bot.connect().await.ok()?;
    let first = json!({"type": "session.resume", "conversationId": conversation});
    bot.handshake(&mut ws, first).await.ok()?;
    send(
        &mut ws,
        &json!({"type": "userStream.start", "conversationId": conversation}),
    )
    .await
    .ok()?;
    tracing::info!(conversation, "bot WebSocket resumed");
    Some(ws)
}

async fn end(ws: &mut Socket, conversation: &str, reason: &str, reason_code: &str) {
    let _ = send(
        ws,
        &json!({"type": "userStream.stop", "conversationId": conversation}),
    )
    .await;
    let v = json!({"type": "session.end", "conversationId": conversation, "reasonCode": reason_code, "reason": reason});
    let _ = send(ws, &v).await;
    let _ = ws.close(None).await;
}
