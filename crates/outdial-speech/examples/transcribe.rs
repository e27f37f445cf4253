//! `cargo run -p outdial-speech --example transcribe -- FILE.wav…`: the local Whisper on WAV files (any rate),
//! one line per file with the text, the confidence and the time it took.
#![allow(clippy::print_stdout)]

use outdial_speech::Whisper;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = Whisper::find_default()?;
    let w = Whisper::load(&dir, 0)?;
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
