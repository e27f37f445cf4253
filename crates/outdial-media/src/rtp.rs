//! RTP packets (RFC 3550): parsing what arrives (hostile input: every length is checked) and building what we
//! send.

/// A parsed RTP packet; `payload` excludes CSRCs, the header extension and padding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<'a> {
    pub payload_type: u8,
    pub marker: bool,
    pub seq: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    pub payload: &'a [u8],
}

/// What a datagram on the RTP port is.
#[derive(Debug, PartialEq, Eq)]
pub enum Datagram<'a> {
    Rtp(Packet<'a>),
    /// RTCP multiplexed on the RTP port (RFC 5761: payload types 200–204 in the second byte).
    Rtcp,
    /// Not RTP: too short, wrong version, inconsistent lengths.
    Garbage,
}

pub fn classify(buf: &[u8]) -> Datagram<'_> {
    if buf.len() < 12 || buf[0] >> 6 != 2 {
        return Datagram::Garbage;
    }
    if (200..=204).contains(&buf[1]) {
        return Datagram::Rtcp;
    }
    let csrc = usize::from(buf[0] & 0x0F);
    let mut start = 12 + 4 * csrc;
    if buf[0] & 0x10 != 0 {
        let Some(ext) = buf.get(start + 2..start + 4) else {
            return Datagram::Garbage;
        };
        start += 4 + 4 * usize::from(u16::from_be_bytes([ext[0], ext[1]]));
    }
    let mut end = buf.len();
    if buf[0] & 0x20 != 0 {
        let pad = usize::from(buf[end - 1]);
        if pad == 0 || pad > end {
            return Datagram::Garbage;
        }
        end -= pad;
    }
    if start > end {
        return Datagram::Garbage;
    }
    Datagram::Rtp(Packet {
        payload_type: buf[1] & 0x7F,
        marker: buf[1] & 0x80 != 0,
        seq: u16::from_be_bytes([buf[2], buf[3]]),
        timestamp: u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]),
        ssrc: u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]),
        payload: &buf[start..end],
    })
}

/// Writes a 12-byte header and the payload into `out` (cleared first).
pub fn build(
    out: &mut Vec<u8>,
    payload_type: u8,
    marker: bool,
    seq: u16,
    timestamp: u32,
    ssrc: u32,
    payload: &[u8],
) {
    out.clear();
    out.push(0x80);
    out.push((payload_type & 0x7F) | if marker { 0x80 } else { 0 });
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&timestamp.to_be_bytes());
    out.extend_from_slice(&ssrc.to_be_bytes());
    out.extend_from_slice(payload);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_headers_extensions_and_padding() {
        let mut b = Vec::new();
        build(&mut b, 0, true, 7, 160, 42, &[1, 2, 3]);
        let Datagram::Rtp(p) = classify(&b) else { panic!() };
        assert_eq!(
            (p.payload_type, p.marker, p.seq, p.timestamp, p.ssrc),
            (0, true, 7, 160, 42)
        );
        assert_eq!(p.payload, &[1, 2, 3]);
        // One CSRC, a one-word extension, two bytes of padding.
        let mut x = vec![0x80 | 0x20 | 0x10 | 1, 8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9];
        x.extend([0, 0, 0, 5]); // CSRC
        x.extend([0xBE, 0xDE, 0, 1, 1, 2, 3, 4]); // extension header + 1 word
        x.extend([0xAA, 0xBB]); // payload
        x.extend([0, 2]); // padding, count 2
        let Datagram::Rtp(p) = classify(&x) else { panic!() };
        assert_eq!(p.payload, &[0xAA, 0xBB]);
        assert_eq!(p.payload_type, 8);
    }

    #[test]
    fn hostile_datagrams_are_garbage() {
        assert_eq!(classify(b"junk"), Datagram::Garbage);
        assert_eq!(classify(&[0u8; 20]), Datagram::Garbage); // version 0
        let mut b = vec![0x8F, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1]; // 15 CSRCs announced, none there
        assert_eq!(classify(&b), Datagram::Garbage);
        b[0] = 0x90; // extension announced, missing
        assert_eq!(classify(&b), Datagram::Garbage);
        b[0] = 0xA0; // padding of 0 bytes is invalid
        b.push(0);
        assert_eq!(classify(&b), Datagram::Garbage);
        b[12] = 200; // padding longer than the packet
        assert_eq!(classify(&b), Datagram::Garbage);
        assert_eq!(
            classify(&[0x80, 200, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0]),
            Datagram::Rtcp
        );
    }
}
