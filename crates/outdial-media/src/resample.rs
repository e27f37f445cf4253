//! Sample-rate conversion: 8 kHz telephone audio to and from what speech engines use (16 kHz for recognisers,
//! 22.05 or 24 kHz from synthesisers). Going down, a windowed-sinc low-pass below the new Nyquist frequency first;
//! then linear interpolation.

use std::f32::consts::PI;

const HALF_TAPS: i32 = 32;

/// `x` at `from` Hz to `to` Hz (−1..1 floats).
pub fn resample_f32(x: &[f32], from: u32, to: u32) -> Vec<f32> {
    if from == to || from == 0 || to == 0 {
        return x.to_vec();
    }
    let ratio = from as f32 / to as f32;
    let filtered: Vec<f32> = if ratio > 1.0 {
        let cutoff = 0.45 / ratio;
        let taps: Vec<f32> = (-HALF_TAPS..=HALF_TAPS)
            .map(|n| {
                let n = n as f32;
                let sinc = if n == 0.0 {
                    2.0 * cutoff
                } else {
                    (2.0 * PI * cutoff * n).sin() / (PI * n)
                };
                sinc * (0.54 + 0.46 * (PI * n / HALF_TAPS as f32).cos())
            })
            .collect();
        (0..x.len())
            .map(|i| {
                taps.iter()
                    .enumerate()
                    .map(|(k, t)| {
                        let j = i as i64 + k as i64 - i64::from(HALF_TAPS);
                        if j >= 0 && (j as usize) < x.len() {
                            x[j as usize] * t
                        } else {
                            0.0
                        }
                    })
                    .sum()
            })
            .collect()
    } else {
        x.to_vec()
    };
    let n = (x.len() as f64 * f64::from(to) / f64::from(from)) as usize;
    (0..n)
        .map(|i| {
            let pos = i as f32 * ratio;
            let j = pos as usize;
            let frac = pos - j as f32;
            let a = filtered.get(j).copied().unwrap_or(0.0);
            let b = filtered.get(j + 1).copied().unwrap_or(a);
            a + (b - a) * frac
        })
        .collect()
}

/// 16-bit PCM at `from` Hz to `to` Hz.
pub fn resample(x: &[i16], from: u32, to: u32) -> Vec<i16> {
    let f: Vec<f32> = x.iter().map(|&s| f32::from(s) / 32768.0).collect();
    resample_f32(&f, from, to)
        .into_iter()
        .map(|s| (s.clamp(-1.0, 1.0) * 32767.0) as i16)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(f: f32, rate: u32, secs: f32) -> Vec<i16> {
        (0..(rate as f32 * secs) as usize)
            .map(|i| ((2.0 * PI * f * i as f32 / rate as f32).sin() * 10_000.0) as i16)
            .collect()
    }

    fn peak(x: &[i16]) -> i16 {
        x[x.len() / 4..3 * x.len() / 4]
            .iter()
            .map(|s| s.saturating_abs())
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn up_and_down_keep_the_band_and_drop_what_cannot_be_carried() {
        let up = resample(&tone(1000.0, 8000, 0.5), 8000, 16000);
        assert_eq!(up.len(), 8000);
        assert!(peak(&up) > 9000, "{}", peak(&up));
        let down = resample(&tone(1000.0, 22050, 0.5), 22050, 8000);
        assert_eq!(down.len(), 4000);
        assert!(peak(&down) > 9000, "{}", peak(&down));
        // 6 kHz cannot exist at 8 kHz: filtered out instead of folding back to 2 kHz.
        let alias = resample(&tone(6000.0, 24000, 0.5), 24000, 8000);
        assert!(peak(&alias) < 1000, "{}", peak(&alias));
    }
}
