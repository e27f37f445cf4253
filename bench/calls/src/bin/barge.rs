//! `outdial-bench-barge OUTDIAL_BINARY [CALLS]`: how soon a person talking over the bot stops its prompt
//! (barge-in; docs/speech.md, "Barge-in"). Starts the simulated callee (a person who says "Hello?" shortly after
//! answering) and the reference bot (script `GreetAndHangUp`, a 3 s greeting, `bargeIn = true`) in this process,
//! the gateway binary beside them, places CALLS calls one after the other and prints, per call and as median and
//! p90:
//!
//! * speech start → prompt stopped: from the first RTP packet of the person's voice leaving the callee (the moment
//!   its audio started plus where the voice starts in the recording) to the gateway's `barge-in` event, when it
//!   stops queuing the prompt's audio (its last packet leaves at most 20 ms later, at the next tick).
#![allow(clippy::print_stdout)]

use anyhow::Context;
use serde_json::{Value, json};

#[path = "../gateway.rs"]
mod gateway;

fn at_ms(e: &Value) -> Option<f64> {
    chrono::DateTime::parse_from_rfc3339(e["at"].as_str()?)
        .ok()
        .map(|t| t.timestamp_millis() as f64)
}

fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// Where the person's voice starts in its recording (first 20 ms frame above -35 dBFS).
fn voice_offset_ms() -> f64 {
    let pcm = outdial_sim::Behaviour::Human.audio();
    let first = pcm
        .chunks(160)
        .position(|f| outdial_detect::vad::level_db(f) > -35.0)
        .unwrap_or(0);
    first as f64 * 20.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let binary = args
        .get(1)
        .context("usage: outdial-bench-barge OUTDIAL_BINARY [CALLS]")?;
    let calls: usize = args.get(2).map(|c| c.parse()).transpose()?.unwrap_or(20);
    let sim = outdial_sim::start("127.0.0.1:0".parse()?, outdial_sim::SimOptions::default()).await?;
    let bot =
        outdial_sim::bot::start("127.0.0.1:0".parse()?, outdial_sim::bot::Script::GreetAndHangUp).await?;
    let g = gateway::Gateway::start(
        binary,
        "barge",
        &format!(
            "\n[[trunks]]\nname = \"sim\"\naddress = \"{}\"\nkeepAliveSec = 0\n\n[[bots]]\nname = \"Bot1\"\n\
             botUrl = \"{}\"\nbargeIn = true\n",
            sim.addr, bot.url
        ),
    )
    .await?;
    let offset = voice_offset_ms();
    println!("call  speech start → prompt stopped  (voice starts {offset:.0} ms into the person's audio)");
    let mut lat = Vec::new();
    for i in 0..calls {
        let body = json!({"bot": "Bot1", "target": "tel:+15550100", "caller": "1-800-111-111",
                          "metadata": {"participantName": "Alice"}});
        let id = g.dialout(&body).await?;
        let events = g.events_when_ended(&id).await?;
        let call_id = format!("{}@outdial", id.replace('-', ""));
        let answered = sim.stats.answered_at.lock().get(&call_id).copied();
        let barge = events.iter().find(|e| e["kind"] == "barge-in").and_then(at_ms);
        match (answered, barge) {
            (Some(a), Some(b)) => {
                let ms = b - (a as f64 + offset);
                lat.push(ms);
                println!("{:>4}  {ms:>8.0} ms", i + 1);
            }
            _ => println!("{:>4}  no barge-in", i + 1),
        }
    }
    println!(
        "median {:.0} ms, p90 {:.0} ms ({} of {calls} calls)",
        percentile(lat.clone(), 0.5),
        percentile(lat.clone(), 0.9),
        lat.len()
    );
    Ok(())
}
