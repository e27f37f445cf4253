//! G.722 on the wire (docs/trunks.md, "Codecs"): 20 ms of the call's 8 kHz audio becomes 320 samples at 16 kHz,
//! coded into 160 bytes (64 kbit/s), and back. The coder is `audio-codec`'s G.722 (sub-band ADPCM).

use audio_codec::g722::{G722Decoder, G722Encoder};
use audio_codec::{Decoder as _, Encoder as _};

/// Bytes of one 20 ms G.722 packet.
pub const PACKET: usize = 160;

pub struct Wideband {
    encoder: G722Encoder,
    decoder: G722Decoder,
}

impl Default for Wideband {
    fn default() -> Self {
        Wideband {
            encoder: G722Encoder::new(),
            decoder: G722Decoder::new(),
        }
    }
}

impl Wideband {
    /// 160 samples at 8 kHz → one packet.
    pub fn encode(&mut self, pcm8k: &[i16], out: &mut [u8]) {
        let pcm16k = crate::resample::resample(pcm8k, 8000, 16000);
        let n = self.encoder.encode_into(&pcm16k, out).unwrap_or(0);
        out[n..].fill(0);
    }

    /// One packet → 160 samples at 8 kHz (what the call's engines take).
    pub fn decode(&mut self, packet: &[u8]) -> Vec<i16> {
        self.decode_both(packet).0
    }

    /// One packet → its audio at 8 kHz and at 16 kHz (for the engines that take wideband audio).
    pub fn decode_both(&mut self, packet: &[u8]) -> (Vec<i16>, Vec<i16>) {
        let mut pcm16k = vec![0i16; packet.len() * 2];
        let n = self.decoder.decode_into(packet, &mut pcm16k).unwrap_or(0);
        pcm16k.truncate(n);
        (crate::resample::resample(&pcm16k, 16000, 8000), pcm16k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tone_survives_the_round_trip() {
        let tone: Vec<i16> = (0..1600)
            .map(|i| (8000.0 * (2.0 * std::f32::consts::PI * 440.0 * i as f32 / 8000.0).sin()) as i16)
            .collect();
        let mut w = Wideband::default();
        let mut back = Vec::new();
        for chunk in tone.chunks(160) {
            let mut packet = [0u8; PACKET];
            w.encode(chunk, &mut packet);
            back.extend(w.decode(&packet));
        }
        assert_eq!(back.len(), tone.len());
        // Past the coder's start-up, the energy comes back.
        let energy = |x: &[i16]| x.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / x.len() as f64;
        let ratio = energy(&back[800..]) / energy(&tone[800..]);
        assert!((0.5..2.0).contains(&ratio), "energy ratio {ratio}");
    }
}
