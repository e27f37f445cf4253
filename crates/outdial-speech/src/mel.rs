//! Whisper's input: the log-mel spectrogram of 30 s of 16 kHz audio, computed as OpenAI's `whisper/audio.py` does
//! (periodic Hann window of 400 samples, hop 160, centred with reflection, power spectrum, Slaney mel filters,
//! `log10` clamped to 8 below the maximum, then `(x + 4) / 4`). Shorter audio is padded with silence to 30 s.

use realfft::RealFftPlanner;
use std::sync::OnceLock;

pub const SAMPLE_RATE: usize = 16_000;
pub const N_FFT: usize = 400;
pub const HOP: usize = 160;
/// Samples in one window (30 s).
pub const N_SAMPLES: usize = 30 * SAMPLE_RATE;
/// Frames in one window.
pub const N_FRAMES: usize = N_SAMPLES / HOP;

/// The mel filter bank (`n_mels` × 201), as librosa's `filters.mel(sr=16000, n_fft=400, n_mels, htk=False,
/// norm="slaney")`.
pub fn filters(n_mels: usize) -> Vec<Vec<f64>> {
    fn hz_to_mel(f: f64) -> f64 {
        let (f_sp, min_log_hz, min_log_mel, logstep) = (200.0 / 3.0, 1000.0, 15.0, (6.4f64).ln() / 27.0);
        if f >= min_log_hz {
            min_log_mel + (f / min_log_hz).ln() / logstep
        } else {
            f / f_sp
        }
    }
    fn mel_to_hz(m: f64) -> f64 {
        let (f_sp, min_log_hz, min_log_mel, logstep) = (200.0 / 3.0, 1000.0, 15.0, (6.4f64).ln() / 27.0);
        if m >= min_log_mel {
            min_log_hz * (logstep * (m - min_log_mel)).exp()
        } else {
            f_sp * m
        }
    }
    let bins = N_FFT / 2 + 1;
    let fft_freqs: Vec<f64> = (0..bins)
        .map(|i| i as f64 * SAMPLE_RATE as f64 / N_FFT as f64)
        .collect();
    let (lo, hi) = (hz_to_mel(0.0), hz_to_mel(SAMPLE_RATE as f64 / 2.0));
    let mel_f: Vec<f64> = (0..n_mels + 2)
        .map(|i| mel_to_hz(lo + (hi - lo) * i as f64 / (n_mels + 1) as f64))
        .collect();
    (0..n_mels)
        .map(|m| {
            let enorm = 2.0 / (mel_f[m + 2] - mel_f[m]);
            fft_freqs
                .iter()
                .map(|&f| {
                    let lower = (f - mel_f[m]) / (mel_f[m + 1] - mel_f[m]);
                    let upper = (mel_f[m + 2] - f) / (mel_f[m + 2] - mel_f[m + 1]);
                    lower.min(upper).max(0.0) * enorm
                })
                .collect()
        })
        .collect()
}

fn hann() -> &'static [f32] {
    static W: OnceLock<Vec<f32>> = OnceLock::new();
    W.get_or_init(|| {
        (0..N_FFT)
            .map(|i| (0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / N_FFT as f64).cos()) as f32)
            .collect()
    })
}

/// The `[n_mels × 3000]` features (row-major) of up to 30 s of 16 kHz audio in `[-1, 1]`.
pub fn log_mel(audio: &[f32], n_mels: usize) -> Vec<f32> {
    let mut x = vec![0f32; N_SAMPLES];
    let n = audio.len().min(N_SAMPLES);
    x[..n].copy_from_slice(&audio[..n]);
    // Centred frames: reflect-pad N_FFT/2 on both sides.
    let pad = N_FFT / 2;
    let mut padded = Vec::with_capacity(N_SAMPLES + 2 * pad);
    padded.extend((1..=pad).rev().map(|i| x[i]));
    padded.extend_from_slice(&x);
    padded.extend((1..=pad).map(|i| x[N_SAMPLES - 1 - i]));

    let bank = filters(n_mels);
    let fft = RealFftPlanner::<f32>::new().plan_fft_forward(N_FFT);
    let mut input = fft.make_input_vec();
    let mut spectrum = fft.make_output_vec();
    let mut scratch = fft.make_scratch_vec();
    let window = hann();
    let mut out = vec![0f32; n_mels * N_FRAMES];
    let mut power = vec![0f64; N_FFT / 2 + 1];
    for frame in 0..N_FRAMES {
        let start = frame * HOP;
        for (i, v) in input.iter_mut().enumerate() {
            *v = padded[start + i] * window[i];
        }
        if fft
            .process_with_scratch(&mut input, &mut spectrum, &mut scratch)
            .is_err()
        {
            continue;
        }
        for (p, c) in power.iter_mut().zip(&spectrum) {
            *p = f64::from(c.norm_sqr());
        }
        for (m, weights) in bank.iter().enumerate() {
            let e: f64 = weights.iter().zip(&power).map(|(w, p)| w * p).sum();
            out[m * N_FRAMES + frame] = e.max(1e-10).log10() as f32;
        }
    }
    let max = out.iter().copied().fold(f32::MIN, f32::max);
    for v in &mut out {
        *v = (v.max(max - 8.0) + 4.0) / 4.0;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slaney_filters_match_librosa() {
        let f = filters(80);
        assert_eq!((f.len(), f[0].len()), (80, 201));
        // Values of librosa.filters.mel(sr=16000, n_fft=400, n_mels=80) (Slaney scale and norm), computed by hand.
        assert!((f[0][1] - 0.024_862_59).abs() < 1e-7, "{}", f[0][1]);
        let argmax = |row: &Vec<f64>| {
            row.iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map(|(i, _)| i)
                .unwrap_or(0)
        };
        assert_eq!(argmax(&f[40]), 43);
        assert_eq!(argmax(&f[79]), 192);
    }

    #[test]
    fn silence_and_tone() {
        let silent = log_mel(&[], 80);
        assert_eq!(silent.len(), 80 * N_FRAMES);
        // All equal for silence: (-10 + 4) / 4.
        assert!(silent.iter().all(|v| (v + 1.5).abs() < 1e-6));
        // A 1 kHz tone lights the mel band around 1 kHz, not the top band.
        let tone: Vec<f32> = (0..16_000)
            .map(|i| 0.5 * (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / 16_000.0).sin())
            .collect();
        let m = log_mel(&tone, 80);
        let at = |band: usize, frame: usize| m[band * N_FRAMES + frame];
        let loudest = (0..80)
            .max_by(|&a, &b| at(a, 50).total_cmp(&at(b, 50)))
            .unwrap_or(0);
        // 1 kHz is 15 mel; the band centres are 45.2 / 81 mel apart: band 26 (counting from 0) is centred there.
        assert!((25..=26).contains(&loudest), "{loudest}");
        assert!(
            at(loudest, 50) > at(79, 50) + 1.0,
            "{} {}",
            at(loudest, 50),
            at(79, 50)
        );
        // After the tone: silence, clamped to 8 below the maximum.
        assert!(at(loudest, 150) < at(loudest, 50) - 1.5);
    }
}
