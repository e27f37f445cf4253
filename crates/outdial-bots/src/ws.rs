//! WebSocket connections to bots (streaming mode, and the HTTP mode's proactive `websocketURL`): the address
//! checked by the bots' network policy (docs/security.md), a Bearer token, JSON text frames.

use crate::BotError;
use futures_util::SinkExt;
use serde_json::Value;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

pub(crate) use outdial_net::ws::Socket;

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
    let mut request = url
        .into_client_request()
        .map_err(|e| BotError::Protocol(format!("WebSocket URL {url}: {e}")))?;
    if let Some(t) = token.filter(|t| !t.is_empty()) {
        let value = format!("Bearer {t}")
            .parse()
            .map_err(|_| BotError::Protocol("the bot token is not a valid header value".into()))?;
        request.headers_mut().insert("Authorization", value);
    }
    use outdial_net::ws::WsError;
    outdial_net::ws::connect(guard, request, timeout)
        .await
        .map_err(|e| match e {
            WsError::Guarded(g) => g.into(),
            WsError::Refused { status, body } => BotError::Refused {
                status,
                bytes: body.len(),
            },
            WsError::Timeout { .. } => BotError::Unreachable(format!(
                "no WebSocket connection to {url} within {} s",
                timeout.as_secs()
            )),
            WsError::Unreachable { why, .. } => BotError::Unreachable(format!("{url}: {why}")),
        })
}

pub(crate) async fn send(ws: &mut Socket, v: &Value) -> Result<(), BotError> {
    ws.send(Message::Text(v.to_string().into()))
        .await
        .map_err(|e| BotError::Unreachable(format!("WebSocket send: {e}")))
}

pub(crate) fn clip(s: &str) -> String {
    s.chars().take(200).collect()
}
