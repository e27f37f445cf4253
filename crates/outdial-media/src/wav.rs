//! Reading WAV files for `outdial detect` and the corpus report: PCM 8/16/24/32-bit, IEEE float, A-law and
//! µ-law, any rate and channel count (the first channel is used), resampled to 8 kHz.

use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum WavError {
    #[error("cannot read {0}: {1}")]
    Io(String, std::io::Error),
    #[error("{0}: not a WAV file ({1})")]
    Format(String, String),
}

fn u16le(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn u32le(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The file's first channel as 8 kHz 16-bit samples.
pub fn read_8k(path: &Path) -> Result<Vec<i16>, WavError> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| WavError::Io(name.clone(), e))?;
    decode_8k(&bytes).map_err(|why| WavError::Format(name, why))
}

pub fn decode_8k(b: &[u8]) -> Result<Vec<i16>, String> {
    if b.get(0..4) != Some(b"RIFF") || b.get(8..12) != Some(b"WAVE") {
        return Err("no RIFF/WAVE header".into());
    }
    let mut at = 12;
    let mut fmt = None;
    let mut data = None;
    while at + 8 <= b.len() {
        let id = &b[at..at + 4];
        let len = u32le(b, at + 4).ok_or("truncated chunk")? as usize;
        let body = b
            .get(at + 8..(at + 8 + len).min(b.len()))
            .ok_or("truncated chunk")?;
        match id {
            b"fmt " => fmt = Some(body),
            b"data" => data = Some(body),
            _ => {}
        }
        at += 8 + len + (len & 1);
    }
    let fmt = fmt.ok_or("no fmt chunk")?;
    let data = data.ok_or("no data chunk")?;
    let mut tag = u16le(fmt, 0).ok_or("short fmt")?;
    let channels = usize::from(u16le(fmt, 2).ok_or("short fmt")?.max(1));
    let rate = u32le(fmt, 4).ok_or("short fmt")?;
    let bits = u16le(fmt, 14).ok_or("short fmt")?;
    if tag == 0xFFFE {
        // WAVE_FORMAT_EXTENSIBLE: the sub-format's first two bytes are the tag.
        tag = u16le(fmt, 24).ok_or("short extensible fmt")?;
    }
    if rate == 0 {
        return Err("sample rate 0".into());
    }
    let width = usize::from(bits.div_ceil(8)).max(1);
    let frame = width * channels;
    let samples: Vec<f32> = data
        .chunks_exact(frame)
        .map(|f| {
            let s = &f[..width];
            match (tag, bits) {
                (1, 8) => (f32::from(s[0]) - 128.0) / 128.0,
                (1, 16) => f32::from(i16::from_le_bytes([s[0], s[1]])) / 32768.0,
                (1, 24) => (i32::from_le_bytes([0, s[0], s[1], s[2]]) >> 8) as f32 / 8_388_608.0,
                (1, 32) => i32::from_le_bytes([s[0], s[1], s[2], s[3]]) as f32 / 2_147_483_648.0,
                (3, 32) => f32::from_le_bytes([s[0], s[1], s[2], s[3]]),
                (6, 8) => f32::from(crate::g711::alaw_decode(s[0])) / 32768.0,
                (7, 8) => f32::from(crate::g711::ulaw_decode(s[0])) / 32768.0,
                _ => f32::NAN,
            }
        })
        .collect();
    if samples.first().is_some_and(|s| s.is_nan()) {
        return Err(format!("unsupported format (tag {tag}, {bits} bits)"));
    }
    Ok(crate::resample::resample_f32(&samples, rate, 8000)
        .into_iter()
        .map(|s| (s.clamp(-1.0, 1.0) * 32767.0) as i16)
        .collect())
}

/// A 16-bit PCM mono WAV (for tests and tools).
pub fn encode_pcm16(samples: &[i16], rate: u32) -> Vec<u8> {
    let mut b = Vec::with_capacity(44 + samples.len() * 2);
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + samples.len() as u32 * 2).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&(rate * 2).to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&16u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&(samples.len() as u32 * 2).to_le_bytes());
    for s in samples {
        b.extend_from_slice(&s.to_le_bytes());
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pcm_and_resamples() {
        let tone: Vec<i16> = (0..16000)
            .map(|i| ((2.0 * std::f32::consts::PI * 1000.0 * i as f32 / 16000.0).sin() * 10000.0) as i16)
            .collect();
        let x = decode_8k(&encode_pcm16(&tone, 16000)).unwrap();
        assert_eq!(x.len(), 8000);
        let peak = x[100..7900].iter().map(|s| s.abs()).max().unwrap();
        assert!((9000..=10500).contains(&peak), "{peak}");
        assert!(decode_8k(b"RIFF....WAVEjunk").is_err());
        assert!(decode_8k(b"not a wav").is_err());
    }
}
