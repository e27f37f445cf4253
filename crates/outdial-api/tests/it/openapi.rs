//! The OpenAPI document is generated from the handlers; this snapshot shows every change to the contract in
//! review. Update with `INSTA_UPDATE=always cargo nextest run -p outdial-api -E "test(openapi)"` and read the diff.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly.

#[test]
fn openapi_document_snapshot() {
    let doc = serde_json::to_value(outdial_api::openapi_document()).unwrap();
    let paths: Vec<&String> = doc["paths"].as_object().unwrap().keys().collect();
    assert!(paths.iter().any(|p| *p == "/api/v1/actions/dialout"));
    insta::assert_json_snapshot!("openapi", doc);
}
