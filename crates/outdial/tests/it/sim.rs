//! The real binary dials the simulated callee (outdial-sim, in this test process): each kind of callee gives the
//! outcome a dialer expects.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly.

use crate::common;

use common::{ADMIN, Gateway, receiver, status};
use serde_json::{Value, json};
use std::time::Duration;

async fn setup() -> (outdial_sim::Sim, Gateway) {
    setup_with("").await
}

/// The simulated callee and the gateway, with `extra` at the start of the gateway's configuration.
async fn setup_with(extra: &str) -> (outdial_sim::Sim, Gateway) {
    let sim = outdial_sim::start(
        "127.0.0.1:0".parse().unwrap(),
        outdial_sim::SimOptions {
            hold: Duration::from_secs(20),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let g = Gateway::start(&common::with_bot(&format!(
        "{extra}[[trunks]]\nname = \"sim\"\naddress = \"{}\"\nkeepAliveSec = 1\n\n[[bots]]\nname = \"Bot1\"\nbotUrl = \"http://127.0.0.1:9/bot\"\n",
        sim.addr
    )).await)
    .await;
    (sim, g)
}

async fn dial(g: &Gateway, number: &str, extra: Value) -> (String, common::Got) {
    let (url, got) = receiver().await;
    let mut body = json!({"bot": "Bot1", "target": format!("tel:{number}"), "caller": "1000", "notifyUrl": url,
        "answerTimeoutSec": 2});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let r = g.post("/api/v1/actions/dialout", ADMIN, &body).await;
    assert_eq!(r.status(), 200);
    let id = r.json::<Value>().await.unwrap()["conversationId"]
        .as_str()
        .unwrap()
        .to_string();
    (id, got)
}

/// Dials the simulated person in `detect` mode: the verdict is human; then hangs up. The conversation id and the
/// terminal notification.
async fn a_person_answers(g: &Gateway) -> (String, Value) {
    let (id, got) = dial(
        g,
        "+15550100",
        json!({"machineDetection": "detect", "notifyEvents": ["machineDetection"]}),
    )
    .await;
    assert_eq!(
        status(&got, "machineDetection").await["machineDetection"],
        "human"
    );
    common::hang_up(g, &id).await;
    (id, status(&got, "completed").await)
}

#[tokio::test]
async fn every_kind_of_callee() {
    let (sim, g) = setup().await;
    // A person: answered, verdict human, the call goes on until hung up.
    let (_, completed) = a_person_answers(&g).await;
    assert_eq!(completed["detection"]["result"], "human");

    // A machine with disconnect: hung up as voicemail.
    let (_, got) = dial(&g, "+15550101", json!({"machineDetection": "disconnect"})).await;
    let done = status(&got, "completed").await;
    assert_eq!(
        (done["reasonCode"].as_str(), done["reason"].as_str()),
        (Some("machine-detected"), Some("voicemail detected"))
    );

    // A fax.
    let (_, got) = dial(&g, "+15550103", json!({"machineDetection": "detect"})).await;
    assert_eq!(status(&got, "completed").await["reason"], "fax detected");

    // Busy, declined, no answer.
    let (_, got) = dial(&g, "+15550104", json!({})).await;
    assert_eq!(status(&got, "failed").await["reasonCode"], "busy");
    let (_, got) = dial(&g, "+15550106", json!({})).await;
    assert_eq!(status(&got, "failed").await["reasonCode"], "declined");
    let (_, got) = dial(&g, "+15550105", json!({})).await;
    let f = status(&got, "failed").await;
    assert_eq!(f["reasonCode"], "no-answer");

    // The keep-alive OPTIONS are answered: the trunk is up.
    let r: Value = g.get("/readyz", common::ADMIN).await.json().await.unwrap();
    assert_eq!(r["checks"]["trunks"]["sim"], "up (200)", "{r}");
    // The simulated callee saw every INVITE and got our RTP on the answered calls.
    use std::sync::atomic::Ordering::Relaxed;
    assert_eq!(sim.stats.invites.load(Relaxed), 6);
    assert!(sim.stats.rtp_received.load(Relaxed) > 50, "{:?}", sim.stats);
}

/// `sip.media_threads`: the calls' RTP runs on threads of its own (at real-time priority when allowed). A person
/// is found and the call's media figures add up: every packet sent is in its send-offset histogram. The runtime
/// runs the `runtime.workers` it is given.
#[tokio::test]
async fn media_on_threads_of_its_own() {
    let (sim, g) =
        setup_with("[runtime]\nworkers = 5\n\n[sip]\nmedia_threads = 2\nmedia_realtime = true\n\n").await;
    assert!(
        g.log().contains("5 runtime worker(s), 2 media thread(s)"),
        "{}",
        g.log()
    );
    let (id, _) = a_person_answers(&g).await;
    let stats = common::events(&g, &id)
        .await
        .into_iter()
        .find(|e| e["kind"] == "media-stats")
        .expect("media-stats in the timeline");
    let sent = stats["data"]["packetsSent"].as_u64().unwrap();
    assert!(sent >= 100, "{stats}");
    let in_buckets: u64 = stats["data"]["sendOffset"]["buckets"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(in_buckets, sent, "{stats}");
    assert!(
        stats["data"]["packetsReceived"].as_u64().unwrap() >= 100,
        "{stats}"
    );
    assert!(sim.stats.rtp_received.load(std::sync::atomic::Ordering::Relaxed) >= 100);
}

#[tokio::test]
async fn a_machine_in_detect_mode_ends_its_greeting_with_the_beep() {
    let (_sim, g) = setup().await;
    let (id, got) = dial(&g, "+15550101", json!({"machineDetection": "detect"})).await;
    for _ in 0..250 {
        let c = common::conversation(&g, &id).await;
        if c["detection"]["voicemail"].is_string() {
            assert_eq!(c["detection"]["voicemail"], "voicemail beep", "{c}");
            let t = c["detection"]["greetingEnd"]["timeMs"].as_i64().unwrap();
            assert!((t - 15_240).abs() <= 300, "beep end {t}");
            common::hang_up(&g, &id).await;
            assert_eq!(
                status(&got, "completed").await["machineDetection"],
                "voicemail beep"
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no end of greeting");
}
