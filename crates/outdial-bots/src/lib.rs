//! Bot connectors. Every bot framework sits behind [`BotConnector`]: open a bot conversation for a call, send it
//! activities, receive the bot's activities in order, close it with a reason. This crate has the AudioCodes Bot
//! API in HTTP mode ([`acapi::AcApi`], docs/bots.md) and streaming mode ([`streaming::AcStreaming`], docs/bots.md,
//! "Streaming bots"), Microsoft Bot Framework over Direct Line 3.0 ([`directline::DirectLine`]) and Dialogflow CX
//! and ES ([`dialogflow`]). Every connector speaks to the engine in one encoding, the AudioCodes Bot API's
//! activities ([`activity`]): a framework's own JSON never leaves its connector.

pub mod acapi;
pub mod activity;
pub mod dialogflow;
pub mod directline;
pub mod dlwire;
mod http;
pub mod oauth;
pub mod streaming;
mod ws;

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BotError {
    /// Connection refused or reset, timeout, or a 5xx answer (docs/bots.md).
    #[error("bot unreachable: {0}")]
    Unreachable(String),
    /// A 4xx answer (bad token, unknown conversation, bad request). docs/security.md: the answer's body is never
    /// echoed, only its status and size (a bot URL must not become a way to read other services).
    #[error("bot refused the request: HTTP {status} ({bytes}-byte answer)")]
    Refused { status: u16, bytes: usize },
    /// A streaming bot answered `session.error`, with its reason.
    #[error("the bot refused the session: {0}")]
    SessionRefused(String),
    /// The address is refused by the bots' network policy (docs/security.md, "Outbound requests").
    #[error(transparent)]
    Policy(#[from] outdial_net::Refused),
    /// An answer that does not follow the protocol.
    #[error("bot answered outside the protocol: {0}")]
    Protocol(String),
    /// The bot's type or settings cannot be served by this build.
    #[error("{0}")]
    Unsupported(String),
    /// A bot service (Direct Line, Dialogflow) refused the request, said in one sentence that names the cause
    /// (bad secret, unknown agent, wrong region).
    #[error("{0}")]
    Rejected(String),
}

impl BotError {
    /// Whether the bot (or the policy) said no, rather than could not be reached: a refusal before the call stops
    /// it before the INVITE (docs/bots.md, "dialoutInitiated").
    pub fn is_refusal(&self) -> bool {
        !matches!(self, BotError::Unreachable(_))
    }

    /// Whether the bot took longer than the client's timeout (the request may have reached it).
    pub fn is_timeout(&self) -> bool {
        matches!(self, BotError::Unreachable(s) if s.ends_with(crate::http::NO_ANSWER))
    }
}

impl From<outdial_net::GuardedError> for BotError {
    fn from(e: outdial_net::GuardedError) -> Self {
        match e {
            outdial_net::GuardedError::Refused(r) => BotError::Policy(r),
            outdial_net::GuardedError::Resolve { .. } => BotError::Unreachable(e.to_string()),
            other => BotError::Protocol(other.to_string()),
        }
    }
}

/// What a bot conversation produces.
#[derive(Debug, Clone, PartialEq)]
pub enum FromBot {
    /// One of the bot's activities (de-duplicated by `id`, in the bot's order).
    Activity(Value),
    /// The bot conversation failed for good (after one retry); the call should end with `error`.
    Failed(BotError),
    /// Streaming bots: a chunk of the bot's audio, in the session's [`MediaFormat`].
    Audio(Vec<u8>),
    /// Streaming bots: the end of one audio stream of the bot (`playStream.stop`).
    AudioEnd,
    /// Streaming bots: what the bot's own speech recognition heard.
    Speech(Speech),
}

/// Speech events of a streaming bot's recognition.
#[derive(Debug, Clone, PartialEq)]
pub enum Speech {
    /// The person started speaking (barge-in).
    Started,
    Hypothesis(String),
    Recognition {
        text: String,
        confidence: f32,
    },
}

/// Audio formats of streaming bots (docs/bots.md, "Streaming bots").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaFormat {
    /// `raw/mulaw`: G.711 µ-law, 8 kHz.
    Mulaw,
    /// `raw/lpcm16_8`: 16-bit little-endian PCM, 8 kHz.
    Lpcm16_8k,
    /// `raw/lpcm16`: 16-bit little-endian PCM, 16 kHz.
    Lpcm16_16k,
}

impl MediaFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            MediaFormat::Mulaw => "raw/mulaw",
            MediaFormat::Lpcm16_8k => "raw/lpcm16_8",
            MediaFormat::Lpcm16_16k => "raw/lpcm16",
        }
    }

    pub fn parse(s: &str) -> Option<MediaFormat> {
        [
            MediaFormat::Mulaw,
            MediaFormat::Lpcm16_8k,
            MediaFormat::Lpcm16_16k,
        ]
        .into_iter()
        .find(|f| f.as_str() == s)
    }
}

#[async_trait::async_trait]
pub trait BotConnector: Send + Sync {
    /// The operator's "test connection".
    async fn validate(&self) -> Result<(), BotError>;
    /// Opens the bot conversation of the call `conversation`; `call` holds the call's fields (`caller`, `callee`,
    /// `callerHost`, …: the `start` event's parameters).
    async fn open(&self, conversation: &str, call: &Value) -> Result<BotSession, BotError>;
    /// Closes a bot conversation that another node opened and lost (docs/cluster.md), from the `link` its session
    /// gave ([`BotSession::detached`]). Nothing to do for bots on a socket: it closed with the lost node.
    async fn close_detached(
        &self,
        _conversation: &str,
        _link: &Value,
        _reason: &str,
        _reason_code: &str,
    ) -> Result<(), BotError> {
        Ok(())
    }
}

/// Whether an exchange with the bot succeeded.
type Done = oneshot::Sender<Result<(), BotError>>;

enum Command {
    Send(Vec<Value>, Option<Done>),
    /// Streaming bots: start (`true`) or stop the user stream (`userStream.start` / `userStream.stop`).
    UserStream(bool),
    Close {
        reason: String,
        reason_code: String,
        done: oneshot::Sender<()>,
    },
}

/// An open bot conversation: a task of its own does the exchanges one at a time, so activities reach the bot in
/// order and never twice at once. Dropping the session closes the conversation with reason `call ended`.
pub struct BotSession {
    /// The bot's events, until [`BotSession::take_events`] takes them.
    events: Option<mpsc::Receiver<FromBot>>,
    /// Activities and the close: never dropped, in order. Boxed: a channel holds a block of 32 of its messages for
    /// the whole call (docs/architecture.md, "Memory per call").
    commands: mpsc::UnboundedSender<Box<Command>>,
    /// The person's audio (streaming bots): bounded, dropped (and counted) when the bot falls behind.
    audio: Option<mpsc::Sender<Vec<u8>>>,
    /// The audio format of a streaming bot (None: the bot takes text, outdial does the speech).
    media: Option<MediaFormat>,
    /// What another node needs to close this conversation if this node is lost
    /// ([`BotConnector::close_detached`]); None when it needs nothing.
    pub detached: Option<Value>,
}

impl BotSession {
    /// The bot's events, to be read apart from the session; `None` once taken.
    pub fn take_events(&mut self) -> Option<mpsc::Receiver<FromBot>> {
        self.events.take()
    }

    /// The bot's next event (`None` once the session's task has ended, or its events were taken).
    pub async fn next_event(&mut self) -> Option<FromBot> {
        match &mut self.events {
            Some(events) => events.recv().await,
            None => None,
        }
    }

    /// Whether the bot takes the person's audio (and sends its own), and in which format.
    pub fn media_format(&self) -> Option<MediaFormat> {
        self.media
    }

    /// The person's audio for a streaming bot, in [`BotSession::media_format`]; dropped when the bot falls behind.
    pub fn send_audio(&self, bytes: Vec<u8>) {
        if let Some(audio) = &self.audio
            && audio.try_send(bytes).is_err()
        {
            metrics::counter!("outdial_bot_audio_dropped_total").increment(1);
        }
    }

    /// Queues activities for the bot (never dropped; sent in order by the session's task).
    pub fn send(&self, activities: Vec<Value>) {
        let _ = self.commands.send(Box::new(Command::Send(activities, None)));
    }

    /// Queues activities; the returned future resolves once the bot has answered them, with the exchange's
    /// failure if it failed.
    pub fn deliver(
        &self,
        activities: Vec<Value>,
    ) -> impl std::future::Future<Output = Result<(), BotError>> + Send + 'static {
        let (done, delivered) = oneshot::channel();
        let queued = self
            .commands
            .send(Box::new(Command::Send(activities, Some(done))))
            .is_ok();
        async move {
            if !queued {
                return Err(BotError::Unreachable("the bot conversation is closed".into()));
            }
            delivered
                .await
                .unwrap_or_else(|_| Err(BotError::Unreachable("the bot conversation is closed".into())))
        }
    }

    /// Streaming bots: starts or stops the user stream (the person's audio to the bot). Ignored by other bots.
    pub fn user_stream(&self, on: bool) {
        if self.audio.is_some() {
            let _ = self.commands.send(Box::new(Command::UserStream(on)));
        }
    }

    /// Ends the bot conversation (the bot is told why) and waits until it is told.
    pub async fn close(&self, reason: &str, reason_code: &str) {
        let (done, told) = oneshot::channel();
        let cmd = Command::Close {
            reason: reason.to_string(),
            reason_code: reason_code.to_string(),
            done,
        };
        if self.commands.send(Box::new(cmd)).is_ok() {
            let _ = told.await;
        }
    }
}
