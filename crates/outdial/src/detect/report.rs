//! `outdial detect --report DIR`: the detector over a labelled corpus (docs/detection.md, "The corpora") — the
//! confusion table, the human verdict's latency after the end of speech, the beeps found and how far their
//! reported end is from the true one; overall, then per source (voice) and per kind when the labels name them.

use super::{Words, analyse_audio};
use anyhow::Context;
use outdial_core::MachineDetectionConfig;
use outdial_detect::{Verdict, wav};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

const CLASSES: [Verdict; 3] = [Verdict::Human, Verdict::Machine, Verdict::Fax];

/// One line of `labels.csv`: `file,label,split,speech_end_ms,beep_end_ms[,source,kind]`.
struct Row {
    file: String,
    label: Verdict,
    speech_end_ms: Option<u64>,
    beep_end_ms: Option<u64>,
    source: Option<String>,
    kind: Option<String>,
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
        let text = |i: usize| f.get(i).filter(|s| !s.is_empty()).map(|s| s.to_string());
        rows.push(Row {
            file: f[0].to_string(),
            label,
            speech_end_ms: f[3].parse().ok(),
            beep_end_ms: f[4].parse().ok(),
            source: text(5),
            kind: text(6),
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

fn show(v: &mut [i64], p: f64) -> String {
    percentile(v, p).map_or("-".to_string(), |x| x.to_string())
}

/// What a set of files gave.
#[derive(Default)]
struct Tally {
    matrix: HashMap<(Verdict, Verdict), usize>,
    files: usize,
    latency: Vec<i64>,
    human_after: Vec<i64>,
    beeps_expected: usize,
    beep_err: Vec<i64>,
}

impl Tally {
    fn add(
        &mut self,
        label: Verdict,
        got: Verdict,
        latency: i64,
        human_after: Option<i64>,
        beep: Option<Option<i64>>,
    ) {
        *self.matrix.entry((label, got)).or_default() += 1;
        self.files += 1;
        self.latency.push(latency);
        self.human_after.extend(human_after);
        if let Some(found) = beep {
            self.beeps_expected += 1;
            self.beep_err.extend(found);
        }
    }

    fn count(&self, label: Verdict, got: Verdict) -> usize {
        self.matrix.get(&(label, got)).copied().unwrap_or(0)
    }

    fn correct(&self) -> usize {
        CLASSES.iter().map(|c| self.count(*c, *c)).sum()
    }

    fn accuracy(&self) -> f64 {
        100.0 * self.correct() as f64 / self.files.max(1) as f64
    }

    /// Beeps found within 300 ms of the true end (the bar of docs/detection.md).
    fn beeps_within(&self) -> usize {
        self.beep_err.iter().filter(|e| **e <= 300).count()
    }

    /// One line of the per-source / per-kind table.
    fn line(&mut self, name: &str) -> String {
        let per = |c: Verdict| {
            let n: usize = CLASSES.iter().map(|g| self.count(c, *g)).sum();
            if n == 0 {
                "-".to_string()
            } else {
                format!("{}/{n}", self.count(c, c))
            }
        };
        format!(
            "{name:<16}{:>6}{:>9.1}%{:>9}{:>9}{:>7}{:>11}{:>9}{:>11}",
            self.files,
            self.accuracy(),
            per(Verdict::Human),
            per(Verdict::Machine),
            per(Verdict::Fax),
            format!("{}/{}", self.beep_err.len(), self.beeps_expected),
            show(&mut self.beep_err, 0.5),
            show(&mut self.human_after, 0.5),
        )
    }
}

const BREAKDOWN_HEAD: &str =
    "                 files  accuracy    human  machine    fax      beeps  beep±ms  human+ms";

/// The language of a source named like `fr-ca-june` (English for any other name).
fn language(source: Option<&str>) -> &str {
    source
        .and_then(|s| s.split('-').next())
        .filter(|l| l.len() == 2 && l.bytes().all(|b| b.is_ascii_lowercase()))
        .unwrap_or("en")
}

pub fn report(
    dir: &Path,
    split: &str,
    cfg: &MachineDetectionConfig,
    words: Option<&Words>,
) -> anyhow::Result<()> {
    let rows = labels(dir, split)?;
    anyhow::ensure!(!rows.is_empty(), "no files in split '{split}'");
    let name = Verdict::as_str;
    let mut all = Tally::default();
    let mut sources: BTreeMap<String, Tally> = BTreeMap::new();
    let mut kinds: BTreeMap<String, Tally> = BTreeMap::new();
    let mut wrong = Vec::new();
    for r in &rows {
        let samples = wav::read_8k(&dir.join(&r.file))?;
        let a = analyse_audio(cfg, &samples, words, language(r.source.as_deref()));
        // `unknown` counts as the configured default (a person unless unknownIsHuman is false).
        let got = match a.decision.verdict {
            Verdict::Unknown if cfg.unknown_is_human => Verdict::Human,
            Verdict::Unknown | Verdict::Screening => Verdict::Machine,
            v => v,
        };
        if got != r.label {
            wrong.push(format!(
                "{} ({} → {}, {})",
                r.file,
                name(r.label),
                name(got),
                a.decision.cause
            ));
        }
        let human_after = (r.label == Verdict::Human && got == Verdict::Human)
            .then_some(r.speech_end_ms)
            .flatten()
            .map(|end| a.decision.latency_ms as i64 - end as i64);
        let beep = r.beep_end_ms.map(|truth| {
            a.greeting_end
                .as_ref()
                .map(|b| (b.time_ms as i64 - truth as i64).abs())
        });
        if let (Some(None), Verdict::Machine) = (beep, got) {
            wrong.push(format!("{} (beep missed, {})", r.file, a.decision.cause));
        }
        let latency = a.decision.latency_ms as i64;
        all.add(r.label, got, latency, human_after, beep);
        for (map, key) in [(&mut sources, &r.source), (&mut kinds, &r.kind)] {
            if let Some(k) = key {
                map.entry(k.clone())
                    .or_default()
                    .add(r.label, got, latency, human_after, beep);
            }
        }
    }
    let opinion = if words.is_some() {
        "second opinion from the local Whisper's words"
    } else {
        "no words (cadence and tones)"
    };
    println!(
        "corpus {} — split '{split}': {} files; {opinion}",
        dir.display(),
        all.files
    );
    println!();
    println!(
        "{:<12}{:>10}{:>10}{:>10}{:>12}",
        "label \\ got", "human", "machine", "fax", "accuracy"
    );
    for c in CLASSES {
        let row: Vec<usize> = CLASSES.iter().map(|g| all.count(c, *g)).collect();
        let n: usize = row.iter().sum();
        let acc = if n > 0 {
            100.0 * all.count(c, c) as f64 / n as f64
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
        "overall accuracy: {:.1}% ({}/{})",
        all.accuracy(),
        all.correct(),
        all.files
    );
    println!(
        "verdict latency from answer (ms): p50 {} p90 {} p99 {}",
        show(&mut all.latency, 0.5),
        show(&mut all.latency, 0.9),
        show(&mut all.latency, 0.99)
    );
    println!(
        "human verdict after the end of the person's speech (ms): p50 {} p90 {}",
        show(&mut all.human_after, 0.5),
        show(&mut all.human_after, 0.9)
    );
    println!(
        "beeps found {}/{} ({} within 300 ms); |reported − true end| (ms): p50 {} p90 {} max {}",
        all.beep_err.len(),
        all.beeps_expected,
        all.beeps_within(),
        show(&mut all.beep_err, 0.5),
        show(&mut all.beep_err, 0.9),
        show(&mut all.beep_err, 1.0)
    );
    for (title, map) in [("source", &mut sources), ("kind", &mut kinds)] {
        if map.is_empty() {
            continue;
        }
        println!();
        println!("by {title}:");
        println!("{BREAKDOWN_HEAD}");
        for (k, t) in map.iter_mut() {
            println!("{}", t.line(k));
        }
    }
    if !wrong.is_empty() {
        println!();
        println!("misclassified:");
        for w in wrong {
            println!("  {w}");
        }
    }
    Ok(())
}
