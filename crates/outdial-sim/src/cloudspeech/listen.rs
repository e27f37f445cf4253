//! Deepgram's live recognition (`GET /v1/listen`, WebSocket): 16 kHz linear16 in binary frames; `SpeechStarted`
//! (with `vad_events`), interim `Results` while the person speaks, a final with `speech_final` after
//! `endpointing` ms of silence; `KeepAlive` keeps a quiet stream open, `Finalize` flushes, `CloseStream` flushes,
//! sends `Metadata` and closes; ten seconds with neither audio nor a message closes the stream with 1011
//! (NET-0001), as Deepgram does.

use super::rest::deepgram_error;
use super::{DEEPGRAM_KEY, Fault, Shared, voiced_frames};
use axum::Json;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::time::Duration;

fn param<'a>(q: &'a str, name: &str) -> Option<&'a str> {
    q.split('&').find_map(|p| p.strip_prefix(name)?.strip_prefix('='))
}

fn refuse(status: StatusCode, code: &str, msg: &str) -> Response {
    (
        status,
        [("dg-error", msg.to_string())],
        Json(deepgram_error(code, msg)),
    )
        .into_response()
}

pub(crate) async fn upgrade(
    State(s): State<Shared>,
    h: HeaderMap,
    RawQuery(q): RawQuery,
    ws: WebSocketUpgrade,
) -> Response {
    let q = q.unwrap_or_default();
    let fault = s.lock().take_fault();
    match fault {
        Some(Fault::Unauthorized) => {
            return refuse(StatusCode::UNAUTHORIZED, "INVALID_AUTH", "Invalid credentials.");
        }
        Some(Fault::ServerError) => {
            return refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "SERVICE_UNAVAILABLE",
                "Service unavailable.",
            );
        }
        Some(Fault::Hang) => {
            tokio::time::sleep(Duration::from_secs(60)).await;
            return StatusCode::GATEWAY_TIMEOUT.into_response();
        }
        _ => {}
    }
    let auth = h
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if auth != format!("Token {DEEPGRAM_KEY}") {
        return refuse(StatusCode::UNAUTHORIZED, "INVALID_AUTH", "Invalid credentials.");
    }
    if param(&q, "encoding") != Some("linear16") || param(&q, "sample_rate") != Some("16000") {
        return refuse(
            StatusCode::BAD_REQUEST,
            "Bad Request",
            "Unsupported encoding or sample rate.",
        );
    }
    let endpointing: u64 = param(&q, "endpointing")
        .and_then(|e| e.parse().ok())
        .unwrap_or(10);
    {
        let mut i = s.lock();
        i.record("deepgram", "/v1/listen", &q, Value::Null);
        i.streams_opened += 1;
        i.control.clear();
    }
    let drop_mid_speech = fault == Some(Fault::Drop);
    ws.on_upgrade(move |socket| session(socket, s, endpointing, drop_mid_speech))
}

#[derive(Default)]
struct Ear {
    speaking: bool,
    voiced_run: u32,
    silence_ms: u64,
    speech_ms: u64,
    start_ms: u64,
    at_ms: u64,
}

fn results(t: &str, words: usize, start_ms: u64, end_ms: u64, is_final: bool, speech_final: bool) -> Value {
    let text: Vec<&str> = t.split_whitespace().take(words).collect();
    json!({"type": "Results", "channel_index": [0, 1], "start": start_ms as f64 / 1000.0,
           "duration": end_ms.saturating_sub(start_ms) as f64 / 1000.0, "is_final": is_final,
           "speech_final": speech_final, "from_finalize": false,
           "channel": {"alternatives": [{"transcript": text.join(" "), "confidence": 0.98, "words": []}]},
           "metadata": {"request_id": "0b6d7b5e-fake", "model_info": {"name": "2-phonecall-nova", "version": "2024-01-01", "arch": "nova-2"}}})
}

async fn session(mut ws: WebSocket, s: Shared, endpointing: u64, drop_mid_speech: bool) {
    let mut ear = Ear::default();
    let mut pending: Vec<i16> = Vec::new();
    loop {
        let m = match tokio::time::timeout(Duration::from_secs(10), ws.recv()).await {
            Err(_) => {
                let reason = "Deepgram did not receive audio data or a text message within the timeout window. See https://dpgr.am/net0001";
                let _ = ws
                    .send(Message::Close(Some(CloseFrame {
                        code: 1011,
                        reason: reason.into(),
                    })))
                    .await;
                return;
            }
            Ok(Some(Ok(m))) => m,
            Ok(_) => return,
        };
        let transcript = s.lock().transcript.clone();
        let mut out = Vec::new();
        match m {
            Message::Binary(b) => {
                pending.extend(b.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])));
                let whole = pending.len() / 320 * 320;
                let frames: Vec<bool> = voiced_frames(&pending[..whole]).collect();
                pending.drain(..whole);
                for voiced in frames {
                    ear.at_ms += 20;
                    if !ear.speaking {
                        ear.voiced_run = if voiced { ear.voiced_run + 1 } else { 0 };
                        if ear.voiced_run >= 2 {
                            ear = Ear {
                                speaking: true,
                                start_ms: ear.at_ms - 40,
                                at_ms: ear.at_ms,
                                ..Default::default()
                            };
                            out.push(json!({"type": "SpeechStarted", "channel": [0, 1], "timestamp": ear.start_ms as f64 / 1000.0}));
                        }
                        continue;
                    }
                    ear.speech_ms += 20;
                    ear.silence_ms = if voiced { 0 } else { ear.silence_ms + 20 };
                    if drop_mid_speech && ear.speech_ms >= 500 {
                        // The connection breaks: no close frame.
                        return;
                    }
                    if ear.silence_ms >= endpointing.max(20) {
                        let words = transcript.split_whitespace().count();
                        out.push(results(
                            &transcript,
                            words,
                            ear.start_ms,
                            ear.at_ms - ear.silence_ms,
                            true,
                            true,
                        ));
                        ear.speaking = false;
                        ear.voiced_run = 0;
                    } else if ear.speech_ms.is_multiple_of(400) && ear.silence_ms == 0 {
                        let words = transcript.split_whitespace().count();
                        let n = ((ear.speech_ms / 400) as usize).clamp(1, words.saturating_sub(1).max(1));
                        out.push(results(&transcript, n, ear.start_ms, ear.at_ms, false, false));
                    }
                }
            }
            Message::Text(t) => {
                let v: Value = serde_json::from_str(&t).unwrap_or_default();
                let kind = v["type"].as_str().unwrap_or_default().to_string();
                s.lock().control.push(kind.clone());
                if matches!(kind.as_str(), "CloseStream" | "Finalize") && ear.speaking {
                    let words = transcript.split_whitespace().count();
                    let mut r = results(&transcript, words, ear.start_ms, ear.at_ms, true, false);
                    r["from_finalize"] = json!(kind == "Finalize");
                    out.push(r);
                    ear.speaking = false;
                }
                if kind == "CloseStream" {
                    for v in out {
                        let _ = ws.send(Message::Text(v.to_string().into())).await;
                    }
                    let meta = json!({"type": "Metadata", "transaction_key": "deprecated", "request_id": "0b6d7b5e-fake",
                                      "duration": ear.at_ms as f64 / 1000.0, "channels": 1});
                    let _ = ws.send(Message::Text(meta.to_string().into())).await;
                    s.lock().streams_closed += 1;
                    let _ = ws
                        .send(Message::Close(Some(CloseFrame {
                            code: 1000,
                            reason: "".into(),
                        })))
                        .await;
                    return;
                }
            }
            Message::Close(_) => return,
            _ => {}
        }
        for v in out {
            if ws.send(Message::Text(v.to_string().into())).await.is_err() {
                return;
            }
        }
    }
}
