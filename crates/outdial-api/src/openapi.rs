//! The OpenAPI document's frame: title, security schemes, tags. Paths and schemas come from the handlers.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "outdial",
        description = "Outbound voice gateway: dial a number, detect who answered, connect a bot, report the outcome. \
                       Wire-compatible with AudioCodes VoiceAI Connect's dialout API.",
        license(name = "Apache-2.0")
    ),
    modifiers(&Security),
    tags(
        (name = "dialout", description = "Place calls"),
        (name = "auth", description = "OAuth 2.0 client credentials"),
        (name = "conversations", description = "Call records, timelines, hang-up"),
        (name = "bots", description = "Bot configuration"),
        (name = "trunks", description = "SIP trunks"),
        (name = "applications", description = "API clients and their policies"),
        (name = "operations", description = "Health, readiness, metrics"),
    )
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Basic).build()),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}
