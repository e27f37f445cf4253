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
        (name = "cluster", description = "The nodes of a cluster, and draining one of them"),
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

/// Makes the generated document say exactly what the server does (docs/api.md), for the rules that are the same
/// for every operation, so that no handler can forget one:
/// * a JSON request body refuses unknown properties and `null` values (`additionalProperties: false`, no `null`
///   in property types): the validation of `outdial-core` does;
/// * an operation with a JSON body answers 415 to another Content-Type and 400 to a body it cannot read;
/// * an operation with a UUID path parameter answers 400 to a malformed one;
/// * an operation that needs credentials answers 401 without them.
///
/// The document is served as JSON, so that nothing of what [`crate::openapi_rules`] adds (`propertyNames`,
/// `anyOf`, …) is lost to the generator's types.
pub fn tighten(doc: &utoipa::openapi::OpenApi) -> serde_json::Value {
    let mut v = serde_json::to_value(doc).unwrap_or_default();
    tighten_json(&mut v);
    crate::openapi_rules::apply(&mut v);
    v
}

fn error_response(description: &str) -> serde_json::Value {
    serde_json::json!({"description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}})
}

fn tighten_json(v: &mut serde_json::Value) {
    use serde_json::Value;
    let mut body_schemas = Vec::new();
    if let Some(paths) = v["paths"].as_object_mut() {
        for item in paths.values_mut() {
            let Some(ops) = item.as_object_mut() else { continue };
            for op in ops.values_mut() {
                let json_body = op["requestBody"]["content"]
                    .as_object()
                    .map(|c| {
                        for media in c.values() {
                            if let Some(r) = media["schema"]["$ref"].as_str() {
                                body_schemas.push(r.rsplit('/').next().unwrap_or_default().to_string());
                            }
                        }
                        c.keys().any(|k| k.ends_with("json"))
                    })
                    .unwrap_or(false);
                let uuid_path = op["parameters"].as_array().is_some_and(|ps| {
                    ps.iter()
                        .any(|p| p["in"] == "path" && p["schema"]["format"] == "uuid")
                });
                let secured = op.get("security").is_some();
                let Some(responses) = op["responses"].as_object_mut() else {
                    continue;
                };
                if json_body {
                    responses
                        .entry("415")
                        .or_insert_with(|| error_response("Content-Type is not JSON"));
                    responses
                        .entry("400")
                        .or_insert_with(|| error_response("The body is not valid"));
                }
                if uuid_path {
                    responses
                        .entry("400")
                        .or_insert_with(|| error_response("The id is not a UUID"));
                }
                if secured {
                    responses
                        .entry("401")
                        .or_insert_with(|| error_response("Missing or bad credentials"));
                }
            }
        }
    }
    let Some(schemas) = v["components"]["schemas"].as_object_mut() else {
        return;
    };
    for name in body_schemas {
        let Some(Value::Object(s)) = schemas.get_mut(&name) else {
            continue;
        };
        s.insert("additionalProperties".into(), Value::Bool(false));
        if let Some(Value::Object(props)) = s.get_mut("properties") {
            for p in props.values_mut() {
                if let Some(Value::Array(alts)) = p.get_mut("oneOf") {
                    alts.retain(|a| a.get("type") != Some(&Value::String("null".into())));
                    if let [only] = alts.as_slice() {
                        let only = only.clone();
                        if let Value::Object(m) = p {
                            m.remove("oneOf");
                            if let Value::Object(o) = only {
                                m.extend(o);
                            }
                        }
                    }
                }
                if let Some(Value::Array(types)) = p.get_mut("type") {
                    types.retain(|t| t != "null");
                    if let [only] = types.as_slice() {
                        let only = only.clone();
                        p["type"] = only;
                    }
                }
            }
        }
    }
}
