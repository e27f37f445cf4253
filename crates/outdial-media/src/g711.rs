//! G.711 µ-law and A-law (ITU-T G.711), sample by sample. Decoding reads a 256-entry table (computed at compile
//! time): every received packet of every call is decoded.

const BIAS: i32 = 0x84;
const CLIP: i32 = 32635;

pub fn ulaw_encode(sample: i16) -> u8 {
    let mut x = i32::from(sample);
    let sign = if x < 0 {
        x = -x;
        0x80
    } else {
        0
    };
    x = x.min(CLIP) + BIAS;
    // The segment: the highest bit set above bit 7 (x >= BIAS sets bit 7; x < 0x8000, so at most 7).
    let exp = 31 - x.leading_zeros() as i32 - 7;
    let mant = (x >> (exp + 3)) & 0x0F;
    !(sign | (exp << 4) | mant) as u8
}

pub fn ulaw_decode(code: u8) -> i16 {
    ULAW[code as usize]
}

const fn ulaw_decode_code(code: u8) -> i16 {
    let u = !code;
    let exp = ((u >> 4) & 7) as i32;
    let mant = (u & 0x0F) as i32;
    let x = (((mant << 3) + BIAS) << exp) - BIAS;
    (if u & 0x80 != 0 { -x } else { x }) as i16
}

static ULAW: [i16; 256] = {
    let mut t = [0i16; 256];
    let mut c = 0;
    while c < 256 {
        t[c] = ulaw_decode_code(c as u8);
        c += 1;
    }
    t
};

static ALAW: [i16; 256] = {
    let mut t = [0i16; 256];
    let mut c = 0;
    while c < 256 {
        t[c] = alaw_decode_code(c as u8);
        c += 1;
    }
    t
};

pub fn alaw_encode(sample: i16) -> u8 {
    const SEG_END: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];
    let mut pcm = i32::from(sample) >> 3;
    let mask = if pcm >= 0 {
        0xD5
    } else {
        pcm = -pcm - 1;
        0x55
    };
    let seg = SEG_END.iter().position(|&end| pcm <= end).unwrap_or(8) as i32;
    if seg >= 8 {
        return (0x7F ^ mask) as u8;
    }
    let mant = if seg < 2 {
        (pcm >> 1) & 0x0F
    } else {
        (pcm >> seg) & 0x0F
    };
    (((seg << 4) | mant) ^ mask) as u8
}

pub fn alaw_decode(code: u8) -> i16 {
    ALAW[code as usize]
}

const fn alaw_decode_code(code: u8) -> i16 {
    let a = (code ^ 0x55) as i32;
    let mut t = (a & 0x0F) << 4;
    let seg = (a & 0x70) >> 4;
    match seg {
        0 => t += 8,
        1 => t += 0x108,
        _ => {
            t += 0x108;
            t <<= seg - 1;
        }
    }
    (if a & 0x80 != 0 { t } else { -t }) as i16
}

/// A G.711 law, by RTP payload type (0 = PCMU, 8 = PCMA).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Law {
    Ulaw,
    Alaw,
    /// G.722 (wideband, payload type 9, 16 kHz audio on an 8 kHz RTP clock; RFC 3551). Stateful and
    /// frame-based: the media loop codes it with [`crate::wideband`], not sample by sample.
    G722,
}

impl Law {
    pub fn from_payload_type(pt: u8) -> Option<Law> {
        match pt {
            0 => Some(Law::Ulaw),
            8 => Some(Law::Alaw),
            9 => Some(Law::G722),
            _ => None,
        }
    }

    pub fn payload_type(self) -> u8 {
        match self {
            Law::Ulaw => 0,
            Law::Alaw => 8,
            Law::G722 => 9,
        }
    }

    pub fn decode(self, code: u8) -> i16 {
        match self {
            Law::Ulaw => ulaw_decode(code),
            Law::Alaw => alaw_decode(code),
            Law::G722 => 0,
        }
    }

    pub fn encode(self, sample: i16) -> u8 {
        match self {
            Law::Ulaw => ulaw_encode(sample),
            Law::Alaw => alaw_encode(sample),
            Law::G722 => 0,
        }
    }

    /// The code of digital silence.
    pub fn silence(self) -> u8 {
        self.encode(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_survives_a_round_trip() {
        for c in 0..=255u8 {
            let u = ulaw_encode(ulaw_decode(c));
            // 0x7F is µ-law's "negative zero": it decodes to 0, which encodes as 0xFF.
            assert!(u == c || (c == 0x7F && u == 0xFF), "µ-law {c:#x} -> {u:#x}");
            assert_eq!(alaw_encode(alaw_decode(c)), c, "A-law {c:#x}");
        }
    }

    /// The segment search of the reference encoder (ITU-T G.711's loop), against the leading-zeros one.
    #[test]
    fn ulaw_encoding_is_the_reference_for_every_sample() {
        fn reference(sample: i16) -> u8 {
            let mut x = i32::from(sample);
            let sign = if x < 0 {
                x = -x;
                0x80
            } else {
                0
            };
            x = x.min(CLIP) + BIAS;
            let mut exp = 7;
            let mut mask = 0x4000;
            while exp > 0 && x & mask == 0 {
                exp -= 1;
                mask >>= 1;
            }
            let mant = (x >> (exp + 3)) & 0x0F;
            !(sign | (exp << 4) | mant) as u8
        }
        for s in i16::MIN..=i16::MAX {
            assert_eq!(ulaw_encode(s), reference(s), "{s}");
        }
    }

    #[test]
    fn known_values_and_bounded_error() {
        assert_eq!(ulaw_encode(0), 0xFF);
        assert_eq!(alaw_encode(0), 0xD5);
        assert_eq!(ulaw_decode(0x00), -32124);
        assert_eq!(ulaw_decode(0x80), 32124);
        assert_eq!(alaw_decode(0xAA), 32256);
        for s in (-32768i32..=32767).step_by(7) {
            let s = s as i16;
            let e = (i32::from(ulaw_decode(ulaw_encode(s))) - i32::from(s)).abs();
            // Quantisation step is at most 1/16 of the magnitude (plus the clip at 32635).
            assert!(
                e <= (i32::from(s).abs() / 16).max(8) + 140,
                "µ-law {s}: error {e}"
            );
            let e = (i32::from(alaw_decode(alaw_encode(s))) - i32::from(s)).abs();
            assert!(e <= (i32::from(s).abs() / 16).max(16) + 8, "A-law {s}: error {e}");
        }
    }
}
