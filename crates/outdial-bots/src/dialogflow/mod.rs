//! Dialogflow CX and ES over REST `detectIntent` (docs/bots.md, "Dialogflow CX" and "Dialogflow ES"): one session
//! per conversation (the conversation id), one `detectIntent` per activity, in order. Requests go to
//! `https://{location-}dialogflow.googleapis.com` (or the bot's `apiEndpoint`) with an access token of the bot's
//! service account ([`auth`]). Google's error envelope (`{"error": {"code", "message", "status"}}`) becomes one
//! sentence naming the cause; a 429 or 503 is retried once, a refused token fetched again once.

pub mod auth;
pub mod wire;

use crate::http::{self, Answer};
use crate::{BotConnector, BotError, BotSession, Command, FromBot};
use auth::{GoogleTokens, ServiceAccount};
use serde_json::Value;
use std::time::Duration;
use tokio::sync::mpsc;
use url::Url;
pub use wire::Edition;

/// A Dialogflow agent's settings (the bot's fields of the same names).
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub project_id: String,
    pub location: Option<String>,
    pub agent_id: Option<String>,
    pub environment: Option<String>,
    pub language_code: String,
    pub api_endpoint: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Dialogflow {
    client: outdial_net::Guarded,
    edition: Edition,
    /// Everything before `/sessions/{id}:detectIntent`.
    agent: String,
    /// The agent itself, or its environment (what "test connection" reads).
    agent_resource: Url,
    /// None: requests go without a token (a private endpoint that authorises by itself).
    sa: Option<ServiceAccount>,
    tokens: GoogleTokens,
    language: String,
}

impl Dialogflow {
    pub fn new(
        client: outdial_net::Guarded,
        edition: Edition,
        s: &Settings,
        credentials: Option<&Value>,
        tokens: GoogleTokens,
    ) -> Result<Self, BotError> {
        let location = s.location.as_deref().unwrap_or("global");
        let base = match &s.api_endpoint {
            Some(e) => e.trim_end_matches('/').to_string(),
            None if location == "global" => "https://dialogflow.googleapis.com".to_string(),
            None => format!("https://{location}-dialogflow.googleapis.com"),
        };
        let p = &s.project_id;
        let (agent, resource) = match edition {
            Edition::Cx => {
                let id = s
                    .agent_id
                    .as_deref()
                    .ok_or_else(|| BotError::Rejected("a Dialogflow CX bot needs agentId".into()))?;
                let agent = format!("{base}/v3/projects/{p}/locations/{location}/agents/{id}");
                let with_env = match &s.environment {
                    Some(e) => format!("{agent}/environments/{e}"),
                    None => agent,
                };
                (with_env.clone(), with_env)
            }
            Edition::Es => {
                let root = if location == "global" {
                    format!("{base}/v2/projects/{p}/agent")
                } else {
                    format!("{base}/v2/projects/{p}/locations/{location}/agent")
                };
                match &s.environment {
                    Some(e) => (
                        format!("{root}/environments/{e}/users/-"),
                        format!("{root}/environments/{e}"),
                    ),
                    None => (root.clone(), root),
                }
            }
        };
        let agent_resource =
            Url::parse(&resource).map_err(|e| BotError::Rejected(format!("Dialogflow URL: {e}")))?;
        Ok(Dialogflow {
            client,
            edition,
            agent,
            agent_resource,
            sa: credentials.map(ServiceAccount::from_json).transpose()?,
            tokens,
            language: s.language_code.clone(),
        })
    }

    /// One request with the service account's token: a refused token is fetched again once, a 429 or 503
    /// retried once.
    async fn call(
        &self,
        method: reqwest::Method,
        url: &Url,
        body: Option<&Value>,
    ) -> Result<Value, BotError> {
        let mut refetched = false;
        let mut retried = false;
        loop {
            let token = self.token().await?;
            let a = http::exchange(&self.client, method.clone(), url, token.as_deref(), body).await?;
            match a.status {
                401 if !refetched && self.sa.is_some() => {
                    if let Some(sa) = &self.sa {
                        self.tokens.forget(sa);
                    }
                    refetched = true;
                }
                429 | 503 if !retried => {
                    retried = true;
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                _ if a.ok() => return a.json("Dialogflow"),
                _ => return Err(failure(&a)),
            }
        }
    }

    async fn token(&self) -> Result<Option<String>, BotError> {
        match &self.sa {
            Some(sa) => Ok(Some(self.tokens.token(&self.client, sa).await?)),
            None => Ok(None),
        }
    }

    fn detect_url(&self, session: &str) -> Result<Url, BotError> {
        Url::parse(&format!("{}/sessions/{session}:detectIntent", self.agent))
            .map_err(|e| BotError::Rejected(format!("Dialogflow URL: {e}")))
    }
}

/// Google's error envelope as one sentence that names the cause; the message itself is never shown
/// (docs/security.md), only its `status` word.
fn failure(a: &Answer) -> BotError {
    let v: Value = serde_json::from_str(&a.text).unwrap_or(Value::Null);
    let word = http::error_code(&a.text, &["status"]).map_or_else(String::new, |s| format!(" {s}"));
    let message = v["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let status = a.status;
    match status {
        400 if message.contains("location") || message.contains("region") => BotError::Rejected(format!(
            "Dialogflow says the agent is in another region (HTTP 400{word}): check location"
        )),
        401 => BotError::Rejected(format!(
            "Dialogflow refused the access token (HTTP 401{word}): check credentials"
        )),
        403 => BotError::Rejected(format!(
            "the service account may not use this agent (HTTP 403{word}): check projectId and its Dialogflow role"
        )),
        404 => BotError::Rejected(format!(
            "Dialogflow has no such agent (HTTP 404{word}): check projectId, location, agentId and environment"
        )),
        429 => BotError::Unreachable(format!("Dialogflow's quota is exhausted (HTTP 429{word})")),
        s if s >= 500 => BotError::Unreachable(format!("Dialogflow failed (HTTP {s}{word})")),
        s => BotError::Rejected(format!("Dialogflow refused the request (HTTP {s}{word})")),
    }
}

#[async_trait::async_trait]
impl BotConnector for Dialogflow {
    /// Reads the agent: bad credentials, an unknown agent, a wrong region and a failing service show here.
    async fn validate(&self) -> Result<(), BotError> {
        self.call(reqwest::Method::GET, &self.agent_resource, None)
            .await
            .map(|_| ())
    }

    async fn open(&self, conversation: &str, _call: &Value) -> Result<BotSession, BotError> {
        // The token now: credentials that do not work fail the open, not the first turn.
        self.token().await?;
        let url = self.detect_url(conversation)?;
        let (events_tx, events) = mpsc::channel(64);
        let (commands, commands_rx) = mpsc::unbounded_channel();
        tokio::spawn(run(self.clone(), url, events_tx, commands_rx));
        Ok(BotSession {
            events: Some(events),
            commands,
            audio: None,
            media: None,
            detached: None,
        })
    }
}

/// The session: one `detectIntent` per activity, in order; the answers' activities to the engine.
async fn run(
    df: Dialogflow,
    url: Url,
    events: mpsc::Sender<FromBot>,
    mut commands: mpsc::UnboundedReceiver<Box<Command>>,
) {
    while let Some(cmd) = commands.recv().await.map(|c| *c) {
        match cmd {
            Command::Send(activities, done) => {
                let mut result = Ok(());
                let mut answers = Vec::new();
                for a in &activities {
                    let Some(body) = wire::request(df.edition, a, &df.language) else {
                        continue;
                    };
                    match df.call(reqwest::Method::POST, &url, Some(&body)).await {
                        Ok(answer) => answers.extend(wire::response(df.edition, &answer)),
                        Err(e) => {
                            result = Err(e);
                            break;
                        }
                    }
                }
                if let Some(done) = done {
                    let _ = done.send(result.clone());
                }
                if let Err(e) = result {
                    let _ = events.send(FromBot::Failed(e)).await;
                    return;
                }
                for a in answers {
                    if events.send(FromBot::Activity(a)).await.is_err() {
                        return;
                    }
                }
            }
            Command::UserStream(_) => {}
            // Dialogflow sessions end by themselves; nothing to tell the agent.
            Command::Close { done, .. } => {
                let _ = done.send(());
                return;
            }
        }
    }
}
