//! What the machine asks the driver to do.

use outdial_core::conversation::{ConversationStatus, EventKind};
use outdial_core::{Conversation, HangupBy, ReasonCode};
use serde_json::Value;
use std::time::Duration;

/// One effect. Effects are carried out in the order they are returned.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    Sip(SipEffect),
    Media(MediaEffect),
    Bot(BotEffect),
    Speech(SpeechEffect),
    /// Fetch the audio of a bot's `playUrl`; the result comes back as [`crate::Input::Fetched`].
    Fetch {
        job: u64,
        url: String,
        format: Option<String>,
    },
    /// (Re)arm a timer; it fires as [`crate::Input::Timer`].
    SetTimer(TimerId, Duration),
    CancelTimer(TimerId),
    Record(Record),
    /// The conversation is over: free its concurrency slot with the terminal record that follows — once that is
    /// stored (the store never shows more live conversations than the limit), and before its notification can
    /// leave (a dialer that dials again on it is admitted).
    ReleaseSlot,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SipEffect {
    /// Send the INVITE prepared for this conversation.
    Invite,
    /// CANCEL before the answer, BYE after it.
    Hangup,
    /// Blind transfer; the answer comes back as [`crate::SipInput::ReferAnswered`].
    Refer {
        target: String,
        headers: Vec<(String, String)>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum MediaEffect {
    /// Start RTP towards the answer's address.
    Start,
    /// Queue 8 kHz PCM after what is queued.
    Play(Vec<i16>),
    /// Drop what is queued.
    StopPlayout,
    /// Whether the caller's audio comes in as [`crate::MediaInput::Audio`].
    Tap(bool),
    SendDtmf(char),
}

#[derive(Debug, Clone, PartialEq)]
pub enum BotEffect {
    /// Open the bot conversation, with the call's fields (the `start` event's parameters); the answer comes back
    /// as [`crate::BotInput::Opened`] or `OpenFailed`.
    Open(Value),
    /// Queue an activity for the bot.
    Send(ToBot),
    /// Queue an activity and report [`crate::BotInput::Delivered`] once the bot answered it.
    Deliver(ToBot),
    /// The caller's audio for a streaming bot (8 kHz).
    Audio(Vec<i16>),
    /// Start (`true`) or stop the user stream of a streaming bot.
    UserStream(bool),
    /// End the bot conversation, telling the bot why.
    Close { reason: String, reason_code: ReasonCode },
}

/// An activity for the bot, in the gateway's terms; the connector writes it in its framework's encoding.
#[derive(Debug, Clone, PartialEq)]
pub enum ToBot {
    /// The call-initiation event with the call's fields.
    Start(Value),
    /// `dialoutInitiated`, with the call's fields.
    DialoutInitiated(Value),
    /// An event (`machineDetection`, `DTMF`, `noUserInput`, `playFinished`, `transferStatus`).
    Event { name: &'static str, value: Value },
    /// What the person said.
    Message { text: String, confidence: f32 },
}

#[derive(Debug, Clone, PartialEq)]
pub enum SpeechEffect {
    /// Synthesise text (or SSML) in this language; the audio comes back as [`crate::Input::Synthesized`].
    Synthesize {
        job: u64,
        text: String,
        language: String,
        /// Whether audio may come in pieces ([`crate::Input::SynthesizedPart`]) before the result; the fallback
        /// prompt is synthesised whole.
        stream: bool,
    },
    /// Start listening in this language; events come back as [`crate::Input::Stt`].
    StartRecognition {
        language: String,
        /// Partial transcripts wanted whatever the bot wants (the second opinion reads them).
        partials: bool,
        /// For the detector's second opinion (docs/detection.md, "Second opinion"), not for the bot: the `Io` may
        /// refuse it when the node runs too many ([`crate::SttInput::Failed`], then `Closed`), and the verdict
        /// then rests on the cadence.
        for_detection: bool,
    },
    /// Finish listening (what is being said is still delivered).
    StopRecognition,
    /// The caller's audio for the recogniser (8 kHz).
    Feed(Vec<i16>),
}

/// The conversation's timers, by what they are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimerId {
    /// `answerTimeoutSec`, from the start.
    AnswerTimeout,
    /// The maximum call duration, from the answer.
    MaxDuration,
    /// `userNoInputTimeoutMS`, after a prompt.
    NoInput,
    /// `voicemailEndTimeoutSec`: how long to wait for the beep.
    BeepWait,
    /// The fallback prompt's length plus a margin.
    FallbackEnd,
}

/// What goes into the store. A transition is written with its notification in one transaction.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// The conversation's new state (`conversation` as it now is), its timeline event, and the notification of
    /// `notify` (numbered `conversation.notify_seq`) when there is one.
    Transition {
        conversation: Box<Conversation>,
        kind: EventKind,
        data: Value,
        notify: Option<ConversationStatus>,
    },
    /// A timeline event.
    Event { kind: EventKind, data: Value },
}

impl Record {
    /// The terminal transition's parts, for readers of the effects (tests, logs).
    pub fn end_of(&self) -> Option<(ReasonCode, &str, HangupBy)> {
        match self {
            Record::Transition { conversation: c, .. } if c.state.is_terminal() => {
                Some((c.reason_code?, c.reason.as_deref()?, c.hangup_by?))
            }
            _ => None,
        }
    }
}
