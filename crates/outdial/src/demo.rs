//! `outdial demo`: the gateway on its embedded defaults, the simulated callee and the reference bot, all on
//! loopback, and five calls a newcomer can follow — a person, a voicemail with a beep (`detect` mode), a fax, a
//! busy line, no answer — with each notification as it arrives and each call's timeline at the end.

use crate::config::Overrides;
use anyhow::Context;
use axum::Router;
use axum::routing::post;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

struct Case {
    title: &'static str,
    number: &'static str,
    extra: Value,
    /// The terminal status and reasonCode expected.
    expect: (&'static str, &'static str),
    /// The bot's result expected (botOperationResult).
    result: Option<&'static str>,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            title: "a person answers and says yes",
            number: "+15550100",
            extra: json!({"machineDetection": "detect"}),
            expect: ("completed", "bot-disconnected"),
            result: Some("yes"),
        },
        Case {
            title: "an answering machine, with a beep",
            number: "+15550101",
            extra: json!({"machineDetection": "detect", "voicemailEndTimeoutSec": 25}),
            expect: ("completed", "bot-disconnected"),
            result: Some("voicemail"),
        },
        Case {
            title: "a fax machine",
            number: "+15550103",
            extra: json!({"machineDetection": "detect"}),
            expect: ("completed", "machine-detected"),
            result: None,
        },
        Case {
            title: "a busy line",
            number: "+15550104",
            extra: json!({}),
            expect: ("failed", "busy"),
            result: None,
        },
        Case {
            title: "nobody answers",
            number: "+15550105",
            extra: json!({"answerTimeoutSec": 4}),
            expect: ("failed", "no-answer"),
            result: None,
        },
    ]
}

fn free_port(udp: bool) -> anyhow::Result<u16> {
    Ok(if udp {
        std::net::UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port()
    } else {
        std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port()
    })
}

fn short(n: &Value) -> String {
    let mut parts = vec![n["status"].as_str().unwrap_or("?").to_string()];
    for k in [
        "reasonCode",
        "reason",
        "machineDetection",
        "botOperationResult",
        "callDuration",
    ] {
        if let Some(v) = n.get(k).filter(|v| !v.is_null()) {
            parts.push(format!(
                "{k}={}",
                v.as_str().map_or_else(|| v.to_string(), str::to_string)
            ));
        }
    }
    if let Some(d) = n.get("detection").filter(|d| d.is_object()) {
        parts.push(format!(
            "detection={} ({}, {} ms)",
            d["result"].as_str().unwrap_or("?"),
            d["cause"].as_str().unwrap_or("?"),
            d["latencyMs"]
        ));
    }
    parts.join("  ")
}

/// Exit code 0 when every call ended as expected.
pub async fn demo(listen: Option<SocketAddr>) -> anyhow::Result<u8> {
    let dir = std::env::temp_dir().join(format!("outdial-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let sim = outdial_sim::start("127.0.0.1:0".parse()?, outdial_sim::SimOptions::default())
        .await
        .context("simulated callee")?;
    let bot = outdial_sim::bot::start("127.0.0.1:0".parse()?, outdial_sim::bot::Script::Ask)
        .await
        .context("reference bot")?;
    let http = listen.unwrap_or(SocketAddr::from(([127, 0, 0, 1], free_port(false)?)));
    let sip = SocketAddr::from(([127, 0, 0, 1], free_port(true)?));
    let config = dir.join("demo.toml");
    std::fs::write(
        &config,
        format!(
            "[log]\nlevel = \"error\"\n\n[[trunks]]\nname = \"carrier\"\naddress = \"{}\"\nkeepAliveSec = 5\n\n\
             [[bots]]\nname = \"DemoBot\"\nbotUrl = \"{}\"\ndialoutAllowedCallers = [\"1-800-111-111\"]\n\n\
             [[applications]]\nclientId = \"demo\"\nclientSecret = \"demo-secret\"\n\
             policies = [{{ role = \"OUTDIAL/ADMIN\", scope = \"*\" }}]\n",
            sim.addr, bot.url
        ),
    )?;
    let overrides = Overrides {
        listen: Some(http),
        sip_listen: Some(sip),
        store: Some(format!("sqlite://{}", dir.join("demo.db").display())),
    };
    let cfg = crate::config::Config::load(Some(&config), &overrides)?;
    let gateway = tokio::spawn(crate::serve::serve(Some(config), cfg, false));
    let base = format!("http://{http}");
    let client = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..100 {
        if client.get(format!("{base}/healthz")).send().await.is_ok() {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::ensure!(ready, "the gateway did not start");

    // Our notification receiver.
    let (tx, mut rx) = mpsc::unbounded_channel::<Value>();
    let receiver = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let notify_url = format!("http://{}/notify", receiver.local_addr()?);
    let app = Router::new().route(
        "/notify",
        post(move |body: String| {
            let tx = tx.clone();
            async move {
                if let Ok(v) = serde_json::from_str::<Value>(&body) {
                    let _ = tx.send(v);
                }
                "ok"
            }
        }),
    );
    tokio::spawn(async move { axum::serve(receiver, app).await });

    println!(
        "outdial demo: the gateway at {base} (API docs at {base}/docs), a simulated carrier and callees at"
    );
    println!(
        "udp {}, and a reference AudioCodes bot at {}.\n",
        sim.addr, bot.url
    );
    let cases = Arc::new(cases());
    let mut ids: Vec<String> = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        let mut body = json!({"bot": "DemoBot", "target": format!("tel:{}", c.number), "caller": "1-800-111-111",
            "notifyUrl": notify_url, "notifyEvents": ["machineDetection"],
            "metadata": {"participantName": "Alice"}});
        for (k, v) in c.extra.as_object().into_iter().flatten() {
            body[k] = v.clone();
        }
        let r = client
            .post(format!("{base}/api/v1/actions/dialout"))
            .basic_auth("demo", Some("demo-secret"))
            .json(&body)
            .send()
            .await?;
        let v: Value = r.json().await?;
        let id = v["conversationId"]
            .as_str()
            .context("dialout refused")?
            .to_string();
        println!("call {} — {}: dialling tel:{} …", i + 1, c.title, c.number);
        ids.push(id);
    }
    println!();
    let mut outcome: Vec<Option<Value>> = vec![None; ids.len()];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while outcome.iter().any(Option::is_none) {
        let Ok(Some(n)) = tokio::time::timeout_at(deadline, rx.recv()).await else {
            break;
        };
        let Some(i) = ids.iter().position(|id| n["conversationId"] == id.as_str()) else {
            continue;
        };
        println!("call {} — {:<34} {}", i + 1, cases[i].title, short(&n));
        if n["status"] == "completed" || n["status"] == "failed" {
            outcome[i] = Some(n);
        }
    }
    println!(
        "\nWhat happened, call by call (the conversation timelines, GET /api/v1/conversations/{{id}}/events):"
    );
    let mut all_good = true;
    for (i, c) in cases.iter().enumerate() {
        let events: Value = client
            .get(format!("{base}/api/v1/conversations/{}/events", ids[i]))
            .basic_auth("demo", Some("demo-secret"))
            .send()
            .await?
            .json()
            .await?;
        let kinds: Vec<String> = events
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["kind"] != "notification")
            .map(|e| match e["kind"].as_str().unwrap_or("?") {
                "bot-event" if e["data"]["type"] == "message" => {
                    format!("→bot:\"{}\"", e["data"]["text"].as_str().unwrap_or(""))
                }
                "recognition" => format!("heard:\"{}\"", e["data"]["text"].as_str().unwrap_or("")),
                "bot-event" => format!(
                    "→bot:{}",
                    e["data"]["value"]
                        .as_str()
                        .or(e["data"]["name"].as_str())
                        .unwrap_or("?")
                ),
                "bot-activity" => format!(
                    "bot→:{}",
                    e["data"]["name"]
                        .as_str()
                        .or(e["data"]["type"].as_str())
                        .unwrap_or("?")
                ),
                k => k.to_string(),
            })
            .collect();
        let got = outcome[i].as_ref().map(|n| {
            (
                n["status"].as_str().unwrap_or("").to_string(),
                n["reasonCode"].as_str().unwrap_or("").to_string(),
                n["botOperationResult"].as_str().map(str::to_string),
            )
        });
        let ok = got.as_ref().is_some_and(|(s, r, result)| {
            (s.as_str(), r.as_str()) == c.expect && result.as_deref() == c.result
        });
        all_good &= ok;
        println!("\n{} call {} — {}", if ok { "✔" } else { "✘" }, i + 1, c.title);
        println!("  {}", kinds.join(" · "));
        if !ok {
            println!(
                "  expected {}/{} {:?}, got {got:?}",
                c.expect.0, c.expect.1, c.result
            );
        }
    }
    println!(
        "\n{}",
        if all_good {
            "All five calls ended as they should. Try it yourself: `outdial serve` and docs/api.md."
        } else {
            "Some calls did not end as expected (see above)."
        }
    );
    gateway.abort();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(if all_good { 0 } else { 1 })
}
