//! Media end to end: sipp answers and plays recorded RTP (pcap) to the real binary.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly.

mod common;

use common::{ADMIN, Gateway};
use outdial_testkit::Sipp;
use serde_json::{Value, json};
use std::time::Duration;

const BOT: &str = "\n[[bots]]\nname = \"Bot1\"\nbotUrl = \"http://127.0.0.1:9/bot\"\n";

pub async fn gateway(sipp_port: u16, sip_extra: &str) -> Gateway {
    Gateway::start(&format!(
        "[sip]\n{sip_extra}\n\n[[trunks]]\nname = \"sbc\"\naddress = \"127.0.0.1:{sipp_port}\"\nkeepAliveSec = 0\n{BOT}"
    ))
    .await
}

pub async fn dial(g: &Gateway, extra: Value) -> String {
    let mut body = json!({"bot": "Bot1", "target": "tel:+123456789", "caller": "1-800-111"});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let r = g.post("/api/v1/actions/dialout", ADMIN, &body).await;
    assert_eq!(r.status(), 200);
    r.json::<Value>().await.unwrap()["conversationId"]
        .as_str()
        .unwrap()
        .to_string()
}

pub async fn ended(g: &Gateway, id: &str, within: Duration) -> Value {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        let c: Value = g
            .get(&format!("/api/v1/conversations/{id}"), ADMIN)
            .await
            .json()
            .await
            .unwrap();
        if c["state"] == "ended" || c["state"] == "failed" {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("conversation {id} did not end within {within:?}");
}

pub async fn events(g: &Gateway, id: &str) -> Vec<Value> {
    g.get(&format!("/api/v1/conversations/{id}/events"), ADMIN)
        .await
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn dtmf_is_received_and_silence_ends_the_call_at_the_media_timeout() {
    let sipp = Sipp::uas("uas_play_dtmf.xml", &["-mi", "127.0.0.1"]);
    let g = gateway(sipp.port, "media_timeout_sec = 2").await;
    let id = dial(&g, json!({})).await;
    let c = ended(&g, &id, Duration::from_secs(8)).await;
    assert_eq!(c["state"], "ended", "{c}");
    assert_eq!(c["reasonCode"], "error");
    let reason = c["reason"].as_str().unwrap();
    assert!(reason.starts_with("media timeout: no RTP for 2."), "{reason}");
    let ev = events(&g, &id).await;
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
