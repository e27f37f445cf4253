//! `outdial demo` (the README's first command) runs on a fresh machine and every call ends as it should.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly.

use std::process::Command;

#[test]
fn the_demo_shows_five_outcomes() {
    let out = Command::new(env!("CARGO_BIN_EXE_outdial"))
        .arg("demo")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "a person answers and says yes",
        "reasonCode=bot-disconnected  reason=answered yes  botOperationResult=yes",
        "heard:\"Yes",
        "machineDetection=voicemail beep",
        "botOperationResult=voicemail",
        "reason=fax detected",
        "reasonCode=busy",
        "reasonCode=no-answer",
        "All five calls ended as they should.",
    ] {
        assert!(text.contains(line), "missing '{line}' in:\n{text}");
    }
    assert_eq!(text.matches("✔ call").count(), 5, "{text}");
}
