//! `outdial-bench-speech OUTDIAL_BINARY [CALLS] [TTS]`: the speech loop's latencies with the local engines (TTS: the
//! bot's `ttsProvider`, e.g. `piper`; espeak-ng by default). Starts the simulated callee (a person who answers the
//! bot's question with "Yes please.") and the reference bot (script `Ask`) in this process, the gateway binary
//! beside them, places CALLS calls one after the other and prints, per call and as medians:
//!
//! * speech end → bot: from the end of the person's words (when the callee started playing its answer, plus the
//!   answer's speech length) to the bot receiving the `message` — endpointing silence, recognition and the Bot API
//!   exchange included;
//! * recognition: the time the recogniser took for the utterance (from the timeline);
//! * bot text → audio: from the bot's activity arriving at the gateway to its audio being queued for the next 20 ms
//!   packet (text to speech with espeak-ng), for the greeting and for the reply to "yes";
//! * speech end → answer audio: from the end of the person's words to the first audio of the bot's reply queued
//!   for the next packet (voice to voice, less the packet's ≤ 20 ms and the network).
//!
//! `BOT_EXTRA` adds lines to the bot's configuration, e.g. `BOT_EXTRA='endpointing = "fixed"'` for the old
//! end-of-turn rule beside the new default, or `BOT_EXTRA='sttProvider = "moonshine"'`. `ANSWER=piper`: the person
//! answers "Yes please." in the Piper voice instead of espeak-ng's (Moonshine does not understand espeak-ng).
//! `SPEECH` adds lines to the gateway's `[speech]` section, e.g. `SPEECH='early_end_ms = 150'`.
//! `PARALLEL=N` keeps N calls up at once (a new call as soon as one ends; the first N spread over 2 s): the
//! capacity of local speech, read from the same figures.
#![allow(clippy::print_stdout)]

use anyhow::Context;
use futures_util::StreamExt;

#[path = "../gateway.rs"]
mod gateway;
use serde_json::{Value, json};
use std::time::Duration;

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The 90th percentile (nearest rank).
fn p90(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[(v.len() * 9).div_ceil(10) - 1]
}

fn at_ms(e: &Value) -> Option<f64> {
    chrono::DateTime::parse_from_rfc3339(e["at"].as_str()?)
        .ok()
        .map(|t| t.timestamp_millis() as f64)
}

/// Where the answer's speech ends, from the start of its recording (last 20 ms frame above -35 dBFS).
fn speech_length_ms(pcm: &[i16]) -> f64 {
    let last = pcm
        .chunks(160)
        .rposition(|f| outdial_detect::vad::level_db(f) > -35.0)
        .unwrap_or(0);
    (last + 1) as f64 * 20.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let binary = args
        .get(1)
        .context("usage: outdial-bench-speech OUTDIAL_BINARY [CALLS]")?;
    let calls: usize = args.get(2).map(|c| c.parse()).transpose()?.unwrap_or(10);
    let tts = args
        .get(3)
        .map(|t| format!("ttsProvider = \"{t}\"\n"))
        .unwrap_or_default();
    let extra = std::env::var("BOT_EXTRA").unwrap_or_default();
    let speech = std::env::var("SPEECH")
        .map(|s| format!("[speech]\n{s}\n"))
        .unwrap_or_default();
    // `ANSWER=piper`: the person answers in the Piper voice (espeak-ng's by default).
    let answer = match std::env::var("ANSWER").as_deref() {
        Ok("piper") => outdial_sim::yes_please_piper(),
        _ => outdial_sim::yes_please(),
    };
    let options = outdial_sim::SimOptions {
        answer: Some(answer.clone()),
        ..Default::default()
    };
    let sim = outdial_sim::start("127.0.0.1:0".parse()?, options).await?;
    let bot = outdial_sim::bot::start("127.0.0.1:0".parse()?, outdial_sim::bot::Script::Ask).await?;
    let g = gateway::Gateway::start(
        binary,
        "speech",
        &format!(
            "{speech}\n[[trunks]]\nname = \"sim\"\naddress = \"{}\"\nkeepAliveSec = 0\n\n[[bots]]\nname = \"Bot1\"\n\
             botUrl = \"{}\"\n{tts}{extra}\n",
            sim.addr, bot.url
        ),
    )
    .await?;

    let speech_ms = speech_length_ms(&answer);
    let (mut to_bot, mut recog, mut greet, mut reply) = (vec![], vec![], vec![], vec![]);
    let mut voice_to_voice = vec![];
    println!(
        "call  speech-end→bot  recognition  greeting text→audio  reply text→audio  speech-end→answer audio  heard"
    );
    let parallel: usize = std::env::var("PARALLEL")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(1)
        .max(1);
    let run = Run {
        gateway: &g,
        sim: sim.stats.clone(),
        speech_ms,
    };
    let bot = &bot;
    let mut rows = futures_util::stream::iter((0..calls).map(|i| {
        let run = run.clone();
        async move {
            // Spread the first calls over two seconds so that their turns do not all fall together.
            if i < parallel {
                tokio::time::sleep(Duration::from_millis((2000 * i / parallel) as u64)).await;
            }
            (i, run.call(bot).await)
        }
    }))
    .buffer_unordered(parallel);
    while let Some((i, row)) = rows.next().await {
        let Some(row) = row? else {
            println!("{:>4}  the person's answer did not reach the bot", i + 1);
            continue;
        };
        if row.answer.is_finite() {
            voice_to_voice.push(row.answer);
        }
        to_bot.push(row.lat);
        recog.push(row.took);
        greet.extend(row.greet);
        reply.extend(row.reply);
        println!(
            "{:>4}  {:>11.0} ms  {:>8.0} ms  {:>16.0} ms  {:>13.0} ms  {:>20.0} ms  {}",
            i + 1,
            row.lat,
            row.took,
            row.greet.unwrap_or(f64::NAN),
            row.reply.unwrap_or(f64::NAN),
            row.answer,
            row.text
        );
    }
    println!(
        "median  {:>9.0} ms  {:>8.0} ms  {:>16.0} ms  {:>13.0} ms  {:>20.0} ms   ({} of {calls} calls; speech {speech_ms:.0} ms)",
        median(to_bot.clone()),
        median(recog),
        median(greet),
        median(reply),
        median(voice_to_voice.clone()),
        to_bot.len()
    );
    println!(
        "p90     {:>9.0} ms  {:>56.0} ms",
        p90(to_bot),
        p90(voice_to_voice)
    );
    Ok(())
}

#[derive(Clone)]
struct Run<'a> {
    gateway: &'a gateway::Gateway,
    sim: std::sync::Arc<outdial_sim::SimStats>,
    speech_ms: f64,
}

/// One call's figures (ms).
struct Row {
    lat: f64,
    took: f64,
    greet: Option<f64>,
    reply: Option<f64>,
    answer: f64,
    text: Value,
}

impl Run<'_> {
    /// Places a call, waits for its end, and reads its figures from the timeline and the bot.
    async fn call(&self, bot: &outdial_sim::bot::RefBot) -> anyhow::Result<Option<Row>> {
        let body = json!({"bot": "Bot1", "target": "tel:+15550100", "caller": "1-800-111-111",
                          "metadata": {"participantName": "Alice"}});
        let id = self.gateway.dialout(&body).await?;
        let events = self.gateway.events_when_ended(&id).await?;
        let call_id = format!("{}@outdial", id.replace('-', ""));
        let replied = self.sim.replied_at.lock().get(&call_id).copied();
        let got = bot.messages_at(&id).first().copied().map(|t| t as f64);
        let rec = events.iter().find(|e| e["kind"] == "recognition");
        // Each bot message and the prompt that followed it.
        let mut text_to_audio = Vec::new();
        let mut prompts_at = Vec::new();
        for (n, e) in events.iter().enumerate() {
            if e["kind"] == "bot-activity" && e["data"]["type"] == "message" {
                let prompt = events[n..].iter().find(|p| p["kind"] == "prompt");
                if let (Some(a), Some(b)) = (at_ms(e), prompt.and_then(at_ms)) {
                    text_to_audio.push(b - a);
                    prompts_at.push(b);
                }
            }
        }
        let (Some(got), Some(rec), Some(replied)) = (got, rec, replied) else {
            return Ok(None);
        };
        let spoke_until = replied as f64 + self.speech_ms;
        Ok(Some(Row {
            lat: got - spoke_until,
            took: rec["data"]["recognitionMs"].as_f64().unwrap_or(f64::NAN),
            greet: text_to_audio.first().copied(),
            reply: text_to_audio.get(1).copied(),
            // The reply's first audio (the second message's prompt), from the end of the person's words.
            answer: prompts_at.get(1).map_or(f64::NAN, |at| at - spoke_until),
            text: rec["data"]["text"].clone(),
        }))
    }
}
