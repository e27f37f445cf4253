//! The administration resources (bots, trunks, applications) share one flow: list, get, create, replace
//! (PUT), update (PATCH, RFC 7396 merge patch) and delete, with the validation of `outdial-core` (the same
//! as the configuration file), write-only secrets, and IAM per object.

use crate::AppState;
use crate::auth::Caller;
use crate::body::read_json;
use crate::catalog::Snapshot;
use crate::error::{ApiError, ApiResult, json_response};
use async_trait::async_trait;
use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use outdial_core::validate::merge_patch;
use outdial_store::Kind;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

#[async_trait]
pub trait Resource: Serialize + DeserializeOwned + Send + Sync + Sized + 'static {
    const KIND: Kind;
    /// The property that names the object (`name`, `clientId`).
    const NAME_FIELD: &'static str;
    /// Write-only properties that a PUT without them keeps.
    const SECRETS: &'static [&'static str];
    /// Where secrets go (docs/security.md): when one of these properties changes, the secrets listed with it are
    /// cleared unless the same request gives them again, so that a new address never receives the old secrets.
    const SECRETS_BOUND_TO: &'static [(&'static str, &'static [&'static str])] = &[];

    /// Validates a body into the object to store; `existing` is the stored one on PUT and PATCH.
    async fn build(input: &Value, existing: Option<&Self>) -> ApiResult<Self>;
    fn key(&self) -> &str;
    /// What the API returns.
    fn view(&self) -> Value;
    /// The object as an input body, secrets included (the base of a merge patch).
    fn editable(&self) -> Value;
    fn can_read(caller: &Caller, item: &Self) -> bool;
    fn can_write(caller: &Caller, item: &Self) -> bool;
    /// For a name that does not exist: 404 (true) or 403 (false).
    fn may_know_missing(caller: &Caller, name: &str) -> bool;
    /// Cross-object checks before storing (a bot's trunk exists).
    fn check(_snap: &Snapshot, _item: &Self) -> ApiResult<()> {
        Ok(())
    }
    /// Checks before deleting (a trunk still used by bots).
    fn check_delete(_snap: &Snapshot, _name: &str) -> ApiResult<()> {
        Ok(())
    }
    /// Checks a change of a stored object against the others: `new` is None for a delete (the last
    /// administrator cannot remove itself).
    fn check_change(_snap: &Snapshot, _existing: &Self, _new: Option<&Self>) -> ApiResult<()> {
        Ok(())
    }
    /// Permissions a write needs beyond [`Resource::can_write`] (a bot's trunk): `existing` is None on create.
    fn authorize(_caller: &Caller, _existing: Option<&Self>, _new: &Self) -> ApiResult<()> {
        Ok(())
    }
}

/// Clears from `merged` the secrets bound to a property whose value changed from `old`, unless `given` (the
/// request's own body) has them ([`Resource::SECRETS_BOUND_TO`]).
fn drop_stale_secrets<R: Resource>(old: &Value, merged: &mut Value, given: &Value) {
    let Value::Object(m) = merged else { return };
    for (field, secrets) in R::SECRETS_BOUND_TO {
        if old.get(*field) == m.get(*field) {
            continue;
        }
        for s in *secrets {
            if given.get(*s).is_none() && m.remove(*s).is_some() {
                tracing::info!(
                    "{} '{}': {s} cleared because {field} changed",
                    noun::<R>(),
                    m.get(R::NAME_FIELD)
                        .and_then(serde_json::Value::as_str)
                        .unwrap_or("")
                );
            }
        }
    }
}

fn noun<R: Resource>() -> &'static str {
    R::KIND.noun()
}

fn forbidden<R: Resource>(caller: &Caller, action: &str, name: &str) -> ApiError {
    ApiError::Forbidden(format!(
        "application '{}' is not allowed to {action} {} '{name}'",
        caller.client_id,
        noun::<R>()
    ))
}

pub(crate) async fn load<R: Resource>(app: &AppState, caller: &Caller, name: &str) -> ApiResult<R> {
    match app.store.get_object(R::KIND, name).await? {
        Some(doc) => {
            let item: R = serde_json::from_value(doc).map_err(ApiError::internal)?;
            if R::can_read(caller, &item) {
                Ok(item)
            } else {
                Err(forbidden::<R>(caller, "read", name))
            }
        }
        None if R::may_know_missing(caller, name) => {
            Err(ApiError::NotFound(format!("{} '{name}' not found", noun::<R>())))
        }
        None => Err(forbidden::<R>(caller, "read", name)),
    }
}

pub async fn list<R: Resource>(app: &AppState, caller: &Caller) -> ApiResult<Response> {
    let mut out = Vec::new();
    for doc in app.store.list_objects(R::KIND).await? {
        let item: R = serde_json::from_value(doc).map_err(ApiError::internal)?;
        if R::can_read(caller, &item) {
            out.push(item.view());
        }
    }
    Ok(json_response(StatusCode::OK, &Value::Array(out)))
}

pub async fn get<R: Resource>(app: &AppState, caller: &Caller, name: &str) -> ApiResult<Response> {
    Ok(json_response(
        StatusCode::OK,
        &load::<R>(app, caller, name).await?.view(),
    ))
}

pub async fn create<R: Resource>(
    app: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let (_, input) = read_json(headers, body).await?;
    let item = R::build(&input, None).await?;
    if !R::can_write(caller, &item) {
        return Err(forbidden::<R>(caller, "create", item.key()));
    }
    R::authorize(caller, None, &item)?;
    R::check(&app.catalog.snapshot(), &item)?;
    app.store
        .insert_object(
            R::KIND,
            item.key(),
            &serde_json::to_value(&item).map_err(ApiError::internal)?,
        )
        .await?;
    app.catalog.reload().await?;
    tracing::info!(client = %caller.client_id, "{} '{}' created", noun::<R>(), item.key());
    Ok(json_response(StatusCode::CREATED, &item.view()))
}

fn check_name<R: Resource>(input: &mut Value, name: &str) -> ApiResult<()> {
    let Value::Object(m) = input else {
        return Err(ApiError::BadRequest("request should be object".into()));
    };
    match m.get(R::NAME_FIELD) {
        None => {
            m.insert(R::NAME_FIELD.into(), Value::String(name.into()));
            Ok(())
        }
        Some(Value::String(s)) if s == name => Ok(()),
        Some(_) => Err(ApiError::BadRequest(format!(
            "request/{} should be equal to the name in the path ('{name}'); objects cannot be renamed",
            R::NAME_FIELD
        ))),
    }
}

async fn store_update<R: Resource>(
    app: &AppState,
    caller: &Caller,
    existing: &R,
    item: R,
) -> ApiResult<Response> {
    if !R::can_write(caller, existing) || !R::can_write(caller, &item) {
        return Err(forbidden::<R>(caller, "change", item.key()));
    }
    R::authorize(caller, Some(existing), &item)?;
    let snap = app.catalog.snapshot();
    R::check(&snap, &item)?;
    R::check_change(&snap, existing, Some(&item))?;
    app.store
        .replace_object(
            R::KIND,
            item.key(),
            &serde_json::to_value(&item).map_err(ApiError::internal)?,
        )
        .await?;
    app.catalog.reload().await?;
    tracing::info!(client = %caller.client_id, "{} '{}' changed", noun::<R>(), item.key());
    Ok(json_response(StatusCode::OK, &item.view()))
}

pub async fn replace<R: Resource>(
    app: &AppState,
    caller: &Caller,
    name: &str,
    headers: &HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let (_, mut input) = read_json(headers, body).await?;
    check_name::<R>(&mut input, name)?;
    let existing = load::<R>(app, caller, name).await?;
    let old = existing.editable();
    let given = input.clone();
    if let (Value::Object(new), Value::Object(old)) = (&mut input, &old) {
        for s in R::SECRETS {
            if !new.contains_key(*s)
                && let Some(v) = old.get(*s)
            {
                new.insert((*s).to_string(), v.clone());
            }
        }
    }
    drop_stale_secrets::<R>(&old, &mut input, &given);
    let item = R::build(&input, Some(&existing)).await?;
    store_update(app, caller, &existing, item).await
}

pub async fn update<R: Resource>(
    app: &AppState,
    caller: &Caller,
    name: &str,
    headers: &HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let (_, patch) = read_json(headers, body).await?;
    if !patch.is_object() {
        return Err(ApiError::BadRequest("request should be object".into()));
    }
    let existing = load::<R>(app, caller, name).await?;
    let old = existing.editable();
    let mut merged = old.clone();
    // docs/security.md: a secret that is an object (a service-account key, speech credentials) is replaced whole,
    // never merged: a merge could send its old secrets to a new address given inside it.
    if let (Value::Object(m), Value::Object(p)) = (&mut merged, &patch) {
        for s in R::SECRETS {
            if p.get(*s).is_some_and(Value::is_object) {
                m.remove(*s);
            }
        }
    }
    merge_patch(&mut merged, &patch);
    drop_stale_secrets::<R>(&old, &mut merged, &patch);
    check_name::<R>(&mut merged, name)?;
    let item = R::build(&merged, Some(&existing))
        .await
        .map_err(|e| patch_error(e, &patch))?;
    store_update(app, caller, &existing, item).await
}

/// A merged object that fails validation: 400 when a field the patch sets is wrong, 409 when the patch is well
/// formed but leaves the stored object invalid (RFC 5789 §2.2, "conflicting state"; e.g. a bot's `type` changed
/// to one that needs a `botUrl` it does not have).
fn patch_error(e: ApiError, patch: &Value) -> ApiError {
    let ApiError::BadRequest(msg) = e else {
        return e;
    };
    let field = msg
        .strip_prefix("request/")
        .and_then(|rest| rest.split(['/', ' ']).next());
    match field {
        Some(f) if patch.get(f).is_some_and(|v| !v.is_null()) => ApiError::BadRequest(msg),
        _ => ApiError::Conflict(format!("the patched object would not be valid: {msg}")),
    }
}

pub async fn delete<R: Resource>(app: &AppState, caller: &Caller, name: &str) -> ApiResult<Response> {
    let existing = load::<R>(app, caller, name).await?;
    if !R::can_write(caller, &existing) {
        return Err(forbidden::<R>(caller, "delete", name));
    }
    let snap = app.catalog.snapshot();
    R::check_delete(&snap, name)?;
    R::check_change(&snap, &existing, None)?;
    app.store.delete_object(R::KIND, name).await?;
    app.catalog.reload().await?;
    tracing::info!(client = %caller.client_id, "{} '{name}' deleted", noun::<R>());
    Ok(StatusCode::NO_CONTENT.into_response())
}
