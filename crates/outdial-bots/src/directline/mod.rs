//! Microsoft Bot Framework over Direct Line 3.0 (docs/bots.md, "Microsoft Bot Framework"). A conversation is
//! started with the channel's secret; its token is used from then on and refreshed at half its lifetime. The bot's
//! activities come over the WebSocket `streamUrl` (reconnected with the watermark, polling when the socket cannot
//! be had), or by polling only for `offline-directline`. Our own activities, echoed by the service, are dropped by
//! `from.id`; every activity is acted on once, by `id`. The translation to and from the engine's encoding (the
//! AudioCodes Bot API's activities) is in [`crate::dlwire`]; the stream in `stream.rs`.

mod stream;

use crate::dlwire::{from_directline, to_directline};
use crate::http::{self, Answer};
use crate::{BotConnector, BotError, BotSession, Command, FromBot};
use outdial_core::frameworks::DirectLineFlavor;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::time::Duration;
use stream::{Incoming, stream};
use tokio::sync::mpsc;
use url::Url;

/// How often the activities are polled when there is no stream.
const POLL: Duration = Duration::from_millis(300);

#[derive(Debug, Clone)]
pub struct DirectLine {
    client: outdial_net::Guarded,
    base: Url,
    secret: String,
    flavor: DirectLineFlavor,
    language: String,
}

impl DirectLine {
    /// `base`: `https://directline.botframework.com` or a regional host; `language`: the `locale` of activities.
    pub fn new(
        client: outdial_net::Guarded,
        base: &str,
        secret: &str,
        flavor: DirectLineFlavor,
        language: &str,
    ) -> Result<Self, BotError> {
        let base = Url::parse(base.trim_end_matches('/'))
            .map_err(|e| BotError::Protocol(format!("directLineUrl {base}: {e}")))?;
        Ok(DirectLine {
            client,
            base,
            secret: secret.to_string(),
            flavor,
            language: language.to_string(),
        })
    }

    /// `path` below the service's root: `/v3/directline/...`, or `/directline/...` for `offline-directline`.
    fn url(&self, path: &str) -> Result<Url, BotError> {
        let prefix = match self.flavor {
            DirectLineFlavor::Standard => "/v3/directline",
            DirectLineFlavor::OfflineDirectline => "/directline",
        };
        let root = self.base.as_str().trim_end_matches('/');
        Url::parse(&format!("{root}{prefix}{path}"))
            .map_err(|e| BotError::Protocol(format!("Direct Line URL: {e}")))
    }

    async fn exchange(
        &self,
        method: reqwest::Method,
        url: &Url,
        bearer: &str,
        body: Option<&Value>,
    ) -> Result<Answer, BotError> {
        http::exchange(&self.client, method, url, Some(bearer), body).await
    }

    /// Starts a conversation with the secret.
    async fn start(&self) -> Result<Started, BotError> {
        let a = self
            .exchange(
                reqwest::Method::POST,
                &self.url("/conversations")?,
                &self.secret,
                None,
            )
            .await?;
        if !a.ok() {
            return Err(failure("starting a conversation", &a));
        }
        let v = a.json("Direct Line")?;
        let id = v["conversationId"]
            .as_str()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                BotError::Protocol("Direct Line started a conversation without conversationId".into())
            })?;
        Ok(Started {
            id: id.to_string(),
            token: v["token"].as_str().map(str::to_string),
            expires: v["expires_in"]
                .as_u64()
                .or_else(|| v["expiresIn"].as_u64())
                .filter(|s| *s > 0),
            stream: v["streamUrl"].as_str().map(str::to_string),
        })
    }
}

struct Started {
    id: String,
    token: Option<String>,
    expires: Option<u64>,
    stream: Option<String>,
}

/// What a failed answer means, in one sentence (docs/bots.md, "Microsoft Bot Framework", errors). The body is
/// never shown, only its error code when it is a plain word.
fn failure(doing: &str, a: &Answer) -> BotError {
    let code = http::error_code(&a.text, &["code"]).map_or_else(String::new, |c| format!(" {c}"));
    let status = a.status;
    match status {
        401 | 403 => BotError::Rejected(format!(
            "Direct Line refused the secret or token while {doing} (HTTP {status}{code}): check botSecret"
        )),
        404 => BotError::Rejected(format!(
            "Direct Line found no such conversation or endpoint while {doing} (HTTP 404{code}): check directLineUrl"
        )),
        502 | 504 => BotError::Unreachable(format!(
            "the bot failed behind Direct Line while {doing} (HTTP {status}{code})"
        )),
        s if s >= 500 => BotError::Unreachable(format!("Direct Line failed while {doing} (HTTP {s}{code})")),
        s => BotError::Rejected(format!(
            "Direct Line refused the request while {doing} (HTTP {s}{code})"
        )),
    }
}

fn expired(a: &Answer) -> bool {
    a.status == 401
        || (a.status == 403 && http::error_code(&a.text, &["code"]).as_deref() == Some("TokenExpired"))
}

#[async_trait::async_trait]
impl BotConnector for DirectLine {
    /// Starts a conversation and ends it at once: a bad secret, a wrong host or a failing bot shows here.
    async fn validate(&self) -> Result<(), BotError> {
        let s = self.start().await?;
        let mut link = Link::new(self.clone(), &s, "outdial-test".into());
        let end = json!({"type": "endOfConversation", "from": link.user, "text": "connection test",
                         "channelData": {"reason": "connection test", "reasonCode": "client-disconnected"}});
        link.post(&end).await
    }

    async fn open(&self, conversation: &str, _call: &Value) -> Result<BotSession, BotError> {
        let started = self.start().await?;
        let link = Link::new(self.clone(), &started, conversation.to_string());
        let (events_tx, events) = mpsc::channel(64);
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let (sets_tx, sets) = mpsc::channel(16);
        // The stream is open before the first activity is sent, so that no answer of the bot's is missed.
        let socket = match (&started.stream, self.flavor) {
            (Some(url), DirectLineFlavor::Standard) => {
                match crate::ws::connect(&self.client, url, None, Duration::from_secs(10)).await {
                    Ok(ws) => Some((ws, url.clone())),
                    Err(e) => {
                        tracing::warn!(conversation, "Direct Line stream: {e}; polling instead");
                        None
                    }
                }
            }
            _ => None,
        };
        let polling = socket.is_none();
        if let Some((ws, url)) = socket {
            tokio::spawn(stream(link.clone(), url, Some(ws), sets_tx));
        }
        tokio::spawn(run(link, started.expires, polling, events_tx, commands_rx, sets));
        Ok(BotSession {
            events: Some(events),
            commands,
            audio: None,
            media: None,
            detached: None,
        })
    }
}

/// One Direct Line conversation: its id, the bearer of its requests, who we are in it.
#[derive(Clone)]
struct Link {
    dl: DirectLine,
    id: String,
    bearer: String,
    user: Value,
    watermark: Option<String>,
}

impl Link {
    fn new(dl: DirectLine, s: &Started, conversation: String) -> Link {
        let bearer = s.token.clone().unwrap_or_else(|| dl.secret.clone());
        Link {
            dl,
            id: s.id.clone(),
            bearer,
            user: json!({"id": conversation, "role": "user"}),
            watermark: None,
        }
    }

    fn activities_url(&self) -> Result<Url, BotError> {
        self.dl.url(&format!("/conversations/{}/activities", self.id))
    }

    /// Sends one activity; an expired token is replaced by the secret once (it opens every conversation).
    async fn post(&mut self, activity: &Value) -> Result<(), BotError> {
        let url = self.activities_url()?;
        let mut a = self
            .dl
            .exchange(reqwest::Method::POST, &url, &self.bearer, Some(activity))
            .await?;
        if expired(&a) && self.bearer != self.dl.secret {
            self.bearer = self.dl.secret.clone();
            a = self
                .dl
                .exchange(reqwest::Method::POST, &url, &self.bearer, Some(activity))
                .await?;
        }
        if !a.ok() {
            return Err(failure("sending an activity", &a));
        }
        // The answer is `{"id": …}`: anything else (an HTML error page of a proxy, cut-off JSON) is a failure.
        a.json("Direct Line").map(|_| ())
    }

    /// The activities after the watermark (polling).
    async fn poll(&mut self) -> Result<Vec<Value>, BotError> {
        let mut url = self.activities_url()?;
        if let Some(w) = &self.watermark {
            url.query_pairs_mut().append_pair("watermark", w);
        }
        let mut a = self
            .dl
            .exchange(reqwest::Method::GET, &url, &self.bearer, None)
            .await?;
        if expired(&a) && self.bearer != self.dl.secret {
            self.bearer = self.dl.secret.clone();
            a = self
                .dl
                .exchange(reqwest::Method::GET, &url, &self.bearer, None)
                .await?;
        }
        if !a.ok() {
            return Err(failure("receiving activities", &a));
        }
        Ok(self.take(&a.json("Direct Line")?))
    }

    /// The activities of an activity set, remembering its watermark (a string, or an integer for
    /// `offline-directline`).
    fn take(&mut self, set: &Value) -> Vec<Value> {
        match &set["watermark"] {
            Value::String(w) if !w.is_empty() => self.watermark = Some(w.clone()),
            Value::Number(n) => self.watermark = Some(n.to_string()),
            _ => {}
        }
        set["activities"].as_array().cloned().unwrap_or_default()
    }

    /// Refreshes the conversation's token; returns its new lifetime.
    async fn refresh(&mut self) -> Option<u64> {
        let url = self.dl.url("/tokens/refresh").ok()?;
        match self
            .dl
            .exchange(reqwest::Method::POST, &url, &self.bearer, None)
            .await
        {
            Ok(a) if a.ok() => {
                let v = a.json("Direct Line").ok()?;
                self.bearer = v["token"].as_str()?.to_string();
                v["expires_in"].as_u64()
            }
            Ok(a) => {
                tracing::warn!(
                    conversation = self.user["id"].as_str(),
                    "Direct Line token refresh: HTTP {}",
                    a.status
                );
                None
            }
            Err(e) => {
                tracing::warn!(
                    conversation = self.user["id"].as_str(),
                    "Direct Line token refresh: {e}"
                );
                None
            }
        }
    }
}

/// Sends, receives, refreshes and ends one conversation.
async fn run(
    mut link: Link,
    expires: Option<u64>,
    mut polling: bool,
    events: mpsc::Sender<FromBot>,
    mut commands: mpsc::UnboundedReceiver<Box<Command>>,
    mut sets: mpsc::Receiver<Incoming>,
) {
    let mut seen: HashSet<String> = HashSet::new();
    let conversation = link.user["id"].as_str().unwrap_or_default().to_string();
    let half = |s: u64| Duration::from_secs((s / 2).max(1));
    let refresh = tokio::time::sleep(expires.map_or(Duration::MAX / 4, half));
    tokio::pin!(refresh);
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let lang = link.dl.language.clone();
    // Hands on the bot's new activities, in order; false once the conversation is gone.
    macro_rules! deliver {
        ($list:expr) => {{
            let mut alive = true;
            for a in $list {
                if a["from"]["id"] == link.user["id"] {
                    continue; // our own activity, echoed
                }
                if let Some(id) = a["id"].as_str()
                    && !seen.insert(id.to_string())
                {
                    continue;
                }
                if let Some(act) = from_directline(&a)
                    && events.send(FromBot::Activity(act)).await.is_err()
                {
                    alive = false;
                    break;
                }
            }
            alive
        }};
    }
    loop {
        tokio::select! {
            cmd = commands.recv() => match cmd.map(|c| *c) {
                Some(Command::Send(activities, done)) => {
                    let mut result = Ok(());
                    for a in &activities {
                        let dl = to_directline(a, &link.user, &lang);
                        let mut r = link.post(&dl).await;
                        // Not after a timeout: the bot may have the activity already.
                        if let Err(e) = &r && matches!(e, BotError::Unreachable(_)) && !e.is_timeout() {
                            tracing::warn!(conversation, "Direct Line activity failed, retrying once: {e}");
                            r = link.post(&dl).await;
                        }
                        if r.is_err() {
                            result = r;
                            break;
                        }
                    }
                    if let Some(done) = done {
                        let _ = done.send(result.clone());
                    }
                    if let Err(e) = result {
                        let _ = events.send(FromBot::Failed(e)).await;
                        return;
                    }
                    // offline-directline answers a post once the bot's turn is over: its replies are there now.
                    if polling {
                        match link.poll().await {
                            Ok(list) => if !deliver!(list) { return },
                            Err(e) => tracing::warn!(conversation, "Direct Line poll: {e}"),
                        }
                    }
                }
                Some(Command::UserStream(_)) => {}
                Some(Command::Close { reason, reason_code, done }) => {
                    end(&mut link, &reason, &reason_code).await;
                    let _ = done.send(());
                    return;
                }
                None => {
                    end(&mut link, "call ended", "client-disconnected").await;
                    return;
                }
            },
            Some(incoming) = sets.recv() => match incoming {
                Incoming::Set(set) => {
                    let list = link.take(&set);
                    if !deliver!(list) { return }
                }
                Incoming::Lost => {
                    tracing::warn!(conversation, "Direct Line stream lost; polling from the last watermark");
                    polling = true;
                }
            },
            _ = tick.tick(), if polling => match link.poll().await {
                Ok(list) => if !deliver!(list) { return },
                Err(e) => {
                    let _ = events.send(FromBot::Failed(e)).await;
                    return;
                }
            },
            () = &mut refresh, if expires.is_some() => {
                let next = link.refresh().await.or(expires).map_or(Duration::MAX / 4, half);
                refresh.as_mut().reset(tokio::time::Instant::now() + next);
            }
        }
    }
}

/// `endOfConversation` with the reason (docs/bots.md): in `text`, and `reason` / `reasonCode` in `channelData`.
async fn end(link: &mut Link, reason: &str, code: &str) {
    let a = json!({"type": "endOfConversation", "from": link.user, "text": reason,
                   "channelData": {"reason": reason, "reasonCode": code}});
    if let Err(e) = link.post(&a).await {
        tracing::warn!(
            conversation = link.user["id"].as_str(),
            "Direct Line endOfConversation: {e}"
        );
    }
}
