//! `outdial dial`: a dialer in one command. Posts a dialout, receives its notifications on a local HTTP
//! receiver, prints each as it arrives, and exits with the outcome: 0 completed, 1 failed, 2 refused by the
//! gateway (the error is printed), 3 no final notification in time.

use anyhow::Context;
use axum::Router;
use axum::routing::post;
use clap::Args;
use serde_json::{Map, Value, json};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::mpsc;

/// Where the gateway is and who asks (the commands that talk to a running gateway).
#[derive(Args, Debug)]
pub struct GatewayArgs {
    /// The gateway's base URL.
    #[arg(long, env = "OUTDIAL_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Application (API client) id.
    #[arg(long, env = "OUTDIAL_CLIENT_ID")]
    pub client_id: String,
    /// Its secret (HTTP Basic).
    #[arg(long, env = "OUTDIAL_CLIENT_SECRET", hide_env_values = true)]
    pub client_secret: String,
}

#[derive(Args, Debug)]
pub struct DialArgs {
    #[command(flatten)]
    gateway: GatewayArgs,
    /// Bot to connect the call to.
    #[arg(long)]
    bot: String,
    /// tel: or sip: URI to call.
    #[arg(long)]
    target: String,
    #[arg(long)]
    caller: Option<String>,
    #[arg(long)]
    caller_host: Option<String>,
    #[arg(long)]
    caller_display_name: Option<String>,
    /// JSON object sent to the bot as dialoutMetadata.
    #[arg(long)]
    metadata: Option<String>,
    #[arg(long)]
    answer_timeout_sec: Option<f64>,
    /// disabled, disconnect or detect.
    #[arg(long)]
    machine_detection: Option<String>,
    #[arg(long)]
    voicemail_end_timeout_sec: Option<f64>,
    /// Extra notifications, comma-separated: ringing, machineDetection.
    #[arg(long, value_delimiter = ',')]
    notify_events: Vec<String>,
    /// Idempotency-Key header.
    #[arg(long)]
    idempotency_key: Option<String>,
    /// Where the local notification receiver listens; the gateway must be able to reach it.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Give up waiting for the final notification after this many seconds.
    #[arg(long, default_value_t = 600)]
    wait_sec: u64,
}

/// The dialout body of the arguments.
fn body(a: &DialArgs, notify_url: &str) -> anyhow::Result<Value> {
    let mut b = Map::new();
    b.insert("bot".into(), json!(a.bot));
    b.insert("target".into(), json!(a.target));
    b.insert("notifyUrl".into(), json!(notify_url));
    let opt = |b: &mut Map<String, Value>, k: &str, v: Option<Value>| {
        if let Some(v) = v {
            b.insert(k.into(), v);
        }
    };
    opt(&mut b, "caller", a.caller.as_ref().map(|v| json!(v)));
    opt(&mut b, "callerHost", a.caller_host.as_ref().map(|v| json!(v)));
    opt(
        &mut b,
        "callerDisplayName",
        a.caller_display_name.as_ref().map(|v| json!(v)),
    );
    if let Some(m) = &a.metadata {
        b.insert(
            "metadata".into(),
            serde_json::from_str(m).context("--metadata should be a JSON object")?,
        );
    }
    opt(&mut b, "answerTimeoutSec", a.answer_timeout_sec.map(|v| json!(v)));
    opt(
        &mut b,
        "machineDetection",
        a.machine_detection.as_ref().map(|v| json!(v)),
    );
    opt(
        &mut b,
        "voicemailEndTimeoutSec",
        a.voicemail_end_timeout_sec.map(|v| json!(v)),
    );
    if !a.notify_events.is_empty() {
        b.insert("notifyEvents".into(), json!(a.notify_events));
    }
    Ok(Value::Object(b))
}

/// Runs the command; returns the process exit code.
pub async fn dial(a: DialArgs) -> anyhow::Result<u8> {
    let listener = tokio::net::TcpListener::bind(a.listen)
        .await
        .with_context(|| format!("--listen {}", a.listen))?;
    let token = uuid::Uuid::new_v4().simple().to_string();
    let notify_url = format!("http://{}/notify/{token}", listener.local_addr()?);
    let (tx, mut rx) = mpsc::unbounded_channel::<Value>();
    let app = Router::new().route(
        &format!("/notify/{token}"),
        post(move |body: String| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(serde_json::from_str(&body).unwrap_or(Value::String(body)));
                "ok"
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });

    let mut req = reqwest::Client::new()
        .post(format!(
            "{}/api/v1/actions/dialout",
            a.gateway.url.trim_end_matches('/')
        ))
        .basic_auth(&a.gateway.client_id, Some(&a.gateway.client_secret))
        .json(&body(&a, &notify_url)?);
    if let Some(k) = &a.idempotency_key {
        req = req.header("Idempotency-Key", k);
    }
    let resp = req
        .send()
        .await
        .with_context(|| format!("cannot reach the gateway at {}", a.gateway.url))?;
    let status = resp.status();
    let answer: Value = resp.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        eprintln!(
            "dialout refused: {status}: {}",
            answer["error"].as_str().unwrap_or("(no error text)")
        );
        return Ok(2);
    }
    let id = answer["conversationId"].as_str().unwrap_or_default().to_string();
    println!("{}  accepted    conversationId={id}", now());
    let deadline = tokio::time::sleep(Duration::from_secs(a.wait_sec));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            n = rx.recv() => {
                let Some(n) = n else { return Ok(3) };
                let st = n["status"].as_str().unwrap_or("?").to_string();
                let mut details: Vec<String> = Vec::new();
                for k in ["reasonCode", "reason", "connectTime", "callDuration", "sbcSessionID", "sipStatus", "machineDetection", "botOperationResult"] {
                    if let Some(v) = n.get(k) {
                        details.push(format!("{k}={}", v.as_str().map_or_else(|| v.to_string(), str::to_string)));
                    }
                }
                println!("{}  {st:<10}  {}", now(), details.join("  "));
                match st.as_str() {
                    "completed" => return Ok(0),
                    "failed" => return Ok(1),
                    _ => {}
                }
            }
            () = &mut deadline => {
                eprintln!("no final notification within {} s (conversation {id})", a.wait_sec);
                return Ok(3);
            }
        }
    }
}

fn now() -> String {
    chrono::Utc::now().format("%H:%M:%S%.3f").to_string()
}
