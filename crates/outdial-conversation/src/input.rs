//! What can happen to a conversation: everything the machine reacts to.

use crate::TimerId;
use outdial_core::{ActivitySettings, BotAction};
use serde_json::Value;

/// Why slow work or a request failed, in the words the dialer or the bot will read (the machine puts it into
/// the conversation's `reason` or the timeline as it is).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure(pub String);

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Failure {}

impl Failure {
    /// The failure of anything that can be displayed.
    pub fn of(e: impl std::fmt::Display) -> Self {
        Failure(e.to_string())
    }
}

/// One input of the machine.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    Sip(SipInput),
    Media(MediaInput),
    Bot(BotInput),
    Stt(SttInput),
    /// The result of [`crate::SpeechEffect::Synthesize`]: 8 kHz PCM.
    Synthesized {
        job: u64,
        result: Result<Vec<i16>, Failure>,
    },
    /// A piece of a [`crate::SpeechEffect::Synthesize`]'s audio (8 kHz PCM) from an engine that streams, before its
    /// [`Input::Synthesized`] (which then carries the rest, often nothing).
    SynthesizedPart {
        job: u64,
        pcm: Vec<i16>,
    },
    /// The text-to-speech engine failed on a message (`fallback`: the local engine that spoke it instead, if
    /// any); the synthesis' own result still comes as [`Input::Synthesized`].
    SynthesisFailed {
        reason: String,
        fallback: Option<String>,
    },
    /// The result of [`crate::Effect::Fetch`] (`playUrl`): 8 kHz PCM.
    Fetched {
        job: u64,
        result: Result<Vec<i16>, Failure>,
    },
    /// A timer set with [`crate::Effect::SetTimer`] fired.
    Timer(TimerId),
    Api(ApiCommand),
}

/// The SIP call's events, in the order of the SIP layer's contract.
#[derive(Debug, Clone, PartialEq)]
pub enum SipInput {
    Trying,
    /// 180 / 183.
    Ringing {
        status: u16,
        early_media: bool,
    },
    /// 200 OK, ACKed. `media` says whether its SDP answer can be used (else why not).
    Answered {
        sbc_session_id: String,
        media: Result<(), Failure>,
        /// The dialog to store with the answer (the SIP layer's saved dialog), for a BYE after a restart.
        dialog: Option<serde_json::Value>,
    },
    /// The call never connected: a final response ≥ 300 (`status`), or a local failure (`status` None).
    Failed {
        status: Option<u16>,
        reason: String,
    },
    /// The answered call ended; `by_remote` when the far end sent BYE (with its Reason text, if any).
    Ended {
        by_remote: bool,
        reason: Option<String>,
    },
    /// The far end's NOTIFY about our REFER.
    TransferProgress {
        status: u16,
        done: bool,
    },
    /// The final answer to our REFER (or why it could not be sent).
    ReferAnswered(Result<u16, Failure>),
    /// The SIP layer stopped without an outcome.
    Closed,
}

/// The media loop's events.
#[derive(Debug, Clone, PartialEq)]
pub enum MediaInput {
    /// The caller's audio (8 kHz, whole 20 ms frames).
    Audio(Vec<i16>),
    Dtmf {
        digit: char,
        duration_ms: u32,
    },
    /// Everything given to play has been sent.
    PlayoutDone,
    /// The far end put the call on hold (`true`) or took it off hold, with a new offer.
    Hold(bool),
    /// No RTP for the media timeout.
    Timeout {
        silent_ms: u64,
    },
}

/// The bot conversation's events.
#[derive(Debug, Clone, PartialEq)]
pub enum BotInput {
    /// The bot conversation is open; `streams` when the bot takes the caller's audio and sends its own.
    Opened {
        streams: bool,
        /// How another node closes the bot conversation (stored with the conversation, docs/cluster.md).
        link: Option<serde_json::Value>,
    },
    /// It could not be opened; `refused` when the bot (or the network policy) said no rather than could not be
    /// reached.
    OpenFailed {
        why: String,
        refused: bool,
    },
    /// The activities of a [`crate::BotEffect::Deliver`] were answered, or the exchange failed (with why).
    Delivered(Result<(), String>),
    /// One of the bot's activities.
    Activity(Box<BotActivity>),
    /// A streaming bot's audio (8 kHz).
    Audio(Vec<i16>),
    AudioEnd,
    /// A streaming bot heard the person start speaking.
    SpeechStarted,
    /// What a streaming bot's recognition heard.
    Recognition {
        text: String,
        confidence: f32,
    },
    /// The bot conversation failed for good.
    Failed(String),
}

/// One of the bot's activities: what it asks for, its settings, and how it goes into the timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct BotActivity {
    pub action: BotAction,
    pub settings: ActivitySettings,
    pub record: Value,
}

/// The speech recogniser's events.
#[derive(Debug, Clone, PartialEq)]
pub enum SttInput {
    SpeechStarted,
    Partial(String),
    Final {
        text: String,
        confidence: f32,
        audio_ms: u64,
        took_ms: u64,
    },
    Failed(String),
    /// The recognition stream ended (it was finished, or there is no engine).
    Closed,
}

/// Commands of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiCommand {
    /// `DELETE /conversations/{id}` (or the engine going away).
    Hangup,
    /// The gateway shuts down and the drain time is over (docs/operations.md, "What happens when …").
    Shutdown,
}
