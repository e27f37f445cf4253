//! `outdial detect`: the live detector (same code, same parameters) run on WAV files — one JSON line per file —
//! and, with `--report`, over a labelled corpus: confusion matrix, accuracy per class, latency percentiles.

use anyhow::Context;
use outdial_core::MachineDetectionConfig;
use outdial_detect::{Analysis, Verdict, analyse, wav};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct DetectArgs {
    /// WAV files (8 kHz µ-law / A-law / PCM, or any rate: resampled).
    files: Vec<PathBuf>,
    /// machineDetectionConfig as JSON, or @FILE holding it (defaults otherwise).
    #[arg(long)]
    config: Option<String>,
    /// Report on a labelled corpus: DIR/labels.csv (file,label,split,speech_end_ms,beep_end_ms).
    #[arg(long)]
    report: Option<PathBuf>,
    /// With --report: the split to report on (the held-out `test` split by default; `all` for every file).
    #[arg(long, default_value = "test")]
    split: String,
}

fn config(arg: Option<&str>) -> anyhow::Result<MachineDetectionConfig> {
    let Some(arg) = arg else {
        return Ok(MachineDetectionConfig::default());
    };
    let text = match arg.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("--config {path}"))?,
        None => arg.to_string(),
    };
    let v: Value = serde_json::from_str(&text).context("--config: not JSON")?;
    MachineDetectionConfig::parse(&v, "machineDetectionConfig").map_err(|e| anyhow::anyhow!("--config: {e}"))
}

/// The JSON line of one file.
pub fn line(file: &str, a: &Analysis) -> Value {
    json!({
        "file": file,
        "verdict": a.decision.verdict,
        "cause": a.decision.cause,
        "confidence": (f64::from(a.decision.confidence) * 100.0).round() / 100.0,
        "latencyMs": a.decision.latency_ms,
        "greetingEnd": a.greeting_end.as_ref().map(|b| json!({
            "kind": "beep", "timeMs": b.time_ms, "frequencyHz": b.frequency_hz,
        })),
    })
}

/// Exit code 0, or 1 when a file could not be read.
pub fn run(args: DetectArgs) -> anyhow::Result<u8> {
    let cfg = config(args.config.as_deref())?;
    if let Some(dir) = &args.report {
        report(dir, &args.split, &cfg)?;
        return Ok(0);
    }
    if args.files.is_empty() {
        anyhow::bail!("give WAV files, or --report DIR");
    }
    let mut code = 0;
    for f in &args.files {
        let name = f.display().to_string();
        match wav::read_8k(f) {
            Ok(samples) => println!("{}", line(&name, &analyse(&cfg, &samples))),
            Err(e) => {
                println!("{}", json!({"file": name, "error": e.to_string()}));
                code = 1;
            }
        }
    }
    Ok(code)
}

struct Row {
    file: String,
    label: Verdict,
    speech_end_ms: Option<u64>,
    beep_end_ms: Option<u64>,
}

fn labels(dir: &Path, split: &str) -> anyhow::Result<Vec<Row>> {
    let path = dir.join("labels.csv");
    let text = std::fs::read_to_string(&path).with_context(|| format!("{}", path.display()))?;
    let mut rows = Vec::new();
    for (n, l) in text.lines().enumerate().skip(1) {
        let f: Vec<&str> = l.split(',').map(str::trim).collect();
        if f.len() < 5 {
            anyhow::bail!("{}:{}: expected 5 fields", path.display(), n + 1);
        }
        if split != "all" && f[2] != split {
            continue;
        }
        let label = match f[1] {
            "human" => Verdict::Human,
            "machine" => Verdict::Machine,
            "fax" => Verdict::Fax,
            other => anyhow::bail!("{}:{}: unknown label {other}", path.display(), n + 1),
        };
        rows.push(Row {
            file: f[0].to_string(),
            label,
            speech_end_ms: f[3].parse().ok(),
            beep_end_ms: f[4].parse().ok(),
        });
    }
    Ok(rows)
}

fn percentile(v: &mut [i64], p: f64) -> Option<i64> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    let i = ((v.len() - 1) as f64 * p).round() as usize;
    Some(v[i])
}

fn report(dir: &Path, split: &str, cfg: &MachineDetectionConfig) -> anyhow::Result<()> {
    let rows = labels(dir, split)?;
    anyhow::ensure!(!rows.is_empty(), "no files in split '{split}'");
    let classes = [Verdict::Human, Verdict::Machine, Verdict::Fax];
    let name = Verdict::as_str;
    let mut matrix: HashMap<(Verdict, Verdict), usize> = HashMap::new();
    let (mut latency, mut human_after, mut beep_err) = (Vec::new(), Vec::new(), Vec::new());
    let (mut beeps_expected, mut beeps_found) = (0, 0);
    let mut wrong = Vec::new();
    for r in &rows {
        let samples = wav::read_8k(&dir.join(&r.file))?;
        let a = analyse(cfg, &samples);
        // `unknown` counts as the configured default (a person unless unknownIsHuman is false).
        let got = match a.decision.verdict {
            Verdict::Unknown if cfg.unknown_is_human => Verdict::Human,
            Verdict::Unknown => Verdict::Machine,
            v => v,
        };
        *matrix.entry((r.label, got)).or_default() += 1;
        latency.push(a.decision.latency_ms as i64);
        if got != r.label {
            wrong.push(format!(
                "{} ({} → {}, {})",
                r.file,
                name(r.label),
                name(got),
                a.decision.cause
            ));
        }
        if r.label == Verdict::Human
            && got == Verdict::Human
            && let Some(end) = r.speech_end_ms
        {
            human_after.push(a.decision.latency_ms as i64 - end as i64);
        }
        if let Some(truth) = r.beep_end_ms {
            beeps_expected += 1;
            if let Some(b) = &a.greeting_end {
                beeps_found += 1;
                beep_err.push((b.time_ms as i64 - truth as i64).abs());
            }
        }
    }
    let total = rows.len();
    let correct: usize = classes
        .iter()
        .map(|c| matrix.get(&(*c, *c)).copied().unwrap_or(0))
        .sum();
    println!("corpus {} — split '{split}': {total} files", dir.display());
    println!();
    println!(
        "{:<12}{:>10}{:>10}{:>10}{:>12}",
        "label \\ got", "human", "machine", "fax", "accuracy"
    );
    for c in classes {
        let row: Vec<usize> = classes
            .iter()
            .map(|g| matrix.get(&(c, *g)).copied().unwrap_or(0))
            .collect();
        let n: usize = row.iter().sum();
        let hits = matrix.get(&(c, c)).copied().unwrap_or(0);
        let acc = if n > 0 {
            100.0 * hits as f64 / n as f64
        } else {
            0.0
        };
        println!(
            "{:<12}{:>10}{:>10}{:>10}{:>11.1}%",
            name(c),
            row[0],
            row[1],
            row[2],
            acc
        );
    }
    println!();
    println!(
        "overall accuracy: {:.1}% ({correct}/{total})",
        100.0 * correct as f64 / total as f64
    );
    let p = |v: &mut Vec<i64>, q| percentile(v, q).map_or("-".to_string(), |x| x.to_string());
    println!(
        "verdict latency from answer (ms): p50 {} p90 {} p99 {}",
        p(&mut latency, 0.5),
        p(&mut latency, 0.9),
        p(&mut latency, 0.99)
    );
    println!(
        "human verdict after the end of the person's speech (ms): p50 {} p90 {}",
        p(&mut human_after, 0.5),
        p(&mut human_after, 0.9)
    );
    println!(
        "beeps found {beeps_found}/{beeps_expected}; |reported − true end| (ms): p50 {} p90 {} max {}",
        p(&mut beep_err, 0.5),
        p(&mut beep_err, 0.9),
        p(&mut beep_err, 1.0)
    );
    if !wrong.is_empty() {
        println!();
        println!("misclassified:");
        for w in wrong {
            println!("  {w}");
        }
    }
    Ok(())
}
