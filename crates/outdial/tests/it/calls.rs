//! Calls end to end: the real binary dials sipp (the far end, on 127.0.0.1) through a trunk, and a real HTTP
//! receiver gets the notifications. sipp's exit code says whether it saw the SIP it expected.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly.

use crate::common;

use common::{ADMIN, Gateway, receiver, status};
use outdial_testkit::Sipp;
use reqwest::Method;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

async fn gateway(sipp_port: u16) -> Gateway {
    Gateway::start(&common::with_bot(&format!(
        "[[trunks]]\nname = \"sbc\"\naddress = \"127.0.0.1:{sipp_port}\"\nkeepAliveSec = 0\n\n[[bots]]\nname = \"Bot1\"\nbotUrl = \"http://127.0.0.1:9/bot\"\n"
    )).await)
    .await
}

async fn dial(g: &Gateway, url: &str, extra: Value) -> String {
    let mut body =
        json!({"bot": "Bot1", "target": "tel:+123456789", "caller": "1-800-111", "notifyUrl": url});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    common::dialout(g, &body).await
}

#[tokio::test]
async fn answered_then_the_callee_hangs_up() {
    let sipp = Sipp::uas("uas_answer_then_bye.xml", &["-d", "1000"]);
    let g = gateway(sipp.port).await;
    let (url, got) = receiver().await;
    let id = dial(&g, &url, json!({})).await;
    let answered = status(&got, "answered").await;
    assert_eq!(answered["conversationId"], id.as_str());
    assert_eq!(answered["sequence"], 1);
    assert!(answered["connectTime"].as_str().unwrap().ends_with('Z'));
    let done = status(&got, "completed").await;
    assert_eq!(
        (done["reasonCode"].as_str(), done["reason"].as_str()),
        (Some("client-disconnected"), Some("Client disconnected"))
    );
    assert_eq!(done["sequence"], 2);
    assert_eq!(done["connectTime"], answered["connectTime"]);
    let duration = done["callDuration"].as_f64().unwrap();
    assert!((0.8..3.0).contains(&duration), "held about 1 s: {duration}");
    assert_eq!(
        done["sbcSessionID"],
        format!("{}@outdial", id.replace('-', "")),
        "no Session-ID header: the Call-ID"
    );
    assert_eq!(done["hangupBy"], "callee");
    assert_eq!(got.lock().len(), 2, "exactly answered + completed");
    assert_eq!(sipp.exit_code(), 0);
    let rec: Value = g
        .get(&format!("/api/v1/conversations/{id}"), ADMIN)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (rec["state"].as_str(), rec["status"].as_str()),
        (Some("ended"), Some("completed"))
    );
}

#[tokio::test]
async fn rejections_map_to_reason_codes() {
    for (scenario, code, reason_code, text) in [
        ("uas_486_reject.xml", 486, "busy", "Busy Here"),
        ("uas_603_reject.xml", 603, "declined", "Decline"),
        ("uas_404_reject.xml", 404, "error", "Not Found"),
        ("uas_600_reject.xml", 600, "busy", "Busy Everywhere"),
        ("uas_500_reject.xml", 500, "error", "Server Internal Error"),
        ("uas_503_reject.xml", 503, "error", "Service Unavailable"),
    ] {
        let sipp = Sipp::uas(scenario, &[]);
        let g = gateway(sipp.port).await;
        let (url, got) = receiver().await;
        let id = dial(&g, &url, json!({})).await;
        let failed = status(&got, "failed").await;
        assert_eq!(failed["conversationId"], id.as_str());
        assert_eq!(failed["reasonCode"], reason_code, "{scenario}");
        assert_eq!(
            failed["reason"],
            format!("SIP ;cause={code} ;text=\"{text}\""),
            "{scenario}"
        );
        assert_eq!(failed["sipStatus"], code);
        assert_eq!(failed["sequence"], 1, "no answered before it");
        assert_eq!(sipp.exit_code(), 0, "{scenario}");
    }
}

#[tokio::test]
async fn ringing_without_answer_is_cancelled_at_the_answer_timeout() {
    let sipp = Sipp::uas("uas_ring_no_answer.xml", &[]);
    let g = gateway(sipp.port).await;
    let (url, got) = receiver().await;
    let started = tokio::time::Instant::now();
    let id = dial(
        &g,
        &url,
        json!({"answerTimeoutSec": 1, "notifyEvents": ["ringing"]}),
    )
    .await;
    let ringing = status(&got, "ringing").await;
    assert_eq!(ringing["sequence"], 1);
    let failed = status(&got, "failed").await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1000) && took < Duration::from_millis(2500),
        "{took:?}"
    );
    assert_eq!(
        (failed["reasonCode"].as_str(), failed["reason"].as_str()),
        (Some("no-answer"), Some("answer timeout after 1 s"))
    );
    assert_eq!(failed["sequence"], 2);
    assert!(failed["postDialDelayMs"].as_i64().unwrap() >= 0);
    assert_eq!(
        sipp.exit_code(),
        0,
        "sipp got CANCEL, answered 487 and got the ACK"
    );
    let events: Value = g
        .get(&format!("/api/v1/conversations/{id}/events"), ADMIN)
        .await
        .json()
        .await
        .unwrap();
    let kinds: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .filter(|k| *k != "notification")
        .collect();
    assert_eq!(kinds, ["accepted", "dialing", "ringing", "failed"]);
}

#[tokio::test]
async fn answered_then_hung_up_through_the_api() {
    let sipp = Sipp::uas("uas_answer_wait_bye.xml", &[]);
    let g = gateway(sipp.port).await;
    let (url, got) = receiver().await;
    let id = dial(&g, &url, json!({})).await;
    status(&got, "answered").await;
    let r = g
        .send(
            Method::DELETE,
            &format!("/api/v1/conversations/{id}"),
            ADMIN,
            None,
        )
        .await;
    assert_eq!(r.status(), 202);
    let done = status(&got, "completed").await;
    assert_eq!(
        (done["reasonCode"].as_str(), done["reason"].as_str()),
        (Some("error"), Some("ended by API"))
    );
    assert_eq!(sipp.exit_code(), 0, "sipp received our BYE");
}

#[tokio::test]
async fn an_answer_crossing_the_cancel_still_gives_exactly_one_failed() {
    let sipp = Sipp::uas("uas_answer_crosses_cancel.xml", &[]);
    let g = gateway(sipp.port).await;
    let (url, got) = receiver().await;
    let id = dial(&g, &url, json!({"answerTimeoutSec": 1})).await;
    let failed = status(&got, "failed").await;
    assert_eq!(
        (failed["reasonCode"].as_str(), failed["reason"].as_str()),
        (Some("no-answer"), Some("answer timeout after 1 s"))
    );
    assert_eq!(
        sipp.exit_code(),
        0,
        "the crossing 200 was ACKed and hung up with BYE"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let all = got.lock().clone();
    assert_eq!(
        all.len(),
        1,
        "exactly one notification, never 'answered': {all:?}"
    );
    let rec: Value = g
        .get(&format!("/api/v1/conversations/{id}"), ADMIN)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(rec["state"], "failed");
}

/// Runs `outdial dial` against the gateway; returns (exit code, stdout, stderr).
fn dial_cli(g: &Gateway, args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_outdial"))
        .arg("dial")
        .args([
            "--url",
            &g.base,
            "--client-id",
            ADMIN.0,
            "--client-secret",
            ADMIN.1,
            "--bot",
            "Bot1",
            "--wait-sec",
            "30",
        ])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[tokio::test]
async fn the_dial_command_follows_a_call_to_its_end() {
    let sipp = Sipp::uas("uas_answer_then_bye.xml", &["-d", "500"]);
    let g = gateway(sipp.port).await;
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        dial_cli(
            &g,
            &[
                "--target",
                "tel:+123456789",
                "--caller",
                "1-800-111",
                "--notify-events",
                "ringing",
            ],
        )
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{out}\n{err}");
    let lines: Vec<&str> = out.lines().collect();
    let words: Vec<&str> = lines
        .iter()
        .map(|l| l.split_whitespace().nth(1).unwrap_or(""))
        .collect();
    assert_eq!(words, ["accepted", "ringing", "answered", "completed"], "{out}");
    assert!(
        lines[3].contains("reasonCode=client-disconnected") && lines[3].contains("callDuration="),
        "{out}"
    );
    assert_eq!(sipp.exit_code(), 0);
}

#[tokio::test]
async fn the_dial_command_reports_failures_and_refusals() {
    let sipp = Sipp::uas("uas_486_reject.xml", &[]);
    let g = gateway(sipp.port).await;
    let g = Arc::new(g);
    let g2 = g.clone();
    let (code, out, _) =
        tokio::task::spawn_blocking(move || dial_cli(&g2, &["--target", "tel:+1", "--caller", "1"]))
            .await
            .unwrap();
    assert_eq!(code, 1, "{out}");
    assert!(out.lines().last().unwrap().contains("reasonCode=busy"), "{out}");
    let g3 = g.clone();
    let (code, _, err) =
        tokio::task::spawn_blocking(move || dial_cli(&g3, &["--target", "mailto:x", "--caller", "1"]))
            .await
            .unwrap();
    assert_eq!(
        (code, err.trim()),
        (
            2,
            "dialout refused: 400 Bad Request: request/target should be a tel: or sip: URI"
        )
    );
}

#[tokio::test]
async fn a_tcp_trunk_carries_the_call() {
    let sipp = Sipp::uas("uas_answer_then_bye.xml", &["-t", "t1", "-d", "300"]);
    let g = Gateway::start(&common::with_bot(&format!(
        "[[trunks]]\nname = \"sbc\"\naddress = \"127.0.0.1:{}\"\ntransport = \"tcp\"\nkeepAliveSec = 0\n\n[[bots]]\nname = \"Bot1\"\nbotUrl = \"http://127.0.0.1:9/bot\"\n",
        sipp.port
    )).await)
    .await;
    let (url, got) = receiver().await;
    dial(&g, &url, json!({})).await;
    let done = status(&got, "completed").await;
    assert_eq!(done["reasonCode"], "client-disconnected");
    assert_eq!(sipp.exit_code(), 0);
}

#[tokio::test]
async fn through_kamailio_as_the_sbc() {
    // Answer, then the callee hangs up: BYE comes back through the proxy's Record-Route.
    let sipp = Sipp::uas("uas_answer_then_bye.xml", &["-d", "500"]);
    let proxy = outdial_testkit::Kamailio::relay_to(sipp.port);
    let g = gateway(proxy.port).await;
    let (url, got) = receiver().await;
    dial(&g, &url, json!({})).await;
    status(&got, "answered").await;
    let done = status(&got, "completed").await;
    assert_eq!(done["reasonCode"], "client-disconnected");
    assert_eq!(sipp.exit_code(), 0, "the call crossed the proxy both ways");
    // Busy through the proxy.
    let sipp = Sipp::uas("uas_486_reject.xml", &[]);
    let proxy = outdial_testkit::Kamailio::relay_to(sipp.port);
    let g = gateway(proxy.port).await;
    let (url, got) = receiver().await;
    dial(&g, &url, json!({})).await;
    let failed = status(&got, "failed").await;
    assert_eq!(
        (failed["reasonCode"].as_str(), failed["sipStatus"].as_u64()),
        (Some("busy"), Some(486))
    );
    assert_eq!(sipp.exit_code(), 0);
}

#[tokio::test]
async fn the_outbound_proxy_receives_the_invite() {
    let sipp = Sipp::uas("uas_answer_then_bye.xml", &["-d", "300"]);
    let proxy = outdial_testkit::Kamailio::relay_to(sipp.port);
    // The carrier's name does not resolve here: only the outbound proxy can carry the call.
    let g = Gateway::start(&common::with_bot(&format!(
        "[[trunks]]\nname = \"carrier\"\naddress = \"carrier.invalid:5060\"\noutboundProxy = \"127.0.0.1:{}\"\nkeepAliveSec = 0\n\n\
         [[bots]]\nname = \"Bot1\"\nbotUrl = \"http://127.0.0.1:9/bot\"\n",
        proxy.port
    )).await)
    .await;
    let (url, got) = receiver().await;
    let id = dial(&g, &url, json!({})).await;
    let done = status(&got, "completed").await;
    assert_eq!(done["reasonCode"], "client-disconnected");
    assert_eq!(sipp.exit_code(), 0);
    let events: Value = g
        .get(&format!("/api/v1/conversations/{id}/events"), ADMIN)
        .await
        .json()
        .await
        .unwrap();
    let dialing = events
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "dialing")
        .unwrap();
    assert_eq!(
        dialing["data"]["requestUri"],
        "sip:+123456789@carrier.invalid:5060;user=phone"
    );
    assert_eq!(
        dialing["data"]["destination"],
        format!("127.0.0.1:{}", proxy.port)
    );
}

/// docs/operations.md, "Logs": at `info` the log does not carry the SIP traffic (every message, raw, with the
/// dialled number), only the conversation's own lines.
#[tokio::test]
async fn the_info_log_holds_no_sip_messages() {
    let sipp = Sipp::uas("uas_answer_then_bye.xml", &["-d", "300"]);
    let g = gateway(sipp.port).await;
    let (url, got) = receiver().await;
    dial(&g, &url, json!({})).await;
    status(&got, "completed").await;
    assert_eq!(sipp.exit_code(), 0);
    let log = g.log();
    assert!(log.contains("conversation ended"), "{log}");
    assert!(
        !log.contains("raw_message"),
        "SIP messages in the info log: {log}"
    );
    assert!(
        !log.contains("INVITE sip:"),
        "SIP messages in the info log: {log}"
    );
}

/// A 200 OK whose SDP has no codec in common is not an answered call: the dialer gets one notification,
/// `failed` / `error` with the reason, the far end gets ACK and BYE, and no bot conversation is opened.
#[tokio::test]
async fn a_200_without_a_common_codec_is_not_an_answered_call() {
    let sipp = Sipp::uas("uas_answer_no_common_codec.xml", &[]);
    let g = gateway(sipp.port).await;
    let (url, got) = receiver().await;
    dial(&g, &url, json!({})).await;
    let done = status(&got, "failed").await;
    assert_eq!(done["reasonCode"], "error", "{done}");
    let reason = done["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("the SDP answer has no usable audio stream"),
        "{reason}"
    );
    assert_eq!(sipp.exit_code(), 0, "sipp got the ACK and our BYE");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let all: Vec<String> = got
        .lock()
        .iter()
        .map(|n| n["status"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(all, ["failed"], "one notification only");
}

/// SIGTERM drains: new dialouts get 503 with Retry-After and /readyz fails at once; the call in progress goes on
/// for `shutdown.drain_timeout_sec`, is then ended with BYE and its terminal notification; the process exits 0.
#[tokio::test]
async fn sigterm_drains_then_ends_calls_with_bye_and_exits_0() {
    let sipp = Sipp::uas("uas_answer_wait_bye.xml", &[]);
    let mut g = Gateway::start(&common::with_bot(&format!(
        "[shutdown]\ndrain_timeout_sec = 2\n\n[[trunks]]\nname = \"sbc\"\naddress = \"127.0.0.1:{}\"\nkeepAliveSec = 0\n\n[[bots]]\nname = \"Bot1\"\nbotUrl = \"http://127.0.0.1:9/bot\"\n",
        sipp.port
    )).await)
    .await;
    let (url, got) = receiver().await;
    dial(&g, &url, json!({})).await;
    status(&got, "answered").await;
    let stopped = tokio::time::Instant::now();
    g.terminate();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let r = g
        .post(
            "/api/v1/actions/dialout",
            ADMIN,
            &json!({"bot": "Bot1", "target": "tel:+1555", "caller": "1-800-111"}),
        )
        .await;
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "5");
    assert_eq!(g.get("/readyz", ADMIN).await.status(), 503);
    // The call is still up during the drain time, then ended by us.
    let done = status(&got, "completed").await;
    let after = stopped.elapsed();
    assert_eq!(
        (done["reasonCode"].as_str(), done["reason"].as_str()),
        (Some("error"), Some("gateway shutting down"))
    );
    assert!(
        after >= std::time::Duration::from_millis(1900),
        "ended after the drain time, not at once: {after:?}"
    );
    assert_eq!(sipp.exit_code(), 0, "sipp got our BYE");
    assert_eq!(
        g.wait_exit(std::time::Duration::from_secs(10)),
        Some(0),
        "exit 0 after the drain"
    );
}

/// docs/operations.md, "Logs": at `info`, one line per state change with the conversation id and no SIP traffic;
/// phone numbers are masked to their last 4 digits in every line, also in the SIP stack's own lines when its
/// traffic is logged.
#[tokio::test]
async fn logs_are_one_line_per_state_change_and_numbers_are_masked() {
    let config = |port: u16| {
        format!(
            "[[trunks]]\nname = \"sbc\"\naddress = \"127.0.0.1:{port}\"\nkeepAliveSec = 0\n\n\
             [[bots]]\nname = \"Bot1\"\nbotUrl = \"http://127.0.0.1:9/bot\"\n"
        )
    };
    let number = "+15557654321";
    for (filter, sip_logged) in [("info", false), ("info,rsipstack=info", true)] {
        let sipp = Sipp::uas("uas_answer_then_bye.xml", &["-d", "300"]);
        let g = Gateway::start_with(
            &common::with_bot(&config(sipp.port)).await,
            &[("OUTDIAL_LOG", filter)],
        )
        .await;
        let (url, got) = receiver().await;
        let id = dial(&g, &url, json!({"target": format!("tel:{number}")})).await;
        status(&got, "completed").await;
        assert_eq!(sipp.exit_code(), 0);
        let log = g.log();
        assert!(!log.contains("5557654321"), "a full number in the log:\n{log}");
        assert!(!log.contains('\u{1b}'), "no terminal colour codes in a log file");
        let mine: Vec<&str> = log.lines().filter(|l| l.contains(&id)).collect();
        for state in ["dialing", "answered"] {
            assert!(
                mine.iter().any(|l| l.contains(&format!("conversation {state} "))),
                "no '{state}' line for {id}:\n{log}"
            );
        }
        assert!(mine.iter().any(|l| l.contains("conversation ended")), "{log}");
        let invites = log.lines().filter(|l| l.contains("INVITE sip:")).count();
        if sip_logged {
            assert!(
                invites > 0,
                "the SIP stack's traffic is logged when asked:\n{log}"
            );
            assert!(log.contains("*******4321"), "masked, last 4 digits kept:\n{log}");
        } else {
            assert_eq!(invites, 0, "no SIP traffic at info:\n{log}");
            assert!(
                mine.len() <= 8,
                "a few lines per call, not the SIP traffic: {mine:#?}"
            );
        }
    }
}

/// docs/operations.md, "… the gateway is killed": an answered call's dialog is stored with the answer; after
/// `kill -9` the restarted gateway sends its BYE (sipp, holding the call, gets it and ends cleanly) before ending
/// the conversation with `gateway restarted`.
#[tokio::test]
async fn after_a_crash_the_calls_left_up_get_their_bye() {
    let sipp = Sipp::uas("uas_answer_wait_bye.xml", &[]);
    let mut g = gateway(sipp.port).await;
    let (url, got) = receiver().await;
    let id = dial(&g, &url, json!({})).await;
    status(&got, "answered").await;
    g.restart_on_same_sip_port();
    assert_eq!(
        sipp.exit_code(),
        0,
        "the far end got a BYE for the call and answered it"
    );
    let done = status(&got, "completed").await;
    assert_eq!(
        (done["reasonCode"].as_str(), done["reason"].as_str()),
        (Some("error"), Some("gateway restarted")),
        "{done}"
    );
    let log = g.log();
    let line = log
        .lines()
        .find(|l| l.contains("BYE sent for the call left up (gateway restarted), and answered"));
    assert!(line.is_some_and(|l| l.contains(&id)), "{id}:\n{log}");
    let rec = common::conversation(&g, &id).await;
    assert!(rec.get("sipDialog").is_none(), "the dialog is not shown: {rec}");
}
