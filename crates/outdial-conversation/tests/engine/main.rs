//! The conversation engine alone, under tokio's paused time: every way a call ends (docs/calls.md) and the races
//! between slow work and the world. Each case runs in milliseconds of real time.
#![allow(clippy::unwrap_used)]

mod bots;
mod races;
mod streams;
mod world;

use outdial_conversation::{Effect, MediaInput, SipEffect, SipInput};
use outdial_core::{BotAction, HangupBy, ReasonCode};
use world::*;

fn answered_then(after: std::time::Duration, e: SipInput) -> Vec<(std::time::Duration, SipInput)> {
    let mut sip = Script::default().sip;
    sip.push((ms(1000) + after, e));
    sip
}

#[tokio::test(start_paused = true)]
async fn the_far_end_hangs_up_completed_client_disconnected() {
    let o = run(Script {
        sip: answered_then(
            secs(5),
            SipInput::Ended {
                by_remote: true,
                reason: None,
            },
        ),
        ..Script::default()
    })
    .await;
    let (rc, reason, by, at) = o.end();
    assert_eq!(
        (rc, reason.as_str(), by),
        (
            ReasonCode::ClientDisconnected,
            "Client disconnected",
            HangupBy::Callee
        )
    );
    assert_eq!(at, secs(6));
    assert!(!o.hung_up(), "no BYE of ours after theirs");
    assert_eq!(o.notifications(), ["answered", "completed"]);
}

#[tokio::test(start_paused = true)]
async fn the_far_ends_reason_header_is_the_reason() {
    let reason = Some("Q.850;cause=16;text=\"Normal call clearing\"".to_string());
    let o = run(Script {
        sip: answered_then(
            secs(1),
            SipInput::Ended {
                by_remote: true,
                reason,
            },
        ),
        ..Script::default()
    })
    .await;
    assert_eq!(o.end().1, "Q.850;cause=16;text=\"Normal call clearing\"");
}

#[tokio::test(start_paused = true)]
async fn sip_final_responses_map_to_reason_codes() {
    for (status, rc) in [
        (486, ReasonCode::Busy),
        (600, ReasonCode::Busy),
        (603, ReasonCode::Declined),
        (403, ReasonCode::Declined),
        (480, ReasonCode::NoAnswer),
        (487, ReasonCode::NoAnswer),
        (408, ReasonCode::NoAnswer),
        (404, ReasonCode::Error),
        (503, ReasonCode::Error),
    ] {
        let o = run(Script {
            sip: vec![(
                ms(300),
                SipInput::Failed {
                    status: Some(status),
                    reason: format!("SIP {status}"),
                },
            )],
            ..Script::default()
        })
        .await;
        let (got, reason, by, at) = o.end();
        assert_eq!((got, by, at), (rc, HangupBy::Callee, ms(300)), "{status}");
        assert_eq!(reason, format!("SIP {status}"));
        assert_eq!(o.conversation.sip_status, Some(status));
        assert_eq!(o.notifications(), ["failed"], "{status}");
        assert_eq!(
            o.count(|e| matches!(e, Effect::Bot(_))),
            0,
            "no bot for a call that never connected"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_local_sip_failure_is_an_error_by_the_system() {
    let o = run(Script {
        sip: vec![(
            ms(5),
            SipInput::Failed {
                status: None,
                reason: "no route to trunk".into(),
            },
        )],
        ..Script::default()
    })
    .await;
    assert_eq!(o.end().2, HangupBy::System);
    assert_eq!(o.end().0, ReasonCode::Error);
}

#[tokio::test(start_paused = true)]
async fn no_answer_in_time_cancels_and_fails_no_answer() {
    let o = run(Script {
        sip: vec![(
            ms(100),
            SipInput::Ringing {
                status: 180,
                early_media: false,
            },
        )],
        request: |r| r.answer_timeout_sec = 7.0,
        ..Script::default()
    })
    .await;
    let (rc, reason, _, at) = o.end();
    assert_eq!(
        (rc, reason.as_str(), at),
        (ReasonCode::NoAnswer, "answer timeout after 7 s", secs(7))
    );
    assert!(o.hung_up(), "CANCEL");
}

#[tokio::test(start_paused = true)]
async fn ringing_is_notified_only_when_asked_for() {
    let o = run(Script {
        sip: answered_then(
            secs(1),
            SipInput::Ended {
                by_remote: true,
                reason: None,
            },
        ),
        request: |r| r.notify_events = vec!["ringing".into()],
        ..Script::default()
    })
    .await;
    assert_eq!(o.notifications(), ["ringing", "answered", "completed"]);
    assert_eq!(o.conversation.notify_seq, 3);
    let o = run(Script {
        sip: answered_then(
            secs(1),
            SipInput::Ended {
                by_remote: true,
                reason: None,
            },
        ),
        ..Script::default()
    })
    .await;
    assert_eq!(o.notifications(), ["answered", "completed"]);
}

#[tokio::test(start_paused = true)]
async fn a_second_provisional_response_is_only_an_event() {
    let mut sip = Script::default().sip;
    sip.insert(
        2,
        (
            ms(200),
            SipInput::Ringing {
                status: 183,
                early_media: true,
            },
        ),
    );
    sip.push((
        secs(2),
        SipInput::Ended {
            by_remote: true,
            reason: None,
        },
    ));
    let o = run(Script {
        sip,
        ..Script::default()
    })
    .await;
    assert_eq!(o.events("sip-provisional").len(), 1);
    assert_eq!(o.events("sip-provisional")[0]["sipStatus"], 183);
}

#[tokio::test(start_paused = true)]
async fn the_api_hangs_up_before_the_answer_with_cancel() {
    let o = run(Script {
        sip: vec![(
            ms(100),
            SipInput::Ringing {
                status: 180,
                early_media: false,
            },
        )],
        api_hangup: Some(secs(2)),
        ..Script::default()
    })
    .await;
    let (rc, reason, by, at) = o.end();
    assert_eq!(
        (rc, reason.as_str(), by, at),
        (ReasonCode::Error, "ended by API", HangupBy::System, secs(2))
    );
    assert!(o.hung_up());
    assert_eq!(o.notifications(), ["failed"]);
}

#[tokio::test(start_paused = true)]
async fn the_api_hangs_up_an_answered_call_with_bye() {
    let o = run(Script {
        api_hangup: Some(secs(4)),
        ..Script::default()
    })
    .await;
    assert_eq!(o.end().0, ReasonCode::Error);
    assert!(o.hung_up());
    assert_eq!(o.notifications(), ["answered", "completed"]);
}

#[tokio::test(start_paused = true)]
async fn the_maximum_duration_ends_an_answered_call() {
    let o = run(Script {
        max_duration: secs(30),
        ..Script::default()
    })
    .await;
    let (rc, reason, _, at) = o.end();
    assert_eq!(
        (rc, reason.as_str(), at),
        (ReasonCode::Error, "maximum call duration reached", secs(31))
    );
    assert!(o.hung_up());
}

#[tokio::test(start_paused = true)]
async fn no_rtp_ends_the_call_with_a_media_timeout() {
    let o = run(Script {
        media: vec![(secs(30), MediaInput::Timeout { silent_ms: 30_000 })],
        ..Script::default()
    })
    .await;
    let (rc, reason, _, _) = o.end();
    assert_eq!(
        (rc, reason.as_str()),
        (ReasonCode::Error, "media timeout: no RTP for 30.0 s")
    );
    assert!(o.hung_up());
}

#[tokio::test(start_paused = true)]
async fn an_unusable_sdp_answer_is_not_an_answered_call() {
    let o = run(Script {
        sip: vec![(
            ms(500),
            SipInput::Answered {
                sbc_session_id: "s".into(),
                media: Err(outdial_conversation::Failure(
                    "the SDP answer has no usable audio stream: no PCMU or PCMA".into(),
                )),
                dialog: None,
            },
        )],
        ..Script::default()
    })
    .await;
    let (rc, reason, _, _) = o.end();
    assert_eq!(rc, ReasonCode::Error);
    assert!(reason.starts_with("the SDP answer has no usable audio stream"));
    assert_eq!(o.notifications(), ["failed"], "never told answered");
    assert!(o.hung_up(), "BYE at once");
    assert_eq!(o.count(|e| matches!(e, Effect::Bot(_))), 0, "no bot conversation");
}

#[tokio::test(start_paused = true)]
async fn the_sip_layer_stopping_without_an_outcome_is_an_error() {
    let o = run(Script {
        sip: vec![(ms(50), SipInput::Closed)],
        ..Script::default()
    })
    .await;
    assert_eq!(o.end().1, "the SIP call ended without an outcome");
}

#[tokio::test(start_paused = true)]
async fn the_slot_goes_with_the_terminal_record() {
    let o = run(Script {
        sip: answered_then(
            secs(1),
            SipInput::Ended {
                by_remote: true,
                reason: None,
            },
        ),
        ..Script::default()
    })
    .await;
    let release = o
        .effects
        .iter()
        .position(|(_, e)| *e == Effect::ReleaseSlot)
        .unwrap();
    let end = o
        .effects
        .iter()
        .position(|(_, e)| matches!(e, Effect::Record(r) if r.end_of().is_some()))
        .unwrap();
    // Just before it: the world frees the slot once that record is stored, before its notification leaves.
    assert_eq!(release + 1, end);
    assert_eq!(o.count(|e| *e == Effect::ReleaseSlot), 1);
}

#[tokio::test(start_paused = true)]
async fn the_bot_hangs_up_after_its_message_is_heard() {
    let o = run(Script {
        bot: |t| match t {
            outdial_conversation::ToBot::Start(_) => vec![
                (ms(10), activity(BotAction::Say("Goodbye.".into()))),
                (ms(10), activity(BotAction::Hangup(Some("done".into())))),
            ],
            _ => vec![],
        },
        ..Script::default()
    })
    .await;
    let (rc, reason, by, at) = o.end();
    assert_eq!(
        (rc, reason.as_str(), by),
        (ReasonCode::BotDisconnected, "done", HangupBy::Bot)
    );
    // answer 1 s + open 50 ms + 10 ms + synthesis 100 ms + 1 s of audio
    assert_about(at, ms(2160));
    assert!(o.hung_up());
    assert_eq!(o.to_bot(), ["start"]);
}

#[tokio::test(start_paused = true)]
async fn the_bot_transfers_and_the_call_ends_transferred() {
    let o = run(Script {
        bot: |t| match t {
            outdial_conversation::ToBot::Start(_) => vec![(
                ms(10),
                activity(BotAction::Transfer {
                    target: "tel:+15550199".into(),
                    reason: None,
                    headers: vec![],
                }),
            )],
            _ => vec![],
        },
        ..Script::default()
    })
    .await;
    let (rc, reason, by, _) = o.end();
    assert_eq!(
        (rc, reason.as_str(), by),
        (ReasonCode::Transferred, "tel:+15550199", HangupBy::Bot)
    );
    assert_eq!(o.count(|e| matches!(e, Effect::Sip(SipEffect::Refer { .. }))), 1);
}

#[tokio::test(start_paused = true)]
async fn a_refused_transfer_is_told_to_the_bot_and_the_call_goes_on() {
    let o = run(Script {
        refer: (ms(50), Ok(603)),
        api_hangup: Some(secs(5)),
        bot: |t| match t {
            outdial_conversation::ToBot::Start(_) => vec![(
                ms(10),
                activity(BotAction::Transfer {
                    target: "tel:+15550199".into(),
                    reason: None,
                    headers: vec![],
                }),
            )],
            _ => vec![],
        },
        ..Script::default()
    })
    .await;
    assert_eq!(o.end().1, "ended by API");
    assert_eq!(o.to_bot(), ["start", "transferStatus"]);
}

#[tokio::test(start_paused = true)]
async fn a_shutdown_after_the_drain_time_ends_the_call_with_bye() {
    let o = run(Script {
        shutdown: Some(secs(3)),
        ..Script::default()
    })
    .await;
    let (rc, reason, by, at) = o.end();
    assert_eq!(
        (rc, reason.as_str(), by, at),
        (
            ReasonCode::Error,
            "gateway shutting down",
            HangupBy::System,
            secs(3)
        )
    );
    assert!(o.hung_up(), "BYE");
    assert_eq!(o.notifications(), ["answered", "completed"]);
}

#[tokio::test(start_paused = true)]
async fn the_sip_layer_ending_the_call_gives_its_reason() {
    let why = "session expired: the far end did not refresh it within 90 s (RFC 4028)";
    let o = run(Script {
        sip: answered_then(
            secs(60),
            SipInput::Ended {
                by_remote: false,
                reason: Some(why.into()),
            },
        ),
        ..Script::default()
    })
    .await;
    let (rc, reason, by, _) = o.end();
    assert_eq!(
        (rc, reason.as_str(), by),
        (ReasonCode::Error, why, HangupBy::System)
    );
    assert!(!o.hung_up(), "the SIP layer already sent its BYE");
    assert_eq!(o.notifications(), ["answered", "completed"]);
}

/// Every live call holds its conversation's future for the whole call: it keeps the machine and its world once,
/// and the machine stays small (its VADs' networks live on the heap; BENCHMARKS.md, "Media", memory per call).
/// An `async fn` driver kept both twice (its arguments and their moved copies) and the machine held two VADs
/// inline: 50 KB per call.
#[tokio::test(start_paused = true)]
async fn a_calls_future_holds_its_machine_and_world_once() {
    use std::mem::size_of_val;
    let (machine, world, _log) = setup(Script::default());
    let machine_size = size_of_val(&machine);
    assert!(machine_size <= 4096, "the machine takes {machine_size} bytes");
    let parts = machine_size + size_of_val(&world);
    let future = outdial_conversation::driver::run(machine, world);
    let size = size_of_val(&future);
    assert!(
        size <= parts + 1024,
        "the conversation's future takes {size} bytes for {parts} bytes of machine and world"
    );
}
