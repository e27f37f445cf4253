//! Media of a call: one RTP socket per call, the SDP offer (PCMU, PCMA, telephone-event) and answer, and the
//! media loop ([`session`]): 20 ms pacing that does not drift, symmetric RTP latching, jitter buffer with
//! concealment, G.711 µ-law and A-law, RFC 4733 DTMF both ways, media timeout, playout with interruption, and the
//! caller's audio as 20 ms frames for the detectors and speech.

pub mod dtmf;
pub mod g711;
pub mod jitter;
mod recv;
pub mod resample;
pub mod rtcp;
pub mod rtp;
pub mod session;
pub mod threads;
pub mod wav;

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
    pub local: SocketAddr,
}

impl RtpSession {
    /// Binds an even port of `ports` on `ip` for RTP and the odd one above it for RTCP.
    pub async fn bind(ip: IpAddr, ports: (u16, u16)) -> Result<RtpSession, MediaError> {
        let (first, last) = ports;
        let span = u32::from(last.saturating_sub(first) / 2).max(1);
        let start = rand::random::<u32>() % span;
        for i in 0..span {
            let port = first + (((start + i) % span) * 2) as u16;
            // A plain socket: the media loop registers it with the runtime it runs on.
            if let Ok(socket) = std::net::UdpSocket::bind((ip, port))
                && let Ok(rtcp) = std::net::UdpSocket::bind((ip, port + 1))
                && socket.set_nonblocking(true).is_ok()
                && rtcp.set_nonblocking(true).is_ok()
            {
                let local = socket.local_addr().map_err(|_| MediaError::NoPort(first, last))?;
                return Ok(RtpSession { socket, rtcp, local });
            }
        }
        Err(MediaError::NoPort(first, last))
    }

    /// The SDP offer for this session.
    pub fn offer(&self, session_id: u64) -> String {
        let ip = self.local.ip();
        let family = if ip.is_ipv4() { "IP4" } else { "IP6" };
        format!(
            "v=0\r\no=outdial {session_id} 1 IN {family} {ip}\r\ns=outdial\r\nc=IN {family} {ip}\r\nt=0 0\r\n\
             m=audio {} RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
             a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n",
            self.local.port()
        )
    }

    /// Starts the media loop towards the answer's address.
    pub fn start(self, answer: &Answer, cfg: MediaConfig) -> Media {
        session::start(
            (self.socket, self.rtcp),
            session::Peer {
                remote: answer.remote,
                remote_rtcp: answer.rtcp,
                law: answer.law,
                dtmf_pt: answer.dtmf_payload_type,
            },
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
        .ok_or_else(|| MediaError::BadAnswer(format!("no PCMU or PCMA among the formats {formats:?}")))?;
    let rtcp = match rtcp_attr {
        Some((p, addr)) => SocketAddr::new(addr.unwrap_or(ip), p),
        None => SocketAddr::new(ip, port.saturating_add(1)),
    };
    Ok(Answer {
        remote: SocketAddr::new(ip, port),
        rtcp,
        law,
        dtmf_payload_type: dtmf.filter(|pt| formats.contains(pt)),
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
                dtmf_payload_type: Some(101)
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
