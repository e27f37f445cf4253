//! `POST /api/v1/actions/dialout` (docs/api.md, "Dialing").

use crate::auth::Caller;
use crate::body::read_json;
use crate::engine::AcceptedCall;
use crate::error::{ApiError, ApiResult, json_response};
use crate::{AppState, metrics};
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use outdial_core::application::Role;
use outdial_core::conversation::Conversation;
use outdial_core::dialout::{DialoutRequest, MachineDetection};
use outdial_core::iam;
use outdial_core::time::now_ms;
use outdial_limits::{Lease, LimitError, Limits, Scope, Subject};
use outdial_store::{Created, IdempotencyRecord};
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::time::Duration;
use utoipa::ToSchema;
use uuid::Uuid;

/// The answer to an accepted dial request.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DialoutResponse {
    /// UUID of the new conversation.
    pub conversation_id: Uuid,
}

/// An error answer.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// One sentence a dialer developer can act on.
    pub error: String,
}

const IDEMPOTENCY_TTL_MS: i64 = 24 * 3600 * 1000;

/// Place an outbound call and connect it to a bot.
///
/// 200 only means the call was triggered; the outcome arrives by notification to `notifyUrl` and in the
/// conversation record.
#[utoipa::path(
    post,
    path = "/api/v1/actions/dialout",
    tag = "dialout",
    request_body(content = DialoutRequest, content_type = "application/json"),
    params(("Idempotency-Key" = Option<String>, Header, description = "Repeats with the same key within 24 h return the first answer; ≤ 255 visible ASCII characters")),
    responses(
        (status = 200, description = "The call was triggered", body = DialoutResponse),
        (status = 400, description = "Validation failure, or machine detection disabled for the bot's trunk", body = ErrorBody),
        (status = 401, description = "Missing or invalid credentials", body = ErrorBody),
        (status = 403, description = "Not allowed to dial out for this bot", body = ErrorBody),
        (status = 404, description = "Bot not found", body = ErrorBody),
        (status = 409, description = "Idempotency-Key reused with a different body", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 429, description = "Rate or concurrency limit of the bot reached; see Retry-After", body = ErrorBody),
        (status = 503, description = "Draining, or no usable trunk", body = ErrorBody),
    ),
    security(("basic" = []), ("bearer" = []))
)]
pub async fn dialout(State(app): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    // The caller is authenticated here rather than by an extractor so that every answer is counted.
    let auth = headers
        .get(axum::http::header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or(""));
    let result = match app.auth.authenticate(auth).await {
        Ok(caller) => handle(&app, &caller, &headers, body).await,
        Err(e) => Err(e),
    };
    match result {
        Ok((id, replayed)) => {
            metrics::dialout(if replayed { "replayed" } else { "accepted" });
            let mut r = json_response(StatusCode::OK, &json!({ "conversationId": id }));
            if replayed {
                r.headers_mut()
                    .insert("idempotent-replayed", HeaderValue::from_static("true"));
            }
            r
        }
        Err(e) => {
            metrics::dialout(match &e {
                ApiError::BadRequest(_)
                | ApiError::PayloadTooLarge(_)
                | ApiError::UnsupportedMediaType(_) => "invalid",
                ApiError::Unauthorized(_) => "unauthorized",
                ApiError::Forbidden(_) => "forbidden",
                ApiError::NotFound(_) => "not_found",
                ApiError::Conflict(_) => "conflict",
                ApiError::TooManyRequests { limit: "rate", .. } => "rate_limited",
                ApiError::TooManyRequests { .. } => "concurrency_limited",
                ApiError::Unavailable(_) => "unavailable",
                ApiError::Internal(_) => "error",
            });
            axum::response::IntoResponse::into_response(e)
        }
    }
}

fn idempotency_key(headers: &HeaderMap) -> ApiResult<Option<String>> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    match v.to_str() {
        Ok(s) if !s.is_empty() && s.len() <= 255 && s.bytes().all(|b| b.is_ascii_graphic() || b == b' ') => {
            Ok(Some(s.to_string()))
        }
        _ => Err(ApiError::BadRequest(
            "Idempotency-Key header should be 1 to 255 visible ASCII characters".into(),
        )),
    }
}

/// Returns the conversation id and whether it is a replay of an earlier request.
async fn handle(app: &AppState, caller: &Caller, headers: &HeaderMap, body: Body) -> ApiResult<(Uuid, bool)> {
    let key = idempotency_key(headers)?;
    let (bytes, value) = read_json(headers, body).await?;
    let mut req = DialoutRequest::parse(&value).map_err(|e| ApiError::BadRequest(e.to_string()))?;

    let snap = app.catalog.snapshot();
    let Some(bot) = snap.bots.get(&req.bot).cloned() else {
        return Err(
            if iam::may_know_missing(&caller.policies, Role::Dialout, &req.bot) {
                ApiError::NotFound(format!("bot '{}' not found", req.bot))
            } else {
                forbidden(caller, &req.bot)
            },
        );
    };
    if !iam::allows_bot(&caller.policies, Role::Dialout, &bot)
        && !iam::legacy_scope_allows(&caller.policies, &bot, &caller.scopes)
    {
        return Err(forbidden(caller, &bot.name));
    }
    // The bot's configuration decides these (not the body alone): a conflict with it is 409.
    req.resolve_caller(&bot)
        .map_err(|e| ApiError::Conflict(e.to_string()))?;
    let trunk = snap.trunk_for(&bot).map_err(ApiError::Unavailable)?;
    if req.machine_detection != MachineDetection::Disabled && !trunk.machine_detection {
        return Err(ApiError::Conflict(format!(
            "machine detection is disabled for trunk '{}' of bot '{}'; use machineDetection 'disabled'",
            trunk.name, bot.name
        )));
    }
    if app.is_draining() {
        return Err(ApiError::Unavailable(
            "the gateway is shutting down and accepts no new calls".into(),
        ));
    }
    app.engine
        .trunk_usable(&trunk)
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;

    let now = now_ms();
    let body_hash = hex(&Sha256::digest(&bytes));
    if let Some(k) = &key
        && let Some(prev) = app
            .store
            .find_idempotency(&caller.client_id, k, now - IDEMPOTENCY_TTL_MS)
            .await?
    {
        return replay(prev, &body_hash, k);
    }

    let id = Uuid::now_v7();
    // The bot's limits and its trunk's, in one admission (docs/api.md, docs/cluster.md).
    let expiry = Duration::from_secs(u64::from(bot.dialout_concurrent_calls_expiration_seconds));
    let subjects = [
        Subject::new(
            Scope::Bot,
            &bot.name,
            Limits {
                per_second: bot.dialout_limit_per_second,
                max_concurrent: bot.dialout_max_concurrent_calls,
                lease_expiry: expiry,
            },
        ),
        Subject::new(
            Scope::Trunk,
            &trunk.name,
            Limits {
                per_second: trunk.max_calls_per_second,
                max_concurrent: trunk.max_concurrent_calls,
                // A trunk's lease lives as long as the longest call may.
                lease_expiry: expiry.max(Duration::from_secs(4 * 3600)),
            },
        ),
    ];
    if let Err(e) = app.limiter.admit(&subjects, id).await {
        return Err(match &e {
            LimitError::Unavailable(m) => {
                tracing::error!("limiter unavailable: {m}");
                ApiError::Unavailable(
                    "the gateway cannot check dial limits right now (the cluster's limit store cannot be reached); \
                     try again shortly"
                        .into(),
                )
            }
            LimitError::Rate { scope, .. } | LimitError::Concurrency { scope, .. } => {
                let limit = match (&e, scope) {
                    (LimitError::Rate { .. }, Scope::Bot) => "rate",
                    (_, Scope::Bot) => "concurrency",
                    (LimitError::Rate { .. }, Scope::Trunk) => "trunk_rate",
                    (_, Scope::Trunk) => "trunk_concurrency",
                };
                metrics::limit_rejected(&bot.name, limit);
                ApiError::TooManyRequests {
                    message: e.to_string(),
                    retry_after: e.retry_after_secs(),
                    limit,
                }
            }
        });
    }
    let lease = Lease::of(app.limiter.clone(), &subjects, id);

    let conversation = Conversation::new(id, &caller.client_id, req, now);
    let record = key.as_ref().map(|k| IdempotencyRecord {
        client_id: caller.client_id.clone(),
        key: k.clone(),
        body_hash: body_hash.clone(),
        conversation_id: id,
        created_at: now,
    });
    // On any failure below the lease is dropped, which gives the slot back.
    match app
        .store
        .create_conversation(&conversation, record.as_ref(), now - IDEMPOTENCY_TTL_MS)
        .await?
    {
        Created::Existing(prev) => replay(prev, &body_hash, key.as_deref().unwrap_or_default()),
        Created::New => {
            tracing::info!(conversation = %id, bot = %bot.name, client = %caller.client_id, "dialout accepted");
            let notify_secret = snap
                .apps
                .get(&caller.client_id)
                .and_then(|a| a.notify_secret.clone())
                .or_else(|| bot.notify_secret.clone());
            let call = AcceptedCall {
                conversation,
                bot: (*bot).clone(),
                trunk: (*trunk).clone(),
                lease,
                notify_secret,
            };
            app.engine.start(call).await;
            Ok((id, false))
        }
    }
}

fn replay(prev: IdempotencyRecord, body_hash: &str, key: &str) -> ApiResult<(Uuid, bool)> {
    if prev.body_hash == body_hash {
        Ok((prev.conversation_id, true))
    } else {
        Err(ApiError::Conflict(format!(
            "Idempotency-Key '{key}' was already used with a different request body"
        )))
    }
}

fn forbidden(caller: &Caller, bot: &str) -> ApiError {
    ApiError::Forbidden(format!(
        "application '{}' is not allowed to dial out for bot '{bot}'",
        caller.client_id
    ))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
