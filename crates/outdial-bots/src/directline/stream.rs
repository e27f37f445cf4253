//! The Direct Line WebSocket stream of one conversation (docs/bots.md, "Microsoft Bot Framework"): activity sets
//! as they come, a dropped socket opened again through the reconnect API with the last watermark, and polling when
//! the stream cannot be had.

use super::Link;
use serde_json::Value;
use std::time::Duration;
use tokio::sync::mpsc;

pub(super) enum Incoming {
    Set(Value),
    /// The stream is gone for good: poll instead.
    Lost,
}

/// The WebSocket stream: activity sets as they come (empty frames are keep-alives). A dropped socket is opened
/// again through the reconnect API with the last watermark; after two failures the conversation polls.
pub(super) async fn stream(
    mut link: Link,
    mut url: String,
    mut first: Option<crate::ws::Socket>,
    sets: mpsc::Sender<Incoming>,
) {
    use futures_util::StreamExt;
    let mut failures = 0;
    loop {
        let opened = match first.take() {
            Some(ws) => Ok(ws),
            None => crate::ws::connect(&link.dl.client, &url, None, Duration::from_secs(10)).await,
        };
        let mut ws = match opened {
            Ok(ws) => ws,
            Err(e) => {
                tracing::warn!(conversation = link.user["id"].as_str(), "Direct Line stream: {e}");
                failures += 1;
                if failures >= 2 {
                    let _ = sets.send(Incoming::Lost).await;
                    return;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
                match reconnect(&mut link).await {
                    Some(u) => url = u,
                    None => {
                        let _ = sets.send(Incoming::Lost).await;
                        return;
                    }
                }
                continue;
            }
        };
        failures = 0;
        loop {
            tokio::select! {
                () = sets.closed() => return,
                frame = ws.next() => match frame {
                    Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t))) => {
                        if t.trim().is_empty() {
                            continue;
                        }
                        let Ok(set) = serde_json::from_str::<Value>(&t) else { continue };
                        if let Some(w) = set["watermark"].as_str() {
                            link.watermark = Some(w.to_string());
                        }
                        if sets.send(Incoming::Set(set)).await.is_err() {
                            return;
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => break,
                },
            }
        }
        match reconnect(&mut link).await {
            Some(u) => url = u,
            None => {
                let _ = sets.send(Incoming::Lost).await;
                return;
            }
        }
    }
}

/// `GET /conversations/{id}?watermark=…`: a new stream URL that resumes after the watermark.
async fn reconnect(link: &mut Link) -> Option<String> {
    let mut url = link.dl.url(&format!("/conversations/{}", link.id)).ok()?;
    if let Some(w) = &link.watermark {
        url.query_pairs_mut().append_pair("watermark", w);
    }
    let mut a = link
        .dl
        .exchange(reqwest::Method::GET, &url, &link.bearer, None)
        .await
        .ok()?;
    // A token that was refreshed meanwhile (or expired): the secret opens every conversation.
    if matches!(a.status, 401 | 403) && link.bearer != link.dl.secret {
        link.bearer = link.dl.secret.clone();
        a = link
            .dl
            .exchange(reqwest::Method::GET, &url, &link.bearer, None)
            .await
            .ok()?;
    }
    let v = a.json("Direct Line").ok().filter(|_| a.ok())?;
    if let Some(t) = v["token"].as_str() {
        link.bearer = t.to_string();
    }
    v["streamUrl"].as_str().map(str::to_string)
}
