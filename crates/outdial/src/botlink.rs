//! The conversation's link to its bot (docs/bots.md): the engine's [`ToBot`] activities written in the bot
//! protocol's encoding, and the person's audio for streaming bots. The bot's own events come back on the receiver
//! [`BotLink::open`] returns.

use crate::engine::Ctx;
use outdial_bots::BotError;
use outdial_bots::acapi::AcApi;
use outdial_bots::dialogflow::{Dialogflow, Edition, Settings};
use outdial_bots::directline::DirectLine;
use outdial_bots::streaming::AcStreaming;
use outdial_bots::{BotConnector, BotSession, FromBot, MediaFormat, activity};
use outdial_conversation::ToBot;
use outdial_core::{Bot, BotType};
use outdial_media::g711::{ulaw_decode, ulaw_encode};
use outdial_media::resample::resample;
use serde_json::Value;
use tokio::sync::mpsc;

pub struct BotLink {
    session: BotSession,
    language: String,
}

impl BotLink {
    /// Opens the bot conversation of `conv`; returns it with the receiver of the bot's events.
    pub async fn open(
        ctx: &Ctx,
        bot: &Bot,
        conversation: uuid::Uuid,
        call: &Value,
    ) -> Result<(BotLink, mpsc::Receiver<FromBot>), BotError> {
        let mut session = connector(ctx, bot)?.open(&conversation.to_string(), call).await?;
        // Taken, not swapped for an empty receiver: a channel holds a block of 32 messages from its creation
        // (docs/architecture.md, "Memory per call").
        let events = session
            .take_events()
            .ok_or_else(|| BotError::Protocol("the session's events were already taken".into()))?;
        let link = BotLink {
            session,
            language: bot.language.clone(),
        };
        Ok((link, events))
    }

    /// An activity in the AudioCodes Bot API encoding (docs/bots.md).
    fn activity(&self, what: ToBot) -> Value {
        match what {
            ToBot::Start(params) => activity::start(params, &self.language),
            ToBot::DialoutInitiated(params) => activity::event("dialoutInitiated", params, &self.language),
            ToBot::Event { name, value } => activity::event(name, value, &self.language),
            ToBot::Message { text, confidence } => activity::message(&text, confidence, &self.language),
        }
    }

    /// Queues an activity (never waits).
    pub fn send(&self, what: ToBot) {
        self.session.send(vec![self.activity(what)]);
    }

    /// Queues an activity; the future resolves once the bot has answered it (or with why it failed).
    pub fn deliver(
        &self,
        what: ToBot,
    ) -> impl std::future::Future<Output = Result<(), BotError>> + Send + 'static {
        self.session.deliver(vec![self.activity(what)])
    }

    /// How another node closes this bot conversation (docs/cluster.md), when it can.
    pub fn detached(&self) -> Option<Value> {
        self.session.detached.clone()
    }

    /// Starts or stops a streaming bot's user stream.
    pub fn user_stream(&self, on: bool) {
        self.session.user_stream(on);
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

/// The connector of a bot, by its type.
pub fn connector(ctx: &Ctx, bot: &Bot) -> Result<Box<dyn BotConnector>, BotError> {
    if bot.bot_type == BotType::DirectLine {
        let secret = bot.bot_secret.as_deref().unwrap_or_default();
        let base = bot
            .direct_line_url
            .as_deref()
            .unwrap_or(outdial_core::frameworks::DIRECT_LINE_URL);
        let c = DirectLine::new(
            ctx.bot_client.clone(),
            base,
            secret,
            bot.direct_line_flavor,
            &bot.language,
        )?;
        return Ok(Box::new(c));
    }
    if let BotType::DialogflowCx | BotType::DialogflowEs = bot.bot_type {
        let edition = if bot.bot_type == BotType::DialogflowCx {
            Edition::Cx
        } else {
            Edition::Es
        };
        let settings = Settings {
            project_id: bot.project_id.clone().unwrap_or_default(),
            location: bot.location.clone(),
            agent_id: bot.agent_id.clone(),
            environment: bot.environment.clone(),
            language_code: bot.language_code.clone().unwrap_or_else(|| bot.language.clone()),
            api_endpoint: bot.api_endpoint.clone(),
        };
        let c = Dialogflow::new(
            ctx.bot_client.clone(),
            edition,
            &settings,
            bot.credentials.as_ref(),
            ctx.google_tokens.clone(),
        )?;
        return Ok(Box::new(c));
    }
    let url = bot
        .bot_url
        .as_deref()
        .ok_or_else(|| BotError::Unreachable(format!("bot '{}' has no botUrl", bot.name)))?;
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
            let c = AcStreaming::new(
                ctx.bot_client.clone(),
                url,
                bot.token.clone(),
                &bot.name,
                bot.streaming_mode,
            )?;
            return Ok(Box::new(c));
        }
        other => {
            return Err(BotError::Unsupported(format!(
                "bot type {} is not supported by this build (ac-api and ac-api-streaming only)",
                serde_json::to_value(other)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default()
            )));
        }
    }?;
    Ok(Box::new(connector))
}
