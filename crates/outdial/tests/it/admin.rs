//! Administration API, configuration file and conversation records against the real binary.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly.

use crate::common;

use common::{ADMIN, BASIC, Gateway, client, error_of};
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

/// Waits until the conversation reaches `state` and returns its record.
async fn wait_state(g: &Gateway, id: &str, state: &str) -> Value {
    let mut rec = Value::Null;
    for _ in 0..100 {
        rec = g
            .get(&format!("/api/v1/conversations/{id}"), ADMIN)
            .await
            .json()
            .await
            .unwrap();
        if rec["state"] == state {
            return rec;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("conversation {id} did not reach {state}: {rec}");
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

#[tokio::test]
async fn conversations_records_pages_events_and_hangup() {
    let g = Gateway::start(BASIC).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let r = g
            .post(
                "/api/v1/actions/dialout",
                ADMIN,
                &json!({"bot": "Bot1", "target": format!("tel:+1{i}"), "caller": "1"}),
            )
            .await;
        ids.push(
            r.json::<Value>().await.unwrap()["conversationId"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let page: Value = g
        .get("/api/v1/conversations?limit=2", ADMIN)
        .await
        .json()
        .await
        .unwrap();
    let got: Vec<&str> = page["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["conversationId"].as_str().unwrap())
        .collect();
    assert_eq!(got, [ids[4].as_str(), ids[3].as_str()], "newest first");
    let cursor = page["nextCursor"].as_str().unwrap();
    let page2: Value = g
        .get(&format!("/api/v1/conversations?limit=2&cursor={cursor}"), ADMIN)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page2["conversations"][0]["conversationId"], ids[2].as_str());
    let page3: Value = g
        .get(
            &format!(
                "/api/v1/conversations?limit=2&cursor={}",
                page2["nextCursor"].as_str().unwrap()
            ),
            ADMIN,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page3["conversations"].as_array().unwrap().len(), 1);
    assert!(page3.get("nextCursor").is_none());
    for (q, msg) in [
        (
            "limit=0",
            "query parameter 'limit' should be an integer from 1 to 500",
        ),
        (
            "status=done",
            "query parameter 'status' should be one of: accepted, dialing, ringing, answered, ended, failed, completed, live",
        ),
        (
            "since=yesterday",
            "query parameter 'since' should be an RFC 3339 date-time",
        ),
        (
            "cursor=zzz",
            "query parameter 'cursor' is not a cursor returned by this endpoint",
        ),
        (
            "colour=red",
            "unknown query parameter 'colour'; known: bot, status, since, until, limit, cursor",
        ),
    ] {
        assert_eq!(
            error_of(g.get(&format!("/api/v1/conversations?{q}"), ADMIN).await).await,
            (400, msg.to_string()),
            "{q}"
        );
    }
    // The trunk (127.0.0.1:5099) does not answer: live now, hung up through the API.
    let live: Value = g
        .get("/api/v1/conversations?status=live&bot=Bot1", ADMIN)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(live["conversations"].as_array().unwrap().len(), 5);
    let r = g
        .send(
            Method::DELETE,
            &format!("/api/v1/conversations/{}", ids[0]),
            ADMIN,
            None,
        )
        .await;
    assert_eq!(r.status(), 202);
    let rec = wait_state(&g, &ids[0], "failed").await;
    assert_eq!(
        (
            rec["status"].as_str(),
            rec["reasonCode"].as_str(),
            rec["reason"].as_str()
        ),
        (Some("failed"), Some("error"), Some("ended by API"))
    );
    let events: Value = g
        .get(&format!("/api/v1/conversations/{}/events", ids[0]), ADMIN)
        .await
        .json()
        .await
        .unwrap();
    let kinds: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["accepted", "dialing", "failed"]);
    assert_eq!(
        events[1]["data"]["requestUri"], "sip:+10@127.0.0.1:5099;user=phone",
        "tel: target through the trunk"
    );
    assert_eq!(
        error_of(
            g.send(
                Method::DELETE,
                &format!("/api/v1/conversations/{}", ids[0]),
                ADMIN,
                None
            )
            .await
        )
        .await,
        (409, format!("conversation '{}' has already ended", ids[0]))
    );
    assert_eq!(
        error_of(g.get("/api/v1/conversations/not-a-uuid", ADMIN).await).await,
        (400, "conversation id 'not-a-uuid' is not a UUID".into())
    );
    let missing = uuid::Uuid::new_v4();
    assert_eq!(
        error_of(g.get(&format!("/api/v1/conversations/{missing}"), ADMIN).await).await,
        (404, format!("conversation '{missing}' not found"))
    );
}

#[tokio::test]
async fn health_ready_metrics_openapi_docs() {
    let g = Gateway::start(BASIC).await;
    let c = client();
    assert_eq!(c.get(g.url("/healthz")).send().await.unwrap().status(), 200);
    // docs/security.md: anyone learns whether the gateway is ready; only an authenticated caller learns why.
    let anonymous: Value = c
        .get(g.url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(anonymous, json!({"status": "ready"}));
    let wrong: Value = c
        .get(g.url("/readyz"))
        .basic_auth(ADMIN.0, Some("wrong-secret"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(wrong, json!({"status": "ready"}));
    let ready: Value = g.get("/readyz", ADMIN).await.json().await.unwrap();
    assert_eq!(ready["checks"]["store"], "ok");
    assert_eq!(ready["checks"]["trunks"]["t1"], "unknown", "{ready}");
    let doc: Value = c
        .get(g.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/api/v1/actions/dialout"]["post"].is_object());
    assert!(
        c.get(g.url("/docs/"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
            .contains("swagger")
    );
    g.get("/api/v1/bots", ADMIN).await;
    let m = c
        .get(g.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        m.contains("outdial_http_requests_total{method=\"GET\",route=\"/api/v1/bots\",status=\"200\"} 1"),
        "{m}"
    );
    // docs/operations.md, "Metrics": every metric says what it is, and a watched trunk is 0 until it answers.
    assert!(
        m.contains("# HELP outdial_http_requests_total API requests by method, route template and status"),
        "{m}"
    );
    assert!(m.contains("outdial_trunk_up{trunk=\"t1\"} 0"), "{m}");
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
