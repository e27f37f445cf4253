//! Streaming bots (`ac-api-streaming`, docs/bots.md, "Streaming bots"): one WebSocket per call to the reference bot's streaming
//! endpoint, audio both ways. The far end is the simulated callee: it says "Hello? Who is this?" and hears the bot.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly.

use crate::common;

use common::{Gateway, receiver, status};
use outdial_sim::bot::{RefBot, Script};
use serde_json::{Value, json};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

async fn setup(script: Script) -> (outdial_sim::Sim, RefBot, Gateway) {
    let sim = outdial_sim::start("127.0.0.1:0".parse().unwrap(), outdial_sim::SimOptions::default())
        .await
        .unwrap();
    let bot = outdial_sim::bot::start("127.0.0.1:0".parse().unwrap(), script)
        .await
        .unwrap();
    let g = Gateway::start(&format!(
        "[[trunks]]\nname = \"sbc\"\naddress = \"{}\"\nkeepAliveSec = 0\n\n\
         [[bots]]\nname = \"Bot1\"\ntype = \"ac-api-streaming\"\nbotUrl = \"{}\"\ntoken = \"bot-token\"\n",
        sim.addr,
        bot.stream_url()
    ))
    .await;
    (sim, bot, g)
}

async fn dial(g: &Gateway, notify_url: &str) -> String {
    let body = json!({"bot": "Bot1", "target": "tel:+15550100", "caller": "1-800-111-111",
                      "notifyUrl": notify_url, "metadata": {"participantName": "Alice"}});
    common::dialout(g, &body).await
}

fn kinds(frames: &[Value]) -> Vec<String> {
    frames
        .iter()
        .map(|f| f["type"].as_str().unwrap_or("?").to_string())
        .collect()
}

/// The bot's prompt reaches the callee, the callee's voice reaches the bot, the bot's hangup ends the call with its
/// result, and the bot is told with session.end.
#[tokio::test]
async fn audio_flows_both_ways() {
    let (sim, bot, g) = setup(Script::Silent).await;
    let (url, got) = receiver().await;
    let id = dial(&g, &url).await;
    let done = status(&got, "completed").await;
    assert_eq!(done["reasonCode"], "bot-disconnected", "{done}");
    assert_eq!(done["botOperationResult"], "heard", "{done}");
    // "Hello? Who is this?" is about 1.3 s of voice.
    let heard: u64 = done["botOperationData"]
        .as_str()
        .unwrap()
        .trim_start_matches("speechMs=")
        .parse()
        .unwrap();
    assert!(heard >= 600, "the bot heard {heard} ms of voice");
    // The session: initiate with the formats, the start event as an activity, session.end with the outcome.
    let frames = bot.frames(&id);
    assert_eq!(frames[0]["type"], "session.initiate", "{frames:?}");
    assert_eq!(
        frames[0]["supportedMediaFormats"],
        json!(["raw/lpcm16_8", "raw/mulaw", "raw/lpcm16"])
    );
    assert_eq!(frames[0]["expectAudioMessages"], true);
    assert!(
        kinds(&frames).contains(&"userStream.start".to_string()),
        "{frames:?}"
    );
    let received = bot.received(&id);
    assert_eq!(received[0]["name"], "start");
    assert_eq!(
        received[0]["parameters"]["dialoutMetadata"]["participantName"],
        "Alice"
    );
    for _ in 0..30 {
        if bot.disconnected(&id).is_some() && sim.stats.ended.load(Relaxed) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let end = bot.disconnected(&id).expect("session.end");
    assert_eq!(end["reasonCode"], "bot-disconnected", "{end}");
    // The callee heard the bot's 1.5 s prompt.
    let loud = sim.stats.loud_frames.load(Relaxed);
    assert!(loud >= 60, "the callee heard {loud} loud frames");
}

/// The bot's socket drops after the start event: outdial reopens it with session.resume and the call goes on.
#[tokio::test]
async fn a_dropped_socket_is_resumed() {
    let (_sim, bot, g) = setup(Script::DropSocket).await;
    let (url, got) = receiver().await;
    let id = dial(&g, &url).await;
    let done = status(&got, "completed").await;
    assert_eq!(done["reasonCode"], "bot-disconnected", "{done}");
    assert_eq!(done["botOperationResult"], "heard", "{done}");
    let k = kinds(&bot.frames(&id));
    let initiate = k.iter().position(|t| t == "session.initiate").unwrap();
    let resume = k
        .iter()
        .position(|t| t == "session.resume")
        .expect("session.resume");
    assert!(initiate < resume, "{k:?}");
}

/// A streaming bot that cannot be reached at the answer ends the call with error, as an HTTP bot does.
#[tokio::test]
async fn an_unreachable_streaming_bot_ends_the_call_with_error() {
    let sim = outdial_sim::start("127.0.0.1:0".parse().unwrap(), outdial_sim::SimOptions::default())
        .await
        .unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let g = Gateway::start(&format!(
        "[[trunks]]\nname = \"sbc\"\naddress = \"{}\"\nkeepAliveSec = 0\n\n\
         [[bots]]\nname = \"Bot1\"\ntype = \"ac-api-streaming\"\nbotUrl = \"ws://{closed}/stream\"\n",
        sim.addr
    ))
    .await;
    let (url, got) = receiver().await;
    dial(&g, &url).await;
    let done = status(&got, "completed").await;
    assert_eq!(done["reasonCode"], "error", "{done}");
    let reason = done["reason"].as_str().unwrap();
    assert!(reason.starts_with("bot unreachable: ws://"), "{reason}");
}
