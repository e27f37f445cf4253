//! Operational endpoints: liveness, readiness, Prometheus metrics.

use crate::AppState;
use crate::error::json_response;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "Up")))]
pub async fn healthz() -> Response {
    json_response(StatusCode::OK, &json!({"status": "ok"}))
}

/// Ready to accept calls: store reachable, SIP transport up, not draining. Anyone gets the status; `checks`
/// (store, SIP, dial limits, draining, each trunk's state) only with valid credentials (docs/security.md).
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, description = "Ready; `checks` for authenticated callers"),
        (status = 503, description = "Not ready; `checks` says why, for authenticated callers")))]
pub async fn readyz(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let store = match app.store.ping().await {
        Ok(()) => "ok".to_string(),
        Err(e) => format!("error: {e}"),
    };
    let engine = match app.engine.ready() {
        Ok(()) => "ok".to_string(),
        Err(e) => format!("error: {e}"),
    };
    // docs/cluster.md: the cluster's limit store (Redis) answers, or the node checks limits alone (degraded).
    let limiter = match app.limiter.health().await {
        Ok(None) => "ok".to_string(),
        Ok(Some(why)) => format!("degraded: {why}"),
        Err(e) => format!("error: {e}"),
    };
    let draining = app.is_draining();
    let trunks: serde_json::Map<String, serde_json::Value> = app
        .engine
        .trunk_states()
        .into_iter()
        .map(|(name, state)| (name, state.into()))
        .collect();
    let ok = store == "ok" && engine == "ok" && !limiter.starts_with("error") && !draining;
    let mut body = json!({"status": if ok { "ready" } else { "not ready" }});
    let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    if authorization.is_some() && app.auth.authenticate(authorization).await.is_ok() {
        body["checks"] =
            json!({"store": store, "sip": engine, "limits": limiter, "draining": draining, "trunks": trunks});
    }
    json_response(
        if ok {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        &body,
    )
}

/// Prometheus metrics (text format).
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus text", content_type = "text/plain")))]
pub async fn metrics(State(app): State<AppState>) -> Response {
    let mut r = app.metrics.render().into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    r
}
