//! The receiving half of the media loop (`session::run`): the jitter buffer, concealment, DTMF,
//! RFC 3550 jitter and reception reports, and G.722 decoding with its 16 kHz audio kept.

use crate::dtmf::{self, Digit};
use crate::g711::Law;
use crate::jitter::{JitterBuffer, Out};
use crate::rtcp::ReportBlock;
use crate::rtp;
use crate::session::{FRAME, Stats};
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::time::Instant;

/// The receiving half's state.
pub(crate) struct Inbound {
    pub(crate) jb: JitterBuffer,
    pub(crate) pcm: VecDeque<i16>,
    pub(crate) last: Vec<i16>,
    pub(crate) concealed: u32,
    pub(crate) ssrc: Option<u32>,
    pub(crate) dtmf: dtmf::Receiver,
    /// RFC 3550 jitter, in timestamp units, and the previous transit time.
    pub(crate) jitter: f64,
    pub(crate) transit: Option<i64>,
    /// For reception reports: the first sequence number, packets received, and expected/received at the last
    /// report; the last SR from the far end (middle NTP bits, when it came).
    pub(crate) base: Option<u64>,
    pub(crate) received: u64,
    pub(crate) prior: (u64, u64),
    pub(crate) last_sr: Option<(u32, Instant)>,
    /// The G.722 coder, once the call uses it, and the 16 kHz audio that goes with `pcm` (twice its length).
    pub(crate) wideband: Option<crate::wideband::Wideband>,
    pub(crate) wide: VecDeque<i16>,
}

impl Inbound {
    /// The report block about the stream we receive, if we receive one.
    pub(crate) fn report(&mut self) -> Option<ReportBlock> {
        let (ssrc, base, highest) = (self.ssrc?, self.base?, self.jb.highest()?);
        let expected = highest - base + 1;
        let (prior_expected, prior_received) = self.prior;
        self.prior = (expected, self.received);
        let interval_expected = expected.saturating_sub(prior_expected);
        let interval_lost = interval_expected.saturating_sub(self.received.saturating_sub(prior_received));
        let fraction = (interval_lost * 256)
            .checked_div(interval_expected)
            .map_or(0, |f| f.min(255));
        let (lsr, dlsr) = match self.last_sr {
            Some((mid, at)) => (mid, (at.elapsed().as_micros() * 65_536 / 1_000_000) as u32),
            None => (0, 0),
        };
        Some(ReportBlock {
            ssrc,
            fraction_lost: fraction as u8,
            cumulative_lost: (expected as i64 - self.received as i64) as i32,
            highest_seq: highest.saturating_sub(1 << 16) as u32,
            jitter: self.jitter as u32,
            lsr,
            dlsr,
        })
    }
}

impl Inbound {
    pub(crate) fn new(depth: usize) -> Self {
        Inbound {
            jb: JitterBuffer::new(depth),
            pcm: VecDeque::with_capacity(FRAME * 4),
            last: vec![0; FRAME],
            concealed: 0,
            ssrc: None,
            dtmf: dtmf::Receiver::default(),
            jitter: 0.0,
            transit: None,
            base: None,
            received: 0,
            prior: (0, 0),
            last_sr: None,
            wideband: None,
            wide: VecDeque::new(),
        }
    }

    /// A received RTP packet (audio or telephone-event), which arrived `arrival` after the session started.
    /// Returns the digit it ends, if any.
    pub(crate) fn on_packet(
        &mut self,
        p: &rtp::Packet<'_>,
        is_event: bool,
        arrival: Duration,
        stats: &Stats,
    ) -> Option<Digit> {
        if self.ssrc != Some(p.ssrc) {
            // A new stream (re-INVITE, a transfer on the far side): start over.
            self.ssrc = Some(p.ssrc);
            self.jb = JitterBuffer::new(self.jb.depth());
            self.transit = None;
            self.base = None;
            self.received = 0;
            self.prior = (0, 0);
        }
        if is_event {
            return self.dtmf.on_packet(p.timestamp, p.payload);
        }
        let arrival = (arrival.as_micros() as i64) * 8 / 1000;
        let transit = arrival - i64::from(p.timestamp);
        if let Some(prev) = self.transit {
            let d = (transit - prev).abs() as f64;
            self.jitter += (d - self.jitter) / 16.0;
            stats
                .jitter_us
                .store((self.jitter * 125.0) as u64, Ordering::Relaxed);
        }
        self.transit = Some(transit);
        self.jb.push(p.seq, p.payload);
        self.received += 1;
        if self.base.is_none() {
            self.base = self.jb.highest();
        }
        None
    }

    /// Takes the packets due now without decoding them (nobody listens): statistics stay right.
    pub(crate) fn skip(&mut self) {
        self.pcm.clear();
        self.wide.clear();
        let _ = self.jb.pop();
    }

    /// Appends the next 20 ms frame to `out`: buffered audio, concealment of a lost packet (the last frame,
    /// fading), or silence.
    pub(crate) fn frame(&mut self, law: Law, out: &mut Vec<i16>, wide_out: &mut Vec<i16>) {
        let wideband = law == Law::G722;
        let mut first = None;
        if !wideband && self.pcm.is_empty() {
            // The usual case: one 20 ms packet makes the frame, decoded where the frame is kept.
            match self.jb.pop() {
                Some(Out::Packet(p)) if p.len() == FRAME => {
                    self.concealed = 0;
                    self.last.clear();
                    self.last.extend(p.iter().map(|&c| law.decode(c)));
                    out.extend_from_slice(&self.last);
                    return;
                }
                popped => first = Some(popped),
            }
        }
        while self.pcm.len() < FRAME {
            let before = self.pcm.len();
            match first.take().unwrap_or_else(|| self.jb.pop()) {
                Some(Out::Packet(p)) => {
                    self.concealed = 0;
                    if wideband {
                        let (narrow, wide) =
                            self.wideband.get_or_insert_with(Default::default).decode_both(&p);
                        self.pcm.extend(narrow);
                        self.wide.extend(wide);
                    } else {
                        self.pcm.extend(p.iter().map(|&c| law.decode(c)));
                    }
                }
                Some(Out::Lost) => {
                    self.concealed += 1;
                    let gain = match self.concealed {
                        1 => 0.8,
                        2 => 0.5,
                        3 => 0.25,
                        _ => 0.0,
                    };
                    let fill: Vec<i16> = self.last.iter().map(|&s| (f32::from(s) * gain) as i16).collect();
                    self.pcm.extend(fill);
                }
                None => self.pcm.extend(std::iter::repeat_n(0, FRAME - self.pcm.len())),
            }
            if wideband {
                // Concealment and silence are taken to 16 kHz by repeating samples; decoded audio is already there.
                let want = self.pcm.len() * 2;
                let added: Vec<i16> = self.pcm.range(before..).copied().collect();
                if self.wide.len() < want {
                    self.wide
                        .extend(added.iter().flat_map(|&s| [s, s]).take(want - self.wide.len()));
                }
            }
        }
        self.last.clear();
        self.last.extend(self.pcm.drain(..FRAME));
        out.extend_from_slice(&self.last);
        if wideband {
            let n = (FRAME * 2).min(self.wide.len());
            wide_out.extend(self.wide.drain(..n));
        }
    }
}
