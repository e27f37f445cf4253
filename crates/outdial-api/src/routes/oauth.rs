//! `POST /oauth/token`: OAuth 2.0 client credentials (RFC 6749 §4.4), errors per §5.2.

use crate::AppState;
use crate::auth::parse_basic;
use crate::body::read_limited;
use crate::error::{ApiError, json_response};
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use outdial_core::iam;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

/// A successful token answer.
#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the token expires.
    pub expires_in: u64,
    /// Granted scopes (legacy `dialoutAuthScope` model), when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// An RFC 6749 §5.2 error.
#[derive(Serialize, ToSchema)]
pub struct OAuthError {
    /// `invalid_request`, `invalid_client`, `unsupported_grant_type` or `invalid_scope`.
    pub error: String,
    pub error_description: String,
}

fn oauth_error(status: StatusCode, code: &str, description: &str) -> Response {
    let mut r = json_response(status, &json!({"error": code, "error_description": description}));
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"outdial\""),
        );
    }
    no_store(r)
}

fn no_store(mut r: Response) -> Response {
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r.headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    r
}

/// Exchange client credentials for a bearer token.
///
/// Form body `grant_type=client_credentials`, with the credentials as `client_id`/`client_secret` fields or as
/// an HTTP Basic header (not both), and an optional space-separated `scope`.
#[utoipa::path(
    post,
    path = "/oauth/token",
    tag = "auth",
    request_body(content_type = "application/x-www-form-urlencoded", description = "grant_type=client_credentials&client_id=…&client_secret=…[&scope=…]"),
    responses(
        (status = 200, description = "Token issued", body = TokenResponse),
        (status = 400, description = "invalid_request, unsupported_grant_type or invalid_scope", body = OAuthError),
        (status = 401, description = "invalid_client", body = OAuthError),
    )
)]
pub async fn token(State(app): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    if !app.auth.settings().oauth {
        return axum::response::IntoResponse::into_response(ApiError::NotFound(
            "OAuth 2.0 is disabled on this gateway; use HTTP Basic".into(),
        ));
    }
    let form_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"));
    if !form_type {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Content-Type must be application/x-www-form-urlencoded",
        );
    }
    let bytes = match read_limited(&headers, body).await {
        Ok(b) => b,
        Err(e) => return oauth_error(e.status(), "invalid_request", &e.to_string()),
    };
    let mut grant = None;
    let mut form_id = None;
    let mut form_secret = None;
    let mut scope = None;
    for (k, v) in form_urlencoded::parse(&bytes) {
        let slot = match k.as_ref() {
            "grant_type" => &mut grant,
            "client_id" => &mut form_id,
            "client_secret" => &mut form_secret,
            "scope" => &mut scope,
            _ => continue,
        };
        if slot.is_some() {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                &format!("parameter '{k}' is repeated"),
            );
        }
        *slot = Some(v.into_owned());
    }
    let Some(grant) = grant else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "missing parameter 'grant_type'",
        );
    };
    if grant != "client_credentials" {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "only grant_type=client_credentials is supported",
        );
    }
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.trim().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("basic")
                .then(|| parse_basic(rest.trim()))
        });
    let (id, secret) = match (basic, form_id, form_secret) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "client credentials given both in the header and in the body",
            );
        }
        (Some(Some(pair)), None, None) => pair,
        (Some(None), ..) => {
            return oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "malformed Basic credentials",
            );
        }
        (None, Some(id), Some(secret)) => (id, secret),
        (None, ..) => {
            return oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "client authentication failed: give client_id and client_secret",
            );
        }
    };
    let caller = match app.auth.check_client(&id, &secret).await {
        Ok(c) => c,
        Err(ApiError::Unauthorized(_)) => {
            return oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "client authentication failed",
            );
        }
        Err(e) => return axum::response::IntoResponse::into_response(e),
    };
    // Legacy model (docs/security.md): a scope is granted only to an application whose policies allow it
    // (`oauth=<value>`), whatever bots exist; the refusal is the same for every value, so it reveals none.
    let requested: Vec<String> = scope
        .as_deref()
        .unwrap_or("")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    if requested
        .iter()
        .any(|s| !iam::may_hold_oauth_scope(&caller.policies, s))
    {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "the requested scope is not granted to this client",
        );
    }
    match app.auth.issue_token(&caller.client_id, &requested) {
        Ok((token, expires_in)) => {
            let mut body = json!({"access_token": token, "token_type": "Bearer", "expires_in": expires_in});
            if !requested.is_empty() {
                body["scope"] = json!(requested.join(" "));
            }
            no_store(json_response(StatusCode::OK, &body))
        }
        Err(e) => axum::response::IntoResponse::into_response(e),
    }
}
