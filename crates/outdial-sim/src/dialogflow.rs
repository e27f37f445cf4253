//! Local Dialogflow CX and ES services and Google's token endpoint (docs/bots.md, "Dialogflow"), as strict as
//! Google's: the token endpoint verifies the JWT's RS256 signature against the service account's public key and
//! its claims (`iss`, `aud`, `scope`, `iat`/`exp`), answering OAuth's `invalid_grant` otherwise; `detectIntent`
//! takes only a token it issued (`401 UNAUTHENTICATED`), only its project (`403 PERMISSION_DENIED`), agent
//! (`404 NOT_FOUND`) and location (`400 INVALID_ARGUMENT` naming the right regional endpoint), and only bodies of
//! the real schema (`400 INVALID_ARGUMENT`, `Unknown name … Cannot find field.`), all in Google's error envelope.
//! The agent is the reference bot's [`Script`], answering in response messages.

use crate::bot::{Script, replies, unix_ms};
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use parking_lot::Mutex;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

const PRIVATE_KEY: &str = include_str!("../keys/test_service_account.pem");
const PUBLIC_KEY: &str = include_str!("../keys/test_service_account.pub.pem");
pub const PROJECT: &str = "outdial-test";
pub const AGENT: &str = "0d5c3a4e-agent";
pub const CLIENT_EMAIL: &str = "outdial@outdial-test.iam.gserviceaccount.com";

#[derive(Default)]
struct Inner {
    script: Script,
    base: String,
    location: String,
    /// Access tokens issued → Unix ms they expire.
    tokens: HashMap<String, u64>,
    token_requests: u64,
    /// Every detectIntent: the path and the body, in order.
    requests: Vec<(String, Value)>,
    /// Per session, what the agent was told, in the reference bot's encoding.
    sessions: HashMap<String, Vec<Value>>,
    /// The next detectIntent requests answered `503 UNAVAILABLE` (a passing overload).
    fail_next: u32,
}

#[derive(Clone)]
pub struct FakeDialogflow {
    /// `http://127.0.0.1:port`: the bot's `apiEndpoint`.
    pub url: String,
    inner: Arc<Mutex<Inner>>,
}

impl FakeDialogflow {
    pub fn set_script(&self, s: Script) {
        self.inner.lock().script = s;
    }
    /// Where the agent lives (`global` by default).
    pub fn set_location(&self, l: &str) {
        self.inner.lock().location = l.to_string();
    }
    /// Every detectIntent (path, body), in order.
    pub fn requests(&self) -> Vec<(String, Value)> {
        self.inner.lock().requests.clone()
    }
    /// Answers the next `n` detectIntent requests with `503 UNAVAILABLE`.
    pub fn fail_next(&self, n: u32) {
        self.inner.lock().fail_next = n;
    }
    pub fn token_requests(&self) -> u64 {
        self.inner.lock().token_requests
    }
    /// The service account's JSON key, as Google hands it out, with this service's token endpoint.
    pub fn credentials(&self) -> Value {
        service_account(&self.url)
    }
    /// The `[[bots]]` lines of a bot of this agent (CX or ES).
    pub fn bot_config(&self, cx: bool) -> String {
        let c = self.credentials();
        let key = c["private_key"].as_str().unwrap_or_default().replace('\n', "\\n");
        format!(
            "type = \"{}\"\nprojectId = \"{PROJECT}\"\n{}apiEndpoint = \"{}\"\n\
             credentials = {{ type = \"service_account\", private_key_id = \"0123abcd\", private_key = \"{key}\", \
             client_email = \"{CLIENT_EMAIL}\", token_uri = \"{}\" }}\n",
            if cx { "dialogflow-cx" } else { "dialogflow-es" },
            if cx {
                format!("agentId = \"{AGENT}\"\n")
            } else {
                String::new()
            },
            self.url,
            c["token_uri"].as_str().unwrap_or_default(),
        )
    }
}

/// The test service account's JSON key, its token endpoint at `{base}/token`.
pub fn service_account(base: &str) -> Value {
    json!({"type": "service_account", "project_id": PROJECT, "private_key_id": "0123abcd",
           "private_key": PRIVATE_KEY, "client_email": CLIENT_EMAIL, "client_id": "1234567890",
           "token_uri": format!("{base}/token")})
}

pub async fn start(listen: SocketAddr, script: Script) -> std::io::Result<FakeDialogflow> {
    let inner = Arc::new(Mutex::new(Inner {
        script,
        location: "global".into(),
        ..Default::default()
    }));
    let state = inner.clone();
    let app = Router::new()
        .route("/token", post(token))
        .fallback(move |m: Method, uri: Uri, h: HeaderMap, body: Bytes| api(state.clone(), m, uri, h, body))
        .with_state(inner.clone());
    let url = crate::serve_http(listen, app).await?;
    inner.lock().base = url.clone();
    Ok(FakeDialogflow { url, inner })
}

fn oauth_error(code: &str, description: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": code, "error_description": description})),
    )
        .into_response()
}

/// Google's token endpoint for the service-account flow.
async fn token(axum::extract::State(s): axum::extract::State<Arc<Mutex<Inner>>>, body: Bytes) -> Response {
    let (script, aud) = {
        let mut i = s.lock();
        i.token_requests += 1;
        (i.script, format!("{}/token", i.base))
    };
    if let Err(refused) = verify_grant(&body, &aud, script == Script::Unauthorized) {
        return refused;
    }
    let t = format!("ya29.{}", uuid::Uuid::new_v4().simple());
    s.lock().tokens.insert(t.clone(), unix_ms() + 3_599_000);
    Json(json!({"access_token": t, "expires_in": 3599, "token_type": "Bearer"})).into_response()
}

/// Checks a JWT-bearer grant as Google's token endpoint does (`aud` is the endpoint's own URL); `revoked`: the
/// key no longer works. The refusal is OAuth's error body.
#[allow(clippy::result_large_err)] // A test server's refusal, built once.
pub(crate) fn verify_grant(body: &[u8], aud: &str, revoked: bool) -> Result<(), Response> {
    let form: HashMap<String, String> = url_form(body);
    if form.get("grant_type").map(String::as_str) != Some("urn:ietf:params:oauth:grant-type:jwt-bearer") {
        return Err(oauth_error("unsupported_grant_type", "Invalid grant_type: "));
    }
    let Some(assertion) = form.get("assertion") else {
        return Err(oauth_error(
            "invalid_request",
            "Missing required parameter: assertion",
        ));
    };
    if revoked {
        return Err(oauth_error("invalid_grant", "Invalid JWT Signature."));
    }
    let Ok(key) = jsonwebtoken::DecodingKey::from_rsa_pem(PUBLIC_KEY.as_bytes()) else {
        return Err(oauth_error("internal", "no key"));
    };
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    v.set_audience(&[aud]);
    v.set_issuer(&[CLIENT_EMAIL]);
    v.set_required_spec_claims(&["exp", "iat", "aud", "iss"]);
    let claims = match jsonwebtoken::decode::<Value>(assertion, &key, &v) {
        Ok(d) => d.claims,
        Err(_) => return Err(oauth_error("invalid_grant", "Invalid JWT Signature.")),
    };
    let lifetime = claims["exp"].as_i64().unwrap_or(0) - claims["iat"].as_i64().unwrap_or(0);
    if !(1..=3600).contains(&lifetime) {
        return Err(oauth_error(
            "invalid_grant",
            "Invalid JWT: Token must be a short-lived token (60 minutes)",
        ));
    }
    let scope = claims["scope"].as_str().unwrap_or_default();
    if !scope
        .split(' ')
        .any(|s| s.ends_with("/auth/cloud-platform") || s.ends_with("/auth/dialogflow"))
    {
        return Err(oauth_error(
            "invalid_scope",
            "Invalid OAuth scope or ID token audience provided.",
        ));
    }
    Ok(())
}

fn url_form(body: &[u8]) -> HashMap<String, String> {
    String::from_utf8_lossy(body)
        .split('&')
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((decode(k), decode(v)))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let b = s.replace('+', " ");
    let bytes = b.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(h) = bytes
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok())
        {
            out.push(h);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(crate) fn google_error(code: u16, status: &str, message: &str) -> Response {
    let s = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        s,
        Json(json!({"error": {"code": code, "message": message, "status": status}})),
    )
        .into_response()
}

/// A parsed API path.
struct Target {
    cx: bool,
    project: String,
    location: String,
    agent: String,
    environment: Option<String>,
    session: Option<String>,
}

fn parse_path(path: &str) -> Option<Target> {
    let seg: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let mut t = Target {
        cx: seg.first() == Some(&"v3"),
        project: String::new(),
        location: "global".into(),
        agent: String::new(),
        environment: None,
        session: None,
    };
    let mut i = 1;
    let mut next = |want: &str| -> Option<String> {
        if seg.get(i) == Some(&want) {
            i += 2;
            seg.get(i - 1).map(|s| s.to_string())
        } else {
            None
        }
    };
    t.project = next("projects")?;
    if let Some(l) = next("locations") {
        t.location = l;
    }
    if t.cx {
        t.agent = next("agents")?;
    } else if seg.get(i) == Some(&"agent") {
        i += 1;
        t.agent = AGENT.into();
    } else {
        return None;
    }
    let mut rest = seg[i..].iter();
    while let Some(s) = rest.next() {
        match *s {
            "environments" => t.environment = rest.next().map(|s| s.to_string()),
            "users" => {
                rest.next();
            }
            "sessions" => t.session = rest.next().map(|s| s.to_string()),
            _ => return None,
        }
    }
    Some(t)
}

async fn api(s: Arc<Mutex<Inner>>, m: Method, uri: Uri, h: HeaderMap, body: Bytes) -> Response {
    let bearer = h
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_string();
    let (script, location) = {
        let i = s.lock();
        if i.tokens.get(&bearer).is_none_or(|exp| *exp <= unix_ms()) {
            return google_error(
                401,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
            );
        }
        (i.script, i.location.clone())
    };
    if script == Script::Broken {
        return google_error(503, "UNAVAILABLE", "The service is currently unavailable.");
    }
    if script == Script::Unauthorized {
        // The key was revoked: its tokens stop working (and the token endpoint refuses new ones).
        return google_error(
            401,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials.",
        );
    }
    let Some(t) = parse_path(uri.path()) else {
        return google_error(
            404,
            "NOT_FOUND",
            "The requested URL was not found on this server.",
        );
    };
    if t.project != PROJECT {
        return google_error(
            403,
            "PERMISSION_DENIED",
            &format!(
                "Permission 'dialogflow.sessions.detectIntent' denied on resource 'projects/{}' (or it may not exist).",
                t.project
            ),
        );
    }
    if t.location != location {
        return google_error(
            400,
            "INVALID_ARGUMENT",
            &format!(
                "Please refer to https://cloud.google.com/dialogflow/cx/docs/concepts/region to use the correct endpoint for location '{location}': {location}-dialogflow.googleapis.com"
            ),
        );
    }
    if t.agent != AGENT
        || t.environment
            .as_deref()
            .is_some_and(|e| e != "production" && e != "draft")
    {
        return google_error(
            404,
            "NOT_FOUND",
            "com.google.apps.framework.request.NotFoundException: Agent not found.",
        );
    }
    let Some(session) = t
        .session
        .as_deref()
        .and_then(|s| s.strip_suffix(":detectIntent"))
        .map(str::to_string)
    else {
        return if m == Method::GET {
            Json(
                json!({"name": format!("projects/{PROJECT}/locations/{location}/agents/{AGENT}"),
                        "displayName": "Reference agent", "defaultLanguageCode": "en"}),
            )
            .into_response()
        } else {
            google_error(
                404,
                "NOT_FOUND",
                "The requested URL was not found on this server.",
            )
        };
    };
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return google_error(
            400,
            "INVALID_ARGUMENT",
            "Invalid JSON payload received. Unexpected token.",
        );
    };
    let input = match crate::dfwire::check(t.cx, &req) {
        Ok(i) => i,
        Err(msg) => return google_error(400, "INVALID_ARGUMENT", &msg),
    };
    {
        let mut i = s.lock();
        i.requests.push((uri.path().to_string(), req.clone()));
        if i.fail_next > 0 {
            i.fail_next -= 1;
            return google_error(503, "UNAVAILABLE", "The service is currently unavailable.");
        }
    }
    let failing = script.fails_after(s.lock().sessions.get(&session).map_or(&[][..], Vec::as_slice));
    match script {
        _ if failing => return google_error(503, "UNAVAILABLE", "The service is currently unavailable."),
        Script::Slow => tokio::time::sleep(std::time::Duration::from_secs(30)).await,
        Script::Rubbish => {
            return (
                StatusCode::OK,
                "{\"responseId\": \"abc\", \"queryResult\": {\"respo",
            )
                .into_response();
        }
        _ => {}
    }
    let mut i = s.lock();
    let base = i.base.clone();
    let told = i.sessions.entry(session).or_default();
    told.push(input.clone());
    let out = replies(script, &base, told, &[input]);
    Json(crate::dfwire::answer(t.cx, &req, &out)).into_response()
}
