//! The configuration file against the real binary: errors that name the file, the key and the problem;
//! declared applications and environment overrides; `serve --check`; the shipped example.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly.

use crate::common;

use common::{BASIC, Gateway, client};
use serde_json::{Value, json};

#[tokio::test]
async fn configuration_errors_name_file_key_and_problem() {
    for (toml, expect) in [
        (
            "[[bots]]\nname = \"B\"\nbotUrl = \"http://x\"\ndialoutMaxConcurrentCalls = 301\n",
            "bots[0].dialoutMaxConcurrentCalls: should be <= 300",
        ),
        ("[http]\nlisen = \"1.2.3.4:5\"\n", "key \"http.lisen\""),
        (
            "[[trunks]]\nname = \"t\"\naddress = \"h\"\ntransport = \"quic\"\n",
            "trunks[0].transport: should be equal to one of the allowed values: udp, tcp, tls",
        ),
        (
            "[[bots]]\nname = \"B\"\nbotUrl = \"http://x\"\ntrunk = \"missing\"\n",
            "bots[0].trunk: should name a configured trunk ('missing' not found)",
        ),
        (
            "[[applications]]\nclientId = \"a\"\n",
            "applications[0]: should have clientSecret or clientSecretHash",
        ),
        (
            "[sip]\nrtp_ports = \"10-5\"\n",
            "sip.rtp_ports: should be FIRST-LAST",
        ),
        ("this is not toml", "outdial.toml"),
    ] {
        let err = Gateway::try_start(toml)
            .err()
            .unwrap_or_else(|| panic!("should not start: {toml}"));
        assert!(err.starts_with("exit Some(2)"), "{err}");
        assert!(err.contains("outdial.toml"), "names the file: {err}");
        assert!(err.contains(expect), "{expect} in {err}");
    }
}

#[tokio::test]
async fn declared_applications_and_env_overrides() {
    let hash = String::from_utf8(
        std::process::Command::new(env!("CARGO_BIN_EXE_outdial"))
            .arg("hash-secret")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().unwrap().write_all(b"hashed-secret\n")?;
                c.wait_with_output()
            })
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    let cfg = format!(
        "{BASIC}\n[[applications]]\nclientId = \"gitops\"\nclientSecretHash = \"{}\"\npolicies = [{{ role = \"VAIC/BOTS/DIALOUT\", scope = \"Bot1\" }}]\n\
         [[applications]]\nclientId = \"plain\"\nclientSecret = \"plain-secret\"\n",
        hash.trim()
    );
    let g = Gateway::start_with(&cfg, &[("OUTDIAL_AUTH__TOKEN_LIFETIME_SEC", "120")]).await;
    assert_eq!(
        g.post(
            "/api/v1/actions/dialout",
            ("gitops", "hashed-secret"),
            &json!({"bot": "Bot1", "target": "tel:+1", "caller": "1"})
        )
        .await
        .status(),
        200
    );
    assert_eq!(
        g.get("/api/v1/bots", ("plain", "plain-secret")).await.status(),
        200
    );
    let r = client()
        .post(g.url("/oauth/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "plain"),
            ("client_secret", "plain-secret"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.json::<Value>().await.unwrap()["expires_in"],
        120,
        "OUTDIAL_AUTH__TOKEN_LIFETIME_SEC applies"
    );
}

#[test]
fn example_configuration_is_valid() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../outdial.example.toml");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_outdial"))
        .args(["serve", "--check", "--config", example])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).ends_with("configuration is valid\n"));
}

/// `serve --check` rejects everything `serve` would reject: the values are checked once, in their types.
#[test]
fn check_rejects_what_serve_would_reject() {
    for (toml, expect) in [
        (
            "[sip]\nnameservers = [\"dns.example\"]\n",
            "sip.nameservers: 'dns.example' should be ip or ip:port",
        ),
        (
            "[sip]\npublic_address = \"my-host\"\n",
            "sip.public_address: 'my-host' should be an IP address",
        ),
        (
            "[sip]\nlisten = \"0.0.0.0:5060\"\n",
            "sip.public_address: needed when sip.listen is a wildcard address",
        ),
        (
            "[log]\nlevel = \"info,[[\"\n",
            "log.level: should be a tracing filter",
        ),
        (
            "[log]\nformat = \"xml\"\n",
            "log.format: should be \"text\" or \"json\"",
        ),
        (
            "[sip]\nrtp_ports = \"40000\"\n",
            "sip.rtp_ports: should be FIRST-LAST",
        ),
        (
            "[runtime]\nworkers = 100000\n",
            "runtime.workers: should be 0 (one per core) to 256",
        ),
    ] {
        let dir = common::temp_dir();
        let file = dir.join("outdial.toml");
        std::fs::write(&file, toml).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_outdial"))
            .args(["serve", "--check", "--config"])
            .arg(&file)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{toml}: {err}");
        assert!(err.contains(expect), "{expect} in {err}");
    }
}
