//! The real world of one conversation, for the driver: effects become SIP requests, media commands, bot
//! activities, speech and store writes; SIP, bot and recognition events, API commands and the results of slow
//! work become inputs. Slow work (synthesis, `playUrl` fetches, opening the bot, a REFER's answer,
//! `dialoutInitiated`'s delivery) is spawned; its result comes back through `results`.

use crate::botlink::BotLink;
use crate::call::Command;
use crate::engine::Ctx;
use crate::fetch::fetch_audio;
use crate::recorder::Recording;
use outdial_bots::{BotError, FromBot};
use outdial_conversation::driver::{Io, LISTENING_MEDIA_POLL, MEDIA_POLL};
use outdial_conversation::{
    ApiCommand, BotEffect, BotInput, Effect, Failure, Input, MediaEffect, MediaInput, Record, SipEffect,
    SipInput, SpeechEffect, SttInput,
};
use outdial_core::conversation::EventKind;
use outdial_core::speech::Endpointing;
use outdial_core::{Bot, ReasonCode};
use outdial_limits::Lease;
use outdial_media::{Answer, Media, MediaConfig, MediaEvent, RtpSession};
use outdial_sip::{Call, CallRequest, RequestError};
use outdial_speech::stt::Upsampler;
use outdial_speech::{SttOptions, SttStream};
use std::future::pending;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

/// 20 ms frames per media event while no speech is recognised: the conversation's wake-ups drop to 17 a second
/// (see [`MEDIA_POLL`]).
const MEDIA_FRAMES: usize = 3;

/// How often a local recogniser transcribes the words heard so far, for `speechHypothesis` (each pass costs one
/// Whisper run on the utterance so far, skipped when audio is waiting).
const PARTIAL_INTERVAL_MS: u32 = 700;

pub(super) type Opened = Result<(BotLink, mpsc::Receiver<FromBot>), BotError>;

pub struct CallIo {
    pub(super) ctx: Arc<Ctx>,
    pub(super) bot: Bot,
    pub(super) id: Uuid,
    pub(super) request: Option<CallRequest>,
    pub(super) rtp: Option<RtpSession>,
    pub(super) answer: Option<Answer>,
    pub(super) sip: Option<Call>,
    pub(super) media: Option<Media>,
    pub(super) link: Option<Arc<BotLink>>,
    pub(super) bot_events: Option<mpsc::Receiver<FromBot>>,
    /// A bot conversation is being opened (once per call): its result comes here. A one-shot channel: a call's
    /// every channel is memory it holds for the whole call.
    pub(super) opened: Option<oneshot::Receiver<Opened>>,
    pub(super) stt: Option<SttStream>,
    /// The engine of `stt` (the `engine` label of `outdial_stt_seconds`).
    pub(super) stt_engine: &'static str,
    pub(super) upsampler: Upsampler,
    /// A wideband call: the 16 kHz audio of the last frames given to the engine.
    pub(super) wide: Option<Vec<i16>>,
    pub(super) warned_no_stt: bool,
    /// The 20 ms frames per media event the media loop was last asked for.
    pub(super) media_frames: usize,
    /// Held while detection's second opinion runs (`speech.second_opinions`).
    pub(super) second_opinion: Option<tokio::sync::OwnedSemaphorePermit>,
    pub(super) results: (Results, mpsc::UnboundedReceiver<Box<Input>>),
    pub(super) commands: Option<mpsc::Receiver<Command>>,
    pub(super) lease: Option<Lease>,
    pub(super) recording: Recording,
    pub(super) close_bot: Option<(String, ReasonCode)>,
    /// The trunk the call goes through, and whether it answered the INVITE at all (silent INVITEs mark a trunk
    /// down: crate::health).
    pub(super) trunk: String,
    pub(super) trunk_responded: Arc<std::sync::atomic::AtomicBool>,
}

impl CallIo {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        ctx: Arc<Ctx>,
        bot: Bot,
        id: Uuid,
        request: CallRequest,
        rtp: RtpSession,
        commands: mpsc::Receiver<Command>,
        lease: Lease,
        recording: Recording,
        trunk: String,
    ) -> Self {
        CallIo {
            ctx,
            bot,
            id,
            request: Some(request),
            rtp: Some(rtp),
            answer: None,
            sip: None,
            media: None,
            link: None,
            bot_events: None,
            opened: None,
            stt: None,
            stt_engine: "none",
            upsampler: Upsampler::default(),
            wide: None,
            media_frames: MEDIA_FRAMES,
            second_opinion: None,
            warned_no_stt: false,
            results: {
                let (tx, rx) = mpsc::unbounded_channel();
                (Results(tx), rx)
            },
            commands: Some(commands),
            lease: Some(lease),
            recording,
            close_bot: None,
            trunk,
            trunk_responded: Default::default(),
        }
    }

    /// Runs slow work off the conversation task; its result comes back as an input.
    fn spawn(&self, work: impl std::future::Future<Output = Input> + Send + 'static) {
        let tx = self.results.0.clone();
        tokio::spawn(async move {
            let _ = tx.send(work.await);
        });
    }

    /// Whether a recognition stream takes the caller's audio.
    fn recognising(&self) -> bool {
        self.stt.as_ref().is_some_and(SttStream::is_open)
    }

    /// A permit for detection's second opinion (`speech.second_opinions` run at once on the node), held while the
    /// recognition runs. Without one, the recognition is refused as failed: the verdict rests on the cadence.
    fn take_second_opinion(&mut self) -> bool {
        if self.recognising() {
            return true;
        }
        match self.ctx.second_opinions.clone().try_acquire_owned() {
            Ok(permit) => {
                self.second_opinion = Some(permit);
                true
            }
            Err(_) => {
                metrics::counter!("outdial_second_opinions_skipped_total").increment(1);
                let why = "no second opinion: speech.second_opinions are all running".to_string();
                let _ = self.results.0.send(Input::Stt(SttInput::Failed(why)));
                let _ = self.results.0.send(Input::Stt(SttInput::Closed));
                false
            }
        }
    }

    fn start_recognition(&mut self, language: String, partials: bool) {
        if self.recognising() {
            return;
        }
        let stt = match crate::speech::recognizer(&self.ctx, &self.bot) {
            Ok(stt) => stt,
            Err(e) => {
                outdial_speech::cloud::failed(self.bot.stt_provider.unwrap_or_default().as_str(), &e);
                let _ = self.results.0.send(Input::Stt(SttInput::Failed(e.to_string())));
                let _ = self.results.0.send(Input::Stt(SttInput::Closed));
                return;
            }
        };
        let Some(stt) = stt else {
            if !self.warned_no_stt {
                self.warned_no_stt = true;
                tracing::warn!(conversation = %self.id, "no speech-to-text engine: the person's words do not reach the bot");
            }
            let _ = self.results.0.send(Input::Stt(SttInput::Closed));
            return;
        };
        self.upsampler = Upsampler::default();
        self.stt_engine = stt.name();
        self.stt = Some(
            stt.stream(SttOptions {
                language,
                end_silence_ms: self.bot.end_silence_ms().unwrap_or(self.ctx.stt_end_silence_ms),
                early_end_ms: (self.bot.endpointing.unwrap_or_default() == Endpointing::Smart)
                    .then_some(self.ctx.stt_early_end_ms)
                    .filter(|&ms| ms > 0),
                lookahead_ms: stt
                    .cheap_lookahead()
                    .then_some(self.ctx.stt_lookahead_ms)
                    .filter(|&ms| ms > 0),
                // A local engine transcribes the words so far this often, for bots that want `speechHypothesis`
                // (docs/speech.md, "Partial transcripts"); cloud streams send theirs anyway.
                partial_interval_ms: (partials || self.bot.wants_event("speechHypothesis"))
                    .then_some(PARTIAL_INTERVAL_MS),
                ..Default::default()
            }),
        );
    }

    fn media(&mut self, e: MediaEffect) {
        if let MediaEffect::Start = e {
            if let (Some(rtp), Some(answer)) = (self.rtp.take(), &self.answer) {
                // Frames per event as `media_poll` wants them: three while no speech is recognised, else one.
                let cfg = MediaConfig {
                    timeout: self.ctx.media_timeout,
                    frames_per_event: self.media_frames,
                    totals: Some(self.ctx.send_timing.clone()),
                    runtime: Some(self.ctx.media_threads.pick()),
                    ..Default::default()
                };
                self.media = Some(rtp.start(answer, cfg));
            }
            return;
        }
        let Some(m) = &self.media else {
            return;
        };
        match e {
            MediaEffect::Start => {}
            MediaEffect::Play(pcm) => m.play(pcm),
            MediaEffect::StopPlayout => m.stop_playout(),
            MediaEffect::Tap(on) => m.tap_audio(on),
            MediaEffect::SendDtmf(c) => m.send_dtmf(c),
        }
    }

    fn bot(&mut self, e: BotEffect) {
        match e {
            BotEffect::Open(call) => {
                let (tx, rx) = oneshot::channel();
                self.opened = Some(rx);
                let (ctx, bot, id) = (self.ctx.clone(), self.bot.clone(), self.id);
                tokio::spawn(async move {
                    let _ = tx.send(BotLink::open(&ctx, &bot, id, &call).await);
                });
            }
            BotEffect::Send(t) => {
                if let Some(l) = &self.link {
                    l.send(t);
                }
            }
            BotEffect::Deliver(t) => match &self.link {
                Some(l) => {
                    let delivered = l.deliver(t);
                    self.spawn(async move {
                        let result = delivered.await.map_err(|e| e.to_string());
                        Input::Bot(BotInput::Delivered(result))
                    });
                }
                None => {
                    let _ = self.results.0.send(Input::Bot(BotInput::Delivered(Ok(()))));
                }
            },
            BotEffect::UserStream(on) => {
                if let Some(l) = &self.link {
                    l.user_stream(on);
                }
            }
            BotEffect::Audio(pcm) => {
                if let Some(l) = &self.link {
                    l.send_audio(&pcm);
                }
            }
            BotEffect::Close { reason, reason_code } => self.close_bot = Some((reason, reason_code)),
        }
    }

    fn record(&mut self, r: Record) {
        if let Record::Transition {
            kind: EventKind::MachineDetection,
            data,
            ..
        } = &r
        {
            let verdict = data["result"].as_str().unwrap_or("unknown").to_string();
            metrics::counter!("outdial_detection_verdicts_total", "verdict" => verdict).increment(1);
            let latency = data["latencyMs"].as_f64().unwrap_or(0.0) / 1000.0;
            metrics::histogram!("outdial_detection_latency_seconds").record(latency);
        }
        self.recording.record(r);
    }
}

impl Io for CallIo {
    fn execute(&mut self, effect: Effect) {
        match effect {
            Effect::Sip(SipEffect::Invite) => {
                if let Some(req) = self.request.take() {
                    self.watch_invite();
                    match self.ctx.agent.call(req) {
                        Ok(call) => self.sip = Some(call),
                        Err(e) => {
                            let failed = SipInput::Failed {
                                status: None,
                                reason: e.to_string(),
                            };
                            let _ = self.results.0.send(Input::Sip(failed));
                        }
                    }
                }
            }
            Effect::Sip(SipEffect::Hangup) => {
                if let Some(c) = &self.sip {
                    c.hangup();
                }
            }
            Effect::Sip(SipEffect::Refer { target, headers }) => {
                let control = self.sip.as_ref().map(Call::control);
                self.spawn(async move {
                    let answer = match control {
                        Some(c) => c.refer_with(&target, headers).await,
                        None => Err(RequestError::Ended),
                    };
                    let answer = answer.map_err(Failure::of);
                    Input::Sip(SipInput::ReferAnswered(answer))
                });
            }
            Effect::Media(m) => self.media(m),
            Effect::Bot(b) => self.bot(b),
            Effect::Speech(SpeechEffect::Synthesize {
                job,
                text,
                language,
                stream,
            }) => {
                let (ctx, bot) = (self.ctx.clone(), self.bot.clone());
                let tx = self.results.0.clone();
                self.spawn(async move {
                    let parts = tx.clone();
                    let part = move |pcm| {
                        let _ = parts.send(Input::SynthesizedPart { job, pcm });
                    };
                    let sink: Option<&(dyn Fn(Vec<i16>) + Send + Sync)> =
                        if stream { Some(&part) } else { None };
                    let (result, failures) =
                        crate::speech::synthesize(&ctx, &bot, &text, &language, sink).await;
                    for (reason, fallback) in failures {
                        let _ = tx.send(Input::SynthesisFailed { reason, fallback });
                    }
                    Input::Synthesized { job, result }
                });
            }
            Effect::Speech(SpeechEffect::StartRecognition {
                language,
                partials,
                for_detection,
            }) => {
                if for_detection {
                    if !self.take_second_opinion() {
                        return;
                    }
                } else {
                    // The bot listens now, on the second opinion's stream if one runs: it is the bot's from here on
                    // (its end finishes what is being said), and the node's second opinions have one more free.
                    self.second_opinion = None;
                }
                self.start_recognition(language, partials);
                if !self.recognising() {
                    self.second_opinion = None;
                }
            }
            Effect::Speech(SpeechEffect::StopRecognition) => {
                if self.second_opinion.take().is_some() {
                    // Detection's second opinion is over (its verdict came): the rest of the greeting is not
                    // transcribed — nobody reads it, and a local recogniser would go on with it for seconds.
                    self.stt = None;
                    let _ = self.results.0.send(Input::Stt(SttInput::Closed));
                } else if let Some(s) = self.stt.as_mut() {
                    s.finish();
                }
            }
            Effect::Speech(SpeechEffect::Feed(pcm)) => {
                if let Some(s) = &self.stt {
                    // A wideband call's frame at 16 kHz as it came (docs/trunks.md, "Codecs"), else upsampled.
                    match self.wide.take() {
                        Some(wide) if wide.len() == pcm.len() * 2 => s.push(wide),
                        _ => s.push(self.upsampler.process(&pcm)),
                    }
                }
            }
            Effect::Fetch { job, url, format } => {
                let client = self.ctx.bot_client.clone();
                self.spawn(async move {
                    let result = fetch_audio(&client, &url, format.as_deref())
                        .await
                        .map_err(Failure::of);
                    Input::Fetched { job, result }
                });
            }
            Effect::Record(r) => self.record(r),
            Effect::ReleaseSlot => {
                if let Some(slot) = self.lease.take() {
                    self.recording.release_with_end(slot);
                }
            }
            // Timers are the driver's own.
            Effect::SetTimer(..) | Effect::CancelTimer(_) => {}
        }
    }

    async fn next_input(&mut self) -> Input {
        loop {
            let input = tokio::select! {
                Some(input) = self.results.1.recv() => Some(*input),
                opened = once(self.opened.as_mut()) => {
                    self.opened = None;
                    opened.map(|o| self.opened_input(o))
                }
                event = recv(self.sip.as_mut().map(|c| &mut c.events)) => self.sip_input(event.map(|e| *e)),
                event = recv(self.bot_events.as_mut()) => {
                    if event.is_none() {
                        self.bot_events = None;
                    }
                    self.bot_input(event)
                }
                event = recv(self.stt.as_mut().map(|s| &mut s.events)) => self.stt_input(event),
                () = self.recording.progress() => None,
                command = recv(self.commands.as_mut()) => match command {
                    Some(Command::Hangup) => Some(Input::Api(ApiCommand::Hangup)),
                    Some(Command::Shutdown) => Some(Input::Api(ApiCommand::Shutdown)),
                    // A closed channel means the engine is going away: hang up as well.
                    None => {
                        self.commands = None;
                        Some(Input::Api(ApiCommand::Shutdown))
                    }
                },
            };
            if let Some(input) = input {
                return input;
            }
        }
    }

    fn poll_media(&mut self) -> Option<Input> {
        let e = match self.media.as_mut()?.try_next()? {
            MediaEvent::Audio(frame) => MediaInput::Audio(frame),
            // G.722: the engines get 8 kHz; recognition is fed the 16 kHz audio of the same frames.
            MediaEvent::WideAudio { narrow, wide } => {
                self.wide = Some(wide);
                MediaInput::Audio(narrow)
            }
            MediaEvent::Dtmf(d) => MediaInput::Dtmf {
                digit: d.digit,
                duration_ms: d.duration_ms,
            },
            MediaEvent::PlayoutDone => MediaInput::PlayoutDone,
            MediaEvent::Timeout { silent_ms } => MediaInput::Timeout { silent_ms },
        };
        Some(Input::Media(e))
    }

    fn media_running(&self) -> bool {
        self.media.is_some()
    }

    /// While speech is recognised, every frame as it comes (the end of a pause is seen up to 60 ms sooner);
    /// else three at a time (docs/speech.md, "Turn-taking").
    fn media_poll(&mut self) -> Duration {
        let (poll, frames) = if self.recognising() {
            (LISTENING_MEDIA_POLL, 1)
        } else {
            (MEDIA_POLL, MEDIA_FRAMES)
        };
        if let Some(m) = &self.media
            && frames != self.media_frames
        {
            m.frames_per_event(frames);
            self.media_frames = frames;
        }
        poll
    }

    async fn finish(mut self) {
        if let Some(slot) = self.lease.take() {
            self.recording.release_with_end(slot);
        }
        if let Some(m) = self.media.take() {
            metrics::counter!("outdial_media_frames_dropped_total")
                .increment(m.stats.frames_dropped.load(std::sync::atomic::Ordering::Relaxed));
            let data = crate::engine::media_stats(&m);
            self.recording.record(Record::Event {
                kind: EventKind::MediaStats,
                data,
            });
        }
        // The bot is told while the last records are written: neither waits for the other.
        let close_bot = async {
            let Some((reason, code)) = self.close_bot.take() else {
                return;
            };
            let code = serde_json::to_value(code)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_else(|| "error".into());
            if let Some(l) = self.link.take() {
                l.close(&reason, &code).await;
            } else if let Some(opened) = self.opened.take() {
                // Still opening: closed once it is open, without holding this task.
                tokio::spawn(async move {
                    if let Ok(Ok((link, _))) = opened.await {
                        link.close(&reason, &code).await;
                    }
                });
            }
        };
        tokio::join!(close_bot, self.recording.close());
    }
}

/// The value of an optional one-shot receiver (never, when there is none; None when its sender is gone).
async fn once<T>(rx: Option<&mut oneshot::Receiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.await.ok(),
        None => pending().await,
    }
}

/// Where slow work's results come back to the conversation. Boxed: a channel holds a block of 32 of its messages for
/// the whole call, and an `Input` is ~120 bytes (docs/architecture.md, "Memory per call").
#[derive(Clone)]
pub(super) struct Results(mpsc::UnboundedSender<Box<Input>>);

impl Results {
    pub(super) fn send(&self, input: Input) -> Result<(), mpsc::error::SendError<Box<Input>>> {
        self.0.send(Box::new(input))
    }
}

/// The next message of an optional receiver (never, when there is none).
async fn recv<T>(rx: Option<&mut mpsc::Receiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => pending().await,
    }
}
