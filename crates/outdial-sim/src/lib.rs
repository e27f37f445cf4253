//! A simulated callee: a SIP UAS on UDP that answers the way the dialled number says — a person saying hello, an
//! answering machine (greeting and beep, or greeting only), a fax (CED tone) — playing recorded audio over RTP, or
//! is busy, declines, or never answers. The demo and the end-to-end tests and benchmarks dial it.
//!
//! The behaviour comes from the Request-URI's user part: a keyword in it (`human`, `machine-nobeep`, `machine`,
//! `fax`, `busy`, `noanswer`, `decline`, `silent`, `screening` — a call-screening service), else the last digit of the number: 0 person, 1 machine with beep,
//! 2 machine without beep, 3 fax, 4 busy, 5 no answer, 6 decline, 7 silent (answers, says nothing), any other
//! digit a person.
//!
//! The person says "Hello? Who is this?", and after the caller (the bot) has spoken and fallen quiet, answers
//! "Yes please." once. What the callee heard of the last call is kept ([`SimStats::heard`]) so tests can check it.

pub mod bot;
pub mod cloudspeech;
mod dfwire;
pub mod dialogflow;
pub mod directline;
pub mod sip;
pub mod streambot;
pub mod wsbot;

use outdial_media::{MediaConfig, RtpSession, parse_answer};
use sip::{Message, response};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    Human,
    Machine,
    MachineNoBeep,
    Fax,
    Busy,
    NoAnswer,
    Decline,
    /// Answers and says nothing.
    Silent,
    /// A call-screening service: "The person you're calling is using a screening service. Please say your name
    /// and why you are calling." (the Piper voice).
    Screening,
    /// A person who answers at length at once: "Hello? Yes, one moment please, I'm coming." (the Piper voice,
    /// about 2.2 s of voice), then waits.
    LongAnswer,
}

const HUMAN: &[u8] = include_bytes!("../../outdial-detect/tests/audio/human_hello_then_silence_8k_ulaw.wav");
const MACHINE: &[u8] = include_bytes!("../../outdial-detect/tests/audio/voicemail_greeting_beep_8k_ulaw.wav");
const MACHINE_NO_BEEP: &[u8] = include_bytes!("../../outdial-detect/tests/audio/greeting_8k_ulaw.wav");
const FAX: &[u8] = include_bytes!("../../outdial-detect/tests/audio/fax_ced_2100hz_3s.wav");
const SCREENING: &[u8] = include_bytes!("../../outdial-detect/tests/audio/screening_service_8k_ulaw.wav");
const LONG_ANSWER: &[u8] = include_bytes!("../../outdial-detect/tests/audio/long_answer_piper_8k_ulaw.wav");
/// The person's answer to the bot's question.
pub(crate) const YES_PLEASE: &[u8] =
    include_bytes!("../../outdial-detect/tests/audio/yes_please_8k_ulaw.wav");

/// The simulated person's answer (8 kHz PCM): "Yes please." (espeak-ng).
pub fn yes_please() -> Vec<i16> {
    outdial_detect::wav::decode_8k(YES_PLEASE).unwrap_or_default()
}

const YES_PLEASE_PIPER: &[u8] =
    include_bytes!("../../outdial-detect/tests/audio/yes_please_piper_8k_ulaw.wav");

/// "Yes please." in the Piper voice (`outdial say --engine piper`, 300 ms of silence before, 500 ms after): a
/// voice closer to a person's than espeak-ng's, for recognisers trained on people ([`SimOptions::answer`]).
pub fn yes_please_piper() -> Vec<i16> {
    outdial_detect::wav::decode_8k(YES_PLEASE_PIPER).unwrap_or_default()
}

impl Behaviour {
    pub fn for_user(user: &str) -> Behaviour {
        let u = user.to_ascii_lowercase();
        for (word, b) in [
            ("machine-nobeep", Behaviour::MachineNoBeep),
            ("machine", Behaviour::Machine),
            ("human", Behaviour::Human),
            ("fax", Behaviour::Fax),
            ("busy", Behaviour::Busy),
            ("noanswer", Behaviour::NoAnswer),
            ("decline", Behaviour::Decline),
            ("silent", Behaviour::Silent),
            ("screening", Behaviour::Screening),
            ("long-answer", Behaviour::LongAnswer),
        ] {
            if u.contains(word) {
                return b;
            }
        }
        match u.chars().rev().find(char::is_ascii_digit) {
            Some('1') => Behaviour::Machine,
            Some('2') => Behaviour::MachineNoBeep,
            Some('3') => Behaviour::Fax,
            Some('4') => Behaviour::Busy,
            Some('5') => Behaviour::NoAnswer,
            Some('6') => Behaviour::Decline,
            Some('7') => Behaviour::Silent,
            _ => Behaviour::Human,
        }
    }

    /// What it plays once answered (8 kHz PCM).
    pub fn audio(self) -> Vec<i16> {
        let wav = match self {
            Behaviour::Human => HUMAN,
            Behaviour::Machine => MACHINE,
            Behaviour::MachineNoBeep => MACHINE_NO_BEEP,
            Behaviour::Fax => FAX,
            Behaviour::Screening => SCREENING,
            Behaviour::LongAnswer => LONG_ANSWER,
            _ => return Vec::new(),
        };
        outdial_detect::wav::decode_8k(wav).unwrap_or_default()
    }
}

/// When the person takes their turn: after the caller spoke for at least 0.6 s and then was quiet for 0.8 s;
/// once per call.
#[derive(Debug, Default)]
struct Turn {
    loud_samples: usize,
    quiet_samples: usize,
    done: bool,
}

impl Turn {
    fn after(&mut self, loud: bool, samples: usize) -> bool {
        if self.done {
            return false;
        }
        if loud {
            self.loud_samples += samples;
            self.quiet_samples = 0;
        } else if self.loud_samples > 0 {
            self.quiet_samples += samples;
        }
        self.done = self.loud_samples >= 4_800 && self.quiet_samples >= 6_400;
        self.done
    }
}

#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Ringing before the answer.
    pub ring: Duration,
    /// An answered call is hung up by the callee after this long.
    pub hold: Duration,
    pub rtp_ports: (u16, u16),
    /// What the person answers the bot's question with (8 kHz); None: "Yes please." in espeak-ng's voice
    /// ([`yes_please`]).
    pub answer: Option<Vec<i16>>,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            ring: Duration::from_millis(300),
            hold: Duration::from_secs(30),
            rtp_ports: (40000, 49998),
            answer: None,
        }
    }
}

#[derive(Debug, Default)]
pub struct SimStats {
    pub invites: AtomicU64,
    pub answered: AtomicU64,
    pub ended: AtomicU64,
    /// RTP packets received from the caller over all ended calls.
    pub rtp_received: AtomicU64,
    /// 20 ms frames of the caller's audio louder than -35 dBFS (speech or tones heard), all calls.
    pub loud_frames: AtomicU64,
    /// Answers the simulated person gave ("yes please" after the bot spoke), all calls.
    pub replies: AtomicU64,
    /// When the last answer started to play (Unix ms).
    pub replied_at_ms: AtomicU64,
    /// When each call's answer started to play (Unix ms), by the INVITE's Call-ID (outdial's is the conversation
    /// id without dashes, then `@outdial`).
    pub replied_at: parking_lot::Mutex<HashMap<String, u64>>,
    /// When each call's audio (the person's "Hello?", the greeting…) started to play (Unix ms), by Call-ID.
    pub answered_at: parking_lot::Mutex<HashMap<String, u64>>,
    /// The caller's audio of the last call that ended (8 kHz, at most a minute): what the person heard.
    pub heard: parking_lot::Mutex<Vec<i16>>,
}

/// A running simulated callee; stops when dropped.
pub struct Sim {
    pub addr: SocketAddr,
    pub stats: Arc<SimStats>,
    task: JoinHandle<()>,
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn start(listen: SocketAddr, opts: SimOptions) -> std::io::Result<Sim> {
    let socket = Arc::new(UdpSocket::bind(listen).await?);
    let addr = socket.local_addr()?;
    let stats = Arc::new(SimStats::default());
    let task = tokio::spawn(serve(socket, opts, stats.clone()));
    Ok(Sim { addr, stats, task })
}

async fn serve(socket: Arc<UdpSocket>, opts: SimOptions, stats: Arc<SimStats>) {
    let mut calls: HashMap<String, mpsc::Sender<Message>> = HashMap::new();
    let (done_tx, mut done) = mpsc::channel::<String>(256);
    let mut buf = vec![0u8; 65536];
    loop {
        tokio::select! {
            r = socket.recv_from(&mut buf) => {
                let Ok((n, peer)) = r else { continue };
                let Some(msg) = Message::parse(&buf[..n]) else { continue };
                let Some(call_id) = msg.header("call-id").map(str::to_string) else { continue };
                if let Some(tx) = calls.get(&call_id) {
                    let _ = tx.try_send(msg);
                    continue;
                }
                match msg.method() {
                    Some("INVITE") => {
                        stats.invites.fetch_add(1, Ordering::Relaxed);
                        let (tx, rx) = mpsc::channel(16);
                        calls.insert(call_id.clone(), tx);
                        let behaviour = Behaviour::for_user(msg.request_user().unwrap_or_default());
                        let call = Call {
                            socket: socket.clone(),
                            peer,
                            invite: msg,
                            tag: format!("sim{:08x}", rand::random::<u32>()),
                            opts: opts.clone(),
                            stats: stats.clone(),
                        };
                        let done_tx = done_tx.clone();
                        tokio::spawn(async move {
                            call.run(behaviour, rx).await;
                            let _ = done_tx.send(call_id).await;
                        });
                    }
                    Some("OPTIONS") => {
                        let _ = socket.send_to(&response(&msg, 200, "OK", "sim", &[], b""), peer).await;
                    }
                    Some("ACK") | None => {}
                    Some(_) => {
                        let r = response(&msg, 481, "Call/Transaction Does Not Exist", "sim", &[], b"");
                        let _ = socket.send_to(&r, peer).await;
                    }
                }
            }
            Some(call_id) = done.recv() => { calls.remove(&call_id); }
        }
    }
}

struct Call {
    socket: Arc<UdpSocket>,
    peer: SocketAddr,
    invite: Message,
    tag: String,
    opts: SimOptions,
    stats: Arc<SimStats>,
}

impl Call {
    async fn send(&self, bytes: &[u8]) {
        let _ = self.socket.send_to(bytes, self.peer).await;
    }

    fn reply(&self, code: u16, reason: &str) -> Vec<u8> {
        response(&self.invite, code, reason, &self.tag, &[], b"")
    }

    async fn run(self, behaviour: Behaviour, mut rx: mpsc::Receiver<Message>) {
        self.send(&self.reply(100, "Trying")).await;
        let last = match behaviour {
            Behaviour::Busy => self.reply(486, "Busy Here"),
            Behaviour::Decline => self.reply(603, "Decline"),
            _ => self.reply(180, "Ringing"),
        };
        self.send(&last).await;
        if matches!(behaviour, Behaviour::Busy | Behaviour::Decline) {
            self.until_ack(&mut rx, &last).await;
            return;
        }
        let ring = if behaviour == Behaviour::NoAnswer {
            Duration::from_secs(3600)
        } else {
            self.opts.ring
        };
        // Ringing: a CANCEL ends it with 487.
        let deadline = tokio::time::sleep(ring);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                () = &mut deadline => break,
                m = rx.recv() => match m {
                    None => return,
                    Some(m) if m.method() == Some("CANCEL") => {
                        self.send(&response(&m, 200, "OK", &self.tag, &[], b"")).await;
                        let terminated = self.reply(487, "Request Terminated");
                        self.send(&terminated).await;
                        self.until_ack(&mut rx, &terminated).await;
                        return;
                    }
                    Some(m) if m.method() == Some("INVITE") => self.send(&last).await,
                    Some(_) => {}
                }
            }
        }
        self.answer(behaviour, rx).await;
    }

    /// Re-sends `last` for INVITE retransmissions until the ACK (or 32 s).
    async fn until_ack(&self, rx: &mut mpsc::Receiver<Message>, last: &[u8]) {
        let _ = tokio::time::timeout(Duration::from_secs(32), async {
            while let Some(m) = rx.recv().await {
                match m.method() {
                    Some("ACK") => return,
                    Some("INVITE") => self.send(last).await,
                    _ => {}
                }
            }
        })
        .await;
    }

    async fn answer(self, behaviour: Behaviour, mut rx: mpsc::Receiver<Message>) {
        let local_ip = self
            .socket
            .local_addr()
            .map(|a| a.ip())
            .unwrap_or([127, 0, 0, 1].into());
        let Ok(rtp) = RtpSession::bind(local_ip, self.opts.rtp_ports).await else {
            self.send(&self.reply(503, "Service Unavailable")).await;
            return;
        };
        let offer = parse_answer(&String::from_utf8_lossy(&self.invite.body));
        let Ok(offer) = offer else {
            self.send(&self.reply(488, "Not Acceptable Here")).await;
            return;
        };
        let sdp = rtp.offer(rand::random::<u32>().into());
        let local = self
            .socket
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let ok = response(
            &self.invite,
            200,
            "OK",
            &self.tag,
            &[
                ("Contact", format!("<sip:sim@{local}>")),
                ("Content-Type", "application/sdp".into()),
            ],
            sdp.as_bytes(),
        );
        // 200 OK until the ACK (RFC 3261 13.3.1.4: T1 doubling).
        self.send(&ok).await;
        let mut wait = Duration::from_millis(500);
        let acked = loop {
            match tokio::time::timeout(wait, rx.recv()).await {
                Ok(Some(m)) if m.method() == Some("ACK") => break true,
                Ok(Some(m)) if m.method() == Some("BYE") => {
                    self.send(&response(&m, 200, "OK", &self.tag, &[], b"")).await;
                    return;
                }
                Ok(Some(_)) => {}
                Ok(None) => return,
                Err(_) if wait < Duration::from_secs(16) => {
                    self.send(&ok).await;
                    wait *= 2;
                }
                Err(_) => break false,
            }
        };
        if !acked {
            return;
        }
        self.stats.answered.fetch_add(1, Ordering::Relaxed);
        let cfg = MediaConfig {
            timeout: None,
            ..Default::default()
        };
        let mut media = rtp.start(&offer, cfg);
        media.play(behaviour.audio());
        if let Some(id) = self.invite.header("call-id") {
            self.stats
                .answered_at
                .lock()
                .insert(id.to_string(), bot::unix_ms());
        }
        let mut heard: Vec<i16> = Vec::new();
        let mut turn = Turn::default();
        let hold = tokio::time::sleep(self.opts.hold);
        tokio::pin!(hold);
        loop {
            tokio::select! {
                m = rx.recv() => match m {
                    None => break,
                    Some(m) if m.method() == Some("BYE") => {
                        self.send(&response(&m, 200, "OK", &self.tag, &[], b"")).await;
                        break;
                    }
                    Some(m) if m.method() == Some("INVITE") => self.send(&ok).await,
                    Some(m) if m.method().is_some() && m.method() != Some("ACK") => {
                        self.send(&response(&m, 200, "OK", &self.tag, &[], b"")).await;
                    }
                    Some(_) => {}
                },
                // What the caller plays: counted when loud (tests check that the bot was heard).
                Some(e) = media.next() => {
                    if let outdial_media::MediaEvent::Audio(f) = e {
                        let loud = outdial_detect::vad::level_db(&f) > -35.0;
                        if loud {
                            self.stats.loud_frames.fetch_add(1, Ordering::Relaxed);
                        }
                        if heard.len() < 60 * 8000 {
                            heard.extend_from_slice(&f);
                        }
                        // A person answers the bot's first question once it has finished speaking.
                        let person = matches!(behaviour, Behaviour::Human | Behaviour::LongAnswer);
                        if person && turn.after(loud, f.len()) {
                            self.stats.replies.fetch_add(1, Ordering::Relaxed);
                            // The rest of the hello recording is silence: the answer comes now.
                            media.stop_playout();
                            media.play(self.opts.answer.clone().unwrap_or_else(yes_please));
                            let now = bot::unix_ms();
                            self.stats.replied_at_ms.store(now, Ordering::Relaxed);
                            if let Some(id) = self.invite.header("call-id") {
                                self.stats.replied_at.lock().insert(id.to_string(), now);
                            }
                        }
                    }
                }
                () = &mut hold => {
                    self.bye(&mut rx).await;
                    break;
                }
            }
        }
        self.stats
            .rtp_received
            .fetch_add(media.stats.received.load(Ordering::Relaxed), Ordering::Relaxed);
        *self.stats.heard.lock() = heard;
        self.stats.ended.fetch_add(1, Ordering::Relaxed);
    }

    async fn bye(&self, rx: &mut mpsc::Receiver<Message>) {
        let inv = &self.invite;
        let target = inv
            .header("contact")
            .map(Message::uri_of)
            .unwrap_or_else(|| Message::uri_of(inv.header("from").unwrap_or_default()));
        let local = self
            .socket
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let bye = format!(
            "BYE {target} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{:016x};rport\r\nMax-Forwards: 70\r\n\
             From: {};tag={}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n",
            rand::random::<u64>(),
            inv.header("to").unwrap_or_default(),
            self.tag,
            inv.header("from").unwrap_or_default(),
            inv.header("call-id").unwrap_or_default(),
        );
        for wait in [500u64, 1000, 2000] {
            self.send(bye.as_bytes()).await;
            if let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(wait), rx.recv()).await
                && m.method().is_none()
            {
                return;
            }
        }
    }
}

/// Serves `app` (a local service) on `listen`: its base URL, `http://addr`.
pub(crate) async fn serve_http(listen: SocketAddr, app: axum::Router) -> std::io::Result<String> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let url = format!("http://{}", listener.local_addr()?);
    let name = url.clone();
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("the service at {name} stopped: {e}");
        }
    });
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaviour_from_the_number_or_a_keyword() {
        assert_eq!(Behaviour::for_user("+15550100"), Behaviour::Human);
        assert_eq!(Behaviour::for_user("+15550101"), Behaviour::Machine);
        assert_eq!(Behaviour::for_user("+15550102"), Behaviour::MachineNoBeep);
        assert_eq!(Behaviour::for_user("+15550103"), Behaviour::Fax);
        assert_eq!(Behaviour::for_user("+15550104"), Behaviour::Busy);
        assert_eq!(Behaviour::for_user("+15550105"), Behaviour::NoAnswer);
        assert_eq!(Behaviour::for_user("+15550106"), Behaviour::Decline);
        assert_eq!(Behaviour::for_user("+15550107"), Behaviour::Silent);
        assert_eq!(Behaviour::for_user("machine-nobeep-7"), Behaviour::MachineNoBeep);
        assert_eq!(Behaviour::for_user("Fax"), Behaviour::Fax);
        assert_eq!(Behaviour::for_user("long-answer"), Behaviour::LongAnswer);
        assert!(Behaviour::Machine.audio().len() > 8000 * 15);
        assert!(Behaviour::Busy.audio().is_empty());
    }

    #[test]
    fn parses_and_answers_requests() {
        let invite = b"INVITE sip:+15550101@127.0.0.1:5070;user=phone SIP/2.0\r\n\
            Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1\r\nv: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK0\r\n\
            From: <sip:1000@x>;tag=a\r\nTo: <sip:+15550101@x>\r\ni: abc\r\nCSeq: 1 INVITE\r\n\
            Contact: <sip:gw@127.0.0.1:5060>\r\nContent-Length: 4\r\n\r\nv=0\r\n";
        let m = Message::parse(invite).unwrap();
        assert_eq!(m.method(), Some("INVITE"));
        assert_eq!(m.request_user(), Some("+15550101"));
        assert_eq!(m.header("call-id"), Some("abc"));
        assert_eq!(m.cseq(), Some((1, "INVITE")));
        assert_eq!(m.body, b"v=0\r");
        assert_eq!(
            Message::uri_of(m.header("contact").unwrap()),
            "sip:gw@127.0.0.1:5060"
        );
        let r = String::from_utf8(response(&m, 486, "Busy Here", "t1", &[], b"")).unwrap();
        assert!(
            r.starts_with("SIP/2.0 486 Busy Here\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1\r\n")
        );
        assert!(
            r.contains("Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK0\r\n"),
            "both Vias, in order"
        );
        assert!(r.contains("To: <sip:+15550101@x>;tag=t1\r\n"));
        assert!(Message::parse(b"garbage").is_none());
    }
}
