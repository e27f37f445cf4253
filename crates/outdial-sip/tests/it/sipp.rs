//! The SIP conformance suite: sipp as the far end on 127.0.0.1, our agent placing the call, the events checked
//! in order, sipp's own verdict (its exit code) checked, and no dialog left behind.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly.

use outdial_sip::CallEvent;
use outdial_testkit::Sipp;
use std::time::Duration;

use crate::common;
use common::*;

#[tokio::test]
async fn answer_then_far_end_bye() {
    let sipp = Sipp::uas("uas_answer_then_bye.xml", &["-d", "500"]);
    let a = agent().await;
    let req = request(sipp.port);
    let call_id = req.call_id.clone();
    let mut call = a.call(req).unwrap();
    let (provisional, fin) = final_event(&mut call).await;
    assert!(
        provisional.contains(&CallEvent::Ringing {
            status: 180,
            early_media: false
        }),
        "{provisional:?}"
    );
    match fin {
        CallEvent::Answered { sdp, call_id: id, .. } => {
            assert!(
                String::from_utf8_lossy(&sdp).contains("m=audio"),
                "the answer's SDP"
            );
            assert_eq!(id, call_id, "our own Call-ID");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        next(&mut call).await,
        CallEvent::Ended {
            by_remote: true,
            reason: None
        }
    );
    assert_eq!(sipp.exit_code(), 0, "sipp saw the call it expected");
    no_dialogs_left(&a).await;
}

#[tokio::test]
async fn answer_then_our_bye() {
    let sipp = Sipp::uas("uas_answer_wait_bye.xml", &[]);
    let a = agent().await;
    let mut call = a.call(request(sipp.port)).unwrap();
    let (_, fin) = final_event(&mut call).await;
    assert!(matches!(fin, CallEvent::Answered { .. }), "{fin:?}");
    call.hangup();
    assert_eq!(
        next(&mut call).await,
        CallEvent::Ended {
            by_remote: false,
            reason: None
        }
    );
    assert_eq!(sipp.exit_code(), 0, "sipp received our BYE");
    no_dialogs_left(&a).await;
}

#[tokio::test]
async fn rejections_carry_status_and_reason() {
    let a = agent().await;
    for (scenario, status, text) in [
        ("uas_486_reject.xml", 486, "Busy Here"),
        ("uas_603_reject.xml", 603, "Decline"),
        ("uas_404_reject.xml", 404, "Not Found"),
        ("uas_500_reject.xml", 500, "Server Internal Error"),
        ("uas_503_reject.xml", 503, "Service Unavailable"),
    ] {
        let sipp = Sipp::uas(scenario, &[]);
        let mut call = a.call(request(sipp.port)).unwrap();
        let (_, fin) = final_event(&mut call).await;
        assert_eq!(
            fin,
            CallEvent::Failed {
                status: Some(status),
                reason: format!("SIP ;cause={status} ;text=\"{text}\"")
            },
            "{scenario}"
        );
        assert_eq!(sipp.exit_code(), 0, "{scenario}: sipp got its ACK");
    }
    no_dialogs_left(&a).await;
}

#[tokio::test]
async fn ringing_then_cancel() {
    let sipp = Sipp::uas("uas_ring_no_answer.xml", &[]);
    let a = agent().await;
    let mut call = a.call(request(sipp.port)).unwrap();
    loop {
        if let CallEvent::Ringing { status: 180, .. } = next(&mut call).await {
            break;
        }
    }
    call.hangup();
    let (_, fin) = final_event(&mut call).await;
    assert_eq!(
        fin,
        CallEvent::Failed {
            status: Some(487),
            reason: "cancelled".into()
        }
    );
    assert_eq!(sipp.exit_code(), 0, "sipp saw CANCEL, sent 487 and got the ACK");
    no_dialogs_left(&a).await;
}

#[tokio::test]
async fn nobody_listening_fails_locally() {
    let a = agent().await;
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut call = a.call(request(port)).unwrap();
    // Over UDP nothing says no: the INVITE transaction times out (Timer B, 64 × T1 = 32 s).
    let started = tokio::time::Instant::now();
    let fin = loop {
        match tokio::time::timeout(Duration::from_secs(40), call.events.recv())
            .await
            .unwrap()
            .map(|e| *e)
            .unwrap()
        {
            CallEvent::Trying | CallEvent::Ringing { .. } => continue,
            e => break e,
        }
    };
    // The stack reports Timer B as 408, which maps to no-answer like a 408 from the far end.
    assert_eq!(
        fin,
        CallEvent::Failed {
            status: Some(408),
            reason: "SIP ;cause=408 ;text=\"Request Timeout\"".into()
        }
    );
    assert!(
        started.elapsed() >= Duration::from_secs(31),
        "{:?}",
        started.elapsed()
    );
    no_dialogs_left(&a).await;
}

#[tokio::test]
async fn an_answer_crossing_our_cancel_is_acked_and_hung_up() {
    let sipp = Sipp::uas("uas_answer_crosses_cancel.xml", &[]);
    let a = agent().await;
    let mut call = a.call(request(sipp.port)).unwrap();
    loop {
        if let CallEvent::Ringing { status: 180, .. } = next(&mut call).await {
            break;
        }
    }
    call.hangup();
    let (_, fin) = final_event(&mut call).await;
    assert_eq!(
        fin,
        CallEvent::Failed {
            status: None,
            reason: "cancelled".into()
        },
        "one outcome: not answered"
    );
    assert_eq!(
        sipp.exit_code(),
        0,
        "sipp got the ACK for its 200 and then our BYE"
    );
    no_dialogs_left(&a).await;
}

#[tokio::test]
async fn digest_challenges_are_answered_with_credentials() {
    let a = agent().await;
    for scenario in ["uas_401_then_answer.xml", "uas_407_then_answer.xml"] {
        let sipp = Sipp::uas(scenario, &[]);
        let mut req = request(sipp.port);
        req.credential = Some(("outdial".into(), "s3cret-pw".into(), None));
        let mut call = a.call(req).unwrap();
        let (_, fin) = final_event(&mut call).await;
        assert!(matches!(fin, CallEvent::Answered { .. }), "{scenario}: {fin:?}");
        call.hangup();
        assert_eq!(
            next(&mut call).await,
            CallEvent::Ended {
                by_remote: false,
                reason: None
            }
        );
        assert_eq!(sipp.exit_code(), 0, "{scenario}: sipp accepted the credentials");
    }
    // A wrong password: sipp's digest check fails and the trunk refuses.
    let sipp = Sipp::uas("uas_401_then_answer.xml", &[]);
    let mut req = request(sipp.port);
    req.credential = Some(("outdial".into(), "wrong".into(), None));
    let mut call = a.call(req).unwrap();
    let (_, fin) = final_event(&mut call).await;
    assert_eq!(
        fin,
        CallEvent::Failed {
            status: Some(403),
            reason: "SIP ;cause=403 ;text=\"Forbidden\"".into()
        }
    );
    no_dialogs_left(&a).await;
}

#[tokio::test]
async fn the_session_id_header_names_the_call() {
    let sipp = Sipp::uas("uas_answer_session_id.xml", &[]);
    let a = agent().await;
    let mut call = a.call(request(sipp.port)).unwrap();
    let (_, fin) = final_event(&mut call).await;
    match fin {
        CallEvent::Answered { session_id, .. } => {
            assert_eq!(session_id.as_deref(), Some("ab30317f1a784dc48ff824d0d3715d86"));
        }
        other => panic!("{other:?}"),
    }
    call.hangup();
    assert_eq!(
        next(&mut call).await,
        CallEvent::Ended {
            by_remote: false,
            reason: None
        }
    );
    assert_eq!(sipp.exit_code(), 0);
}

#[tokio::test]
async fn garbage_from_the_network_harms_no_call() {
    let sipp = Sipp::uas("uas_answer_wait_bye.xml", &[]);
    let a = agent().await;
    let mut call = a.call(request(sipp.port)).unwrap();
    let (_, fin) = final_event(&mut call).await;
    assert!(matches!(fin, CallEvent::Answered { .. }), "{fin:?}");
    let junk = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let target = a.local_addr();
    let datagrams: Vec<Vec<u8>> = vec![
        vec![0xff; 1200],
        b"\r\n\r\n".to_vec(),
        b"INVITE sip:x SIP/2.0\r\n\r\n".to_vec(),
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bKnope\r\nCall-ID: nope\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n".to_vec(),
        b"BYE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bKx\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: unknown\r\nCSeq: 2 BYE\r\nMax-Forwards: 70\r\nContent-Length: 5\r\n\r\n".to_vec(),
        "INVITE sip:\u{0}\u{7f}@@@ SIP/9.9\r\nContent-Length: -1\r\n\r\n".as_bytes().to_vec(),
    ];
    for d in &datagrams {
        junk.send_to(d, target).unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The call still works: our BYE reaches sipp and is answered.
    call.hangup();
    assert_eq!(
        next(&mut call).await,
        CallEvent::Ended {
            by_remote: false,
            reason: None
        }
    );
    assert_eq!(sipp.exit_code(), 0);
    // And the agent still places calls.
    let sipp = Sipp::uas("uas_486_reject.xml", &[]);
    let mut call = a.call(request(sipp.port)).unwrap();
    let (_, fin) = final_event(&mut call).await;
    assert!(
        matches!(
            fin,
            CallEvent::Failed {
                status: Some(486),
                ..
            }
        ),
        "{fin:?}"
    );
    no_dialogs_left(&a).await;
}

#[tokio::test]
async fn redirections_are_followed_to_the_best_contact() {
    let answering = Sipp::uas("uas_answer_wait_bye.xml", &[]);
    let port = answering.port.to_string();
    let redirecting = Sipp::uas("uas_302_redirect.xml", &["-key", "next_port", &port]);
    let a = agent().await;
    let mut call = a.call(request(redirecting.port)).unwrap();
    let (_, fin) = final_event(&mut call).await;
    assert!(
        matches!(fin, CallEvent::Answered { .. }),
        "answered by the Contact of the 302: {fin:?}"
    );
    // The first attempt's dialog (same Call-ID, another From tag) ending is not this one's end.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), call.events.recv())
            .await
            .is_err(),
        "the redirected call stays up until it is hung up"
    );
    call.hangup();
    assert_eq!(
        next(&mut call).await,
        CallEvent::Ended {
            by_remote: false,
            reason: None
        }
    );
    assert_eq!(redirecting.exit_code(), 0, "the 302 was ACKed");
    assert_eq!(
        answering.exit_code(),
        0,
        "the redirected INVITE was answered and hung up"
    );
    // Not followed when the trunk says so.
    let redirecting = Sipp::uas("uas_302_redirect.xml", &["-key", "next_port", "9"]);
    let mut req = request(redirecting.port);
    req.follow_redirects = false;
    let mut call = a.call(req).unwrap();
    let (_, fin) = final_event(&mut call).await;
    assert_eq!(
        fin,
        CallEvent::Failed {
            status: Some(302),
            reason: "SIP ;cause=302 ;text=\"Moved Temporarily\"".into()
        }
    );
    no_dialogs_left(&a).await;
}

#[tokio::test]
async fn hold_reinvite_options_and_info_keep_the_call() {
    let sipp = Sipp::uas("uas_reinvite_hold.xml", &[]);
    let a = agent().await;
    let mut call = a.call(request(sipp.port)).unwrap();
    let (_, fin) = final_event(&mut call).await;
    assert!(matches!(fin, CallEvent::Answered { .. }), "{fin:?}");
    // sipp holds (re-INVITE sendonly → our 200 with a=recvonly), sends OPTIONS and INFO, then BYE. The new
    // offer is reported for the media to follow.
    match next(&mut call).await {
        CallEvent::MediaChanged { sdp } => {
            assert!(String::from_utf8_lossy(&sdp).contains("a=sendonly"))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        next(&mut call).await,
        CallEvent::Ended {
            by_remote: true,
            reason: None
        }
    );
    assert_eq!(
        sipp.exit_code(),
        0,
        "sipp got 200 + SDP (recvonly) to its re-INVITE, and 200 to OPTIONS and INFO"
    );
    no_dialogs_left(&a).await;
}

#[tokio::test]
async fn calls_over_tcp() {
    let sipp = Sipp::uas("uas_answer_then_bye.xml", &["-t", "t1", "-d", "300"]);
    let a = agent().await;
    let mut req = request(sipp.port);
    req.transport = outdial_sip::SipTransport::Tcp;
    let mut call = a.call(req).unwrap();
    answered_then_far_end_bye(&mut call).await;
    assert_eq!(sipp.exit_code(), 0, "sipp saw the whole call over TCP");
    no_dialogs_left(&a).await;
}

#[tokio::test]
async fn info_and_refer_in_the_answered_call() {
    let sipp = Sipp::uas("uas_refer_info.xml", &[]);
    let a = agent().await;
    let mut call = a.call(request(sipp.port)).unwrap();
    let (_, fin) = final_event(&mut call).await;
    assert!(matches!(fin, CallEvent::Answered { .. }), "{fin:?}");
    let info = call
        .send_info("application/dtmf-relay", b"Signal=5\r\nDuration=160\r\n".to_vec())
        .await;
    assert_eq!(info, Ok(200));
    assert_eq!(call.refer("sip:agent@example.com").await, Ok(202));
    assert_eq!(
        next(&mut call).await,
        CallEvent::TransferProgress {
            status: 100,
            done: false
        }
    );
    assert_eq!(
        next(&mut call).await,
        CallEvent::TransferProgress {
            status: 200,
            done: true
        }
    );
    assert!(matches!(
        next(&mut call).await,
        CallEvent::Ended { by_remote: true, .. }
    ));
    assert_eq!(
        sipp.exit_code(),
        0,
        "sipp saw the INFO body and the Refer-To it expected"
    );
    // After the end, requests are refused clearly.
    assert_eq!(
        call.refer("sip:agent@example.com")
            .await
            .map_err(|e| e.to_string()),
        Err("the call has ended".into())
    );
    no_dialogs_left(&a).await;
}

#[tokio::test]
async fn refer_before_the_answer_is_refused() {
    let sipp = Sipp::uas("uas_ring_no_answer.xml", &[]);
    let a = agent().await;
    let mut call = a.call(request(sipp.port)).unwrap();
    loop {
        if let CallEvent::Ringing { .. } = next(&mut call).await {
            break;
        }
    }
    assert_eq!(
        call.refer("sip:agent@example.com")
            .await
            .map_err(|e| e.to_string()),
        Err("the call is not answered".into())
    );
    // The bot's transfer headers cannot smuggle in headers of their own.
    let injected = vec![("X-Reason".to_string(), "ok\r\nX-Evil: 1".to_string())];
    assert_eq!(
        call.refer_with("sip:agent@example.com", injected)
            .await
            .map_err(|e| e.to_string()),
        Err("transfer header \"X-Reason\" is not a valid SIP header".into())
    );
    let bad_name = vec![("Bad Name".to_string(), "1".to_string())];
    assert_eq!(
        call.refer_with("sip:agent@example.com", bad_name)
            .await
            .map_err(|e| e.to_string()),
        Err("transfer header \"Bad Name\" is not a valid SIP header".into())
    );
    call.hangup();
    let (_, fin) = final_event(&mut call).await;
    assert!(matches!(fin, CallEvent::Failed { .. }), "{fin:?}");
    no_dialogs_left(&a).await;
}

/// docs/security.md: a display name and a caller cannot rewrite the From header. sipp checks the INVITE's From
/// exactly (uas_check_from.xml); before the encoders, the display name closed its quotes and forged the caller.
#[tokio::test]
async fn hostile_display_names_and_callers_stay_inside_their_fields() {
    let sipp = Sipp::uas("uas_check_from.xml", &[]);
    let a = agent().await;
    let mut req = request(sipp.port);
    req.display_name = Some("x\" sip:evil@attacker.example>;tag=1;q=\"x".into());
    req.from_user = "1;x@y".into(); // the API refuses "@" in a caller; the encoder holds anyway
    let mut call = a.call(req).unwrap();
    let (_, fin) = final_event(&mut call).await;
    assert!(
        matches!(
            fin,
            CallEvent::Failed {
                status: Some(486),
                ..
            }
        ),
        "{fin:?}"
    );
    assert_eq!(sipp.exit_code(), 0, "sipp found the From header it expected");
    // A line break can never reach a header; what the stack could not carry intact is refused, not mangled.
    for bad in [
        "a\r\nX-Evil: 1",
        "x\" <sip:evil@attacker.example>",
        "ends with \"",
    ] {
        let mut req = request(9);
        req.display_name = Some(bad.into());
        assert!(a.call(req).is_err(), "{bad:?}");
    }
}

/// Issue 12, item 3: the far end hangs up the moment our ACK arrives, 100 calls, ten at a time (the load that
/// widens the race). Each BYE gets 200 (not 481 because the dialog was not yet registered) and each call ends by
/// the far end's BYE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bye_right_after_our_ack_is_accepted() {
    let sipp = Sipp::uas("uas_bye_after_ack.xml", &["-m", "100"]);
    let a = agent().await;
    let mut ended_by_bye = 0;
    for round in 0..10 {
        let calls: Vec<_> = (0..10)
            .map(|n| {
                let mut call = a.call(request(sipp.port)).unwrap();
                tokio::spawn(async move {
                    let (_, fin) = final_event(&mut call).await;
                    assert!(
                        matches!(fin, CallEvent::Answered { .. }),
                        "call {round}/{n}: {fin:?}"
                    );
                    // (A provisional answer can be reported after the 200 when they arrive together.)
                    tokio::time::timeout(Duration::from_secs(5), final_event(&mut call))
                        .await
                        .map(|(_, e)| e)
                })
            })
            .collect();
        for (n, c) in calls.into_iter().enumerate() {
            match c.await.unwrap() {
                Ok(CallEvent::Ended { by_remote: true, .. }) => ended_by_bye += 1,
                other => panic!("call {round}/{n}: {other:?}"),
            }
        }
    }
    assert_eq!(ended_by_bye, 100);
    assert_eq!(sipp.exit_code(), 0, "sipp got 200 for every BYE");
    no_dialogs_left(&a).await;
}

/// The far end sends 100, 180 and its final answer (a 200, or a 486) back to back. The provisional answers reach the
/// call through the stack's state channel and its router, the final one straight from the INVITE: under load the
/// final answer used to overtake them, and the call lost its ringing (the dialer's `ringing` notification with it).
/// Many calls at once make the router lag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provisional_answers_are_never_overtaken_by_the_final_one() {
    const CALLS: usize = 60;
    let a = agent().await;
    for (scenario, expected) in [
        (
            "uas_answer_then_bye.xml",
            ["trying", "ringing", "answered", "ended"].as_slice(),
        ),
        ("uas_ring_then_busy.xml", ["trying", "ringing", "busy"].as_slice()),
    ] {
        let sipp = Sipp::uas(scenario, &["-d", "300", "-m", &CALLS.to_string()]);
        let mut calls = tokio::task::JoinSet::new();
        for _ in 0..CALLS {
            let mut call = a.call(request(sipp.port)).unwrap();
            calls.spawn(async move {
                let mut seen = Vec::new();
                loop {
                    let e = next(&mut call).await;
                    let end = matches!(e, CallEvent::Ended { .. } | CallEvent::Failed { .. });
                    seen.push(match e {
                        CallEvent::Trying => "trying",
                        CallEvent::Ringing {
                            status: 180,
                            early_media: false,
                        } => "ringing",
                        CallEvent::Answered { .. } => "answered",
                        CallEvent::Ended {
                            by_remote: true,
                            reason: None,
                        } => "ended",
                        CallEvent::Failed {
                            status: Some(486), ..
                        } => "busy",
                        other => panic!("{other:?}"),
                    });
                    if end {
                        return seen;
                    }
                }
            });
        }
        let mut out_of_order = Vec::new();
        for seen in calls.join_all().await {
            if seen != expected {
                out_of_order.push(seen);
            }
        }
        assert!(
            out_of_order.is_empty(),
            "{scenario}: {} of {CALLS} calls out of order: {out_of_order:?}",
            out_of_order.len()
        );
        assert_eq!(sipp.exit_code(), 0, "{scenario}: sipp saw the calls it expected");
    }
    no_dialogs_left(&a).await;
}
