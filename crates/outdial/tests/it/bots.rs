//! Calls with their bot: the real binary, sipp or the simulated callee as the far end, and the reference
//! AudioCodes bot (outdial-sim, Bot API HTTP mode) on real HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly.

use crate::common;

use common::{ADMIN, Gateway, receiver, status};
use outdial_sim::bot::{RefBot, Script};
use outdial_testkit::Sipp;
use serde_json::{Value, json};
use std::time::Duration;

async fn setup(far_end: &str, script: Script, bot_extra: &str) -> (RefBot, Gateway) {
    let bot = outdial_sim::bot::start("127.0.0.1:0".parse().unwrap(), script)
        .await
        .unwrap();
    let g = Gateway::start(&format!(
        "[[trunks]]\nname = \"sbc\"\naddress = \"{far_end}\"\nkeepAliveSec = 0\n\n\
         [[bots]]\nname = \"Bot1\"\nbotUrl = \"{}\"\ntoken = \"bot-token\"\n{bot_extra}\n",
        bot.url
    ))
    .await;
    (bot, g)
}

/// The simulated callee (outdial-sim) on a free port.
async fn simulated_callee() -> outdial_sim::Sim {
    outdial_sim::start("127.0.0.1:0".parse().unwrap(), outdial_sim::SimOptions::default())
        .await
        .unwrap()
}

/// The seed's dialout request (reference product documentation), with a notifyUrl of ours.
fn seed_request(notify_url: &str) -> Value {
    json!({"bot": "Bot1", "target": "tel:+123456789", "caller": "1-800-111-111", "notifyUrl": notify_url,
           "metadata": {"participantName": "Alice"}})
}

async fn dial(g: &Gateway, body: &Value) -> String {
    common::dialout(g, body).await
}

async fn received(bot: &RefBot, id: &str, n: usize) -> Vec<Value> {
    for _ in 0..100 {
        let got = bot.received(id);
        if got.len() >= n {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bot.received(id)
}

#[tokio::test]
async fn the_start_event_is_the_seeds_and_the_bot_ends_the_call_with_its_result() {
    let sipp = Sipp::uas("uas_answer_wait_bye.xml", &[]);
    let (bot, g) = setup(&format!("127.0.0.1:{}", sipp.port), Script::GreetAndHangUp, "").await;
    let (url, got) = receiver().await;
    let id = dial(&g, &seed_request(&url)).await;
    let done = status(&got, "completed").await;
    let start = &bot.received(&id)[0];
    // The seed's example, field for field…
    let seed = json!({"type": "event", "name": "start",
        "parameters": {"callee": "+123456789", "caller": "1-800-111-111", "dialoutMetadata": {"participantName": "Alice"}}});
    assert_eq!(start["type"], seed["type"]);
    assert_eq!(start["name"], seed["name"]);
    for (k, v) in seed["parameters"].as_object().unwrap() {
        assert_eq!(&start["parameters"][k], v, "{k}");
    }
    // … plus exactly the other fields of docs/bots.md that this request gives values to.
    let mut extra: Vec<&str> = start["parameters"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .filter(|k| seed["parameters"].get(*k).is_none())
        .collect();
    extra.sort_unstable();
    assert_eq!(extra, ["conversationId", "outboundTarget", "vaigConversationId"]);
    assert_eq!(start["parameters"]["conversationId"], id.as_str());
    assert_eq!(start["parameters"]["outboundTarget"], "tel:+123456789");
    assert_eq!(start["language"], "en-US");
    assert!(start["id"].is_string() && start["timestamp"].as_str().unwrap().ends_with('Z'));
    // The bot's hangup ends the call with its reason and result.
    assert_eq!(done["reasonCode"], "bot-disconnected", "{done}");
    assert_eq!(done["reason"], "greeted and done");
    assert_eq!(done["botOperationResult"], "greeted");
    assert_eq!(done["botOperationData"], "name=Alice");
    assert_eq!(done["hangupBy"], "bot");
    // The bot is told right after the call's end (the notification may arrive first).
    let mut disc = bot.disconnected(&id);
    for _ in 0..50 {
        if disc.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        disc = bot.disconnected(&id);
    }
    let disc = disc.expect("the bot conversation is closed");
    assert_eq!(disc["reasonCode"], "bot-disconnected");
    assert_eq!(sipp.exit_code(), 0, "sipp got our BYE");
    // The greeting is in the timeline (spoken once the speech engines land).
    let ev = common::events(&g, &id).await;
    assert!(ev.iter().any(|e| {
        e["kind"] == "bot-activity"
            && e["data"]["text"]
                .as_str()
                .is_some_and(|t| t.starts_with("Hello Alice"))
    }));
}

#[tokio::test]
async fn dialout_initiated_reaches_the_bot_even_when_the_call_fails() {
    let sipp = Sipp::uas("uas_486_reject.xml", &[]);
    let (bot, g) = setup(
        &format!("127.0.0.1:{}", sipp.port),
        Script::Silent,
        "sendEventsToBot = [\"dialoutInitiated\"]",
    )
    .await;
    let (url, got) = receiver().await;
    let id = dial(&g, &seed_request(&url)).await;
    let failed = status(&got, "failed").await;
    assert_eq!(failed["reasonCode"], "busy");
    let got = received(&bot, &id, 1).await;
    assert_eq!(got[0]["name"], "dialoutInitiated");
    assert_eq!(got[0]["value"]["callee"], "+123456789");
    assert_eq!(got[0]["value"]["dialoutMetadata"]["participantName"], "Alice");
    assert_eq!(got.len(), 1, "no start event for a call that was never answered");
    for _ in 0..50 {
        if bot.disconnected(&id).is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let disc = bot.disconnected(&id).expect("closed with the failure");
    assert_eq!(disc["reasonCode"], "busy");
    assert_eq!(disc["reason"], "SIP ;cause=486 ;text=\"Busy Here\"");
}

#[tokio::test]
async fn a_bot_that_cannot_be_reached_at_the_answer_ends_the_call_with_error() {
    let sipp = Sipp::uas("uas_answer_wait_bye.xml", &[]);
    let (_bot, g) = setup(&format!("127.0.0.1:{}", sipp.port), Script::Broken, "").await;
    let (url, got) = receiver().await;
    dial(&g, &seed_request(&url)).await;
    let done = status(&got, "completed").await;
    assert_eq!(done["reasonCode"], "error");
    let reason = done["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("bot unreachable: ") && reason.ends_with("HTTP 503"),
        "{reason}"
    );
    assert_eq!(sipp.exit_code(), 0, "hung up, no dead air");
}

#[tokio::test]
async fn the_bot_transfers_the_call_with_refer() {
    let sipp = Sipp::uas("uas_refer_accept.xml", &[]);
    let (_bot, g) = setup(&format!("127.0.0.1:{}", sipp.port), Script::Transfer, "").await;
    let (url, got) = receiver().await;
    dial(&g, &seed_request(&url)).await;
    let done = status(&got, "completed").await;
    assert_eq!(done["reasonCode"], "transferred", "{done}");
    assert_eq!(done["reason"], "sip:agent@example.com");
    assert_eq!(
        sipp.exit_code(),
        0,
        "sipp saw the REFER to the agent, then our BYE"
    );
}

#[tokio::test]
async fn the_bot_hears_of_the_voicemail_and_its_end() {
    let sim = simulated_callee().await;
    let (bot, g) = setup(&sim.addr.to_string(), Script::Silent, "").await;
    let id = dial(
        &g,
        &json!({"bot": "Bot1", "target": "tel:+15550101", "caller": "1", "machineDetection": "detect",
                "voicemailEndTimeoutSec": 2}),
    )
    .await;
    let got = received(&bot, &id, 3).await;
    let names: Vec<(String, String)> = got
        .iter()
        .map(|a| {
            (
                a["name"].as_str().unwrap_or("").into(),
                a["value"].as_str().unwrap_or("").into(),
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            ("start".into(), "".into()),
            ("machineDetection".into(), "voicemail-prompt-start".into()),
            ("machineDetection".into(), "voicemail-prompt-end-beep".into()),
        ]
    );
    common::hang_up(&g, &id).await;
}

#[tokio::test]
async fn the_bot_greeting_is_heard_before_its_hangup() {
    let sim = simulated_callee().await;
    let (_bot, g) = setup(&sim.addr.to_string(), Script::GreetAndHangUp, "").await;
    let (url, got) = receiver().await;
    let mut body = seed_request(&url);
    body["target"] = json!("tel:+15550100");
    dial(&g, &body).await;
    let done = status(&got, "completed").await;
    assert_eq!(done["reasonCode"], "bot-disconnected", "{done}");
    // "Hello Alice, this is the reference bot. Goodbye." takes about 3 s; the hangup waits for it.
    let duration = done["callDuration"].as_f64().unwrap();
    assert!(duration > 2.0, "hung up after {duration} s");
    use std::sync::atomic::Ordering::Relaxed;
    for _ in 0..30 {
        if sim.stats.ended.load(Relaxed) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let loud = sim.stats.loud_frames.load(Relaxed);
    assert!(loud >= 75, "the callee heard {loud} frames of speech");
}

#[tokio::test]
async fn the_person_barges_in_and_the_prompt_stops() {
    let sim = simulated_callee().await;
    let (_bot, g) = setup(&sim.addr.to_string(), Script::GreetAndHangUp, "bargeIn = true").await;
    let (url, got) = receiver().await;
    let mut body = seed_request(&url);
    body["target"] = json!("tel:+15550100");
    let id = dial(&g, &body).await;
    let done = status(&got, "completed").await;
    assert_eq!(done["reasonCode"], "bot-disconnected", "{done}");
    let ev = common::events(&g, &id).await;
    let barge = ev.iter().find(|e| e["kind"] == "barge-in").expect("a barge-in");
    // The person says "Hello?" 0.3 s after the answer; the greeting stops within 300 ms of that (RTP and the
    // 60 ms jitter buffer included, plus the test's own slack).
    let after = barge["data"]["afterAnswerMs"].as_i64().unwrap();
    assert!(
        (300..=800).contains(&after),
        "barge-in {after} ms after the answer"
    );
    // Cut short: the 3 s greeting did not play out before the hangup.
    let duration = done["callDuration"].as_f64().unwrap();
    assert!(duration < 2.0, "hung up after {duration} s");
}

#[tokio::test]
async fn silence_after_a_prompt_is_reported_as_no_input() {
    let sim = simulated_callee().await;
    let (bot, g) = setup(&sim.addr.to_string(), Script::NoInput, "").await;
    let (url, got) = receiver().await;
    let mut body = seed_request(&url);
    body["target"] = json!("tel:+15550107");
    let id = dial(&g, &body).await;
    let done = status(&got, "completed").await;
    // A callee who says nothing: 1 s after the greeting, noUserInput (1).
    assert_eq!(done["reason"], "no input", "{done}");
    assert_eq!(done["botOperationResult"], "no-input");
    let no_input: Vec<Value> = bot
        .received(&id)
        .into_iter()
        .filter(|a| a["name"] == "noUserInput")
        .collect();
    assert_eq!(no_input.len(), 1);
    assert_eq!(no_input[0]["value"], 1);
    let duration = done["callDuration"].as_f64().unwrap();
    assert!((1.5..5.0).contains(&duration), "{duration} s");
}

#[tokio::test]
async fn operators_can_test_a_bots_connection() {
    let (bot, g) = setup("127.0.0.1:9", Script::Silent, "").await;
    let ok: Value = g
        .post("/api/v1/bots/Bot1/test", ADMIN, &json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ok, json!({"success": true}));
    bot.set_script(Script::Broken);
    let r = g.post("/api/v1/bots/Bot1/test", ADMIN, &json!({})).await;
    assert_eq!(r.status(), 200);
    let down: Value = r.json().await.unwrap();
    assert_eq!(down["success"], false);
    let why = down["error"].as_str().unwrap();
    assert!(
        why.starts_with("bot unreachable: ") && why.ends_with("HTTP 503"),
        "{why}"
    );
    let (code, _) = common::error_of(g.post("/api/v1/bots/Nope/test", ADMIN, &json!({})).await).await;
    assert_eq!(code, 404);
}

#[tokio::test]
async fn a_bot_that_hangs_or_answers_rubbish_ends_the_call_clearly() {
    for (script, expect, within) in [
        (Script::Rubbish, "bot answered outside the protocol: ", 5.0),
        // The bot client's timeout is 10 s: then the call ends; never endless dead air.
        (Script::Slow, "bot unreachable: ", 12.5),
    ] {
        let sipp = Sipp::uas("uas_answer_wait_bye.xml", &[]);
        let (_bot, g) = setup(&format!("127.0.0.1:{}", sipp.port), script, "").await;
        let (url, got) = receiver().await;
        dial(&g, &seed_request(&url)).await;
        let done = status(&got, "completed").await;
        assert_eq!(done["reasonCode"], "error", "{done}");
        let reason = done["reason"].as_str().unwrap();
        assert!(reason.starts_with(expect), "{reason}");
        assert!(done["callDuration"].as_f64().unwrap() < within, "{done}");
        assert_eq!(sipp.exit_code(), 0, "hung up");
    }
}

/// HTTP mode's optional `websocketURL`: the bot pushes activities on its own (proactive messages); they are acted on
/// like the answers to outdial's requests.
#[tokio::test]
async fn proactive_messages_over_the_websocket_url() {
    let sim = simulated_callee().await;
    let (_bot, g) = setup(&sim.addr.to_string(), Script::Proactive, "").await;
    let (url, got) = receiver().await;
    let mut body = seed_request(&url);
    body["target"] = json!("tel:+15550100");
    let id = dial(&g, &body).await;
    let done = status(&got, "completed").await;
    assert_eq!(done["reasonCode"], "bot-disconnected", "{done}");
    assert_eq!(done["botOperationResult"], "proactive", "{done}");
    let ev = common::events(&g, &id).await;
    let pushed = ev
        .iter()
        .find(|e| e["kind"] == "bot-activity" && e["data"]["type"] == "message")
        .expect("the pushed message");
    assert_eq!(pushed["data"]["text"], "This is a proactive message. Goodbye.");
    // Spoken before the hangup (about 2.5 s).
    assert!(done["callDuration"].as_f64().unwrap() > 2.0, "{done}");
}

/// The conversation never goes deaf while slow work is in flight (docs/architecture.md): the far end hangs up
/// while the bot's `playUrl` is being fetched from a server that answers only after 10 s.
#[tokio::test]
async fn a_far_end_bye_during_a_slow_play_url_ends_the_call_at_once() {
    // sipp answers, holds the call 2 s, then sends BYE.
    let sipp = Sipp::uas("uas_answer_then_bye.xml", &["-d", "2000"]);
    let (_bot, g) = setup(&format!("127.0.0.1:{}", sipp.port), Script::PlayUrlSlow, "").await;
    let (url, got) = receiver().await;
    let id = dial(&g, &seed_request(&url)).await;
    status(&got, "answered").await;
    let answered = tokio::time::Instant::now();
    let done = status(&got, "completed").await;
    let took = answered.elapsed();
    assert_eq!(done["reasonCode"], "client-disconnected", "{done}");
    // BYE 2 s after the answer; the fetch would take 10 s.
    assert!(took < Duration::from_secs(3), "ended {took:?} after the answer");
    let events = common::events(&g, &id).await;
    assert!(
        !events.iter().any(|e| e["kind"] == "prompt"),
        "the slow recording was never played: {events:?}"
    );
    assert_eq!(sipp.exit_code(), 0, "sipp's BYE was answered");
}

/// The concurrency slot is free before the terminal notification: the far end hangs up while the bot's create
/// request hangs (15 s), and the dialer that dials again on `completed` is not refused with 429.
#[tokio::test]
async fn the_slot_is_free_when_completed_arrives_even_with_a_hanging_bot() {
    let sipp = Sipp::uas("uas_answer_then_bye.xml", &["-d", "1000"]);
    let (_bot, g) = setup(
        &format!("127.0.0.1:{}", sipp.port),
        Script::Slow,
        "dialoutMaxConcurrentCalls = 1",
    )
    .await;
    let (url, got) = receiver().await;
    dial(&g, &seed_request(&url)).await;
    status(&got, "answered").await;
    let started = tokio::time::Instant::now();
    let done = status(&got, "completed").await;
    assert_eq!(done["reasonCode"], "client-disconnected", "{done}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the BYE was acted on at once"
    );
    let again = g
        .post("/api/v1/actions/dialout", ADMIN, &seed_request(&url))
        .await;
    assert_eq!(again.status(), 200, "{:?}", again.text().await);
}

/// The call ends while its bot conversation is still being opened (the bot answers the create request after 3 s,
/// the far end hangs up 1 s after answering): the call ends at once, and the bot is told the call's own reason as
/// soon as its conversation is open, without the call's task waiting for it (not the connector's fallback for a
/// conversation nobody holds, "call ended").
#[tokio::test]
async fn a_bot_still_opening_when_the_call_ends_is_told_once_it_is_open() {
    let sipp = Sipp::uas("uas_answer_then_bye.xml", &["-d", "1000"]);
    let (bot, g) = setup(&format!("127.0.0.1:{}", sipp.port), Script::LateOpen, "").await;
    let (url, got) = receiver().await;
    let id = dial(&g, &seed_request(&url)).await;
    let done = status(&got, "completed").await;
    assert_eq!(done["reasonCode"], "client-disconnected", "{done}");
    assert!(done["callDuration"].as_f64().unwrap() < 2.0, "{done}");
    assert!(
        bot.disconnected(&id).is_none(),
        "told before its conversation was open"
    );
    let mut told = None;
    for _ in 0..50 {
        told = bot.disconnected(&id);
        if told.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let told = told.expect("the bot was told the call ended");
    assert_eq!(told["reasonCode"], "client-disconnected", "{told}");
    assert_eq!(told["reason"], done["reason"], "{told}");
    assert_eq!(sipp.exit_code(), 0);
}
