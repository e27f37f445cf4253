//! Session timers (RFC 4028; issue 12, item 1): sipp as the far end checks what we ask for and how we refresh.

use outdial_sip::CallEvent;
use outdial_testkit::Sipp;
use std::time::Duration;
use tokio::time::Instant;

use crate::common::*;

fn timed_request(port: u16) -> outdial_sip::CallRequest {
    let mut req = request(port);
    req.session_expires = Some(1800);
    req
}

/// Places a call with a session timer and waits for its answer; returns it with when it was answered.
async fn answered(a: &outdial_sip::SipAgent, port: u16) -> (outdial_sip::Call, Instant) {
    let mut call = a.call(timed_request(port)).unwrap();
    let (_, fin) = final_event(&mut call).await;
    assert!(matches!(fin, CallEvent::Answered { .. }), "{fin:?}");
    (call, Instant::now())
}

/// How the answered call ends (within 10 s; the far end's re-offers are skipped).
async fn end_of(call: &mut outdial_sip::Call) -> CallEvent {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), next(call)).await {
            Ok(CallEvent::MediaChanged { .. }) => continue,
            Ok(e) => return e,
            Err(_) => panic!("the call did not end within 10 s"),
        }
    }
}

/// We are the refresher (4 s granted): two UPDATEs about 2 s apart keep the call; sipp checks the INVITE asked for
/// `Session-Expires: 1800;refresher=uac` with `Supported: timer`.
#[tokio::test]
async fn we_refresh_with_update_at_half_the_interval() {
    let sipp = Sipp::uas("uas_session_timer_uac.xml", &[]);
    let a = agent().await;
    let (mut call, answered) = answered(&a, sipp.port).await;
    match end_of(&mut call).await {
        CallEvent::Ended { by_remote: true, .. } => {}
        other => panic!("{other:?}"),
    }
    let lasted = answered.elapsed();
    assert!(
        lasted >= Duration::from_millis(3500),
        "two refreshes at 2 s each before sipp's BYE: {lasted:?}"
    );
    assert_eq!(sipp.exit_code(), 0, "sipp got both UPDATE refreshes in time");
    no_dialogs_left(&a).await;
}

/// The far end is the refresher (6 s) and never refreshes: our BYE goes before the session expires (at 4 s).
#[tokio::test]
async fn a_missing_refresh_ends_the_call_with_bye_before_expiry() {
    let sipp = Sipp::uas("uas_session_timer_uas.xml", &[]);
    let a = agent().await;
    let (mut call, answered) = answered(&a, sipp.port).await;
    match end_of(&mut call).await {
        CallEvent::Ended {
            by_remote: false,
            reason: Some(reason),
        } => assert_eq!(
            reason,
            "session expired: the far end did not refresh it within 6 s (RFC 4028)"
        ),
        other => panic!("{other:?}"),
    }
    let at = answered.elapsed();
    assert!(
        (Duration::from_millis(3800)..Duration::from_millis(5000)).contains(&at),
        "BYE at 6 - min(32, 6/3) = 4 s: {at:?}"
    );
    assert_eq!(sipp.exit_code(), 0, "sipp got our BYE");
    no_dialogs_left(&a).await;
}

/// A 422 with `Min-SE: 3600` is answered with a new INVITE asking for 3600 s, which is answered.
#[tokio::test]
async fn a_422_is_answered_with_the_far_ends_min_se() {
    let sipp = Sipp::uas("uas_session_timer_422.xml", &[]);
    let a = agent().await;
    let (mut call, _) = answered(&a, sipp.port).await;
    assert!(matches!(
        next(&mut call).await,
        CallEvent::Ended { by_remote: true, .. }
    ));
    assert_eq!(
        sipp.exit_code(),
        0,
        "sipp got the second INVITE with Session-Expires 3600"
    );
    no_dialogs_left(&a).await;
}

/// A far end that does not allow UPDATE is refreshed with a re-INVITE carrying our SDP, and its 200 is ACKed.
#[tokio::test]
async fn without_update_we_refresh_with_a_reinvite() {
    let sipp = Sipp::uas("uas_session_timer_reinvite.xml", &[]);
    let a = agent().await;
    let (mut call, _) = answered(&a, sipp.port).await;
    match end_of(&mut call).await {
        CallEvent::Ended { by_remote: true, .. } => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(sipp.exit_code(), 0, "sipp got the re-INVITE refresh and its ACK");
    no_dialogs_left(&a).await;
}

/// The far end refreshes (6 s) with a re-INVITE after 2 s: our 200 repeats its Session-Expires with
/// `Require: timer`, and the timer starts again, so no BYE of ours comes at 4 s; sipp hangs up at 5 s.
#[tokio::test]
async fn the_far_ends_refresh_keeps_the_call() {
    let sipp = Sipp::uas("uas_session_timer_uas_refresh.xml", &[]);
    let a = agent().await;
    let (mut call, _) = answered(&a, sipp.port).await;
    match end_of(&mut call).await {
        CallEvent::Ended { by_remote: true, .. } => {}
        other => panic!("the far end hangs up, not us: {other:?}"),
    }
    assert_eq!(
        sipp.exit_code(),
        0,
        "sipp got 200 with Session-Expires and Require: timer"
    );
    no_dialogs_left(&a).await;
}
