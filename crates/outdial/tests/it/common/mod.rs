//! Starts the real `outdial` binary on a free port with its own SQLite file, and talks to it over HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)] // Tests fail loudly; helpers are shared.

use axum::Router;
use axum::routing::post;
use parking_lot::Mutex;
use reqwest::{Client, Response};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

pub const ADMIN: (&str, &str) = ("admin", "admin-secret-1");

pub struct Gateway {
    child: Option<Child>,
    pub base: String,
    pub dir: PathBuf,
    config: Option<PathBuf>,
    store: String,
    env: Vec<(String, String)>,
    /// `--sip-listen` (a free port unless a restart keeps the previous one).
    sip_listen: String,
}

pub fn temp_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("outdial-test-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

impl Gateway {
    /// A gateway on the embedded defaults plus `config` (TOML), with the bootstrap admin.
    pub async fn start(config: &str) -> Gateway {
        Self::start_with(config, &[]).await
    }

    pub async fn start_with(config: &str, env: &[(&str, &str)]) -> Gateway {
        let dir = temp_dir();
        let store = format!("sqlite://{}/outdial.db", dir.display());
        Self::start_on(dir, store, config, env)
    }

    /// A gateway on the given store URL.
    pub fn start_on(dir: PathBuf, store: String, config: &str, env: &[(&str, &str)]) -> Gateway {
        let cfg = dir.join("outdial.toml");
        std::fs::write(&cfg, config).unwrap();
        let mut g = Gateway {
            child: None,
            base: String::new(),
            dir,
            config: Some(cfg),
            store,
            env: env.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect(),
            sip_listen: "127.0.0.1:0".into(),
        };
        g.spawn().expect("gateway starts");
        g
    }

    /// Runs `outdial serve` and returns its exit status and stderr when it does not start.
    pub fn try_start(config: &str) -> Result<Gateway, String> {
        let dir = temp_dir();
        let cfg = dir.join("outdial.toml");
        std::fs::write(&cfg, config).unwrap();
        let store = format!("sqlite://{}/outdial.db", dir.display());
        let mut g = Gateway {
            child: None,
            base: String::new(),
            dir,
            config: Some(cfg),
            store,
            env: Vec::new(),
            sip_listen: "127.0.0.1:0".into(),
        };
        g.spawn().map(|_| g)
    }

    fn spawn(&mut self) -> Result<(), String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("gateway.log"))
            .unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_outdial"));
        cmd.arg("serve").args([
            "--listen",
            "127.0.0.1:0",
            "--sip-listen",
            &self.sip_listen,
            "--store",
            &self.store,
        ]);
        if let Some(c) = &self.config {
            cmd.arg("--config").arg(c);
        }
        cmd.env("OUTDIAL_ADMIN_CLIENT_ID", ADMIN.0)
            .env("OUTDIAL_ADMIN_CLIENT_SECRET", ADMIN.1)
            .env("OUTDIAL_LOG", "info")
            .envs(self.env.iter().map(|(a, b)| (a.as_str(), b.as_str())))
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        let mut child = cmd.spawn().map_err(|e| e.to_string())?;
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        match line.trim().strip_prefix("outdial listening on ") {
            Some(url) => {
                self.base = url.to_string();
                self.child = Some(child);
                Ok(())
            }
            None => {
                let status = child.wait().map_err(|e| e.to_string())?;
                let log = std::fs::read_to_string(self.dir.join("gateway.log")).unwrap_or_default();
                Err(format!("exit {:?}: {log}", status.code()))
            }
        }
    }

    /// Stops the process (SIGKILL) and starts it again on the same database.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn().expect("gateway restarts");
    }

    /// Stops the process and starts it again on the same database with another environment; the log on failure.
    pub fn restart_with(&mut self, env: &[(&str, &str)]) -> Result<(), String> {
        self.kill();
        self.env = env.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        self.spawn()
    }

    /// Kills the process (SIGKILL) and starts it again on the same database and the same SIP port, as a service
    /// manager restarts a crashed gateway.
    pub fn restart_on_same_sip_port(&mut self) {
        let log = self.log();
        let port = log
            .lines()
            .find_map(|l| l.split("SIP listening on udp and tcp 127.0.0.1:").nth(1))
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .expect("the log says where SIP listens")
            .to_string();
        self.sip_listen = format!("127.0.0.1:{port}");
        self.restart();
    }

    /// Sends SIGTERM (a graceful stop).
    pub fn terminate(&self) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
        }
    }

    /// Waits up to `limit` for the process to exit; its exit code.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let until = std::time::SystemTime::now() + limit;
        while std::time::SystemTime::now() < until {
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                self.child = None;
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("gateway.log")).unwrap_or_default()
    }

    /// POST JSON with Basic credentials.
    pub async fn post(&self, path: &str, auth: (&str, &str), body: &Value) -> Response {
        client()
            .post(self.url(path))
            .basic_auth(auth.0, Some(auth.1))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn get(&self, path: &str, auth: (&str, &str)) -> Response {
        client()
            .get(self.url(path))
            .basic_auth(auth.0, Some(auth.1))
            .send()
            .await
            .unwrap()
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        auth: (&str, &str),
        body: Option<&Value>,
    ) -> Response {
        let mut r = client()
            .request(method, self.url(path))
            .basic_auth(auth.0, Some(auth.1));
        if let Some(b) = body {
            r = r.json(b);
        }
        r.send().await.unwrap()
    }

    /// Creates objects as the admin, asserting 201.
    pub async fn create(&self, kind: &str, body: Value) {
        let r = self.post(&format!("/api/v1/{kind}"), ADMIN, &body).await;
        let status = r.status();
        assert_eq!(status, 201, "create {kind}: {}", r.text().await.unwrap());
    }

    /// An application with these policies; its secret is `<id>-secret`.
    pub async fn app(&self, id: &str, policies: Value) -> (String, String) {
        let secret = format!("{id}-secret");
        self.create(
            "applications",
            json!({"clientId": id, "clientSecret": secret, "policies": policies}),
        )
        .await;
        (id.to_string(), secret)
    }

    pub async fn token(&self, id: &str, secret: &str, scope: Option<&str>) -> String {
        let mut form = vec![
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
        ];
        if let Some(s) = scope {
            form.push(("scope", s));
        }
        let r = client()
            .post(self.url("/oauth/token"))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json::<Value>().await.unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.kill();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("gateway log kept in {}", self.dir.display());
        }
    }
}

pub fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// A config with one trunk and bot `Bot1`.
pub const BASIC: &str = r#"
# 127.0.0.1:5099 answers nothing. These tests dial it many times for the API's answers; without this, three
# silent INVITEs would mark the trunk down and later dialouts would get 503 (docs/operations.md, "Trunk health").
[sip]
trunk_down_after = 1000

[[trunks]]
name = "t1"
address = "127.0.0.1:5099"

[[bots]]
name = "Bot1"
botUrl = "http://127.0.0.1:9/bot"
"#;

/// The status and the `error` text of an answer.
pub async fn error_of(r: Response) -> (u16, String) {
    let s = r.status().as_u16();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    (s, v["error"].as_str().unwrap_or_default().to_string())
}

/// A notification receiver (a real HTTP server on 127.0.0.1) keeping every body it gets.
pub type Got = Arc<Mutex<Vec<Value>>>;

pub async fn receiver() -> (String, Got) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/n", listener.local_addr().unwrap());
    let got: Got = Arc::default();
    let g = got.clone();
    let app = Router::new().route(
        "/n",
        post(move |body: String| {
            let g = g.clone();
            async move {
                g.lock().push(serde_json::from_str(&body).unwrap());
                "ok"
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, got)
}

/// Waits for a notification with this status.
pub async fn status(got: &Got, status: &str) -> Value {
    for _ in 0..600 {
        if let Some(n) = got.lock().iter().find(|n| n["status"] == status) {
            return n.clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no '{status}' notification; got {:?}", got.lock());
}

/// `config` with its bots pointed at a reference bot (outdial-sim, silent script) running in this test process
/// instead of the unreachable `http://127.0.0.1:9/bot`: answered calls need a bot that answers.
pub async fn with_bot(config: &str) -> String {
    let bot = outdial_sim::bot::start("127.0.0.1:0".parse().unwrap(), outdial_sim::bot::Script::Silent)
        .await
        .unwrap();
    config.replace("http://127.0.0.1:9/bot", &bot.url)
}

/// Polls the conversation until it has ended (or failed), at most `within`.
pub async fn ended(g: &Gateway, id: &str, within: Duration) -> Value {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        let c: Value = g
            .get(&format!("/api/v1/conversations/{id}"), ADMIN)
            .await
            .json()
            .await
            .unwrap();
        if c["state"] == "ended" || c["state"] == "failed" {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("conversation {id} did not end within {within:?}");
}

/// The Prometheus text of `GET /metrics`.
#[allow(dead_code)]
pub async fn metrics(g: &Gateway) -> String {
    client()
        .get(g.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The conversation record (`GET /api/v1/conversations/{id}`).
pub async fn conversation(g: &Gateway, id: &str) -> Value {
    g.get(&format!("/api/v1/conversations/{id}"), ADMIN)
        .await
        .json()
        .await
        .unwrap()
}

/// The conversation's timeline (`GET /api/v1/conversations/{id}/events`).
pub async fn events(g: &Gateway, id: &str) -> Vec<Value> {
    g.get(&format!("/api/v1/conversations/{id}/events"), ADMIN)
        .await
        .json()
        .await
        .unwrap()
}

/// `DELETE /api/v1/conversations/{id}`: the API hang-up.
pub async fn hang_up(g: &Gateway, id: &str) -> Response {
    g.send(
        reqwest::Method::DELETE,
        &format!("/api/v1/conversations/{id}"),
        ADMIN,
        None,
    )
    .await
}

/// POSTs a dialout (as the admin) and returns its conversation id.
#[allow(dead_code)]
pub async fn dialout(g: &Gateway, body: &Value) -> String {
    let r = g.post("/api/v1/actions/dialout", ADMIN, body).await;
    assert_eq!(r.status(), 200);
    r.json::<Value>().await.unwrap()["conversationId"]
        .as_str()
        .unwrap()
        .to_string()
}
