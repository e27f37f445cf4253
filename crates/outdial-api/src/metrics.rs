//! Prometheus metrics: one process-wide recorder, rendered by `/metrics`.

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The recorder, installed on first use.
pub fn handle() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            // Fails only when another recorder was installed first; then ours renders nothing, which is visible.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// Counts requests by route template and status.
pub async fn track(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = req.method().as_str().to_string();
    let resp = next.run(req).await;
    metrics::counter!("outdial_http_requests_total", "method" => method, "route" => route, "status" => resp.status().as_u16().to_string())
        .increment(1);
    resp
}

/// One dialout answer, by result (`accepted`, `invalid`, `unauthorized`, `forbidden`, `not_found`, `rate_limited`,
/// `concurrency_limited`, `unavailable`, `error`, `replayed`).
pub fn dialout(result: &'static str) {
    metrics::counter!("outdial_dialouts_total", "result" => result).increment(1);
}

pub fn limit_rejected(bot: &str, limit: &'static str) {
    metrics::counter!("outdial_limit_rejections_total", "bot" => bot.to_string(), "limit" => limit)
        .increment(1);
}
