//! `outdial-bench-connectors [TURNS]`: the connector overhead per turn of every bot framework against its local
//! service (outdial-sim, in this process, on 127.0.0.1): the AudioCodes Bot API (HTTP), Direct Line 3.0 (the
//! answer comes over the WebSocket stream) and Dialogflow CX and ES (`detectIntent`, with the cached access
//! token). One bot conversation per framework; each turn sends what the person said ("maybe") and waits for the
//! bot's answer ("Sorry, please say yes or no."). Prints the median and p99 of the time from the request sent to
//! the actions received, in milliseconds.
#![allow(clippy::print_stdout)]

use outdial_bots::{BotConnector, FromBot, activity};
use outdial_sim::bot::Script;
use std::time::Duration;
use tokio::time::Instant;

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn client() -> outdial_net::Guarded {
    let policy = outdial_net::NetworkPolicy::built_in(outdial_net::Purpose::Bots);
    outdial_net::Guarded::new(policy, Duration::from_secs(10), Duration::from_secs(5)).expect("client")
}

async fn connector(name: &str) -> anyhow::Result<Box<dyn BotConnector>> {
    let any = "127.0.0.1:0".parse()?;
    Ok(match name {
        "ac-api" => {
            let b = outdial_sim::bot::start(any, Script::Ask).await?;
            Box::new(outdial_bots::acapi::AcApi::with_client(client(), &b.url, None)?)
        }
        "directline" => {
            let d = outdial_sim::directline::start(any, "secret", Script::Ask).await?;
            Box::new(outdial_bots::directline::DirectLine::new(
                client(),
                &d.url,
                "secret",
                outdial_core::frameworks::DirectLineFlavor::Standard,
                "en-US",
            )?)
        }
        cx_or_es => {
            let d = outdial_sim::dialogflow::start(any, Script::Ask).await?;
            let cx = cx_or_es == "dialogflow-cx";
            let settings = outdial_bots::dialogflow::Settings {
                project_id: outdial_sim::dialogflow::PROJECT.into(),
                agent_id: Some(outdial_sim::dialogflow::AGENT.into()),
                language_code: "en-US".into(),
                api_endpoint: Some(d.url.clone()),
                ..Default::default()
            };
            let edition = if cx {
                outdial_bots::dialogflow::Edition::Cx
            } else {
                outdial_bots::dialogflow::Edition::Es
            };
            Box::new(outdial_bots::dialogflow::Dialogflow::new(
                client(),
                edition,
                &settings,
                Some(&d.credentials()),
                Default::default(),
            )?)
        }
    })
}

async fn turns(name: &str, n: usize) -> anyhow::Result<Vec<f64>> {
    let c = connector(name).await?;
    let params = serde_json::json!({"caller": "1-800-111-111", "callee": "+15550100",
                                    "dialoutMetadata": {"participantName": "Alice"}});
    let mut s = c.open(&uuid_like(name), &params).await?;
    s.send(vec![activity::start(params, "en-US")]);
    next(&mut s).await?; // the greeting
    let mut took = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        s.send(vec![activity::message("maybe", 0.9, "en-US")]);
        next(&mut s).await?;
        took.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    s.close("benchmark done", "client-disconnected").await;
    Ok(took)
}

fn uuid_like(name: &str) -> String {
    format!("bench-{name}-{}", std::process::id())
}

async fn next(s: &mut outdial_bots::BotSession) -> anyhow::Result<()> {
    match tokio::time::timeout(Duration::from_secs(10), s.next_event()).await {
        Ok(Some(FromBot::Activity(_))) => Ok(()),
        other => anyhow::bail!("no answer from the bot: {other:?}"),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(500);
    println!("framework        turns  median_ms  p99_ms");
    for name in ["ac-api", "directline", "dialogflow-cx", "dialogflow-es"] {
        let mut t = turns(name, n).await?;
        println!(
            "{name:<16} {n:>5}  {:>9.2}  {:>6.2}",
            pct(&mut t, 0.5),
            pct(&mut t, 0.99)
        );
    }
    Ok(())
}
