//! `/api/v1/bots`: roles `VAIC/BOTS/READ` and `VAIC/BOTS/WRITE`, scoped per bot.

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
use outdial_core::Bot;
use outdial_core::application::Role;
use outdial_core::iam;
use outdial_store::Kind;
use serde_json::Value;

#[async_trait]
impl Resource for Bot {
    const KIND: Kind = Kind::Bot;
    const NAME_FIELD: &'static str = "name";
    const SECRETS: &'static [&'static str] = &outdial_core::bot::BOT_SECRETS;
    /// The token and the OAuth access token go to `botUrl`; the client secret goes to `oauthTokenUrl`; the
    /// Direct Line secret to `directLineUrl`; the service account's access tokens to `apiEndpoint`.
    const SECRETS_BOUND_TO: &'static [(&'static str, &'static [&'static str])] = &[
        ("botUrl", &["token", "oauthClientSecret"]),
        ("oauthTokenUrl", &["oauthClientSecret"]),
        ("directLineUrl", &["botSecret"]),
        ("apiEndpoint", &["credentials"]),
    ];

    async fn build(input: &Value, _existing: Option<&Self>) -> ApiResult<Self> {
        Bot::parse(input).map_err(|e| ApiError::BadRequest(e.to_string()))
    }
    fn key(&self) -> &str {
        &self.name
    }
    fn view(&self) -> Value {
        Bot::view(self)
    }
    fn editable(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
    fn can_read(c: &Caller, b: &Self) -> bool {
        iam::allows_bot(&c.policies, Role::BotsRead, b) || iam::allows_bot(&c.policies, Role::BotsWrite, b)
    }
    fn can_write(c: &Caller, b: &Self) -> bool {
        iam::allows_bot(&c.policies, Role::BotsWrite, b)
    }
    fn may_know_missing(c: &Caller, name: &str) -> bool {
        iam::may_know_missing(&c.policies, Role::BotsRead, name)
            || iam::may_know_missing(&c.policies, Role::BotsWrite, name)
    }
    /// docs/security.md: choosing a bot's trunk needs `trunk=<name>` (or `*`) in a `VAIC/BOTS/WRITE` policy.
    fn authorize(c: &Caller, existing: Option<&Self>, b: &Self) -> ApiResult<()> {
        match &b.trunk {
            Some(t)
                if existing.and_then(|e| e.trunk.as_ref()) != Some(t)
                    && !iam::may_use_trunk(&c.policies, t) =>
            {
                Err(ApiError::Forbidden(format!(
                    "application '{}' is not allowed to put bots on trunk '{t}'",
                    c.client_id
                )))
            }
            _ => Ok(()),
        }
    }
    fn check(snap: &Snapshot, b: &Self) -> ApiResult<()> {
        match &b.trunk {
            // A well-formed body that names a trunk that does not exist: a conflict with the configuration.
            Some(t) if !snap.trunks.contains_key(t) => Err(ApiError::Conflict(format!(
                "request/trunk should name a configured trunk ('{t}' not found)"
            ))),
            _ => Ok(()),
        }
    }
}

/// List the bots the caller may read.
#[utoipa::path(get, path = "/api/v1/bots", tag = "bots",
    responses((status = 200, description = "Bots (secrets omitted)", body = [Bot]), (status = 401, body = ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn list_bots(State(app): State<AppState>, caller: Caller) -> ApiResult<Response> {
    admin::list::<Bot>(&app, &caller).await
}

/// Create a bot.
#[utoipa::path(post, path = "/api/v1/bots", tag = "bots", request_body = Bot,
    responses((status = 201, description = "Created (secrets omitted)", body = Bot), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, description = "Name taken", body = ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn create_bot(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    admin::create::<Bot>(&app, &caller, &headers, body).await
}

/// Read one bot.
#[utoipa::path(get, path = "/api/v1/bots/{name}", tag = "bots", params(("name" = String, Path)),
    responses((status = 200, body = Bot), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn get_bot(
    State(app): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    admin::get::<Bot>(&app, &caller, &name).await
}

/// Replace a bot. Write-only secrets that are omitted keep their values.
#[utoipa::path(put, path = "/api/v1/bots/{name}", tag = "bots", params(("name" = String, Path)), request_body = Bot,
    responses((status = 200, body = Bot), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn replace_bot(
    State(app): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    admin::replace::<Bot>(&app, &caller, &name, &headers, body).await
}

/// Update a bot with a JSON merge patch (RFC 7396): `null` removes a property.
#[utoipa::path(patch, path = "/api/v1/bots/{name}", tag = "bots", params(("name" = String, Path)),
    request_body(content = Object, content_type = "application/merge-patch+json"),
    responses((status = 200, body = Bot), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn update_bot(
    State(app): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    admin::update::<Bot>(&app, &caller, &name, &headers, body).await
}

/// Delete a bot.
#[utoipa::path(delete, path = "/api/v1/bots/{name}", tag = "bots", params(("name" = String, Path)),
    responses((status = 204, description = "Deleted"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn delete_bot(
    State(app): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    admin::delete::<Bot>(&app, &caller, &name).await
}

/// The result of a bot connection test.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct BotTest {
    /// Whether the bot answered its protocol's validation (AudioCodes Bot API: `GET botUrl`; Direct Line: a
    /// conversation started and ended; Dialogflow: the agent read).
    pub success: bool,
    /// Why not, when it did not: one sentence naming the cause (bad secret, unknown agent, wrong region, bot
    /// failing, unreachable).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Test the connection to a bot ("test connection"): outdial asks the bot to validate itself and says whether it
/// answered. A bot that is down is a `200` with `success: false` and the reason.
#[utoipa::path(post, path = "/api/v1/bots/{name}/test", tag = "bots", params(("name" = String, Path)),
    responses((status = 200, body = BotTest), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn test_bot(
    State(app): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    let bot = admin::load::<Bot>(&app, &caller, &name).await?;
    let result = match app.engine.test_bot(&bot).await {
        Ok(()) => BotTest {
            success: true,
            error: None,
        },
        Err(e) => BotTest {
            success: false,
            error: Some(e.to_string()),
        },
    };
    Ok(crate::error::json_response(
        axum::http::StatusCode::OK,
        &serde_json::to_value(result).map_err(ApiError::internal)?,
    ))
}
