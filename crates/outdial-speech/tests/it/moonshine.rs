//! Moonshine base on speech of the Piper voice (recorded: `tests/audio`), at 8 kHz upsampled as a call hands it
//! over: what was said comes back as text, with a confidence; silence and noise give none; the package's ORT files
//! give the same words as the folded ONNX ones; the stream ends an utterance after the silence. Needs the model
//! from PyPI (`moonshine-cpp`, converted by scripts/moonshine-onnx.py) and ONNX Runtime: scripts/test.sh installs
//! them.

use outdial_speech::moonshine::find_default;
use outdial_speech::stt::Upsampler;
use outdial_speech::{Moonshine, SttEvent, SttOptions, SttProvider};
use std::sync::OnceLock;
use std::time::Duration;

fn model() -> Moonshine {
    static MODEL: OnceLock<Moonshine> = OnceLock::new();
    MODEL
        .get_or_init(|| {
            Moonshine::load_default(2).expect("the Moonshine model is installed (scripts/test.sh)")
        })
        .clone()
}

/// A sentence recorded once in the Piper voice (`tests/audio/README.md`), as the endpointer hands it over. The
/// tests that check exact words read recordings: Piper's synthesis varies from run to run (a fresh "I would like
/// to speak to a person." was once heard without its "to"), a recording does not.
fn recorded(wav: &[u8]) -> Vec<i16> {
    let mut padded = vec![0i16; 2400];
    padded.extend(outdial_media::wav::decode_8k(wav).unwrap());
    Upsampler::default().process(&padded)
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

async fn transcribe(m: &Moonshine, pcm: Vec<i16>) -> outdial_speech::Transcript {
    let m = m.clone();
    tokio::task::spawn_blocking(move || m.transcribe(&pcm))
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn transcribes_an_utterance_with_a_confidence() {
    let m = model();
    assert!(
        m.is_folded(),
        "scripts/moonshine-onnx.py has saved the ONNX graphs: {m:?}"
    );
    let said = recorded(include_bytes!("../audio/call_me_tomorrow_piper_8k.wav"));
    let t = transcribe(&m, said).await;
    assert_eq!(words(&t.text), "yes please call me tomorrow morning", "{t:?}");
    assert!(t.confidence > 0.5 && t.confidence <= 1.0, "{t:?}");
    assert!(t.audio_ms > 1500, "{t:?}");
}

#[tokio::test]
async fn silence_and_noise_give_no_text() {
    let m = model();
    let t = transcribe(&m, vec![0; 16_000]).await;
    assert_eq!(t.text, "", "{t:?}");
    // White noise at about -30 dBFS, a second and a half.
    let mut x = 12345u32;
    let noise: Vec<i16> = (0..24_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            ((x % 2000) as i32 - 1000) as i16
        })
        .collect();
    let t = transcribe(&m, noise).await;
    assert_eq!(t.text, "", "{t:?}");
    // Shorter than the encoder's window: padded, not an error.
    let t = transcribe(&m, vec![0; 800]).await;
    assert_eq!(t.text, "", "{t:?}");
}

/// Without scripts/moonshine-onnx.py's files the package's own ORT files are used: slower, the same words.
#[tokio::test]
async fn the_package_files_alone_give_the_same_words() {
    let (dir, lib) = find_default().unwrap();
    let only_ort = std::env::temp_dir().join(format!("outdial-moonshine-ort-{}", std::process::id()));
    std::fs::create_dir_all(&only_ort).unwrap();
    for f in ["encoder_model.ort", "decoder_model_merged.ort", "tokenizer.bin"] {
        let _ = std::fs::remove_file(only_ort.join(f));
        std::os::unix::fs::symlink(dir.join(f), only_ort.join(f)).unwrap();
    }
    let slow = Moonshine::load(&only_ort, &lib, 1).unwrap();
    assert!(!slow.is_folded());
    let pcm = recorded(include_bytes!("../audio/speak_to_a_person_piper_8k.wav"));
    let (a, b) = (
        transcribe(&slow, pcm.clone()).await,
        transcribe(&model(), pcm).await,
    );
    assert_eq!(words(&a.text), "i would like to speak to a person", "{a:?}");
    assert_eq!(a.text, b.text);
}

#[tokio::test]
async fn a_missing_model_is_named_with_how_to_install_it() {
    let (_, lib) = find_default().unwrap();
    let dir = std::env::temp_dir().join(format!("outdial-no-moonshine-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let e = Moonshine::load(&dir, &lib, 1).unwrap_err().to_string();
    assert!(e.contains("lacks encoder_model and decoder_model_merged"), "{e}");
    assert!(e.contains("pip install moonshine-cpp"), "{e}");
}

/// Two utterances in a stream of 20 ms chunks, a second of silence between: two finals in order, each after its
/// SpeechStarted; four utterances recognised at once by the two replicas all come back. The second utterance is
/// the simulated person's recorded answer (Piper's voice varies from one synthesis to the next: "Goodbye." alone
/// was once heard as "the day").
#[tokio::test]
async fn streaming_finds_utterances_and_replicas_share_the_work() {
    let mut audio = vec![0i16; 8_000];
    audio.extend(recorded(include_bytes!(
        "../audio/goodbye_see_you_tomorrow_piper_8k.wav"
    )));
    audio.extend(vec![0i16; 16_000]);
    audio.extend(Upsampler::default().process(&outdial_sim::yes_please_piper()));
    audio.extend(vec![0i16; 16_000]);
    let mut streams: Vec<_> = (0..4).map(|_| model().stream(SttOptions::default())).collect();
    for s in &streams {
        for chunk in audio.chunks(320) {
            s.push(chunk.to_vec());
        }
    }
    for s in &mut streams {
        let mut got = Vec::new();
        while got.len() < 4 {
            let e = tokio::time::timeout(Duration::from_secs(30), s.events.recv())
                .await
                .expect("events within 30 s")
                .expect("the stream is open");
            got.push(match e {
                SttEvent::SpeechStarted => "started".to_string(),
                SttEvent::Final(t) => words(&t.text),
                other => panic!("{other:?}"),
            });
        }
        assert_eq!(got[0], "started");
        assert!(got[1].ends_with("see you tomorrow"), "{got:?}");
        assert_eq!(got[2..], ["started", "yes please"]);
    }
}
