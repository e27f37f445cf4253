//! `outdial bots test NAME`: the operator's "test connection" from the command line, through a running gateway
//! (`POST /api/v1/bots/{name}/test`, docs/bots.md, "Testing a bot's connection"). Prints `ok` or the one sentence
//! that says what is wrong; exits 0 when the bot answered, 1 when it did not, 2 when the gateway refused.

use anyhow::Context;
use clap::Args;
use serde_json::Value;

#[derive(Args, Debug)]
pub struct BotTestArgs {
    /// The bot's name.
    name: String,
    /// The application needs VAIC/BOTS/READ or WRITE on the bot.
    #[command(flatten)]
    gateway: crate::dial::GatewayArgs,
}

pub async fn run(a: BotTestArgs) -> anyhow::Result<u8> {
    let name: String = url::form_urlencoded::byte_serialize(a.name.as_bytes()).collect();
    let g = &a.gateway;
    let url = format!("{}/api/v1/bots/{name}/test", g.url.trim_end_matches('/'));
    let resp = reqwest::Client::new()
        .post(&url)
        .basic_auth(&g.client_id, Some(&g.client_secret))
        .json(&serde_json::json!({}))
        .send()
        .await
        .with_context(|| format!("no answer from the gateway at {}", g.url))?;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let why = body["error"].as_str().or(body["message"].as_str()).unwrap_or("");
        eprintln!("the gateway refused: HTTP {} {why}", status.as_u16());
        return Ok(2);
    }
    if body["success"] == true {
        println!("ok: bot '{}' answered", a.name);
        Ok(0)
    } else {
        println!("{}", body["error"].as_str().unwrap_or("the bot did not answer"));
        Ok(1)
    }
}
