//! The cluster's nodes and the drain of one node (docs/cluster.md), for administrators.

use super::dialout::ErrorBody;
use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, json_response};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use outdial_core::application::Role;
use outdial_core::iam;
use outdial_core::time::{iso, now_ms};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

/// What a node's heartbeat says of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    /// Beats, takes dialouts.
    Up,
    /// Beats, takes no new dialouts (drained or stopping); its calls go on.
    Draining,
    /// No heartbeat for longer than `cluster.node_timeout_sec`: its calls are (or were) taken over.
    Lost,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeView {
    pub id: String,
    pub state: NodeState,
    /// ISO 8601.
    pub started_at: String,
    pub heartbeat_at: String,
    /// Milliseconds since the last heartbeat.
    pub heartbeat_age_ms: i64,
    /// Calls the node ran at its last heartbeat.
    pub live_calls: i64,
    pub draining: bool,
    /// Where its API listens, as the node said.
    pub api_url: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterView {
    /// The node that answered.
    pub node: String,
    pub nodes: Vec<NodeView>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DrainView {
    pub node: String,
    pub draining: bool,
    /// Calls this node runs now.
    pub live_calls: usize,
}

fn admin_only(caller: &Caller, what: &str) -> ApiResult<()> {
    if iam::allows_global(&caller.policies, Role::Admin) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "application '{}' is not allowed to {what}",
            caller.client_id
        )))
    }
}

/// The nodes of the cluster: heartbeat age, live calls, drain state.
#[utoipa::path(get, path = "/api/v1/cluster", tag = "cluster",
    responses((status = 200, body = ClusterView), (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn cluster_status(State(app): State<AppState>, caller: Caller) -> ApiResult<Response> {
    admin_only(&caller, "read the cluster's nodes")?;
    let now = now_ms();
    let lost_after = app.node_timeout.as_millis() as i64;
    let nodes = app
        .store
        .nodes()
        .await?
        .into_iter()
        .map(|n| {
            let age = (now - n.heartbeat_at).max(0);
            let state = if age > lost_after {
                NodeState::Lost
            } else if n.draining {
                NodeState::Draining
            } else {
                NodeState::Up
            };
            NodeView {
                state,
                started_at: iso(n.started_at),
                heartbeat_at: iso(n.heartbeat_at),
                heartbeat_age_ms: age,
                live_calls: n.live_calls,
                draining: n.draining,
                api_url: n.api_url,
                id: n.id,
            }
        })
        .collect();
    let view = ClusterView {
        node: app.store.node().to_string(),
        nodes,
    };
    Ok(json_response(StatusCode::OK, &json!(view)))
}

fn drain_view(app: &AppState) -> DrainView {
    DrainView {
        node: app.store.node().to_string(),
        draining: app.is_draining(),
        live_calls: app.engine.live_calls(),
    }
}

/// Drains this node: new dialouts get 503 and `/readyz` fails (the load balancer moves away), while its calls go
/// on to their end. The process keeps running; `DELETE` takes dialouts again.
#[utoipa::path(post, path = "/api/v1/admin/drain", tag = "cluster",
    responses((status = 202, body = DrainView), (status = 403, body = ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn drain(State(app): State<AppState>, caller: Caller) -> ApiResult<Response> {
    admin_only(&caller, "drain the gateway")?;
    if app.drain_by_admin() {
        tracing::info!(by = %caller.client_id, "drained by an administrator: no new dialouts on this node");
    }
    Ok(json_response(StatusCode::ACCEPTED, &json!(drain_view(&app))))
}

/// Ends an administrator's drain: this node takes dialouts again (not while it is shutting down: 409).
#[utoipa::path(delete, path = "/api/v1/admin/drain", tag = "cluster",
    responses((status = 200, body = DrainView), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn resume(State(app): State<AppState>, caller: Caller) -> ApiResult<Response> {
    admin_only(&caller, "drain the gateway")?;
    if !app.resume() {
        return Err(ApiError::Conflict(
            "the gateway is shutting down; it takes no dialouts again".into(),
        ));
    }
    tracing::info!(by = %caller.client_id, "drain ended by an administrator: this node takes dialouts");
    Ok(json_response(StatusCode::OK, &json!(drain_view(&app))))
}
