//! The call engine: one task per conversation ([`crate::call::run`]) owning its state machine and receiving
//! commands on one channel, plus recovery of conversations a crash left unfinished.

use crate::call::{self, Command};
use crate::health::{TrunkHealth, TrunkState};
use async_trait::async_trait;
use dashmap::DashMap;
use outdial_api::engine::{AcceptedCall, CallEngine, EngineError, HangupOutcome};
use outdial_core::conversation::{Conversation, ReasonCode};
use outdial_core::{Application, Bot, Trunk};
use outdial_limits::Lease;
use outdial_sip::SipAgent;
use outdial_store::{Kind, Store, StoreError};
use serde_json::json;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use uuid::Uuid;

/// What every conversation task shares.
pub struct Ctx {
    pub store: Arc<dyn Store>,
    pub agent: Arc<SipAgent>,
    /// Address RTP binds to and offers.
    pub rtp_ip: IpAddr,
    /// The free RTP port pairs (docs/operations.md, "RTP ports").
    pub rtp_pool: outdial_media::ports::PortPool,
    pub max_call_duration: Duration,
    /// Text to speech for the bots' messages; None when no engine is installed.
    pub tts: Option<Arc<dyn outdial_speech::TtsProvider>>,
    /// The Piper voice (bots with `ttsProvider` `piper`), loaded at its first use; None inside when not installed.
    pub piper: tokio::sync::OnceCell<Option<Arc<dyn outdial_speech::TtsProvider>>>,
    /// Speech to text for the person's words; None when no engine is installed.
    pub stt: Option<Arc<dyn outdial_speech::SttProvider>>,
    /// Moonshine (bots with `sttProvider` `moonshine`), loaded at its first use.
    pub moonshine: MoonshineSlot,
    /// Silence that ends the person's utterance.
    pub stt_end_silence_ms: u32,
    /// `speech.early_end_ms`: the pause after which a complete sentence ends the turn (0: off).
    pub stt_early_end_ms: u32,
    /// `speech.lookahead_ms`: the pause at which an engine cheap enough recognises the words so far (0: off).
    pub stt_lookahead_ms: u32,
    /// `speech.second_opinions`: the permits of detection's second opinions (one per running recognition).
    pub second_opinions: Arc<tokio::sync::Semaphore>,
    /// The one writer of conversation state and notifications.
    pub recorder: crate::recorder::Recorder,
    /// The HTTP client of bot connections (one connection pool for all calls).
    /// docs/security.md, "Outbound requests": bots, their token endpoints and `playUrl`s.
    pub bot_client: outdial_net::Guarded,
    /// OAuth access tokens towards bots, shared by all calls.
    pub bot_tokens: outdial_bots::oauth::TokenCache,
    /// Dialogflow bots' access tokens, by service account, shared by every call.
    pub google_tokens: outdial_bots::dialogflow::auth::GoogleTokens,
    /// No RTP for this long ends an answered call with `error`; None = never.
    pub media_timeout: Option<Duration>,
    pub health: Arc<TrunkHealth>,
    /// How far from their schedule all calls' RTP packets left (the `outdial_rtp_send_offset_*` metrics).
    pub send_timing: Arc<outdial_media::SendTiming>,
    /// The threads the calls' media loops run on (`sip.media_threads`).
    pub media_threads: Arc<outdial_media::MediaThreads>,
}

impl Ctx {
    /// The text-to-speech engine of a bot: `ttsProvider` `piper` is the Piper neural voice (espeak-ng, with a
    /// warning, when it is not installed); anything else is espeak-ng.
    pub async fn tts_for(&self, bot: &outdial_core::Bot) -> Option<Arc<dyn outdial_speech::TtsProvider>> {
        if bot.tts_provider == Some(outdial_core::speech::TtsEngine::Piper) {
            let piper = self
                .piper
                .get_or_init(|| async {
                    let loaded = tokio::task::spawn_blocking(outdial_speech::Piper::load_default).await;
                    match loaded {
                        Ok(Ok(p)) => Some(Arc::new(p) as Arc<dyn outdial_speech::TtsProvider>),
                        Ok(Err(e)) => {
                            tracing::warn!("{e}; bots with ttsProvider piper speak with espeak-ng");
                            None
                        }
                        Err(e) => {
                            tracing::warn!("the Piper voice did not load: {e}");
                            None
                        }
                    }
                })
                .await;
            if let Some(p) = piper {
                return Some(p.clone());
            }
        }
        self.tts.clone()
    }
}

/// Where Moonshine is (`speech.moonshine_model`, None: the PyPI package), how many replicas, and the model once
/// loaded (None inside when it is not installed).
#[derive(Default)]
pub struct MoonshineSlot {
    pub dir: Option<std::path::PathBuf>,
    pub replicas: usize,
    pub loaded: std::sync::OnceLock<Option<Arc<dyn outdial_speech::SttProvider>>>,
}

impl Ctx {
    /// The Moonshine recogniser, loaded now if it was not (about a second, once; the server loads it at start when
    /// a bot uses it); None, with a warning once, when it is not installed.
    pub fn moonshine(&self) -> Option<Arc<dyn outdial_speech::SttProvider>> {
        let MoonshineSlot {
            dir,
            replicas,
            loaded: cell,
        } = &self.moonshine;
        let load = || {
            let loaded = match dir {
                Some(d) => outdial_speech::moonshine::find_default()
                    .and_then(|(_, lib)| outdial_speech::Moonshine::load(d, &lib, *replicas)),
                None => outdial_speech::Moonshine::load_default(*replicas),
            };
            match loaded {
                Ok(m) => {
                    let how = if m.is_folded() {
                        ""
                    } else {
                        " (the package's ORT files: ~5 times slower; run scripts/moonshine-onnx.py)"
                    };
                    tracing::info!("speech to text: Moonshine, {replicas} replica(s){how}");
                    Some(Arc::new(m) as Arc<dyn outdial_speech::SttProvider>)
                }
                Err(e) => {
                    tracing::warn!("{e}; bots with sttProvider moonshine are heard by Whisper");
                    None
                }
            }
        };
        cell.get()
            .cloned()
            .unwrap_or_else(|| tokio::task::block_in_place(|| cell.get_or_init(load).clone()))
    }
}

/// A call's RTP figures, for its timeline.
pub fn media_stats(m: &outdial_media::Media) -> serde_json::Value {
    use std::sync::atomic::Ordering::Relaxed;
    let s = &m.stats;
    let (buckets, max_us) = s.send_timing.snapshot();
    json!({
        "packetsSent": s.sent.load(Relaxed),
        "packetsReceived": s.received.load(Relaxed),
        "packetsLost": s.lost.load(Relaxed),
        "packetsLate": s.late.load(Relaxed),
        "packetsDuplicate": s.duplicate.load(Relaxed),
        "datagramsDropped": s.dropped.load(Relaxed),
        "jitterMs": s.jitter_us.load(Relaxed) as f64 / 1000.0,
        "dtmfReceived": s.dtmf_received.load(Relaxed),
        "rtcpSent": s.rtcp_sent.load(Relaxed),
        "rtcpReceived": s.rtcp.load(Relaxed),
        "remote": {
            "fractionLost": s.remote_fraction_lost.load(Relaxed) as f64 / 256.0,
            "packetsLost": s.remote_cumulative_lost.load(Relaxed),
            "jitterMs": s.remote_jitter_us.load(Relaxed) as f64 / 1000.0,
            "rttMs": s.rtt_us.load(Relaxed) as f64 / 1000.0,
        },
        "sendOffset": {
            "maxMs": max_us as f64 / 1000.0,
            "buckets": outdial_media::session::SEND_TIMING_BOUNDS_US
                .iter()
                .map(|b| format!("<{}ms", *b as f64 / 1000.0))
                .chain(std::iter::once(">=20ms".to_string()))
                .zip(buckets.map(serde_json::Value::from))
                .collect::<serde_json::Map<String, serde_json::Value>>(),
        },
    })
}

pub struct Engine {
    ctx: Arc<Ctx>,
    live: Arc<DashMap<Uuid, mpsc::Sender<Command>>>,
}

impl Engine {
    /// What the conversation tasks share.
    pub fn ctx(&self) -> Arc<Ctx> {
        self.ctx.clone()
    }

    pub fn new(ctx: Ctx) -> Self {
        Engine {
            ctx: Arc::new(ctx),
            live: Arc::new(DashMap::new()),
        }
    }

    /// How many conversations run now.
    pub fn live(&self) -> usize {
        self.live.len()
    }

    /// Waits until no conversation runs, or `limit` has passed; true when none runs.
    pub async fn wait_idle(&self, limit: Duration) -> bool {
        let until = tokio::time::Instant::now() + limit;
        while !self.live.is_empty() {
            if tokio::time::Instant::now() >= until {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        true
    }

    /// Ends every running conversation (`error` / `gateway shutting down`, with BYE or CANCEL).
    pub async fn end_all(&self) {
        let senders: Vec<_> = self.live.iter().map(|e| e.value().clone()).collect();
        for tx in senders {
            let _ = tx.send(Command::Shutdown).await;
        }
    }

    /// Ends conversations this node's previous run left unfinished (a crash): reasonCode `error`, reason
    /// `gateway restarted`, with their terminal notification. Other nodes' conversations are not touched.
    pub async fn recover(&self) -> anyhow::Result<usize> {
        let left = self.ctx.store.live_conversations().await?;
        let n = left.len();
        self.end_left(left, "gateway restarted").await?;
        Ok(n)
    }

    /// Ends the conversations taken over from a lost node of the cluster (docs/cluster.md): BYE from the stored
    /// dialog, then reasonCode `error`, reason `node <id> lost`, with their terminal notifications.
    pub async fn end_taken(&self, taken: Vec<(String, Conversation)>) -> anyhow::Result<()> {
        let mut by_node: std::collections::BTreeMap<String, Vec<Conversation>> = Default::default();
        for (node, c) in taken {
            by_node.entry(node).or_default().push(c);
        }
        for (node, list) in by_node {
            tracing::warn!("node '{node}' lost: ending the {} call(s) it ran", list.len());
            self.end_left(list, &format!("node {node} lost")).await?;
        }
        Ok(())
    }

    /// Ends conversations nobody runs any more: the answered ones get their BYE first, all at once; then each
    /// ends with reasonCode `error` and `reason`.
    async fn end_left(&self, left: Vec<Conversation>, reason: &str) -> anyhow::Result<()> {
        let store = &*self.ctx.store;
        // docs/operations.md, "… the gateway is killed": answered calls get their BYE first, all at once (a far end
        // that does not answer costs 5 s, not 5 s per call).
        let mut byes = tokio::task::JoinSet::new();
        for c in &left {
            let Some(saved) = c
                .sip_dialog
                .clone()
                .and_then(|d| serde_json::from_value::<outdial_sip::SavedDialog>(d).ok())
            else {
                continue;
            };
            let (agent, id, why) = (self.ctx.agent.clone(), c.id, reason.to_string());
            byes.spawn(async move {
                match agent.end_saved(&saved, Duration::from_secs(5)).await {
                    Ok(()) => tracing::info!(conversation = %id, "BYE sent for the call left up ({why}), and answered"),
                    Err(e) => tracing::warn!(conversation = %id, "cannot end the call left up ({why}): {e}"),
                }
            });
        }
        // The bot conversations another node opened are closed from here (docs/cluster.md), beside the BYEs.
        for c in &left {
            let Some(link) = c.bot_link.clone() else {
                continue;
            };
            let bot: Option<Bot> = store
                .get_object(Kind::Bot, &c.bot)
                .await?
                .and_then(|d| serde_json::from_value(d).ok());
            let Some(bot) = bot else { continue };
            let connector = match crate::botlink::connector(&self.ctx, &bot) {
                Ok(connector) => connector,
                Err(e) => {
                    tracing::warn!(conversation = %c.id, "cannot close the bot conversation: {e}");
                    continue;
                }
            };
            let (id, why) = (c.id, reason.to_string());
            byes.spawn(async move {
                match connector
                    .close_detached(&id.to_string(), &link, &why, "error")
                    .await
                {
                    Ok(()) => tracing::info!(conversation = %id, "bot conversation closed ({why})"),
                    Err(e) => {
                        tracing::warn!(conversation = %id, "cannot close the bot conversation ({why}): {e}")
                    }
                }
            });
        }
        byes.join_all().await;
        for c in left {
            let secret = notify_secret_of(store, &c).await?;
            self.ctx
                .recorder
                .end(c, ReasonCode::Error, reason, secret.as_deref(), Lease::none())
                .await?;
        }
        Ok(())
    }
}

/// The signing key a conversation's notifications use: its application's, else its bot's. A store that fails
/// is an error (the notification would otherwise go out unsigned); an object that is gone has no key.
async fn notify_secret_of(store: &dyn Store, c: &Conversation) -> Result<Option<String>, StoreError> {
    let app: Option<Application> = store
        .get_object(Kind::Application, &c.client_id)
        .await?
        .and_then(|d| serde_json::from_value(d).ok());
    if let Some(s) = app.and_then(|a| a.notify_secret) {
        return Ok(Some(s));
    }
    let bot: Option<Bot> = store
        .get_object(Kind::Bot, &c.bot)
        .await?
        .and_then(|d| serde_json::from_value(d).ok());
    Ok(bot.and_then(|b| b.notify_secret))
}

#[async_trait]
impl CallEngine for Engine {
    async fn start(&self, accepted: AcceptedCall) {
        let id = accepted.conversation.id;
        let (tx, rx) = mpsc::channel(4);
        self.live.insert(id, tx);
        let (ctx, live) = (self.ctx.clone(), self.live.clone());
        // Boxed: the task's future would otherwise hold the accepted call (its conversation, bot and trunk) for the
        // whole call (call::run).
        let accepted = Box::new(accepted);
        tokio::spawn(async move {
            call::run(ctx, accepted, rx).await;
            live.remove(&id);
        });
    }

    async fn hangup(&self, id: Uuid) -> HangupOutcome {
        let Some(tx) = self.live.get(&id).map(|t| t.clone()) else {
            return HangupOutcome::NotRunning;
        };
        if tx.send(Command::Hangup).await.is_ok() {
            HangupOutcome::Ending
        } else {
            HangupOutcome::NotRunning
        }
    }

    fn trunk_usable(&self, trunk: &Trunk) -> Result<(), EngineError> {
        if let Some(why) = self.ctx.health.down_reason(&trunk.name) {
            return Err(EngineError::TrunkDown(why));
        }
        // A call needs an RTP port pair: without one it would fail anyway, so it is refused now.
        let pool = &self.ctx.rtp_pool;
        if pool.free() == 0 {
            let (first, last) = pool.range();
            return Err(EngineError::Busy(format!(
                "no free RTP port: all {} port pairs of {first}-{last} are in use (sip.rtp_ports)",
                pool.total()
            )));
        }
        Ok(())
    }

    /// Not ready when every trunk watched by keep-alive is down.
    fn ready(&self) -> Result<(), EngineError> {
        let states = self.ctx.health.states();
        if !states.is_empty() && states.iter().all(|(_, s)| matches!(s, TrunkState::Down { .. })) {
            let why = "every trunk is down (no answer to keep-alive OPTIONS)";
            return Err(EngineError::NotReady(why.into()));
        }
        Ok(())
    }

    async fn test_bot(&self, bot: &Bot) -> Result<(), EngineError> {
        let test = |e: outdial_bots::BotError| EngineError::BotTest(e.to_string());
        let connector = crate::botlink::connector(&self.ctx, bot).map_err(test)?;
        connector.validate().await.map_err(test)
    }

    fn live_calls(&self) -> usize {
        self.live.len()
    }

    fn trunk_states(&self) -> Vec<(String, String)> {
        self.ctx
            .health
            .states()
            .into_iter()
            .map(|(name, s)| {
                let state = match s {
                    TrunkState::Unknown => "unknown".to_string(),
                    TrunkState::Up { status } => format!("up ({status})"),
                    TrunkState::Down { error, .. } => format!("down: {error}"),
                };
                (name, state)
            })
            .collect()
    }
}
