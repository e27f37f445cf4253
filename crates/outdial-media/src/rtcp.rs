//! RTCP (RFC 3550 section 6): our sender reports (SR with one report block about the stream we receive, and an
//! SDES CNAME), and the far end's SR/RR about our stream — its loss and jitter figures and the round-trip time.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds from 1900 (NTP) to 1970 (Unix).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// The current time as a 64-bit NTP timestamp.
pub fn ntp_now() -> u64 {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() + NTP_UNIX_OFFSET;
    let frac = (u64::from(d.subsec_nanos()) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

/// The middle 32 bits of an NTP timestamp (units of 1/65536 s), as LSR/DLSR use.
pub fn mid32(ntp: u64) -> u32 {
    (ntp >> 16) as u32
}

/// One reception report block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportBlock {
    pub ssrc: u32,
    /// Fraction of packets lost since the last report, in 1/256.
    pub fraction_lost: u8,
    /// Cumulative number of packets lost (24 bits, signed).
    pub cumulative_lost: i32,
    pub highest_seq: u32,
    /// Interarrival jitter, in timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the last SR's NTP time from that source, 0 if none.
    pub lsr: u32,
    /// Delay since that SR, 1/65536 s.
    pub dlsr: u32,
}

/// Our sender report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SenderReport {
    pub ssrc: u32,
    pub ntp: u64,
    pub rtp_timestamp: u32,
    pub packets: u32,
    pub octets: u32,
    pub block: Option<ReportBlock>,
    pub cname: String,
}

fn push_block(out: &mut Vec<u8>, b: &ReportBlock) {
    out.extend_from_slice(&b.ssrc.to_be_bytes());
    let lost = (b.cumulative_lost.clamp(-0x80_0000, 0x7F_FFFF) as u32) & 0x00FF_FFFF;
    out.extend_from_slice(&((u32::from(b.fraction_lost) << 24) | lost).to_be_bytes());
    out.extend_from_slice(&b.highest_seq.to_be_bytes());
    out.extend_from_slice(&b.jitter.to_be_bytes());
    out.extend_from_slice(&b.lsr.to_be_bytes());
    out.extend_from_slice(&b.dlsr.to_be_bytes());
}

impl SenderReport {
    /// The compound packet: SR then SDES with the CNAME.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(80);
        let rc = u8::from(self.block.is_some());
        let words = 6 + 6 * usize::from(rc);
        out.push(0x80 | rc);
        out.push(200);
        out.extend_from_slice(&(words as u16).to_be_bytes());
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        out.extend_from_slice(&self.ntp.to_be_bytes());
        out.extend_from_slice(&self.rtp_timestamp.to_be_bytes());
        out.extend_from_slice(&self.packets.to_be_bytes());
        out.extend_from_slice(&self.octets.to_be_bytes());
        if let Some(b) = &self.block {
            push_block(&mut out, b);
        }
        // SDES: one chunk, CNAME then END, padded to a 32-bit boundary.
        let cname = &self.cname.as_bytes()[..self.cname.len().min(255)];
        let mut chunk = Vec::with_capacity(8 + cname.len());
        chunk.extend_from_slice(&self.ssrc.to_be_bytes());
        chunk.push(1);
        chunk.push(cname.len() as u8);
        chunk.extend_from_slice(cname);
        chunk.push(0);
        while chunk.len() % 4 != 0 {
            chunk.push(0);
        }
        out.push(0x81);
        out.push(202);
        out.extend_from_slice(&((chunk.len() / 4) as u16).to_be_bytes());
        out.extend_from_slice(&chunk);
        out
    }
}

/// What a received compound RTCP packet says.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Received {
    /// The sender's SSRC and the middle 32 bits of its SR's NTP time (for our LSR).
    pub sender_report: Option<(u32, u32)>,
    /// Report blocks, whoever they are about.
    pub blocks: Vec<ReportBlock>,
    pub bye: bool,
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn parse_block(b: &[u8]) -> Option<ReportBlock> {
    let word = be32(b, 4)?;
    // Sign-extend the 24-bit cumulative count.
    let lost = ((word << 8) as i32) >> 8;
    Some(ReportBlock {
        ssrc: be32(b, 0)?,
        fraction_lost: (word >> 24) as u8,
        cumulative_lost: lost,
        highest_seq: be32(b, 8)?,
        jitter: be32(b, 12)?,
        lsr: be32(b, 16)?,
        dlsr: be32(b, 20)?,
    })
}

/// Parses a compound packet; None when it is not RTCP (hostile input: every length is checked).
pub fn parse(buf: &[u8]) -> Option<Received> {
    let mut r = Received::default();
    let mut at = 0;
    let mut any = false;
    while at + 4 <= buf.len() {
        let (first, pt) = (buf[at], buf[at + 1]);
        if first >> 6 != 2 {
            return None;
        }
        let len = (usize::from(u16::from_be_bytes([buf[at + 2], buf[at + 3]])) + 1) * 4;
        let p = buf.get(at..at + len)?;
        let count = usize::from(first & 0x1F);
        match pt {
            200 => {
                let ssrc = be32(p, 4)?;
                let ntp_hi = be32(p, 8)?;
                let ntp_lo = be32(p, 12)?;
                r.sender_report = Some((ssrc, (ntp_hi << 16) | (ntp_lo >> 16)));
                for i in 0..count {
                    r.blocks.push(parse_block(p.get(28 + 24 * i..52 + 24 * i)?)?);
                }
            }
            201 => {
                for i in 0..count {
                    r.blocks.push(parse_block(p.get(8 + 24 * i..32 + 24 * i)?)?);
                }
            }
            203 => r.bye = true,
            202 | 204..=207 => {}
            _ => return None,
        }
        any = true;
        at += len;
    }
    any.then_some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sender_reports_round_trip_and_garbage_is_refused() {
        let block = ReportBlock {
            ssrc: 7,
            fraction_lost: 64,
            cumulative_lost: -3,
            highest_seq: 65_540,
            jitter: 80,
            lsr: 0x1234_5678,
            dlsr: 65_536,
        };
        let sr = SenderReport {
            ssrc: 42,
            ntp: 0x0102_0304_0506_0708,
            rtp_timestamp: 160,
            packets: 50,
            octets: 8000,
            block: Some(block),
            cname: "outdial@127.0.0.1".into(),
        };
        let bytes = sr.encode();
        assert_eq!(bytes.len() % 4, 0);
        let r = parse(&bytes).unwrap();
        assert_eq!(r.sender_report, Some((42, 0x0304_0506)));
        assert_eq!(r.blocks, vec![block]);
        assert!(parse(b"junk").is_none());
        assert!(parse(&bytes[..20]).is_none(), "truncated");
        let mut wrong = bytes.clone();
        wrong[1] = 99;
        assert!(parse(&wrong).is_none());
    }
}
