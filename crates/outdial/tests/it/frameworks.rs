//! One conversation-level suite over every bot framework (docs/bots.md), so the connectors cannot drift apart:
//! the AudioCodes Bot API (the reference bot), Microsoft Bot Framework (the local Direct Line 3.0 service) and
//! Dialogflow CX and ES (the local detectIntent and token services). Behind each is the same scripted bot
//! ([`Script`]), spoken in its framework's own encoding. The far end is the simulated callee (who says "Yes
//! please." once the bot has asked) or sipp.

use crate::common;

use common::{Gateway, receiver, status};
use outdial_sim::bot::{RefBot, Script};
use outdial_sim::dialogflow::FakeDialogflow;
use outdial_sim::directline::FakeDirectLine;
use outdial_testkit::Sipp;
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framework {
    AcApi,
    DirectLine,
    DialogflowCx,
    DialogflowEs,
}

/// The framework's service, scripted.
pub enum Service {
    Ac(#[allow(dead_code)] RefBot),
    Dl(FakeDirectLine),
    Df(FakeDialogflow),
}

pub const DL_SECRET: &str = "dl-secret-0123456789";

/// A running service for `fw` with `script`, and the `[[bots]]` lines of a bot `Bot1` that uses it.
pub async fn service(fw: Framework, script: Script) -> (Service, String) {
    let any = "127.0.0.1:0".parse().unwrap();
    match fw {
        Framework::AcApi => {
            let b = outdial_sim::bot::start(any, script).await.unwrap();
            let cfg = format!("type = \"ac-api\"\nbotUrl = \"{}\"\n", b.url);
            (Service::Ac(b), cfg)
        }
        Framework::DirectLine => {
            let d = outdial_sim::directline::start(any, DL_SECRET, script)
                .await
                .unwrap();
            let cfg = format!(
                "type = \"directline\"\ndirectLineUrl = \"{}\"\nbotSecret = \"{DL_SECRET}\"\n",
                d.url
            );
            (Service::Dl(d), cfg)
        }
        Framework::DialogflowCx | Framework::DialogflowEs => {
            let d = outdial_sim::dialogflow::start(any, script).await.unwrap();
            let cfg = d.bot_config(fw == Framework::DialogflowCx);
            (Service::Df(d), cfg)
        }
    }
}

/// The gateway with trunk `sbc` to `far_end` and bot `Bot1` of `fw`.
pub async fn gateway(fw: Framework, script: Script, far_end: &str, extra: &str) -> (Service, Gateway) {
    let (svc, bot) = service(fw, script).await;
    let g = Gateway::start(&format!(
        "[[trunks]]\nname = \"sbc\"\naddress = \"{far_end}\"\nkeepAliveSec = 0\n\n\
         [[bots]]\nname = \"Bot1\"\n{bot}{extra}\n"
    ))
    .await;
    (svc, g)
}

pub fn seed_request(notify_url: &str) -> Value {
    json!({"bot": "Bot1", "target": "tel:+123456789", "caller": "1-800-111-111", "notifyUrl": notify_url,
           "metadata": {"participantName": "Alice"}})
}

/// The gateway of [`gateway`] whose calls reach a simulated callee (kept alive by the returned `Sim`).
pub async fn with_callee(fw: Framework, script: Script, extra: &str) -> (outdial_sim::Sim, Service, Gateway) {
    let sim = simulated_callee().await;
    let (svc, g) = gateway(fw, script, &sim.addr.to_string(), extra).await;
    (sim, svc, g)
}

/// Dials the seed's request ([`seed_request`]) with a fresh receiver: the conversation's id and its notifications.
pub async fn dial_seed(g: &Gateway) -> (String, common::Got) {
    let (url, got) = receiver().await;
    (common::dialout(g, &seed_request(&url)).await, got)
}

pub async fn simulated_callee() -> outdial_sim::Sim {
    outdial_sim::start("127.0.0.1:0".parse().unwrap(), outdial_sim::SimOptions::default())
        .await
        .unwrap()
}

/// Greeting, one turn (the person's "Yes please." recognised and sent), hang-up with the bot's result.
async fn greeting_turn_and_result(fw: Framework) {
    let (_sim, _svc, g) = with_callee(fw, Script::Ask, "").await;
    let (_, got) = dial_seed(&g).await;
    let answered = status(&got, "answered").await;
    assert_eq!(answered["sequence"], 1, "{answered}");
    let done = status(&got, "completed").await;
    assert_eq!(done["reasonCode"], "bot-disconnected", "{fw:?}: {done}");
    assert_eq!(done["reason"], "answered yes", "{fw:?}: {done}");
    assert_eq!(done["botOperationResult"], "yes", "{fw:?}: {done}");
    let heard = done["botOperationData"].as_str().unwrap().to_lowercase();
    assert!(
        heard.contains("yes"),
        "{fw:?}: the bot got what the person said: {heard}"
    );
}

/// An answering machine: the bot hears `voicemail-prompt-start` and `voicemail-prompt-end-beep`, leaves its
/// message after the beep and hangs up with `voicemail`.
async fn machine_detection(fw: Framework) {
    let (_sim, _svc, g) = with_callee(fw, Script::Ask, "").await;
    let (url, got) = receiver().await;
    let body = json!({"bot": "Bot1", "target": "tel:+15550101", "caller": "1-800-111-111", "notifyUrl": url,
                      "machineDetection": "detect", "voicemailEndTimeoutSec": 4});
    common::dialout(&g, &body).await;
    let done = status(&got, "completed").await;
    assert_eq!(done["reasonCode"], "bot-disconnected", "{fw:?}: {done}");
    assert_eq!(done["botOperationResult"], "voicemail", "{fw:?}: {done}");
    assert_eq!(done["detection"]["result"], "machine", "{fw:?}: {done}");
}

/// The bot asks for a transfer: REFER to its target, `completed` / `transferred`.
async fn transfer(fw: Framework) {
    let sipp = Sipp::uas("uas_refer_accept.xml", &[]);
    let (_svc, g) = gateway(fw, Script::Transfer, &format!("127.0.0.1:{}", sipp.port), "").await;
    let (_, got) = dial_seed(&g).await;
    let done = status(&got, "completed").await;
    assert_eq!(done["reasonCode"], "transferred", "{fw:?}: {done}");
    assert_eq!(done["reason"], "sip:agent@example.com", "{fw:?}: {done}");
    assert_eq!(sipp.exit_code(), 0, "{fw:?}: sipp saw the REFER, then our BYE");
}

const FALLBACK: &str = "fallbackPrompt = \"Sorry, we cannot take your call right now. Goodbye.\"\n";

/// The bot greets, then fails at the person's answer: the fallback prompt, then `error` naming the cause.
async fn failing_mid_call(fw: Framework) {
    let (_sim, _svc, g) = with_callee(fw, Script::GreetThenFail, FALLBACK).await;
    let (id, got) = dial_seed(&g).await;
    let done = status(&got, "completed").await;
    assert_eq!(done["reasonCode"], "error", "{fw:?}: {done}");
    let reason = done["reason"].as_str().unwrap();
    assert!(
        reason.contains("503") || reason.contains("502"),
        "{fw:?}: names the cause: {reason}"
    );
    let ev = common::events(&g, &id).await;
    assert!(
        ev.iter().any(|e| e["kind"] == "prompt"),
        "{fw:?}: the greeting played first: {ev:?}"
    );
    assert!(
        ev.iter().any(|e| e["kind"] == "fallback-prompt"),
        "{fw:?}: {ev:?}"
    );
}

/// The bot cannot be reached at the answer: the fallback prompt, `error`, the call hung up.
async fn unreachable_at_answer(fw: Framework) {
    let sipp = Sipp::uas("uas_answer_wait_bye.xml", &[]);
    let (_svc, g) = gateway(fw, Script::Broken, &format!("127.0.0.1:{}", sipp.port), FALLBACK).await;
    let (id, got) = dial_seed(&g).await;
    let done = status(&got, "completed").await;
    assert_eq!(done["reasonCode"], "error", "{fw:?}: {done}");
    let reason = done["reason"].as_str().unwrap();
    assert!(reason.contains("50"), "{fw:?}: names the cause: {reason}");
    let ev = common::events(&g, &id).await;
    assert!(
        ev.iter().any(|e| e["kind"] == "fallback-prompt"),
        "{fw:?}: {ev:?}"
    );
    assert_eq!(sipp.exit_code(), 0, "{fw:?}: hung up, no dead air");
}

/// A bot that answers HTML (or cut-off JSON), one that takes 30 s, and credentials that are refused: each ends the
/// call with the fallback prompt and `error`, the reason naming the cause, within the bot client's timeout. The
/// three calls run side by side.
async fn bad_answers(fw: Framework) {
    tokio::join!(
        bad_answer(fw, Script::Rubbish, "not JSON"),
        bad_answer(fw, Script::Slow, "no answer in time"),
        bad_answer(fw, Script::Unauthorized, "refused"),
    );
}

async fn bad_answer(fw: Framework, script: Script, expect: &str) {
    let sipp = Sipp::uas("uas_answer_wait_bye.xml", &[]);
    let (_svc, g) = gateway(fw, script, &format!("127.0.0.1:{}", sipp.port), FALLBACK).await;
    let (id, got) = dial_seed(&g).await;
    let done = status(&got, "completed").await;
    assert_eq!(done["reasonCode"], "error", "{fw:?} {script:?}: {done}");
    let reason = done["reason"].as_str().unwrap();
    assert!(reason.contains(expect), "{fw:?} {script:?}: {reason}");
    // The bot client gives up after 10 s; the prompt takes about 3 s more.
    assert!(
        done["callDuration"].as_f64().unwrap() < 16.0,
        "{fw:?} {script:?}: {done}"
    );
    let ev = common::events(&g, &id).await;
    assert!(
        ev.iter().any(|e| e["kind"] == "fallback-prompt"),
        "{fw:?} {script:?}: {ev:?}"
    );
    // (Off the runtime: the other calls' receivers run on it.)
    let code = tokio::task::spawn_blocking(move || sipp.exit_code())
        .await
        .unwrap();
    assert_eq!(code, 0, "{fw:?} {script:?}: hung up");
}

macro_rules! suite {
    ($name:ident, $fw:expr) => {
        mod $name {
            use super::*;
            #[tokio::test]
            async fn greeting_turn_and_result() {
                super::greeting_turn_and_result($fw).await
            }
            #[tokio::test]
            async fn machine_detection() {
                super::machine_detection($fw).await
            }
            #[tokio::test]
            async fn transfer() {
                super::transfer($fw).await
            }
            #[tokio::test]
            async fn failing_mid_call() {
                super::failing_mid_call($fw).await
            }
            #[tokio::test]
            async fn unreachable_at_answer() {
                super::unreachable_at_answer($fw).await
            }
            #[tokio::test]
            async fn bad_answers() {
                super::bad_answers($fw).await
            }
        }
    };
}

suite!(acapi, Framework::AcApi);
suite!(directline, Framework::DirectLine);
suite!(dialogflow_cx, Framework::DialogflowCx);
suite!(dialogflow_es, Framework::DialogflowEs);
