//! A scripted world for one conversation: the far end, the bot, speech, fetches and media, each answering after
//! the delay its script says, under tokio's paused time. It records every effect with the (virtual) time it was
//! carried out.

use outdial_conversation::driver::{self, Io};
use outdial_conversation::{
    ApiCommand, BotActivity, BotEffect, BotInput, CallSettings, Effect, Failure, Input, Machine, MediaEffect,
    MediaInput, Record, SipEffect, SipInput, SpeechEffect, SttInput, ToBot,
};
use outdial_core::{ActivitySettings, Bot, BotAction, Conversation, DialoutRequest, HangupBy, ReasonCode};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// A bot's answer to one of our activities: after this long, these inputs.
pub type BotScript = fn(&ToBot) -> Vec<(Duration, BotInput)>;

/// A bot that says nothing.
pub fn silent(_: &ToBot) -> Vec<(Duration, BotInput)> {
    Vec::new()
}

pub fn activity(action: BotAction) -> BotInput {
    with_settings(action, ActivitySettings::default())
}

pub fn with_settings(action: BotAction, settings: ActivitySettings) -> BotInput {
    BotInput::Activity(Box::new(BotActivity {
        action,
        settings,
        record: json!({}),
    }))
}

#[derive(Clone)]
pub struct Script {
    /// How the far end answers the INVITE: (after, event), in order.
    pub sip: Vec<(Duration, SipInput)>,
    /// After the answer: media events, (after the answer, event).
    pub media: Vec<(Duration, MediaInput)>,
    /// After each StartRecognition: recognition events.
    pub stt: Vec<(Duration, SttInput)>,
    pub bot_open: (Duration, Result<bool, String>),
    pub bot: BotScript,
    pub deliver: Duration,
    /// How `dialoutInitiated`'s delivery ends.
    pub delivered: Result<(), String>,
    pub synth: (Duration, Result<u64, Failure>),
    /// A streaming engine: the audio of `synth` in this many pieces, one every `synth.0` (then the result,
    /// empty); None: whole, after `synth.0`. Only for syntheses that may stream.
    pub synth_pieces: Option<u64>,
    pub fetch: (Duration, Result<u64, Failure>),
    pub refer: (Duration, Result<u16, Failure>),
    /// An API hang-up, this long after the start.
    pub api_hangup: Option<Duration>,
    /// The gateway's shutdown (drain time over), this long after the start.
    pub shutdown: Option<Duration>,
    /// Bot settings.
    pub bot_cfg: fn(&mut Bot),
    pub request: fn(&mut DialoutRequest),
    pub max_duration: Duration,
}

pub fn answered() -> SipInput {
    SipInput::Answered {
        sbc_session_id: "sbc-1".into(),
        media: Ok(()),
        dialog: Some(serde_json::json!({"callId": "c-1"})),
    }
}

impl Default for Script {
    fn default() -> Self {
        Script {
            sip: vec![
                (ms(10), SipInput::Trying),
                (
                    ms(100),
                    SipInput::Ringing {
                        status: 180,
                        early_media: false,
                    },
                ),
                (ms(1000), answered()),
            ],
            media: Vec::new(),
            stt: Vec::new(),
            bot_open: (ms(50), Ok(false)),
            bot: silent,
            deliver: ms(30),
            delivered: Ok(()),
            synth: (ms(100), Ok(1000)),
            synth_pieces: None,
            fetch: (ms(100), Ok(500)),
            refer: (ms(50), Ok(202)),
            api_hangup: None,
            shutdown: None,
            bot_cfg: |_| {},
            request: |_| {},
            max_duration: secs(3600),
        }
    }
}

/// What happened.
pub struct Outcome {
    pub effects: Vec<(Duration, Effect)>,
    pub conversation: Conversation,
}

impl Outcome {
    /// The end: reason code, reason, who, and when (since the start).
    pub fn end(&self) -> (ReasonCode, String, HangupBy, Duration) {
        let ends: Vec<_> = self
            .effects
            .iter()
            .filter_map(|(at, e)| match e {
                Effect::Record(r) => r.end_of().map(|(rc, why, by)| (rc, why.to_string(), by, *at)),
                _ => None,
            })
            .collect();
        assert_eq!(ends.len(), 1, "exactly one end: {ends:?}");
        ends.into_iter().next().unwrap()
    }

    pub fn count(&self, f: impl Fn(&Effect) -> bool) -> usize {
        self.effects.iter().filter(|(_, e)| f(e)).count()
    }

    pub fn first(&self, f: impl Fn(&Effect) -> bool) -> Option<Duration> {
        self.effects.iter().find(|(_, e)| f(e)).map(|(at, _)| *at)
    }

    pub fn hung_up(&self) -> bool {
        self.count(|e| *e == Effect::Sip(SipEffect::Hangup)) == 1
    }

    /// The notifications, in order.
    pub fn notifications(&self) -> Vec<String> {
        self.effects
            .iter()
            .filter_map(|(_, e)| match e {
                Effect::Record(Record::Transition { notify: Some(s), .. }) => {
                    Some(serde_json::to_value(s).unwrap().as_str().unwrap().to_string())
                }
                _ => None,
            })
            .collect()
    }

    /// Timeline events of this kind, with their data.
    pub fn events(&self, kind: &str) -> Vec<Value> {
        self.effects
            .iter()
            .filter_map(|(_, e)| match e {
                Effect::Record(Record::Event { kind: k, data }) if k.as_str() == kind => Some(data.clone()),
                Effect::Record(Record::Transition { kind: k, data, .. }) if k.as_str() == kind => {
                    Some(data.clone())
                }
                _ => None,
            })
            .collect()
    }

    /// The bot events sent, by name (`start`, `message`, or the event's name).
    pub fn to_bot(&self) -> Vec<String> {
        self.effects
            .iter()
            .filter_map(|(_, e)| match e {
                Effect::Bot(BotEffect::Send(t) | BotEffect::Deliver(t)) => Some(match t {
                    ToBot::Start(_) => "start".to_string(),
                    ToBot::DialoutInitiated(_) => "dialoutInitiated".to_string(),
                    ToBot::Event { name, .. } => name.to_string(),
                    ToBot::Message { text, .. } => format!("message:{text}"),
                }),
                _ => None,
            })
            .collect()
    }
}

pub struct World {
    script: Script,
    started: Instant,
    inputs: mpsc::UnboundedSender<Input>,
    rx: mpsc::UnboundedReceiver<Input>,
    media_tx: mpsc::UnboundedSender<Input>,
    media_rx: mpsc::UnboundedReceiver<Input>,
    media_running: bool,
    /// Recognition runs (as the gateway's call, media is then collected every 20 ms).
    listening: bool,
    /// When what was given to play ends, and a generation that StopPlayout bumps.
    playout_end: Instant,
    playing: bool,
    generation: Arc<AtomicU64>,
    log: Vec<(Duration, Effect)>,
    done: tokio::sync::oneshot::Sender<Vec<(Duration, Effect)>>,
}

impl World {
    fn later(&self, after: Duration, input: Input) {
        let tx = self.inputs.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let _ = tx.send(input);
        });
    }

    fn later_media(&self, after: Duration, input: Input, generation: Option<u64>) {
        let tx = self.media_tx.clone();
        let current = self.generation.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            if generation.is_none_or(|g| g == current.load(Ordering::SeqCst)) {
                let _ = tx.send(input);
            }
        });
    }

    fn pcm(audio_ms: u64) -> Vec<i16> {
        vec![0; (audio_ms * 8) as usize]
    }
}

impl Io for World {
    fn execute(&mut self, effect: Effect) {
        let now = Instant::now();
        self.log.push((now - self.started, effect.clone()));
        let s = self.script.clone();
        match effect {
            Effect::Sip(SipEffect::Invite) => {
                for (after, e) in s.sip {
                    self.later(after, Input::Sip(e));
                }
            }
            Effect::Sip(SipEffect::Refer { .. }) => {
                self.later(s.refer.0, Input::Sip(SipInput::ReferAnswered(s.refer.1)))
            }
            Effect::Bot(BotEffect::Open(_)) => {
                let input = match s.bot_open.1 {
                    Ok(streams) => BotInput::Opened { streams, link: None },
                    // As the gateway's bot errors read: "bot unreachable: …" is not a refusal.
                    Err(why) => BotInput::OpenFailed {
                        refused: !why.starts_with("bot unreachable"),
                        why,
                    },
                };
                self.later(s.bot_open.0, Input::Bot(input));
            }
            Effect::Bot(BotEffect::Deliver(t)) => {
                self.later(s.deliver, Input::Bot(BotInput::Delivered(s.delivered.clone())));
                for (after, e) in (s.bot)(&t) {
                    self.later(after, Input::Bot(e));
                }
            }
            Effect::Bot(BotEffect::Send(t)) => {
                for (after, e) in (s.bot)(&t) {
                    self.later(after, Input::Bot(e));
                }
            }
            Effect::Speech(SpeechEffect::Synthesize { job, stream, .. }) => {
                match (s.synth_pieces, &s.synth.1) {
                    (Some(n), Ok(audio_ms)) if stream => {
                        let audio_ms = *audio_ms;
                        for i in 1..=n {
                            let pcm = Self::pcm(audio_ms / n);
                            self.later(s.synth.0 * i as u32, Input::SynthesizedPart { job, pcm });
                        }
                        self.later(
                            s.synth.0 * (n + 1) as u32,
                            Input::Synthesized {
                                job,
                                result: Ok(Vec::new()),
                            },
                        );
                    }
                    _ => {
                        let result = s.synth.1.map(Self::pcm);
                        self.later(s.synth.0, Input::Synthesized { job, result });
                    }
                }
            }
            Effect::Speech(SpeechEffect::StopRecognition) => self.listening = false,
            Effect::Speech(SpeechEffect::StartRecognition { .. }) => {
                self.listening = true;
                for (after, e) in s.stt {
                    self.later(after, Input::Stt(e));
                }
            }
            Effect::Fetch { job, .. } => {
                let result = s.fetch.1.map(Self::pcm);
                self.later(s.fetch.0, Input::Fetched { job, result });
            }
            Effect::Media(MediaEffect::Start) => {
                self.media_running = true;
                for (after, e) in s.media {
                    self.later_media(after, Input::Media(e), None);
                }
            }
            Effect::Media(MediaEffect::Play(pcm)) => {
                let start = self.playout_end.max(now);
                self.playout_end = start + ms(pcm.len() as u64 / 8);
                self.playing = true;
                // As the media loop: PlayoutDone when the queue runs dry, so audio queued behind audio still
                // playing supersedes the end announced for that audio.
                let g = if start > now {
                    self.generation.fetch_add(1, Ordering::SeqCst) + 1
                } else {
                    self.generation.load(Ordering::SeqCst)
                };
                self.later_media(
                    self.playout_end - now,
                    Input::Media(MediaInput::PlayoutDone),
                    Some(g),
                );
            }
            Effect::Media(MediaEffect::StopPlayout) => {
                let g = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
                if self.playout_end > now {
                    self.playout_end = now;
                    self.later_media(ms(20), Input::Media(MediaInput::PlayoutDone), Some(g));
                }
            }
            _ => {}
        }
    }

    async fn next_input(&mut self) -> Input {
        self.rx.recv().await.expect("the world's sender lives")
    }

    fn poll_media(&mut self) -> Option<Input> {
        self.media_rx.try_recv().ok()
    }

    fn media_running(&self) -> bool {
        self.media_running
    }

    fn media_poll(&mut self) -> Duration {
        if self.listening {
            driver::LISTENING_MEDIA_POLL
        } else {
            driver::MEDIA_POLL
        }
    }

    async fn finish(self) {
        let _ = self.done.send(self.log);
    }
}

pub fn conversation(request: fn(&mut DialoutRequest)) -> Conversation {
    let mut req: DialoutRequest = serde_json::from_value(json!({
        "bot": "Bot1",
        "target": "tel:+15550100",
        "caller": "100",
        "notifyUrl": "https://dialer.example/notify",
    }))
    .unwrap();
    request(&mut req);
    Conversation::new(uuid::Uuid::new_v4(), "dialer", req, 0)
}

/// Runs a conversation in this world to its end.
pub async fn run(script: Script) -> Outcome {
    let (machine, world, log) = setup(script);
    let conversation = driver::run(machine, world).await;
    Outcome {
        effects: log.await.unwrap(),
        conversation,
    }
}

/// The machine of the script's conversation, its world, and the world's log once it is finished. Spawns the
/// script's API commands (needs a runtime).
pub fn setup(
    script: Script,
) -> (
    Machine,
    World,
    tokio::sync::oneshot::Receiver<Vec<(Duration, Effect)>>,
) {
    let mut bot: Bot = Bot::parse(&json!({"name": "Bot1", "botUrl": "http://bot.example/"})).unwrap();
    (script.bot_cfg)(&mut bot);
    let conv = conversation(script.request);
    let settings = CallSettings {
        bot,
        max_call_duration: script.max_duration,
        dialing: json!({"callId": "c1"}),
    };
    let (inputs, rx) = mpsc::unbounded_channel();
    let (media_tx, media_rx) = mpsc::unbounded_channel();
    let (done, log) = tokio::sync::oneshot::channel();
    let world = World {
        started: Instant::now(),
        playout_end: Instant::now(),
        playing: false,
        generation: Arc::new(AtomicU64::new(0)),
        inputs: inputs.clone(),
        rx,
        media_tx,
        media_rx,
        media_running: false,
        listening: false,
        log: Vec::new(),
        done,
        script: script.clone(),
    };
    for (at, command) in [
        (script.api_hangup, ApiCommand::Hangup),
        (script.shutdown, ApiCommand::Shutdown),
    ] {
        if let Some(at) = at {
            let inputs = inputs.clone();
            tokio::spawn(async move {
                tokio::time::sleep(at).await;
                let _ = inputs.send(Input::Api(command));
            });
        }
    }
    (Machine::new(conv, settings), world, log)
}

/// `at` is `expected`, give or take the media poll: media events are collected every 60 ms.
#[track_caller]
pub fn assert_about(at: Duration, expected: Duration) {
    let poll = outdial_conversation::driver::MEDIA_POLL;
    assert!(
        at >= expected && at <= expected + poll,
        "{at:?} is not within {poll:?} after {expected:?}"
    );
}
