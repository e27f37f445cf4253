//! HTTPS on the API (issue 12, item 8; docs/operations.md, "HTTPS"): a real HTTPS client (reqwest with rustls)
//! against the real binary with a certificate of a throw-away CA, a renewal taken without a restart, and
//! client-certificate authentication.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly.

use crate::common::{ADMIN, BASIC, Gateway};
use outdial_testkit::TestCa;
use reqwest::tls::TlsInfo;
use std::time::Duration;

fn https_client(ca: &TestCa, identity: Option<(&std::path::Path, &std::path::Path)>) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&ca.ca_pem()).unwrap()])
        .tls_info(true)
        .timeout(Duration::from_secs(10));
    if let Some((cert, key)) = identity {
        let mut pem = std::fs::read(cert).unwrap();
        pem.extend(std::fs::read(key).unwrap());
        b = b.identity(reqwest::Identity::from_pem(&pem).unwrap());
    }
    b.build().unwrap()
}

/// The DER of the certificate the server presented.
async fn served_cert(client: &reqwest::Client, url: &str) -> Vec<u8> {
    let r = client.get(url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.extensions()
        .get::<TlsInfo>()
        .and_then(|t| t.peer_certificate())
        .unwrap()
        .to_vec()
}

fn der_of(pem_file: &std::path::Path) -> Vec<u8> {
    let pem = std::fs::read_to_string(pem_file).unwrap();
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(b64).unwrap()
}

#[tokio::test]
async fn the_api_is_served_over_https_and_a_renewal_is_taken_without_a_restart() {
    let ca = TestCa::new();
    let (first, first_key) = ca.issue("api1", false);
    let live = ca.path("live.pem");
    let live_key = ca.path("live.key");
    std::fs::copy(&first, &live).unwrap();
    std::fs::copy(&first_key, &live_key).unwrap();
    let g = Gateway::start(&format!(
        "[http]\ntls_cert = \"{}\"\ntls_key = \"{}\"\ntls_reload_sec = 1\n{BASIC}",
        live.display(),
        live_key.display()
    ))
    .await;
    assert!(g.url("/").starts_with("https://127.0.0.1:"), "{}", g.url("/"));
    let client = https_client(&ca, None);
    // The dialer's request over HTTPS.
    let r = client
        .get(g.url("/api/v1/bots"))
        .basic_auth(ADMIN.0, Some(ADMIN.1))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(served_cert(&client, &g.url("/healthz")).await, der_of(&first));
    // Plain HTTP to the HTTPS port gets no API answer.
    let plain = g.url("/healthz").replace("https://", "http://");
    let answered = reqwest::Client::new()
        .get(&plain)
        .send()
        .await
        .is_ok_and(|r| r.status() == 200);
    assert!(!answered, "no plain HTTP on the HTTPS port");
    // A renewal: the files are replaced; new connections get the new certificate, no restart.
    let (second, second_key) = ca.issue("api2", false);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    std::fs::copy(&second_key, &live_key).unwrap();
    std::fs::copy(&second, &live).unwrap();
    let mut renewed = false;
    for _ in 0..50 {
        let fresh = https_client(&ca, None);
        if served_cert(&fresh, &g.url("/healthz")).await == der_of(&second) {
            renewed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(renewed, "the renewed certificate is served: {}", g.log());
    assert!(g.log().contains("HTTPS certificate reloaded"), "{}", g.log());
    // A broken renewal keeps the certificate that works.
    std::fs::write(&live, "not a certificate").unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let fresh = https_client(&ca, None);
    assert_eq!(served_cert(&fresh, &g.url("/healthz")).await, der_of(&second));
    assert!(g.log().contains("HTTPS certificate not reloaded"), "{}", g.log());
}

#[tokio::test]
async fn client_certificates_are_required_when_a_client_ca_is_set() {
    let ca = TestCa::new();
    let (cert, key) = ca.issue("api", false);
    let (dialer, dialer_key) = ca.issue("dialer", true);
    let g = Gateway::start(&format!(
        "[http]\ntls_cert = \"{}\"\ntls_key = \"{}\"\ntls_client_ca = \"{}\"\n{BASIC}",
        cert.display(),
        key.display(),
        ca.path("ca.pem").display()
    ))
    .await;
    // Without a client certificate the handshake fails.
    let anonymous = https_client(&ca, None);
    assert!(anonymous.get(g.url("/healthz")).send().await.is_err());
    // A certificate of another CA is refused too.
    let other = TestCa::new();
    let (stranger, stranger_key) = other.issue("stranger", true);
    let wrong = https_client(&ca, Some((&stranger, &stranger_key)));
    assert!(wrong.get(g.url("/healthz")).send().await.is_err());
    // With one of the CA's: the API answers (and still asks for the API's own credentials).
    let client = https_client(&ca, Some((&dialer, &dialer_key)));
    assert_eq!(client.get(g.url("/healthz")).send().await.unwrap().status(), 200);
    let r = client.get(g.url("/api/v1/bots")).send().await.unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn a_certificate_without_its_key_is_a_clear_start_up_error() {
    let ca = TestCa::new();
    let err = Gateway::try_start(&format!(
        "[http]\ntls_cert = \"{}\"\n{BASIC}",
        ca.path("server.pem").display()
    ))
    .err()
    .expect("refused");
    assert!(
        err.contains("http.tls_cert and http.tls_key go together"),
        "{err}"
    );
    let err = Gateway::try_start(&format!(
        "[http]\ntls_cert = \"{}\"\ntls_key = \"/nonexistent/key.pem\"\n{BASIC}",
        ca.path("server.pem").display()
    ))
    .err()
    .expect("refused");
    assert!(err.contains("/nonexistent/key.pem"), "{err}");
}
