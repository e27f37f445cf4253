//! `/api/v1/applications`: role `OUTDIAL/ADMIN`. Client secrets are hashed with Argon2id and never returned.

use super::admin::{self, Resource};
use super::dialout::ErrorBody;
use crate::AppState;
use crate::auth::{Caller, hash_secret_blocking};
use crate::catalog::Snapshot;
use crate::error::{ApiError, ApiResult};
use async_trait::async_trait;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use outdial_core::application::{
    Application, ApplicationInput, ApplicationView, Role, ValidApplication, identity_after,
};
use outdial_core::iam;
use outdial_store::Kind;
use serde_json::{Value, json};

#[async_trait]
impl Resource for Application {
    const KIND: Kind = Kind::Application;
    const NAME_FIELD: &'static str = "clientId";
    const SECRETS: &'static [&'static str] = &["notifySecret"];

    async fn build(input: &Value, existing: Option<&Self>) -> ApiResult<Self> {
        let v = ValidApplication::parse(input).map_err(|e| ApiError::BadRequest(e.to_string()))?;
        let secret_hash = match (&v.client_secret, existing) {
            (Some(secret), _) => hash_secret_blocking(secret.clone()).await?,
            (None, Some(old)) => old.secret_hash.clone(),
            (None, None) => {
                return Err(ApiError::BadRequest(
                    "request should have required property 'clientSecret'".into(),
                ));
            }
        };
        let (uid, secret_generation) = identity_after(existing, &secret_hash);
        Ok(Application {
            client_id: v.client_id,
            name: v.name,
            enabled: v.enabled,
            policies: v.policies,
            notify_secret: v.notify_secret,
            secret_hash,
            uid: Some(uid),
            secret_generation,
        })
    }
    fn key(&self) -> &str {
        &self.client_id
    }
    fn view(&self) -> Value {
        serde_json::to_value(Application::view(self)).unwrap_or(Value::Null)
    }
    fn editable(&self) -> Value {
        let mut v = json!({"clientId": self.client_id, "name": self.name, "enabled": self.enabled, "policies": self.policies});
        if let Some(s) = &self.notify_secret {
            v["notifySecret"] = json!(s);
        }
        v
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
    /// docs/security.md: the last enabled application holding `OUTDIAL/ADMIN *` cannot be deleted, disabled or
    /// lose that policy — nobody could administer the gateway any more.
    fn check_change(snap: &Snapshot, existing: &Self, new: Option<&Self>) -> ApiResult<()> {
        let was_admin = is_admin(existing);
        let stays_admin = new.is_some_and(is_admin);
        if !was_admin || stays_admin {
            return Ok(());
        }
        let others = snap
            .apps
            .values()
            .filter(|a| a.client_id != existing.client_id && is_admin(a))
            .count();
        if others == 0 {
            let what = if new.is_none() {
                "deleted"
            } else {
                "disabled or lose OUTDIAL/ADMIN"
            };
            return Err(ApiError::Conflict(format!(
                "application '{}' is the last administrator and cannot be {what}: make another application an \
                 administrator first (a locked-out installation is recovered with `outdial apps reset-admin`)",
                existing.client_id
            )));
        }
        Ok(())
    }
}

/// An enabled application that may administer everything.
fn is_admin(a: &Application) -> bool {
    a.enabled && iam::allows_global(&a.policies, Role::Admin)
}

fn admin_only(caller: &Caller) -> ApiResult<()> {
    if iam::allows_global(&caller.policies, Role::Admin) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "application '{}' is not allowed to manage applications",
            caller.client_id
        )))
    }
}

/// List applications.
#[utoipa::path(get, path = "/api/v1/applications", tag = "applications",
    responses((status = 200, body = [ApplicationView]), (status = 403, body = ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn list_applications(State(app): State<AppState>, caller: Caller) -> ApiResult<Response> {
    admin_only(&caller)?;
    admin::list::<Application>(&app, &caller).await
}

/// Create an application (an API client).
#[utoipa::path(post, path = "/api/v1/applications", tag = "applications", request_body = ApplicationInput,
    responses((status = 201, body = ApplicationView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn create_application(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    admin_only(&caller)?;
    admin::create::<Application>(&app, &caller, &headers, body).await
}

/// Read one application.
#[utoipa::path(get, path = "/api/v1/applications/{clientId}", tag = "applications", params(("clientId" = String, Path)),
    responses((status = 200, body = ApplicationView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn get_application(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    admin_only(&caller)?;
    admin::get::<Application>(&app, &caller, &id).await
}

/// Replace an application; an omitted `clientSecret` or `notifySecret` keeps its value.
#[utoipa::path(put, path = "/api/v1/applications/{clientId}", tag = "applications", params(("clientId" = String, Path)),
    request_body = ApplicationInput,
    responses((status = 200, body = ApplicationView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, description = "The last administrator cannot be removed", body = ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn replace_application(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    admin_only(&caller)?;
    admin::replace::<Application>(&app, &caller, &id, &headers, body).await
}

/// Update an application with a JSON merge patch; a new `clientSecret` takes effect at once.
#[utoipa::path(patch, path = "/api/v1/applications/{clientId}", tag = "applications", params(("clientId" = String, Path)),
    request_body(content = Object, content_type = "application/merge-patch+json"),
    responses((status = 200, body = ApplicationView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, description = "The last administrator cannot be removed", body = ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn update_application(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    admin_only(&caller)?;
    admin::update::<Application>(&app, &caller, &id, &headers, body).await
}

/// Delete an application; its tokens stop working at once.
#[utoipa::path(delete, path = "/api/v1/applications/{clientId}", tag = "applications", params(("clientId" = String, Path)),
    responses((status = 204, description = "Deleted"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, description = "The last administrator cannot be removed", body = ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn delete_application(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    admin_only(&caller)?;
    admin::delete::<Application>(&app, &caller, &id).await
}
