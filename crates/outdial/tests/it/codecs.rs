//! Wideband audio (issue 12, item 7; docs/trunks.md, "Codecs"): a trunk that enables G.722 offers it first; a far
//! end that answers in G.722 with an independent coder (PyPI `g722`) hears the bot and says "Yes please.", which
//! outdial's recognition transcribes for the reference bot.

use crate::common;

use common::{Gateway, receiver, status};
use outdial_sim::bot::Script;
use serde_json::json;

#[tokio::test]
async fn a_g722_far_end_hears_the_bot_and_is_understood() {
    let peer = outdial_testkit::Peer::g722(40.0);
    let bot = outdial_sim::bot::start("127.0.0.1:0".parse().unwrap(), Script::Ask)
        .await
        .unwrap();
    let g = Gateway::start(&format!(
        "[[trunks]]\nname = \"wide\"\naddress = \"127.0.0.1:{}\"\nkeepAliveSec = 0\n\
         codecs = [\"g722\", \"pcmu\", \"telephone-event\"]\n\n\
         [[bots]]\nname = \"Bot1\"\nbotUrl = \"{}\"\n",
        peer.port, bot.url
    ))
    .await;
    let (url, got) = receiver().await;
    let body = json!({"bot": "Bot1", "target": "tel:+15550100", "caller": "1-800-111-111",
                      "notifyUrl": url, "metadata": {"participantName": "Alice"}});
    common::dialout(&g, &body).await;
    let done = status(&got, "completed").await;
    assert_eq!(done["reasonCode"], "bot-disconnected", "{done}");
    assert_eq!(
        done["botOperationResult"], "yes",
        "the person's G.722 speech was understood: {done}"
    );
    let report = peer.report();
    assert_eq!(
        report["answered"], true,
        "the far end heard the bot's question: {report}"
    );
    assert!(report["g722"].as_u64().unwrap() >= 100, "{report}");
    assert_eq!(report["other"], 0, "only G.722 audio was sent: {report}");
    assert!(
        report["loud"].as_u64().unwrap() >= 25,
        "the bot was heard through G.722: {report}"
    );
    assert_eq!(report["bye_from_gateway"], true, "{report}");
}
