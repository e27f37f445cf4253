//! The second opinion from words (docs/detection.md, "Second opinion"), sans I/O: the detector asks for words
//! when the cadence is unsure, holds its verdict, and the words (or their absence) settle it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly.

use outdial_detect::{Config, Decision, Detector, Event, Verdict, analyse_with_words, wav};
use std::path::PathBuf;

fn audio(name: &str) -> Vec<i16> {
    wav::read_8k(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/audio")
            .join(name),
    )
    .unwrap()
}

/// Feeds audio; at the frame where words are asked for, `words` (if any) are given after `after_ms` more audio.
/// Returns the decision, whether words were asked for, and when (ms).
fn run(cfg: Config, samples: &[i16], words: Option<&str>, after_ms: u64) -> (Decision, Option<u64>) {
    run_detector(Detector::new(cfg), samples, words, after_ms)
}

fn run_detector(
    mut d: Detector,
    samples: &[i16],
    words: Option<&str>,
    after_ms: u64,
) -> (Decision, Option<u64>) {
    let mut asked = None;
    for (i, frame) in samples.chunks(160).enumerate() {
        let mut f = frame.to_vec();
        f.resize(160, 0);
        let now = (i as u64 + 1) * 20;
        let mut events = d.feed(&f);
        if events.contains(&Event::WantTranscript) {
            asked = Some(now);
        }
        if let (Some(at), Some(w)) = (asked, words)
            && now == at + after_ms
        {
            events.extend(d.transcript(w, true));
        }
        for e in events {
            if let Event::Decision(x) = e {
                return (x, asked);
            }
        }
    }
    panic!("no decision");
}

#[test]
fn a_screening_service_is_known_by_its_words_and_the_wait_is_counted() {
    let screening = audio("screening_service_8k_ulaw.wav");
    // Without words (no recogniser configured, or off): the cadence's verdict, a long greeting.
    let off = Config {
        second_opinion_ms: 0,
        ..Config::default()
    };
    let (d, asked) = run(off, &screening, None, 0);
    assert_eq!((d.verdict, asked), (Verdict::Machine, None));
    assert!(d.cause.starts_with("LONGGREETING"), "{d:?}");

    let words = "Hi, the person you're calling is using a screening service.";
    let (d, asked) = run(Config::default(), &screening, Some(words), 1200);
    let asked = asked.expect("the cadence was unsure");
    assert_eq!(
        (d.verdict, d.cause.as_str()),
        (Verdict::Machine, "SCREENING"),
        "{d:?}"
    );
    assert_eq!(d.latency_ms, asked + 1200);
    assert_eq!(d.evidence.held_ms, Some(1200));
    assert_eq!(d.evidence.transcript.as_deref(), Some(words));

    // Opted in: its own result.
    let cfg = Config {
        screening_verdict: true,
        ..Config::default()
    };
    let (d, _) = run(cfg, &screening, Some(words), 600);
    assert_eq!((d.verdict, d.cause.as_str()), (Verdict::Screening, "SCREENING"));
}

#[test]
fn no_words_in_time_leave_the_cadence_verdict_after_the_limit() {
    let screening = audio("screening_service_8k_ulaw.wav");
    let cfg = Config {
        second_opinion_ms: 1500,
        ..Config::default()
    };
    let (d, asked) = run(cfg, &screening, None, 0);
    assert!(d.cause.starts_with("LONGGREETING"), "{d:?}");
    assert_eq!(d.latency_ms, asked.unwrap() + 1500);
    assert_eq!(d.evidence.held_ms, Some(1500));
}

#[test]
fn a_short_hello_costs_nothing_and_a_longer_answer_is_settled_by_its_words() {
    // "Hello? Who is this?" (about 1.3 s of voice): a person at once, no words asked for.
    let hello = audio("human_hello_then_silence_8k_ulaw.wav");
    let (d, asked) = run(Config::default(), &hello, None, 0);
    assert_eq!((d.verdict, asked), (Verdict::Human, None), "{d:?}");

    // A longer answer: "Hello? Who is this?" and, 150 ms later, "Yes" (about 1.6 s of voice), then silence.
    let speech = |s: Vec<i16>| {
        let first = s.iter().position(|v| v.abs() > 300).unwrap();
        let last = s.iter().rposition(|v| v.abs() > 300).unwrap();
        s[first..=last].to_vec()
    };
    let mut long = vec![0i16; 8 * 300];
    long.extend(speech(hello));
    long.extend(vec![0i16; 8 * 150]);
    long.extend(&speech(audio("yes_please_8k_ulaw.wav"))[..8 * 300]);
    long.extend(vec![0i16; 8 * 3000]);
    let words = "Hello? Who is this? Yes.";
    let (d, asked) = run(Config::default(), &long, Some(words), 400);
    let asked = asked.expect("unsure: a longer answer");
    assert_eq!(d.verdict, Verdict::Human, "{d:?}");
    assert!(d.cause.starts_with("HUMAN-"), "{d:?}");
    assert_eq!(
        d.latency_ms,
        asked + 400,
        "decided on the first words, not at the limit"
    );
}

#[test]
fn a_beep_while_the_verdict_waits_decides_at_once() {
    let mut a = audio("screening_service_8k_ulaw.wav");
    a.truncate(8 * 3000);
    a.extend(vec![0i16; 8 * 300]);
    a.extend(
        (0..8 * 400)
            .map(|i| (9000.0 * (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / 8000.0).sin()) as i16),
    );
    a.extend(vec![0i16; 8 * 2000]);
    let (d, asked) = run(Config::default(), &a, None, 0);
    assert!(asked.is_some());
    assert!(d.cause.starts_with("BEEP-"), "{d:?}");
}

/// Voice only: the audio from its first loud sample to its last.
fn voice_of(s: Vec<i16>) -> Vec<i16> {
    let first = s.iter().position(|v| v.abs() > 300).unwrap();
    let last = s.iter().rposition(|v| v.abs() > 300).unwrap();
    s[first..=last].to_vec()
}

/// A person's longer answer said at once: "Hello? Who is this?", 150 ms, "Yes please." — about 2 s of voice, so
/// the cadence's greeting length (1.8 s) is reached — then silence. Returns the audio and where its voice ends (ms).
fn long_answer() -> (Vec<i16>, u64) {
    let mut a = vec![0i16; 8 * 300];
    a.extend(voice_of(audio("human_hello_then_silence_8k_ulaw.wav")));
    a.extend(vec![0i16; 8 * 150]);
    a.extend(voice_of(audio("yes_please_8k_ulaw.wav")));
    let end = a.len() as u64 / 8;
    a.extend(vec![0i16; 8 * 4000]);
    (a, end)
}

#[test]
fn a_persons_longer_answer_is_a_person_once_they_stop_and_their_words_hold_no_machines_phrase() {
    let (a, end) = long_answer();
    // Without words the cadence's verdict stands: a greeting, by its length.
    let (d, _) = run(Config::default(), &a, None, 0);
    assert_eq!(d.verdict, Verdict::Machine, "{d:?}");
    assert!(d.cause.starts_with("LONGGREETING"), "{d:?}");

    // Words before the pause: the verdict comes with the pause (afterGreetingSilenceMs, 800 ms), not the limit.
    let words = "Hello? Who is this? Yes please.";
    let (d, asked) = run(Config::default(), &a, Some(words), 200);
    let asked = asked.expect("unsure: machine by length");
    assert!(asked < end, "asked for words while they talked");
    assert_eq!(
        (d.verdict, d.cause.as_str()),
        (Verdict::Human, "HUMAN-800-800"),
        "{d:?}"
    );
    assert!(
        d.latency_ms.abs_diff(end + 800) <= 60,
        "at the pause: {} vs {}",
        d.latency_ms,
        end + 800
    );
    assert_eq!(d.evidence.transcript.as_deref(), Some(words));

    // Words after the pause (a slow recogniser): decided when they come.
    let late = (end + 1200 - asked) / 20 * 20;
    let (d, _) = run(Config::default(), &a, Some(words), late);
    assert_eq!(d.verdict, Verdict::Human, "{d:?}");
    assert_eq!(d.latency_ms, asked + late);

    // A machine's phrase in the same two seconds: a machine.
    let (d, _) = run(Config::default(), &a, Some("Hi, please leave a message."), 200);
    assert_eq!(
        (d.verdict, d.cause.as_str()),
        (Verdict::Machine, "VOICEMAIL"),
        "{d:?}"
    );
}

#[test]
fn a_greeting_longer_than_a_persons_answer_stays_a_machine_whatever_its_words() {
    // The screening service's prompt: well over 3 s of voice. Words with no machine phrase do not make it a person.
    let a = audio("screening_service_8k_ulaw.wav");
    let (d, _) = run(Config::default(), &a, Some("Hi there, this is a test."), 200);
    assert_eq!(d.verdict, Verdict::Machine, "{d:?}");
    assert!(d.cause.starts_with("LONGGREETING"), "{d:?}");
}

#[test]
fn without_words_for_machines_only_a_possible_long_answer_waits() {
    // `disconnect` mode: a machine is hung up whatever its words say.
    let run_with = |samples: &[i16], words: Option<&str>| {
        let mut d = Detector::new(Config::default());
        d.words_for_machines(false);
        run_detector(d, samples, words, 200)
    };
    // A person's longer answer still gets its words.
    let (a, _) = long_answer();
    let (d, _) = run_with(&a, Some("Hello? Who is this? Yes please."));
    assert_eq!(d.verdict, Verdict::Human, "{d:?}");

    // A greeting is hung up on as soon as its voice outlasts a person's answer (3 s), not after the limit.
    let greeting = audio("screening_service_8k_ulaw.wav");
    let (d, asked) = run_with(&greeting, None);
    let asked = asked.expect("held while it could be an answer");
    assert!(d.cause.starts_with("LONGGREETING"), "{d:?}");
    assert!(d.evidence.voice_ms > 3000 && d.evidence.voice_ms <= 3040, "{d:?}");
    let held = d.latency_ms - asked;
    assert!(held < 2000, "held {held} ms, the limit is 4000: {d:?}");
    assert_eq!(d.evidence.held_ms, Some(held));
}

#[test]
fn offline_words_come_utterance_by_utterance_as_live_recognition_gives_them() {
    let (a, end) = long_answer();
    let mut heard = Vec::new();
    let x = analyse_with_words(&Config::default(), &a, &mut |pcm: &[i16]| {
        heard.push(pcm.len() as u64 / 8);
        Some("Hello? Who is this? Yes please.".into())
    });
    // One utterance: from the answer to 200 ms after the voice ends (the endpointer's pause); nothing more is
    // transcribed once the verdict is given.
    assert_eq!(heard.len(), 1, "{heard:?}");
    assert!(heard[0].abs_diff(end + 200) <= 40, "{heard:?} vs {end}");
    assert_eq!(
        (x.decision.verdict, x.decision.cause.as_str()),
        (Verdict::Human, "HUMAN-800-800")
    );
    // A recogniser that fails leaves the cadence's verdict.
    let x = analyse_with_words(&Config::default(), &a, &mut |_: &[i16]| None);
    assert!(x.decision.cause.starts_with("LONGGREETING"), "{x:?}");
}
