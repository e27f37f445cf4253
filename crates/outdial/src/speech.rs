//! Which speech engines a bot's calls use (docs/speech.md): `ttsProvider` and `sttProvider` name a local engine
//! (espeak-ng, Piper, Whisper) or a cloud provider reached with the bot's `speechCredentials`. A cloud synthesis
//! that fails is made again once, then spoken by the local engine unless the bot sets `ttsFallback: false`; every
//! failure is a `synthesis-failed` or `recognition-failed` event of the conversation and counts in
//! `outdial_speech_failures_total`.

use crate::engine::Ctx;
use outdial_conversation::Failure;
use outdial_core::Bot;
use outdial_core::speech::{SttEngine, TtsEngine};
use outdial_speech::cloud::{
    Cloud, azure::Azure, deepgram::Deepgram, elevenlabs::ElevenLabs, google::Google,
};
use outdial_speech::{SpeechError, SttProvider, TtsProvider};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Duration;

/// How long a cloud provider may take to answer a request or open a stream.
pub const CLOUD_TIMEOUT: Duration = Duration::from_secs(10);

fn cloud(ctx: &Ctx) -> Cloud {
    Cloud {
        client: ctx.bot_client.clone(),
        google_tokens: ctx.google_tokens.clone(),
        timeout: CLOUD_TIMEOUT,
    }
}

/// A cloud engine by name, or why it cannot be used.
type CloudTts = (&'static str, Result<Arc<dyn TtsProvider>, SpeechError>);

/// The cloud text-to-speech engine of `bot`, or None for a local one.
fn cloud_tts(ctx: &Ctx, bot: &Bot) -> Option<CloudTts> {
    let c = cloud(ctx);
    let creds = bot.speech_credentials.as_ref();
    fn built<E: TtsProvider + 'static>(
        r: Result<E, SpeechError>,
    ) -> Result<Arc<dyn TtsProvider>, SpeechError> {
        r.map(|e| Arc::new(e) as _)
    }
    Some(match bot.tts_provider.unwrap_or_default() {
        TtsEngine::Espeak | TtsEngine::Piper => return None,
        TtsEngine::Deepgram => ("deepgram", built(Deepgram::new(c, creds, None))),
        TtsEngine::Azure => ("azure", built(Azure::new(c, creds))),
        TtsEngine::Google => (
            "google",
            built(Google::new(c, creds, bot.credentials.as_ref(), None)),
        ),
        TtsEngine::Elevenlabs => ("elevenlabs", built(ElevenLabs::new(c, creds))),
    })
}

/// What a message sounds like, and the failures on the way (each with the engine that spoke instead, if any).
///
/// With `stream`, a cloud engine hands its audio there as it arrives (docs/speech.md, "Streaming synthesis") and
/// the result holds only what was not handed over. A stream that fails before any audio is retried and falls back
/// like a whole synthesis; one that fails after some audio has played is cut short there (a failure without
/// fallback: the person has heard the start in the cloud voice).
pub async fn synthesize(
    ctx: &Ctx,
    bot: &Bot,
    text: &str,
    language: &str,
    stream: Option<&(dyn Fn(Vec<i16>) + Send + Sync)>,
) -> (Result<Vec<i16>, Failure>, Vec<(String, Option<String>)>) {
    let voice = bot.voice_name.as_deref();
    let mut failures = Vec::new();
    if let Some((name, engine)) = cloud_tts(ctx, bot) {
        let heard = AtomicBool::new(false);
        let result = match (engine, stream) {
            (Ok(e), None) => {
                outdial_speech::cloud::once_more(name, || e.synthesize(text, language, voice)).await
            }
            (Ok(e), Some(sink)) => {
                let part = |pcm: Vec<i16>| {
                    if !pcm.is_empty() {
                        heard.store(true, Relaxed);
                        sink(pcm);
                    }
                };
                let nothing_heard = || !heard.load(Relaxed);
                outdial_speech::cloud::once_more_while(name, nothing_heard, || {
                    e.synthesize_streaming(text, language, voice, &part)
                })
                .await
                .map(|()| Vec::new())
            }
            (Err(e), _) => {
                outdial_speech::cloud::failed(name, &e);
                Err(e)
            }
        };
        let e = match result {
            Ok(pcm) => return (Ok(pcm), failures),
            Err(e) if heard.load(Relaxed) => {
                failures.push((e.to_string(), None));
                return (Ok(Vec::new()), failures);
            }
            Err(e) => e,
        };
        if bot.tts_fallback == Some(false) {
            return (Err(Failure(e.to_string())), failures);
        }
        let Some(local) = ctx.tts.clone() else {
            return (Err(Failure(e.to_string())), failures);
        };
        failures.push((e.to_string(), Some("espeak".to_string())));
        // The cloud voice's name means nothing to espeak-ng: its default voice of the language.
        let pcm = local.synthesize(text, language, None).await.map_err(Failure::of);
        return (pcm, failures);
    }
    let result = match ctx.tts_for(bot).await {
        Some(tts) => tts.synthesize(text, language, voice).await.map_err(Failure::of),
        None => Err(Failure("no text-to-speech engine is installed".into())),
    };
    (result, failures)
}

/// The speech-to-text engine of `bot`'s calls; an error names why a cloud one cannot be used.
pub fn recognizer(ctx: &Ctx, bot: &Bot) -> Result<Option<Arc<dyn SttProvider>>, SpeechError> {
    let c = cloud(ctx);
    let creds = bot.speech_credentials.as_ref();
    let model = bot.stt_model.as_deref();
    Ok(Some(match bot.stt_provider.unwrap_or_default() {
        SttEngine::Whisper => return Ok(ctx.stt.clone()),
        SttEngine::Moonshine => return Ok(ctx.moonshine().or_else(|| ctx.stt.clone())),
        SttEngine::Deepgram => Arc::new(Deepgram::new(c, creds, model)?),
        SttEngine::Azure => Arc::new(Azure::new(c, creds)?),
        SttEngine::Google => Arc::new(Google::new(c, creds, bot.credentials.as_ref(), model)?),
    }))
}
