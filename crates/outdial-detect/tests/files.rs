//! The detector on recorded audio (8 kHz µ-law WAVs made with espeak-ng and sox; see tests/audio/README.md).
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly.

use outdial_detect::{Analysis, Config, Verdict, analyse, wav};
use std::path::PathBuf;

fn run(name: &str) -> (Analysis, u64) {
    let samples = samples(name);
    (analyse(&Config::default(), &samples), samples.len() as u64 / 8)
}

fn samples(name: &str) -> Vec<i16> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/audio")
        .join(name);
    wav::read_8k(&path).unwrap()
}

#[test]
fn a_person_saying_hello_is_human_soon_after_the_greeting() {
    let (a, _) = run("human_hello_then_silence_8k_ulaw.wav");
    assert_eq!(a.decision.verdict, Verdict::Human, "{a:?}");
    assert!(a.decision.cause.starts_with("HUMAN-"), "{a:?}");
    // 0.3 s of silence, "Hello? Who is this?" (about 1.3 s), then silence: the verdict must come within 1 s
    // of the end of the speech.
    assert!(a.decision.latency_ms <= 2700, "{a:?}");
    assert_eq!(a.greeting_end, None);
}

#[test]
fn a_voicemail_greeting_is_a_machine_and_its_beep_ends_it() {
    let (a, total) = run("voicemail_greeting_beep_8k_ulaw.wav");
    assert_eq!(a.decision.verdict, Verdict::Machine, "{a:?}");
    assert!(a.decision.latency_ms < 3000, "machine known early: {a:?}");
    let beep = a.greeting_end.expect("the beep");
    // The file ends with 5 s of silence after the 500 ms, 1000 Hz beep.
    let truth = total - 5000;
    assert!(
        beep.time_ms.abs_diff(truth) <= 100,
        "beep end {} vs {truth}",
        beep.time_ms
    );
    assert!(beep.frequency_hz.abs_diff(1000) <= 10, "{beep:?}");
    assert!(beep.length_ms.abs_diff(500) <= 60, "{beep:?}");
}

#[test]
fn a_greeting_without_beep_is_a_machine_without_greeting_end() {
    let (a, _) = run("greeting_8k_ulaw.wav");
    assert_eq!(a.decision.verdict, Verdict::Machine, "{a:?}");
    assert_eq!(a.greeting_end, None);
}

#[test]
fn fax_tones_are_fax() {
    let (a, _) = run("fax_ced_2100hz_3s.wav");
    assert_eq!(
        (a.decision.verdict, a.decision.cause.as_str()),
        (Verdict::Fax, "CED"),
        "{a:?}"
    );
    assert!(a.decision.latency_ms <= 600, "{a:?}");
    let (a, _) = run("fax_cng_1100hz_x3.wav");
    assert_eq!(
        (a.decision.verdict, a.decision.cause.as_str()),
        (Verdict::Fax, "CNG"),
        "{a:?}"
    );
    assert!(a.decision.latency_ms <= 700, "{a:?}");
}

#[test]
fn call_progress_tones_and_noise_are_not_beeps() {
    // SIT (913.8 / 1370.6 / 1776.7 Hz in a row) then an announcement: a machine, but no beep from the SIT.
    let (a, _) = run("sit_not_in_service_8k_ulaw.wav");
    assert_eq!(a.greeting_end, None, "{a:?}");
    assert!(!a.decision.cause.starts_with("BEEP"), "{a:?}");
    // Ringback (440+480 Hz, 2 s on, 4 s off) is no beep and no fax.
    let (a, _) = run("ringback_us_2cycles_8k_ulaw.wav");
    assert!(
        !a.decision.cause.starts_with("BEEP") && a.decision.verdict != Verdict::Fax,
        "{a:?}"
    );
    // Pink noise is not a person.
    let (a, _) = run("pink_noise_5s.wav");
    assert_ne!(a.decision.verdict, Verdict::Human, "{a:?}");
}

fn tone(hz: f32, ms: usize) -> Vec<i16> {
    (0..ms * 8)
        .map(|i| (12000.0 * (2.0 * std::f32::consts::PI * hz * i as f32 / 8000.0).sin()) as i16)
        .collect()
}

/// Lost packets split a CNG burst in two (neither half is 0.5 s long): still a fax, not a beep.
#[test]
fn a_cng_burst_split_by_lost_packets_is_still_a_fax() {
    let mut audio = vec![0i16; 8 * 300];
    audio.extend(tone(1100.0, 240));
    audio.extend(vec![0i16; 8 * 40]);
    audio.extend(tone(1100.0, 220));
    audio.extend(vec![0i16; 8 * 3000]);
    let a = analyse(&Config::default(), &audio);
    assert_eq!(
        (a.decision.verdict, a.decision.cause.as_str()),
        (Verdict::Fax, "CNG"),
        "{a:?}"
    );
    assert_eq!(a.greeting_end, None, "{a:?}");
}

/// After a greeting, a 1100 Hz beep of 0.5 s (CNG's frequency and length) is the greeting's end, not a fax.
#[test]
fn a_1100_hz_beep_after_a_greeting_ends_it() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/audio/greeting_8k_ulaw.wav");
    let mut audio = wav::read_8k(&path).unwrap();
    audio.extend(vec![0i16; 8 * 400]);
    audio.extend(tone(1100.0, 500));
    let truth = audio.len() as u64 / 8;
    audio.extend(vec![0i16; 8 * 3000]);
    let a = analyse(&Config::default(), &audio);
    assert_eq!(a.decision.verdict, Verdict::Machine, "{a:?}");
    let beep = a.greeting_end.expect("the beep");
    assert!(
        beep.time_ms.abs_diff(truth) <= 100,
        "beep end {} vs {truth}",
        beep.time_ms
    );
    assert!(beep.frequency_hz.abs_diff(1100) <= 10, "{beep:?}");
}

/// Lost packets left silent inside a beep (as `outdial detect` sees them in a recording) do not cut it: a 0.8 s
/// beep with three one-frame holes ends where it ends, and a 160 ms beep split in two is still found.
#[test]
fn holes_from_lost_packets_do_not_cut_a_beep() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/audio/greeting_8k_ulaw.wav");
    let greeting = wav::read_8k(&path).unwrap();
    let hole = vec![0i16; 160];
    for (beep_ms, holes_at) in [(800usize, vec![460usize, 500, 680]), (160, vec![40])] {
        let mut audio = greeting.clone();
        audio.extend(vec![0i16; 8 * 400]);
        let beep_start = audio.len();
        audio.extend(tone(1400.0, beep_ms));
        for at in holes_at {
            // Lost packets are whole 20 ms frames of the recording.
            let i = (beep_start + at * 8) / 160 * 160;
            audio[i..i + 160].copy_from_slice(&hole);
        }
        let truth = audio.len() as u64 / 8;
        audio.extend(vec![0i16; 8 * 3000]);
        let a = analyse(&Config::default(), &audio);
        let Some(beep) = a.greeting_end.clone() else {
            panic!("the {beep_ms} ms beep: {a:?}");
        };
        assert!(
            beep.time_ms.abs_diff(truth) <= 60,
            "{beep_ms} ms beep: end {} vs {truth}",
            beep.time_ms
        );
    }
}

/// A voicemail greeting that opens like a person — "Yes please.", a pause of 1.5 or 2 s, then the greeting and its
/// beep — is judged human at the pause, then rechecked: the greeting's voice without a pause turns the verdict
/// into a machine, which names the verdict it replaced, and the beep is still found. With `humanRecheckMs` 0 it
/// stays a person.
#[test]
fn a_greeting_that_opens_with_a_hello_and_a_pause_is_rechecked_into_a_machine() {
    for extra_pause in [0, 4000] {
        let mut audio = samples("yes_please_8k_ulaw.wav");
        audio.extend(vec![0i16; extra_pause]);
        let greeting_at = audio.len() as u64 / 8;
        let greeting = samples("voicemail_greeting_beep_8k_ulaw.wav");
        audio.extend(&greeting);
        let total = audio.len() as u64 / 8;
        let a = analyse(&Config::default(), &audio);
        assert_eq!(a.decision.verdict, Verdict::Machine, "{a:?}");
        assert!(a.decision.cause.starts_with("LONGGREETING-"), "{a:?}");
        let first = a
            .decision
            .evidence
            .revised
            .clone()
            .expect("the verdict it replaced");
        assert_eq!(
            (first.result, first.cause.as_str()),
            (Verdict::Human, "HUMAN-800-800")
        );
        // The person's verdict came at the pause; the machine's within the greeting's first 3 s (0.5 s of its
        // silence, then 1.8 s of voice).
        assert!(first.latency_ms < greeting_at, "{a:?}");
        assert!(
            a.decision.latency_ms > greeting_at && a.decision.latency_ms < greeting_at + 3000,
            "{a:?}"
        );
        let beep = a.greeting_end.expect("the beep after the greeting");
        assert!(beep.time_ms.abs_diff(total - 5000) <= 100, "{beep:?}");

        let off = Config {
            human_recheck_ms: 0,
            ..Config::default()
        };
        let a = analyse(&off, &audio);
        assert_eq!(a.decision.verdict, Verdict::Human, "{a:?}");
        assert_eq!(a.decision.evidence.revised, None);
    }
}

/// People stay people through the recheck: a hello then silence, and a hello said again after a pause (short
/// utterances, not a greeting); their verdict comes as soon as before.
#[test]
fn a_person_who_says_hello_again_stays_a_person() {
    let hello = samples("yes_please_8k_ulaw.wav");
    let mut twice = hello.clone();
    twice.extend(vec![0i16; 9600]);
    twice.extend(&hello);
    twice.extend(vec![0i16; 40_000]);
    for audio in [
        hello
            .iter()
            .copied()
            .chain(vec![0i16; 40_000])
            .collect::<Vec<_>>(),
        twice,
    ] {
        let a = analyse(&Config::default(), &audio);
        assert_eq!(a.decision.verdict, Verdict::Human, "{a:?}");
        assert_eq!(a.decision.cause, "HUMAN-800-800");
        assert_eq!(a.decision.evidence.revised, None);
        assert!(a.decision.latency_ms < 2200, "{a:?}");
    }
}

/// Feeds a recording (then silence) to a live detector a frame at a time, as a call does (while it listens): its
/// first verdict, and whether the voice detector still ran after the last frame.
fn feed_all(cfg: Config, name: &str, silence_after_ms: usize) -> (Option<Verdict>, bool) {
    let mut d = outdial_detect::Detector::new(cfg);
    let mut samples = samples(name);
    samples.resize(samples.len() + silence_after_ms * 8, 0);
    let mut first = None;
    for frame in samples.chunks(160) {
        if !d.listening() {
            break;
        }
        let mut f = frame.to_vec();
        f.resize(160, 0);
        let mut events = d.feed(&f);
        if events.contains(&outdial_detect::Event::WantTranscript) {
            events.extend(d.no_transcript());
        }
        for e in events {
            if let outdial_detect::Event::Decision(dec) = e {
                first.get_or_insert(dec.verdict);
            }
        }
    }
    (first, d.hears_voice())
}

#[test]
fn the_voice_detector_goes_once_only_tones_can_change_the_verdict() {
    // A machine: the beep search goes on without the voice detector (and its ~8 KB network per call).
    let (first, hears) = feed_all(Config::default(), "greeting_8k_ulaw.wav", 1000);
    assert_eq!(first, Some(Verdict::Machine));
    assert!(!hears, "the voice detector still runs after a machine verdict");
    // A person whose verdict is rechecked: voice still matters until the recheck is over …
    let cfg = Config {
        human_recheck_ms: 5000,
        ..Config::default()
    };
    let (first, hears) = feed_all(cfg.clone(), "human_hello_then_silence_8k_ulaw.wav", 0);
    assert_eq!(first, Some(Verdict::Human));
    assert!(hears, "the recheck lost its voice detector");
    // … and not after it.
    let (_, hears) = feed_all(cfg, "human_hello_then_silence_8k_ulaw.wav", 6000);
    assert!(!hears, "the voice detector still runs after the recheck");
    // A person without a recheck: nothing more to hear.
    let cfg = Config {
        human_recheck_ms: 0,
        ..Config::default()
    };
    let (first, hears) = feed_all(cfg, "human_hello_then_silence_8k_ulaw.wav", 100);
    assert_eq!(first, Some(Verdict::Human));
    assert!(!hears);
}
