//! WebSocket bots as AudioCodes' Bot API SDK writes them (docs/bots.md, "Streaming bots"): the reference bots of
//! `outdial_sim::wsbot` over real WebSockets, the real binary, and the simulated callee (who says "Hello? Who is
//! this?" and, once the bot has spoken, "Yes please.").
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly.

use crate::common;

use common::{Gateway, receiver, status};
use outdial_sim::bot::{RefBot, Script};
use serde_json::{Value, json};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

async fn setup(which: &str, bot_extra: &str) -> (outdial_sim::Sim, RefBot, Gateway) {
    let sim = outdial_sim::start("127.0.0.1:0".parse().unwrap(), outdial_sim::SimOptions::default())
        .await
        .unwrap();
    let bot = outdial_sim::bot::start("127.0.0.1:0".parse().unwrap(), Script::Silent)
        .await
        .unwrap();
    let g = Gateway::start(&format!(
        "[[trunks]]\nname = \"sbc\"\naddress = \"{}\"\nkeepAliveSec = 0\n\n\
         [[bots]]\nname = \"Bot1\"\ntype = \"ac-api-streaming\"\nbotUrl = \"{}\"\n{bot_extra}\n",
        sim.addr,
        bot.ws_url(which)
    ))
    .await;
    (sim, bot, g)
}

async fn dial(g: &Gateway, notify_url: &str) -> String {
    let body = json!({"bot": "Bot1", "target": "tel:+15550100", "caller": "1-800-111-111",
                      "notifyUrl": notify_url, "metadata": {"participantName": "Alice"}});
    common::dialout(g, &body).await
}

/// The frames the bot got, by type (activities by their names), in order.
fn kinds(frames: &[Value]) -> Vec<String> {
    frames
        .iter()
        .map(|f| match f["type"].as_str().unwrap_or("?") {
            "activities" => format!(
                "activities:{}",
                f["activities"][0]["name"]
                    .as_str()
                    .or(f["activities"][0]["type"].as_str())
                    .unwrap_or("?")
            ),
            k => k.to_string(),
        })
        .collect()
}

/// Waits until the bot has seen the socket's close frame.
async fn closed(bot: &RefBot, id: &str) -> Vec<Value> {
    for _ in 0..50 {
        let frames = bot.frames(id);
        if frames.iter().any(|f| f["type"] == "close") {
            return frames;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no close frame: {:?}", kinds(&bot.frames(id)));
}

/// Issue 12, items 11, 13, 14: a text bot hears the person through the gateway's recognition and is spoken by its
/// text-to-speech; no audio frames; the call's fields in `session.initiate`; its `"type": "Event"` hangup ends the
/// call; the socket closes with 1000.
#[tokio::test]
async fn a_text_bot_hears_the_person_and_is_heard() {
    let (sim, bot, g) = setup("text", "").await;
    let (url, got) = receiver().await;
    let id = dial(&g, &url).await;
    let done = status(&got, "completed").await;
    assert_eq!(done["reasonCode"], "bot-disconnected", "{done}");
    assert_eq!(done["reason"], "text bot done", "{done}");
    assert_eq!(done["botOperationResult"], "heard", "{done}");
    let heard = done["botOperationData"].as_str().unwrap().to_lowercase();
    assert!(
        heard.contains("yes"),
        "the bot got what the person said: {heard:?}"
    );
    let frames = closed(&bot, &id).await;
    let initiate = &frames[0];
    assert_eq!(initiate["type"], "session.initiate");
    // Audio is offered (the bot is not configured as a text bot); it takes none.
    assert_eq!(initiate["expectAudioMessages"], true, "{initiate}");
    assert_eq!(initiate["caller"], "1-800-111-111", "{initiate}");
    assert_eq!(initiate["callee"], "+15550100", "{initiate}");
    assert_eq!(initiate["botName"], "Bot1");
    let k = kinds(&frames);
    assert!(
        !k.iter().any(|t| t.starts_with("userStream")),
        "no user stream for a text bot: {k:?}"
    );
    assert!(k.contains(&"activities:message".to_string()), "{k:?}");
    let close = frames.last().unwrap();
    assert_eq!(
        (close["code"].as_u64(), close["type"].as_str()),
        (Some(1000), Some("close"))
    );
    assert!(!close["reason"].as_str().unwrap().is_empty());
    // The callee heard the bot's question, spoken by the gateway.
    assert!(
        sim.stats.replies.load(Relaxed) >= 1,
        "the callee answered a question it heard"
    );
}

/// Issue 12, items 12–14: a voice bot that answers when the user stream stops. The stream stops at its
/// recognition, starts again once its answer has played, and the call goes on turn after turn.
#[tokio::test]
async fn the_user_stream_follows_a_voice_bots_recognition() {
    let (sim, bot, g) = setup("echo", "sendEventsToBot = [\"dialoutInitiated\"]").await;
    let (url, got) = receiver().await;
    let id = dial(&g, &url).await;
    let done = status(&got, "completed").await;
    assert_eq!(done["reasonCode"], "bot-disconnected", "{done}");
    assert_eq!(done["botOperationResult"], "echoed", "{done}");
    assert_eq!(done["botOperationData"], "turns=2", "{done}");
    let frames = closed(&bot, &id).await;
    let k = kinds(&frames);
    let streams: Vec<&String> = k.iter().filter(|t| t.starts_with("userStream")).collect();
    assert_eq!(
        streams,
        [
            "userStream.start",
            "userStream.stop",
            "userStream.start",
            "userStream.stop",
            "userStream.start",
            "userStream.stop"
        ],
        "{k:?}"
    );
    // dialoutInitiated opens the session before the INVITE; the user stream starts only after the answer and the
    // start event.
    let pos = |t: &str| k.iter().position(|x| x == t).unwrap();
    assert_eq!(k[0], "session.initiate");
    assert_eq!(frames[0]["expectAudioMessages"], true);
    assert!(
        pos("activities:dialoutInitiated") < pos("activities:start"),
        "{k:?}"
    );
    assert!(pos("activities:start") < pos("userStream.start"), "{k:?}");
    assert_eq!(k[k.len() - 2], "session.end", "{k:?}");
    assert_eq!(frames.last().unwrap()["code"], 1000);
    // Both echoes reached the callee: its hello and its "yes please" came back.
    assert!(sim.stats.replies.load(Relaxed) >= 1);
    assert!(
        sim.stats.loud_frames.load(Relaxed) >= 50,
        "the callee heard the echoes"
    );
}

/// A bot configured `streamingMode = "text"` gets no audio even when it names a media format.
#[tokio::test]
async fn streaming_mode_text_sends_no_audio() {
    let (_sim, bot, g) = setup("echo", "streamingMode = \"text\"").await;
    let (url, got) = receiver().await;
    let id = dial(&g, &url).await;
    status(&got, "answered").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(common::hang_up(&g, &id).await.status(), 202);
    status(&got, "completed").await;
    let frames = closed(&bot, &id).await;
    assert_eq!(frames[0]["expectAudioMessages"], false);
    assert!(frames[0].get("supportedMediaFormats").is_none(), "{}", frames[0]);
    let k = kinds(&frames);
    assert!(!k.iter().any(|t| t.starts_with("userStream")), "{k:?}");
    assert!(k.contains(&"activities:start".to_string()), "{k:?}");
}

/// Issue 12, item 15: a bot that refuses the conversation before the call stops it; the phone never rings.
#[tokio::test]
async fn a_bot_that_refuses_before_the_call_stops_it_before_the_invite() {
    // Over WebSocket: session.error to session.initiate.
    let (sim, _bot, g) = setup("refuse", "sendEventsToBot = [\"dialoutInitiated\"]").await;
    let (url, got) = receiver().await;
    dial(&g, &url).await;
    let failed = status(&got, "failed").await;
    assert_eq!(failed["reasonCode"], "error", "{failed}");
    assert_eq!(
        failed["reason"], "the bot refused the session: campaign closed",
        "{failed}"
    );
    // Over HTTP: 401 to dialoutInitiated.
    let bot = outdial_sim::bot::start("127.0.0.1:0".parse().unwrap(), Script::Unauthorized)
        .await
        .unwrap();
    let g2 = Gateway::start(&format!(
        "[[trunks]]\nname = \"sbc\"\naddress = \"{}\"\nkeepAliveSec = 0\n\n\
         [[bots]]\nname = \"Bot1\"\nbotUrl = \"{}\"\nsendEventsToBot = [\"dialoutInitiated\"]\n",
        sim.addr, bot.url
    ))
    .await;
    let (url, got) = receiver().await;
    let id = dial(&g2, &url).await;
    let failed = status(&got, "failed").await;
    assert_eq!(failed["reasonCode"], "error", "{failed}");
    assert!(
        failed["reason"]
            .as_str()
            .unwrap()
            .starts_with("bot refused the request: HTTP 401"),
        "{failed}"
    );
    assert_eq!(bot.received(&id)[0]["name"], "dialoutInitiated");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        sim.stats.invites.load(Relaxed),
        0,
        "no INVITE: the phone never rang"
    );
    let got = got.lock().clone();
    assert_eq!(got.len(), 1, "one notification: {got:?}");
}
