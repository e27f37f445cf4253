//! Media of a call. For now: one RTP socket per call, the SDP offer (PCMU, PCMA, telephone-event), the answer's
//! address, µ-law silence sent every 20 ms on a drift-free schedule, and received packets counted (garbage
//! dropped). Codecs, jitter buffer, DTMF, playout and detection taps grow here.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("no free RTP port in {0}-{1}")]
    NoPort(u16, u16),
    #[error("the SDP answer has no usable audio stream: {0}")]
    BadAnswer(String),
}

/// Counters of one session.
#[derive(Debug, Default)]
pub struct Stats {
    pub sent: AtomicU64,
    pub received: AtomicU64,
    /// Datagrams that are not RTP version 2.
    pub dropped: AtomicU64,
}

/// The RTP side of one call.
pub struct RtpSession {
    socket: Arc<UdpSocket>,
    pub local: SocketAddr,
    pub stats: Arc<Stats>,
    tasks: Vec<JoinHandle<()>>,
}

impl RtpSession {
    /// Binds an even port of `ports` on `ip` (RTCP would take the odd one above).
    pub async fn bind(ip: IpAddr, ports: (u16, u16)) -> Result<RtpSession, MediaError> {
        let (first, last) = ports;
        let span = u32::from(last.saturating_sub(first) / 2).max(1);
        let start = rand::random::<u32>() % span;
        for i in 0..span {
            let port = first + (((start + i) % span) * 2) as u16;
            if let Ok(socket) = UdpSocket::bind((ip, port)).await {
                let local = socket.local_addr().map_err(|_| MediaError::NoPort(first, last))?;
                return Ok(RtpSession {
                    socket: Arc::new(socket),
                    local,
                    stats: Arc::default(),
                    tasks: Vec::new(),
                });
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

    /// Starts sending silence to the answer's address and receiving from anywhere (symmetric RTP comes later).
    pub fn start(&mut self, remote: SocketAddr, payload_type: u8) {
        let (socket, stats) = (self.socket.clone(), self.stats.clone());
        self.tasks.push(tokio::spawn(async move {
            let ssrc: u32 = rand::random();
            let mut seq: u16 = rand::random();
            let mut ts: u32 = rand::random();
            let silence = if payload_type == 8 { 0xD5 } else { 0xFF };
            let mut packet = vec![0u8; 12 + 160];
            // interval() keeps a fixed schedule: a late tick does not shift the ones after it.
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            loop {
                tick.tick().await;
                packet[0] = 0x80;
                packet[1] = payload_type & 0x7f;
                packet[2..4].copy_from_slice(&seq.to_be_bytes());
                packet[4..8].copy_from_slice(&ts.to_be_bytes());
                packet[8..12].copy_from_slice(&ssrc.to_be_bytes());
                packet[12..].fill(silence);
                if socket.send_to(&packet, remote).await.is_ok() {
                    stats.sent.fetch_add(1, Ordering::Relaxed);
                }
                seq = seq.wrapping_add(1);
                ts = ts.wrapping_add(160);
            }
        }));
        let (socket, stats) = (self.socket.clone(), self.stats.clone());
        self.tasks.push(tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            while let Ok((n, _)) = socket.recv_from(&mut buf).await {
                if n >= 12 && buf[0] >> 6 == 2 {
                    stats.received.fetch_add(1, Ordering::Relaxed);
                } else {
                    stats.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
}

impl Drop for RtpSession {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The audio address and first payload type of an SDP answer.
pub fn parse_answer(sdp: &str) -> Result<(SocketAddr, u8), MediaError> {
    let mut session_ip: Option<IpAddr> = None;
    let mut media_ip: Option<IpAddr> = None;
    let mut audio: Option<(u16, u8)> = None;
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
            in_audio = f.next() == Some("audio");
            if in_audio && audio.is_none() {
                let port = f.next().and_then(|p| p.parse::<u16>().ok());
                let pt = f.nth(1).and_then(|p| p.parse::<u8>().ok());
                if let (Some(port), Some(pt)) = (port, pt) {
                    audio = Some((port, pt));
                }
            }
        }
    }
    let (port, pt) = audio.ok_or_else(|| MediaError::BadAnswer("no m=audio line".into()))?;
    let ip = media_ip
        .or(session_ip)
        .ok_or_else(|| MediaError::BadAnswer("no c= address".into()))?;
    if port == 0 {
        return Err(MediaError::BadAnswer("audio stream rejected (port 0)".into()));
    }
    Ok((SocketAddr::new(ip, port), pt))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers() {
        let sdp = "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 6000 RTP/AVP 8 101\r\nc=IN IP4 127.0.0.1\r\n";
        assert_eq!(parse_answer(sdp).unwrap(), ("127.0.0.1:6000".parse().unwrap(), 8));
        assert_eq!(
            parse_answer("c=IN IP4 1.2.3.4\r\nm=audio 7000 RTP/AVP 0\r\n")
                .unwrap()
                .0
                .port(),
            7000
        );
        assert!(parse_answer("c=IN IP4 1.2.3.4\r\nm=audio 0 RTP/AVP 0\r\n").is_err());
        assert!(parse_answer("garbage").is_err());
    }

    #[tokio::test]
    async fn sends_paced_silence_and_counts_what_arrives() {
        let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut s = RtpSession::bind("127.0.0.1".parse().unwrap(), (30000, 30100))
            .await
            .unwrap();
        assert!(s.local.port() % 2 == 0 && (30000..=30100).contains(&s.local.port()));
        assert!(
            s.offer(7)
                .contains(&format!("m=audio {} RTP/AVP 0 8 101", s.local.port()))
        );
        s.start(peer.local_addr().unwrap(), 0);
        let mut buf = [0u8; 1500];
        let mut seqs = Vec::new();
        let started = tokio::time::Instant::now();
        for _ in 0..10 {
            let (n, from) = peer.recv_from(&mut buf).await.unwrap();
            assert_eq!((n, buf[0], buf[1]), (172, 0x80, 0));
            assert!(buf[12..n].iter().all(|b| *b == 0xFF), "µ-law silence");
            seqs.push(u16::from_be_bytes([buf[2], buf[3]]));
            peer.send_to(&buf[..n], from).await.unwrap();
        }
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(170) && took < Duration::from_millis(400),
            "{took:?}"
        );
        assert!(seqs.windows(2).all(|w| w[1] == w[0].wrapping_add(1)));
        peer.send_to(b"junk", s.local).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(s.stats.received.load(Ordering::Relaxed) >= 9);
        assert_eq!(s.stats.dropped.load(Ordering::Relaxed), 1);
    }
}
