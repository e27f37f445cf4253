//! `/api/v1/conversations`: records, timelines and API hang-up (docs/api.md, "Conversations"). Reading needs
//! `VAIC/CALLS/READ` on the conversation's bot; hanging up needs `VAIC/BOTS/DIALOUT` on it.

use super::dialout::ErrorBody;
use crate::AppState;
use crate::auth::Caller;
use crate::engine::HangupOutcome;
use crate::error::{ApiError, ApiResult, json_response};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use outdial_core::application::Role;
use outdial_core::conversation::{Conversation, ConversationEvent, ConversationState, ConversationView};
use outdial_core::time::{iso, parse_iso};
use outdial_core::{Bot, iam};
use outdial_store::ConversationFilter;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::HashMap;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// A page of conversations, newest first.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConversationPage {
    pub conversations: Vec<ConversationView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Filters of the conversation list.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // Documents the parameters; the handler reads them from a map to reject unknown ones.
pub struct ListQuery {
    /// Only this bot's conversations.
    pub bot: Option<String>,
    /// A state (`accepted`, `dialing`, `ringing`, `answered`, `ended`, `failed`), or `completed` (= ended), or
    /// `live` (not yet ended); several comma-separated.
    #[param(
        pattern = "^(accepted|dialing|ringing|answered|ended|failed|completed|live)(,(accepted|dialing|ringing|answered|ended|failed|completed|live))*$"
    )]
    pub status: Option<String>,
    /// Created at or after (RFC 3339).
    pub since: Option<String>,
    /// Created before (RFC 3339).
    pub until: Option<String>,
    /// 1–500, default 50.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    pub limit: Option<String>,
    /// `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

fn bad(m: String) -> ApiError {
    ApiError::BadRequest(m)
}

/// The bot a conversation belongs to, for IAM: the configured one, or (deleted bot) one known only by name.
fn bot_for_iam(app: &AppState, conv: &Conversation) -> Bot {
    app.catalog
        .snapshot()
        .bots
        .get(&conv.bot)
        .map(|b| (**b).clone())
        .unwrap_or_else(|| {
            serde_json::from_value(json!({"name": conv.bot})).expect("every other bot field has a default")
        })
}

async fn load(app: &AppState, caller: &Caller, id: &str, role: Role) -> ApiResult<Conversation> {
    let id: Uuid = id
        .parse()
        .map_err(|_| bad(format!("conversation id '{id}' is not a UUID")))?;
    let conv = app
        .store
        .get_conversation(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("conversation '{id}' not found")))?;
    if iam::allows_bot(&caller.policies, role, &bot_for_iam(app, &conv)) {
        Ok(conv)
    } else {
        Err(ApiError::Forbidden(format!(
            "application '{}' is not allowed to {} conversations of bot '{}'",
            caller.client_id,
            if role == Role::Dialout { "hang up" } else { "read" },
            conv.bot
        )))
    }
}

/// Read a conversation record, with the delivery status of its notifications (`notifications`).
#[utoipa::path(get, path = "/api/v1/conversations/{id}", tag = "conversations", params(("id" = Uuid, Path)),
    responses((status = 200, body = ConversationView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn get_conversation(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let conv = load(&app, &caller, &id, Role::CallsRead).await?;
    let mut record = serde_json::to_value(conv.view()).map_err(ApiError::internal)?;
    let notifications: Vec<serde_json::Value> = app
        .store
        .notifications(conv.id)
        .await?
        .iter()
        .map(|n| {
            json!({"eventId": n.event_id, "sequence": n.sequence, "status": n.status, "attempts": n.attempts,
                   "lastError": n.last_error, "createdAt": iso(n.created_at), "deliveredAt": n.delivered_at.map(iso),
                   "nextAttemptAt": (n.status == outdial_store::OutboxStatus::Pending).then(|| iso(n.next_attempt_at))})
        })
        .collect();
    record["notifications"] = serde_json::Value::Array(notifications);
    Ok(json_response(StatusCode::OK, &record))
}

/// A conversation's timeline.
#[utoipa::path(get, path = "/api/v1/conversations/{id}/events", tag = "conversations", params(("id" = Uuid, Path)),
    responses((status = 200, body = [ConversationEvent]), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn conversation_events(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let conv = load(&app, &caller, &id, Role::CallsRead).await?;
    let events = app.store.events(conv.id).await?;
    Ok(json_response(
        StatusCode::OK,
        &serde_json::to_value(events).map_err(ApiError::internal)?,
    ))
}

/// Hang up a live conversation (it ends with reasonCode `error`, reason `ended by API`).
#[utoipa::path(delete, path = "/api/v1/conversations/{id}", tag = "conversations", params(("id" = Uuid, Path)),
    responses((status = 202, description = "Hanging up"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "Already ended, or run by another node", body = ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn hangup_conversation(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let conv = load(&app, &caller, &id, Role::Dialout).await?;
    if conv.state.is_terminal() {
        return Err(ApiError::Conflict(format!(
            "conversation '{}' has already ended",
            conv.id
        )));
    }
    match app.engine.hangup(conv.id).await {
        HangupOutcome::Ending => {
            tracing::info!(conversation = %conv.id, client = %caller.client_id, "hang-up requested through the API");
            Ok(json_response(
                StatusCode::ACCEPTED,
                &json!({"conversationId": conv.id, "state": "ending"}),
            ))
        }
        HangupOutcome::NotRunning => Err(ApiError::Conflict(format!(
            "conversation '{}' is not running on this node; it is ending or owned by another node",
            conv.id
        ))),
    }
}

fn parse_states(s: &str) -> ApiResult<Vec<ConversationState>> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim) {
        match part {
            "completed" => out.push(ConversationState::Ended),
            "live" => out.extend([
                ConversationState::Accepted,
                ConversationState::Dialing,
                ConversationState::Ringing,
                ConversationState::Answered,
            ]),
            other => out.push(ConversationState::parse(other).ok_or_else(|| {
                bad(format!(
                    "query parameter 'status' should be one of: {}, completed, live",
                    ConversationState::ALL.join(", ")
                ))
            })?),
        }
    }
    Ok(out)
}

/// `<creation time in ms>.<id>` (the pattern the OpenAPI document gives: `openapi_rules::CURSOR`).
fn encode_cursor(c: &Conversation) -> String {
    format!("{}.{}", c.created_at, c.id.hyphenated())
}

fn decode_cursor(s: &str) -> ApiResult<(i64, Uuid)> {
    s.split_once('.')
        .filter(|(at, id)| at.len() <= 15 && at.bytes().all(|b| b.is_ascii_digit()) && id.len() == 36)
        .and_then(|(at, id)| Some((at.parse().ok()?, Uuid::parse_str(id).ok()?)))
        .filter(|(_, id)| id.hyphenated().to_string() == s[s.len() - 36..])
        .ok_or_else(|| bad("query parameter 'cursor' is not a cursor returned by this endpoint".into()))
}

/// List conversations, newest first.
#[utoipa::path(get, path = "/api/v1/conversations", tag = "conversations", params(ListQuery),
    responses((status = 200, body = ConversationPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn list_conversations(
    State(app): State<AppState>,
    caller: Caller,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    const KNOWN: [&str; 6] = ["bot", "status", "since", "until", "limit", "cursor"];
    if let Some(k) = q.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(bad(format!(
            "unknown query parameter '{k}'; known: {}",
            KNOWN.join(", ")
        )));
    }
    let time = |name: &str| -> ApiResult<Option<i64>> {
        q.get(name)
            .map(|s| {
                parse_iso(s).ok_or_else(|| {
                    bad(format!(
                        "query parameter '{name}' should be an RFC 3339 date-time"
                    ))
                })
            })
            .transpose()
    };
    let limit = match q.get("limit") {
        None => 50,
        Some(s) => match s.parse::<u32>() {
            Ok(n) if (1..=500).contains(&n) => n,
            _ => {
                return Err(bad(
                    "query parameter 'limit' should be an integer from 1 to 500".into()
                ));
            }
        },
    };
    let bots_in = if iam::allows_global(&caller.policies, Role::CallsRead) {
        None
    } else {
        let snap = app.catalog.snapshot();
        Some(
            snap.bots
                .values()
                .filter(|b| iam::allows_bot(&caller.policies, Role::CallsRead, b))
                .map(|b| b.name.clone())
                .collect(),
        )
    };
    let filter = ConversationFilter {
        bot: q.get("bot").cloned(),
        bots_in,
        states: q.get("status").map(|s| parse_states(s)).transpose()?,
        since: time("since")?,
        until: time("until")?,
        after: q.get("cursor").map(|c| decode_cursor(c)).transpose()?,
        limit: limit + 1,
    };
    let mut rows = app.store.list_conversations(&filter).await?;
    let next_cursor = if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        rows.last().map(encode_cursor)
    } else {
        None
    };
    let page = ConversationPage {
        conversations: rows.iter().map(Conversation::view).collect(),
        next_cursor,
    };
    Ok(json_response(
        StatusCode::OK,
        &serde_json::to_value(page).map_err(ApiError::internal)?,
    ))
}
