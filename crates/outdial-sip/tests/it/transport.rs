//! Reaching the trunk: TLS (stunnel terminating TLS in front of sipp over TCP, with a throw-away CA), DNS SRV
//! (a small DNS server on 127.0.0.1 as the agent's nameserver), and the OPTIONS keep-alive probe.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly.

use outdial_sip::{CallEvent, SipAgent, SipOptions, SipTransport, TlsClient};
use outdial_testkit::{Dns, Record, Sipp, Stunnel, TestCa};
use std::time::Duration;

use crate::common;
use common::*;

async fn agent_with_dns(dns: &Dns) -> std::sync::Arc<SipAgent> {
    SipAgent::start_with(SipOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        nameservers: vec![dns.addr],
    })
    .await
    .unwrap()
}

fn sbc_test_dns() -> Dns {
    Dns::start(vec![Record::A {
        name: "sbc.test".into(),
        ip: "127.0.0.1".parse().unwrap(),
    }])
}

#[tokio::test]
async fn tls_trunk_verified_by_its_ca_carries_the_call() {
    let sipp = Sipp::uas("uas_answer_then_bye.xml", &["-t", "t1", "-d", "300"]);
    let ca = TestCa::new();
    let tunnel = Stunnel::relay_to(&ca, sipp.port);
    let dns = sbc_test_dns();
    let a = agent_with_dns(&dns).await;
    // By name: the certificate's DNS name is checked (and sent as SNI).
    let mut req = request(tunnel.port);
    req.target = format!("sip:+123456789@sbc.test:{}", tunnel.port);
    req.destination = Some(format!("sbc.test:{}", tunnel.port));
    req.transport = SipTransport::Tls;
    req.tls = TlsClient {
        ca_pem: Some(ca.ca_pem()),
        server_name: None,
    };
    let mut call = a.call(req).unwrap();
    answered_then_far_end_bye(&mut call).await;
    assert_eq!(sipp.exit_code(), 0, "sipp saw the whole call over TLS");
    no_dialogs_left(&a).await;
}

#[tokio::test]
async fn tls_trunk_by_address_with_a_configured_server_name() {
    let sipp = Sipp::uas("uas_answer_then_bye.xml", &["-t", "t1", "-d", "300"]);
    let ca = TestCa::new();
    let tunnel = Stunnel::relay_to(&ca, sipp.port);
    let a = agent().await;
    let mut req = request(tunnel.port);
    req.transport = SipTransport::Tls;
    req.tls = TlsClient {
        ca_pem: Some(ca.ca_pem()),
        server_name: Some("sbc.test".into()),
    };
    let mut call = a.call(req).unwrap();
    let (_, fin) = final_event(&mut call).await;
    assert!(matches!(fin, CallEvent::Answered { .. }), "{fin:?}");
    assert!(matches!(
        next(&mut call).await,
        CallEvent::Ended { by_remote: true, .. }
    ));
    no_dialogs_left(&a).await;
}

#[tokio::test]
async fn tls_refuses_an_untrusted_or_misnamed_certificate() {
    let ca = TestCa::new();
    // The relay's upstream does not matter: the handshake must fail first.
    let tunnel = Stunnel::relay_to(&ca, 9);
    let a = agent().await;
    for (tls, why) in [
        (TlsClient::default(), "UnknownIssuer"),
        (
            TlsClient {
                ca_pem: Some(ca.ca_pem()),
                server_name: Some("other.test".into()),
            },
            "not valid for name",
        ),
    ] {
        let mut req = request(tunnel.port);
        req.transport = SipTransport::Tls;
        req.tls = tls;
        let mut call = a.call(req).unwrap();
        match next(&mut call).await {
            CallEvent::Failed { status: None, reason } => {
                assert!(reason.contains("TLS connection to"), "{reason}");
                assert!(reason.contains(why), "{reason}");
            }
            other => panic!("expected a local failure, got {other:?}"),
        }
    }
    no_dialogs_left(&a).await;
}

#[tokio::test]
async fn a_trunk_without_port_is_found_by_srv_in_priority_order() {
    let sipp = Sipp::uas("uas_answer_then_bye.xml", &["-d", "300"]);
    // Priority 10 wins over 20 (which points where nobody listens).
    let dns = Dns::start(vec![
        Record::Srv {
            name: "_sip._udp.trunk.test".into(),
            priority: 20,
            weight: 1,
            port: 9,
            target: "backup.trunk.test".into(),
        },
        Record::Srv {
            name: "_sip._udp.trunk.test".into(),
            priority: 10,
            weight: 1,
            port: sipp.port,
            target: "sbc1.trunk.test".into(),
        },
        Record::A {
            name: "sbc1.trunk.test".into(),
            ip: "127.0.0.1".parse().unwrap(),
        },
        Record::A {
            name: "backup.trunk.test".into(),
            ip: "127.0.0.1".parse().unwrap(),
        },
    ]);
    let a = agent_with_dns(&dns).await;
    let mut req = request(sipp.port);
    req.target = "sip:+123456789@trunk.test".into();
    req.destination = Some("trunk.test".into());
    let mut call = a.call(req).unwrap();
    let (_, fin) = final_event(&mut call).await;
    assert!(matches!(fin, CallEvent::Answered { .. }), "{fin:?}");
    assert!(matches!(
        next(&mut call).await,
        CallEvent::Ended { by_remote: true, .. }
    ));
    assert_eq!(sipp.exit_code(), 0);
    no_dialogs_left(&a).await;
}

#[tokio::test]
async fn an_unknown_trunk_name_fails_the_call_locally() {
    let dns = Dns::start(vec![]);
    let a = agent_with_dns(&dns).await;
    let mut req = request(9);
    req.target = "sip:+123456789@nowhere.test".into();
    req.destination = Some("nowhere.test".into());
    let mut call = a.call(req).unwrap();
    let (_, fin) = final_event(&mut call).await;
    match fin {
        CallEvent::Failed { status, reason } => {
            // At once (not after 32 s of retransmissions), naming the name.
            assert_eq!(status, None);
            assert!(reason.contains("cannot resolve nowhere.test"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    no_dialogs_left(&a).await;
}

#[tokio::test]
async fn options_probe_gets_the_trunks_answer_or_times_out() {
    let sipp = Sipp::uas("uas_options_200.xml", &["-m", "2"]);
    let a = agent().await;
    let dest = format!("127.0.0.1:{}", sipp.port);
    for _ in 0..2 {
        let status = a
            .probe(
                &dest,
                SipTransport::Udp,
                &TlsClient::default(),
                "outdial.example",
                Duration::from_secs(3),
            )
            .await;
        assert_eq!(status, Ok(200));
    }
    assert_eq!(sipp.exit_code(), 0, "sipp accepted both OPTIONS");
    // Nobody there any more: an error within the timeout.
    let started = tokio::time::Instant::now();
    let err = a
        .probe(
            &dest,
            SipTransport::Udp,
            &TlsClient::default(),
            "outdial.example",
            Duration::from_millis(800),
        )
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3), "{err}");
}
