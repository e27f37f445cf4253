//! Calls whose bot speaks and listens through a cloud provider (docs/speech.md), against the local fakes of their
//! APIs: the real binary, the simulated callee (who answers "Yes please." once asked), the reference bot over
//! HTTP, and outdial-sim's `cloudspeech` fakes for Deepgram, Azure Speech, Google Cloud and ElevenLabs.

use crate::common;

use common::{Gateway, receiver, status};
use outdial_sim::bot::Script;
use outdial_sim::cloudspeech::{self, FakeSpeech, Fault};
use serde_json::{Value, json};
use std::sync::atomic::Ordering::Relaxed;

/// A JSON value as a TOML inline value (JSON's string escapes are TOML's).
fn toml(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let fields: Vec<String> = m.iter().map(|(k, v)| format!("{k} = {}", toml(v))).collect();
            format!("{{ {} }}", fields.join(", "))
        }
        other => other.to_string(),
    }
}

async fn setup(
    stt: &str,
    tts: &str,
    extra: &str,
) -> (outdial_sim::Sim, outdial_sim::bot::RefBot, FakeSpeech, Gateway) {
    let sim = outdial_sim::start("127.0.0.1:0".parse().unwrap(), outdial_sim::SimOptions::default())
        .await
        .unwrap();
    let bot = outdial_sim::bot::start("127.0.0.1:0".parse().unwrap(), Script::Ask)
        .await
        .unwrap();
    let fake = cloudspeech::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    fake.set_transcript("Yes please.");
    let g = Gateway::start(&format!(
        "[[trunks]]\nname = \"sbc\"\naddress = \"{}\"\nkeepAliveSec = 0\n\n\
         [[bots]]\nname = \"Bot1\"\nbotUrl = \"{}\"\nsttProvider = \"{stt}\"\nttsProvider = \"{tts}\"\n\
         speechCredentials = {}\n{extra}\n",
        sim.addr,
        bot.url,
        toml(&fake.credentials())
    ))
    .await;
    (sim, bot, fake, g)
}

async fn call(g: &Gateway) -> (String, Value) {
    let (url, got) = receiver().await;
    let body = json!({"bot": "Bot1", "target": "tel:+15550100", "caller": "1-800-111-111",
                      "notifyUrl": url, "metadata": {"participantName": "Alice"}});
    let id = common::dialout(g, &body).await;
    (id, status(&got, "completed").await)
}

/// Every provider pair: the greeting is synthesised by the cloud voice and heard by the callee, the callee's
/// "Yes please." is recognised by the cloud recogniser and reaches the bot, which ends the call with its result.
#[tokio::test]
async fn a_call_with_each_cloud_provider_pair() {
    for (stt, tts) in [
        ("deepgram", "deepgram"),
        ("azure", "azure"),
        ("google", "google"),
        ("deepgram", "elevenlabs"),
    ] {
        let (sim, bot, fake, g) = setup(stt, tts, "").await;
        let (id, done) = call(&g).await;
        assert_eq!(done["botOperationResult"], "yes", "{stt}/{tts}: {done}");
        let said: Vec<Value> = bot
            .received(&id)
            .into_iter()
            .filter(|a| a["type"] == "message")
            .collect();
        assert_eq!(said.len(), 1, "{stt}/{tts}: {said:?}");
        assert_eq!(said[0]["text"], "Yes please.", "{stt}/{tts}");
        let r = fake.requests();
        // The greeting went to the cloud voice…
        let synth: Vec<_> = r
            .iter()
            .filter(|q| q.provider == tts && !q.path.contains("recogni") && q.path != "/v1/listen")
            .collect();
        assert!(!synth.is_empty(), "{stt}/{tts}: {r:?}");
        let greeting = format!("{}", synth[0].body);
        assert!(greeting.contains("Hello Alice"), "{stt}/{tts}: {greeting}");
        // … and the person's words to the cloud recogniser.
        let heard = r
            .iter()
            .any(|q| q.provider == stt && (q.path == "/v1/listen" || q.path.contains("recogni")));
        assert!(heard, "{stt}/{tts}: {r:?}");
        // The callee heard the fake voice: 50 ms of tone a character, at least the greeting's.
        assert!(sim.stats.heard.lock().len() > 8000, "{stt}/{tts}");
        let ev = common::events(&g, &id).await;
        assert!(
            !ev.iter()
                .any(|e| e["kind"] == "synthesis-failed" || e["kind"] == "recognition-failed"),
            "{ev:?}"
        );
        assert!(
            ev.iter()
                .any(|e| e["kind"] == "recognition" && e["data"]["text"] == "Yes please."),
            "{ev:?}"
        );
        // ElevenLabs and Deepgram stream: the greeting started with its first 100 ms piece; the others send whole
        // sentences.
        let prompt = ev.iter().find(|e| e["kind"] == "prompt").unwrap();
        let first = prompt["data"]["firstAudioMs"].as_u64().unwrap();
        match tts {
            "elevenlabs" | "deepgram" => assert_eq!(first, 100, "{prompt}"),
            _ => assert!(first >= 1000, "{tts}: {prompt}"),
        }
        assert_eq!(sim.stats.ended.load(Relaxed), 1);
    }
}

/// Deepgram's interim results reach a bot that lists `speechHypothesis` as events before the final message.
#[tokio::test]
async fn deepgram_interim_results_reach_the_bot_as_hypotheses() {
    let (_sim, bot, _fake, g) = setup("deepgram", "espeak", "sendEventsToBot = [\"speechHypothesis\"]").await;
    let (id, done) = call(&g).await;
    assert_eq!(done["botOperationResult"], "yes", "{done}");
    let received = bot.received(&id);
    let first = received.iter().position(|a| a["type"] == "message").unwrap();
    let hypotheses: Vec<&Value> = received[..first]
        .iter()
        .filter(|a| a["name"] == "speechHypothesis")
        .map(|a| &a["value"]["text"])
        .collect();
    assert!(!hypotheses.is_empty(), "{received:?}");
    assert!(
        hypotheses
            .iter()
            .all(|h| "Yes please.".starts_with(h.as_str().unwrap())),
        "{hypotheses:?}"
    );
}

/// A cloud voice that keeps failing: tried twice, then the local voice speaks, and the call goes on; the failure
/// is in the conversation's events and the metrics. With `ttsFallback = false` nothing is spoken instead.
#[tokio::test]
async fn a_failing_cloud_voice_falls_back_to_the_local_one() {
    let (sim, _bot, fake, g) = setup("whisper", "azure", "").await;
    fake.fail(Fault::ServerError, 1_000);
    let (id, done) = call(&g).await;
    assert_eq!(done["botOperationResult"], "yes", "{done}");
    let ev = common::events(&g, &id).await;
    let failed: Vec<&Value> = ev.iter().filter(|e| e["kind"] == "synthesis-failed").collect();
    assert!(!failed.is_empty(), "{ev:?}");
    assert_eq!(failed[0]["data"]["fallback"], "espeak");
    assert!(
        failed[0]["data"]["reason"]
            .as_str()
            .unwrap()
            .contains("Azure Speech failed (HTTP 502"),
        "{failed:?}"
    );
    // espeak spoke the greeting: the callee heard it.
    assert!(sim.stats.heard.lock().len() > 8000);
    // Each message was tried twice, and every try counted.
    let metrics = common::metrics(&g).await;
    let failures: f64 = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix("outdial_speech_failures_total{provider=\"azure\",kind=\"unavailable\"} ")
        })
        .unwrap_or_else(|| panic!("{metrics}"))
        .parse()
        .unwrap();
    assert!(
        failures >= 2.0 * failed.len() as f64,
        "{failures} for {} messages",
        failed.len()
    );
    assert!(
        fake.requests().iter().all(|r| r.path != "/cognitiveservices/v1"),
        "no synthesis succeeded"
    );
}

/// A streamed voice that breaks after its first piece has played: that sentence is cut short (no second voice
/// says it again), the event says so, and the call goes on with the next sentences in the cloud voice.
#[tokio::test]
async fn a_voice_stream_that_breaks_midway_cuts_the_sentence_short_and_the_call_goes_on() {
    let (_sim, _bot, fake, g) = setup("whisper", "elevenlabs", "").await;
    fake.fail(Fault::Drop, 1);
    let (id, done) = call(&g).await;
    assert_eq!(done["botOperationResult"], "yes", "{done}");
    let ev = common::events(&g, &id).await;
    let failed: Vec<&Value> = ev.iter().filter(|e| e["kind"] == "synthesis-failed").collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["data"]["fallback"], Value::Null, "{failed:?}");
    // The greeting's first sentence started (50 ms of it), then the next ones came from ElevenLabs again.
    let prompt = ev.iter().find(|e| e["kind"] == "prompt").unwrap();
    assert_eq!(prompt["data"]["firstAudioMs"], 50, "{prompt}");
    let synth = fake
        .requests()
        .iter()
        .filter(|r| r.provider == "elevenlabs")
        .count();
    assert!(synth >= 3, "{synth} ElevenLabs requests");
}
