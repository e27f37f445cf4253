//! The person's speech to the bot: while recognition is on, the caller's audio (8 kHz) is upsampled to 16 kHz and
//! streamed to the speech-to-text engine; each final transcript goes to the bot as a `message` activity
//! (PROTOCOLS.md 1.2). Recognition starts at the answer (`dialoutStartRecognitionOnConnect`, or barge-in) or once
//! the bot's first prompt has played, and follows the bot's `startRecognition` / `stopRecognition`.

use crate::engine::Ctx;
use outdial_speech::stt::Upsampler;
use outdial_speech::{SttEvent, SttOptions, SttStream};

#[derive(Debug, Default)]
pub struct Recognition {
    stream: Option<SttStream>,
    up: Upsampler,
    /// The bot stopped recognition: it starts again only when the bot asks.
    stopped_by_bot: bool,
    warned: bool,
}

impl Recognition {
    pub fn active(&self) -> bool {
        self.stream.is_some()
    }

    /// Starts listening (no-op when already listening). False when there is no engine.
    pub fn start(&mut self, ctx: &Ctx, language: &str, conversation: uuid::Uuid) -> bool {
        if self.stream.as_ref().is_some_and(SttStream::is_open) {
            return true;
        }
        let Some(stt) = &ctx.stt else {
            if !self.warned {
                self.warned = true;
                tracing::warn!(%conversation, "no speech-to-text engine: the person's words do not reach the bot");
            }
            return false;
        };
        self.up = Upsampler::default();
        self.stream = Some(stt.stream(SttOptions {
            language: language.to_string(),
            end_silence_ms: ctx.stt_end_silence_ms,
            ..Default::default()
        }));
        true
    }

    /// Starts unless the bot has stopped recognition.
    pub fn start_unless_stopped(&mut self, ctx: &Ctx, language: &str, conversation: uuid::Uuid) {
        if !self.stopped_by_bot {
            self.start(ctx, language, conversation);
        }
    }

    /// The bot's `startRecognition`.
    pub fn start_by_bot(&mut self, ctx: &Ctx, language: &str, conversation: uuid::Uuid) {
        self.stopped_by_bot = false;
        self.start(ctx, language, conversation);
    }

    /// The bot's `stopRecognition`: what is being said is still delivered.
    pub fn stop_by_bot(&mut self) {
        self.stopped_by_bot = true;
        if let Some(s) = self.stream.as_mut() {
            s.finish();
        }
    }

    /// The caller's audio (8 kHz).
    pub fn feed(&mut self, pcm8k: &[i16]) {
        if let Some(s) = &self.stream {
            s.push(self.up.process(pcm8k));
        }
    }

    /// The next recognition event (pending while not listening).
    pub async fn next(&mut self) -> SttEvent {
        let Some(s) = self.stream.as_mut() else {
            return std::future::pending().await;
        };
        match s.events.recv().await {
            Some(e) => e,
            None => {
                // A finished stream has delivered its last words.
                self.stream = None;
                std::future::pending().await
            }
        }
    }
}
