//! Every cloud provider through the same suite, against its local fake (outdial-sim's `cloudspeech`, which
//! follows the public API): synthesis to 8 kHz audio of the right length, recognition of a known utterance
//! (streaming for Deepgram), a refused key, a server error, a provider that does not answer, and a connection
//! that drops in the middle.

use outdial_sim::cloudspeech::{self, FakeSpeech, Fault};
use outdial_speech::cloud::{
    Cloud, azure::Azure, deepgram::Deepgram, elevenlabs::ElevenLabs, google::Google,
};
use outdial_speech::stt::Upsampler;
use outdial_speech::{Espeak, SpeechError, SttEvent, SttOptions, SttProvider, TtsProvider};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

const TTS: [&str; 4] = ["deepgram", "azure", "google", "elevenlabs"];
const STT: [&str; 3] = ["deepgram", "azure", "google"];

fn cloud(timeout: Duration) -> Cloud {
    let policy = outdial_net::NetworkPolicy::built_in(outdial_net::Purpose::Bots);
    Cloud {
        client: outdial_net::Guarded::new(policy, timeout, Duration::from_secs(2)).unwrap(),
        google_tokens: Default::default(),
        timeout,
    }
}

async fn fake() -> FakeSpeech {
    cloudspeech::start("127.0.0.1:0".parse().unwrap()).await.unwrap()
}

fn tts(provider: &str, c: &Cloud, creds: &Value) -> Arc<dyn TtsProvider> {
    match provider {
        "deepgram" => Arc::new(Deepgram::new(c.clone(), Some(creds), None).unwrap()),
        "azure" => Arc::new(Azure::new(c.clone(), Some(creds)).unwrap()),
        "google" => Arc::new(Google::new(c.clone(), Some(creds), None, None).unwrap()),
        _ => Arc::new(ElevenLabs::new(c.clone(), Some(creds)).unwrap()),
    }
}

fn stt(provider: &str, c: &Cloud, creds: &Value) -> Arc<dyn SttProvider> {
    match provider {
        "deepgram" => Arc::new(Deepgram::new(c.clone(), Some(creds), None).unwrap()),
        "azure" => Arc::new(Azure::new(c.clone(), Some(creds)).unwrap()),
        _ => Arc::new(Google::new(c.clone(), Some(creds), None, None).unwrap()),
    }
}

/// Credentials with a wrong key for `provider` (Google: the fake revokes the key instead).
fn wrong_key(f: &FakeSpeech, provider: &str) -> Value {
    let mut c = f.credentials();
    match provider {
        "deepgram" | "elevenlabs" => c[provider]["apiKey"] = json!("not-the-right-key"),
        "azure" => c["azure"]["key"] = json!("not-the-right-key"),
        _ => f.fail(Fault::Unauthorized, 10),
    }
    c
}

#[tokio::test]
async fn synthesis_is_8khz_audio_of_the_text() {
    let f = fake().await;
    let c = cloud(Duration::from_secs(5));
    for p in TTS {
        let pcm = tts(p, &c, &f.credentials())
            .synthesize("Hello there, Anna.", "en-US", None)
            .await
            .unwrap_or_else(|e| panic!("{p}: {e}"));
        // The fake speaks 50 ms a character: exactly, so a WAV header read as audio would show.
        assert_eq!(pcm.len(), 18 * 400, "{p}");
        let peak = pcm.iter().map(|s| s.unsigned_abs()).max().unwrap();
        assert!(
            (7000..9000).contains(&peak),
            "{p}: µ-law decoded to a peak of {peak}"
        );
    }
    let r = f.requests();
    let of = |p: &str| r.iter().find(|r| r.provider == p).unwrap().clone();
    assert!(
        of("deepgram").query.contains("model=aura-2-thalia-en"),
        "{:?}",
        of("deepgram")
    );
    let ssml = of("azure").body["ssml"].as_str().unwrap().to_string();
    assert!(
        ssml.contains("<voice name='en-US-JennyNeural'>Hello there, Anna.</voice>"),
        "{ssml}"
    );
    assert_eq!(of("google").body["voice"], json!({"languageCode": "en-US"}));
    assert_eq!(of("elevenlabs").body["model_id"], "eleven_flash_v2_5");
    // SSML reaches Azure and Google as SSML, and the others as its words; text is escaped for Azure.
    let ssml_in = "<speak>Press <emphasis>one</emphasis> &amp; wait</speak>";
    for p in TTS {
        let pcm = tts(p, &c, &f.credentials())
            .synthesize(ssml_in, "en-US", None)
            .await
            .unwrap();
        assert_eq!(pcm.len(), "Press one & wait".len() * 400, "{p}");
    }
    let pcm = tts("azure", &c, &f.credentials())
        .synthesize("Tom & <Jerry>", "en-US", None)
        .await
        .unwrap();
    // Escaped in the SSML, so Azure says every character.
    assert_eq!(pcm.len(), "Tom & <Jerry>".len() * 400);
    assert!(
        f.requests().last().unwrap().body["ssml"]
            .as_str()
            .unwrap()
            .contains("Tom &amp; &lt;Jerry&gt;")
    );
}

/// ElevenLabs and Deepgram stream: their audio is handed over piece by piece as it arrives, the first piece long
/// before the last; the pieces make the same audio as the whole synthesis. A stream that breaks after its first
/// piece has handed that piece over, then fails. The other providers hand over the whole message at once.
#[tokio::test]
async fn streaming_voices_hand_over_audio_as_it_arrives() {
    let f = fake().await;
    let c = cloud(Duration::from_secs(5));
    let text = "Hello Alice, this is the reference bot calling about your order.";
    for p in ["elevenlabs", "deepgram"] {
        streams(&f, &tts(p, &c, &f.credentials()), text).await;
    }
    let one = parking_lot::Mutex::new(0usize);
    tts("azure", &c, &f.credentials())
        .synthesize_streaming(text, "en-US", None, &|_| *one.lock() += 1)
        .await
        .unwrap();
    assert_eq!(*one.lock(), 1);
}

async fn streams(f: &FakeSpeech, e: &Arc<dyn TtsProvider>, text: &str) {
    let pieces = parking_lot::Mutex::new(Vec::new());
    let started = Instant::now();
    e.synthesize_streaming(text, "en-US", None, &|pcm| {
        pieces.lock().push((started.elapsed(), pcm))
    })
    .await
    .unwrap();
    let total = started.elapsed();
    let pieces = pieces.into_inner();
    assert!(pieces.len() >= 10, "{} pieces", pieces.len());
    let first = pieces[0].0;
    // 64 characters: 3.2 s of audio in 32 parts of 25 ms each.
    assert!(total >= Duration::from_millis(700), "{total:?}");
    assert!(first * 4 < total, "first piece after {first:?} of {total:?}");
    let joined: Vec<i16> = pieces.into_iter().flat_map(|(_, p)| p).collect();
    let whole = e.synthesize(text, "en-US", None).await.unwrap();
    assert_eq!(joined, whole);
    assert_eq!(joined.len(), text.len() * 400);

    f.fail(Fault::Drop, 1);
    let got = parking_lot::Mutex::new(0usize);
    let r = e
        .synthesize_streaming(text, "en-US", None, &|pcm| *got.lock() += pcm.len())
        .await;
    assert!(matches!(r, Err(SpeechError::Unavailable(_))), "{r:?}");
    assert_eq!(*got.lock(), 400, "the piece before the break");
}

#[tokio::test]
async fn synthesis_failures_say_why_and_whether_to_retry() {
    let f = fake().await;
    for p in TTS {
        let c = cloud(Duration::from_secs(5));
        let e = tts(p, &c, &wrong_key(&f, p))
            .synthesize("Hi", "en-US", None)
            .await
            .unwrap_err();
        assert!(matches!(e, SpeechError::Auth(_)), "{p}: {e:?}");
        assert!(
            e.to_string().contains("check speechCredentials") || e.to_string().contains("check credentials"),
            "{p}: {e}"
        );
        assert!(!e.is_retryable());
        f.fail(Fault::ServerError, 1);
        // Google: the revoked key from above is restored by the one fault replacing it.
        let e = tts(p, &c, &f.credentials())
            .synthesize("Hi", "en-US", None)
            .await
            .unwrap_err();
        assert!(e.is_retryable(), "{p}: {e:?}");
        assert!(e.to_string().contains("(HTTP 5"), "{p}: {e}");
        f.fail(Fault::Drop, 1);
        let e = tts(p, &c, &f.credentials())
            .synthesize("Hi", "en-US", None)
            .await
            .unwrap_err();
        assert!(
            e.is_retryable() || matches!(e, SpeechError::Protocol(_)),
            "{p}: a cut answer is no audio: {e:?}"
        );
        let quick = cloud(Duration::from_millis(800));
        f.fail(Fault::Hang, 1);
        let t = Instant::now();
        let e = tts(p, &quick, &f.credentials())
            .synthesize("Hi", "en-US", None)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("no answer in time"), "{p}: {e}");
        assert!(t.elapsed() < Duration::from_secs(3), "{p}: {:?}", t.elapsed());
    }
}

/// Somebody saying something, then 1.5 s of silence, at 16 kHz.
async fn utterance() -> Vec<i16> {
    let pcm8k = Espeak::find()
        .unwrap()
        .synthesize("Yes please, call me back.", "en-US", None)
        .await
        .unwrap();
    let mut padded = vec![0i16; 2400];
    padded.extend(pcm8k);
    padded.extend(vec![0i16; 12_000]);
    Upsampler::default().process(&padded)
}

/// Pushes `audio` in 20 ms chunks (`pace` between them) and collects events until a final or a failure.
async fn hear(s: &mut outdial_speech::SttStream, audio: &[i16], pace: Duration) -> Vec<SttEvent> {
    for chunk in audio.chunks(320) {
        s.push(chunk.to_vec());
        if !pace.is_zero() {
            tokio::time::sleep(pace).await;
        }
    }
    let mut events = Vec::new();
    while let Ok(Some(e)) = tokio::time::timeout(Duration::from_secs(5), s.events.recv()).await {
        let last = matches!(e, SttEvent::Final(_) | SttEvent::Failed(_));
        events.push(e);
        if last {
            break;
        }
    }
    events
}

fn options() -> SttOptions {
    SttOptions {
        end_silence_ms: 500,
        ..Default::default()
    }
}

#[tokio::test]
async fn recognition_of_a_known_utterance() {
    let f = fake().await;
    f.set_transcript("Yes please, call me back.");
    let c = cloud(Duration::from_secs(5));
    let audio = utterance().await;
    for p in STT {
        let mut s = stt(p, &c, &f.credentials()).stream(options());
        let events = hear(&mut s, &audio, Duration::from_millis(2)).await;
        let Some(SttEvent::Final(t)) = events.last() else {
            panic!("{p}: {events:?}")
        };
        assert_eq!(t.text, "Yes please, call me back.", "{p}");
        assert!(t.confidence > 0.5, "{p}: {t:?}");
        assert!(matches!(events[0], SttEvent::SpeechStarted), "{p}: {events:?}");
        if p == "deepgram" {
            // Streaming: partial hypotheses while the person speaks.
            assert!(
                events
                    .iter()
                    .any(|e| matches!(e, SttEvent::Partial(t) if t.text.starts_with("Yes"))),
                "{events:?}"
            );
        }
        s.finish();
        while s.events.recv().await.is_some() {}
    }
    let r = f.requests();
    let listen = r.iter().find(|r| r.path == "/v1/listen").unwrap();
    for q in [
        "encoding=linear16",
        "sample_rate=16000",
        "interim_results=true",
        "endpointing=500",
        "language=en-US",
    ] {
        assert!(listen.query.contains(q), "{q}: {}", listen.query);
    }
    // The close handshake was made.
    assert_eq!(f.streams(), (1, 1));
    assert_eq!(f.control().last().map(String::as_str), Some("CloseStream"));
    let google = r.iter().find(|r| r.path == "/v1/speech:recognize").unwrap();
    assert_eq!(google.body["config"]["sampleRateHertz"], 16000);
}

#[tokio::test]
async fn recognition_failures_keep_the_stream_going() {
    let f = fake().await;
    let audio = utterance().await;
    let c = cloud(Duration::from_secs(5));
    for p in STT {
        // A refused key: said once, and the stream ends (Deepgram) or fails each utterance (REST).
        let mut s = stt(p, &c, &wrong_key(&f, p)).stream(options());
        let events = hear(&mut s, &audio, Duration::ZERO).await;
        let Some(SttEvent::Failed(why)) = events.last() else {
            panic!("{p}: {events:?}")
        };
        assert!(why.contains("check"), "{p}: {why}");
        // A passing server error: the opening (Deepgram) or the utterance's request (REST) is made again, and the
        // utterance is still heard.
        f.fail(Fault::ServerError, 1);
        let mut s = stt(p, &c, &f.credentials()).stream(options());
        let mut events = hear(&mut s, &audio, Duration::ZERO).await;
        if p == "deepgram" {
            assert!(
                matches!(&events[..], [SttEvent::Failed(w)] if w.contains("HTTP 503")),
                "{events:?}"
            );
            events = hear(&mut s, &[], Duration::ZERO).await;
        }
        assert!(
            matches!(events.last(), Some(SttEvent::Final(t)) if t.text == "yes please"),
            "{p}: {events:?}"
        );
        // One that lasts: said in the stream's events.
        f.fail(Fault::ServerError, 10);
        let mut s = stt(p, &c, &f.credentials()).stream(options());
        let events = hear(&mut s, &audio, Duration::ZERO).await;
        assert!(
            matches!(events.last(), Some(SttEvent::Failed(w)) if w.contains("HTTP 5")),
            "{p}: {events:?}"
        );
        f.fail(Fault::ServerError, 0);
    }
}

#[tokio::test]
async fn a_dropped_stream_is_reopened_and_hears_the_next_utterance() {
    let f = fake().await;
    let audio = utterance().await;
    let c = cloud(Duration::from_secs(5));
    for p in STT {
        // REST engines make a failed request again once: two drops in a row fail the utterance.
        f.fail(Fault::Drop, if p == "deepgram" { 1 } else { 2 });
        let mut s = stt(p, &c, &f.credentials()).stream(options());
        let events = hear(&mut s, &audio, Duration::from_millis(1)).await;
        assert!(
            events.iter().any(|e| matches!(e, SttEvent::Failed(_))),
            "{p}: {events:?}"
        );
        // The next utterance on the same stream is recognised.
        let events = hear(&mut s, &audio, Duration::from_millis(1)).await;
        assert!(
            matches!(events.last(), Some(SttEvent::Final(t)) if t.text == "yes please"),
            "{p}: {events:?}"
        );
    }
    // Deepgram: two streams opened for the one recognition.
    assert_eq!(f.streams().0, 2);
}

#[tokio::test]
async fn a_provider_that_does_not_answer_fails_in_time() {
    let f = fake().await;
    let audio = utterance().await;
    let c = cloud(Duration::from_millis(800));
    for p in STT {
        f.fail(Fault::Hang, if p == "deepgram" { 1 } else { 2 });
        let t = Instant::now();
        let mut s = stt(p, &c, &f.credentials()).stream(options());
        let events = hear(&mut s, &audio, Duration::ZERO).await;
        assert!(
            events
                .iter()
                .any(|e| matches!(e, SttEvent::Failed(w) if w.contains("no answer in time"))),
            "{p}: {events:?}"
        );
        assert!(t.elapsed() < Duration::from_secs(6), "{p}: {:?}", t.elapsed());
    }
}
