//! The conversation's link to its bot (PRODUCT.md 7): opened at the answer (or before the INVITE when the bot
//! asked for `dialoutInitiated`), it carries the `start` event, the machine-detection and DTMF events to the bot,
//! and the bot's activities back to the conversation task. Every event sent is also kept in the timeline.

use crate::engine::Ctx;
use outdial_bots::acapi::AcApi;
use outdial_bots::streaming::AcStreaming;
use outdial_bots::{BotConnector, BotSession, FromBot, MediaFormat, activity};
use outdial_core::{Bot, BotType, Conversation};
use outdial_media::g711::{ulaw_decode, ulaw_encode};
use outdial_media::resample::resample;
use serde_json::{Value, json};

pub struct BotLink {
    session: BotSession,
    language: String,
}

impl BotLink {
    /// Opens the bot conversation of `conv`.
    pub async fn open(ctx: &Ctx, bot: &Bot, conv: &Conversation) -> Result<BotLink, String> {
        let session = connector(ctx, bot)?
            .open(&conv.id.to_string())
            .await
            .map_err(|e| e.to_string())?;
        Ok(BotLink {
            session,
            language: bot.language.clone(),
        })
    }

    async fn send(&self, ctx: &Ctx, conv: &Conversation, activity: Value) {
        let data =
            json!({"type": activity["type"], "name": activity["name"], "value": activity.get("value")});
        record(ctx, conv, &data).await;
        self.session.send(vec![activity]).await;
    }

    /// The `start` event with the call's fields.
    pub async fn start(&self, ctx: &Ctx, conv: &Conversation) {
        let a = activity::start(conv.start_parameters(), &self.language);
        self.send(ctx, conv, a).await;
    }

    /// `dialoutInitiated`, delivered before it returns (the bot has it before the INVITE goes out).
    pub async fn dialout_initiated(&self, ctx: &Ctx, conv: &Conversation) {
        let a = activity::event("dialoutInitiated", conv.start_parameters(), &self.language);
        record(ctx, conv, &json!({"type": "event", "name": "dialoutInitiated"})).await;
        self.session.deliver(vec![a]).await;
    }

    /// An event such as `machineDetection`, `DTMF`.
    pub async fn event(&self, ctx: &Ctx, conv: &Conversation, name: &str, value: Value) {
        let a = activity::event(name, value, &self.language);
        self.send(ctx, conv, a).await;
    }

    /// What the person said, as a `message` with the recognition's confidence.
    pub async fn message(&self, ctx: &Ctx, conv: &Conversation, text: &str, confidence: f32) {
        let a = activity::message(text, confidence, &self.language);
        let data = json!({"type": "message", "text": text, "confidence": confidence});
        record(ctx, conv, &data).await;
        self.session.send(vec![a]).await;
    }

    /// Whether this is a streaming bot: the person's audio goes to it and its audio to the person (no local speech
    /// engines).
    pub fn streams(&self) -> bool {
        self.session.media_format().is_some()
    }

    /// The caller's audio (8 kHz) to a streaming bot, in the format it chose.
    pub fn send_audio(&self, pcm8k: &[i16]) {
        let bytes = match self.session.media_format() {
            None => return,
            Some(MediaFormat::Mulaw) => pcm8k.iter().map(|&s| ulaw_encode(s)).collect(),
            Some(MediaFormat::Lpcm16_8k) => pcm8k.iter().flat_map(|s| s.to_le_bytes()).collect(),
            Some(MediaFormat::Lpcm16_16k) => resample(pcm8k, 8000, 16000)
                .iter()
                .flat_map(|s| s.to_le_bytes())
                .collect(),
        };
        self.session.send_audio(bytes);
    }

    /// A streaming bot's audio as 8 kHz PCM.
    pub fn decode_audio(&self, bytes: &[u8]) -> Vec<i16> {
        self.session
            .media_format()
            .map_or_else(Vec::new, |f| decode_raw(f, bytes))
    }

    /// The bot's next activity (or its failure).
    pub async fn next(&mut self) -> Option<FromBot> {
        self.session.events.recv().await
    }

    pub async fn close(&self, reason: &str, reason_code: &str) {
        self.session.close(reason, reason_code).await;
    }
}

/// Raw audio of a bot's format (streaming audio, `playUrl` files) as 8 kHz PCM.
pub fn decode_raw(format: MediaFormat, bytes: &[u8]) -> Vec<i16> {
    let pcm = |b: &[u8]| -> Vec<i16> {
        b.chunks_exact(2)
            .map(|c| i16::from_le_bytes([c[0], c[1]]))
            .collect()
    };
    match format {
        MediaFormat::Mulaw => bytes.iter().map(|&b| ulaw_decode(b)).collect(),
        MediaFormat::Lpcm16_8k => pcm(bytes),
        MediaFormat::Lpcm16_16k => resample(&pcm(bytes), 16000, 8000),
    }
}

/// An event sent to the bot, in the conversation's timeline.
async fn record(ctx: &Ctx, conv: &Conversation, data: &Value) {
    if let Err(e) = ctx.store.append_event(conv.id, "bot-event", data).await {
        tracing::warn!(conversation = %conv.id, "cannot record a bot event: {e}");
    }
}

/// The connector of a bot, by its type.
pub fn connector(ctx: &Ctx, bot: &Bot) -> Result<Box<dyn BotConnector>, String> {
    let url = bot
        .bot_url
        .as_deref()
        .ok_or_else(|| format!("bot unreachable: bot '{}' has no botUrl", bot.name))?;
    let connector = match bot.bot_type {
        BotType::AcApi => match (
            &bot.oauth_token_url,
            &bot.oauth_client_id,
            &bot.oauth_client_secret,
        ) {
            (Some(token_url), Some(id), Some(secret)) => {
                let client = outdial_bots::oauth::Client {
                    token_url: token_url.clone(),
                    client_id: id.clone(),
                    client_secret: secret.clone(),
                    scope: bot.oauth_scope.clone(),
                };
                AcApi::with_oauth(ctx.bot_client.clone(), url, client, ctx.bot_tokens.clone())
            }
            _ => AcApi::with_client(ctx.bot_client.clone(), url, bot.token.clone()),
        },
        BotType::AcApiStreaming => {
            let c = AcStreaming::new(url, bot.token.clone(), &bot.name).map_err(|e| e.to_string())?;
            return Ok(Box::new(c));
        }
        other => {
            return Err(format!(
                "bot type {} is not supported by this build (ac-api and ac-api-streaming only)",
                serde_json::to_value(other)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default()
            ));
        }
    }
    .map_err(|e| e.to_string())?;
    Ok(Box::new(connector))
}

/// The next thing the bot says, once there is a bot (never before).
pub async fn next_from(link: &mut Option<BotLink>) -> FromBot {
    match link.as_mut() {
        Some(l) => match l.next().await {
            Some(e) => e,
            None => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}
