//! Microsoft Bot Framework over Direct Line 3.0 (docs/bots.md, "Microsoft Bot Framework") against the local Direct
//! Line service of outdial-sim: the start event and the end as the seed shows them, our own echoed activities
//! ignored, the WebSocket stream reconnected with the watermark, tokens refreshed and replaced when expired, and
//! the operator's connection test.

use crate::common;
use crate::frameworks::{DL_SECRET, Framework, Service, dial_seed, gateway, with_callee};

use common::{ADMIN, status};
use outdial_sim::bot::Script;
use outdial_testkit::Sipp;
use serde_json::{Value, json};

fn fake(s: &Service) -> &outdial_sim::directline::FakeDirectLine {
    match s {
        Service::Dl(d) => d,
        _ => unreachable!(),
    }
}

/// A Direct Line bot that greets and hangs up, its calls answered by sipp.
async fn greeting_bot() -> (Sipp, Service, common::Gateway) {
    let sipp = Sipp::uas("uas_answer_wait_bye.xml", &[]);
    let (svc, g) = gateway(
        Framework::DirectLine,
        Script::GreetAndHangUp,
        &format!("127.0.0.1:{}", sipp.port),
        "",
    )
    .await;
    (sipp, svc, g)
}

#[tokio::test]
async fn the_start_event_and_the_end_are_the_seeds() {
    let (sipp, svc, g) = greeting_bot().await;
    let (id, got) = dial_seed(&g).await;
    let done = status(&got, "completed").await;
    assert_eq!(done["reasonCode"], "bot-disconnected", "{done}");
    assert_eq!(done["botOperationResult"], "greeted", "{done}");
    assert_eq!(done["botOperationData"], "name=Alice", "{done}");
    let mut sent = Vec::new();
    for _ in 0..30 {
        sent = fake(&svc).received(&id);
        if sent.iter().any(|a| a["type"] == "endOfConversation") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // The seed's Microsoft Bot Framework example, field by field.
    let start = &sent[0];
    assert_eq!(start["type"], "event");
    assert_eq!(start["name"], "channel");
    assert_eq!(start["value"], "telephony");
    assert_eq!(start["channelData"]["callee"], "+123456789");
    assert_eq!(start["channelData"]["caller"], "1-800-111-111");
    assert_eq!(
        start["channelData"]["dialoutMetadata"],
        json!({"participantName": "Alice"})
    );
    assert_eq!(start["from"]["id"], id.as_str());
    assert_eq!(start["locale"], "en-US");
    let end = sent.last().unwrap();
    assert_eq!(end["type"], "endOfConversation", "{sent:?}");
    assert_eq!(end["channelData"]["reasonCode"], "bot-disconnected");
    assert_eq!(end["channelData"]["reason"], "greeted and done");
    assert_eq!(end["text"], "greeted and done");
    // The greeting was spoken once: the echoes of our own activities (in the stream too) were not acted on.
    let ev = common::events(&g, &id).await;
    let prompts = ev.iter().filter(|e| e["kind"] == "prompt").count();
    assert_eq!(prompts, 1, "{ev:?}");
    assert_eq!(sipp.exit_code(), 0);
}

/// Every stream socket is dropped after its first activity set, and tokens live 2 s: the conversation goes on by
/// reconnecting with the watermark and refreshing the token.
#[tokio::test]
async fn the_stream_is_reconnected_and_the_token_refreshed() {
    let (_sim, svc, g) = with_callee(Framework::DirectLine, Script::Ask, "").await;
    fake(&svc).drop_streams(true);
    fake(&svc).set_token_secs(2);
    let (_, got) = dial_seed(&g).await;
    let done = status(&got, "completed").await;
    assert_eq!(done["botOperationResult"], "yes", "{done}");
    let reqs = fake(&svc).requests();
    assert!(
        reqs.iter()
            .any(|r| r.starts_with("GET /conversations/{id}?watermark=") && !r.ends_with('=')),
        "reconnected with a watermark: {reqs:?}"
    );
    assert!(reqs.iter().any(|r| r == "POST /tokens/refresh"), "{reqs:?}");
    assert!(
        !reqs.iter().any(|r| r == "GET /activities"),
        "no polling while the stream works: {reqs:?}"
    );
}

/// Tokens that are expired when handed out: each request falls back to the secret once and the call goes on.
#[tokio::test]
async fn an_expired_token_is_replaced_by_the_secret() {
    let (sipp, svc, g) = greeting_bot().await;
    fake(&svc).set_token_secs(0);
    let (_, got) = dial_seed(&g).await;
    let done = status(&got, "completed").await;
    assert_eq!(done["botOperationResult"], "greeted", "{done}");
    assert_eq!(sipp.exit_code(), 0);
}

/// `POST /api/v1/bots/Bot1/test`.
pub async fn bot_test(g: &common::Gateway) -> Value {
    g.post("/api/v1/bots/Bot1/test", ADMIN, &json!({}))
        .await
        .json()
        .await
        .unwrap()
}

/// `PATCH /api/v1/bots/Bot1`.
pub async fn patch_bot(g: &common::Gateway, body: Value) {
    let r = g
        .send(reqwest::Method::PATCH, "/api/v1/bots/Bot1", ADMIN, Some(&body))
        .await;
    assert!(r.status().is_success(), "{}", r.status());
}

#[tokio::test]
async fn the_connection_test_names_what_is_wrong() {
    let (svc, g) = gateway(Framework::DirectLine, Script::Silent, "127.0.0.1:9", "").await;
    assert_eq!(bot_test(&g).await, json!({"success": true}));
    patch_bot(&g, json!({"botSecret": "wrong"})).await;
    let bad = bot_test(&g).await;
    assert_eq!(bad["success"], false);
    let why = bad["error"].as_str().unwrap();
    assert!(
        why.contains("refused the secret") && why.contains("check botSecret"),
        "{why}"
    );
    assert!(
        !why.contains("wrong") && !why.contains(DL_SECRET),
        "no secret in the answer: {why}"
    );
    // The same from the command line.
    // (tokio's Command: the Direct Line service runs on this test's runtime.)
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_outdial"))
        .args(["bots", "test", "Bot1", "--url", &g.base, "--client-id", ADMIN.0])
        .env("OUTDIAL_CLIENT_SECRET", ADMIN.1)
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), why);
    patch_bot(&g, json!({"botSecret": DL_SECRET})).await;
    fake(&svc).set_script(Script::Broken);
    let broken = bot_test(&g).await;
    let why = broken["error"].as_str().unwrap();
    assert!(why.contains("the bot failed") && why.contains("502"), "{why}");
    patch_bot(
        &g,
        json!({"directLineUrl": "http://127.0.0.1:9", "botSecret": DL_SECRET}),
    )
    .await;
    let down = bot_test(&g).await;
    assert!(
        down["error"].as_str().unwrap().starts_with("bot unreachable: "),
        "{down}"
    );
}
