//! `cargo run -p outdial-speech --example transcribe -- FILE.wav…`: the local Whisper on WAV files (any rate),
//! one line per file with the text, the confidence and the time it took (`THREADS=N`: CPU threads, default 0 =
//! CTranslate2's choice, which was the fastest on 2 cores: 0.54–0.64 s against 0.5–0.73 s with 2, 0.9 s with 4).
#![allow(clippy::print_stdout)]

use outdial_speech::Whisper;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = Whisper::find_default()?;
    let threads = std::env::var("THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let w = Whisper::load(&dir, threads)?;
    for file in std::env::args().skip(1) {
        let pcm8k = outdial_media::wav::read_8k(std::path::Path::new(&file))?;
        let pcm = outdial_speech::stt::Upsampler::default().process(&pcm8k);
        let t = w.transcribe(&pcm, "en-US")?;
        println!(
            "{file}: {:?} confidence {:.2} in {} ms",
            t.text, t.confidence, t.took_ms
        );
    }
    Ok(())
}
