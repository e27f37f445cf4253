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
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

pub use routes::{openapi_document, router, router_with_openapi};

/// Everything the handlers share.
pub struct App {
    pub store: Arc<dyn Store>,
    pub catalog: Arc<Catalog>,
    pub auth: Authenticator,
    pub limiter: Arc<dyn Limiter>,
    pub engine: Arc<dyn CallEngine>,
    pub metrics: PrometheusHandle,
    /// Serving, drained by an administrator, or shutting down ([`Drain`]).
    drain: AtomicU8,
    /// After this long without a heartbeat a node is lost (docs/cluster.md).
    pub node_timeout: Duration,
}

/// Why a node takes no new dialouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drain {
    Serving = 0,
    /// `POST /api/v1/admin/drain`: calls go on, new ones go to other nodes; `DELETE` resumes.
    Drained = 1,
    /// SIGTERM: the graceful stop; there is no way back.
    ShuttingDown = 2,
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
            drain: AtomicU8::new(Drain::Serving as u8),
            node_timeout: Duration::from_secs(10),
        }
    }

    /// Stop accepting dialouts (graceful shutdown); `/readyz` turns unready.
    pub fn start_draining(&self) {
        self.drain.store(Drain::ShuttingDown as u8, Ordering::SeqCst);
    }

    /// An administrator's drain (none when already shutting down); true when the node drains now.
    pub fn drain_by_admin(&self) -> bool {
        let from = Drain::Serving as u8;
        let to = Drain::Drained as u8;
        self.drain
            .compare_exchange(from, to, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
            || self.drain_state() == Drain::Drained
    }

    /// Ends an administrator's drain; false when the node is shutting down.
    pub fn resume(&self) -> bool {
        let from = Drain::Drained as u8;
        let to = Drain::Serving as u8;
        self.drain
            .compare_exchange(from, to, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
            || self.drain_state() == Drain::Serving
    }

    pub fn drain_state(&self) -> Drain {
        match self.drain.load(Ordering::SeqCst) {
            0 => Drain::Serving,
            1 => Drain::Drained,
            _ => Drain::ShuttingDown,
        }
    }

    pub fn is_draining(&self) -> bool {
        self.drain_state() != Drain::Serving
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
