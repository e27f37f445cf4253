//! Dialogflow CX and ES (docs/bots.md, "Dialogflow") against the local detectIntent and token services of
//! outdial-sim: the WELCOME event and the machine-detection events as the seed shows them, the end of the
//! interaction after the prompt, one access token for every call, regional endpoints, and the operator's
//! connection test naming what is wrong.

use crate::common;
use crate::directline::{bot_test, patch_bot};
use crate::frameworks::{Framework, Service, dial_seed, gateway, seed_request, with_callee};

use common::{receiver, status};
use outdial_sim::bot::Script;
use outdial_sim::dialogflow::FakeDialogflow;
use serde_json::json;

fn fake(s: &Service) -> &FakeDialogflow {
    match s {
        Service::Df(d) => d,
        _ => unreachable!(),
    }
}

/// The seed's WELCOME example (ES: the event's own shape; CX: the event, with the fields as session parameters
/// and under `event-WELCOME`), and the machine-detection events, field by field.
#[tokio::test]
async fn the_events_are_the_seeds() {
    for fw in [Framework::DialogflowCx, Framework::DialogflowEs] {
        let (_sim, svc, g) = with_callee(fw, Script::Ask, "").await;
        let (url, got) = receiver().await;
        let mut body = seed_request(&url);
        body["target"] = json!("tel:+123456781"); // an answering machine
        body["machineDetection"] = json!("detect");
        body["voicemailEndTimeoutSec"] = json!(4);
        let id = common::dialout(&g, &body).await;
        let done = status(&got, "completed").await;
        assert_eq!(done["botOperationResult"], "voicemail", "{fw:?}: {done}");
        let reqs = fake(&svc).requests();
        let (path, welcome) = &reqs[0];
        assert!(
            path.ends_with(&format!("/sessions/{id}:detectIntent")),
            "one session per conversation: {path}"
        );
        let fields = json!({"participantName": "Alice"});
        if fw == Framework::DialogflowEs {
            let e = &welcome["queryInput"]["event"];
            assert_eq!(e["name"], "WELCOME");
            assert_eq!(e["languageCode"], "en-US");
            assert_eq!(e["parameters"]["callee"], "+123456781");
            assert_eq!(e["parameters"]["caller"], "1-800-111-111");
            assert_eq!(e["parameters"]["dialoutMetadata"], fields);
        } else {
            assert_eq!(welcome["queryInput"]["event"], json!({"event": "WELCOME"}));
            assert_eq!(welcome["queryInput"]["languageCode"], "en-US");
            let p = &welcome["queryParams"]["parameters"];
            assert_eq!(
                p["event-WELCOME"]["dialoutMetadata"]["participantName"], "Alice",
                "{p}"
            );
            assert_eq!(p["event-WELCOME"]["caller"], "1-800-111-111");
            assert_eq!(p["dialoutMetadata"], fields);
        }
        let md: Vec<&serde_json::Value> = reqs[1..].iter().map(|(_, b)| b).collect();
        let values: Vec<&str> = md
            .iter()
            .filter_map(|b| match fw {
                Framework::DialogflowEs => {
                    assert_eq!(b["queryInput"]["event"]["name"], "machineDetection", "{b}");
                    assert_eq!(b["queryInput"]["event"]["languageCode"], "en-US");
                    b["queryInput"]["event"]["parameters"]["value"].as_str()
                }
                _ => {
                    assert_eq!(b["queryInput"]["event"]["event"], "machineDetection", "{b}");
                    b["queryParams"]["parameters"]["event-machineDetection"]["value"].as_str()
                }
            })
            .collect();
        assert_eq!(
            values,
            ["voicemail-prompt-start", "voicemail-prompt-end-beep"],
            "{fw:?}"
        );
    }
}

/// `endInteraction` hangs up once the prompt before it has played: the goodbye is heard in full, then the BYE.
#[tokio::test]
async fn the_end_of_the_interaction_waits_for_the_prompt() {
    let (_sim, _svc, g) = with_callee(Framework::DialogflowCx, Script::GreetAndHangUp, "").await;
    let (id, got) = dial_seed(&g).await;
    let done = status(&got, "completed").await;
    assert_eq!(done["reasonCode"], "bot-disconnected", "{done}");
    assert_eq!(done["botOperationResult"], "greeted", "{done}");
    let ev = common::events(&g, &id).await;
    assert!(ev.iter().any(|e| e["kind"] == "prompt"), "{ev:?}");
    // "Hello Alice, this is the reference bot. Goodbye." takes about 3 s: the BYE came after it.
    let duration = done["callDuration"].as_f64().unwrap();
    assert!(duration > 2.5, "hung up after {duration} s");
}

/// One access token serves every call of the bot (and the connection test).
#[tokio::test]
async fn one_access_token_for_every_call() {
    let (_sim, svc, g) = with_callee(Framework::DialogflowEs, Script::GreetAndHangUp, "").await;
    for _ in 0..2 {
        let (_, got) = dial_seed(&g).await;
        let done = status(&got, "completed").await;
        assert_eq!(done["botOperationResult"], "greeted", "{done}");
    }
    for _ in 0..2 {
        assert_eq!(bot_test(&g).await, json!({"success": true}));
    }
    assert_eq!(
        fake(&svc).token_requests(),
        1,
        "one JWT exchange, then the cached token"
    );
}

/// Regional agents: `location` picks the regional path; the wrong region is named as such.
#[tokio::test]
async fn regional_agents_and_what_the_connection_test_says() {
    let (svc, g) = gateway(
        Framework::DialogflowCx,
        Script::Silent,
        "127.0.0.1:9",
        "location = \"europe-west2\"\n",
    )
    .await;
    fake(&svc).set_location("europe-west2");
    assert_eq!(bot_test(&g).await, json!({"success": true}));
    fake(&svc).set_location("us-central1");
    let why = bot_test(&g).await["error"].as_str().unwrap().to_string();
    assert!(
        why.contains("another region") && why.contains("check location"),
        "{why}"
    );
    fake(&svc).set_location("europe-west2");
    patch_bot(&g, json!({"agentId": "no-such-agent"})).await;
    let why = bot_test(&g).await["error"].as_str().unwrap().to_string();
    assert!(why.contains("no such agent") && why.contains("404"), "{why}");
    patch_bot(
        &g,
        json!({"agentId": outdial_sim::dialogflow::AGENT, "environment": "production"}),
    )
    .await;
    assert_eq!(
        bot_test(&g).await,
        json!({"success": true}),
        "an environment of the agent"
    );
    patch_bot(&g, json!({"environment": "nope"})).await;
    let why = bot_test(&g).await["error"].as_str().unwrap().to_string();
    assert!(
        why.contains("no such agent") && why.contains("environment"),
        "{why}"
    );
    patch_bot(&g, json!({"environment": null, "projectId": "someone-else"})).await;
    let why = bot_test(&g).await["error"].as_str().unwrap().to_string();
    assert!(
        why.contains("may not use this agent") && why.contains("403"),
        "{why}"
    );
    patch_bot(&g, json!({"projectId": outdial_sim::dialogflow::PROJECT})).await;
    fake(&svc).set_script(Script::Broken);
    let why = bot_test(&g).await["error"].as_str().unwrap().to_string();
    assert!(why.contains("Dialogflow failed (HTTP 503 UNAVAILABLE)"), "{why}");
    // A key Google does not take (the token endpoint answers invalid_grant).
    fake(&svc).set_script(Script::Unauthorized);
    let why = bot_test(&g).await["error"].as_str().unwrap().to_string();
    assert!(
        why.contains("Google refused the service account key") && why.contains("invalid_grant"),
        "{why}"
    );
}

/// The CX speech settings per bot: with `noSpeechTimeoutSec`, silence after the greeting sends `noUserInput` (here
/// the agent then hangs up with `no-input`), without the bot setting `userNoInputTimeoutMS`.
#[tokio::test]
async fn the_no_speech_timeout_is_set_per_bot() {
    let (_sim, svc, g) = with_callee(
        Framework::DialogflowCx,
        Script::Ask,
        "noSpeechTimeoutSec = 1.5\nendpointerSensitivity = 90\n",
    )
    .await;
    let (url, got) = receiver().await;
    let mut body = seed_request(&url);
    body["target"] = json!("tel:+15550107"); // answers and says nothing
    common::dialout(&g, &body).await;
    let done = status(&got, "completed").await;
    assert_eq!(done["botOperationResult"], "no-input", "{done}");
    let events: Vec<String> = fake(&svc)
        .requests()
        .iter()
        .filter_map(|(_, b)| b["queryInput"]["event"]["event"].as_str().map(String::from))
        .collect();
    assert_eq!(events, ["WELCOME", "noUserInput"]);
    let bot: serde_json::Value = g
        .get("/api/v1/bots/Bot1", common::ADMIN)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (
            bot["noSpeechTimeoutSec"].as_f64(),
            bot["endpointerSensitivity"].as_u64()
        ),
        (Some(1.5), Some(90))
    );
}

/// A passing `503 UNAVAILABLE` is retried once: the caller never notices.
#[tokio::test]
async fn a_passing_unavailable_is_retried_once() {
    let (_sim, svc, g) = with_callee(Framework::DialogflowEs, Script::GreetAndHangUp, "").await;
    fake(&svc).fail_next(1);
    let (_, got) = dial_seed(&g).await;
    let done = status(&got, "completed").await;
    assert_eq!(done["botOperationResult"], "greeted", "{done}");
    let welcomes = fake(&svc)
        .requests()
        .iter()
        .filter(|(_, b)| b["queryInput"]["event"]["name"] == "WELCOME")
        .count();
    assert_eq!(welcomes, 2, "the WELCOME event, then its retry");
}

/// A digit the person presses reaches a CX agent as a `dtmf` query (ES: a `DTMF` event with the digit as `value`).
#[tokio::test]
async fn a_pressed_digit_is_a_dtmf_query() {
    for fw in [Framework::DialogflowCx, Framework::DialogflowEs] {
        let sipp = outdial_testkit::Sipp::uas("uas_play_dtmf.xml", &["-mi", "127.0.0.1"]);
        let (svc, g) = gateway(fw, Script::Silent, &format!("127.0.0.1:{}", sipp.port), "").await;
        let (id, _got) = dial_seed(&g).await;
        let mut digits = None;
        for _ in 0..50 {
            digits = fake(&svc).requests().iter().find_map(|(_, b)| match fw {
                Framework::DialogflowCx => b["queryInput"]["dtmf"]["digits"].as_str().map(String::from),
                _ => (b["queryInput"]["event"]["name"] == "DTMF")
                    .then(|| {
                        b["queryInput"]["event"]["parameters"]["value"]
                            .as_str()
                            .map(String::from)
                    })
                    .flatten(),
            });
            if digits.is_some() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(
            digits.as_deref(),
            Some("5"),
            "{fw:?}: {:?}",
            fake(&svc).requests()
        );
        common::hang_up(&g, &id).await;
    }
}
