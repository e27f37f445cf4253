//! Beeps as real voicemail systems make them (docs/detection.md, "Beeps"): attack and decay ramps, harmonics, an
//! amplitude wobble, two tones, a long ring-out — each after a real greeting, at every timing offset within a
//! 20 ms frame; and what must stay no beep (SIT, DTMF).
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly.

use outdial_detect::{Analysis, Config, Verdict, analyse, wav};
use std::f32::consts::PI;
use std::path::PathBuf;

fn greeting() -> Vec<i16> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/audio/greeting_8k_ulaw.wav");
    wav::read_8k(&path).unwrap()
}

/// A tone of `parts` (frequency, ms) one after another, each with `ramp_ms` attack and decay, harmonics of the
/// given relative amplitudes, and a 6 Hz amplitude wobble of depth `wobble` (0–1).
fn beep(parts: &[(f32, usize)], ramp_ms: usize, harmonics: &[f32], wobble: f32) -> Vec<i16> {
    let mut out = Vec::new();
    for &(hz, ms) in parts {
        let n = ms * 8;
        let ramp = (ramp_ms * 8).max(1) as f32;
        for i in 0..n {
            let t = i as f32 / 8000.0;
            let env = (i as f32 / ramp).min((n - 1 - i) as f32 / ramp).min(1.0)
                * (1.0 + wobble * (2.0 * PI * 6.0 * t).sin());
            let mut v = (2.0 * PI * hz * t).sin();
            for (h, a) in harmonics.iter().enumerate() {
                v += a * (2.0 * PI * hz * (h as f32 + 2.0) * t).sin();
            }
            out.push((9000.0 * env * v) as i16);
        }
    }
    out
}

/// Greeting, `lead_ms` of silence shifted by `offset` samples, the beep, 3 s of silence: the analysis and the
/// beep's true end (ms).
fn after_greeting(tone: &[i16], offset: usize) -> (Analysis, u64) {
    let mut audio = greeting();
    audio.extend(vec![0i16; 8 * 400 + offset]);
    audio.extend(tone);
    let truth = audio.len() as u64 / 8;
    audio.extend(vec![0i16; 8 * 3000]);
    (analyse(&Config::default(), &audio), truth)
}

fn assert_found(tone: &[i16], what: &str) {
    // Every offset of the beep against the 20 ms frames (2 ms steps).
    for offset in (0..160).step_by(16) {
        let (a, truth) = after_greeting(tone, offset);
        assert_eq!(a.decision.verdict, Verdict::Machine, "{what}: {a:?}");
        let Some(b) = &a.greeting_end else {
            panic!("{what}, offset {offset}: no beep ({a:?})");
        };
        assert!(
            b.time_ms.abs_diff(truth) <= 60,
            "{what}, offset {offset}: end {} vs {truth}",
            b.time_ms
        );
    }
}

#[test]
fn beeps_with_attack_and_decay_ramps_are_found_at_every_offset() {
    for ramp in [0, 10, 20, 30, 40, 50] {
        for hz in [440.0, 1000.0, 1800.0] {
            assert_found(
                &beep(&[(hz, 400)], ramp, &[], 0.0),
                &format!("{hz} Hz, {ramp} ms ramps"),
            );
        }
    }
    // A short beep with long ramps: 200 ms, 50 ms each way.
    assert_found(&beep(&[(850.0, 200)], 50, &[], 0.0), "200 ms, 50 ms ramps");
}

#[test]
fn beeps_with_harmonics_or_a_wobble_are_found() {
    // A clipped beep: 2nd and 3rd harmonics at −6 and −10 dB.
    assert_found(&beep(&[(600.0, 400)], 10, &[0.5, 0.3], 0.0), "harmonics");
    // Odd harmonics of a square-ish beep.
    assert_found(&beep(&[(700.0, 300)], 10, &[0.0, 0.33], 0.0), "square-ish");
    // A wobble of 4.4 dB from trough to crest.
    assert_found(&beep(&[(1000.0, 500)], 10, &[], 0.25), "wobble");
}

#[test]
fn a_two_tone_beep_is_one_beep_ending_with_its_second_tone() {
    let tone = beep(&[(1000.0, 200), (1400.0, 200)], 10, &[], 0.0);
    assert_found(&tone, "two tones");
    let (a, _) = after_greeting(&tone, 0);
    let b = a.greeting_end.unwrap();
    assert!(b.frequency_hz.abs_diff(1400) <= 15, "{b:?}");
    assert!(b.length_ms.abs_diff(400) <= 60, "{b:?}");
}

#[test]
fn a_beep_that_rings_out_is_found_near_where_it_fades() {
    // 150 ms steady, then an exponential decay of 30 dB over 250 ms (as a recorded beep rings out).
    let mut tone = beep(&[(875.0, 400)], 5, &[], 0.0);
    for (i, s) in tone.iter_mut().enumerate().skip(150 * 8) {
        let t = (i - 150 * 8) as f32 / 8000.0;
        *s = (f32::from(*s) * 10f32.powf(-30.0 * t / 0.25 / 20.0)) as i16;
    }
    let (a, truth) = after_greeting(&tone, 0);
    let b = a.greeting_end.expect("the beep");
    assert!(
        b.time_ms <= truth && truth - b.time_ms <= 200,
        "end {} vs {truth}",
        b.time_ms
    );
}

#[test]
fn sit_tones_and_dtmf_are_not_beeps() {
    // SIT: 913.8, 1370.6, 1776.7 Hz in a row, with ramps (three tones are a sequence, not a beep).
    let sit = beep(&[(913.8, 274), (1370.6, 274), (1776.7, 380)], 10, &[], 0.0);
    for offset in [0, 80] {
        let (a, _) = after_greeting(&sit, offset);
        assert_eq!(a.greeting_end, None, "SIT: {a:?}");
    }
    // DTMF digits (dual tones), 120 ms on, 80 ms off.
    let mut dtmf = Vec::new();
    for (lo, hi) in [(697.0, 1209.0), (770.0, 1336.0), (852.0, 1477.0)] {
        let n = 120 * 8;
        dtmf.extend((0..n).map(|i| {
            let t = i as f32 / 8000.0;
            (6000.0 * ((2.0 * PI * lo * t).sin() + (2.0 * PI * hi * t).sin())) as i16
        }));
        dtmf.extend(vec![0i16; 80 * 8]);
    }
    let (a, _) = after_greeting(&dtmf, 0);
    assert_eq!(a.greeting_end, None, "DTMF: {a:?}");
}
