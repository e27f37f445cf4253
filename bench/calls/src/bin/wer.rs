//! Word error rate and speed of the local recognisers on real recorded telephone speech (docs/speech.md, "Local
//! recognisers"; BENCHMARKS.md, "Speech recognition on real recordings").
//!
//! The recordings are Debian's `asterisk-core-sounds-en-wav` (Allison Smith's voice, 8 kHz, CC-BY-SA 3.0), their
//! transcripts the package's own list (`asterisk-core-sounds-en`, `core-sounds-en.txt`). Each prompt goes through a
//! G.711 µ-law round trip, as it would cross a call, then the gateway's 8 → 16 kHz upsampler, then each engine.
//! Prompts of sounds (`[ascending tones]`), of under two words, and over 15 s (the gateway cuts an utterance there,
//! `max_utterance_ms`) are left out.
//!
//! Usage: `outdial-bench-wer [LIMIT]` (every prompt by default). Prints per engine: WER (substitutions, deletions
//! and insertions over the reference words), utterances recognised exactly, and the recognition time per
//! utterance (median, p90) with the audio's median length.
//!
//! `BATCH=N` also runs Whisper on the prompts N at a time in one run of the model and prints its WER and the
//! model time per prompt beside one at a time (the measurement behind not batching calls' utterances:
//! docs/speech.md, "Local recognisers").
#![allow(clippy::unwrap_used, clippy::expect_used)] // A benchmark driver fails loudly.

use outdial_media::g711::{ulaw_decode, ulaw_encode};
use outdial_speech::stt::Upsampler;
use outdial_speech::{Moonshine, Whisper};
use std::io::Read;
use std::path::Path;

const SOUNDS: &str = "/usr/share/asterisk/sounds/en_US_f_Allison";
const LIST: &str = "/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz";

/// Lower case, no punctuation, digits spelled as words (the list writes "press 1" and "press one" alike).
fn normalise(s: &str) -> Vec<String> {
    const DIGITS: [&str; 10] = [
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    ];
    let mut out = Vec::new();
    let spaced: String = s
        .to_lowercase()
        .chars()
        .map(|c| if c.is_alphanumeric() || c == '\'' { c } else { ' ' })
        .collect();
    for w in spaced.split_whitespace() {
        let w = w.trim_matches('\'');
        if w.chars().all(|c| c.is_ascii_digit()) {
            out.extend(w.chars().map(|c| DIGITS[c as usize - '0' as usize].to_string()));
        } else if !w.is_empty() {
            out.push(w.to_string());
        }
    }
    out
}

/// Word-level edit distance.
fn errors(reference: &[String], heard: &[String]) -> usize {
    let mut row: Vec<usize> = (0..=heard.len()).collect();
    for (i, r) in reference.iter().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, h) in heard.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(r != h)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[heard.len()]
}

fn prompts(limit: usize) -> Vec<(String, String, Vec<i16>)> {
    let mut text = String::new();
    let gz = std::process::Command::new("zcat")
        .arg(LIST)
        .output()
        .expect("zcat");
    gz.stdout.as_slice().read_to_string(&mut text).unwrap();
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((name, said)) = line.split_once(": ") else {
            continue;
        };
        let path = Path::new(SOUNDS).join(format!("{name}.wav"));
        if said.contains('[') || normalise(said).len() < 2 || !path.is_file() {
            continue;
        }
        let pcm = outdial_media::wav::decode_8k(&std::fs::read(&path).unwrap()).unwrap();
        if pcm.len() > 15 * 8000 {
            continue;
        }
        // Across a call: µ-law, then the gateway's upsampler; 300 ms of silence before, as the endpointer keeps.
        let mut line8k = vec![0i16; 2400];
        line8k.extend(pcm.iter().map(|&s| ulaw_decode(ulaw_encode(s))));
        out.push((
            name.to_string(),
            said.to_string(),
            Upsampler::default().process(&line8k),
        ));
        if out.len() == limit {
            break;
        }
    }
    out
}

fn percentile(v: &mut [u64], p: f64) -> u64 {
    v.sort_unstable();
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let limit = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(usize::MAX);
    let set = prompts(limit);
    assert!(
        !set.is_empty(),
        "install asterisk-core-sounds-en-wav and asterisk-core-sounds-en"
    );
    let whisper = Whisper::load(&Whisper::find_default().unwrap(), 1).unwrap();
    let moonshine = Moonshine::load_default(1).unwrap();
    let mut lengths: Vec<u64> = set.iter().map(|(_, _, p)| (p.len() / 16) as u64).collect();
    println!(
        "{} prompts, {} reference words, audio median {} ms (one thread per engine)",
        set.len(),
        set.iter().map(|(_, s, _)| normalise(s).len()).sum::<usize>(),
        percentile(&mut lengths, 0.5)
    );
    type Engine<'a> = (&'a str, Box<dyn Fn(&[i16]) -> outdial_speech::Transcript + 'a>);
    let engines: [Engine<'_>; 2] = [
        (
            "whisper tiny.en",
            Box::new(|p: &[i16]| whisper.transcribe(p, "en-US").unwrap()),
        ),
        (
            "moonshine base",
            Box::new(|p: &[i16]| moonshine.transcribe(p).unwrap()),
        ),
    ];
    let mut whisper_alone_ms = 0.0;
    for (name, run) in &engines {
        let (mut words, mut errs, mut exact, mut took) = (0, 0, 0, Vec::new());
        let mut worst = Vec::new();
        for (id, said, pcm) in &set {
            let t = run(pcm);
            let (r, h) = (normalise(said), normalise(&t.text));
            let e = errors(&r, &h);
            words += r.len();
            errs += e;
            exact += usize::from(e == 0);
            took.push(t.took_ms);
            worst.push((e, id.clone(), t.text));
        }
        worst.sort_by_key(|w| std::cmp::Reverse(w.0));
        println!(
            "{name}: WER {:.1} % ({errs}/{words}), exact {exact}/{}, recognition median {} ms, p90 {} ms",
            100.0 * errs as f64 / words as f64,
            set.len(),
            percentile(&mut took.clone(), 0.5),
            percentile(&mut took, 0.9)
        );
        for (e, id, text) in worst.iter().take(3) {
            println!("  worst: {id} ({e} errors): {text:?}");
        }
        if name.starts_with("whisper") {
            whisper_alone_ms = took.iter().sum::<u64>() as f64 / set.len() as f64;
        }
    }
    let batch: usize = std::env::var("BATCH")
        .ok()
        .and_then(|b| b.parse().ok())
        .unwrap_or(1);
    if batch > 1 {
        let (mut words, mut errs, mut spent) = (0, 0, 0u64);
        for group in set.chunks(batch) {
            let pcms: Vec<&[i16]> = group.iter().map(|(_, _, p)| p.as_slice()).collect();
            let ts = whisper.transcribe_batch(&pcms, "en-US").unwrap();
            spent += ts[0].took_ms;
            for ((_, said, _), t) in group.iter().zip(ts) {
                let r = normalise(said);
                errs += errors(&r, &normalise(&t.text));
                words += r.len();
            }
        }
        println!(
            "whisper tiny.en, batches of {batch}: WER {:.1} % ({errs}/{words}), model time {:.0} ms per prompt \
             (one at a time: {whisper_alone_ms:.0} ms)",
            100.0 * errs as f64 / words as f64,
            spent as f64 / set.len() as f64
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_count_substitutions_deletions_and_insertions() {
        let r = normalise("Press 1, then the pound key.");
        assert_eq!(r, ["press", "one", "then", "the", "pound", "key"]);
        assert_eq!(errors(&r, &normalise("press one then the pound key")), 0);
        assert_eq!(errors(&r, &normalise("press won then pound key please")), 3);
    }
}
