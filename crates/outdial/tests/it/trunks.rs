//! Trunks end to end with the real binary: the OPTIONS keep-alive marks a silent trunk down (503 for its
//! dialouts, `/readyz`, metrics) and up again; a TLS trunk verified with its `tlsCaFile` carries a call; a
//! trunk named without a port is found by SRV through `sip.nameservers`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly.

use crate::common;

use common::{ADMIN, Gateway, error_of};
use outdial_testkit::{Dns, Record, Sipp, Stunnel, TestCa};
use serde_json::{Value, json};
use std::time::Duration;

const BOT: &str = "\n[[bots]]\nname = \"Bot1\"\nbotUrl = \"http://127.0.0.1:9/bot\"\n";

async fn readyz(g: &Gateway) -> (u16, Value) {
    let r = g.get("/readyz", ADMIN).await;
    (r.status().as_u16(), r.json().await.unwrap())
}

/// Polls `/readyz` until the trunk's state starts with `prefix`.
async fn trunk_becomes(g: &Gateway, trunk: &str, prefix: &str) -> (u16, Value) {
    for _ in 0..100 {
        let (status, body) = readyz(g).await;
        if body["checks"]["trunks"][trunk]
            .as_str()
            .is_some_and(|s| s.starts_with(prefix))
        {
            return (status, body);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("trunk {trunk} never became {prefix}: {:?}", readyz(g).await);
}

async fn dialout(g: &Gateway) -> reqwest::Response {
    g.post(
        "/api/v1/actions/dialout",
        ADMIN,
        &json!({"bot": "Bot1", "target": "tel:+123456789", "caller": "1-800-111"}),
    )
    .await
}

#[tokio::test]
async fn keep_alive_marks_a_silent_trunk_down_and_up_again() {
    let sipp = Sipp::uas("uas_options_200.xml", &["-m", "1000"]);
    let port = sipp.port;
    let g = Gateway::start(&common::with_bot(&format!(
        "[sip]\ntrunk_down_after = 2\n\n[[trunks]]\nname = \"sbc\"\naddress = \"127.0.0.1:{port}\"\nkeepAliveSec = 1\n{BOT}"
    )).await)
    .await;
    let (status, body) = trunk_becomes(&g, "sbc", "up").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["checks"]["trunks"]["sbc"], "up (200)");

    // The trunk goes silent: two unanswered probes later it is down.
    drop(sipp);
    let (status, body) = trunk_becomes(&g, "sbc", "down").await;
    assert_eq!(status, 503, "the only trunk is down: not ready ({body})");
    assert_eq!(body["status"], "not ready");
    let (code, error) = error_of(dialout(&g).await).await;
    assert_eq!(code, 503);
    assert!(
        error.contains("trunk 'sbc' is down: 2 keep-alive OPTIONS in a row went unanswered"),
        "{error}"
    );
    let metrics = common::metrics(&g).await;
    assert!(metrics.contains("outdial_trunk_up{trunk=\"sbc\"} 0"), "{metrics}");

    // It answers again: up, and dialouts go through.
    let _back = Sipp::uas_on(port, "uas_options_200.xml", &["-m", "1000"]);
    let (status, _) = trunk_becomes(&g, "sbc", "up").await;
    assert_eq!(status, 200);
    assert_eq!(dialout(&g).await.status(), 200);
}

#[tokio::test]
async fn a_tls_trunk_with_its_ca_file_carries_a_call() {
    let sipp = Sipp::uas("uas_answer_then_bye.xml", &["-t", "t1", "-d", "300"]);
    let ca = TestCa::new();
    let tunnel = Stunnel::relay_to(&ca, sipp.port);
    let g = Gateway::start(&common::with_bot(&format!(
        "[[trunks]]\nname = \"sbc\"\naddress = \"127.0.0.1:{}\"\ntransport = \"tls\"\ntlsCaFile = \"{}\"\n\
         tlsServerName = \"sbc.test\"\nkeepAliveSec = 0\n{BOT}",
        tunnel.port,
        ca.dir.join("ca.pem").display()
    )).await)
    .await;
    let r = dialout(&g).await;
    assert_eq!(r.status(), 200);
    let id = r.json::<Value>().await.unwrap()["conversationId"]
        .as_str()
        .unwrap()
        .to_string();
    let c = common::ended(&g, &id, Duration::from_secs(20)).await;
    assert_eq!(c["state"], "ended", "{c}");
    assert_eq!(c["reasonCode"], "client-disconnected", "{c}");
    assert_eq!(sipp.exit_code(), 0);
}

#[tokio::test]
async fn a_tls_trunk_with_a_missing_ca_file_fails_the_call_clearly() {
    let g = Gateway::start(
        &common::with_bot(&format!(
            "[[trunks]]\nname = \"sbc\"\naddress = \"127.0.0.1:5061\"\ntransport = \"tls\"\n\
         tlsCaFile = \"/nonexistent/ca.pem\"\nkeepAliveSec = 0\n{BOT}"
        ))
        .await,
    )
    .await;
    let r = dialout(&g).await;
    assert_eq!(r.status(), 200);
    let id = r.json::<Value>().await.unwrap()["conversationId"]
        .as_str()
        .unwrap()
        .to_string();
    let c = common::ended(&g, &id, Duration::from_secs(20)).await;
    assert_eq!(c["state"], "failed");
    assert_eq!(c["reasonCode"], "error");
    assert!(
        c["reason"]
            .as_str()
            .unwrap()
            .starts_with("cannot read the tlsCaFile /nonexistent/ca.pem of trunk 'sbc'"),
        "{c}"
    );
}

#[tokio::test]
async fn a_trunk_without_port_is_found_by_srv() {
    let sipp = Sipp::uas("uas_answer_then_bye.xml", &["-d", "300"]);
    let dns = Dns::start(vec![
        Record::Srv {
            name: "_sip._udp.carrier.test".into(),
            priority: 10,
            weight: 1,
            port: sipp.port,
            target: "edge.carrier.test".into(),
        },
        Record::A {
            name: "edge.carrier.test".into(),
            ip: "127.0.0.1".parse().unwrap(),
        },
    ]);
    let g = Gateway::start(&common::with_bot(&format!(
        "[sip]\nnameservers = [\"{}\"]\n\n[[trunks]]\nname = \"sbc\"\naddress = \"carrier.test\"\nkeepAliveSec = 0\n{BOT}",
        dns.addr
    )).await)
    .await;
    let r = dialout(&g).await;
    assert_eq!(r.status(), 200);
    let id = r.json::<Value>().await.unwrap()["conversationId"]
        .as_str()
        .unwrap()
        .to_string();
    let c = common::ended(&g, &id, Duration::from_secs(20)).await;
    assert_eq!(c["reasonCode"], "client-disconnected", "{c}");
    assert_eq!(sipp.exit_code(), 0);
}

/// Issue 12, item 6 (docs/trunks.md, "SRTP"): with `srtp = "required"` the media is SRTP, checked by a far end
/// that encrypts with libsrtp: it authenticates and decrypts our packets (none carries the plain payload) and sends
/// the audio back with its own key, which we authenticate (no datagram dropped), for both suites.
#[tokio::test]
async fn srtp_with_a_far_end_that_really_encrypts() {
    for suite in ["80", "32"] {
        let peer = outdial_testkit::Peer::srtp(suite, 2.0);
        let g = Gateway::start(&common::with_bot(&format!(
            "[[trunks]]\nname = \"secure\"\naddress = \"127.0.0.1:{}\"\nkeepAliveSec = 0\nsrtp = \"required\"\n{BOT}",
            peer.port
        ))
        .await)
        .await;
        let (url, got) = common::receiver().await;
        let id = common::dialout(
            &g,
            &json!({"bot": "Bot1", "target": "tel:+123456789", "caller": "1-800-111", "notifyUrl": url}),
        )
        .await;
        let done = common::status(&got, "completed").await;
        assert_eq!(done["reasonCode"], "client-disconnected", "{suite}: {done}");
        let report = peer.report();
        let authenticated = report["authenticated"].as_u64().unwrap();
        assert!(
            authenticated >= 50,
            "{suite}: the far end decrypted our RTP: {report}"
        );
        assert_eq!(report["failed"], 0, "{suite}: {report}");
        assert_eq!(
            report["plain_on_wire"], 0,
            "{suite}: nothing in plain G.711 on the wire: {report}"
        );
        assert_eq!(report["bye_ok"], true, "{suite}: {report}");
        let events = common::events(&g, &id).await;
        let stats = &events
            .iter()
            .find(|e| e["kind"] == "media-stats")
            .expect("media stats")["data"];
        assert!(
            stats["packetsReceived"].as_u64().unwrap() >= 40,
            "{suite}: we decrypted the far end's SRTP: {stats}"
        );
        assert_eq!(
            stats["datagramsDropped"], 0,
            "{suite}: every packet authenticated: {stats}"
        );
    }
}

/// A trunk that requires SRTP refuses an answer without a key: ACK and BYE at once, `failed` / `error`.
#[tokio::test]
async fn an_answer_without_srtp_keys_is_refused_when_srtp_is_required() {
    let sipp = Sipp::uas("uas_answer_wait_bye.xml", &[]);
    let g = Gateway::start(&common::with_bot(&format!(
        "[[trunks]]\nname = \"secure\"\naddress = \"127.0.0.1:{}\"\nkeepAliveSec = 0\nsrtp = \"required\"\n{BOT}",
        sipp.port
    ))
    .await)
    .await;
    let (url, got) = common::receiver().await;
    common::dialout(
        &g,
        &json!({"bot": "Bot1", "target": "tel:+123456789", "caller": "1-800-111", "notifyUrl": url}),
    )
    .await;
    let failed = common::status(&got, "failed").await;
    assert_eq!(failed["reasonCode"], "error");
    assert_eq!(
        failed["reason"],
        "the SDP answer has no usable audio stream: SRTP is required (trunk srtp = \"required\") and the answer has no usable a=crypto"
    );
    assert_eq!(sipp.exit_code(), 0, "sipp got our BYE");
}
