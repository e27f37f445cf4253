//! RTP ports as a free list (docs/operations.md, "RTP ports"; issue 18): a dialout that would find no RTP port
//! is refused at once with 503 and says why, the port comes back when its call ends, and `/metrics` shows how
//! many are free. The trunk never answers (calls stay in their INVITE transaction, holding their ports).

use crate::common;

use common::{ADMIN, Gateway, error_of};
use serde_json::json;
use std::time::Duration;

/// Two free even ports in a row (p, p+1, p+2, p+3) on 127.0.0.1, for a range of two pairs.
fn four_free_ports() -> u16 {
    for _ in 0..50 {
        let p = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
            & !1;
        if p < 65000 && (p..p + 4).all(|q| std::net::UdpSocket::bind(("127.0.0.1", q)).is_ok()) {
            return p;
        }
    }
    panic!("no four free UDP ports in a row");
}

#[tokio::test]
async fn a_dialout_without_a_free_rtp_port_is_refused_at_once() {
    // 127.0.0.1:9 (discard) never answers an INVITE.
    let first = four_free_ports();
    let g = Gateway::start(&common::with_bot(&format!(
        "[sip]\nrtp_ports = \"{first}-{}\"\n\n[[trunks]]\nname = \"dead\"\naddress = \"127.0.0.1:9\"\nkeepAliveSec = 0\n\n\
         [[bots]]\nname = \"Bot1\"\nbotUrl = \"http://127.0.0.1:9/bot\"\n",
        first + 3
    ))
    .await)
    .await;
    let body = json!({"bot": "Bot1", "target": "tel:+15550100", "caller": "1"});
    let a = common::dialout(&g, &body).await;
    let _b = common::dialout(&g, &body).await;
    // Both pairs are taken: the third is refused before anything is stored or dialled.
    let started = tokio::time::Instant::now();
    let (status, error) = error_of(g.post("/api/v1/actions/dialout", ADMIN, &body).await).await;
    assert_eq!(status, 503);
    assert_eq!(
        error,
        format!(
            "no free RTP port: all 2 port pairs of {first}-{} are in use (sip.rtp_ports)",
            first + 3
        )
    );
    assert!(started.elapsed() < Duration::from_millis(500));
    let metrics = common::metrics(&g).await;
    assert!(metrics.contains("outdial_rtp_ports_total 2"), "{metrics}");
    // The two INVITEs are in their transactions (published every second).
    let mut metrics = String::new();
    for _ in 0..30 {
        metrics = common::metrics(&g).await;
        if metrics.contains("outdial_sip_transactions{state=\"running\"} 2") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        metrics.contains("outdial_sip_transactions{state=\"running\"} 2"),
        "{metrics}"
    );
    // The first call ends (hung up through the API): its pair is free again.
    common::hang_up(&g, &a).await;
    common::ended(&g, &a, Duration::from_secs(5)).await;
    let mut accepted = false;
    for _ in 0..50 {
        if g.post("/api/v1/actions/dialout", ADMIN, &body).await.status() == 200 {
            accepted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(accepted, "the ended call's port pair went back to the pool");
}

/// A trunk that answers no INVITE at all (not even 100 Trying), without keep-alive: `sip.trunk_down_after` silent
/// INVITEs in a row mark it down, dialouts through it get 503 at once, and it is probed with OPTIONS until it
/// answers; then dialouts go through again.
#[tokio::test]
async fn a_trunk_that_answers_no_invite_is_marked_down_until_it_answers() {
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let g = Gateway::start(&common::with_bot(&format!(
        "[sip]\ntrunk_down_after = 2\n\n[[trunks]]\nname = \"silent\"\naddress = \"127.0.0.1:{port}\"\nkeepAliveSec = 0\n\n\
         [[bots]]\nname = \"Bot1\"\nbotUrl = \"http://127.0.0.1:9/bot\"\n"
    ))
    .await)
    .await;
    let body = json!({"bot": "Bot1", "target": "tel:+15550100", "caller": "1", "answerTimeoutSec": 3});
    let a = common::dialout(&g, &body).await;
    let b = common::dialout(&g, &body).await;
    for id in [&a, &b] {
        let c = common::ended(&g, id, Duration::from_secs(10)).await;
        assert_eq!(c["reasonCode"], "no-answer", "{c}");
    }
    let (status, error) = error_of(g.post("/api/v1/actions/dialout", ADMIN, &body).await).await;
    assert_eq!(status, 503);
    assert_eq!(
        error,
        "trunk 'silent' is down: 2 INVITEs in a row got no response at all; dialouts resume once it answers OPTIONS"
    );
    // The trunk comes back: the next OPTIONS (every 2 s) is answered, and dialouts go through.
    let _back = outdial_testkit::Sipp::uas_on(port, "uas_options_200.xml", &["-m", "1000"]);
    let mut accepted = false;
    for _ in 0..60 {
        if g.post("/api/v1/actions/dialout", ADMIN, &body).await.status() == 200 {
            accepted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(accepted, "dialouts go through once the trunk answers OPTIONS");
}
