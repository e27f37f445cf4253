//! Streaming speech to text: push 16 kHz audio, receive `SpeechStarted`, partial and final transcripts. Engines
//! that transcribe whole utterances (Whisper) get streaming from [`stream`]: a voice detector finds where each
//! utterance starts and ends (endpointing), the engine transcribes it, partial transcripts come from the audio
//! heard so far while the person is still speaking.

use crate::SpeechError;
use crate::endpoint::{Endpointer, Step};
use crate::moonshine::Moonshine;
use crate::whisper::{Transcript, Whisper};
use std::collections::VecDeque;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Samples per second of the audio pushed to a stream.
pub const RATE: usize = 16_000;

/// How a recognition stream listens.
#[derive(Debug, Clone)]
pub struct SttOptions {
    /// BCP 47 (`en-US`).
    pub language: String,
    /// Silence after speech that ends an utterance.
    pub end_silence_ms: u32,
    /// Smart endpointing: a pause this long ends the turn when the words so far make a complete sentence
    /// ([`crate::turn::sounds_complete`]); else `end_silence_ms` does. None: only `end_silence_ms`.
    pub early_end_ms: Option<u32>,
    /// Smart endpointing's look-ahead: the words so far are recognised at a pause this long (shorter than
    /// `early_end_ms`), so that their text is ready when the pause reaches `early_end_ms`. A pause the person
    /// breaks before then costs a recognition for nothing. None: recognised at `early_end_ms`.
    pub lookahead_ms: Option<u32>,
    /// Partial transcripts this often while the person speaks (None: finals only).
    pub partial_interval_ms: Option<u32>,
    /// An utterance is cut here (Whisper reads at most 30 s).
    pub max_utterance_ms: u32,
}

impl Default for SttOptions {
    fn default() -> Self {
        SttOptions {
            language: "en-US".into(),
            end_silence_ms: 600,
            early_end_ms: None,
            lookahead_ms: None,
            partial_interval_ms: None,
            max_utterance_ms: 15_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum SttEvent {
    /// The person started speaking (used for barge-in).
    SpeechStarted,
    Partial(Transcript),
    /// An utterance, with the silence waited to decide that it ended.
    Final(Transcript),
    /// The engine failed on an utterance; the stream goes on.
    Failed(String),
}

/// One recognition: [`SttStream::push`] audio, read [`SttStream::events`]. Dropping it stops the recognition
/// (what was being said is still transcribed and delivered).
#[derive(Debug)]
pub struct SttStream {
    pub(crate) audio: Option<mpsc::UnboundedSender<Vec<i16>>>,
    pub events: mpsc::Receiver<SttEvent>,
}

impl SttStream {
    /// 16 kHz mono audio, any length.
    pub fn push(&self, pcm: Vec<i16>) {
        if let Some(a) = &self.audio {
            let _ = a.send(pcm);
        }
    }

    /// Whether audio is still taken.
    pub fn is_open(&self) -> bool {
        self.audio.is_some()
    }

    /// No more audio: what is being said is transcribed and delivered, then `events` ends.
    pub fn finish(&mut self) {
        self.audio = None;
    }
}

/// A speech-to-text engine.
pub trait SttProvider: Send + Sync {
    fn name(&self) -> &'static str;
    fn stream(&self, options: SttOptions) -> SttStream;
    /// Whether recognising the words at every short pause is cheap enough for [`SttOptions::lookahead_ms`]: a
    /// local engine whose cost follows the utterance's length (not Whisper, which reads 30 s whatever the length,
    /// nor a cloud service billed per request).
    fn cheap_lookahead(&self) -> bool {
        false
    }
}

impl SttProvider for Whisper {
    fn name(&self) -> &'static str {
        "whisper"
    }

    fn stream(&self, options: SttOptions) -> SttStream {
        let w = self.clone();
        local(move |pcm, lang| w.transcribe(&pcm, &lang), options)
    }
}

impl SttProvider for Moonshine {
    fn name(&self) -> &'static str {
        "moonshine"
    }

    fn stream(&self, options: SttOptions) -> SttStream {
        let m = self.clone();
        let busy = self.clone();
        let recognize = local_recognizer(move |pcm, _lang| m.transcribe(&pcm));
        stream_under_load(recognize, Some(Arc::new(move || busy.is_busy())), options)
    }

    fn cheap_lookahead(&self) -> bool {
        true
    }
}

/// [`stream`] around a local engine's blocking transcription of one utterance, run off the async workers.
fn local<F>(transcribe: F, options: SttOptions) -> SttStream
where
    F: Fn(Vec<i16>, String) -> Result<Transcript, SpeechError> + Send + Sync + 'static,
{
    stream(local_recognizer(transcribe), options)
}

/// A local engine's blocking transcription as a [`Recognizer`], run off the async workers.
fn local_recognizer<F>(transcribe: F) -> Recognizer
where
    F: Fn(Vec<i16>, String) -> Result<Transcript, SpeechError> + Send + Sync + 'static,
{
    let transcribe = Arc::new(transcribe);
    Arc::new(move |pcm: Vec<i16>, lang: String| {
        let t = transcribe.clone();
        Box::pin(async move {
            match tokio::task::spawn_blocking(move || t(pcm, lang)).await {
                Ok(r) => r,
                Err(e) => Err(SpeechError::Stt(format!("recognition task: {e}"))),
            }
        }) as RecognizeFuture
    })
}

/// Whether the engine has no free capacity now (every replica of the model is recognising).
pub type Busy = Arc<dyn Fn() -> bool + Send + Sync>;

/// The transcript of one utterance, on its way.
pub type RecognizeFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Transcript, SpeechError>> + Send>>;

/// Transcribes one utterance of 16 kHz audio in the given language (a local model off the async threads, or a
/// cloud service's REST recognition).
pub type Recognizer = Arc<dyn Fn(Vec<i16>, String) -> RecognizeFuture + Send + Sync>;

/// Streaming recognition with voice-activity endpointing around an utterance recognizer.
pub fn stream(recognize: Recognizer, options: SttOptions) -> SttStream {
    stream_under_load(recognize, None, options)
}

/// [`stream`] for an engine that says when it is [`Busy`]: a look-ahead recognition ([`SttOptions::lookahead_ms`])
/// is then put off until the pause reaches `early_end_ms` — a pause the person breaks meanwhile costs nothing, which
/// matters most when every replica is taken.
///
/// An engine slower than the audio (a loaded machine) does no stale work: before each recognition the audio that
/// came meanwhile is read, and words already superseded are not recognised — a partial with newer words queued
/// behind it, a pause the person has already broken. A pause's words are a partial transcript too (when partials
/// are asked for), so that nothing newer is lost by skipping one.
pub fn stream_under_load(recognize: Recognizer, busy: Option<Busy>, options: SttOptions) -> SttStream {
    let (audio, mut audio_rx) = mpsc::unbounded_channel::<Vec<i16>>();
    let (tx, events) = mpsc::channel(64);
    tokio::spawn(async move {
        let mut ep = Endpointer::new(&options);
        let run = |pcm: Vec<i16>| recognize(pcm, options.language.clone());
        let partials = options.partial_interval_ms.is_some();
        // The words at the last pause that did not end the turn: (utterance, pause, transcript).
        let mut heard_at_pause: Option<(u64, u64, Transcript)> = None;
        // A look-ahead put off while the engine was busy, and the pause whose words are recognised now regardless.
        let mut deferred: Option<(u64, u64, Vec<i16>)> = None;
        let mut forced: Option<u64> = None;
        loop {
            let chunk = audio_rx.recv().await;
            let mut steps: VecDeque<Step> = match &chunk {
                Some(c) => ep.push(c).into(),
                None => ep.finish().into_iter().collect(),
            };
            while let Some(step) = steps.pop_front() {
                if matches!(step, Step::Partial(_) | Step::Pause { .. }) {
                    // What came while the engine worked decides whether these words are still worth it.
                    read_queued(&mut audio_rx, &mut ep, &mut steps);
                }
                let event = match step {
                    Step::Started => SttEvent::SpeechStarted,
                    // Newer words are queued: finals must not fall behind.
                    Step::Partial(_) if superseded(&steps, &ep) => continue,
                    Step::Partial(pcm) => match run(pcm).await {
                        Ok(t) if !t.text.is_empty() => SttEvent::Partial(t),
                        _ => continue,
                    },
                    // The person already went on: these words will not end the turn.
                    Step::Pause { pause, .. } if ep.resumed_since(pause) => continue,
                    // Smart endpointing: the words so far, at a short pause. The audio heard meanwhile decides:
                    // if the person went on, the transcript is dropped (the utterance's end brings the whole).
                    Step::Pause { n, pause, pcm } => {
                        if forced != Some(pause) && busy.as_ref().is_some_and(|b| b()) {
                            deferred = Some((n, pause, pcm));
                            continue;
                        }
                        let t = run(pcm).await;
                        read_queued(&mut audio_rx, &mut ep, &mut steps);
                        let partial = match &t {
                            Ok(t) if partials && !t.text.is_empty() => Some(SttEvent::Partial(t.clone())),
                            _ => None,
                        };
                        heard_at_pause = match t {
                            Ok(t) if !ep.resumed_since(pause) && !t.text.is_empty() => Some((n, pause, t)),
                            _ => None,
                        };
                        match partial {
                            Some(p) => p,
                            None => continue,
                        }
                    }
                    // The pause lasted `early_end_ms`: if its words read as a complete sentence, the turn ends
                    // here; if not and the person says no more, they are still its text (below).
                    Step::PauseHeld { n, pause } => {
                        // A look-ahead put off: the words are recognised now, then this step comes again.
                        if let Some((m, p, pcm)) = deferred.take_if(|(m, p, _)| *m == n && *p == pause) {
                            forced = Some(p);
                            steps.push_front(Step::PauseHeld { n, pause });
                            steps.push_front(Step::Pause { n: m, pause: p, pcm });
                            continue;
                        }
                        let complete = matches!(&heard_at_pause, Some((m, p, t)) if *m == n && *p == pause
                            && !ep.resumed_since(pause)
                            && crate::turn::sounds_complete(&t.text, &options.language));
                        let Some((_, _, t)) = heard_at_pause.take_if(|_| complete) else {
                            continue;
                        };
                        // The same utterance may have ended by silence meanwhile: it is not recognised again.
                        match steps
                            .iter()
                            .position(|s| matches!(s, Step::Utterance { n: m, .. } if *m == n))
                        {
                            Some(i) => drop(steps.remove(i)),
                            None => ep.end_now(n),
                        }
                        SttEvent::Final(t)
                    }
                    // The utterance ended in the silence after a pause whose words were recognised, with nothing said
                    // since: those words are the text (the silence adds nothing to recognise).
                    Step::Utterance { n, pcm } => match heard_at_pause.take() {
                        Some((m, pause, t)) if m == n && !ep.resumed_since(pause) => SttEvent::Final(t),
                        _ => match run(pcm).await {
                            Ok(t) if !t.text.is_empty() => SttEvent::Final(t),
                            Ok(_) => continue,
                            Err(e) => SttEvent::Failed(e.to_string()),
                        },
                    },
                };
                if tx.send(event).await.is_err() {
                    return;
                }
            }
            if chunk.is_none() {
                return;
            }
        }
    });
    SttStream {
        audio: Some(audio),
        events,
    }
}

/// Takes the audio queued so far through the endpointer, its steps after those already waiting.
fn read_queued(
    audio: &mut mpsc::UnboundedReceiver<Vec<i16>>,
    ep: &mut Endpointer,
    steps: &mut VecDeque<Step>,
) {
    while let Ok(c) = audio.try_recv() {
        steps.extend(ep.push(&c));
    }
}

/// Whether newer words than a partial's are queued: a later partial or utterance, or a pause the person has not
/// broken (its words are recognised, and are a partial too).
fn superseded(steps: &VecDeque<Step>, ep: &Endpointer) -> bool {
    steps.iter().any(|s| match s {
        Step::Partial(_) | Step::Utterance { .. } => true,
        Step::Pause { pause, .. } => !ep.resumed_since(*pause),
        Step::Started | Step::PauseHeld { .. } => false,
    })
}

/// 8 kHz → 16 kHz for a stream of chunks: a half-band interpolator (16-tap windowed sinc), 1 ms of delay.
#[derive(Debug, Clone)]
pub struct Upsampler {
    history: VecDeque<f32>,
    taps: [f32; TAPS],
}

const TAPS: usize = 8;

impl Default for Upsampler {
    fn default() -> Self {
        let mut taps = [0f32; TAPS];
        for (k, t) in taps.iter_mut().enumerate() {
            let x = k as f64 + 0.5;
            let sinc = (std::f64::consts::PI * x).sin() / (std::f64::consts::PI * x);
            let window = 0.5 + 0.5 * (std::f64::consts::PI * x / (TAPS as f64 + 0.5)).cos();
            *t = (sinc * window) as f32;
        }
        let sum: f32 = taps.iter().sum::<f32>() * 2.0;
        taps.iter_mut().for_each(|t| *t /= sum);
        Upsampler {
            history: VecDeque::from(vec![0.0; 2 * TAPS]),
            taps,
        }
    }
}

impl Upsampler {
    pub fn process(&mut self, pcm8k: &[i16]) -> Vec<i16> {
        let mut out = Vec::with_capacity(pcm8k.len() * 2);
        for &s in pcm8k {
            self.history.pop_front();
            self.history.push_back(f32::from(s));
            let mid: f32 = (0..TAPS)
                .map(|k| self.taps[k] * (self.history[TAPS - 1 - k] + self.history[TAPS + k]))
                .sum();
            out.push(self.history[TAPS - 1] as i16);
            out.push(mid.clamp(-32768.0, 32767.0) as i16);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upsampling_keeps_a_tone_and_its_level() {
        let mut up = Upsampler::default();
        let x: Vec<i16> = (0..800)
            .map(|i| (10_000.0 * (2.0 * std::f32::consts::PI * 440.0 * i as f32 / 8000.0).sin()) as i16)
            .collect();
        let y = up.process(&x);
        assert_eq!(y.len(), 1600);
        // After the delay, y[2n + 1] lies between its neighbours' samples of the same sine.
        let expected = |t: f32| 10_000.0 * (2.0 * std::f32::consts::PI * 440.0 * t).sin();
        let delay = TAPS as f32 / 8000.0;
        for n in 100..700 {
            let t = n as f32 / 8000.0 + 0.5 / 8000.0 - delay;
            let got = f32::from(y[2 * n + 1]);
            assert!((got - expected(t)).abs() < 150.0, "{n}: {got} vs {}", expected(t));
        }
    }
}
