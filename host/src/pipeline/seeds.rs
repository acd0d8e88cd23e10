//! Several runs of one recipe (seeds) side by side: each row's columns as mean ± standard
//! deviation over the runs, and the paired differences the VILA² claims are about — the last
//! self-augmentation round against round 0, the specialists against the last round — per run,
//! with how many runs each holds in. A single retraining of the miniature moves a column by
//! several points, so one run cannot settle a difference of that size.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::PipelineError;
use super::report::{RoundReport, RunReport};

/// Label of the specialists' row.
const SPECIALISTS: &str = "+ specialists";

/// One run's report and the name it is shown under.
#[derive(Debug, Clone)]
pub struct NamedRun {
    /// The run folder as given.
    pub name: String,
    /// Its `report.json`.
    pub report: RunReport,
}

/// Reads `report.json` from a run folder, or from `run/` below it (a `vila2 demo` folder).
pub fn load(dir: &Path) -> Result<NamedRun, PipelineError> {
    let candidates = [dir.join("report.json"), dir.join("run").join("report.json")];
    let Some(path) = candidates.iter().find(|p| p.is_file()) else {
        return Err(PipelineError::Missing {
            field: "report.json of a finished run".into(),
            path: dir.to_path_buf(),
        });
    };
    let bytes = std::fs::read(path).map_err(|error| PipelineError::Io {
        path: path.clone(),
        error,
    })?;
    let report = serde_json::from_slice(&bytes).map_err(|e| PipelineError::State {
        path: path.clone(),
        msg: format!("not a run report: {e}"),
    })?;
    Ok(NamedRun {
        name: dir.display().to_string(),
        report,
    })
}

/// Mean and sample standard deviation (0 for one value).
pub fn mean_sd(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    if xs.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let mean = xs.iter().sum::<f64>() / n;
    if xs.len() < 2 {
        return (mean, 0.0);
    }
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

/// How a row gives a column's value (percent or words), if it has one.
type Cell = Box<dyn Fn(&RoundReport) -> Option<f64>>;

/// A column of the table.
struct Column {
    header: String,
    value: Cell,
}

fn columns(runs: &[NamedRun]) -> Vec<Column> {
    let pct = |x: f64| 100.0 * x;
    let mut cols = vec![
        Column {
            header: "caption words".into(),
            value: Box::new(|r: &RoundReport| Some(r.data.mean_words)),
        },
        Column {
            header: "precision".into(),
            value: Box::new(move |r: &RoundReport| r.eval.captions.map(|c| pct(c.precision))),
        },
        Column {
            header: "recall".into(),
            value: Box::new(move |r: &RoundReport| r.eval.captions.map(|c| pct(c.recall))),
        },
        Column {
            header: "hallucination".into(),
            value: Box::new(move |r: &RoundReport| r.eval.captions.map(|c| pct(c.hallucination))),
        },
    ];
    let kinds: BTreeSet<String> = runs
        .iter()
        .flat_map(|n| {
            n.report
                .rounds
                .iter()
                .flat_map(|r| r.eval.vqa.keys().cloned())
        })
        .collect();
    for k in kinds {
        cols.push(Column {
            header: format!("VQA {k}"),
            value: Box::new(move |r: &RoundReport| r.eval.vqa.get(&k).map(|a| pct(a.rate()))),
        });
    }
    cols.push(Column {
        header: "VQA all".into(),
        value: Box::new(move |r: &RoundReport| Some(pct(r.eval.vqa_overall.rate()))),
    });
    cols
}

/// A paired difference between two rows of every run.
struct Target {
    what: &'static str,
    /// Whether the winning row should be higher (VQA) or lower (hallucination).
    higher_is_better: bool,
    /// Row labels: (the row that should win, the row it is compared with).
    rows: (String, String),
    value: fn(&RoundReport) -> Option<f64>,
}

fn vqa_kind(r: &RoundReport, kind: &str) -> Option<f64> {
    r.eval.vqa.get(kind).map(|a| 100.0 * a.rate())
}

fn targets(last: &str, specialists: bool) -> Vec<Target> {
    let mut t = vec![
        Target {
            what: "VQA all",
            higher_is_better: true,
            rows: (last.into(), "round 0".into()),
            value: |r| Some(100.0 * r.eval.vqa_overall.rate()),
        },
        Target {
            what: "hallucination",
            higher_is_better: false,
            rows: (last.into(), "round 0".into()),
            value: |r| r.eval.captions.map(|c| 100.0 * c.hallucination),
        },
    ];
    if specialists {
        t.push(Target {
            what: "VQA relation",
            higher_is_better: true,
            rows: (SPECIALISTS.into(), last.into()),
            value: |r| vqa_kind(r, "relation"),
        });
        t.push(Target {
            what: "VQA text",
            higher_is_better: true,
            rows: (SPECIALISTS.into(), last.into()),
            value: |r| vqa_kind(r, "text"),
        });
    }
    t
}

/// The comparison of several runs of one recipe.
pub fn markdown(runs: &[NamedRun]) -> Result<String, PipelineError> {
    let labels = common_labels(runs)?;
    let cols = columns(runs);
    let fmt = |xs: &[f64]| {
        let (m, sd) = mean_sd(xs);
        if xs.len() < 2 {
            format!("{m:.1}")
        } else {
            format!("{m:.1} ± {sd:.1}")
        }
    };
    let mut md = format!("# {} runs of one recipe\n\n", runs.len());
    for (i, r) in runs.iter().enumerate() {
        let _ = writeln!(md, "{}. `{}`", i + 1, r.name);
    }
    md.push_str("\n## Mean ± standard deviation over the runs\n\n| data |");
    for c in &cols {
        let _ = write!(md, " {} |", c.header);
    }
    md.push_str("\n|---|");
    md.push_str(&"---:|".repeat(cols.len()));
    md.push('\n');
    for label in &labels {
        let _ = write!(md, "| {label} |");
        for c in &cols {
            let xs: Vec<f64> = runs
                .iter()
                .filter_map(|n| row(n, label).and_then(|r| (c.value)(r)))
                .collect();
            if xs.is_empty() {
                md.push_str(" – |");
            } else {
                let _ = write!(md, " {} |", fmt(&xs));
            }
        }
        md.push('\n');
    }
    md.push_str(
        "\nPercentages (caption words: the training captions' mean); precision, recall and \
         hallucination of the models' own captions of the held-out images; sample standard \
         deviation over the runs.\n",
    );
    let last = labels
        .iter()
        .rfind(|l| l.starts_with("round ") && l.as_str() != "round 0");
    let Some(last) = last else {
        return Ok(md);
    };
    let specialists = labels.iter().any(|l| l == SPECIALISTS);
    md.push_str("\n## The targets, run by run\n\n| difference | better |");
    for i in 0..runs.len() {
        let _ = write!(md, " run {} |", i + 1);
    }
    md.push_str(" mean ± sd | holds in |\n|---|---|");
    md.push_str(&"---:|".repeat(runs.len() + 2));
    md.push('\n');
    for t in targets(last, specialists) {
        let diffs: Vec<Option<f64>> = runs
            .iter()
            .map(|n| {
                let a = row(n, &t.rows.0).and_then(t.value)?;
                let b = row(n, &t.rows.1).and_then(t.value)?;
                Some(a - b)
            })
            .collect();
        let _ = write!(
            md,
            "| {} {} − {} | {} |",
            t.what,
            t.rows.0,
            t.rows.1,
            if t.higher_is_better {
                "higher"
            } else {
                "lower"
            }
        );
        for d in &diffs {
            match d {
                Some(d) => {
                    let _ = write!(md, " {d:+.1} |");
                }
                None => md.push_str(" – |"),
            }
        }
        let known: Vec<f64> = diffs.iter().flatten().copied().collect();
        let holds = known
            .iter()
            .filter(|&&d| if t.higher_is_better { d > 0.0 } else { d < 0.0 })
            .count();
        let (m, sd) = mean_sd(&known);
        let _ = writeln!(md, " {m:+.1} ± {sd:.1} | {holds} of {} |", known.len());
    }
    md.push_str(
        "\nPoints; a target holds in a run when its difference has the better sign (a tie does \
         not hold).\n",
    );
    Ok(md)
}

fn row<'a>(run: &'a NamedRun, label: &str) -> Option<&'a RoundReport> {
    run.report.rounds.iter().find(|r| r.label == label)
}

/// The row labels, in the first run's order; every run must have the same rows.
fn common_labels(runs: &[NamedRun]) -> Result<Vec<String>, PipelineError> {
    let Some(first) = runs.first() else {
        return Err(PipelineError::Config {
            file: PathBuf::from("(command line)"),
            msg: "no runs to compare".into(),
        });
    };
    let labels_of = |run: &NamedRun| -> Vec<String> {
        run.report.rounds.iter().map(|r| r.label.clone()).collect()
    };
    let labels = labels_of(first);
    for r in &runs[1..] {
        let theirs = labels_of(r);
        if theirs != labels {
            return Err(PipelineError::State {
                path: PathBuf::from(&r.name),
                msg: format!(
                    "its rows [{}] differ from {}'s [{}]: compare runs of one recipe that \
                     finished the same rounds",
                    theirs.join(", "),
                    first.name,
                    labels.join(", ")
                ),
            });
        }
    }
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::evaluate::{Accuracy, CaptionQuality, EvalResult};

    fn round(label: &str, vqa: usize, halluc: f64, relation: usize, text: usize) -> RoundReport {
        let mut eval = EvalResult {
            vqa_overall: Accuracy {
                correct: vqa,
                total: 100,
            },
            captions: Some(CaptionQuality {
                hallucination: halluc,
                precision: 1.0 - halluc,
                ..Default::default()
            }),
            ..Default::default()
        };
        eval.vqa.insert(
            "relation".into(),
            Accuracy {
                correct: relation,
                total: 10,
            },
        );
        eval.vqa.insert(
            "text".into(),
            Accuracy {
                correct: text,
                total: 10,
            },
        );
        RoundReport {
            label: label.into(),
            eval,
            ..Default::default()
        }
    }

    fn run(name: &str, rounds: Vec<RoundReport>) -> NamedRun {
        NamedRun {
            name: name.into(),
            report: RunReport {
                rounds,
                ..Default::default()
            },
        }
    }

    #[test]
    fn mean_and_sample_sd() {
        let (m, sd) = mean_sd(&[2.0, 4.0, 6.0]);
        assert_eq!(m, 4.0);
        assert_eq!(sd, 2.0);
        assert_eq!(mean_sd(&[3.0]), (3.0, 0.0));
        assert!(mean_sd(&[]).0.is_nan());
    }

    #[test]
    fn targets_are_paired_per_run_and_counted() {
        let runs = vec![
            run(
                "a",
                vec![
                    round("round 0", 50, 0.10, 5, 7),
                    round("round 1", 55, 0.05, 6, 7),
                    round(SPECIALISTS, 60, 0.05, 8, 6),
                ],
            ),
            run(
                "b",
                vec![
                    round("round 0", 60, 0.05, 5, 7),
                    round("round 1", 58, 0.08, 5, 7),
                    round(SPECIALISTS, 58, 0.08, 7, 9),
                ],
            ),
        ];
        let md = markdown(&runs).unwrap();
        for want in [
            // Round 1 − round 0 on VQA: +5 and −2 points; hallucination −5 and +3.
            "| VQA all round 1 − round 0 | higher | +5.0 | -2.0 | +1.5 ± 4.9 | 1 of 2 |",
            "| hallucination round 1 − round 0 | lower | -5.0 | +3.0 | -1.0 ± 5.7 | 1 of 2 |",
            "| VQA relation + specialists − round 1 | higher | +20.0 | +20.0 | +20.0 ± 0.0 | 2 of 2 |",
            "| VQA text + specialists − round 1 | higher | -10.0 | +20.0 |",
            // The table's cells: mean ± sd of each row's column.
            "| round 0 | 0.0 ± 0.0 | 92.5 ± 3.5 |",
            "55.0 ± 7.1 |\n",
        ] {
            assert!(md.contains(want), "{want} not in\n{md}");
        }
    }

    #[test]
    fn runs_with_other_rows_are_refused_by_name() {
        let runs = vec![
            run(
                "a",
                vec![
                    round("round 0", 50, 0.1, 5, 5),
                    round("round 1", 50, 0.1, 5, 5),
                ],
            ),
            run("b", vec![round("round 0", 50, 0.1, 5, 5)]),
        ];
        let err = markdown(&runs).unwrap_err().to_string();
        assert!(err.contains("b:") && err.contains("round 1"), "{err}");
        assert!(markdown(&[]).unwrap_err().to_string().contains("no runs"));
    }

    #[test]
    fn a_folder_without_a_report_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let err = load(dir.path()).unwrap_err().to_string();
        assert!(err.contains(&dir.path().display().to_string()), "{err}");
        std::fs::create_dir(dir.path().join("run")).unwrap();
        std::fs::write(dir.path().join("run/report.json"), b"{not json").unwrap();
        let err = load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("not a run report"), "{err}");
        let good = run("x", vec![round("round 0", 40, 0.2, 5, 5)]).report;
        std::fs::write(
            dir.path().join("run/report.json"),
            serde_json::to_vec(&good).unwrap(),
        )
        .unwrap();
        assert_eq!(load(dir.path()).unwrap().report, good);
    }
}
