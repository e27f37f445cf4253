//! The bot's activities in the order the person must hear them (PROTOCOLS.md 1.2): a message is spoken after the
//! ones before it; a hangup or transfer that follows a message takes effect once that message has been heard.
//! Prompts are held while machine detection decides (prepared, not played), and the ones prepared for a person
//! are dropped when a machine answered.

use crate::engine::Ctx;
use outdial_bots::activity::BotAction;
use outdial_media::{Media, MediaEvent};
use std::collections::VecDeque;
use std::time::Duration;

#[derive(Debug, Default)]
pub struct Prompts {
    queue: VecDeque<BotAction>,
    /// A message is being played.
    pub playing: bool,
    /// Nothing plays (detection has not decided, or a machine's greeting is still going).
    pub held: bool,
}

/// What to do next.
#[derive(Debug, PartialEq)]
pub enum Next {
    /// Speak this.
    Say(String),
    /// Carry out this (not a message).
    Act(BotAction),
}

impl Prompts {
    pub fn push(&mut self, action: BotAction) {
        self.queue.push_back(action);
    }

    /// The next thing to do now: None while a message plays, while held, or when there is nothing.
    pub fn next(&mut self) -> Option<Next> {
        if self.playing || self.held {
            return None;
        }
        match self.queue.pop_front()? {
            BotAction::Say(text) => Some(Next::Say(text)),
            other => Some(Next::Act(other)),
        }
    }

    /// A machine answered: what was prepared for a person is not said.
    pub fn drop_messages(&mut self) {
        self.queue.retain(|a| !matches!(a, BotAction::Say(_)));
    }
}

/// PRODUCT.md 7.5: when the bot fails, its `fallbackPrompt` (if it has one) is played to the person to the end
/// before the call is hung up — never dead air. Waits at most the prompt's length plus 2 s.
pub async fn play_fallback(
    ctx: &Ctx,
    media: Option<&mut Media>,
    bot: &outdial_core::Bot,
    language: &str,
    conversation: uuid::Uuid,
) {
    let (Some(m), Some(text), Some(tts)) = (media, bot.fallback_prompt.as_deref(), ctx.tts_for(bot).await)
    else {
        return;
    };
    let pcm = match tts.synthesize(text, language, bot.voice_name.as_deref()).await {
        Ok(p) if !p.is_empty() => p,
        Ok(_) => return,
        Err(e) => {
            tracing::warn!(%conversation, "cannot speak the fallback prompt: {e}");
            return;
        }
    };
    let audio = Duration::from_millis(pcm.len() as u64 / 8);
    m.stop_playout();
    m.play(pcm);
    let data = serde_json::json!({"text": text, "audioMs": audio.as_millis() as u64});
    if let Err(e) = ctx
        .store
        .append_event(conversation, "fallback-prompt", &data)
        .await
    {
        tracing::warn!(%conversation, "cannot record the fallback prompt: {e}");
    }
    // The end of this prompt (an earlier prompt cut short reports its end first).
    let started = tokio::time::Instant::now();
    let _ = tokio::time::timeout(audio + Duration::from_secs(2), async {
        while let Some(e) = m.events.recv().await {
            if matches!(e, MediaEvent::PlayoutDone) && started.elapsed() >= audio.mul_f32(0.8) {
                break;
            }
        }
    })
    .await;
}

/// A message in the pieces it is synthesised in: its sentences (ending in `.`, `?` or `!` before a space), a piece
/// shorter than 30 characters joined to the next. SSML stays whole.
pub fn sentences(text: &str) -> Vec<String> {
    if text.trim_start().starts_with('<') {
        return vec![text.to_string()];
    }
    let mut parts: Vec<String> = Vec::new();
    let mut cur = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        cur.push(c);
        let ends = ".?!".contains(c) && chars.peek().is_none_or(|n| n.is_whitespace());
        if ends && cur.trim().chars().count() >= 30 {
            parts.push(cur.trim().to_string());
            cur.clear();
        }
    }
    if !cur.trim().is_empty() {
        parts.push(cur.trim().to_string());
    }
    parts
}

/// Largest audio file `playUrl` fetches (about 5 minutes of 16-bit 8 kHz audio).
const PLAY_URL_MAX_BYTES: usize = 5 * 1024 * 1024;

/// The audio of a bot's `playUrl` as 8 kHz PCM: fetched over HTTP (at most 5 MiB, 10 s), raw µ-law / A-law /
/// 16-bit PCM when `format` says so (`raw/mulaw`, `raw/alaw`, `raw/lpcm16_8`, `raw/lpcm16`), else a WAV file of any
/// rate and encoding the WAV reader knows.
pub async fn fetch_audio(
    client: &reqwest::Client,
    url: &str,
    format: Option<&str>,
) -> Result<Vec<i16>, String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("playUrlUrl {url}: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("playUrlUrl {url}: only http and https URLs are played"));
    }
    let fetch = async {
        let mut r = client
            .get(parsed)
            .send()
            .await
            .map_err(|e| format!("cannot fetch {url}: {e}"))?;
        if !r.status().is_success() {
            return Err(format!("{url} answered HTTP {}", r.status().as_u16()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = r.chunk().await.map_err(|e| format!("{url}: {e}"))? {
            body.extend_from_slice(&chunk);
            if body.len() > PLAY_URL_MAX_BYTES {
                return Err(format!("{url} is larger than {PLAY_URL_MAX_BYTES} bytes"));
            }
        }
        Ok(body)
    };
    let body = tokio::time::timeout(Duration::from_secs(10), fetch)
        .await
        .map_err(|_| format!("{url} took longer than 10 s"))??;
    let pcm = match format.unwrap_or("") {
        "raw/alaw" => body
            .iter()
            .map(|&b| outdial_media::g711::alaw_decode(b))
            .collect(),
        f => match outdial_bots::MediaFormat::parse(f) {
            Some(raw) => crate::botlink::decode_raw(raw, &body),
            None => outdial_media::wav::decode_8k(&body).map_err(|e| format!("{url}: {e}"))?,
        },
    };
    if pcm.is_empty() {
        return Err(format!("{url} holds no audio"));
    }
    Ok(pcm)
}

/// Whether the person is speaking (two voiced 20 ms frames in a row): for barge-in, and to disarm the no-input
/// timer.
pub struct Listener {
    vad: outdial_detect::vad::Vad,
    voiced: u32,
}

impl Default for Listener {
    fn default() -> Self {
        Listener {
            vad: outdial_detect::vad::Vad::new(0.5, -45.0),
            voiced: 0,
        }
    }
}

impl Listener {
    /// Feeds the caller's audio (whole 20 ms frames); true when speech was heard in it.
    pub fn heard(&mut self, audio: &[i16]) -> bool {
        let heard = audio.chunks(outdial_media::FRAME).any(|f| {
            self.voiced = if self.vad.is_voice(f) { self.voiced + 1 } else { 0 };
            self.voiced >= 2
        });
        if heard {
            self.voiced = 0;
        }
        heard
    }

    pub fn reset(&mut self) {
        self.voiced = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_synthesised_sentence_by_sentence() {
        assert_eq!(
            sentences("Hello Alice, this is the reference bot. Would you like to hear about our new offer?"),
            vec![
                "Hello Alice, this is the reference bot.",
                "Would you like to hear about our new offer?"
            ]
        );
        // Short sentences go with the next; a dot inside a number does not split; SSML stays whole.
        assert_eq!(
            sentences("Hi. It costs 3.50 dollars today. Bye."),
            vec!["Hi. It costs 3.50 dollars today.", "Bye."]
        );
        assert_eq!(
            sentences("<speak>One. Two.</speak>"),
            vec!["<speak>One. Two.</speak>"]
        );
        assert_eq!(sentences(""), Vec::<String>::new());
    }

    #[test]
    fn a_hangup_waits_for_the_message_before_it() {
        let mut p = Prompts::default();
        p.push(BotAction::Say("Hello".into()));
        p.push(BotAction::Hangup(None));
        assert_eq!(p.next(), Some(Next::Say("Hello".into())));
        p.playing = true;
        assert_eq!(p.next(), None, "the hangup waits");
        p.playing = false;
        assert_eq!(p.next(), Some(Next::Act(BotAction::Hangup(None))));
        // Held during detection, then the person's prompts are dropped for a machine.
        p.held = true;
        p.push(BotAction::Say("Hi there".into()));
        p.push(BotAction::SendDtmf("1".into()));
        assert_eq!(p.next(), None);
        p.drop_messages();
        p.held = false;
        assert_eq!(p.next(), Some(Next::Act(BotAction::SendDtmf("1".into()))));
        assert_eq!(p.next(), None);
    }
}
