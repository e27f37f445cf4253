//! The AudioCodes Bot API, HTTP mode (docs/bots.md): validate with `GET botUrl`; create the conversation with
//! `POST botUrl`; send activities to `activitiesURL`; refresh at half of `expiresSeconds`; disconnect with the
//! reason. The URLs the bot returns are resolved against `botUrl` (RFC 3986). Every request carries
//! `Authorization: Bearer <token>` when the bot has a token.

use crate::{BotConnector, BotError, BotSession, Command, FromBot, oauth};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::time::Duration;
use tokio::sync::mpsc;
use url::Url;

#[derive(Debug, Clone)]
pub struct AcApi {
    /// docs/security.md: every request (botUrl, the URLs the bot hands back) passes the bots' network policy.
    client: outdial_net::Guarded,
    bot_url: Url,
    auth: Auth,
}

/// How requests to the bot are authorised.
#[derive(Debug, Clone)]
enum Auth {
    None,
    Token(String),
    ClientCredentials(oauth::Client, oauth::TokenCache),
}

impl AcApi {
    /// `timeout` bounds every request to the bot; the built-in network policy applies.
    pub fn new(bot_url: &str, token: Option<String>, timeout: Duration) -> Result<Self, BotError> {
        let bot_url =
            Url::parse(bot_url).map_err(|e| BotError::Protocol(format!("botUrl {bot_url}: {e}")))?;
        let policy = outdial_net::NetworkPolicy::built_in(outdial_net::Purpose::Bots);
        let client = outdial_net::Guarded::new(policy, timeout, timeout.min(Duration::from_secs(5)))
            .map_err(|e| BotError::Protocol(e.to_string()))?;
        Ok(AcApi {
            client,
            bot_url,
            auth: token.filter(|t| !t.is_empty()).map_or(Auth::None, Auth::Token),
        })
    }

    /// With a client shared by many bots (connection pools are per client; its timeouts apply).
    pub fn with_client(
        client: outdial_net::Guarded,
        bot_url: &str,
        token: Option<String>,
    ) -> Result<Self, BotError> {
        let bot_url =
            Url::parse(bot_url).map_err(|e| BotError::Protocol(format!("botUrl {bot_url}: {e}")))?;
        Ok(AcApi {
            client,
            bot_url,
            auth: token.filter(|t| !t.is_empty()).map_or(Auth::None, Auth::Token),
        })
    }

    /// With OAuth client credentials towards the bot; tokens come from (and go into) `cache`.
    pub fn with_oauth(
        client: outdial_net::Guarded,
        bot_url: &str,
        oauth: oauth::Client,
        cache: oauth::TokenCache,
    ) -> Result<Self, BotError> {
        let mut a = Self::with_client(client, bot_url, None)?;
        a.auth = Auth::ClientCredentials(oauth, cache);
        Ok(a)
    }

    async fn call(
        &self,
        method: reqwest::Method,
        url: &Url,
        body: Option<&Value>,
    ) -> Result<Value, BotError> {
        // Boxed: the exchange's future is ~1.2 KB, and a conversation's task that awaits `call` lives as long as the
        // call, keeping that room while it waits (docs/architecture.md, "Memory per call").
        match Box::pin(self.call_once(method.clone(), url, body)).await {
            // A refused OAuth token is fetched again, once.
            Err(BotError::Refused { status: 401, .. })
                if matches!(&self.auth, Auth::ClientCredentials(..)) =>
            {
                if let Auth::ClientCredentials(c, cache) = &self.auth {
                    cache.forget(c);
                }
                Box::pin(self.call_once(method, url, body)).await
            }
            other => other,
        }
    }

    /// The Bearer token towards the bot, if it has one.
    async fn bearer(&self) -> Result<Option<String>, BotError> {
        Ok(match &self.auth {
            Auth::None => None,
            Auth::Token(t) => Some(t.clone()),
            Auth::ClientCredentials(c, cache) => Some(cache.token(&self.client, c).await?),
        })
    }

    async fn call_once(
        &self,
        method: reqwest::Method,
        url: &Url,
        body: Option<&Value>,
    ) -> Result<Value, BotError> {
        let bearer = self.bearer().await?;
        let a = crate::http::exchange(&self.client, method, url, bearer.as_deref(), body).await?;
        if a.status >= 500 {
            return Err(BotError::Unreachable(format!("{url}: HTTP {}", a.status)));
        }
        if !a.ok() {
            return Err(BotError::Refused {
                status: a.status,
                bytes: a.text.len(),
            });
        }
        a.json(url.as_str())
    }

    fn resolve(&self, answer: &Value, key: &str) -> Result<Url, BotError> {
        let rel = answer[key]
            .as_str()
            .ok_or_else(|| BotError::Protocol(format!("the create answer has no {key}")))?;
        self.bot_url
            .join(rel)
            .map_err(|e| BotError::Protocol(format!("{key} '{rel}': {e}")))
    }
}

/// Half of the bot's `expiresSeconds`, at least one second.
fn refresh_every(answer: &Value) -> Option<Duration> {
    let secs = answer["expiresSeconds"].as_f64().filter(|s| *s > 0.0)?;
    Some(Duration::from_secs_f64((secs / 2.0).max(1.0)))
}

#[async_trait::async_trait]
impl BotConnector for AcApi {
    async fn validate(&self) -> Result<(), BotError> {
        let answer = self.call(reqwest::Method::GET, &self.bot_url, None).await?;
        if answer["type"] == "ac-bot-api" && answer["success"] == true {
            Ok(())
        } else {
            Err(BotError::Protocol(format!(
                "validation answered a {}-byte answer without type ac-bot-api and success true",
                answer.to_string().len()
            )))
        }
    }

    async fn open(&self, conversation: &str, _call: &Value) -> Result<BotSession, BotError> {
        let created = self
            .call(
                reqwest::Method::POST,
                &self.bot_url,
                Some(&json!({"conversation": conversation})),
            )
            .await?;
        let proactive = self
            .resolve(&created, "websocketURL")
            .ok()
            .map(|u| crate::ws::ws_url(u.as_str()));
        let urls = Urls {
            activities: self.resolve(&created, "activitiesURL")?,
            refresh: self.resolve(&created, "refreshURL").ok(),
            disconnect: self.resolve(&created, "disconnectURL").ok(),
        };
        let detached = urls
            .disconnect
            .as_ref()
            .map(|u| json!({"disconnectUrl": u.as_str()}));
        let (events_tx, events) = mpsc::channel(64);
        let (commands, commands_rx) = mpsc::unbounded_channel();
        // Only for a bot with a websocketURL: a channel holds a block of 32 messages from its creation
        // (docs/architecture.md, "Memory per call").
        let pushed = proactive.map(|url| {
            let (pushed_tx, pushed) = mpsc::channel(16);
            tokio::spawn(listen(self.clone(), url, conversation.to_string(), pushed_tx));
            pushed
        });
        tokio::spawn(run(
            self.clone(),
            conversation.to_string(),
            urls,
            refresh_every(&created),
            events_tx,
            commands_rx,
            pushed,
        ));
        Ok(BotSession {
            events: Some(events),
            commands,
            audio: None,
            media: None,
            detached,
        })
    }

    /// The disconnect of a conversation another node opened (docs/cluster.md), to the `disconnectURL` the bot gave
    /// then; it passes the `[bot_network]` policy like every bot request.
    async fn close_detached(
        &self,
        conversation: &str,
        link: &Value,
        reason: &str,
        reason_code: &str,
    ) -> Result<(), BotError> {
        let Some(url) = link["disconnectUrl"].as_str() else {
            return Ok(());
        };
        let url = Url::parse(url).map_err(|e| BotError::Protocol(format!("stored disconnectURL: {e}")))?;
        let body = json!({"conversation": conversation, "reason": reason, "reasonCode": reason_code});
        self.call(reqwest::Method::POST, &url, Some(&body))
            .await
            .map(|_| ())
    }
}

struct Urls {
    activities: Url,
    refresh: Option<Url>,
    disconnect: Option<Url>,
}

/// One bot conversation: activities out (one exchange at a time, one retry), the bot's activities in (by `id`,
/// once), refreshes, and the disconnect.
async fn run(
    api: AcApi,
    conversation: String,
    urls: Urls,
    mut refresh: Option<Duration>,
    events: mpsc::Sender<FromBot>,
    mut commands: mpsc::UnboundedReceiver<Box<Command>>,
    mut pushed: Option<mpsc::Receiver<Vec<Value>>>,
) {
    let mut seen: HashSet<String> = HashSet::new();
    let next_refresh = tokio::time::sleep(refresh.unwrap_or(Duration::MAX / 4));
    tokio::pin!(next_refresh);
    let disconnect = |reason: String, code: String| {
        let api = api.clone();
        let url = urls.disconnect.clone();
        let body = json!({"conversation": conversation, "reason": reason, "reasonCode": code});
        async move {
            if let Some(url) = url
                && let Err(e) = api.call(reqwest::Method::POST, &url, Some(&body)).await
            {
                tracing::warn!("bot disconnect failed: {e}");
            }
        }
    };
    loop {
        tokio::select! {
            cmd = commands.recv() => match cmd.map(|c| *c) {
                Some(Command::Send(activities, done)) => {
                    let body = json!({"conversation": conversation, "activities": activities});
                    let mut answer = api.call(reqwest::Method::POST, &urls.activities, Some(&body)).await;
                    if let Err(e) = &answer {
                        tracing::warn!(conversation, "bot activities failed, retrying once: {e}");
                        answer = api.call(reqwest::Method::POST, &urls.activities, Some(&body)).await;
                    }
                    if let Some(done) = done {
                        let _ = done.send(answer.as_ref().map(|_| ()).map_err(Clone::clone));
                    }
                    match answer {
                        Ok(a) => {
                            for act in a["activities"].as_array().into_iter().flatten() {
                                // The bot may repeat an activity (a retried answer): act on it once.
                                if let Some(id) = act["id"].as_str() && !seen.insert(id.to_string()) {
                                    continue;
                                }
                                if events.send(FromBot::Activity(act.clone())).await.is_err() {
                                    return;
                                }
                            }
                        }
                        Err(e) => {
                            let _ = events.send(FromBot::Failed(e)).await;
                            return;
                        }
                    }
                }
                Some(Command::UserStream(_)) => {}
                Some(Command::Close { reason, reason_code, done }) => {
                    disconnect(reason, reason_code).await;
                    let _ = done.send(());
                    return;
                }
                None => {
                    disconnect("call ended".into(), "client-disconnected".into()).await;
                    return;
                }
            },
            // Proactive activities from the bot's websocketURL, in order, each id once.
            Some(activities) = recv(pushed.as_mut()) => {
                for act in activities {
                    if let Some(id) = act["id"].as_str() && !seen.insert(id.to_string()) {
                        continue;
                    }
                    if events.send(FromBot::Activity(act)).await.is_err() {
                        return;
                    }
                }
            }
            () = &mut next_refresh, if refresh.is_some() => {
                let body = json!({"conversation": conversation});
                if let Some(url) = &urls.refresh {
                    match api.call(reqwest::Method::POST, url, Some(&body)).await {
                        Ok(a) => refresh = refresh_every(&a).or(refresh),
                        Err(e) => tracing::warn!(conversation, "bot refresh failed: {e}"),
                    }
                }
                next_refresh.as_mut().reset(tokio::time::Instant::now() + refresh.unwrap_or(Duration::MAX / 4));
            }
        }
    }
}

/// The next message of a receiver that may not be there (pending without one).
async fn recv<T>(rx: Option<&mut mpsc::Receiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// The bot's proactive messages (optional `websocketURL`): text frames `{"activities": [...]}` pushed by the bot,
/// handed to the conversation until it ends. A socket that cannot be opened is logged; the call goes on over HTTP.
async fn listen(api: AcApi, url: String, conversation: String, pushed: mpsc::Sender<Vec<Value>>) {
    use futures_util::StreamExt;
    let token = match api.bearer().await {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(conversation, "no token for the bot's websocketURL: {e}");
            return;
        }
    };
    let mut ws = match crate::ws::connect(&api.client, &url, token.as_deref(), Duration::from_secs(10)).await
    {
        Ok(ws) => ws,
        Err(e) => {
            tracing::warn!(conversation, "the bot's websocketURL: {e}");
            return;
        }
    };
    loop {
        tokio::select! {
            () = pushed.closed() => return,
            frame = ws.next() => match frame {
                Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t))) => {
                    let Ok(v) = serde_json::from_str::<Value>(&t) else {
                        tracing::warn!(conversation, "the bot pushed a frame that is not JSON");
                        continue;
                    };
                    let activities = v["activities"].as_array().cloned().unwrap_or_default();
                    if !activities.is_empty() && pushed.send(activities).await.is_err() {
                        return;
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return,
            },
        }
    }
}
