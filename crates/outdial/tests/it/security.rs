//! docs/security.md against the real binary: OAuth scopes only for applications allowed to hold them, tokens
//! bound to their application's identity and secret generation.

use crate::common::{self, ADMIN, Gateway, client, error_of};
use reqwest::Method;
use serde_json::{Value, json};

const BOTS: &str = r#"
# 127.0.0.1:5099 answers nothing. These tests dial it many times for the API's answers; without this, three
# silent INVITEs would mark the trunk down and later dialouts would get 503 (docs/operations.md, "Trunk health").
[sip]
trunk_down_after = 1000

[[trunks]]
name = "t1"
address = "127.0.0.1:5099"
[[bots]]
name = "Support"
botUrl = "http://127.0.0.1:9/bot"
dialoutAuthScope = "support-dial"
authorizationTag = "support"
"#;

/// `POST /oauth/token` with a scope: (status, error code, description).
async fn ask_scope(g: &Gateway, who: (&str, &str), scope: &str) -> (u16, Value) {
    let r = client()
        .post(g.url("/oauth/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", who.0),
            ("client_secret", who.1),
            ("scope", scope),
        ])
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn bearer_dial(g: &Gateway, token: &str) -> u16 {
    client()
        .post(g.url("/api/v1/actions/dialout"))
        .bearer_auth(token)
        .json(&json!({"bot": "Support", "target": "tel:+1", "caller": "1"}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Finding 1: `dialoutAuthScope` no longer bypasses IAM.
#[tokio::test]
async fn oauth_scopes_are_granted_by_policy_and_deny_wins() {
    let g = Gateway::start(BOTS).await;
    let reader = g
        .app("reader", json!([{"role": "VAIC/CALLS/READ", "scope": "*"}]))
        .await;
    let r = (reader.0.as_str(), reader.1.as_str());
    // A reader may not hold the bot's scope; the refusal is the same for a value no bot has.
    let (s1, known) = ask_scope(&g, r, "support-dial").await;
    let (s2, unknown) = ask_scope(&g, r, "no-such-scope").await;
    assert_eq!((s1, s2), (400, 400));
    assert_eq!(known["error"], "invalid_scope");
    assert_eq!(known, unknown, "the answer does not reveal which scopes exist");
    assert_eq!(
        known["error_description"],
        "the requested scope is not granted to this client"
    );

    // Explicit deny on the bot wins over a policy that allows holding its scope.
    let denied = g
        .app(
            "denied",
            json!([{"role": "VAIC/BOTS/DIALOUT", "scope": "oauth=support-dial"},
                   {"role": "VAIC/BOTS/DIALOUT", "scope": "Support", "effect": "deny"}]),
        )
        .await;
    let d = (denied.0.as_str(), denied.1.as_str());
    let (s, v) = ask_scope(&g, d, "support-dial").await;
    assert_eq!(s, 200, "{v}");
    let tok = v["access_token"].as_str().unwrap().to_string();
    assert_eq!(bearer_dial(&g, &tok).await, 403, "deny wins");

    // The policy grants the scope and the scope dials; removing the policy revokes what the token carries.
    let holder = g
        .app(
            "holder",
            json!([{"role": "VAIC/BOTS/DIALOUT", "scope": "oauth=support-dial"}]),
        )
        .await;
    let h = (holder.0.as_str(), holder.1.as_str());
    let tok = g.token(h.0, h.1, Some("support-dial")).await;
    assert_eq!(bearer_dial(&g, &tok).await, 200);
    let plain = g.token(h.0, h.1, None).await;
    assert_eq!(bearer_dial(&g, &plain).await, 403, "no scope in the token");
    assert_eq!(
        patch(
            &g,
            ADMIN,
            "/api/v1/applications/holder",
            json!({"policies": [{"role": "VAIC/CALLS/READ", "scope": "*"}]})
        )
        .await,
        200
    );
    assert_eq!(bearer_dial(&g, &tok).await, 403, "the policy was taken away");
}

/// Finding 5: a token is bound to its application's identity and secret generation.
#[tokio::test]
async fn tokens_die_with_their_application_and_secret() {
    let g = Gateway::start(BOTS).await;
    let policies = json!([{"role": "VAIC/BOTS/READ", "scope": "*"}]);
    let app = g.app("dialer", policies.clone()).await;
    let tok = g.token(&app.0, &app.1, None).await;
    let read = |t: String| {
        let g = &g;
        async move {
            client()
                .get(g.url("/api/v1/bots"))
                .bearer_auth(t)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(read(tok.clone()).await, 200);

    // Deleted, then created again with the same client id and secret: the old token stays dead.
    let r = g
        .send(Method::DELETE, "/api/v1/applications/dialer", ADMIN, None)
        .await;
    assert_eq!(r.status(), 204);
    g.app("dialer", json!([{"role": "OUTDIAL/ADMIN", "scope": "*"}]))
        .await;
    let r = client()
        .get(g.url("/api/v1/bots"))
        .bearer_auth(&tok)
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_of(r).await,
        (
            401,
            "access token revoked: its application is disabled, deleted or has a new secret".into()
        )
    );
    let fresh = g.token("dialer", "dialer-secret", None).await;
    assert_eq!(read(fresh.clone()).await, 200);

    // A change that keeps the secret keeps the token; rotating the secret revokes it.
    assert_eq!(
        patch(
            &g,
            ADMIN,
            "/api/v1/applications/dialer",
            json!({"name": "renamed"})
        )
        .await,
        200
    );
    assert_eq!(read(fresh.clone()).await, 200, "no new secret, token kept");
    assert_eq!(
        patch(
            &g,
            ADMIN,
            "/api/v1/applications/dialer",
            json!({"clientSecret": "a-brand-new-secret"})
        )
        .await,
        200
    );
    assert_eq!(read(fresh).await, 401, "rotation revokes earlier tokens");
    let newest = g.token("dialer", "a-brand-new-secret", None).await;
    assert_eq!(read(newest).await, 200);
}

/// A stand-in for an internal service (or cloud metadata): answers every request with `status` and a body holding
/// a secret, and counts what reached it. Also records the `Authorization` headers it was sent.
struct Internal {
    base: String,
    hits: std::sync::Arc<parking_lot::Mutex<Vec<Option<String>>>>,
}

const SECRET_BODY: &str = r#"{"type":"ac-bot-api","success":false,"AccessKeyId":"AKIA-INTERNAL-SECRET"}"#;

async fn internal(ip: &str, status: u16) -> Internal {
    use axum::http::{HeaderMap, StatusCode};
    let hits: std::sync::Arc<parking_lot::Mutex<Vec<Option<String>>>> = Default::default();
    let h = hits.clone();
    let app = axum::Router::new().fallback(move |headers: HeaderMap| {
        let h = h.clone();
        async move {
            let auth = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            h.lock().push(auth);
            (StatusCode::from_u16(status).unwrap(), SECRET_BODY)
        }
    });
    let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Internal { base, hits }
}

async fn test_bot(g: &Gateway, who: (&str, &str), name: &str) -> Value {
    let r = g
        .post(&format!("/api/v1/bots/{name}/test"), who, &json!({}))
        .await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// PATCH `path` with `body`; the answer's status.
async fn patch(g: &Gateway, who: (&str, &str), path: &str, body: Value) -> u16 {
    g.send(Method::PATCH, path, who, Some(&body))
        .await
        .status()
        .as_u16()
}

async fn patch_bot(g: &Gateway, who: (&str, &str), name: &str, body: Value) -> u16 {
    patch(g, who, &format!("/api/v1/bots/{name}"), body).await
}

/// Finding 3: every URL fetched for a bot passes the `[bot_network]` policy, metadata is refused in every form,
/// and no answer body is ever echoed.
#[tokio::test]
async fn bot_urls_pass_the_bot_network_policy_and_answers_are_not_echoed() {
    let hidden = internal("127.0.0.2", 200).await;
    let g = Gateway::start(&format!(
        "{BOTS}\n[bot_network]\ndeny_cidrs = [\"127.0.0.2/32\"]\n"
    ))
    .await;
    let editor = g
        .app(
            "editor",
            json!([{"role": "VAIC/BOTS/WRITE", "scope": "tag=sales"}]),
        )
        .await;
    let e = (editor.0.as_str(), editor.1.as_str());
    let r = g
        .post(
            "/api/v1/bots",
            e,
            &json!({"name": "Probe", "authorizationTag": "sales",
                    "botUrl": format!("{}/latest/meta-data", hidden.base)}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let v = test_bot(&g, e, "Probe").await;
    assert_eq!(
        v,
        json!({"success": false, "error": "127.0.0.2 is refused by the bot network policy"})
    );
    // The metadata address, and the IPv6 forms that embed it, are refused with no operator list at all.
    for (url, ip) in [
        ("http://169.254.169.254/latest", "169.254.169.254"),
        ("http://[::a9fe:a9fe]/latest", "::a9fe:a9fe"),
        ("http://[::ffff:169.254.169.254]/latest", "::ffff:169.254.169.254"),
        ("http://[64:ff9b::a9fe:a9fe]/latest", "64:ff9b::a9fe:a9fe"),
        ("http://[2002:a9fe:a9fe::1]/latest", "2002:a9fe:a9fe::1"),
    ] {
        assert_eq!(patch_bot(&g, e, "Probe", json!({"botUrl": url})).await, 200);
        let v = test_bot(&g, e, "Probe").await;
        assert_eq!(
            v["error"],
            format!("{ip} is refused by the bot network policy"),
            "{url}"
        );
    }
    // The OAuth token endpoint and a streaming bot's WebSocket pass the same policy.
    let open = internal("127.0.0.1", 200).await;
    let r = g
        .post(
            "/api/v1/bots",
            e,
            &json!({"name": "Tokens", "authorizationTag": "sales", "botUrl": format!("{}/bot", open.base),
                    "oauthTokenUrl": format!("{}/token", hidden.base), "oauthClientId": "outdial",
                    "oauthClientSecret": "client-secret-1"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    assert_eq!(
        test_bot(&g, e, "Tokens").await["error"],
        "127.0.0.2 is refused by the bot network policy"
    );
    let r = g
        .post(
            "/api/v1/bots",
            e,
            &json!({"name": "Stream", "type": "ac-api-streaming", "authorizationTag": "sales",
                    "botUrl": hidden.base.replace("http://", "ws://")}),
        )
        .await;
    assert_eq!(r.status(), 201);
    assert_eq!(
        test_bot(&g, e, "Stream").await["error"],
        "127.0.0.2 is refused by the bot network policy"
    );
    assert!(
        hidden.hits.lock().is_empty(),
        "nothing reached the hidden service"
    );

    // An allowed service that answers outside the protocol: its status and size, never its body.
    assert_eq!(
        patch_bot(&g, e, "Probe", json!({"botUrl": format!("{}/x", open.base)})).await,
        200
    );
    let v = test_bot(&g, e, "Probe").await;
    assert!(!v.to_string().contains("AKIA"), "{v}");
    assert_eq!(
        v["error"],
        format!(
            "bot answered outside the protocol: validation answered a {}-byte answer without type ac-bot-api and success true",
            SECRET_BODY.len()
        )
    );
    let refusing = internal("127.0.0.1", 403).await;
    assert_eq!(
        patch_bot(&g, e, "Probe", json!({"botUrl": format!("{}/x", refusing.base)})).await,
        200
    );
    let v = test_bot(&g, e, "Probe").await;
    assert_eq!(
        v["error"],
        format!(
            "bot refused the request: HTTP 403 ({}-byte answer)",
            SECRET_BODY.len()
        )
    );
}

/// Finding 3: a bot's `playUrl` is fetched through the same policy; a refused one is skipped and said why.
#[tokio::test]
async fn play_url_passes_the_bot_network_policy() {
    let hidden = internal("127.0.0.2", 200).await;
    let sim = outdial_sim::start("127.0.0.1:0".parse().unwrap(), outdial_sim::SimOptions::default())
        .await
        .unwrap();
    let bot = outdial_sim::bot::start("127.0.0.1:0".parse().unwrap(), outdial_sim::bot::Script::PlayUrl)
        .await
        .unwrap();
    bot.set_media_base(&hidden.base);
    let g = Gateway::start(&format!(
        "[[trunks]]\nname = \"sbc\"\naddress = \"{}\"\nkeepAliveSec = 0\n\n\
         [[bots]]\nname = \"Bot1\"\nbotUrl = \"{}\"\n\n[bot_network]\ndeny_cidrs = [\"127.0.0.2/32\"]\n",
        sim.addr, bot.url
    ))
    .await;
    let (url, got) = common::receiver().await;
    let id = common::dialout(
        &g,
        &json!({"bot": "Bot1", "target": "tel:+15550100", "caller": "1", "notifyUrl": url}),
    )
    .await;
    let done = common::status(&got, "completed").await;
    assert_eq!(done["reason"], "played", "{done}");
    let failed: Vec<String> = common::events(&g, &id)
        .await
        .iter()
        .filter(|e| e["kind"] == "play-url-failed")
        .map(|e| e["data"]["reason"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(failed.len(), 2, "{failed:?}");
    for f in &failed {
        assert!(
            f.ends_with(": 127.0.0.2 is refused by the bot network policy"),
            "{f}"
        );
    }
    assert!(
        hidden.hits.lock().is_empty(),
        "no audio was fetched from the hidden service"
    );
}

/// Finding 4: a new address never receives the old secrets; choosing a trunk needs permission on it.
#[tokio::test]
async fn changing_where_secrets_go_clears_them_and_trunks_need_permission() {
    let legit = internal("127.0.0.1", 200).await;
    let attacker = internal("127.0.0.1", 200).await;
    let g = Gateway::start(&format!(
        "{BOTS}\n[[trunks]]\nname = \"premium\"\naddress = \"127.0.0.1:5098\"\n\n\
         [[bots]]\nname = \"Sales\"\nbotUrl = \"{}/bot\"\ntoken = \"sales-bot-token\"\nauthorizationTag = \"sales\"\n",
        legit.base
    ))
    .await;
    let editor = g
        .app(
            "editor",
            json!([{"role": "VAIC/BOTS/WRITE", "scope": "tag=sales"}]),
        )
        .await;
    let e = (editor.0.as_str(), editor.1.as_str());
    test_bot(&g, e, "Sales").await;
    assert_eq!(
        legit.hits.lock().last().cloned().flatten().as_deref(),
        Some("Bearer sales-bot-token")
    );
    // Moving the bot (PATCH) without its token: the token is cleared, the new address gets no credentials.
    let to_attacker = json!({"botUrl": format!("{}/steal", attacker.base)});
    assert_eq!(patch_bot(&g, e, "Sales", to_attacker.clone()).await, 200);
    test_bot(&g, e, "Sales").await;
    assert_eq!(attacker.hits.lock().as_slice(), &[None]);
    // Moving it back does not bring the token back; giving the token in the same request keeps it.
    let back = json!({"botUrl": format!("{}/bot", legit.base), "token": "sales-bot-token-2"});
    assert_eq!(patch_bot(&g, e, "Sales", back).await, 200);
    test_bot(&g, e, "Sales").await;
    assert_eq!(
        legit.hits.lock().last().cloned().flatten().as_deref(),
        Some("Bearer sales-bot-token-2")
    );
    // PUT without the token but with a new address: cleared as well.
    let r = g
        .send(
            Method::PUT,
            "/api/v1/bots/Sales",
            e,
            Some(&json!({"botUrl": format!("{}/put", attacker.base), "authorizationTag": "sales"})),
        )
        .await;
    assert_eq!(r.status(), 200);
    test_bot(&g, e, "Sales").await;
    assert_eq!(attacker.hits.lock().as_slice(), &[None, None]);

    // Trunks: a scoped editor may not put a bot on a trunk, unless a policy names it.
    let (code, text) = error_of(
        g.send(
            Method::PATCH,
            "/api/v1/bots/Sales",
            e,
            Some(&json!({"trunk": "premium"})),
        )
        .await,
    )
    .await;
    assert_eq!(
        (code, text.as_str()),
        (
            403,
            "application 'editor' is not allowed to put bots on trunk 'premium'"
        )
    );
    assert_eq!(
        patch(
            &g,
            ADMIN,
            "/api/v1/applications/editor",
            json!({"policies": [{"role": "VAIC/BOTS/WRITE", "scope": "tag=sales, trunk=premium"}]})
        )
        .await,
        200
    );
    assert_eq!(patch_bot(&g, e, "Sales", json!({"trunk": "premium"})).await, 200);
    assert_eq!(
        patch_bot(&g, e, "Sales", json!({"trunk": "t1"})).await,
        403,
        "t1 is not named"
    );
}

/// What python3's sqlite3 reads from the gateway's database: the first column of `sql`'s rows.
fn sqlite_column(g: &Gateway, sql: &str) -> Vec<String> {
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            "import sqlite3,sys;c=sqlite3.connect(sys.argv[1]);[print(r[0]) for r in c.execute(sys.argv[2])]",
        )
        .arg(g.dir.join("outdial.db"))
        .arg(sql)
        .output()
        .expect("python3 is installed");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

const KEY1: &str = "8f1c2a9d4e7b6c3a1f0e9d8c7b6a5f4e3d2c1b0a99887766554433221100ffee";
const KEY2: &str = "0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20";

/// Finding 6: the store is private to its owner, and the secrets in it are encrypted with the master key.
#[tokio::test]
async fn the_store_is_private_and_its_secrets_are_sealed() {
    use std::os::unix::fs::PermissionsExt;
    let sipp = outdial_testkit::Sipp::uas("uas_486_reject.xml", &[]);
    let config = r#"
[[trunks]]
name = "t1"
address = "127.0.0.1:SIPP"
username = "trunk-user"
password = "TRUNK-PASSWORD-1"
keepAliveSec = 0
[[bots]]
name = "Bot1"
botUrl = "http://127.0.0.1:9/bot"
token = "BOT-TOKEN-1"
oauthTokenUrl = "http://127.0.0.1:9/token"
oauthClientId = "outdial"
oauthClientSecret = "OAUTH-SECRET-1"
notifySecret = "NOTIFY-SECRET-0123456789"
"#
    .replace("SIPP", &sipp.port.to_string());
    let mut g = Gateway::start_with(&config, &[("OUTDIAL_MASTER_KEY", KEY1)]).await;
    // A notification waiting in the outbox carries the bot's signing secret.
    let (url, got) = common::receiver().await;
    common::dialout(
        &g,
        &json!({"bot": "Bot1", "target": "tel:+1", "caller": "1", "notifyUrl": url}),
    )
    .await;
    common::status(&got, "failed").await;
    // Latencies are histograms (buckets add up across nodes; quantiles of a summary did not even stay ordered).
    let metrics = common::metrics(&g).await;
    assert!(
        metrics.contains("outdial_notification_lag_seconds_bucket{le=\"0.005\"}")
            && !metrics.contains("quantile="),
        "{metrics}"
    );
    let secrets = [
        "TRUNK-PASSWORD-1",
        "BOT-TOKEN-1",
        "OAUTH-SECRET-1",
        "NOTIFY-SECRET-0123456789",
    ];
    let mut raw = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        let p = g.dir.join(format!("outdial.db{suffix}"));
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{} is {mode:o}", p.display());
        raw.extend(std::fs::read(&p).unwrap());
    }
    let raw = String::from_utf8_lossy(&raw);
    for s in secrets {
        assert!(!raw.contains(s), "{s} is in the database file in clear");
    }
    let sealed = |v: &str| v.starts_with("enc:v1:");
    assert!(
        sqlite_column(&g, "select secret from signing_keys")
            .iter()
            .all(|v| sealed(v))
    );
    assert!(
        sqlite_column(&g, "select secret from outbox")
            .iter()
            .all(|v| sealed(v))
    );
    let bot: Value = serde_json::from_str(&sqlite_column(&g, "select body from bots")[0]).unwrap();
    assert!(sealed(bot["token"].as_str().unwrap()), "{bot}");

    // Without the key the gateway does not start, and says why.
    let err = g.restart_with(&[]).unwrap_err();
    assert!(
        err.contains("the store holds encrypted secrets and no master key is set"),
        "{err}"
    );
    // Rotation: the new key with the previous one re-seals everything; then the new key alone is enough.
    g.restart_with(&[
        ("OUTDIAL_MASTER_KEY", KEY2),
        ("OUTDIAL_MASTER_KEY_PREVIOUS", KEY1),
    ])
    .unwrap();
    g.restart_with(&[("OUTDIAL_MASTER_KEY", KEY2)]).unwrap();
    let r = g.get("/api/v1/bots/Bot1", ADMIN).await;
    assert_eq!(r.status(), 200, "the store opens with the rotated key");
    let err = g.restart_with(&[("OUTDIAL_MASTER_KEY", KEY1)]).unwrap_err();
    assert!(err.contains("which is not configured"), "{err}");
}

/// Finding 6: a store sealed without a key at first is sealed as soon as a key is set; a key file must be private.
#[tokio::test]
async fn a_key_set_later_seals_the_store_and_key_files_must_be_private() {
    use std::os::unix::fs::PermissionsExt;
    let mut g = Gateway::start(
        "[[trunks]]\nname = \"t1\"\naddress = \"127.0.0.1:9\"\nusername = \"u\"\npassword = \"TRUNK-PASSWORD-2\"\n",
    )
    .await;
    assert!(g.log().contains("secrets are stored in clear"), "start-up warns");
    let trunk: Value = serde_json::from_str(&sqlite_column(&g, "select body from trunks")[0]).unwrap();
    assert_eq!(trunk["password"], "TRUNK-PASSWORD-2");
    let key = g.dir.join("master.key");
    std::fs::write(&key, KEY1).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let file_env = [("OUTDIAL_SECRETS__KEY_FILE", key.to_str().unwrap())];
    let err = g.restart_with(&file_env).unwrap_err();
    assert!(err.contains("is readable by other users (mode 644)"), "{err}");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    g.restart_with(&file_env).unwrap();
    let trunk: Value = serde_json::from_str(&sqlite_column(&g, "select body from trunks")[0]).unwrap();
    assert!(
        trunk["password"].as_str().unwrap().starts_with("enc:v1:"),
        "{trunk}"
    );
    assert!(sqlite_column(&g, "select secret from signing_keys")[0].starts_with("enc:v1:"));
}

/// Finding 9: credentials never ride in a URL (the documented notification has no Authorization header; bot
/// secrets are write-only fields), and `answerTimeoutSec` keeps its fractions.
#[tokio::test]
async fn urls_with_credentials_are_refused_and_fractions_are_kept() {
    let g = Gateway::start(BOTS).await;
    let dial = |extra: Value| {
        let mut body = json!({"bot": "Support", "target": "tel:+1", "caller": "1"});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    let r = g
        .post(
            "/api/v1/actions/dialout",
            ADMIN,
            &dial(json!({"notifyUrl": "https://dialer:s3cret@example.com/notify"})),
        )
        .await;
    assert_eq!(
        error_of(r).await,
        (
            400,
            "request/notifyUrl should not contain credentials (user:password@)".into()
        )
    );
    let r = g
        .post(
            "/api/v1/bots",
            ADMIN,
            &json!({"name": "Creds", "botUrl": "https://bot:s3cret@example.com/bot"}),
        )
        .await;
    assert_eq!(
        error_of(r).await,
        (
            400,
            "request/botUrl should not contain credentials (user:password@)".into()
        )
    );
    let id = common::dialout(&g, &dial(json!({"answerTimeoutSec": 20.5}))).await;
    let rec = common::conversation(&g, &id).await;
    assert_eq!(rec["request"]["answerTimeoutSec"], 20.5, "{rec}");
}

/// A secret that is an object (speech credentials, a service-account key) is replaced whole by a PATCH: a patch
/// giving only a new `url` (or `token_uri`) is refused instead of sending the old key there.
#[tokio::test]
async fn a_patch_cannot_point_an_object_secret_somewhere_else() {
    let g = Gateway::start(&format!(
        "{BOTS}\n[[bots]]\nname = \"Speech\"\nbotUrl = \"http://127.0.0.1:9/bot\"\nttsProvider = \"deepgram\"\n\
         speechCredentials = {{ deepgram = {{ apiKey = \"dg-secret-0123456789\", url = \"http://127.0.0.1:9\" }} }}\n"
    ))
    .await;
    let editor = g
        .app("editor", json!([{"role": "VAIC/BOTS/WRITE", "scope": "*"}]))
        .await;
    let e = (editor.0.as_str(), editor.1.as_str());
    let elsewhere = json!({"speechCredentials": {"deepgram": {"url": "http://127.0.0.1:8/steal"}}});
    assert_eq!(patch_bot(&g, e, "Speech", elsewhere).await, 400);
    let sa_elsewhere = json!({"credentials": {"token_uri": "http://127.0.0.1:8/token"}});
    assert_eq!(patch_bot(&g, e, "Speech", sa_elsewhere).await, 400);
    // With its key in the same request, the new address is taken.
    let whole = json!({"speechCredentials": {"deepgram": {"apiKey": "dg-secret-new-0123", "url": "http://127.0.0.1:8"}}});
    assert_eq!(patch_bot(&g, e, "Speech", whole).await, 200);
    // Never returned.
    let r = g.get("/api/v1/bots/Speech", e).await;
    let body = r.text().await.unwrap();
    assert!(
        !body.contains("speechCredentials") && !body.contains("dg-secret"),
        "{body}"
    );
}
