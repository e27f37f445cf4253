//! The media loop of one answered call: one task that sends a packet every 20 ms on a fixed schedule (audio
//! being played, else silence; DTMF events when asked) and receives the far end's RTP (symmetric latching,
//! jitter buffer, concealment, telephone-events), handing the caller's audio out as 20 ms frames of 8 kHz PCM
//! and telling when no RTP has arrived for the media timeout.

use crate::commands;
use crate::dtmf::{self, Digit};
use crate::g711::Law;
use crate::inbound::Inbound;
use crate::latch::Latch;
use crate::outbound::Outbound;
use crate::recv::Reader;
use crate::rtcp::{self, SenderReport};
use crate::rtp::{self, Datagram};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Samples per 20 ms frame at 8 kHz.
pub const FRAME: usize = 160;

/// How long before a packet's time its timer is set (see the pacing in [`run`]).
const TIMER_LEAD: Duration = Duration::from_millis(1);

/// The RTCP socket is read every this many ticks (200 ms): reports come every few seconds, and their arrival
/// times are the kernel's, so reading them later changes nothing.
const RTCP_READ_TICKS: u32 = 10;

/// Counters of one session (also read while it runs).
#[derive(Debug, Default)]
pub struct Stats {
    pub sent: AtomicU64,
    pub received: AtomicU64,
    /// Datagrams that are not RTP (or RTP of an unknown payload type).
    pub dropped: AtomicU64,
    pub rtcp: AtomicU64,
    /// Packets concealed because they never came.
    pub lost: AtomicU64,
    pub late: AtomicU64,
    pub duplicate: AtomicU64,
    /// Interarrival jitter (RFC 3550 6.4.1), microseconds.
    pub jitter_us: AtomicU64,
    pub dtmf_received: AtomicU64,
    /// Frames the consumer did not take in time.
    pub frames_dropped: AtomicU64,
    /// How far each packet left from its 20 ms schedule (early or late).
    pub send_timing: SendTiming,
    pub rtcp_sent: AtomicU64,
    /// The far end's last report about our stream: loss since its previous report (1/256), cumulative loss,
    /// jitter (µs), and the round-trip time (µs) from LSR/DLSR.
    pub remote_fraction_lost: AtomicU64,
    pub remote_cumulative_lost: AtomicI64,
    pub remote_jitter_us: AtomicU64,
    pub rtt_us: AtomicU64,
}

/// Upper bounds (µs) of the [`SendTiming`] buckets; the last bucket is everything above.
pub const SEND_TIMING_BOUNDS_US: [u64; 6] = [500, 1_000, 2_000, 5_000, 10_000, 20_000];

/// A histogram of how far packets left from their schedule, early or late: counts below 0.5, 1, 2, 5, 10 and
/// 20 ms and above, and the largest. Kept per call ([`Stats::send_timing`]) and, when given
/// ([`MediaConfig::totals`]), for all calls together.
#[derive(Debug, Default)]
pub struct SendTiming {
    pub buckets: [AtomicU64; 7],
    pub max_us: AtomicU64,
}

impl SendTiming {
    pub fn record(&self, off_us: u64) {
        let i = SEND_TIMING_BOUNDS_US
            .iter()
            .position(|&b| off_us < b)
            .unwrap_or(SEND_TIMING_BOUNDS_US.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.max_us.fetch_max(off_us, Ordering::Relaxed);
    }

    /// The counts per bucket, and the largest deviation (µs).
    pub fn snapshot(&self) -> ([u64; 7], u64) {
        (
            std::array::from_fn(|i| self.buckets[i].load(Ordering::Relaxed)),
            self.max_us.load(Ordering::Relaxed),
        )
    }
}

/// What the media loop reports.
#[derive(Debug, Clone, PartialEq)]
pub enum MediaEvent {
    /// The far end's audio, [`MediaConfig::frames_per_event`] frames of 20 ms (concealed or silent when
    /// nothing came).
    Audio(Vec<i16>),
    /// The same for a wideband call (G.722): the audio at 8 kHz and, sample for sample, at 16 kHz.
    WideAudio {
        narrow: Vec<i16>,
        wide: Vec<i16>,
    },
    Dtmf(Digit),
    /// The audio given to [`Media::play`] has all been sent.
    PlayoutDone,
    /// No RTP for the media timeout (reported once; the loop keeps running).
    Timeout {
        silent_ms: u64,
    },
}

enum Command {
    TapAudio(bool),
    /// How many 20 ms frames each audio event carries from now on.
    Batch(usize),
    Play(Vec<i16>),
    StopPlayout,
    Dtmf(char),
    /// The far end's new offer: where its media now is (None: unchanged), and whether it holds the call.
    Update(Option<Peer>, bool),
}

/// How the session runs.
#[derive(Debug, Clone)]
pub struct MediaConfig {
    /// No RTP for this long → [`MediaEvent::Timeout`]; None = never.
    pub timeout: Option<Duration>,
    /// Jitter buffer depth in 20 ms packets.
    pub jitter_depth: usize,
    /// 20 ms frames per [`MediaEvent::Audio`] (fewer wake-ups of the consumer, at that much latency).
    pub frames_per_event: usize,
    /// The runtime the loop runs on (a [`crate::MediaThreads`] thread); the current one when None.
    pub runtime: Option<tokio::runtime::Handle>,
    /// How often we send RTCP (a sender report with a reception report block).
    pub rtcp_interval: Duration,
    /// Where the send timing of all calls is added up (the gateway's metrics), besides [`Stats::send_timing`].
    pub totals: Option<Arc<SendTiming>>,
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            timeout: Some(Duration::from_secs(30)),
            jitter_depth: crate::jitter::DEFAULT_DEPTH,
            frames_per_event: 1,
            runtime: None,
            rtcp_interval: Duration::from_secs(5),
            totals: None,
        }
    }
}

/// A running session: its events, and the means to play audio and send DTMF. Dropping it stops the loop.
///
/// Control never gets lost: commands, and the events that are not audio (`PlayoutDone`, `Dtmf`, `Timeout`), go
/// through unbounded channels. Only the caller's audio is bounded: a consumer that falls behind loses frames,
/// counted in [`Stats::frames_dropped`].
///
/// Every channel carries boxed messages: a channel holds a block of 32 of its messages for the whole call, and the
/// audio channel, written every tick and read in bursts, often two (docs/architecture.md, "Memory per call"). A
/// box per audio event costs far less than the copy of its frames.
pub struct Media {
    control: mpsc::UnboundedReceiver<Box<MediaEvent>>,
    audio: mpsc::Receiver<Box<MediaEvent>>,
    pub stats: Arc<Stats>,
    commands: commands::Sender<Command>,
}

impl Media {
    /// Queues 8 kHz PCM to be sent after what is already queued.
    pub fn play(&self, pcm: Vec<i16>) {
        self.commands.send(Command::Play(pcm));
    }

    /// Whether the caller's audio is handed out as [`MediaEvent::Audio`] (on at the start). Turning it off when
    /// nobody listens saves a wake-up of the consumer every 20 ms.
    pub fn tap_audio(&self, on: bool) {
        self.commands.send(Command::TapAudio(on));
    }

    /// How many 20 ms frames each [`MediaEvent::Audio`] carries from now on (at least one; starts at
    /// [`MediaConfig::frames_per_event`]). Fewer frames: the audio comes sooner, at more wake-ups of the consumer —
    /// worth it while speech is recognised (docs/speech.md, "Turn-taking").
    pub fn frames_per_event(&self, frames: usize) {
        self.commands.send(Command::Batch(frames));
    }

    /// Drops what is queued (barge-in).
    pub fn stop_playout(&self) {
        self.commands.send(Command::StopPlayout);
    }

    /// Sends a digit as RFC 4733 events (when the far end accepted telephone-event).
    pub fn send_dtmf(&self, digit: char) {
        self.commands.send(Command::Dtmf(digit));
    }

    /// Follows the far end's new offer (docs/trunks.md, "Re-INVITE and hold"): RTP goes to `answer`'s address
    /// in its codec from the next packet (when given); while `hold`, nothing is sent and the media timeout is
    /// suspended, and it starts again from zero at the resume.
    pub fn update(&self, answer: Option<&crate::Answer>, hold: bool) {
        let peer = answer.map(|a| Peer {
            remote: a.remote,
            remote_rtcp: a.rtcp,
            law: a.law,
            dtmf_pt: a.dtmf_payload_type,
        });
        self.commands.send(Command::Update(peer, hold));
    }

    /// The next event that has already come, control events first; None when there is none now (or the loop
    /// has stopped). Never registers a waker: the media thread does not wake the caller.
    pub fn try_next(&mut self) -> Option<MediaEvent> {
        self.control
            .try_recv()
            .ok()
            .map(|e| *e)
            .or_else(|| self.audio.try_recv().ok().map(|e| *e))
    }

    /// The next event, waiting for it; None once the loop has stopped.
    pub async fn next(&mut self) -> Option<MediaEvent> {
        tokio::select! {
            biased;
            Some(e) = self.control.recv() => Some(*e),
            Some(e) = self.audio.recv() => Some(*e),
            else => None,
        }
    }
}

pub(crate) struct Peer {
    pub remote: SocketAddr,
    pub remote_rtcp: SocketAddr,
    pub law: Law,
    pub dtmf_pt: Option<u8>,
}

pub(crate) fn start(
    sockets: (
        std::net::UdpSocket,
        std::net::UdpSocket,
        Option<crate::ports::PortLease>,
    ),
    peer: Peer,
    srtp: Option<crate::srtp::Srtp>,
    cfg: MediaConfig,
    stats: Arc<Stats>,
) -> Media {
    let (control_tx, control) = mpsc::unbounded_channel();
    let (audio_tx, audio) = mpsc::channel(256);
    let (commands, commands_rx) = commands::channel();
    let runtime = cfg
        .runtime
        .clone()
        .unwrap_or_else(tokio::runtime::Handle::current);
    let loop_stats = stats.clone();
    runtime.spawn(async move {
        // The port pair goes back to the pool once the loop has closed its sockets.
        let (rtp, rtcp, _port) = sockets;
        // The sockets stay out of the runtime's reactor: the loop reads them at its tick, and a socket registered
        // with epoll would wake the media thread for every packet that arrives (at 500 calls, 6,000–11,000
        // needless wake-ups a second; BENCHMARKS.md, "Media").
        match (rtp.set_nonblocking(true), rtcp.set_nonblocking(true)) {
            (Ok(()), Ok(())) => {
                let events = Events {
                    control: control_tx,
                    audio: audio_tx,
                };
                run((rtp, rtcp), (peer, srtp), cfg, loop_stats, events, commands_rx).await
            }
            (Err(e), _) | (_, Err(e)) => tracing::error!("RTP socket unusable: {e}"),
        }
    });
    Media {
        control,
        audio,
        stats,
        commands,
    }
}

/// Where the loop's events go: control (never dropped) and audio (bounded).
struct Events {
    control: mpsc::UnboundedSender<Box<MediaEvent>>,
    audio: mpsc::Sender<Box<MediaEvent>>,
}

/// The loop wakes once per 20 ms: it takes the commands that came, sends the packet due, reads what arrived on
/// both sockets (with the kernel's arrival times), hands out a frame, and sends RTCP when it is due. (Waking for
/// every received packet as well cost twice the wake-ups.)
///
/// The RTP socket is read once per audio event, not once per tick: when the far end's audio goes out three frames
/// at a time ([`MediaConfig::frames_per_event`]), one read every third tick takes the three packets and makes the
/// three frames. The audio leaves when it did before, the jitter buffer sees the same packets (with their arrival
/// stamps), and two reads of three are saved (BENCHMARKS.md, "Media", eighteenth sitting).
async fn run(
    (socket, rtcp_socket): (UdpSocket, UdpSocket),
    (peer, mut srtp): (Peer, Option<crate::srtp::Srtp>),
    cfg: MediaConfig,
    stats: Arc<Stats>,
    events: Events,
    mut commands: commands::Receiver<Command>,
) {
    let Peer {
        remote,
        remote_rtcp,
        mut law,
        mut dtmf_pt,
    } = peer;
    let mut held = false;
    let started = Instant::now();
    let mut latch = Latch::new(remote, started);
    // Their sockets stamp arrivals since they were bound (`RtpSession::bind`).
    let mut rtp_reader = Reader::new();
    let mut rtcp_reader = Reader::new();
    // RTCP latches the same way, on its own socket.
    let mut rtcp_latch = Latch::new(remote_rtcp, started);
    let mut next_rtcp = Instant::now() + cfg.rtcp_interval;
    let cname = format!(
        "outdial@{}",
        socket
            .local_addr()
            .map(|a| a.ip().to_string())
            .unwrap_or_default()
    );
    let mut tx = Outbound {
        ssrc: rand::random(),
        seq: rand::random(),
        ts: rand::random(),
        octets: 0,
        out: Vec::with_capacity(12 + FRAME),
        payload: vec![law.silence(); FRAME],
        playout: VecDeque::new(),
        playing: false,
        dtmf: VecDeque::new(),
        dtmf_ts: 0,
        wideband: None,
        frame: Vec::with_capacity(FRAME),
    };
    let mut inbound = Inbound::new(cfg.jitter_depth);
    let mut tap = true;
    let mut batch = cfg.frames_per_event.max(1);
    let mut audio: Vec<i16> = Vec::with_capacity(FRAME * batch);
    let mut wide_audio: Vec<i16> = Vec::new();
    let mut last_rx = started;
    let mut timed_out = false;
    let mut buf = vec![0u8; 2048];
    // interval() keeps a fixed schedule: a late tick does not shift the ones after it. tokio's timers fire up
    // to 2 ms after their deadline (the deadline is rounded up to the millisecond, and so is the wait), about
    // 1 ms on average: the timer is set TIMER_LEAD before each packet's time to centre the sends on it.
    let mut tick = tokio::time::interval_at(started, Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut ticks: u32 = 0;
    // Frames owed since the RTP socket was last read.
    let mut owed: usize = 0;
    loop {
        let scheduled = tick.tick().await;
        ticks = ticks.wrapping_add(1);
        loop {
            match commands.try_next() {
                Ok(Some(Command::TapAudio(on))) => tap = on,
                // What was collected goes out with the next frame when it already makes a batch.
                Ok(Some(Command::Batch(n))) => batch = n.max(1),
                Ok(Some(Command::Play(pcm))) => {
                    tx.playing = true;
                    tx.playout.extend(pcm);
                }
                Ok(Some(Command::StopPlayout)) => tx.playout.clear(),
                Ok(Some(Command::Dtmf(d))) => {
                    if let (Some(_), Some(pkts)) = (dtmf_pt, dtmf::packets(d, 100, 10)) {
                        tx.dtmf.extend(pkts);
                    }
                }
                Ok(Some(Command::Update(peer, hold))) => {
                    if let Some(p) = peer {
                        // Media that moved is latched again from its first packet ([`Latch`]).
                        latch.moved(&socket, p.remote);
                        rtcp_latch.moved(&rtcp_socket, p.remote_rtcp);
                        dtmf_pt = p.dtmf_pt;
                        // (Each packet sizes and fills its payload for the codec: nothing to reset.)
                        law = p.law;
                    }
                    if held && !hold {
                        last_rx = Instant::now();
                        timed_out = false;
                    }
                    held = hold;
                }
                Ok(None) => break,
                // The Media handle is gone: the call is over.
                Err(commands::Closed) => return,
            }
        }
        if tx.next_packet(law, dtmf_pt) {
            let _ = events.control.send(Box::new(MediaEvent::PlayoutDone));
        }
        // SRTP: the packet as it goes on the wire (docs/trunks.md, "SRTP").
        let protected = srtp.as_mut().and_then(|s| s.protect_rtp(&tx.out));
        let wire: &[u8] = protected.as_deref().unwrap_or(&tx.out);
        // On hold we answered recvonly / inactive: nothing is sent (the schedule and sequence numbers go on). A
        // packet the kernel cannot take now (its send buffer full) is not sent late: the next one is due in 20 ms.
        if !held && latch.send(&socket, wire).is_ok() {
            stats.sent.fetch_add(1, Ordering::Relaxed);
            tx.octets = tx.octets.wrapping_add((tx.out.len() - 12) as u32);
            let due = scheduled + TIMER_LEAD;
            let now = Instant::now();
            let off = now
                .saturating_duration_since(due)
                .max(due.saturating_duration_since(now));
            let off = off.as_micros() as u64;
            stats.send_timing.record(off);
            if let Some(t) = &cfg.totals {
                t.record(off);
            }
        }
        // What arrived since the last read, once an audio event's frames are owed.
        owed += 1;
        let read = owed >= batch;
        while read && let Some(d) = rtp_reader.next(&socket, &mut buf) {
            // SRTP: what fails authentication (or replays) is dropped.
            let plain;
            let data: &[u8] = match srtp.as_mut() {
                Some(s) => match s.unprotect_rtp(&buf[..d.len]) {
                    Some(p) => {
                        plain = p;
                        &plain
                    }
                    None => {
                        stats.dropped.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                },
                None => &buf[..d.len],
            };
            let p = match rtp::classify(data) {
                Datagram::Rtp(p) => p,
                Datagram::Rtcp => {
                    stats.rtcp.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                Datagram::Garbage => {
                    stats.dropped.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            };
            let is_audio = p.payload_type == law.payload_type();
            let is_event = Some(p.payload_type) == dtmf_pt;
            if !is_audio && !is_event {
                stats.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            // Symmetric RTP: answer where the far end's media really comes from (NAT), once. What waited on the
            // socket from before the answer (early media, from wherever it was played) is heard, never latched to.
            latch.on_packet(&socket, d.from, d.at);
            stats.received.fetch_add(1, Ordering::Relaxed);
            last_rx = d.at;
            timed_out = false;
            if let Some(digit) =
                inbound.on_packet(&p, is_event, d.at.saturating_duration_since(started), &stats)
            {
                stats.dtmf_received.fetch_add(1, Ordering::Relaxed);
                let _ = events.control.send(Box::new(MediaEvent::Dtmf(digit)));
            }
        }
        while ticks.is_multiple_of(RTCP_READ_TICKS)
            && let Some(d) = rtcp_reader.next(&rtcp_socket, &mut buf)
        {
            let plain = match srtp.as_mut() {
                Some(s) => s.unprotect_rtcp(&buf[..d.len]),
                None => Some(buf[..d.len].to_vec()),
            };
            let Some(report) = plain.as_deref().and_then(rtcp::parse) else {
                stats.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            stats.rtcp.fetch_add(1, Ordering::Relaxed);
            rtcp_latch.on_packet(&rtcp_socket, d.from, d.at);
            if let Some((_, mid)) = report.sender_report {
                inbound.last_sr = Some((mid, d.at));
            }
            for b in report.blocks.iter().filter(|b| b.ssrc == tx.ssrc) {
                stats
                    .remote_fraction_lost
                    .store(u64::from(b.fraction_lost), Ordering::Relaxed);
                stats
                    .remote_cumulative_lost
                    .store(i64::from(b.cumulative_lost), Ordering::Relaxed);
                stats
                    .remote_jitter_us
                    .store(u64::from(b.jitter) * 125, Ordering::Relaxed);
                if b.lsr != 0 {
                    let now = rtcp::mid32(rtcp::ntp_now());
                    let rtt = now.wrapping_sub(b.lsr).wrapping_sub(b.dlsr);
                    stats
                        .rtt_us
                        .store(u64::from(rtt) * 1_000_000 / 65_536, Ordering::Relaxed);
                }
            }
        }
        // One frame out per tick, whatever arrived: the owed ones once read.
        let frames = if read { std::mem::take(&mut owed) } else { 0 };
        for _ in 0..frames {
            if !tap {
                inbound.skip();
                continue;
            }
            inbound.frame(law, &mut audio, &mut wide_audio);
            if audio.len() >= FRAME * batch {
                let full = std::mem::replace(&mut audio, Vec::with_capacity(FRAME * batch));
                let event = if law == Law::G722 {
                    MediaEvent::WideAudio {
                        narrow: full,
                        wide: std::mem::take(&mut wide_audio),
                    }
                } else {
                    MediaEvent::Audio(full)
                };
                if events.audio.try_send(Box::new(event)).is_err() {
                    stats.frames_dropped.fetch_add(batch as u64, Ordering::Relaxed);
                }
            }
        }
        let js = inbound.jb.stats;
        stats.lost.store(js.lost, Ordering::Relaxed);
        stats.late.store(js.late, Ordering::Relaxed);
        stats.duplicate.store(js.duplicate, Ordering::Relaxed);
        let now = Instant::now();
        if let Some(limit) = cfg.timeout.filter(|_| !held) {
            let silent = now.saturating_duration_since(last_rx);
            if !timed_out && silent >= limit {
                timed_out = true;
                let _ = events.control.send(Box::new(MediaEvent::Timeout {
                    silent_ms: silent.as_millis() as u64,
                }));
            }
        }
        if now >= next_rtcp {
            next_rtcp += cfg.rtcp_interval;
            let sr = SenderReport {
                ssrc: tx.ssrc,
                ntp: rtcp::ntp_now(),
                rtp_timestamp: tx.ts,
                packets: stats.sent.load(Ordering::Relaxed) as u32,
                octets: tx.octets,
                block: inbound.report(),
                cname: cname.clone(),
            };
            let report = sr.encode();
            let report = match srtp.as_mut() {
                Some(s) => s.protect_rtcp(&report).unwrap_or_default(),
                None => report,
            };
            if !report.is_empty() && rtcp_latch.send(&rtcp_socket, &report).is_ok() {
                stats.rtcp_sent.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}
