//! outdial's HTTP API: the dialer-facing contract of docs/api.md (authentication, IAM, dialout,
//! conversations, administration) and the operational endpoints, with the OpenAPI document generated from
//! the same handlers that serve the routes.

pub mod auth;
pub mod body;
pub mod catalog;
pub mod engine;
pub mod error;
pub mod metrics;
pub mod openapi;
mod openapi_rules;
mod routes;

use auth::{Authenticator, Caller};
use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use catalog::Catalog;
use engine::CallEngine;
use error::ApiError;
use metrics_exporter_prometheus::PrometheusHandle;
use outdial_limits::Limiter;
use outdial_store::Store;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

pub use routes::{openapi_document, router, router_with_openapi};

/// Everything the handlers share.
pub struct App {
    pub store: Arc<dyn Store>,
    pub catalog: Arc<Catalog>,
    pub auth: Authenticator,
    pub limiter: Arc<dyn Limiter>,
    pub engine: Arc<dyn CallEngine>,
    pub metrics: PrometheusHandle,
    draining: AtomicBool,
}

impl App {
    pub fn new(
        store: Arc<dyn Store>,
        catalog: Arc<Catalog>,
        auth: Authenticator,
        limiter: Arc<dyn Limiter>,
        engine: Arc<dyn CallEngine>,
    ) -> Self {
        App {
            store,
            catalog,
            auth,
            limiter,
            engine,
            metrics: metrics::handle(),
            draining: AtomicBool::new(false),
        }
    }

    /// Stop accepting dialouts (graceful shutdown); `/readyz` turns unready.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }
}

pub type AppState = Arc<App>;

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .map(|v| v.to_str().unwrap_or(""));
        state.auth.authenticate(value).await
    }
}
