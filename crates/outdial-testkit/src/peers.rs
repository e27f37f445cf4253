//! Far ends of the tests written in Python (`peers/`): minimal SIP UASes on a free UDP port of 127.0.0.1 whose
//! media uses implementations independent of outdial's: SRTP with libsrtp (PyPI `pylibsrtp`, `srtp_peer.py`) and
//! G.722 with PyPI `g722` (`g722_peer.py`).

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};

pub const PEERS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/peers");

pub struct Peer {
    child: Child,
    out: BufReader<ChildStdout>,
    pub port: u16,
}

impl Peer {
    /// The SRTP peer for one call with `suite` (`"80"` or `"32"`), hanging up after `seconds`.
    pub fn srtp(suite: &str, seconds: f64) -> Peer {
        Self::start("srtp_peer.py", &[suite.to_string(), seconds.to_string()])
    }

    /// The G.722 peer for one call, hanging up after `seconds` unless the caller does first.
    pub fn g722(seconds: f64) -> Peer {
        Self::start("g722_peer.py", &[seconds.to_string()])
    }

    fn start(script: &str, args: &[String]) -> Peer {
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new("python3")
            .arg(format!("{PEERS}/{script}"))
            .arg(port.to_string())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 (scripts/install.sh --test installs the peers' packages)");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "READY", "the peer {script} started");
        Peer { child, out, port }
    }

    /// The peer's report (one JSON line) once the call is over.
    pub fn report(mut self) -> serde_json::Value {
        let mut line = String::new();
        self.out.read_line(&mut line).unwrap();
        let _ = self.child.wait();
        serde_json::from_str(&line).unwrap_or(serde_json::Value::Null)
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
