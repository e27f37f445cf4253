//! Routes: one module per resource, each handler documented with `#[utoipa::path]` and registered through
//! `OpenApiRouter`, so the served routes and the OpenAPI document cannot drift apart.

mod admin;
mod applications;
mod bots;
mod cluster;
mod conversations;
mod dialout;
mod oauth;
mod ops;
mod trunks;

use crate::error::ApiError;
use crate::{AppState, openapi::ApiDoc};
use axum::Router;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::SwaggerUi;

fn documented() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(dialout::dialout))
        .routes(routes!(oauth::token))
        .routes(routes!(bots::list_bots, bots::create_bot))
        .routes(routes!(
            bots::get_bot,
            bots::replace_bot,
            bots::update_bot,
            bots::delete_bot
        ))
        .routes(routes!(bots::test_bot))
        .routes(routes!(trunks::list_trunks, trunks::create_trunk))
        .routes(routes!(
            trunks::get_trunk,
            trunks::replace_trunk,
            trunks::update_trunk,
            trunks::delete_trunk
        ))
        .routes(routes!(
            applications::list_applications,
            applications::create_application
        ))
        .routes(routes!(
            applications::get_application,
            applications::replace_application,
            applications::update_application,
            applications::delete_application
        ))
        .routes(routes!(conversations::list_conversations))
        .routes(routes!(
            conversations::get_conversation,
            conversations::hangup_conversation
        ))
        .routes(routes!(conversations::conversation_events))
        .routes(routes!(cluster::cluster_status))
        .routes(routes!(cluster::drain, cluster::resume))
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
        .routes(routes!(ops::metrics))
}

/// The OpenAPI document of every route (no state needed), as served at `/openapi.json`.
pub fn openapi_document() -> serde_json::Value {
    crate::openapi::tighten(&documented().split_for_parts().1)
}

/// The whole HTTP surface, with its OpenAPI document.
pub fn router_with_openapi(state: AppState) -> (Router, serde_json::Value) {
    let (api, doc) = documented().split_for_parts();
    let doc = crate::openapi::tighten(&doc);
    let served = std::sync::Arc::new(doc.clone());
    let router = api
        .route(
            "/openapi.json",
            axum::routing::get(move || {
                let served = served.clone();
                async move { axum::Json((*served).clone()) }
            }),
        )
        .merge(SwaggerUi::new("/docs").config(utoipa_swagger_ui::Config::from("/openapi.json")))
        .fallback(|| async { ApiError::NotFound("no such endpoint; see /docs for the API".into()) })
        .method_not_allowed_fallback(|| async { MethodNotAllowed })
        .layer(axum::middleware::from_fn(crate::metrics::track))
        .layer(axum::middleware::from_fn(protective_headers))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| {
            axum::response::IntoResponse::into_response(ApiError::internal("handler panicked"))
        }))
        .with_state(state);
    (router, doc)
}

/// docs/security.md: no page of the gateway (the `/docs` console included) may be framed by another site, and
/// no answer is sniffed into another content type.
async fn protective_headers(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::http::HeaderValue;
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert(
        "content-security-policy",
        HeaderValue::from_static("frame-ancestors 'none'"),
    );
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    r
}

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    router_with_openapi(state).0
}

struct MethodNotAllowed;

impl axum::response::IntoResponse for MethodNotAllowed {
    fn into_response(self) -> axum::response::Response {
        crate::error::json_response(
            axum::http::StatusCode::METHOD_NOT_ALLOWED,
            &serde_json::json!({"error": "method not allowed on this endpoint; see /docs for the API"}),
        )
    }
}
