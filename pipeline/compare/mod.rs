//! `evalwatch compare`: a candidate model against a baseline on the same prompts, with paired
//! statistics and a release gate.
//!
//! Reads: two files of plain records, or the captures of two models ([`input`]), matched by
//! prompt.
//! Writes: `compare/<id>/` in the warehouse, a scratch warehouse of its own (both sides as
//! `captures` of the models `baseline` and `candidate`, their `scores`, and the judge cache in its
//! `state/`, so re-running the same comparison pays for nothing twice), and
//! `reports/compare-<id>-<gates>/` (`index.html`, `summary.json`, `summary.md`, `pairs.parquet`, the
//! per-prompt table).
//! `<id>` is derived from the matched pairs, the rubric and the judge.
//! Never does: drop an unmatched prompt silently (counted and listed), or pass a gate whose
//! figure could not be computed.
//!
//! Judging goes through the score stage ([`crate::score::score`]): the same rubric, pinned judge,
//! cache, budget, pacing and retries as the nightly job. [`figures`] computes, [`gate`] decides.
//! `--pairwise` also judges every pair in both orders ([`pairwise`]).

pub mod figures;
pub mod gate;
pub mod html;
pub mod input;
pub mod pairwise;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use chrono::Utc;
use polars::prelude::*;
use serde::Serialize;

use crate::aws::AwsClients;
use crate::config::{Compression, JudgeSettings};
use crate::rubric::{CompositeRule, Rubric};
use crate::schema;
use crate::score::{ProgressMode, ScoreJob, ScoreSummary, score};
use crate::table::{read_key, utc_micros, write_parquet};
use crate::util::sha256_hex;
use crate::warehouse::{Warehouse, WarehouseError};

use figures::Pointwise;
use gate::{Gate, Verdict};

#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    #[error(transparent)]
    Input(#[from] input::InputError),
    #[error(transparent)]
    Warehouse(#[from] WarehouseError),
    #[error(transparent)]
    Score(#[from] crate::score::ScoreError),
    #[error(transparent)]
    Gate(#[from] gate::GateError),
    #[error(transparent)]
    Part(#[from] crate::table::PartError),
    #[error(
        "no prompt is in both sides ({baseline} baseline, {candidate} candidate records): nothing to compare"
    )]
    NoPairs { baseline: usize, candidate: usize },
    /// The gate asks for a calibrated judge and this one is not, or not enough.
    #[error(
        "the judge `{judge}` is not trusted on `{dimension}` for this gate: {found} (needs a \
         quadratic kappa of at least {needed} with people's labels)"
    )]
    JudgeNotCalibrated {
        judge: String,
        dimension: String,
        found: String,
        needed: f64,
    },
    #[error("cannot set up the judge: {0}")]
    Judge(String),
    #[error("cannot write `{what}`: {message}")]
    Write { what: String, message: String },
}

/// Where the two sides' replies come from.
#[derive(Debug, Clone)]
pub enum Sides {
    /// Two files of records.
    Files {
        baseline: PathBuf,
        candidate: PathBuf,
    },
    /// Two models of the warehouse's captures (a shadow variant, two components that received
    /// the same traffic), on the days of `window`.
    Models {
        baseline: String,
        candidate: String,
        window: crate::config::DateRange,
    },
}

/// What to compare.
#[derive(Debug, Clone)]
pub struct CompareJob {
    pub sides: Sides,
    pub rubric: Rubric,
    pub judge: JudgeSettings,
    pub budget_usd: Option<f64>,
    pub compression: Compression,
    pub gates: Vec<Gate>,
    pub progress: ProgressMode,
    /// Also judge every pair in both orders against this (pairwise) rubric.
    pub pairwise: Option<Rubric>,
    /// The least quadratic kappa with people's labels the judge must have on every gated
    /// dimension (`[compare] min-judge-kappa`, `--min-judge-kappa`).
    pub min_judge_kappa: Option<f64>,
}

/// Bootstrap resamples and seed of the paired intervals (fixed: a comparison is reproducible).
pub const RESAMPLES: usize = 2000;
pub const SEED: u64 = 0x00C0_FFEE;

/// One side's operational figures from its records.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Operational {
    pub response_chars_mean: f64,
    pub latency_ms_mean: Option<f64>,
    pub cost_usd_mean: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CompareSummary {
    pub id: String,
    pub baseline: String,
    pub candidate: String,
    pub rubric: String,
    pub judge: String,
    pub matched: usize,
    pub unmatched_baseline: usize,
    pub unmatched_candidate: usize,
    /// The first unmatched prompts of each side (id, or the prompt's first 80 characters).
    pub unmatched_examples: Vec<String>,
    pub rejected_lines: Vec<String>,
    pub duplicate_prompts: usize,
    /// Pairs left out because a side's judgment failed (judge error or budget).
    pub unscored_pairs: usize,
    /// Per dimension and `composite`.
    pub pointwise: BTreeMap<String, Pointwise>,
    /// With `--pairwise`: win/tie/loss in both orders.
    pub pairwise: Option<figures::Pairwise>,
    pub pairwise_run: Option<pairwise::PairwiseRun>,
    pub baseline_side: Operational,
    pub candidate_side: Operational,
    /// Every figure a gate can name, `<group>.<name>`.
    pub figures: BTreeMap<String, Option<f64>>,
    pub gates: Vec<Verdict>,
    pub passed: bool,
    pub judge_calls: u64,
    pub judge_cost_usd: Option<f64>,
    /// Time spent judging (both stages) and computing the figures.
    pub judge_seconds: f64,
    pub figures_seconds: f64,
    pub index: String,
    pub summary_json: String,
    pub summary_md: String,
    pub pairs_parquet: String,
}

const SIDES: [&str; 2] = ["baseline", "candidate"];

/// Runs a comparison.
pub async fn compare(
    job: CompareJob,
    warehouse: &Warehouse,
    aws: &AwsClients,
) -> Result<CompareSummary, CompareError> {
    let (baseline, candidate, names) = match &job.sides {
        Sides::Files {
            baseline,
            candidate,
        } => (
            input::read(baseline)?,
            input::read(candidate)?,
            (
                baseline.display().to_string(),
                candidate.display().to_string(),
            ),
        ),
        Sides::Models {
            baseline,
            candidate,
            window,
        } => (
            input::from_warehouse(warehouse, baseline, *window).await?,
            input::from_warehouse(warehouse, candidate, *window).await?,
            (
                format!("model {baseline}, {window}"),
                format!("model {candidate}, {window}"),
            ),
        ),
    };
    check_judge_calibration(&job, warehouse).await?;
    let left: BTreeSet<&String> = baseline.records.keys().collect();
    let right: BTreeSet<&String> = candidate.records.keys().collect();
    let matched: Vec<String> = left.intersection(&right).map(|k| (*k).clone()).collect();
    if matched.is_empty() {
        return Err(CompareError::NoPairs {
            baseline: baseline.records.len(),
            candidate: candidate.records.len(),
        });
    }
    let describe = |r: &input::Record| {
        r.id.clone()
            .unwrap_or_else(|| crate::util::truncate_utf8(&r.prompt, 80).to_string())
    };
    let mut unmatched_examples: Vec<String> = Vec::new();
    for (side, records, other) in [
        ("baseline", &baseline.records, &right),
        ("candidate", &candidate.records, &left),
    ] {
        for (key, r) in records {
            if !other.contains(key) && unmatched_examples.len() < 20 {
                unmatched_examples.push(format!("{side}: {}", describe(r)));
            }
        }
    }
    let judge_id = crate::judge::id_of(&job.judge);
    let mut identity = format!("{}\0{}", job.rubric.hash(), judge_id);
    for key in &matched {
        identity.push_str(&format!(
            "\0{key}\0{}\0{}",
            sha256_hex(baseline.records[key].response.as_bytes()),
            sha256_hex(candidate.records[key].response.as_bytes())
        ));
    }
    let id = sha256_hex(identity.as_bytes())[..12].to_string();
    let scratch = warehouse.sub(&format!("compare/{id}"));

    // Both sides as captures of the scratch warehouse (tables replaced, the cache kept).
    for table in ["captures/", "scores/"] {
        for key in scratch.list(table).await? {
            scratch.delete(&key).await?;
        }
    }
    let today = Utc::now().date_naive();
    let now = Utc::now().timestamp_micros();
    for (side, records) in SIDES.iter().zip([&baseline.records, &candidate.records]) {
        let rows: Vec<&input::Record> = matched.iter().map(|k| &records[k]).collect();
        let n = rows.len();
        let mut df = DataFrame::new(
            n,
            vec![
                Column::new(schema::captures::REQUEST_ID.into(), matched.clone()),
                Column::new(
                    schema::captures::CONTENT_HASH.into(),
                    rows.iter()
                        .map(|r| crate::ingest::decode::content_hash(&r.prompt, &r.response))
                        .collect::<Vec<_>>(),
                ),
                utc_micros(schema::captures::CAPTURED_AT, vec![now; n]),
                Column::new(
                    schema::captures::PROMPT.into(),
                    rows.iter().map(|r| r.prompt.as_str()).collect::<Vec<_>>(),
                ),
                Column::new(
                    schema::captures::RESPONSE.into(),
                    rows.iter().map(|r| r.response.as_str()).collect::<Vec<_>>(),
                ),
            ],
        )
        .and_then(|mut df| write_parquet(&mut df, job.compression))
        .map_err(|e| CompareError::Write {
            what: format!("{side} captures"),
            message: e.to_string(),
        })?;
        scratch
            .put(
                &format!("captures/model={side}/date={today}/part-{id}.parquet"),
                std::mem::take(&mut df),
            )
            .await?;
    }

    // Judge both with the score stage: every pair (no sampling), the configured budget.
    let judging = std::time::Instant::now();
    let scored: ScoreSummary = score(
        ScoreJob::scratch(
            job.rubric.clone(),
            job.judge.clone(),
            job.budget_usd,
            job.compression,
            job.progress,
        ),
        &scratch,
        aws,
    )
    .await?;

    // Per side: prompt -> dimension -> score, for the prompts scored ok on every dimension.
    let mut per_side: Vec<BTreeMap<String, BTreeMap<String, f64>>> = Vec::new();
    for side in SIDES {
        let prefix = format!("scores/rubric={}/model={side}/", job.rubric.key());
        let mut scores: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
        let keys = scratch.list(&prefix).await?;
        for key in crate::score::current::current_parts(&scratch, &keys, &judge_id).await? {
            let columns = [
                (schema::scores::REQUEST_ID, DataType::String),
                (schema::scores::DIMENSION, DataType::String),
                (schema::scores::SCORE, DataType::Float64),
                (schema::scores::STATUS, DataType::String),
            ];
            let Some(df) = read_key(&scratch, &key, &columns).await? else {
                continue;
            };
            let col = |n: &str| df.column(n).ok().and_then(|c| c.str().ok().cloned());
            let (Some(ids), Some(dims), Some(status)) = (
                col(schema::scores::REQUEST_ID),
                col(schema::scores::DIMENSION),
                col(schema::scores::STATUS),
            ) else {
                continue;
            };
            let values = df
                .column(schema::scores::SCORE)
                .ok()
                .and_then(|c| c.f64().ok().cloned());
            for i in 0..df.height() {
                let value = values.as_ref().and_then(|v| v.get(i));
                if let (Some(schema::status::OK), Some(id), Some(dim), Some(v)) =
                    (status.get(i), ids.get(i), dims.get(i), value)
                {
                    scores
                        .entry(id.to_string())
                        .or_default()
                        .insert(dim.to_string(), v);
                }
            }
        }
        let wanted = job.rubric.dimensions.len();
        scores.retain(|_, dims| dims.len() == wanted);
        per_side.push(scores);
    }
    let composite = |dims: &BTreeMap<String, f64>| match job.rubric.composite {
        CompositeRule::WeightedMean => job
            .rubric
            .dimensions
            .iter()
            .map(|d| d.weight * dims.get(&d.name).copied().unwrap_or(0.0))
            .sum(),
        CompositeRule::Min => dims.values().copied().fold(f64::INFINITY, f64::min),
    };
    let pairs: Vec<&String> = matched
        .iter()
        .filter(|k| per_side[0].contains_key(*k) && per_side[1].contains_key(*k))
        .collect();
    let mut judge_seconds = judging.elapsed().as_secs_f64();
    let computing = std::time::Instant::now();
    let mut metrics: Vec<String> = job
        .rubric
        .dimensions
        .iter()
        .map(|d| d.name.clone())
        .collect();
    metrics.push("composite".into());
    let mut pointwise = BTreeMap::new();
    let value_of = |side: usize, key: &String, metric: &str| -> f64 {
        let dims = &per_side[side][key];
        if metric == "composite" {
            composite(dims)
        } else {
            dims.get(metric).copied().unwrap_or(f64::NAN)
        }
    };
    for metric in &metrics {
        let b: Vec<f64> = pairs.iter().map(|k| value_of(0, k, metric)).collect();
        let c: Vec<f64> = pairs.iter().map(|k| value_of(1, k, metric)).collect();
        pointwise.insert(metric.clone(), figures::pointwise(&b, &c, RESAMPLES, SEED));
    }

    // The operational side, from the records themselves.
    let operational = |records: &BTreeMap<String, input::Record>| {
        let rows: Vec<&input::Record> = matched.iter().map(|k| &records[k]).collect();
        let mean_of = |f: &dyn Fn(&input::Record) -> Option<f64>| {
            let v: Vec<f64> = rows.iter().filter_map(|r| f(r)).collect();
            (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
        };
        Operational {
            response_chars_mean: mean_of(&|r| Some(r.response.chars().count() as f64))
                .unwrap_or(f64::NAN),
            latency_ms_mean: mean_of(&|r| r.latency_ms),
            cost_usd_mean: mean_of(&|r| r.cost_usd),
        }
    };
    let (mut ob, mut oc) = (
        operational(&baseline.records),
        operational(&candidate.records),
    );
    // Models of the warehouse: the hardware cost per request from the analysed aggregates
    // (telemetry x prices), when the records carry none.
    if let Sides::Models {
        baseline,
        candidate,
        window,
    } = &job.sides
    {
        for (side, model) in [(&mut ob, baseline), (&mut oc, candidate)] {
            if side.cost_usd_mean.is_none() {
                side.cost_usd_mean =
                    cost_per_request(warehouse, &job.rubric, &judge_id, model, *window).await?;
            }
        }
    }
    let mut figures_seconds = computing.elapsed().as_secs_f64();
    // Pairwise, both orders, on every matched prompt.
    let (pairwise_figures, pairwise_run) = match &job.pairwise {
        Some(rubric) => {
            let items: Vec<pairwise::Item> = matched
                .iter()
                .map(|k| pairwise::Item {
                    prompt: baseline.records[k].prompt.clone(),
                    baseline: baseline.records[k].response.clone(),
                    candidate: candidate.records[k].response.clone(),
                })
                .collect();
            let left = job
                .budget_usd
                .map(|b| (b - scored.cost_usd.unwrap_or(0.0)).max(0.0));
            let judging = std::time::Instant::now();
            let run = pairwise::judge_both_orders(&scratch, rubric, &job.judge, aws, &items, left)
                .await?;
            judge_seconds += judging.elapsed().as_secs_f64();
            let computing = std::time::Instant::now();
            let lengths: Vec<f64> = items
                .iter()
                .map(|i| i.candidate.chars().count() as f64 - i.baseline.chars().count() as f64)
                .collect();
            let figures = figures::pairwise(&run.outcomes, &lengths);
            figures_seconds += computing.elapsed().as_secs_f64();
            (Some(figures), Some(run))
        }
        None => (None, None),
    };
    let mut named = figures::named(&pointwise, pairwise_figures.as_ref());
    let pair = |b: Option<f64>, c: Option<f64>| match (b, c) {
        (Some(b), Some(c)) => (Some(c - b), (b != 0.0).then(|| c / b)),
        _ => (None, None),
    };
    for (group, b, c) in [
        (
            "length",
            Some(ob.response_chars_mean),
            Some(oc.response_chars_mean),
        ),
        ("latency", ob.latency_ms_mean, oc.latency_ms_mean),
        ("cost", ob.cost_usd_mean, oc.cost_usd_mean),
    ] {
        let (delta, ratio) = pair(b, c);
        named.insert(format!("{group}.delta"), delta);
        named.insert(format!("{group}.ratio"), ratio);
    }
    named.insert("pairs.matched".into(), Some(matched.len() as f64));
    named.insert("pairs.scored".into(), Some(pairs.len() as f64));
    let verdicts = gate::check(&job.gates, &named)?;
    let passed = verdicts.iter().all(|v| v.passed);

    // A page per comparison and set of gates (and pairwise or not): re-running a comparison
    // with other gates writes a new page beside the first, never over it.
    let gates: Vec<&str> = job.gates.iter().map(|g| g.text.as_str()).collect();
    let variant = format!("{}\0{}", gates.join("\0"), job.pairwise.is_some());
    let folder = format!(
        "reports/compare-{id}-{}",
        &sha256_hex(variant.as_bytes())[..6]
    );
    let mut summary = CompareSummary {
        id: id.clone(),
        baseline: names.0.clone(),
        candidate: names.1.clone(),
        rubric: job.rubric.key(),
        judge: judge_id,
        matched: matched.len(),
        unmatched_baseline: baseline.records.len() - matched.len(),
        unmatched_candidate: candidate.records.len() - matched.len(),
        unmatched_examples,
        rejected_lines: baseline
            .rejected
            .iter()
            .chain(&candidate.rejected)
            .cloned()
            .collect(),
        duplicate_prompts: baseline.duplicates + candidate.duplicates,
        unscored_pairs: matched.len() - pairs.len(),
        pointwise,
        pairwise: pairwise_figures,
        judge_calls: scored.calls + pairwise_run.as_ref().map_or(0, |r| r.calls),
        judge_cost_usd: match (scored.cost_usd, &pairwise_run) {
            (Some(a), Some(r)) => Some(a + r.cost_usd),
            (a, _) => a,
        },
        pairwise_run,
        judge_seconds,
        figures_seconds,
        baseline_side: ob,
        candidate_side: oc,
        figures: named,
        gates: verdicts,
        passed,
        index: warehouse.uri(&format!("{folder}/index.html")),
        summary_json: warehouse.uri(&format!("{folder}/summary.json")),
        summary_md: warehouse.uri(&format!("{folder}/summary.md")),
        pairs_parquet: warehouse.uri(&format!("{folder}/pairs.parquet")),
    };

    // The per-prompt table for analysts.
    let mut columns = vec![Column::new(
        "prompt_hash".into(),
        pairs.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
    )];
    columns.push(Column::new(
        "id".into(),
        pairs
            .iter()
            .map(|k| baseline.records[*k].id.clone())
            .collect::<Vec<_>>(),
    ));
    for metric in &metrics {
        for (side, name) in [(0, "baseline"), (1, "candidate")] {
            columns.push(Column::new(
                format!("{name}_{metric}").into(),
                pairs
                    .iter()
                    .map(|k| value_of(side, k, metric))
                    .collect::<Vec<_>>(),
            ));
        }
    }
    for (name, records) in [
        ("baseline", &baseline.records),
        ("candidate", &candidate.records),
    ] {
        columns.push(Column::new(
            format!("{name}_response_chars").into(),
            pairs
                .iter()
                .map(|k| records[*k].response.chars().count() as i64)
                .collect::<Vec<_>>(),
        ));
    }
    let table = DataFrame::new(pairs.len(), columns)
        .and_then(|mut df| write_parquet(&mut df, job.compression))
        .map_err(|e| CompareError::Write {
            what: "pairs.parquet".into(),
            message: e.to_string(),
        })?;
    warehouse
        .put(&format!("{folder}/pairs.parquet"), table)
        .await?;
    warehouse
        .put(
            &format!("{folder}/summary.md"),
            markdown(&summary).into_bytes(),
        )
        .await?;
    warehouse
        .put(
            &format!("{folder}/index.html"),
            html::page(&summary).into_bytes(),
        )
        .await?;
    let json = serde_json::to_vec_pretty(&summary).unwrap_or_default();
    warehouse
        .put(&format!("{folder}/summary.json"), json)
        .await?;
    summary.rejected_lines.truncate(20);
    Ok(summary)
}

/// A model's hardware cost per request over `window`, from the daily aggregates the analyse
/// stage wrote (cost over the endpoint's invocations, or over the captured requests without
/// them); `None` without cost figures.
async fn cost_per_request(
    warehouse: &Warehouse,
    rubric: &Rubric,
    judge: &str,
    model: &str,
    window: crate::config::DateRange,
) -> Result<Option<f64>, CompareError> {
    let name = crate::analyse::part_name(rubric, judge, 1);
    let (mut cost, mut requests) = (0.0, 0.0);
    let mut day = window.since;
    while day <= window.until {
        let key = crate::analyse::aggregates_key(&name, day);
        let columns = [
            (schema::aggregates::MODEL, DataType::String),
            (schema::aggregates::COST_USD, DataType::Float64),
            (schema::aggregates::INVOCATIONS, DataType::Float64),
            (schema::aggregates::REQUESTS, DataType::Float64),
        ];
        if let Some(df) = read_key(warehouse, &key, &columns).await? {
            let models = df
                .column(schema::aggregates::MODEL)
                .ok()
                .and_then(|c| c.str().ok().cloned());
            let number = |n: &str, i: usize| {
                df.column(n)
                    .ok()
                    .and_then(|c| c.f64().ok().and_then(|v| v.get(i)))
            };
            for i in 0..df.height() {
                if models.as_ref().and_then(|m| m.get(i)) != Some(model) {
                    continue;
                }
                if let Some(c) = number(schema::aggregates::COST_USD, i) {
                    cost += c;
                    requests += number(schema::aggregates::INVOCATIONS, i)
                        .or_else(|| number(schema::aggregates::REQUESTS, i))
                        .unwrap_or(0.0);
                }
            }
        }
        day = day
            .succ_opt()
            .unwrap_or(window.until + chrono::Days::new(1));
    }
    Ok((requests > 0.0).then(|| cost / requests))
}

/// With `min_judge_kappa`: every dimension a gate reads (all of them for `composite`) must have
/// a calibration of this rubric hash and judge at or above it; a gate on a `pairwise.` figure
/// reads the pairwise rubric's, calibrated on people's preferences.
async fn check_judge_calibration(
    job: &CompareJob,
    warehouse: &Warehouse,
) -> Result<(), CompareError> {
    let Some(needed) = job.min_judge_kappa else {
        return Ok(());
    };
    let judge = crate::judge::id_of(&job.judge);
    // (on the pairwise rubric, dimension)
    let mut gated: BTreeSet<(bool, String)> = BTreeSet::new();
    for gate in &job.gates {
        let metric = gate.figure.split('.').next().unwrap_or_default();
        if metric == "composite" {
            gated.extend(
                job.rubric
                    .dimensions
                    .iter()
                    .map(|d| (false, d.name.clone())),
            );
        } else if job.rubric.dimensions.iter().any(|d| d.name == metric) {
            gated.insert((false, metric.to_string()));
        } else if let (Some(pairwise), "pairwise") = (&job.pairwise, metric) {
            gated.extend(pairwise.dimensions.first().map(|d| (true, d.name.clone())));
        }
    }
    for (on_pairwise, dimension) in gated {
        let rubric = match (on_pairwise, &job.pairwise) {
            (true, Some(pairwise)) => pairwise,
            _ => &job.rubric,
        };
        let calibration = crate::report::calibration(warehouse, rubric, &judge)
            .await
            .map_err(|e| CompareError::Judge(e.to_string()))?;
        let found = match calibration.get(&dimension) {
            None => "not calibrated (`evalwatch calibrate --labels FILE`)".to_string(),
            Some(c) if c.kappa_quadratic.is_some_and(|k| k >= needed) => continue,
            Some(c) => c.to_string(),
        };
        return Err(CompareError::JudgeNotCalibrated {
            judge,
            dimension,
            found,
            needed,
        });
    }
    Ok(())
}

/// The comparison in a few lines, for a ticket or a release note.
pub fn markdown(s: &CompareSummary) -> String {
    use crate::report::html::md_code;
    let mut out = format!(
        "**evalwatch compare: {}** ({} pairs, rubric {}, judge {})\n\n",
        if s.passed {
            "gate passed"
        } else {
            "GATE FAILED"
        },
        s.matched,
        md_code(&s.rubric),
        md_code(&s.judge)
    );
    out.push_str("| metric | baseline | candidate | delta (95% CI) | Wilcoxon p | worse |\n");
    out.push_str("|---|---|---|---|---|---|\n");
    for (metric, p) in &s.pointwise {
        out.push_str(&format!(
            "| {metric} | {:.3} | {:.3} | {:+.3} ({:+.3}, {:+.3}) | {:.2e} | {:.1}% |\n",
            p.baseline_mean,
            p.candidate_mean,
            p.delta,
            p.ci_low,
            p.ci_high,
            p.p_value,
            100.0 * p.worse_share
        ));
    }
    if let Some(p) = &s.pairwise {
        out.push_str(&format!(
            "\nPairwise, both orders: candidate wins {}, ties {}, loses {} of {}; win rate {:.3} \
             (95% {:.3}-{:.3}), length-controlled {:.3}; position inconsistency {:.1}%.\n",
            p.wins,
            p.ties,
            p.losses,
            p.n,
            p.win_rate,
            p.win_rate_lower,
            p.win_rate_upper,
            p.length_controlled_win_rate,
            100.0 * p.position_inconsistency
        ));
    }
    out.push('\n');
    for v in &s.gates {
        out.push_str(&format!(
            "- {} {} (actual {})\n",
            if v.passed { "pass" } else { "FAIL" },
            md_code(&v.gate),
            v.actual.map_or("n/a".to_string(), |a| format!("{a:.4}"))
        ));
    }
    out.push_str(&format!(
        "\n{} unmatched baseline and {} unmatched candidate prompts, {} pairs not scored.\n",
        s.unmatched_baseline, s.unmatched_candidate, s.unscored_pairs
    ));
    out
}
