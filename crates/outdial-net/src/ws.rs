//! WebSocket connections through the network policy: the URL's host resolved and checked by [`Guarded`], the
//! connection made to a checked address (bots' `ws://`/`wss://` addresses, Direct Line streams, Deepgram).

use crate::{Guarded, GuardedError};
use std::time::Duration;
use tokio_tungstenite::tungstenite;

pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;
pub use tungstenite::client::IntoClientRequest;
pub use tungstenite::{Message, http::Request};

/// Why no WebSocket could be opened.
#[derive(Debug, thiserror::Error)]
pub enum WsError {
    #[error(transparent)]
    Guarded(#[from] GuardedError),
    /// The address could not be reached, or the handshake failed outside HTTP.
    #[error("{url}: {why}")]
    Unreachable { url: String, why: String },
    #[error("no WebSocket connection to {url} within {} s", .timeout.as_secs())]
    Timeout { url: String, timeout: Duration },
    /// The server answered the upgrade with an HTTP error; its body is kept for the caller to read an error code
    /// from, never to show.
    #[error("the server refused the WebSocket: HTTP {status} ({} bytes)", .body.len())]
    Refused { status: u16, body: Vec<u8> },
}

/// Opens a WebSocket for `request` (its URL `ws://` or `wss://`, its headers as given), within `timeout`.
pub async fn connect(guard: &Guarded, request: Request<()>, timeout: Duration) -> Result<Socket, WsError> {
    let shown = {
        // Never the query: it may carry a token.
        let u = request.uri();
        format!(
            "{}://{}{}",
            u.scheme_str().unwrap_or("ws"),
            u.authority().map_or("", |a| a.as_str()),
            u.path()
        )
    };
    let parsed = url::Url::parse(&request.uri().to_string()).map_err(|e| WsError::Unreachable {
        url: shown.clone(),
        why: e.to_string(),
    })?;
    let open = async {
        let addrs = guard.resolve(&parsed).await?;
        let stream = tokio::net::TcpStream::connect(&addrs[..])
            .await
            .map_err(|e| WsError::Unreachable {
                url: shown.clone(),
                why: e.to_string(),
            })?;
        let _ = stream.set_nodelay(true);
        match tokio_tungstenite::client_async_tls_with_config(request, stream, None, None).await {
            Ok((ws, _)) => Ok(ws),
            Err(tungstenite::Error::Http(r)) => Err(WsError::Refused {
                status: r.status().as_u16(),
                body: r.body().clone().unwrap_or_default(),
            }),
            Err(e) => Err(WsError::Unreachable {
                url: shown.clone(),
                why: e.to_string(),
            }),
        }
    };
    match tokio::time::timeout(timeout, open).await {
        Err(_) => Err(WsError::Timeout { url: shown, timeout }),
        Ok(r) => r,
    }
}
