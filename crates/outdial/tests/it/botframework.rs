//! A real Bot Framework bot (botbuilder v4, `crates/outdial-testkit/botframework/bot.js`) reached through
//! `offline-directline`, taking a real call that outdial places against sipp (docs/bots.md, "Microsoft Bot
//! Framework"): the start event with the dialer's metadata, the greeting spoken, the person's "Yes please."
//! recognised and sent, `botOperationResult` set by the bot's hangup, `endOfConversation` at the end.

use crate::common;

use common::{Gateway, receiver, status};
use outdial_testkit::{BotFramework, Sipp};
use serde_json::{Value, json};
use std::time::Duration;

#[tokio::test]
async fn a_botbuilder_bot_takes_a_call_through_offline_directline() {
    let bf = BotFramework::start();
    let sipp = Sipp::uas("uas_answer_say_yes.xml", &["-mi", "127.0.0.1"]);
    let g = Gateway::start(&format!(
        "[[trunks]]\nname = \"sbc\"\naddress = \"127.0.0.1:{}\"\nkeepAliveSec = 0\n\n\
         [[bots]]\nname = \"Bot1\"\ntype = \"directline\"\ndirectLineUrl = \"{}\"\nbotSecret = \"offline\"\n\
         directLineFlavor = \"offline-directline\"\n",
        sipp.port, bf.direct_line_url
    ))
    .await;
    let (url, got) = receiver().await;
    let body = json!({"bot": "Bot1", "target": "tel:+123456789", "caller": "1-800-111-111", "notifyUrl": url,
                      "metadata": {"participantName": "Alice"}});
    let id = common::dialout(&g, &body).await;
    status(&got, "answered").await;
    let done = status(&got, "completed").await;
    assert_eq!(done["reasonCode"], "bot-disconnected", "{done}");
    assert_eq!(done["reason"], "answered yes", "{done}");
    assert_eq!(done["botOperationResult"], "yes", "{done}");
    assert_eq!(sipp.exit_code(), 0, "sipp got our BYE");

    // What the bot received, through offline-directline.
    let mut got_all = Vec::new();
    for _ in 0..30 {
        got_all = bf.received();
        if got_all.iter().any(|a| a["type"] == "endOfConversation") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let start = got_all
        .iter()
        .find(|a| a["type"] == "event" && a["name"] == "channel")
        .unwrap_or_else(|| panic!("no start event: {got_all:?}"));
    assert_eq!(start["value"], "telephony");
    assert_eq!(
        start["channelData"]["dialoutMetadata"],
        json!({"participantName": "Alice"})
    );
    assert_eq!(start["channelData"]["caller"], "1-800-111-111");
    assert_eq!(start["channelData"]["callee"], "+123456789");
    assert_eq!(start["from"]["id"], id.as_str());
    assert_eq!(start["locale"], "en-US");
    let said: Vec<&Value> = got_all.iter().filter(|a| a["type"] == "message").collect();
    assert!(
        said.iter().any(|m| m["text"]
            .as_str()
            .unwrap_or_default()
            .to_lowercase()
            .contains("yes")),
        "the person's answer reached the bot: {said:?}"
    );
    let end = got_all
        .iter()
        .find(|a| a["type"] == "endOfConversation")
        .expect("endOfConversation");
    assert_eq!(end["channelData"]["reasonCode"], "bot-disconnected", "{end}");
    assert!(end["text"].as_str().is_some_and(|t| !t.is_empty()), "{end}");
}
