//! The far end's new offers during the call (issue 12, items 4 and 5; docs/trunks.md, "Re-INVITE and hold"): the
//! real binary against sipp, whose re-INVITEs move the media to a socket of this test (which counts our RTP and
//! sends it back), hold the call longer than the media timeout, offer a codec we do not have (488), and resume.

use crate::common;

use common::{Gateway, receiver, status};
use outdial_testkit::Sipp;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

#[tokio::test]
async fn the_media_follows_a_reinvite_and_a_hold_is_not_silence() {
    // The new place of the far end's media: counts our RTP and echoes it (so the call keeps receiving RTP).
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let new_port = socket.local_addr().unwrap().port();
    let counted = Arc::new(AtomicU64::new(0));
    let c = counted.clone();
    tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            c.fetch_add(1, Relaxed);
            let _ = socket.send_to(&buf[..n], from).await;
        }
    });
    let media_port = loop {
        let p = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if p.is_multiple_of(2) && p < 65000 {
            break p;
        }
    };
    let (mp, np) = (media_port.to_string(), new_port.to_string());
    let sipp = Sipp::uas(
        "uas_reinvite_move_hold.xml",
        &["-mp", &mp, "-rtp_echo", "-key", "newport", &np],
    );
    let bot = outdial_sim::bot::start("127.0.0.1:0".parse().unwrap(), outdial_sim::bot::Script::Silent)
        .await
        .unwrap();
    let g = Gateway::start(&format!(
        "[sip]\nmedia_timeout_sec = 2\n\n[[trunks]]\nname = \"sbc\"\naddress = \"127.0.0.1:{}\"\nkeepAliveSec = 0\n\n\
         [[bots]]\nname = \"Bot1\"\nbotUrl = \"{}\"\n",
        sipp.port, bot.url
    ))
    .await;
    let (url, got) = receiver().await;
    let body = json!({"bot": "Bot1", "target": "tel:+123456789", "caller": "1-800-111", "notifyUrl": url});
    let id = common::dialout(&g, &body).await;
    status(&got, "answered").await;
    // sipp moves the media 0.8 s after the answer, then holds 1.2 s later.
    tokio::time::sleep(Duration::from_millis(1900)).await;
    let moved = counted.load(Relaxed);
    assert!(
        moved >= 30,
        "RTP went to the new address: {moved} packets in about 1.1 s"
    );
    // On hold (3 s, longer than the 2 s media timeout) nothing is sent.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let at_hold = counted.load(Relaxed);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let during = counted.load(Relaxed) - at_hold;
    assert!(during <= 3, "nothing sent while held: {during} packets");
    let done = status(&got, "completed").await;
    assert_eq!(
        (done["reasonCode"].as_str(), done["hangupBy"].as_str()),
        (Some("client-disconnected"), Some("callee")),
        "the hold did not end the call: {done}"
    );
    assert_eq!(
        sipp.exit_code(),
        0,
        "sipp got 200 (o= version 1, then 2 with recvonly, then 3 with sendrecv) and 488 for G.729 only"
    );
    let names: Vec<String> = bot
        .received(&id)
        .iter()
        .filter_map(|a| a["name"].as_str().map(String::from))
        .collect();
    let hold = names.iter().position(|n| n == "hold").expect("hold event");
    let resume = names.iter().position(|n| n == "resume").expect("resume event");
    assert!(hold < resume, "{names:?}");
    assert_eq!(names.iter().filter(|n| *n == "hold").count(), 1, "{names:?}");
}
