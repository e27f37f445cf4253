//! Test peers shared by the suites of several crates. [`Sipp`] runs sipp (Debian package `sip-tester`) as the
//! SIP far end on 127.0.0.1 with one of the scenario files in `sipp/`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test support fails loudly.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The folder of the scenario files.
pub const SCENARIOS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/sipp");

/// A sipp process playing a UAS scenario for one call; killed when dropped.
pub struct Sipp {
    child: Child,
    pub port: u16,
}

impl Sipp {
    /// Starts `scenario` (a file of [`SCENARIOS`]) on a free UDP port of 127.0.0.1, for one call.
    pub fn uas(scenario: &str, extra: &[&str]) -> Sipp {
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("sipp")
            .current_dir(SCENARIOS)
            .args([
                "-sf",
                scenario,
                "-i",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-m",
                "1",
                "-timeout",
                "20s",
                "-nostdin",
            ])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sipp is installed (Debian package sip-tester; scripts/test.sh installs it)");
        std::thread::sleep(Duration::from_millis(300));
        Sipp { child, port }
    }

    /// sipp's exit code once it is done (0: its scenario completed), -1 if it is still running after 15 s.
    pub fn exit_code(mut self) -> i32 {
        for _ in 0..150 {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code().unwrap_or(-1);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        -1
    }
}

impl Drop for Sipp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
