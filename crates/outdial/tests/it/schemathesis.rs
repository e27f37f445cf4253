//! The OpenAPI document says what the server does (docs/api.md): schemathesis (PyPI, installed by
//! `scripts/install.sh --test`) generates requests for every operation from the document the gateway serves and
//! checks the answers: no 5xx, only documented status codes, content types and headers, bodies that match their
//! schemas, schema-invalid requests refused, every schema-valid request accepted (or answered 404 / 409 for
//! objects that do not exist or conflict), authentication never ignored. A bounded run (fixed seed, 10 examples
//! per operation) with zero failures.

use crate::common::{ADMIN, Gateway};

#[tokio::test]
async fn the_openapi_document_matches_the_server() {
    let g = Gateway::start(
        "[[trunks]]\nname = \"t1\"\naddress = \"127.0.0.1:9\"\nkeepAliveSec = 0\n\
         [[bots]]\nname = \"Bot1\"\nbotUrl = \"http://127.0.0.1:9/bot\"\n",
    )
    .await;
    let auth = format!("{}:{}", ADMIN.0, ADMIN.1);
    let url = g.url("/openapi.json");
    // Run in the gateway's temporary folder: schemathesis keeps a cache where it runs.
    let out = tokio::process::Command::new("st")
        .current_dir(&g.dir)
        .args([
            "run",
            &url,
            "--auth",
            &auth,
            "--checks",
            "all",
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            "10",
            "--workers",
            "2",
            "--seed",
            "1",
            "--no-color",
            // Draining the gateway makes every later dialout and /readyz answer 503 by design: tested in
            // cluster::one_node_drained_by_the_api_while_the_other_serves.
            "--exclude-name",
            "POST /api/v1/admin/drain",
        ])
        .output()
        .await
        .expect("schemathesis (`st`) is installed: run scripts/install.sh --test");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found failures:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = crate::common::client()
        .get(&url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let operations: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|item| item.as_object().map_or(0, |m| m.len()))
        .sum::<usize>()
        - 1;
    assert!(
        report.contains(&format!("Tested: {operations}")),
        "every one of the {operations} operations but the drain is tested:\n{report}"
    );
    assert!(!g.log().contains("panicked"), "{}", g.log());
}
