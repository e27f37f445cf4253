//! Authentication and IAM against the real binary: OAuth token endpoint and its errors, Basic and Bearer,
//! revocation, restarts, expiry, roles, scopes (names, tags, deny, legacy), 403 versus 404.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly.

use crate::common;

use common::{ADMIN, BASIC, Gateway, client, error_of};
use reqwest::Method;
use serde_json::{Value, json};

const WWW: &str = "Basic realm=\"outdial\", Bearer";

async fn token_call(
    g: &Gateway,
    form: &[(&str, &str)],
    basic: Option<(&str, &str)>,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let mut r = client().post(g.url("/oauth/token")).form(form);
    if let Some((u, p)) = basic {
        r = r.basic_auth(u, Some(p));
    }
    let r = r.send().await.unwrap();
    let (s, h) = (r.status().as_u16(), r.headers().clone());
    (s, r.json().await.unwrap(), h)
}

#[tokio::test]
async fn oauth_token_endpoint_and_its_errors() {
    let g = Gateway::start(&format!("{BASIC}\ndialoutAuthScope = \"legacy-dial\"\n")).await;
    let cc = ("grant_type", "client_credentials");
    // Form credentials.
    let (s, v, h) = token_call(
        &g,
        &[cc, ("client_id", ADMIN.0), ("client_secret", ADMIN.1)],
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], 3600);
    assert!(v.get("scope").is_none());
    assert_eq!(h["cache-control"], "no-store");
    // Basic header credentials, with a scope.
    let (s, v, _) = token_call(&g, &[cc, ("scope", "legacy-dial")], Some(ADMIN)).await;
    assert_eq!((s, v["scope"].as_str()), (200, Some("legacy-dial")));

    let (s, v, _) = token_call(&g, &[("client_id", ADMIN.0), ("client_secret", ADMIN.1)], None).await;
    assert_eq!((s, v["error"].as_str()), (400, Some("invalid_request")));
    let (s, v, _) = token_call(
        &g,
        &[
            ("grant_type", "password"),
            ("client_id", ADMIN.0),
            ("client_secret", ADMIN.1),
        ],
        None,
    )
    .await;
    assert_eq!((s, v["error"].as_str()), (400, Some("unsupported_grant_type")));
    let (s, v, _) = token_call(
        &g,
        &[cc, ("client_id", ADMIN.0), ("client_secret", ADMIN.1)],
        Some(ADMIN),
    )
    .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (400, Some("invalid_request")),
        "two client authentication methods"
    );
    // `*` lets an administrator hold any scope (it may dial every bot anyway); see security.rs for the rest.
    let (s, v, _) = token_call(&g, &[cc, ("scope", "nope")], Some(ADMIN)).await;
    assert_eq!((s, v["scope"].as_str()), (200, Some("nope")));
    for (form, basic) in [
        (
            vec![cc, ("client_id", ADMIN.0), ("client_secret", "wrong-secret")],
            None,
        ),
        (
            vec![cc, ("client_id", "ghost"), ("client_secret", "whatever1")],
            None,
        ),
        (vec![cc], None),
        (vec![cc], Some(("admin", "bad"))),
    ] {
        let (s, v, h) = token_call(&g, &form, basic).await;
        assert_eq!(
            (s, v["error"].as_str()),
            (401, Some("invalid_client")),
            "{form:?}"
        );
        assert_eq!(h["www-authenticate"], "Basic realm=\"outdial\"");
    }
    // Not a form.
    let r = client()
        .post(g.url("/oauth/token"))
        .json(&json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_request");
}

#[tokio::test]
async fn basic_and_bearer_with_any_scheme_case() {
    let g = Gateway::start(BASIC).await;
    let tok = g.token(ADMIN.0, ADMIN.1, None).await;
    for scheme in ["Bearer", "BEARER", "bearer"] {
        let r = client()
            .get(g.url("/api/v1/bots"))
            .header("Authorization", format!("{scheme} {tok}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{scheme}");
    }
    assert_eq!(
        client()
            .get(g.url("/api/v1/bots"))
            .header(
                "Authorization",
                format!("basic {}", "YWRtaW46YWRtaW4tc2VjcmV0LTE=")
            )
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    for (header, message) in [
        (
            None,
            "missing Authorization header: use HTTP Basic with the client id and secret, or a Bearer token from /oauth/token",
        ),
        (Some("Bearer not.a.token"), "invalid access token"),
        (Some("Basic !!!"), "malformed Basic credentials"),
        (
            Some("Digest x"),
            "unsupported authorization scheme: use Basic or Bearer",
        ),
        (Some("Basic YWRtaW46d3Jvbmc="), "invalid client credentials"),
    ] {
        let mut r = client().post(g.url("/api/v1/actions/dialout")).json(&json!({}));
        if let Some(h) = header {
            r = r.header("Authorization", h);
        }
        let r = r.send().await.unwrap();
        assert_eq!(r.headers()["www-authenticate"], WWW);
        assert_eq!(error_of(r).await, (401, message.to_string()), "{header:?}");
    }
}

#[tokio::test]
async fn tokens_survive_restart_and_stop_with_their_application() {
    let mut g = Gateway::start(BASIC).await;
    let (id, secret) = g
        .app("dialer", json!([{"role": "VAIC/BOTS/DIALOUT", "scope": "*"}]))
        .await;
    let tok = g.token(&id, &secret, None).await;
    let dial = |g: &Gateway, tok: &str| {
        client()
            .post(g.url("/api/v1/actions/dialout"))
            .bearer_auth(tok)
            .json(&json!({"bot": "Bot1", "target": "tel:+1", "caller": "1"}))
            .send()
    };
    assert_eq!(dial(&g, &tok).await.unwrap().status(), 200);
    g.restart();
    assert_eq!(
        dial(&g, &tok).await.unwrap().status(),
        200,
        "the signing key is kept in the store"
    );
    // Disabling revokes tokens and Basic at once (including the verified-credential cache).
    assert_eq!(
        g.post(
            "/api/v1/actions/dialout",
            (&id, &secret),
            &json!({"bot": "Bot1", "target": "tel:+1", "caller": "1"})
        )
        .await
        .status(),
        200
    );
    let r = g
        .send(
            Method::PATCH,
            "/api/v1/applications/dialer",
            ADMIN,
            Some(&json!({"enabled": false})),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        error_of(dial(&g, &tok).await.unwrap()).await,
        (
            401,
            "access token revoked: its application is disabled, deleted or has a new secret".into()
        )
    );
    assert_eq!(
        error_of(g.get("/api/v1/bots", (&id, &secret)).await).await,
        (401, "application is disabled".into())
    );
    // A new secret replaces the old one at once, although the old one was cached.
    g.send(
        Method::PATCH,
        "/api/v1/applications/dialer",
        ADMIN,
        Some(&json!({"enabled": true, "clientSecret": "second-secret"})),
    )
    .await;
    assert_eq!(g.get("/api/v1/conversations", (&id, &secret)).await.status(), 401);
    let r = g.get("/api/v1/conversations", (&id, "second-secret")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap()["conversations"],
        json!([]),
        "authenticated, but no CALLS/READ: sees nothing"
    );
    assert_eq!(
        g.send(Method::DELETE, "/api/v1/applications/dialer", ADMIN, None)
            .await
            .status(),
        204
    );
    assert_eq!(dial(&g, &tok).await.unwrap().status(), 401);
}

#[tokio::test]
async fn tokens_expire() {
    let g = Gateway::start(&format!("[auth]\ntoken_lifetime_sec = 1\n{BASIC}")).await;
    let tok = g.token(ADMIN.0, ADMIN.1, None).await;
    assert_eq!(
        client()
            .get(g.url("/api/v1/bots"))
            .bearer_auth(&tok)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
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
            "access token expired; request a new one from /oauth/token".into()
        )
    );
}

#[tokio::test]
async fn disabled_methods() {
    let g = Gateway::start(&format!("[auth]\nbasic = false\n{BASIC}")).await;
    let (s, e) = error_of(g.get("/api/v1/bots", ADMIN).await).await;
    assert_eq!(
        (s, e.as_str()),
        (
            401,
            "HTTP Basic authentication is disabled on this gateway; use a Bearer token"
        )
    );
    let tok = g.token(ADMIN.0, ADMIN.1, None).await;
    assert_eq!(
        client()
            .get(g.url("/api/v1/bots"))
            .bearer_auth(tok)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

const IAM: &str = r#"
# 127.0.0.1:5099 answers nothing. These tests dial it many times for the API's answers; without this, three
# silent INVITEs would mark the trunk down and later dialouts would get 503 (docs/operations.md, "Trunk health").
[sip]
trunk_down_after = 1000

[[trunks]]
name = "t1"
address = "127.0.0.1:5099"
[[bots]]
name = "Sales1"
botUrl = "http://127.0.0.1:9/bot"
authorizationTag = "sales"
[[bots]]
name = "Sales2"
botUrl = "http://127.0.0.1:9/bot"
authorizationTag = "sales"
[[bots]]
name = "Support"
botUrl = "http://127.0.0.1:9/bot"
dialoutAuthScope = "support-dial"
"#;

async fn dial_as(g: &Gateway, who: (&str, &str), bot: &str) -> (u16, String) {
    error_of(
        g.post(
            "/api/v1/actions/dialout",
            who,
            &json!({"bot": bot, "target": "tel:+1", "caller": "1"}),
        )
        .await,
    )
    .await
}

#[tokio::test]
async fn roles_scopes_tags_deny_and_403_versus_404() {
    let g = Gateway::start(IAM).await;
    let tags = g
        .app(
            "tags",
            json!([{"role": "VAIC/BOTS/DIALOUT", "scope": "tag=sales"}]),
        )
        .await;
    let named = g
        .app(
            "named",
            json!([{"role": "VAIC/BOTS/DIALOUT", "scope": "Support, name=Ghost"}]),
        )
        .await;
    let denied = g
        .app(
            "denied",
            json!([
        {"role": "VAIC/BOTS/DIALOUT", "scope": "*"},
        {"role": "VAIC/BOTS/DIALOUT", "scope": "Sales2", "effect": "deny"}]),
        )
        .await;
    let reader = g
        .app("reader", json!([{"role": "VAIC/BOTS/READ", "scope": "*"}]))
        .await;
    let t = (tags.0.as_str(), tags.1.as_str());
    let n = (named.0.as_str(), named.1.as_str());
    let d = (denied.0.as_str(), denied.1.as_str());
    let r = (reader.0.as_str(), reader.1.as_str());

    assert_eq!(dial_as(&g, t, "Sales1").await.0, 200);
    assert_eq!(dial_as(&g, t, "Sales2").await.0, 200);
    assert_eq!(
        dial_as(&g, t, "Support").await,
        (
            403,
            "application 'tags' is not allowed to dial out for bot 'Support'".into()
        )
    );
    // A tag scope cannot cover a missing bot: 403 (existence not revealed).
    assert_eq!(dial_as(&g, t, "Ghost").await.0, 403);
    // A name scope covers the missing name: 404 with the documented message.
    assert_eq!(
        dial_as(&g, n, "Ghost").await,
        (404, "bot 'Ghost' not found".into())
    );
    assert_eq!(dial_as(&g, n, "Other").await.0, 403);
    assert_eq!(dial_as(&g, n, "Support").await.0, 200);
    assert_eq!(dial_as(&g, d, "Sales1").await.0, 200);
    assert_eq!(dial_as(&g, d, "Sales2").await.0, 403, "deny wins");
    assert_eq!(dial_as(&g, d, "Ghost").await.0, 404, "'*' covers any name");
    assert_eq!(
        dial_as(&g, r, "Sales1").await.0,
        403,
        "READ does not grant DIALOUT"
    );
    assert_eq!(dial_as(&g, ADMIN, "Ghost").await.0, 404);

    // Validation comes after authorization for bot-dependent rules, but body rules apply first.
    assert_eq!(dial_as(&g, t, "Support").await.0, 403);

    // Legacy dialoutAuthScope: a bearer token with the bot's scope may dial it when the application may hold it.
    let legacy = g
        .app(
            "legacy",
            json!([{"role": "VAIC/BOTS/DIALOUT", "scope": "oauth=support-dial"}]),
        )
        .await;
    assert_eq!(dial_as(&g, (&legacy.0, &legacy.1), "Support").await.0, 403);
    let tok = g.token(&legacy.0, &legacy.1, Some("support-dial")).await;
    let bearer_dial = |bot: &str| {
        client()
            .post(g.url("/api/v1/actions/dialout"))
            .bearer_auth(&tok)
            .json(&json!({"bot": bot, "target": "tel:+1", "caller": "1"}))
            .send()
    };
    assert_eq!(bearer_dial("Support").await.unwrap().status(), 200);
    assert_eq!(bearer_dial("Sales1").await.unwrap().status(), 403);
    let plain = g.token(&legacy.0, &legacy.1, None).await;
    let resp = client()
        .post(g.url("/api/v1/actions/dialout"))
        .bearer_auth(&plain)
        .json(&json!({"bot": "Support", "target": "tel:+1", "caller": "1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403, "a token without the scope does not dial");

    // Reading bots is scoped too.
    let bots: Value = g.get("/api/v1/bots", r).await.json().await.unwrap();
    assert_eq!(bots.as_array().unwrap().len(), 3);
    assert_eq!(
        g.get("/api/v1/bots", t)
            .await
            .json::<Value>()
            .await
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(g.get("/api/v1/bots/Sales1", t).await.status(), 403);
    assert_eq!(g.get("/api/v1/bots/Nope", r).await.status(), 404);
    assert_eq!(
        g.get("/api/v1/trunks", r).await.status(),
        403,
        "trunks need OUTDIAL/ADMIN"
    );
    assert_eq!(g.get("/api/v1/applications", t).await.status(), 403);

    // Conversations: CALLS/READ on the bot.
    let calls = g
        .app(
            "calls",
            json!([{"role": "VAIC/CALLS/READ", "scope": "tag=sales"}]),
        )
        .await;
    let c = (calls.0.as_str(), calls.1.as_str());
    let list: Value = g.get("/api/v1/conversations", c).await.json().await.unwrap();
    let bots: Vec<&str> = list["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["bot"].as_str().unwrap())
        .collect();
    assert!(
        !bots.is_empty() && bots.iter().all(|b| b.starts_with("Sales")),
        "{bots:?}"
    );
    let all: Value = g.get("/api/v1/conversations", ADMIN).await.json().await.unwrap();
    let support = all["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["bot"] == "Support")
        .unwrap();
    let path = format!(
        "/api/v1/conversations/{}",
        support["conversationId"].as_str().unwrap()
    );
    assert_eq!(
        error_of(g.get(&path, c).await).await,
        (
            403,
            "application 'calls' is not allowed to read conversations of bot 'Support'".into()
        )
    );
    assert_eq!(g.get(&path, ADMIN).await.status(), 200);
}
