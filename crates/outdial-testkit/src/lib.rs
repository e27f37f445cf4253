//! Test peers shared by the suites of several crates. [`Sipp`] runs sipp (Debian package `sip-tester`) as the
//! SIP far end on 127.0.0.1 with one of the scenario files in `sipp/`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test support fails loudly.

mod botframework;
mod dns;
mod peers;
mod redis;
mod tls;

pub use botframework::BotFramework;
pub use dns::{Dns, Record};
pub use peers::Peer;
pub use redis::RedisServer;
pub use tls::{Stunnel, TestCa};

use std::os::unix::process::CommandExt as _;
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
    /// Starts `scenario` (a file of [`SCENARIOS`]) on a free UDP port of 127.0.0.1, for one call. A port that was
    /// free when it was picked can be taken before sipp binds it (tests run side by side): then sipp exits, and
    /// another port is tried.
    pub fn uas(scenario: &str, extra: &[&str]) -> Sipp {
        for _ in 0..5 {
            let port = std::net::UdpSocket::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let mut sipp = Self::spawn(port, scenario, extra);
            if sipp.listening() {
                return sipp;
            }
        }
        panic!("sipp did not start on any of five free ports")
    }

    /// Starts `scenario` on this port of 127.0.0.1 (to bring a far end back where it was).
    pub fn uas_on(port: u16, scenario: &str, extra: &[&str]) -> Sipp {
        let mut sipp = Self::spawn(port, scenario, extra);
        assert!(sipp.listening(), "sipp did not start on port {port}");
        sipp
    }

    /// Whether sipp is running and holds its port (waits up to 3 s for it to bind).
    fn listening(&mut self) -> bool {
        for _ in 0..300 {
            if self.child.try_wait().ok().flatten().is_some() {
                return false;
            }
            // sipp listens on UDP, or on TCP with `-t t1`.
            let taken = std::net::UdpSocket::bind(("127.0.0.1", self.port)).is_err()
                || std::net::TcpListener::bind(("127.0.0.1", self.port)).is_err();
            if taken {
                // Taken: by sipp, unless it exits at once because someone else had it.
                std::thread::sleep(Duration::from_millis(50));
                return self.child.try_wait().ok().flatten().is_none();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    fn spawn(port: u16, scenario: &str, extra: &[&str]) -> Sipp {
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

/// Kamailio (Debian package `kamailio`) as a record-routing proxy ("SBC") in front of a far end on 127.0.0.1.
pub struct Kamailio {
    child: Child,
    pub port: u16,
    dir: std::path::PathBuf,
}

impl Kamailio {
    /// Starts Kamailio on a free UDP port, relaying initial INVITEs to 127.0.0.1:`upstream_port`.
    pub fn relay_to(upstream_port: u16) -> Kamailio {
        let template =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/kamailio/sbc-lite.cfg.in"))
                .unwrap();
        Self::start(&template.replace("@UPSTREAM_PORT@", &upstream_port.to_string()))
    }

    /// Starts Kamailio as an independent SIP parser: each INVITE is answered 486 after the values Kamailio parsed
    /// from its From and To are logged (read them with [`Kamailio::parsed`]).
    pub fn parser() -> Kamailio {
        let template =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/kamailio/parser.cfg.in")).unwrap();
        Self::start(&template)
    }

    /// What Kamailio parsed out of the INVITE with this Call-ID: field (`fn`, `fU`, `fd`, `ft`, `from`, `tU`,
    /// `fromcount`, `tocount`, or `malformed`) → value; empty until the INVITE was seen.
    pub fn parsed(&self, call_id: &str) -> std::collections::HashMap<String, String> {
        let log = std::fs::read_to_string(self.dir.join("kamailio.log")).unwrap_or_default();
        let mut out = std::collections::HashMap::new();
        for line in log.lines() {
            let Some(rest) = line.split_once("PARSED ").map(|(_, r)| r) else {
                continue;
            };
            let Some((field, rest)) = rest.split_once(' ') else {
                continue;
            };
            if let Some(value) = rest.strip_prefix(call_id).and_then(|v| v.strip_prefix(' ')) {
                out.insert(field.to_string(), value.to_string());
            }
        }
        out
    }

    fn start(template: &str) -> Kamailio {
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(format!("outdial-kamailio-{port}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cfg = dir.join("kamailio.cfg");
        std::fs::write(&cfg, template.replace("@LISTEN_PORT@", &port.to_string())).unwrap();
        let log = std::fs::File::create(dir.join("kamailio.log")).unwrap();
        // Its own process group: Kamailio forks workers, and they must go with it.
        let child = Command::new("kamailio")
            .process_group(0)
            .arg("-f")
            .arg(&cfg)
            .args(["-DD", "-E", "-m", "64", "-M", "8", "-P"])
            .arg(dir.join("kamailio.pid"))
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("kamailio is installed (Debian package kamailio; scripts/test.sh installs it)");
        std::thread::sleep(Duration::from_millis(1500));
        Kamailio { child, port, dir }
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
