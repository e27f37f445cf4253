//! Media end to end: sipp answers and plays recorded RTP (pcap) to the real binary.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly.

use crate::common;

use common::Gateway;
use outdial_testkit::Sipp;
use serde_json::{Value, json};
use std::time::Duration;

const BOT: &str = "\n[[bots]]\nname = \"Bot1\"\nbotUrl = \"http://127.0.0.1:9/bot\"\n";

pub async fn gateway(sipp_port: u16, sip_extra: &str) -> Gateway {
    Gateway::start(&common::with_bot(&format!(
        "[sip]\n{sip_extra}\n\n[[trunks]]\nname = \"sbc\"\naddress = \"127.0.0.1:{sipp_port}\"\nkeepAliveSec = 0\n{BOT}"
    )).await)
    .await
}

pub async fn dial(g: &Gateway, extra: Value) -> String {
    let mut body = json!({"bot": "Bot1", "target": "tel:+123456789", "caller": "1-800-111"});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    common::dialout(g, &body).await
}

#[tokio::test]
async fn dtmf_is_received_and_silence_ends_the_call_at_the_media_timeout() {
    let sipp = Sipp::uas("uas_play_dtmf.xml", &["-mi", "127.0.0.1"]);
    let g = gateway(sipp.port, "media_timeout_sec = 2").await;
    let id = dial(&g, json!({})).await;
    let c = common::ended(&g, &id, Duration::from_secs(8)).await;
    assert_eq!(c["state"], "ended", "{c}");
    assert_eq!(c["reasonCode"], "error");
    let reason = c["reason"].as_str().unwrap();
    assert!(reason.starts_with("media timeout: no RTP for 2."), "{reason}");
    // The media figures are recorded once the bot has been told (just after the end).
    let mut ev = common::events(&g, &id).await;
    for _ in 0..30 {
        if ev.iter().any(|e| e["kind"] == "media-stats") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        ev = common::events(&g, &id).await;
    }
    let dtmf: Vec<&Value> = ev.iter().filter(|e| e["kind"] == "dtmf").collect();
    assert_eq!(dtmf.len(), 1, "one digit however many end packets: {ev:?}");
    assert_eq!(dtmf[0]["data"]["digit"], "5");
    assert_eq!(dtmf[0]["data"]["durationMs"], 280);
    let stats = ev
        .iter()
        .find(|e| e["kind"] == "media-stats")
        .expect("media statistics recorded");
    assert_eq!(stats["data"]["packetsReceived"], 10);
    assert!(stats["data"]["packetsSent"].as_u64().unwrap() >= 90, "{stats}");
    assert_eq!(sipp.exit_code(), 0, "sipp got our BYE");
}

/// The timeline's bot events (`machineDetection` values), in order.
async fn bot_events(g: &Gateway, id: &str) -> Vec<String> {
    common::events(g, id)
        .await
        .iter()
        .filter(|e| e["kind"] == "bot-event" && e["data"]["name"] == "machineDetection")
        .map(|e| e["data"]["value"].as_str().unwrap().to_string())
        .collect()
}

async fn wait_for_bot_events(g: &Gateway, id: &str, n: usize, within: Duration) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let got = bot_events(g, id).await;
        if got.len() >= n || tokio::time::Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn hang_up(g: &Gateway, id: &str) {
    let r = common::hang_up(g, id).await;
    assert!(r.status().is_success(), "{}", r.status());
}

#[tokio::test]
async fn a_person_is_human_and_the_call_goes_on() {
    let sipp = Sipp::uas("uas_play_human.xml", &["-mi", "127.0.0.1"]);
    let g = gateway(sipp.port, "").await;
    let (url, got) = common::receiver().await;
    let id = dial(
        &g,
        json!({"machineDetection": "detect", "notifyUrl": url, "notifyEvents": ["machineDetection"]}),
    )
    .await;
    let md = common::status(&got, "machineDetection").await;
    assert_eq!(md["machineDetection"], "human", "{md}");
    assert_eq!(md["detection"]["result"], "human");
    assert!(
        md["detection"]["cause"].as_str().unwrap().starts_with("HUMAN-"),
        "{md}"
    );
    // 0.3 s of silence and "Hello? Who is this?": known well within 3 s of the answer.
    assert!(md["detection"]["latencyMs"].as_u64().unwrap() < 3000, "{md}");
    assert_eq!(md["sequence"], 2, "after answered");
    let c = common::conversation(&g, &id).await;
    assert_eq!(c["state"], "answered", "a person: the call goes on");
    assert!(bot_events(&g, &id).await.is_empty());
    hang_up(&g, &id).await;
    let done = common::status(&got, "completed").await;
    assert_eq!(done["detection"]["result"], "human");
    assert!(
        done.get("machineDetection").is_none(),
        "only for machines in detect mode: {done}"
    );
}

#[tokio::test]
async fn detect_mode_tells_the_bot_when_the_greeting_ends_with_a_beep() {
    let sipp = Sipp::uas("uas_play_voicemail.xml", &["-mi", "127.0.0.1"]);
    let g = gateway(sipp.port, "").await;
    let (url, got) = common::receiver().await;
    let id = dial(&g, json!({"machineDetection": "detect", "notifyUrl": url})).await;
    let events = wait_for_bot_events(&g, &id, 2, Duration::from_secs(25)).await;
    assert_eq!(events, ["voicemail-prompt-start", "voicemail-prompt-end-beep"]);
    let c = common::conversation(&g, &id).await;
    let d = &c["detection"];
    assert_eq!(d["result"], "machine", "{c}");
    assert_eq!(d["greetingEnd"]["kind"], "beep");
    assert_eq!(d["greetingEnd"]["frequencyHz"], 1000);
    // The recording's beep ends 15.24 s after its start; RTP starts at the answer, plus the jitter buffer.
    let t = d["greetingEnd"]["timeMs"].as_i64().unwrap();
    assert!((t - 15_240).abs() <= 300, "beep end at {t} ms");
    hang_up(&g, &id).await;
    let done = common::status(&got, "completed").await;
    assert_eq!(done["machineDetection"], "voicemail beep", "{done}");
}

#[tokio::test]
async fn detect_mode_without_a_beep_ends_the_greeting_at_the_timeout() {
    let sipp = Sipp::uas("uas_play_voicemail.xml", &["-mi", "127.0.0.1"]);
    let g = gateway(sipp.port, "").await;
    let (url, got) = common::receiver().await;
    let id = dial(
        &g,
        json!({"machineDetection": "detect", "voicemailEndTimeoutSec": 2, "notifyUrl": url}),
    )
    .await;
    let events = wait_for_bot_events(&g, &id, 2, Duration::from_secs(10)).await;
    assert_eq!(events, ["voicemail-prompt-start", "voicemail-prompt-end-beep"]);
    let c = common::conversation(&g, &id).await;
    let d = &c["detection"];
    assert_eq!(d["greetingEnd"]["kind"], "timeout", "{c}");
    let verdict = d["latencyMs"].as_i64().unwrap();
    let t = d["greetingEnd"]["timeMs"].as_i64().unwrap();
    assert!(
        (t - verdict - 2000).abs() <= 300,
        "timeout {t} ms, verdict at {verdict} ms"
    );
    hang_up(&g, &id).await;
    let done = common::status(&got, "completed").await;
    assert_eq!(done["machineDetection"], "voicemail timeout", "{done}");
}

#[tokio::test]
async fn disconnect_mode_hangs_up_on_a_machine() {
    let sipp = Sipp::uas("uas_play_voicemail.xml", &["-mi", "127.0.0.1"]);
    let g = gateway(sipp.port, "").await;
    let (url, got) = common::receiver().await;
    dial(&g, json!({"machineDetection": "disconnect", "notifyUrl": url})).await;
    let done = common::status(&got, "completed").await;
    assert_eq!(done["reasonCode"], "machine-detected", "{done}");
    assert_eq!(done["reason"], "voicemail detected");
    assert_eq!(done["detection"]["result"], "machine");
    // Hung up as soon as the greeting's voice outlasts a person's longer answer (3 s; docs/detection.md, "Second
    // opinion"), not after `secondOpinionMs`.
    let voice = done["detection"]["evidence"]["voiceMs"].as_u64().unwrap();
    assert!((3000..=3100).contains(&voice), "{done}");
    assert!(done["callDuration"].as_f64().unwrap() < 5.0, "{done}");
    assert_eq!(sipp.exit_code(), 0, "sipp got our BYE");
}

#[tokio::test]
async fn fax_tones_hang_up_in_either_mode() {
    for (scenario, mode, cause) in [
        ("uas_play_fax_ced.xml", "detect", "CED"),
        ("uas_play_fax_cng.xml", "disconnect", "CNG"),
    ] {
        let sipp = Sipp::uas(scenario, &["-mi", "127.0.0.1"]);
        let g = gateway(sipp.port, "").await;
        let (url, got) = common::receiver().await;
        let id = dial(&g, json!({"machineDetection": mode, "notifyUrl": url})).await;
        let done = common::status(&got, "completed").await;
        assert_eq!(done["reasonCode"], "machine-detected", "{done}");
        assert_eq!(done["reason"], "fax detected");
        assert_eq!(done["detection"]["cause"], cause);
        assert!(
            bot_events(&g, &id).await.is_empty(),
            "no voicemail events for a fax"
        );
        assert_eq!(sipp.exit_code(), 0);
    }
}

#[tokio::test]
async fn without_detection_a_machine_is_just_a_call() {
    let sipp = Sipp::uas("uas_play_voicemail.xml", &["-mi", "127.0.0.1"]);
    let g = gateway(sipp.port, "").await;
    let id = dial(&g, json!({})).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let c = common::conversation(&g, &id).await;
    assert_eq!(c["state"], "answered");
    assert!(c["detection"].is_null(), "{c}");
    hang_up(&g, &id).await;
}
