//! `outdial detect FILE…`: one JSON line per file, the live detector's verdicts, errors per file.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly.

use serde_json::Value;
use std::process::Command;

const AUDIO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../outdial-detect/tests/audio");

fn detect(args: &[&str]) -> (i32, Vec<Value>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_outdial"))
        .arg("detect")
        .args(args)
        .output()
        .unwrap();
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (
        out.status.code().unwrap_or(-1),
        lines,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn one_json_line_per_file() {
    let vm = format!("{AUDIO}/voicemail_greeting_beep_8k_ulaw.wav");
    let human = format!("{AUDIO}/human_hello_then_silence_8k_ulaw.wav");
    let fax = format!("{AUDIO}/fax_ced_2100hz_3s.wav");
    let (code, lines, _) = detect(&[&vm, &human, &fax]);
    assert_eq!(code, 0);
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["file"], vm.as_str());
    assert_eq!(lines[0]["verdict"], "machine");
    assert_eq!(lines[0]["greetingEnd"]["kind"], "beep");
    assert_eq!(lines[0]["greetingEnd"]["frequencyHz"], 1000);
    assert!(lines[0]["greetingEnd"]["timeMs"].as_u64().unwrap() > 10_000);
    assert_eq!(lines[1]["verdict"], "human");
    assert!(lines[1]["cause"].as_str().unwrap().starts_with("HUMAN-"));
    assert!(lines[1]["greetingEnd"].is_null());
    assert_eq!(lines[2]["verdict"], "fax");
    assert_eq!(lines[2]["cause"], "CED");
    for l in &lines {
        let c = l["confidence"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&c));
        assert!(l["latencyMs"].as_u64().unwrap() > 0);
    }
}

#[test]
fn bad_files_and_bad_config_are_reported() {
    let (code, lines, _) = detect(&[
        "/nonexistent.wav",
        concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"),
    ]);
    assert_eq!(code, 1);
    assert!(
        lines[0]["error"]
            .as_str()
            .unwrap()
            .starts_with("cannot read /nonexistent.wav")
    );
    assert!(lines[1]["error"].as_str().unwrap().contains("not a WAV file"));
    let (code, _, err) = detect(&["--config", r#"{"greetingMs": 5}"#, "x.wav"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("machineDetectionConfig/greetingMs should be >= 300"),
        "{err}"
    );
    // A stricter configuration changes the verdict: the greeting must be longer than the whole file.
    let human = format!("{AUDIO}/greeting_8k_ulaw.wav");
    let (_, lines, _) = detect(&[
        "--config",
        r#"{"greetingMs": 10000, "totalAnalysisMs": 3000}"#,
        &human,
    ]);
    assert_eq!(lines[0]["verdict"], "unknown", "{:?}", lines[0]);
}

/// `outdial say`: the gateway's text to speech into an 8 kHz WAV that the detector hears as a person; an unknown
/// engine is refused with the choices.
#[test]
fn say_writes_speech_the_detector_hears() {
    let dir = std::env::temp_dir().join(format!("outdial-say-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let wav = dir.join("hello.wav");
    let out = Command::new(env!("CARGO_BIN_EXE_outdial"))
        .args(["say", "--voice", "en-us+f2", "-o"])
        .arg(&wav)
        .arg("Hello? Who is this?")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let pcm = outdial_media::wav::read_8k(&wav).unwrap();
    let loud = pcm.iter().filter(|s| s.unsigned_abs() > 3000).count();
    assert!(
        pcm.len() > 8 * 800 && loud > 800,
        "{} samples, {loud} loud",
        pcm.len()
    );
    // The detector on it, followed by silence: a person.
    let padded = dir.join("padded.wav");
    let mut audio = vec![0i16; 8 * 300];
    audio.extend(&pcm);
    audio.extend(vec![0i16; 8 * 3000]);
    std::fs::write(&padded, outdial_media::wav::encode_pcm16(&audio, 8000)).unwrap();
    let (code, lines, _) = detect(&[padded.to_str().unwrap()]);
    assert_eq!(
        (code, lines[0]["verdict"].as_str()),
        (0, Some("human")),
        "{lines:?}"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_outdial"))
        .args(["say", "--engine", "festival", "-o"])
        .arg(dir.join("x.wav"))
        .arg("Hello")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unknown engine \"festival\": espeak or piper"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// `--words`: the second opinion from the local Whisper, as a live call has it. A person's longer answer ("Hello?
/// Yes, one moment please, I'm coming.", 2.2 s of voice at once) is a greeting to the cadence alone, and a person
/// with their words (docs/detection.md, "Second opinion").
#[test]
fn words_settle_a_persons_longer_answer() {
    let file = format!("{AUDIO}/long_answer_piper_8k_ulaw.wav");
    let (code, lines, err) = detect(&[&file]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(lines[0]["verdict"], "machine", "{}", lines[0]);
    assert!(lines[0]["cause"].as_str().unwrap().starts_with("LONGGREETING"));
    assert!(lines[0]["evidence"]["transcript"].is_null());

    let (code, lines, err) = detect(&[&file, "--words", "en-US"]);
    assert_eq!(code, 0, "{err}");
    let l = &lines[0];
    assert_eq!(
        (l["verdict"].as_str(), l["cause"].as_str()),
        (Some("human"), Some("HUMAN-800-800")),
        "{l}"
    );
    let heard = l["evidence"]["transcript"].as_str().unwrap().to_lowercase();
    assert!(heard.contains("moment"), "{l}");
    // Decided at the pause after the answer: its voice ends ~3.0 s into the file, then 0.8 s.
    let at = l["latencyMs"].as_u64().unwrap();
    assert!((3500..=4100).contains(&at), "{l}");
}
