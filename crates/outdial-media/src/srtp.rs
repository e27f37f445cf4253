//! SRTP with SDES keys (RFC 3711, RFC 4568; docs/trunks.md, "SRTP"): the `a=crypto` lines of our offer (a fresh
//! random key per call for each suite we offer), the one the answer picked, and the two one-way contexts that
//! protect what we send and check what we receive. The cipher is `webrtc-srtp` (AES-CM with HMAC-SHA1-80 or -32).

use base64::Engine as _;
use webrtc_srtp::context::Context;
use webrtc_srtp::protection_profile::ProtectionProfile;

/// The crypto suites we offer, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suite {
    AesCm128HmacSha1_80,
    AesCm128HmacSha1_32,
}

impl Suite {
    pub const ALL: [Suite; 2] = [Suite::AesCm128HmacSha1_80, Suite::AesCm128HmacSha1_32];

    pub fn name(self) -> &'static str {
        match self {
            Suite::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            Suite::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
        }
    }

    fn profile(self) -> ProtectionProfile {
        match self {
            Suite::AesCm128HmacSha1_80 => ProtectionProfile::Aes128CmHmacSha1_80,
            Suite::AesCm128HmacSha1_32 => ProtectionProfile::Aes128CmHmacSha1_32,
        }
    }
}

/// Master key (16 bytes) and salt (14 bytes) of one direction, with its suite and `a=crypto` tag.
#[derive(Clone, PartialEq, Eq)]
pub struct Keys {
    pub tag: u32,
    pub suite: Suite,
    material: [u8; 30],
}

impl std::fmt::Debug for Keys {
    // docs/security.md: keys are never logged.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keys {{ tag: {}, suite: {} }}", self.tag, self.suite.name())
    }
}

impl Keys {
    /// Fresh random keys.
    pub fn generate(tag: u32, suite: Suite) -> Keys {
        Keys {
            tag,
            suite,
            material: rand::random(),
        }
    }

    /// The SDP attribute: `a=crypto:<tag> <suite> inline:<base64 key||salt>`.
    pub fn attribute(&self) -> String {
        let inline = base64::engine::general_purpose::STANDARD.encode(self.material);
        format!("a=crypto:{} {} inline:{inline}", self.tag, self.suite.name())
    }

    /// Reads an `a=crypto:` line (the attribute without `a=`, or with it); None for suites or keys we cannot use.
    pub fn parse(line: &str) -> Option<Keys> {
        let rest = line.trim().trim_start_matches("a=").strip_prefix("crypto:")?;
        let mut f = rest.split_whitespace();
        let tag = f.next()?.parse().ok()?;
        let name = f.next()?;
        let suite = Suite::ALL.into_iter().find(|s| s.name() == name)?;
        let inline = f.next()?.strip_prefix("inline:")?;
        // `inline:<key>|<lifetime>|<MKI>`: lifetimes and MKIs are not supported.
        let key = inline.split('|').next()?;
        let bytes = base64::engine::general_purpose::STANDARD.decode(key).ok()?;
        Some(Keys {
            tag,
            suite,
            material: bytes.try_into().ok()?,
        })
    }

    fn context(&self) -> Option<Context> {
        Context::new(
            &self.material[..16],
            &self.material[16..],
            self.suite.profile(),
            None,
            None,
        )
        .ok()
    }
}

/// The contexts of a call: `tx` protects what we send (our keys), `rx` checks what we receive (theirs).
pub struct Srtp {
    tx: Context,
    rx: Context,
}

impl Srtp {
    pub fn new(ours: &Keys, theirs: &Keys) -> Option<Srtp> {
        Some(Srtp {
            tx: ours.context()?,
            rx: theirs.context()?,
        })
    }

    pub fn protect_rtp(&mut self, packet: &[u8]) -> Option<Vec<u8>> {
        self.tx.encrypt_rtp(packet).ok().map(|b| b.to_vec())
    }

    /// The plain packet, or None when it fails authentication (or replays one).
    pub fn unprotect_rtp(&mut self, packet: &[u8]) -> Option<Vec<u8>> {
        self.rx.decrypt_rtp(packet).ok().map(|b| b.to_vec())
    }

    pub fn protect_rtcp(&mut self, packet: &[u8]) -> Option<Vec<u8>> {
        self.tx.encrypt_rtcp(packet).ok().map(|b| b.to_vec())
    }

    pub fn unprotect_rtcp(&mut self, packet: &[u8]) -> Option<Vec<u8>> {
        self.rx.decrypt_rtcp(packet).ok().map(|b| b.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_sdp_and_protect() {
        let a = Keys::generate(1, Suite::AesCm128HmacSha1_80);
        let line = a.attribute();
        assert!(line.starts_with("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"));
        assert_eq!(Keys::parse(&line), Some(a.clone()));
        assert_eq!(Keys::parse(&format!("{line}|2^31|1:1")), Some(a.clone()));
        assert_eq!(Keys::parse("crypto:1 F8_128_HMAC_SHA1_80 inline:AAAA"), None);
        let b = Keys::generate(1, Suite::AesCm128HmacSha1_80);
        let mut ours = Srtp::new(&a, &b).unwrap();
        let mut theirs = Srtp::new(&b, &a).unwrap();
        let rtp = [
            0x80, 0x00, 0x00, 0x01, 0, 0, 0, 160, 1, 2, 3, 4, 0xff, 0xff, 0xff, 0xff,
        ];
        let wire = ours.protect_rtp(&rtp).unwrap();
        assert_eq!(wire.len(), rtp.len() + 10, "an 80-bit tag");
        assert_ne!(&wire[12..16], &rtp[12..16], "the payload is encrypted");
        assert_eq!(theirs.unprotect_rtp(&wire).unwrap(), rtp);
        let mut forged = wire.clone();
        forged[13] ^= 1;
        assert!(theirs.unprotect_rtp(&forged).is_none(), "authentication fails");
    }
}
