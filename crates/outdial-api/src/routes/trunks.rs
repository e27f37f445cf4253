//! `/api/v1/trunks`: role `OUTDIAL/ADMIN`.

use super::admin::{self, Resource};
use super::dialout::ErrorBody;
use crate::AppState;
use crate::auth::Caller;
use crate::catalog::Snapshot;
use crate::error::{ApiError, ApiResult};
use async_trait::async_trait;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use outdial_core::Trunk;
use outdial_core::application::Role;
use outdial_core::iam;
use outdial_store::Kind;
use serde_json::Value;

#[async_trait]
impl Resource for Trunk {
    const KIND: Kind = Kind::Trunk;
    const NAME_FIELD: &'static str = "name";
    const SECRETS: &'static [&'static str] = &outdial_core::trunk::TRUNK_SECRETS;
    /// Digest answers go to whoever the trunk's address (or proxy) is.
    const SECRETS_BOUND_TO: &'static [(&'static str, &'static [&'static str])] =
        &[("address", &["password"]), ("outboundProxy", &["password"])];

    async fn build(input: &Value, _existing: Option<&Self>) -> ApiResult<Self> {
        Trunk::parse(input).map_err(|e| ApiError::BadRequest(e.to_string()))
    }
    fn key(&self) -> &str {
        &self.name
    }
    fn view(&self) -> Value {
        Trunk::view(self)
    }
    fn editable(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
    fn can_read(c: &Caller, _: &Self) -> bool {
        iam::allows_global(&c.policies, Role::Admin)
    }
    fn can_write(c: &Caller, _: &Self) -> bool {
        iam::allows_global(&c.policies, Role::Admin)
    }
    fn may_know_missing(c: &Caller, _: &str) -> bool {
        iam::allows_global(&c.policies, Role::Admin)
    }
    fn check(snap: &Snapshot, t: &Self) -> ApiResult<()> {
        if t.default
            && let Some(other) = snap.trunks.values().find(|o| o.default && o.name != t.name)
        {
            return Err(ApiError::Conflict(format!(
                "trunk '{}' is already the default trunk; unset its 'default' first",
                other.name
            )));
        }
        Ok(())
    }
    fn check_delete(snap: &Snapshot, name: &str) -> ApiResult<()> {
        let mut users: Vec<&str> = snap
            .bots
            .values()
            .filter(|b| b.trunk.as_deref() == Some(name))
            .map(|b| b.name.as_str())
            .collect();
        users.sort_unstable();
        if users.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Conflict(format!(
                "trunk '{name}' is used by bots: {}",
                users.join(", ")
            )))
        }
    }
}

/// List trunks.
#[utoipa::path(get, path = "/api/v1/trunks", tag = "trunks",
    responses((status = 200, description = "Trunks (passwords omitted)", body = [Trunk]), (status = 403, body = ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn list_trunks(State(app): State<AppState>, caller: Caller) -> ApiResult<Response> {
    if !iam::allows_global(&caller.policies, Role::Admin) {
        return Err(ApiError::Forbidden(format!(
            "application '{}' is not allowed to read trunks",
            caller.client_id
        )));
    }
    admin::list::<Trunk>(&app, &caller).await
}

/// Create a trunk.
#[utoipa::path(post, path = "/api/v1/trunks", tag = "trunks", request_body = Trunk,
    responses((status = 201, body = Trunk), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn create_trunk(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    admin::create::<Trunk>(&app, &caller, &headers, body).await
}

/// Read one trunk.
#[utoipa::path(get, path = "/api/v1/trunks/{name}", tag = "trunks", params(("name" = String, Path)),
    responses((status = 200, body = Trunk), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn get_trunk(
    State(app): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    admin::get::<Trunk>(&app, &caller, &name).await
}

/// Replace a trunk; an omitted `password` keeps its value.
#[utoipa::path(put, path = "/api/v1/trunks/{name}", tag = "trunks", params(("name" = String, Path)), request_body = Trunk,
    responses((status = 200, body = Trunk), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn replace_trunk(
    State(app): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    admin::replace::<Trunk>(&app, &caller, &name, &headers, body).await
}

/// Update a trunk with a JSON merge patch.
#[utoipa::path(patch, path = "/api/v1/trunks/{name}", tag = "trunks", params(("name" = String, Path)),
    request_body(content = Object, content_type = "application/merge-patch+json"),
    responses((status = 200, body = Trunk), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn update_trunk(
    State(app): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    admin::update::<Trunk>(&app, &caller, &name, &headers, body).await
}

/// Delete a trunk (refused while bots use it).
#[utoipa::path(delete, path = "/api/v1/trunks/{name}", tag = "trunks", params(("name" = String, Path)),
    responses((status = 204, description = "Deleted"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn delete_trunk(
    State(app): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    admin::delete::<Trunk>(&app, &caller, &name).await
}
