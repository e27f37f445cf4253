//! The sending half of the media loop: 20 ms packets of what is played (G.711 sample by sample, G.722 by frame) or
//! silence, and RFC 4733 DTMF events.

use crate::g711::Law;
use crate::rtp;
use crate::session::FRAME;
use std::collections::VecDeque;

/// The sending half's state.
pub(crate) struct Outbound {
    pub(crate) ssrc: u32,
    pub(crate) seq: u16,
    pub(crate) ts: u32,
    pub(crate) octets: u32,
    pub(crate) out: Vec<u8>,
    pub(crate) payload: Vec<u8>,
    pub(crate) playout: VecDeque<i16>,
    pub(crate) playing: bool,
    pub(crate) dtmf: VecDeque<(bool, [u8; 4])>,
    pub(crate) dtmf_ts: u32,
    /// The G.722 coder (docs/trunks.md, "Codecs"), once the call uses it.
    pub(crate) wideband: Option<crate::wideband::Wideband>,
    pub(crate) frame: Vec<i16>,
}

impl Outbound {
    /// The next packet (in `self.out`): a DTMF event packet when one is going, else 20 ms of audio (what is
    /// played, or silence). Returns whether the played audio has just run out.
    pub(crate) fn next_packet(&mut self, law: Law, dtmf_pt: Option<u8>) -> bool {
        let mut done = false;
        if let (Some(pt), Some((marker, p))) = (dtmf_pt, self.dtmf.pop_front()) {
            // Each digit's packets share the timestamp of its first packet.
            if marker {
                self.dtmf_ts = self.ts;
            }
            rtp::build(&mut self.out, pt, marker, self.seq, self.dtmf_ts, self.ssrc, &p);
        } else {
            if law == Law::G722 {
                self.frame.clear();
                self.frame
                    .extend((0..FRAME).map(|_| self.playout.pop_front().unwrap_or(0)));
                self.payload.resize(crate::wideband::PACKET, 0);
                self.wideband
                    .get_or_insert_with(Default::default)
                    .encode(&self.frame, &mut self.payload);
            } else {
                // What is played, then silence (most packets are silence only: the person is talking).
                self.payload.clear();
                let n = self.playout.len().min(FRAME);
                self.payload
                    .extend(self.playout.drain(..n).map(|s| law.encode(s)));
                self.payload.resize(FRAME, law.silence());
            }
            rtp::build(
                &mut self.out,
                law.payload_type(),
                false,
                self.seq,
                self.ts,
                self.ssrc,
                &self.payload,
            );
            if self.playing && self.playout.is_empty() {
                self.playing = false;
                done = true;
            }
        }
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(FRAME as u32);
        done
    }
}
