//! Errors of the HTTP API.
//!
//! Policy: every error answer is `{"error": "<one sentence a dialer developer can act on>"}` with the status of
//! docs/api.md, "Dialing". Messages name the field, the value or the limit involved, never internals: an unexpected
//! failure is logged with an id and answered with a 500 that quotes that id.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

pub const WWW_AUTHENTICATE: &str = "Basic realm=\"outdial\", Bearer";
pub const JSON_CONTENT_TYPE: &str = "application/json;charset=UTF-8";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{message}")]
    /// `limit`: which limit refused (`rate`, `concurrency`), for metrics.
    TooManyRequests {
        message: String,
        retry_after: u64,
        limit: &'static str,
    },
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// An unexpected failure: logged in full, answered with an id to quote.
    pub fn internal(e: impl std::fmt::Display) -> ApiError {
        let id = uuid::Uuid::new_v4();
        tracing::error!(error_id = %id, "internal error: {e}");
        ApiError::Internal(format!(
            "internal error (id {id}); the gateway log has the details"
        ))
    }
}

impl From<outdial_store::StoreError> for ApiError {
    fn from(e: outdial_store::StoreError) -> Self {
        use outdial_store::StoreError as E;
        match e {
            E::Conflict(..) => ApiError::Conflict(e.to_string()),
            E::NotFound(..) => ApiError::NotFound(e.to_string()),
            E::Db(_) | E::DiskFull | E::TimedOut(_) | E::Unreachable(_) => {
                tracing::error!("store unavailable: {e}");
                ApiError::Unavailable("the gateway's database is not available; try again shortly".into())
            }
            other => ApiError::internal(other),
        }
    }
}

/// A JSON answer with the content type the reference product uses.
pub fn json_response(status: StatusCode, body: &serde_json::Value) -> Response {
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_CONTENT_TYPE));
    r
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let message = match &self {
            ApiError::Internal(m) => m.clone(),
            other => other.to_string(),
        };
        let mut r = json_response(self.status(), &json!({ "error": message }));
        match &self {
            ApiError::Unauthorized(_) => {
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(WWW_AUTHENTICATE),
                );
            }
            ApiError::TooManyRequests { retry_after, .. } => {
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
            }
            // Draining, a trunk down, the store away: try again shortly (or another node).
            ApiError::Unavailable(_) => {
                r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(5));
            }
            _ => {}
        }
        r
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
