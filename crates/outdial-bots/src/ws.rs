//! WebSocket connections to bots (streaming mode, and the HTTP mode's proactive `websocketURL`): the address
//! checked by the bots' network policy (docs/security.md), a Bearer token, JSON text frames.

use crate::BotError;
use futures_util::SinkExt;
use serde_json::Value;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

pub(crate) type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

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

pub(crate) async fn send(ws: &mut Socket, v: &Value) -> Result<(), BotError> {
    ws.send(Message::Text(v.to_string().into()))
        .await
        .map_err(|e| BotError::Unreachable(format!("WebSocket send: {e}")))
}

pub(crate) fn clip(s: &str) -> String {
    s.chars().take(200).collect()
}
