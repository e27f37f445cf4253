//! The SRTP far end of the tests (`peers/srtp_peer.py`, libsrtp through PyPI `pylibsrtp`): a SIP UAS on a free UDP
//! port of 127.0.0.1 that encrypts its media with an implementation independent of outdial's.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};

pub const PEER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/peers/srtp_peer.py");

pub struct SrtpPeer {
    child: Child,
    out: BufReader<ChildStdout>,
    pub port: u16,
}

impl SrtpPeer {
    /// Starts the peer for one call with `suite` (`"80"` or `"32"`), hanging up after `seconds`.
    pub fn start(suite: &str, seconds: f64) -> SrtpPeer {
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new("python3")
            .args([PEER, &port.to_string(), suite, &seconds.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 with pylibsrtp (scripts/install.sh --test installs it)");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "READY", "the SRTP peer started");
        SrtpPeer { child, out, port }
    }

    /// The peer's report once the call is over (packets received, authenticated, failed, plain on the wire, sent
    /// back, BYE answered).
    pub fn report(mut self) -> serde_json::Value {
        let mut line = String::new();
        self.out.read_line(&mut line).unwrap();
        let _ = self.child.wait();
        serde_json::from_str(&line).unwrap_or(serde_json::Value::Null)
    }
}

impl Drop for SrtpPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
