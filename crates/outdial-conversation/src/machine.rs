//! The machine's state, its entry point [`Machine::on`], the SIP lifecycle (docs/calls.md) and the one way a
//! conversation ends ([`Machine::end`]).

use crate::detection::Detection;
use crate::listener::Listener;
use crate::prompts::Prompts;
use crate::speaking::Speaking;
use crate::{
    ApiCommand, BotEffect, Effect, Input, MediaEffect, Record, SipEffect, SpeechEffect, TimerId, ToBot,
};
use outdial_core::conversation::{ConversationState, ConversationStatus, EventKind};
use outdial_core::time::now_ms;
use outdial_core::{Bot, Conversation, HangupBy, ReasonCode};
use serde_json::{Value, json};
use std::time::Duration;

/// At most this many events wait for a bot conversation that is being opened; later ones are dropped (logged).
const MAX_WAITING: usize = 64;

/// What the machine needs to know about the call beyond the conversation itself.
#[derive(Debug, Clone)]
pub struct CallSettings {
    /// The bot's settings (events it wants, barge-in, language, fallback prompt, detection tuning).
    pub bot: Bot,
    /// No call lasts longer than this after the answer.
    pub max_call_duration: Duration,
    /// The `dialing` event's data: what the INVITE is (Call-ID, Request-URI, trunk, destination).
    pub dialing: Value,
}

/// Where the call is.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Phase {
    /// Not started.
    New,
    /// The bot asked for `dialoutInitiated`: it hears of the call before the INVITE.
    Initiating,
    /// INVITE sent, no final answer yet.
    Calling,
    Answered,
    /// The bot failed: its fallback prompt plays, then the call ends with this reason.
    Fallback {
        reason: String,
        skip_playout_done: bool,
    },
    Over,
}

/// The bot conversation, as far as the machine knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Link {
    None,
    Opening,
    Open { streams: bool },
}

/// The user stream of a streaming bot (the person's audio to the bot; docs/bots.md, "Streaming bots").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UserStream {
    Off,
    On,
    /// Stopped after the bot's recognition (without barge-in); started again once the bot's next audio has
    /// played to its end (`ended`: that audio's `playStream.stop` came).
    Paused {
        ended: bool,
    },
}

/// Whether the person's words are being recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Listening {
    Off,
    On,
    /// The bot said `stopRecognition`: only the bot starts it again.
    StoppedByBot,
    /// For machine detection's second opinion (docs/detection.md): the words go to the detector, not the bot.
    ForDetection,
    /// The second opinion's recognition was stopped: what it still delivers is dropped until it closes.
    Draining,
}

/// The conversation of one call: `on(input) → effects`, no I/O.
pub struct Machine {
    pub(crate) conv: Conversation,
    pub(crate) cfg: CallSettings,
    pub(crate) phase: Phase,
    pub(crate) link: Link,
    pub(crate) media_on: bool,
    pub(crate) prompts: Prompts,
    pub(crate) speaking: Speaking,
    pub(crate) detection: Option<Detection>,
    pub(crate) listening: Listening,
    pub(crate) barge_in: bool,
    pub(crate) language: String,
    pub(crate) no_input_ms: u64,
    pub(crate) no_input_count: u32,
    pub(crate) no_input_armed: bool,
    pub(crate) listener: Listener,
    pub(crate) user_stream: UserStream,
    /// The far end holds the call; `listen_after_hold`: recognition was on when it did.
    pub(crate) held: bool,
    pub(crate) listen_after_hold: bool,
    /// What came for the bot while its conversation was being opened (the message and its timeline record).
    pub(crate) waiting: Vec<(ToBot, Value)>,
    next_job: u64,
    pub(crate) out: Vec<Effect>,
}

impl Machine {
    pub fn new(conv: Conversation, cfg: CallSettings) -> Self {
        // Dialogflow CX's no-speech timeout, until the bot sets `userNoInputTimeoutMS` (docs/bots.md).
        let no_input_ms = cfg.bot.no_speech_timeout_sec.map_or(0, |s| (s * 1000.0) as u64);
        Machine {
            barge_in: cfg.bot.barge_in,
            language: cfg.bot.language.clone(),
            conv,
            cfg,
            phase: Phase::New,
            link: Link::None,
            media_on: false,
            prompts: Prompts::default(),
            speaking: Speaking::Idle,
            detection: None,
            listening: Listening::Off,
            no_input_ms,
            no_input_count: 0,
            no_input_armed: false,
            listener: Listener::default(),
            user_stream: UserStream::Off,
            held: false,
            listen_after_hold: false,
            waiting: Vec::new(),
            next_job: 0,
            out: Vec::new(),
        }
    }

    /// The conversation as it now is.
    pub fn conversation(&self) -> &Conversation {
        &self.conv
    }

    /// Whether the conversation has ended (the driver stops).
    pub fn is_over(&self) -> bool {
        self.phase == Phase::Over
    }

    /// Starts the call: `dialing`, the answer timeout, and the INVITE (after `dialoutInitiated` when the bot
    /// asked for it).
    pub fn start(&mut self) -> Vec<Effect> {
        let now = now_ms();
        self.conv.state = ConversationState::Dialing;
        self.conv.dialing_at = Some(now);
        self.conv.updated_at = now;
        let dialing = self.cfg.dialing.clone();
        self.transition(EventKind::Dialing, dialing, None);
        let answer = Duration::from_secs_f64(self.conv.request.answer_timeout_sec);
        self.emit(Effect::SetTimer(TimerId::AnswerTimeout, answer));
        if self.wants("dialoutInitiated") {
            self.phase = Phase::Initiating;
            self.link = Link::Opening;
            self.emit(Effect::Bot(BotEffect::Open(self.conv.start_parameters())));
        } else {
            self.invite();
        }
        std::mem::take(&mut self.out)
    }

    /// Handles one input.
    pub fn on(&mut self, input: Input) -> Vec<Effect> {
        if self.phase != Phase::Over {
            match input {
                Input::Sip(e) => self.on_sip(e),
                Input::Media(e) => self.on_media(e),
                Input::Bot(e) => self.on_bot_input(e),
                Input::Stt(e) => self.on_stt(e),
                Input::Synthesized { job, result } => self.on_synthesized(job, result),
                Input::SynthesizedPart { job, pcm } => self.on_synthesized_part(job, pcm),
                Input::Fetched { job, result } => self.on_fetched(job, result),
                Input::SynthesisFailed { reason, fallback } => {
                    tracing::warn!(conversation = %self.conv.id, "text to speech failed: {reason}");
                    self.record(
                        EventKind::SynthesisFailed,
                        json!({"reason": reason, "fallback": fallback}),
                    );
                }
                Input::Timer(t) => self.on_timer(t),
                Input::Api(ApiCommand::Hangup) => {
                    self.end_with_hangup(ReasonCode::Error, "ended by API".into(), HangupBy::System)
                }
                Input::Api(ApiCommand::Shutdown) => self.end_with_hangup(
                    ReasonCode::Error,
                    "gateway shutting down".into(),
                    HangupBy::System,
                ),
            }
        }
        std::mem::take(&mut self.out)
    }

    pub(crate) fn emit(&mut self, e: Effect) {
        self.out.push(e);
    }

    pub(crate) fn job(&mut self) -> u64 {
        self.next_job += 1;
        self.next_job
    }

    pub(crate) fn wants(&self, event: &str) -> bool {
        self.cfg.bot.wants_event(event)
    }

    pub(crate) fn answered(&self) -> bool {
        self.phase == Phase::Answered
    }

    /// A state change with its event and, when `notify` is given and the dialout has a `notifyUrl`, its
    /// notification (numbered in order).
    pub(crate) fn transition(&mut self, kind: EventKind, data: Value, notify: Option<ConversationStatus>) {
        let notify = notify.filter(|_| self.conv.request.notify_url.is_some());
        if notify.is_some() {
            self.conv.notify_seq += 1;
        }
        self.emit(Effect::Record(Record::Transition {
            conversation: Box::new(self.conv.clone()),
            kind,
            data,
            notify,
        }));
    }

    pub(crate) fn record(&mut self, kind: EventKind, data: Value) {
        self.emit(Effect::Record(Record::Event { kind, data }));
    }

    /// An event for the bot (when there is one), also kept in the timeline.
    pub(crate) fn tell_bot(&mut self, name: &'static str, value: Value) {
        let record = json!({"type": "event", "name": name, "value": value});
        self.send_to_bot(ToBot::Event { name, value }, record);
    }

    /// What goes to the bot, kept in the timeline when it is sent: at once when the bot conversation is open;
    /// after its `start` when it is being opened, so that a digit pressed, a verdict reached or words heard while
    /// a slow bot answers its first request are not lost; nowhere when there is no bot conversation.
    pub(crate) fn send_to_bot(&mut self, message: ToBot, record: Value) {
        match self.link {
            Link::Open { .. } => self.send_now(message, record),
            Link::Opening if self.waiting.len() < MAX_WAITING => self.waiting.push((message, record)),
            Link::Opening => tracing::warn!(
                conversation = %self.conv.id,
                "the bot conversation is slow to open: more than {MAX_WAITING} events wait, one is dropped"
            ),
            Link::None => {}
        }
    }

    /// The bot conversation is open: what waited for it goes, in order.
    pub(crate) fn send_waiting(&mut self) {
        for (message, record) in std::mem::take(&mut self.waiting) {
            self.send_now(message, record);
        }
    }

    fn send_now(&mut self, message: ToBot, record: Value) {
        self.record(EventKind::BotEvent, record);
        self.emit(Effect::Bot(BotEffect::Send(message)));
    }

    pub(crate) fn invite(&mut self) {
        self.phase = Phase::Calling;
        self.emit(Effect::Sip(SipEffect::Invite));
    }

    fn on_timer(&mut self, t: TimerId) {
        match t {
            TimerId::AnswerTimeout if matches!(self.phase, Phase::Initiating | Phase::Calling) => {
                let secs = self.conv.request.answer_timeout_sec;
                self.end_with_hangup(
                    ReasonCode::NoAnswer,
                    format!("answer timeout after {secs} s"),
                    HangupBy::System,
                );
            }
            TimerId::MaxDuration if self.answered() => self.end_with_hangup(
                ReasonCode::Error,
                "maximum call duration reached".into(),
                HangupBy::System,
            ),
            TimerId::NoInput if self.no_input_armed => {
                self.no_input_armed = false;
                self.no_input_count += 1;
                let n = self.no_input_count;
                self.tell_bot("noUserInput", json!(n));
            }
            TimerId::BeepWait => self.on_beep_timeout(),
            TimerId::FallbackEnd => {
                if let Phase::Fallback { reason, .. } = &self.phase {
                    let reason = reason.clone();
                    self.end_with_hangup(ReasonCode::Error, reason, HangupBy::System);
                }
            }
            _ => {}
        }
    }

    /// Starts recognising the person's words (unless there is nobody to send them to).
    pub(crate) fn listen(&mut self) {
        if self.listening != Listening::On {
            self.listening = Listening::On;
            let language = self.language.clone();
            self.emit(Effect::Speech(SpeechEffect::StartRecognition {
                language,
                partials: false,
                for_detection: false,
            }));
        }
        self.tap(true);
    }

    pub(crate) fn tap(&mut self, on: bool) {
        if self.media_on {
            self.emit(Effect::Media(MediaEffect::Tap(on)));
        }
    }

    /// Ends with a hang-up towards the far end (CANCEL or BYE).
    pub(crate) fn end_with_hangup(&mut self, rc: ReasonCode, reason: String, by: HangupBy) {
        self.end(rc, reason, by, true);
    }

    /// Ends the conversation, once: the slot is freed, the terminal state recorded with its notification, the
    /// bot told why.
    pub(crate) fn end(&mut self, rc: ReasonCode, reason: String, by: HangupBy, hang_up: bool) {
        if self.phase == Phase::Over {
            return;
        }
        self.phase = Phase::Over;
        if hang_up {
            self.emit(Effect::Sip(SipEffect::Hangup));
        }
        self.emit(Effect::ReleaseSlot);
        let (kind, data, status) = self.conv.finish(rc, &reason, by, now_ms());
        self.transition(kind, data, Some(status));
        if self.listening == Listening::On {
            self.emit(Effect::Speech(SpeechEffect::StopRecognition));
        }
        if self.link != Link::None {
            self.emit(Effect::Bot(BotEffect::Close {
                reason,
                reason_code: rc,
            }));
        }
    }
}
