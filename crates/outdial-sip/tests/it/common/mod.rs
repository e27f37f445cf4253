//! Helpers of the SIP suites.
#![allow(dead_code)] // Each suite uses its own part.

use outdial_sip::{CallEvent, CallRequest, SipAgent};
use std::time::Duration;

pub const OFFER: &str = "v=0\r\no=outdial 1 1 IN IP4 127.0.0.1\r\ns=outdial\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
m=audio 40000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n";

pub fn request(port: u16) -> CallRequest {
    CallRequest {
        target: format!("sip:+123456789@127.0.0.1:{port}"),
        destination: Some(format!("127.0.0.1:{port}")),
        from_user: "1-800-111".into(),
        from_host: "outdial.example".into(),
        display_name: Some("Clinic".into()),
        headers: vec![("X-Outdial-Conversation".into(), "test".into())],
        sdp: Some(OFFER.as_bytes().to_vec()),
        credential: None,
        call_id: format!("{}@outdial", uuid::Uuid::new_v4().simple()),
        session_id_header: None,
        session_expires: None,
        follow_redirects: true,
        transport: outdial_sip::SipTransport::Udp,
        tls: outdial_sip::TlsClient::default(),
    }
}

pub async fn agent() -> std::sync::Arc<SipAgent> {
    SipAgent::start("127.0.0.1:0".parse().unwrap()).await.unwrap()
}

pub async fn next(call: &mut outdial_sip::Call) -> CallEvent {
    tokio::time::timeout(Duration::from_secs(10), call.events.recv())
        .await
        .expect("an event in time")
        .map(|e| *e)
        .expect("events open")
}

/// Skips provisional events and returns the first final one.
pub async fn final_event(call: &mut outdial_sip::Call) -> (Vec<CallEvent>, CallEvent) {
    let mut provisional = Vec::new();
    loop {
        match next(call).await {
            e @ (CallEvent::Trying | CallEvent::Ringing { .. }) => provisional.push(e),
            e => return (provisional, e),
        }
    }
}

pub async fn no_dialogs_left(agent: &SipAgent) {
    for _ in 0..50 {
        if agent.dialog_count() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{} dialogs left behind", agent.dialog_count());
}

/// The call is answered, then the far end hangs up (BYE without a Reason).
pub async fn answered_then_far_end_bye(call: &mut outdial_sip::Call) {
    let (_, fin) = final_event(call).await;
    assert!(matches!(fin, CallEvent::Answered { .. }), "{fin:?}");
    assert_eq!(
        next(call).await,
        CallEvent::Ended {
            by_remote: true,
            reason: None
        }
    );
}
