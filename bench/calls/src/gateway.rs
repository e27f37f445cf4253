//! The gateway binary as the speech benchmarks run it (`speech.rs`, `barge.rs`): its own SQLite store in a
//! temporary folder, the admin client `bench`, HTTP and SIP on free loopback ports; killed and its folder removed
//! when dropped.

use anyhow::Context;
use serde_json::Value;
use std::time::Duration;

pub struct Gateway {
    pub base: String,
    pub client: reqwest::Client,
    dir: std::path::PathBuf,
    _child: tokio::process::Child,
}

impl Gateway {
    /// Starts `binary` with `rest` after the `[log]` and `[store]` sections of its configuration, and waits until
    /// it is ready.
    pub async fn start(binary: &str, name: &str, rest: &str) -> anyhow::Result<Gateway> {
        let dir = std::env::temp_dir().join(format!("outdial-bench-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let config = dir.join("bench.toml");
        let store = dir.join("bench.db");
        std::fs::write(
            &config,
            format!(
                "[log]\nlevel = \"warn\"\n[store]\nurl = \"sqlite://{}\"\n{rest}",
                store.display()
            ),
        )?;
        let http = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let sip = std::net::UdpSocket::bind("127.0.0.1:0")?.local_addr()?;
        let child = tokio::process::Command::new(binary)
            .args(["serve", "--config"])
            .arg(&config)
            .args(["--listen", &http.to_string(), "--sip-listen", &sip.to_string()])
            .env("OUTDIAL_ADMIN_CLIENT_ID", "bench")
            .env("OUTDIAL_ADMIN_CLIENT_SECRET", "bench-secret-1")
            .kill_on_drop(true)
            .spawn()
            .context("the gateway binary")?;
        let g = Gateway {
            base: format!("http://{http}"),
            client: reqwest::Client::new(),
            dir,
            _child: child,
        };
        for _ in 0..300 {
            let ready = g.client.get(format!("{}/readyz", g.base)).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return Ok(g);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        anyhow::bail!("the gateway did not become ready")
    }

    /// Places a call; its conversation id.
    pub async fn dialout(&self, body: &Value) -> anyhow::Result<String> {
        let r: Value = self
            .client
            .post(format!("{}/api/v1/actions/dialout", self.base))
            .basic_auth("bench", Some("bench-secret-1"))
            .json(body)
            .send()
            .await?
            .json()
            .await?;
        r["conversationId"]
            .as_str()
            .map(str::to_string)
            .with_context(|| format!("dialout refused: {r}"))
    }

    /// The conversation's timeline once it has ended (at most 60 s).
    pub async fn events_when_ended(&self, id: &str) -> anyhow::Result<Vec<Value>> {
        let mut events = Vec::new();
        for _ in 0..600 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let v: Value = self
                .client
                .get(format!("{}/api/v1/conversations/{id}/events", self.base))
                .basic_auth("bench", Some("bench-secret-1"))
                .send()
                .await?
                .json()
                .await?;
            events = v.as_array().cloned().unwrap_or_default();
            if events.iter().any(|e| e["kind"] == "ended") {
                break;
            }
        }
        Ok(events)
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
