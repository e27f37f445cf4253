//! The administration API (bots, trunks, applications: CRUD, validation, write-only secrets, the last administrator)
//! and the console's framing rules against the real binary.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly.

use crate::common;

use common::{ADMIN, BASIC, Gateway, error_of};
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test]
async fn bots_crud_with_validation_and_write_only_secrets() {
    let g = Gateway::start(BASIC).await;
    let bot = json!({"name": "B2", "botUrl": "https://bot.example/api", "token": "s3cret-token", "dialoutMaxConcurrentCalls": 5});
    let r = g.post("/api/v1/bots", ADMIN, &bot).await;
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    assert!(created.get("token").is_none(), "secrets are write-only");
    assert_eq!(created["dialoutConcurrentCallsExpirationSeconds"], 1200);
    assert_eq!(
        error_of(g.post("/api/v1/bots", ADMIN, &bot).await).await,
        (409, "bot 'B2' already exists".into())
    );
    for (body, message) in [
        (
            json!({"name": "B3", "botUrl": "http://x", "dialoutMaxConcurrentCalls": 301}),
            "request/dialoutMaxConcurrentCalls should be <= 300",
        ),
        (
            json!({"name": "B3", "botUrl": "http://x", "dialoutConcurrentCallsExpirationSeconds": 3601}),
            "request/dialoutConcurrentCallsExpirationSeconds should be <= 3600",
        ),
        (
            json!({"name": "B3", "botUrl": "http://x", "dialoutLimitPerSecond": -0.1}),
            "request/dialoutLimitPerSecond should be >= 0",
        ),
        (
            json!({"name": "B3", "botUrl": "http://x", "dialoutMaxConcurrentCalls": 1.5}),
            "request/dialoutMaxConcurrentCalls should be integer",
        ),
        (
            json!({"name": "B3", "botUrl": "not a url"}),
            "request/botUrl should be an absolute http or https or ws or wss URL",
        ),
        (
            json!({"name": "B3", "botUrl": "http://x", "type": "rasa"}),
            "request/type should be equal to one of the allowed values: ac-api, ac-api-streaming, directline, dialogflow-cx, dialogflow-es",
        ),
        (
            json!({"botUrl": "http://x"}),
            "request should have required property 'name'",
        ),
    ] {
        assert_eq!(
            error_of(g.post("/api/v1/bots", ADMIN, &body).await).await,
            (400, message.to_string()),
            "{body}"
        );
    }
    // A well-formed bot on a trunk that does not exist conflicts with the configuration.
    assert_eq!(
        error_of(
            g.post(
                "/api/v1/bots",
                ADMIN,
                &json!({"name": "B3", "botUrl": "http://x", "trunk": "nope"})
            )
            .await
        )
        .await,
        (
            409,
            "request/trunk should name a configured trunk ('nope' not found)".to_string()
        )
    );
    // A patch that leaves the bot invalid (a type that needs the botUrl it removes) conflicts too; one with a bad
    // field is a bad request.
    let r = g
        .send(
            Method::PATCH,
            "/api/v1/bots/B2",
            ADMIN,
            Some(&json!({"botUrl": null})),
        )
        .await;
    assert_eq!(
        error_of(r).await,
        (
            409,
            "the patched object would not be valid: request should have required property 'botUrl'"
                .to_string()
        )
    );
    let r = g
        .send(
            Method::PATCH,
            "/api/v1/bots/B2",
            ADMIN,
            Some(&json!({"language": "x y"})),
        )
        .await;
    assert_eq!(error_of(r).await.0, 400);
    // PATCH merges; the token stays.
    let r = g
        .send(
            Method::PATCH,
            "/api/v1/bots/B2",
            ADMIN,
            Some(&json!({"dialoutLimitPerSecond": 2.5, "authorizationTag": "x"})),
        )
        .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (
            v["dialoutLimitPerSecond"].as_f64(),
            v["dialoutMaxConcurrentCalls"].as_u64()
        ),
        (Some(2.5), Some(5))
    );
    let r = g
        .send(
            Method::PATCH,
            "/api/v1/bots/B2",
            ADMIN,
            Some(&json!({"authorizationTag": null})),
        )
        .await;
    assert!(
        r.json::<Value>().await.unwrap().get("authorizationTag").is_none(),
        "null removes"
    );
    let r = g
        .send(
            Method::PATCH,
            "/api/v1/bots/B2",
            ADMIN,
            Some(&json!({"dialoutMaxConcurrentCalls": 999})),
        )
        .await;
    assert_eq!(
        error_of(r).await,
        (400, "request/dialoutMaxConcurrentCalls should be <= 300".into())
    );
    // PUT replaces (omitted fields go back to defaults) but keeps write-only secrets while the bot stays where it
    // is; no renames.
    let r = g
        .send(
            Method::PUT,
            "/api/v1/bots/B2",
            ADMIN,
            Some(&json!({"botUrl": "https://bot.example/api"})),
        )
        .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (v["dialoutMaxConcurrentCalls"].as_u64(), v["botUrl"].as_str()),
        (Some(0), Some("https://bot.example/api"))
    );
    let r = g
        .send(
            Method::PUT,
            "/api/v1/bots/B2",
            ADMIN,
            Some(&json!({"name": "B9", "botUrl": "http://x"})),
        )
        .await;
    assert_eq!(
        error_of(r).await,
        (
            400,
            "request/name should be equal to the name in the path ('B2'); objects cannot be renamed".into()
        )
    );
    let db = stored_doc(&g, "bots", "B2").await;
    assert_eq!(db["token"], "s3cret-token", "PUT without token kept it");
    // docs/security.md: a new address never receives the old token.
    let r = g
        .send(
            Method::PUT,
            "/api/v1/bots/B2",
            ADMIN,
            Some(&json!({"botUrl": "https://bot.example/v2"})),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(stored_doc(&g, "bots", "B2").await["token"], Value::Null);
    assert_eq!(g.get("/api/v1/bots/B2", ADMIN).await.status(), 200);
    assert_eq!(
        g.send(Method::DELETE, "/api/v1/bots/B2", ADMIN, None)
            .await
            .status(),
        204
    );
    assert_eq!(
        error_of(g.get("/api/v1/bots/B2", ADMIN).await).await,
        (404, "bot 'B2' not found".into())
    );
    assert_eq!(
        g.send(Method::DELETE, "/api/v1/bots/B2", ADMIN, None)
            .await
            .status(),
        404
    );
}

/// The stored document of an object, read straight from the gateway's SQLite file (secrets included).
async fn stored_doc(g: &Gateway, table: &str, name: &str) -> Value {
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(format!(
            "import sqlite3,sys;c=sqlite3.connect(sys.argv[1]);print(c.execute(\"select body from {table} where name=?\",(sys.argv[2],)).fetchone()[0])"
        ))
        .arg(g.dir.join("outdial.db"))
        .arg(name)
        .output()
        .expect("python3 is installed");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)))
}

#[tokio::test]
async fn trunks_and_applications_crud() {
    let g = Gateway::start(BASIC).await;
    g.create(
        "trunks",
        json!({"name": "t2", "address": "sip:sbc.example.com:5061", "transport": "tls", "password": "pw"}),
    )
    .await;
    let t: Value = g.get("/api/v1/trunks/t2", ADMIN).await.json().await.unwrap();
    assert!(t.get("password").is_none());
    assert_eq!(t["transport"], "tls");
    let r = g
        .post(
            "/api/v1/trunks",
            ADMIN,
            &json!({"name": "t3", "address": "x", "transport": "sctp"}),
        )
        .await;
    assert_eq!(
        error_of(r).await,
        (
            400,
            "request/transport should be equal to one of the allowed values: udp, tcp, tls".into()
        )
    );
    let r = g
        .post(
            "/api/v1/trunks",
            ADMIN,
            &json!({"name": "t3", "address": "bad host:5060"}),
        )
        .await;
    assert_eq!(
        error_of(r).await,
        (400, "request/address should be host[:port] or a sip: URI".into())
    );
    // A trunk in use cannot be deleted.
    let r = g
        .send(
            Method::PATCH,
            "/api/v1/bots/Bot1",
            ADMIN,
            Some(&json!({"trunk": "t1"})),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        error_of(g.send(Method::DELETE, "/api/v1/trunks/t1", ADMIN, None).await).await,
        (409, "trunk 't1' is used by bots: Bot1".into())
    );
    assert_eq!(
        g.send(Method::DELETE, "/api/v1/trunks/t2", ADMIN, None)
            .await
            .status(),
        204
    );

    // Applications: secret required on create, never returned, min length, policies validated.
    let r = g
        .post(
            "/api/v1/applications",
            ADMIN,
            &json!({"clientId": "d1", "policies": []}),
        )
        .await;
    assert_eq!(
        error_of(r).await,
        (400, "request should have required property 'clientSecret'".into())
    );
    let r = g
        .post(
            "/api/v1/applications",
            ADMIN,
            &json!({"clientId": "d1", "clientSecret": "short"}),
        )
        .await;
    assert_eq!(
        error_of(r).await,
        (
            400,
            "request/clientSecret should NOT be shorter than 8 characters".into()
        )
    );
    let r = g.post("/api/v1/applications", ADMIN, &json!({"clientId": "d1", "clientSecret": "long-enough", "policies": [{"role": "VAIC/BOTS/DIALOUT", "scope": ""}]})).await;
    assert_eq!(
        error_of(r).await,
        (
            400,
            "request/policies/0/scope should NOT be shorter than 1 characters".into()
        )
    );
    let r = g
        .post(
            "/api/v1/applications",
            ADMIN,
            &json!({"clientId": "d1", "clientSecret": "long-enough", "notifySecret": "0123456789abcdef0123",
        "policies": [{"role": "VAIC/BOTS/DIALOUT", "scope": "Bot1"}]}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v,
        json!({"clientId": "d1", "name": "d1", "enabled": true, "hasNotifySecret": true,
        "policies": [{"role": "VAIC/BOTS/DIALOUT", "scope": "Bot1", "effect": "allow"}]})
    );
    let listed: Value = g.get("/api/v1/applications", ADMIN).await.json().await.unwrap();
    assert!(
        !listed.to_string().contains("argon2"),
        "hashes never leave the gateway: {listed}"
    );
    // PUT without the secret keeps it.
    let r = g
        .send(
            Method::PUT,
            "/api/v1/applications/d1",
            ADMIN,
            Some(&json!({"name": "Dialer one", "policies": [{"role": "VAIC/BOTS/DIALOUT", "scope": "*"}]})),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        g.post(
            "/api/v1/actions/dialout",
            ("d1", "long-enough"),
            &json!({"bot": "Bot1", "target": "tel:+1", "caller": "1"})
        )
        .await
        .status(),
        200
    );
    assert!(!g.log().contains("long-enough"), "secrets are never logged");
}

/// docs/security.md: the last administrator can neither delete nor disable itself (a fuzzing run once locked
/// everyone out in 12 seconds); `outdial apps reset-admin` recovers an installation with access to its store.
#[tokio::test]
async fn the_last_administrator_cannot_lock_everyone_out() {
    let g = Gateway::start("").await;
    let admin_url = "/api/v1/applications/admin";
    let r = g.send(reqwest::Method::DELETE, admin_url, ADMIN, None).await;
    let (status, msg) = error_of(r).await;
    assert_eq!(status, 409);
    assert!(
        msg.contains("'admin' is the last administrator and cannot be deleted"),
        "{msg}"
    );
    for patch in [
        json!({"enabled": false}),
        json!({"policies": [{"role": "VAIC/CALLS/READ", "scope": "*"}]}),
        json!({"policies": [{"role": "OUTDIAL/ADMIN", "scope": "*"}, {"role": "OUTDIAL/ADMIN", "scope": "*", "effect": "deny"}]}),
    ] {
        let r = g
            .send(reqwest::Method::PATCH, admin_url, ADMIN, Some(&patch))
            .await;
        let (status, msg) = error_of(r).await;
        assert_eq!(status, 409, "{patch}: {msg}");
        assert!(msg.contains("cannot be disabled or lose OUTDIAL/ADMIN"), "{msg}");
    }
    // With a second administrator, the first may go; the second is then the last.
    g.create(
        "applications",
        json!({"clientId": "ops", "clientSecret": "ops-secret-1", "policies": [{"role": "OUTDIAL/ADMIN", "scope": "*"}]}),
    )
    .await;
    let r = g
        .send(reqwest::Method::DELETE, admin_url, ("ops", "ops-secret-1"), None)
        .await;
    assert_eq!(r.status(), 204);
    let r = g
        .send(
            reqwest::Method::DELETE,
            "/api/v1/applications/ops",
            ("ops", "ops-secret-1"),
            None,
        )
        .await;
    assert_eq!(r.status(), 409);
    // Locked out (say the secret is lost): recovered locally, while the gateway runs.
    let mut reset = std::process::Command::new(env!("CARGO_BIN_EXE_outdial"))
        .args(["apps", "reset-admin", "--client-id", "rescue", "--store"])
        .arg(format!("sqlite://{}/outdial.db", g.dir.display()))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        reset
            .stdin
            .take()
            .unwrap()
            .write_all(b"rescue-secret-1\n")
            .unwrap();
    }
    let out = reset.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("'rescue' is an administrator"));
    let mut status = 0;
    for _ in 0..100 {
        status = g
            .get("/api/v1/applications", ("rescue", "rescue-secret-1"))
            .await
            .status()
            .as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200, "the rescued administrator works without a restart");
}

/// docs/security.md: the console and the API cannot be framed by another site.
#[tokio::test]
async fn the_console_cannot_be_framed() {
    let g = Gateway::start("").await;
    for path in ["/docs/", "/openapi.json", "/api/v1/bots"] {
        let r = g.get(path, ADMIN).await;
        assert_eq!(r.status(), 200, "{path}");
        let h = r.headers();
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert_eq!(h["content-security-policy"], "frame-ancestors 'none'", "{path}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
    }
}
