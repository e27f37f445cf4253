//! `outdial cluster status|drain|resume` (docs/cluster.md): the cluster's nodes, and the drain of one node,
//! through a running gateway (`GET /api/v1/cluster`, `POST`/`DELETE /api/v1/admin/drain`; the application needs
//! OUTDIAL/ADMIN). Exits 0 when the gateway answered, 2 when it refused.

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::Value;

#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// List the nodes: state (up, draining, lost), heartbeat age, live calls, API address.
    Status(StatusArgs),
    /// Drain the node at --url: new dialouts get 503 there, its calls go on.
    Drain(NodeArgs),
    /// End the drain of the node at --url.
    Resume(NodeArgs),
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// Print the JSON answer as it is.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    gateway: crate::dial::GatewayArgs,
}

#[derive(Args, Debug)]
pub struct NodeArgs {
    #[command(flatten)]
    gateway: crate::dial::GatewayArgs,
}

pub async fn run(c: ClusterCommand) -> anyhow::Result<u8> {
    let (method, path, g, json) = match &c {
        ClusterCommand::Status(a) => (reqwest::Method::GET, "/api/v1/cluster", &a.gateway, a.json),
        ClusterCommand::Drain(a) => (reqwest::Method::POST, "/api/v1/admin/drain", &a.gateway, false),
        ClusterCommand::Resume(a) => (reqwest::Method::DELETE, "/api/v1/admin/drain", &a.gateway, false),
    };
    let url = format!("{}{path}", g.url.trim_end_matches('/'));
    let resp = reqwest::Client::new()
        .request(method, &url)
        .basic_auth(&g.client_id, Some(&g.client_secret))
        .send()
        .await
        .with_context(|| format!("no answer from the gateway at {}", g.url))?;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let why = body["error"].as_str().unwrap_or("");
        eprintln!("the gateway refused: HTTP {} {why}", status.as_u16());
        return Ok(2);
    }
    if json {
        println!("{body:#}");
        return Ok(0);
    }
    match c {
        ClusterCommand::Status(_) => print!("{}", table(&body)),
        ClusterCommand::Drain(_) | ClusterCommand::Resume(_) => println!(
            "node '{}': {}, {} live call(s)",
            body["node"].as_str().unwrap_or(""),
            if body["draining"] == true {
                "draining"
            } else {
                "taking dialouts"
            },
            body["liveCalls"]
        ),
    }
    Ok(0)
}

/// The nodes as a table, this node marked with `*`.
fn table(body: &Value) -> String {
    let me = body["node"].as_str().unwrap_or("");
    let mut out = format!(
        "{:<2}{:<24} {:<9} {:>10} {:>6}  API\n",
        "", "NODE", "STATE", "HEARTBEAT", "CALLS"
    );
    for n in body["nodes"].as_array().into_iter().flatten() {
        let id = n["id"].as_str().unwrap_or("");
        let age = n["heartbeatAgeMs"].as_i64().unwrap_or(0) as f64 / 1000.0;
        out.push_str(&format!(
            "{:<2}{:<24} {:<9} {:>8.1} s {:>6}  {}\n",
            if id == me { "*" } else { "" },
            id,
            n["state"].as_str().unwrap_or(""),
            age,
            n["liveCalls"],
            n["apiUrl"].as_str().unwrap_or("")
        ));
    }
    out
}
