//! Media of a call: one RTP socket per call, the SDP offer (PCMU, PCMA, telephone-event) and answer, and the
//! media loop ([`session`]): 20 ms pacing that does not drift, symmetric RTP latching, jitter buffer with
//! concealment, G.711 µ-law and A-law, RFC 4733 DTMF both ways, media timeout, playout with interruption, and the
//! caller's audio as 20 ms frames for the detectors and speech.

mod commands;
pub mod dtmf;
pub mod g711;
mod inbound;
pub mod jitter;
mod latch;
mod outbound;
pub mod ports;
mod recv;
pub mod resample;
pub mod rtcp;
pub mod rtp;
pub mod session;
pub mod srtp;
pub mod threads;
pub mod wav;
pub mod wideband;

pub use g711::Law;
pub use session::{FRAME, Media, MediaConfig, MediaEvent, SendTiming, Stats};
pub use threads::MediaThreads;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("no free RTP port in {0}-{1}")]
    NoPort(u16, u16),
    #[error("the SDP answer has no usable audio stream: {0}")]
    BadAnswer(String),
}

/// The RTP side of one call, before it is answered.
pub struct RtpSession {
    socket: std::net::UdpSocket,
    rtcp: std::net::UdpSocket,
    /// The port pair's place in the pool (given back after the sockets are closed: fields drop in order).
    port: Option<ports::PortLease>,
    pub local: SocketAddr,
    security: Security,
    /// Our SRTP keys, one per offered suite (none for plain RTP).
    offered: Vec<srtp::Keys>,
    /// The audio codecs offered, best first, and whether telephone-event is.
    codecs: Vec<Law>,
    dtmf: bool,
}

/// Whether the media is encrypted (a trunk's `srtp`; docs/trunks.md, "SRTP").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Security {
    /// Plain RTP.
    #[default]
    Plain,
    /// SRTP when the answer takes one of our `a=crypto` keys, else plain RTP (offered as `RTP/AVP`).
    Optional,
    /// SRTP only (offered as `RTP/SAVP`); an answer without a usable key ends the call.
    Required,
}

impl RtpSession {
    /// Takes a port pair from `pool` and binds it on `ip` (RTP on the even port, RTCP above it). A pair that
    /// another process holds goes back to the end of the list and the next one is tried, a few times; an empty
    /// pool fails at once.
    pub fn bind_from(ip: IpAddr, pool: &ports::PortPool) -> Result<RtpSession, MediaError> {
        let (first, last) = pool.range();
        for _ in 0..16 {
            let lease = pool.take().ok_or(MediaError::NoPort(first, last))?;
            if let Some(session) = Self::open(ip, lease.port, Some(lease)) {
                return Ok(session);
            }
        }
        Err(MediaError::NoPort(first, last))
    }

    /// Binds an even port of `ports` on `ip` for RTP and the odd one above it for RTCP, probing the range from a
    /// random place (for peers without a pool: the simulated callee, tests).
    pub async fn bind(ip: IpAddr, ports: (u16, u16)) -> Result<RtpSession, MediaError> {
        let (first, last) = ports;
        let span = u32::from(last.saturating_sub(first) / 2).max(1);
        let start = rand::random::<u32>() % span;
        for i in 0..span {
            let port = first + (((start + i) % span) * 2) as u16;
            if let Some(session) = Self::open(ip, port, None) {
                return Ok(session);
            }
        }
        Err(MediaError::NoPort(first, last))
    }

    /// The session on `port` (RTP) and `port + 1` (RTCP) of `ip`, when both can be bound. Plain sockets: the media
    /// loop registers them with the runtime it runs on.
    fn open(ip: IpAddr, port: u16, lease: Option<ports::PortLease>) -> Option<RtpSession> {
        let socket = std::net::UdpSocket::bind((ip, port)).ok()?;
        let rtcp = std::net::UdpSocket::bind((ip, port + 1)).ok()?;
        socket.set_nonblocking(true).ok()?;
        rtcp.set_nonblocking(true).ok()?;
        recv::stamp_arrivals(&socket);
        recv::stamp_arrivals(&rtcp);
        let local = socket.local_addr().ok()?;
        Some(RtpSession {
            socket,
            rtcp,
            port: lease,
            local,
            security: Security::Plain,
            offered: Vec::new(),
            codecs: vec![Law::Ulaw, Law::Alaw],
            dtmf: true,
        })
    }

    /// The codecs to offer, by a trunk's names in its order (`pcmu`, `pcma`, `g722`, `telephone-event`; others are
    /// not offered). Without an audio codec among them, PCMU and PCMA.
    pub fn set_codecs(&mut self, names: &[String]) {
        let audio: Vec<Law> = names
            .iter()
            .filter_map(|n| match n.as_str() {
                "pcmu" => Some(Law::Ulaw),
                "pcma" => Some(Law::Alaw),
                "g722" => Some(Law::G722),
                _ => None,
            })
            .collect();
        self.codecs = if audio.is_empty() {
            vec![Law::Ulaw, Law::Alaw]
        } else {
            audio
        };
        self.dtmf = names.iter().any(|n| n == "telephone-event");
    }

    /// The SDP offer for this session (plain RTP).
    pub fn offer(&self, session_id: u64) -> String {
        self.sdp(session_id, "RTP/AVP", "")
    }

    /// The SDP offer with `security`: for SRTP, fresh keys for each suite as `a=crypto` lines.
    pub fn offer_secure(&mut self, session_id: u64, security: Security) -> String {
        self.security = security;
        if security == Security::Plain {
            return self.offer(session_id);
        }
        self.offered = srtp::Suite::ALL
            .into_iter()
            .zip(1..)
            .map(|(suite, tag)| srtp::Keys::generate(tag, suite))
            .collect();
        let crypto: String = self
            .offered
            .iter()
            .map(|k| format!("{}\r\n", k.attribute()))
            .collect();
        let profile = if security == Security::Required {
            "RTP/SAVP"
        } else {
            "RTP/AVP"
        };
        self.sdp(session_id, profile, &crypto)
    }

    fn sdp(&self, session_id: u64, profile: &str, crypto: &str) -> String {
        let ip = self.local.ip();
        let family = if ip.is_ipv4() { "IP4" } else { "IP6" };
        let mut pts: Vec<String> = self.codecs.iter().map(|c| c.payload_type().to_string()).collect();
        let mut maps: String = self
            .codecs
            .iter()
            .map(|c| {
                let name = match c {
                    Law::Ulaw => "PCMU",
                    Law::Alaw => "PCMA",
                    Law::G722 => "G722",
                };
                // G.722's RTP clock is 8000 although it carries 16 kHz audio (RFC 3551).
                format!("a=rtpmap:{} {name}/8000\r\n", c.payload_type())
            })
            .collect();
        if self.dtmf {
            pts.push("101".into());
            maps.push_str("a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n");
        }
        format!(
            "v=0\r\no=outdial {session_id} 1 IN {family} {ip}\r\ns=outdial\r\nc=IN {family} {ip}\r\nt=0 0\r\n\
             m=audio {} {profile} {}\r\n{maps}a=ptime:20\r\n{crypto}a=sendrecv\r\n",
            self.local.port(),
            pts.join(" ")
        )
    }

    /// Whether the answer meets our security: with SRTP required, it must take one of our keys; a key it gives
    /// must answer one we offered.
    pub fn accepts(&self, answer: &Answer) -> Result<(), MediaError> {
        if self.security == Security::Plain {
            return Ok(());
        }
        match &answer.crypto {
            Some(k) if self.offered_key(k).is_some() => Ok(()),
            Some(k) => Err(MediaError::BadAnswer(format!(
                "its a=crypto:{} {} answers none of ours",
                k.tag,
                k.suite.name()
            ))),
            None if self.security == Security::Required => Err(MediaError::BadAnswer(
                "SRTP is required (trunk srtp = \"required\") and the answer has no usable a=crypto".into(),
            )),
            None => Ok(()),
        }
    }

    /// The SRTP contexts for `answer` (None: plain RTP).
    fn srtp(&self, answer: &Answer) -> Option<srtp::Srtp> {
        if self.security == Security::Plain {
            return None;
        }
        let theirs = answer.crypto.as_ref()?;
        srtp::Srtp::new(self.offered_key(theirs)?, theirs)
    }

    /// Our key that the answer's key answers (same tag and suite).
    fn offered_key(&self, theirs: &srtp::Keys) -> Option<&srtp::Keys> {
        self.offered
            .iter()
            .find(|o| o.tag == theirs.tag && o.suite == theirs.suite)
    }

    /// Starts the media loop towards the answer's address.
    pub fn start(self, answer: &Answer, cfg: MediaConfig) -> Media {
        let srtp = self.srtp(answer);
        session::start(
            (self.socket, self.rtcp, self.port),
            session::Peer {
                remote: answer.remote,
                remote_rtcp: answer.rtcp,
                law: answer.law,
                dtmf_pt: answer.dtmf_payload_type,
            },
            srtp,
            cfg,
            Arc::new(Stats::default()),
        )
    }
}

/// What the far end's SDP answer chose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub remote: SocketAddr,
    /// Where RTCP goes: `a=rtcp` when given, else the RTP port + 1.
    pub rtcp: SocketAddr,
    pub law: Law,
    pub dtmf_payload_type: Option<u8>,
    /// The SRTP key the answer gives for its direction (`a=crypto`), if any.
    pub crypto: Option<srtp::Keys>,
}

/// Whether an SDP puts the call on hold: `a=sendonly` or `a=inactive` (session or audio level), or the
/// RFC 2543 `c=IN IP4 0.0.0.0`.
pub fn is_hold(sdp: &str) -> bool {
    sdp.lines().map(str::trim).any(|l| {
        matches!(l, "a=sendonly" | "a=inactive")
            || l.strip_prefix("c=")
                .and_then(|c| c.split_whitespace().nth(2))
                .is_some_and(|a| a == "0.0.0.0")
    })
}

/// The audio address, codec (the first of the answer's formats we support) and telephone-event payload type of
/// an SDP answer.
pub fn parse_answer(sdp: &str) -> Result<Answer, MediaError> {
    let mut session_ip: Option<IpAddr> = None;
    let mut media_ip: Option<IpAddr> = None;
    let mut audio: Option<(u16, Vec<u8>)> = None;
    let mut dtmf = None;
    let mut rtcp_attr: Option<(u16, Option<IpAddr>)> = None;
    let mut crypto = None;
    let mut in_audio = false;
    for line in sdp.lines().map(str::trim) {
        if let Some(c) = line.strip_prefix("c=") {
            let ip = c
                .split_whitespace()
                .nth(2)
                .and_then(|a| a.split('/').next())
                .and_then(|a| a.parse().ok());
            if in_audio {
                media_ip = ip
            } else if audio.is_none() {
                session_ip = ip
            }
        } else if let Some(m) = line.strip_prefix("m=") {
            let mut f = m.split_whitespace();
            in_audio = f.next() == Some("audio") && audio.is_none();
            if in_audio {
                let port = f.next().and_then(|p| p.parse::<u16>().ok());
                let formats = f.skip(1).filter_map(|p| p.parse::<u8>().ok()).collect();
                if let Some(port) = port {
                    audio = Some((port, formats));
                }
            }
        } else if in_audio && let Some(a) = line.strip_prefix("a=rtcp:") {
            let mut f = a.split_whitespace();
            if let Some(port) = f.next().and_then(|p| p.parse().ok()) {
                rtcp_attr = Some((port, f.nth(2).and_then(|ip| ip.parse().ok())));
            }
        } else if in_audio && crypto.is_none() && line.starts_with("a=crypto:") {
            crypto = srtp::Keys::parse(line);
        } else if in_audio && let Some(map) = line.strip_prefix("a=rtpmap:") {
            let (pt, name) = map.split_once(' ').unwrap_or((map, ""));
            if name.to_ascii_lowercase().starts_with("telephone-event/8000") {
                dtmf = pt.parse::<u8>().ok();
            }
        }
    }
    let (port, formats) = audio.ok_or_else(|| MediaError::BadAnswer("no m=audio line".into()))?;
    let ip = media_ip
        .or(session_ip)
        .ok_or_else(|| MediaError::BadAnswer("no c= address".into()))?;
    if port == 0 {
        return Err(MediaError::BadAnswer("audio stream rejected (port 0)".into()));
    }
    let law = formats
        .iter()
        .find_map(|&pt| Law::from_payload_type(pt))
        .ok_or_else(|| {
            MediaError::BadAnswer(format!("no PCMU, PCMA or G.722 among the formats {formats:?}"))
        })?;
    let rtcp = match rtcp_attr {
        Some((p, addr)) => SocketAddr::new(addr.unwrap_or(ip), p),
        None => SocketAddr::new(ip, port.saturating_add(1)),
    };
    Ok(Answer {
        remote: SocketAddr::new(ip, port),
        rtcp,
        law,
        dtmf_payload_type: dtmf.filter(|pt| formats.contains(pt)),
        crypto,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers() {
        let sdp = "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 6000 RTP/AVP 8 101\r\nc=IN IP4 127.0.0.1\r\n\
                   a=rtpmap:101 telephone-event/8000\r\n";
        assert_eq!(
            parse_answer(sdp).unwrap(),
            Answer {
                remote: "127.0.0.1:6000".parse().unwrap(),
                rtcp: "127.0.0.1:6001".parse().unwrap(),
                law: Law::Alaw,
                dtmf_payload_type: Some(101),
                crypto: None,
            }
        );
        let a = parse_answer("c=IN IP4 1.2.3.4\r\nm=audio 7000 RTP/AVP 18 0\r\n").unwrap();
        assert_eq!(
            (a.remote.port(), a.law, a.dtmf_payload_type),
            (7000, Law::Ulaw, None)
        );
        let a = parse_answer("c=IN IP4 1.2.3.4\r\nm=audio 7000 RTP/AVP 0\r\na=rtcp:7005 IN IP4 5.6.7.8\r\n")
            .unwrap();
        assert_eq!(a.rtcp, "5.6.7.8:7005".parse().unwrap());
        assert!(parse_answer("c=IN IP4 1.2.3.4\r\nm=audio 0 RTP/AVP 0\r\n").is_err());
        assert!(parse_answer("c=IN IP4 1.2.3.4\r\nm=audio 7000 RTP/AVP 18\r\n").is_err());
        assert!(parse_answer("garbage").is_err());
    }
}

#[cfg(test)]
mod security_tests {
    use super::*;

    const ANSWER: &str = "v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 7000 RTP/SAVP 0\r\n";

    #[tokio::test]
    async fn srtp_offers_and_answers() {
        let mut s = RtpSession::bind("127.0.0.1".parse().unwrap(), (30000, 39998))
            .await
            .unwrap();
        let offer = s.offer_secure(1, Security::Required);
        assert!(offer.contains(" RTP/SAVP 0 8 101\r\n"), "{offer}");
        let keys: Vec<srtp::Keys> = offer.lines().filter_map(srtp::Keys::parse).collect();
        assert_eq!(keys.len(), 2, "one key per suite: {offer}");
        assert_ne!(keys[0], keys[1]);
        let plain = parse_answer(ANSWER).unwrap();
        assert!(
            s.accepts(&plain)
                .unwrap_err()
                .to_string()
                .contains("SRTP is required")
        );
        let theirs = srtp::Keys::generate(2, srtp::Suite::AesCm128HmacSha1_32);
        let good = parse_answer(&format!("{ANSWER}{}\r\n", theirs.attribute())).unwrap();
        assert_eq!(good.crypto.as_ref(), Some(&theirs));
        s.accepts(&good).unwrap();
        let wrong = srtp::Keys::generate(7, srtp::Suite::AesCm128HmacSha1_80);
        let bad = parse_answer(&format!("{ANSWER}{}\r\n", wrong.attribute())).unwrap();
        assert!(s.accepts(&bad).is_err(), "a tag we did not offer");
        let mut opt = RtpSession::bind("127.0.0.1".parse().unwrap(), (30000, 39998))
            .await
            .unwrap();
        let offer = opt.offer_secure(1, Security::Optional);
        assert!(
            offer.contains(" RTP/AVP 0 8 101\r\n") && offer.contains("a=crypto:1 "),
            "{offer}"
        );
        opt.accepts(&plain).unwrap();
        let plain_offer = RtpSession::bind("127.0.0.1".parse().unwrap(), (30000, 39998))
            .await
            .unwrap()
            .offer(1);
        assert!(!plain_offer.contains("a=crypto"));
    }
}
