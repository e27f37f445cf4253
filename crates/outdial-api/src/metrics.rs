//! Prometheus metrics: one process-wide recorder, rendered by `/metrics`.

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Histogram buckets (seconds): from a 5 ms notification lag to a 60 s recognition.
const BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0,
];

/// The `# HELP` text of every metric the gateway exports (docs/operations.md, "Metrics").
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "outdial_http_requests_total",
        "API requests by method, route template and status"
    );
    describe_counter!("outdial_dialouts_total", "Dialout answers by result");
    describe_counter!(
        "outdial_limit_rejections_total",
        "Dialouts refused by a bot's rate or concurrency limit"
    );
    describe_counter!(
        "outdial_notification_attempts_total",
        "Notification delivery attempts by outcome"
    );
    describe_counter!("outdial_notifications_failed_total", "Notifications given up");
    describe_histogram!(
        "outdial_notification_lag_seconds",
        "From a notification's creation to its delivery"
    );
    describe_gauge!(
        "outdial_trunk_up",
        "1 while a trunk answers keep-alive OPTIONS, 0 before and after"
    );
    describe_gauge!(
        "outdial_rtp_ports_free",
        "RTP port pairs free for new calls (0: dialouts are refused with 503)"
    );
    describe_gauge!("outdial_rtp_ports_total", "RTP port pairs of sip.rtp_ports");
    describe_gauge!("outdial_sip_dialogs", "SIP dialogs the stack tracks");
    describe_gauge!(
        "outdial_sip_transactions",
        "SIP transactions by state (an answered INVITE's stays 32 s after its 2xx, RFC 6026)"
    );
    describe_counter!(
        "outdial_trunk_probe_failures_total",
        "Keep-alive OPTIONS without an answer"
    );
    describe_counter!(
        "outdial_store_write_errors_total",
        "Conversation writes the store refused (retried)"
    );
    describe_histogram!("outdial_stt_seconds", "Time to recognise one utterance");
    describe_histogram!(
        "outdial_detection_latency_seconds",
        "From the answer to the machine-detection verdict"
    );
    describe_counter!(
        "outdial_detection_verdicts_total",
        "Machine-detection verdicts by result"
    );
    describe_counter!(
        "outdial_media_frames_dropped_total",
        "Audio frames dropped because a consumer was behind"
    );
    describe_counter!(
        "outdial_bot_audio_dropped_total",
        "Audio chunks to a streaming bot dropped (bot too slow)"
    );
    describe_counter!(
        "outdial_rtp_send_offset_packets_total",
        "RTP packets sent later than their schedule"
    );
    describe_gauge!(
        "outdial_rtp_send_offset_max_seconds",
        "Largest lateness of an RTP packet in the last interval"
    );
}

/// The recorder, installed on first use.
pub fn handle() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            // Histograms, not summaries: buckets aggregate across nodes and their quantiles stay ordered.
            let builder = PrometheusBuilder::new();
            let builder = builder
                .set_buckets(&BUCKETS)
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Fails only when another recorder was installed first; then ours renders nothing, which is visible.
            let _ = metrics::set_global_recorder(recorder);
            describe();
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
