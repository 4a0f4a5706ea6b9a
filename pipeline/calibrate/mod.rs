//! `evalwatch calibrate`: how well the pinned judge agrees with people's labels, per rubric
//! dimension, with intervals.
//!
//! Reads: a labels file ([`labels`]); the `captures/` of labelled request ids; the judge cache.
//! Writes: `calibrations/<id>/` (a scratch warehouse: the labelled items as captures of the model
//! `labelled`, their scores, the judge cache, `summary.json`, `summary.md`); the `calibration/`
//! table, one part per rubric version and judge
//! (`calibration/rubric=<id>@<version>/part-<judge hash>.parquet`), one row per dimension.
//! Never does: guess a label (bad rows are named and left out), or count a failed judgment as
//! a level.
//!
//! The judge judges every labelled item through the score stage (cache, budget, pacing, retries;
//! items judged before by the same judge and rubric version cost nothing). The reference of an
//! item is its raters' majority label (a tie goes to the lower level); with several raters their
//! own agreement (Krippendorff's alpha) is the human ceiling. The statistics are
//! [`crate::agreement`]'s, each checked against the library people use.

pub mod labels;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use chrono::Utc;
use polars::prelude::*;
use serde::Serialize;

use crate::agreement::{self, Weights};
use crate::aws::AwsClients;
use crate::config::{Compression, JudgeSettings};
use crate::rubric::Rubric;
use crate::schema;
use crate::score::{ProgressMode, ScoreJob, score};
use crate::table::{read_key, text_constant, utc_micros, write_parquet};
use crate::util::sha256_hex;
use crate::warehouse::{Warehouse, WarehouseError};

use labels::{Item, Label};

/// Bootstrap draws per interval, and their seed ([`agreement::bootstrap_interval`]).
pub const RESAMPLES: usize = 1000;
pub const SEED: u64 = 20_261_129;

#[derive(Debug, thiserror::Error)]
pub enum CalibrateError {
    #[error(transparent)]
    Labels(#[from] labels::LabelsError),
    #[error(transparent)]
    Warehouse(#[from] WarehouseError),
    #[error(transparent)]
    Part(#[from] crate::table::PartError),
    #[error(transparent)]
    Score(#[from] crate::score::ScoreError),
    #[error("cannot write {what}: {message}")]
    Write { what: String, message: String },
    #[error("no label of `{path}` can be used ({rejected} rows left out); the first: {first}")]
    NothingUsable {
        path: PathBuf,
        rejected: usize,
        first: String,
    },
}

/// What to calibrate.
#[derive(Debug, Clone)]
pub struct CalibrateJob {
    pub labels: PathBuf,
    pub rubric: Rubric,
    pub judge: JudgeSettings,
    pub budget_usd: Option<f64>,
    pub compression: Compression,
    pub progress: ProgressMode,
    /// Passes of the judge over the items (1: no test-retest figure).
    pub repeat: u32,
}

/// A figure with its bootstrap 95% interval.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Estimate {
    pub value: Option<f64>,
    pub low: Option<f64>,
    pub high: Option<f64>,
}

/// The agreement of the judge with the labels on one dimension.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DimensionFigures {
    /// Items with both a reference label and an `ok` judgment.
    pub n: usize,
    pub kappa_unweighted: Estimate,
    pub kappa_linear: Estimate,
    pub kappa_quadratic: Estimate,
    /// Krippendorff's alpha (ordinal) of the judge and the reference as two raters.
    pub alpha_ordinal: Estimate,
    pub spearman: Estimate,
    pub accuracy: Estimate,
    /// The accuracy of always answering the reference's most common level.
    pub majority_baseline: Option<f64>,
    /// Binary scales: how well the judge's level ranks the positive (highest) label.
    pub roc_auc: Option<f64>,
    /// The raters' own agreement (Krippendorff's alpha, ordinal) where items have several.
    pub raters_alpha: Option<f64>,
    /// With `--repeat`: the quadratic kappa of the judge's first pass against each later one
    /// (pairs pooled): its own noise.
    pub test_retest_kappa: Option<Estimate>,
    /// The scale's levels, and the confusion matrix over them (rows: reference, columns: judge).
    pub levels: Vec<i64>,
    pub confusion: Vec<Vec<u64>>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CalibrateSummary {
    pub id: String,
    pub labels_file: String,
    pub rubric: String,
    pub rubric_hash: String,
    pub judge: String,
    /// Distinct items labelled (usable rows), and the rows.
    pub items: usize,
    pub labels: usize,
    pub raters: usize,
    /// Rows left out, and the first few of them as `file:line: reason`.
    pub rejected: usize,
    pub rejected_examples: Vec<String>,
    /// Items whose judgment failed (no level to compare).
    pub judge_failed: usize,
    pub judge_calls: u64,
    pub judge_cost_usd: Option<f64>,
    pub dimensions: BTreeMap<String, DimensionFigures>,
    /// A jury's members, each against the same labels: member id -> dimension -> figures.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub members: BTreeMap<String, BTreeMap<String, DimensionFigures>>,
    /// Where the figures were written.
    pub table_part: String,
    pub summary_md: String,
    pub index: String,
}

/// One rater's label (the rater, when the file names one).
type RaterLabel = (Option<String>, i64);

/// Checks labels against the rubric; a label on no dimension of it, or off its scale, is left
/// out with the reason.
fn check(labels: Vec<Label>, rubric: &Rubric, rejected: &mut Vec<String>) -> Vec<Label> {
    let names: Vec<&str> = rubric.dimensions.iter().map(|d| d.name.as_str()).collect();
    labels
        .into_iter()
        .filter(|l| {
            let Some(d) = rubric.dimensions.iter().find(|d| d.name == l.dimension) else {
                rejected.push(format!(
                    "{}: dimension `{}` is not in rubric {} ({})",
                    l.at,
                    l.dimension,
                    rubric.key(),
                    names.join(", ")
                ));
                return false;
            };
            let levels = d.scale.levels();
            let ok = u32::try_from(l.label).is_ok_and(|v| levels.contains(&v));
            if !ok {
                rejected.push(format!(
                    "{}: label {} is not a level of `{}` ({:?})",
                    l.at, l.label, d.name, levels
                ));
            }
            ok
        })
        .collect()
}

/// The prompt and reply of every labelled capture, from `captures/`.
async fn capture_texts(
    warehouse: &Warehouse,
    wanted: &BTreeSet<String>,
) -> Result<BTreeMap<String, (String, String)>, CalibrateError> {
    let mut found = BTreeMap::new();
    if wanted.is_empty() {
        return Ok(found);
    }
    let columns = [
        (schema::captures::REQUEST_ID, DataType::String),
        (schema::captures::PROMPT, DataType::String),
        (schema::captures::RESPONSE, DataType::String),
    ];
    for key in warehouse
        .list(&format!("{}/", schema::captures::TABLE))
        .await?
    {
        let Some(df) = read_key(warehouse, &key, &columns).await? else {
            continue;
        };
        let col = |n: &str| df.column(n).ok().and_then(|c| c.str().ok().cloned());
        let (Some(ids), Some(prompts), Some(responses)) = (
            col(schema::captures::REQUEST_ID),
            col(schema::captures::PROMPT),
            col(schema::captures::RESPONSE),
        ) else {
            continue;
        };
        for i in 0..df.height() {
            if let (Some(id), Some(p), Some(r)) = (ids.get(i), prompts.get(i), responses.get(i))
                && wanted.contains(id)
            {
                found
                    .entry(id.to_string())
                    .or_insert_with(|| (p.to_string(), r.to_string()));
            }
        }
    }
    Ok(found)
}

/// The raters' majority, a tie going to the lower level.
fn majority(labels: &[i64]) -> i64 {
    let mut counts: BTreeMap<i64, usize> = BTreeMap::new();
    for l in labels {
        *counts.entry(*l).or_default() += 1;
    }
    let most = counts.values().copied().max().unwrap_or(0);
    counts
        .into_iter()
        .find(|(_, c)| *c == most)
        .map_or(0, |(l, _)| l)
}

fn estimate(n: usize, statistic: impl Fn(&[usize]) -> Option<f64>, all: &[usize]) -> Estimate {
    let value = statistic(all);
    let interval = agreement::bootstrap_interval(n, RESAMPLES, SEED, 0.95, &statistic);
    Estimate {
        value,
        low: interval.map(|i| i.0),
        high: interval.map(|i| i.1),
    }
}

/// The figures of one dimension from (reference, judge) level pairs.
fn figures(pairs: &[(i64, i64)], levels: &[i64], binary: bool) -> DimensionFigures {
    let n = pairs.len();
    let all: Vec<usize> = (0..n).collect();
    let pick = |idx: &[usize]| -> (Vec<i64>, Vec<i64>) { idx.iter().map(|&i| pairs[i]).unzip() };
    let kappa = |weights: Weights| {
        move |idx: &[usize]| {
            let (r, j) = pick(idx);
            agreement::cohen_kappa(&r, &j, Some(levels), weights)
        }
    };
    let alpha = |idx: &[usize]| {
        let units: Vec<Vec<Option<i64>>> = idx
            .iter()
            .map(|&i| vec![Some(pairs[i].0), Some(pairs[i].1)])
            .collect();
        agreement::krippendorff_alpha_ordinal(&units)
    };
    let spearman = |idx: &[usize]| {
        let (r, j) = pick(idx);
        let f = |v: Vec<i64>| v.into_iter().map(|x| x as f64).collect::<Vec<_>>();
        agreement::spearman(&f(r), &f(j))
    };
    let accuracy = |idx: &[usize]| {
        let (r, j) = pick(idx);
        agreement::accuracy(&r, &j)
    };
    let (reference, judged): (Vec<i64>, Vec<i64>) = pairs.iter().copied().unzip();
    let top = levels.last().copied().unwrap_or(1);
    DimensionFigures {
        n,
        kappa_unweighted: estimate(n, kappa(Weights::Unweighted), &all),
        kappa_linear: estimate(n, kappa(Weights::Linear), &all),
        kappa_quadratic: estimate(n, kappa(Weights::Quadratic), &all),
        alpha_ordinal: estimate(n, alpha, &all),
        spearman: estimate(n, spearman, &all),
        accuracy: estimate(n, accuracy, &all),
        majority_baseline: agreement::majority_share(&reference),
        roc_auc: binary
            .then(|| {
                let positive: Vec<bool> = reference.iter().map(|r| *r == top).collect();
                let scores: Vec<f64> = judged.iter().map(|j| *j as f64).collect();
                agreement::roc_auc(&positive, &scores)
            })
            .flatten(),
        raters_alpha: None,
        test_retest_kappa: None,
        levels: levels.to_vec(),
        confusion: agreement::confusion(&reference, &judged, levels),
    }
}

/// (reference, judge) levels of one dimension: the raters' majority and the judge's level, for
/// the items that have both.
fn reference_pairs(
    given: &BTreeMap<(String, String), Vec<RaterLabel>>,
    judged: &BTreeMap<(String, String), i64>,
    dimension: &str,
) -> Vec<(i64, i64)> {
    given
        .iter()
        .filter(|((_, d), _)| d == dimension)
        .filter_map(|(key, labels)| {
            let values: Vec<i64> = labels.iter().map(|(_, l)| *l).collect();
            judged.get(key).map(|level| (majority(&values), *level))
        })
        .collect()
}

/// Runs a calibration.
pub async fn calibrate(
    job: CalibrateJob,
    warehouse: &Warehouse,
    aws: &AwsClients,
) -> Result<CalibrateSummary, CalibrateError> {
    let read = labels::read(&job.labels)?;
    let mut rejected = read.rejected;
    let usable = check(read.labels, &job.rubric, &mut rejected);

    // The items: labelled captures looked up in the warehouse, texts as given.
    let wanted: BTreeSet<String> = usable
        .iter()
        .filter_map(|l| match &l.item {
            Item::Capture(id) => Some(id.clone()),
            Item::Text { .. } => None,
        })
        .collect();
    let texts = capture_texts(warehouse, &wanted).await?;
    // Item key (the content hash) -> (prompt, response); (item, dimension) -> (rater, label)s.
    let mut items: BTreeMap<String, (String, String)> = BTreeMap::new();
    let mut given: BTreeMap<(String, String), Vec<RaterLabel>> = BTreeMap::new();
    for l in &usable {
        let (prompt, response) = match &l.item {
            Item::Text { prompt, response } => (prompt.clone(), response.clone()),
            Item::Capture(id) => match texts.get(id) {
                Some(t) => t.clone(),
                None => {
                    rejected.push(format!(
                        "{}: request_id `{id}` is not among the warehouse's captures",
                        l.at
                    ));
                    continue;
                }
            },
        };
        let key = crate::ingest::decode::content_hash(&prompt, &response);
        items.entry(key.clone()).or_insert((prompt, response));
        given
            .entry((key, l.dimension.clone()))
            .or_default()
            .push((l.rater.clone(), l.label));
    }
    if items.is_empty() {
        return Err(CalibrateError::NothingUsable {
            path: job.labels.clone(),
            rejected: rejected.len(),
            first: rejected.first().cloned().unwrap_or_default(),
        });
    }

    // Judge them in a scratch warehouse, through the score stage.
    let judge_id = crate::judge::id_of(&job.judge);
    let mut identity = format!("{}\0{}", job.rubric.hash(), judge_id);
    for key in items.keys() {
        identity.push('\0');
        identity.push_str(key);
    }
    let id = sha256_hex(identity.as_bytes())[..12].to_string();
    let scratch = warehouse.sub(&format!("calibrations/{id}"));
    for table in [schema::captures::TABLE, schema::scores::TABLE] {
        for key in scratch.list(&format!("{table}/")).await? {
            scratch.delete(&key).await?;
        }
    }
    let today = Utc::now().date_naive();
    let n = items.len();
    let keys: Vec<String> = items.keys().cloned().collect();
    let df = DataFrame::new(
        n,
        vec![
            Column::new(schema::captures::REQUEST_ID.into(), keys.clone()),
            Column::new(schema::captures::CONTENT_HASH.into(), keys.clone()),
            utc_micros(
                schema::captures::CAPTURED_AT,
                vec![Utc::now().timestamp_micros(); n],
            ),
            Column::new(
                schema::captures::PROMPT.into(),
                items.values().map(|(p, _)| p.as_str()).collect::<Vec<_>>(),
            ),
            Column::new(
                schema::captures::RESPONSE.into(),
                items.values().map(|(_, r)| r.as_str()).collect::<Vec<_>>(),
            ),
        ],
    )
    .and_then(|mut df| write_parquet(&mut df, job.compression))
    .map_err(|e| CalibrateError::Write {
        what: "the labelled items".into(),
        message: e.to_string(),
    })?;
    let (scored, judged, failed) = judge_items(
        &job,
        &scratch,
        &df,
        &format!("{today}/part-{id}"),
        &judge_id,
        aws,
    )
    .await?;
    let mut calls = scored.calls;
    // Further passes, each in its own scratch warehouse (its own cache: the judge is asked again).
    let mut retests: Vec<BTreeMap<(String, String), i64>> = Vec::new();
    for pass in 1..job.repeat {
        let again = scratch.sub(&format!("repeat-{pass}"));
        for key in again.list(&format!("{}/", schema::scores::TABLE)).await? {
            again.delete(&key).await?;
        }
        let (scored, levels, _) = judge_items(
            &job,
            &again,
            &df,
            &format!("{today}/part-{id}"),
            &judge_id,
            aws,
        )
        .await?;
        calls += scored.calls;
        retests.push(levels);
    }

    // The figures, per dimension.
    let raters: BTreeSet<&str> = usable.iter().filter_map(|l| l.rater.as_deref()).collect();
    // A jury: each member against the same labels too, so a user sees whether it beats them.
    let mut members = BTreeMap::new();
    if job.judge.kind == crate::config::JudgeKind::Jury {
        for member in job.judge.members().map_err(|m| CalibrateError::Write {
            what: "the jury's members".into(),
            message: m,
        })? {
            let member_id = crate::judge::id_of(&member);
            let (levels, _) = read_levels(&scratch, &member_id).await?;
            let mut per_dimension = BTreeMap::new();
            for d in &job.rubric.dimensions {
                let pairs = reference_pairs(&given, &levels, &d.name);
                if !pairs.is_empty() {
                    let scale: Vec<i64> = d.scale.levels().into_iter().map(i64::from).collect();
                    per_dimension.insert(
                        d.name.clone(),
                        figures(&pairs, &scale, d.scale == crate::rubric::Scale::Binary),
                    );
                }
            }
            members.insert(member_id, per_dimension);
        }
    }
    let mut dimensions = BTreeMap::new();
    for d in &job.rubric.dimensions {
        let levels: Vec<i64> = d.scale.levels().into_iter().map(i64::from).collect();
        let pairs = reference_pairs(&given, &judged, &d.name);
        let mut by_rater: Vec<Vec<Option<i64>>> = Vec::new();
        for ((_, dimension), labels) in &given {
            if *dimension != d.name {
                continue;
            }
            if labels.len() > 1 {
                by_rater.push(
                    raters
                        .iter()
                        .map(|r| {
                            labels
                                .iter()
                                .find(|(who, _)| who.as_deref() == Some(*r))
                                .map(|(_, l)| *l)
                        })
                        .collect(),
                );
            }
        }
        if pairs.is_empty() {
            continue;
        }
        let mut f = figures(&pairs, &levels, d.scale == crate::rubric::Scale::Binary);
        f.raters_alpha = (!by_rater.is_empty())
            .then(|| agreement::krippendorff_alpha_ordinal(&by_rater))
            .flatten();
        if !retests.is_empty() {
            let retest: Vec<(i64, i64)> = retests
                .iter()
                .flat_map(|pass| {
                    judged
                        .iter()
                        .filter(|((_, dim), _)| *dim == d.name)
                        .filter_map(|(key, first)| pass.get(key).map(|again| (*first, *again)))
                })
                .collect();
            let all: Vec<usize> = (0..retest.len()).collect();
            let kappa = |idx: &[usize]| {
                let (a, b): (Vec<i64>, Vec<i64>) = idx.iter().map(|&i| retest[i]).unzip();
                agreement::cohen_kappa(&a, &b, Some(&levels), Weights::Quadratic)
            };
            f.test_retest_kappa = Some(estimate(retest.len(), kappa, &all));
        }
        dimensions.insert(d.name.clone(), f);
    }

    let table_key = format!(
        "{}/rubric={}/{}",
        schema::calibration::TABLE,
        job.rubric.key(),
        crate::score::current::part_name(&judge_id)
    );
    let mut summary = CalibrateSummary {
        id: id.clone(),
        labels_file: job.labels.display().to_string(),
        rubric: job.rubric.key(),
        rubric_hash: job.rubric.hash(),
        judge: judge_id,
        items: items.len(),
        labels: usable.len(),
        raters: raters.len(),
        rejected: rejected.len(),
        rejected_examples: rejected.iter().take(20).cloned().collect(),
        judge_failed: failed.len(),
        judge_calls: calls,
        judge_cost_usd: scored.cost_usd,
        dimensions,
        members,
        table_part: warehouse.uri(&table_key),
        summary_md: scratch.uri("summary.md"),
        index: scratch.uri("index.html"),
    };
    let bytes = calibration_part(&summary, job.compression)?;
    warehouse.put(&table_key, bytes).await?;
    scratch
        .put(
            "summary.json",
            serde_json::to_vec_pretty(&summary).unwrap_or_default(),
        )
        .await?;
    scratch
        .put("summary.md", markdown(&summary).into_bytes())
        .await?;
    scratch
        .put("index.html", page(&summary).into_bytes())
        .await?;
    summary.rejected_examples.truncate(20);
    Ok(summary)
}

/// The judge's levels of one pass: the items (`captures`, Parquet bytes) written into `scratch`,
/// judged through the score stage, and the `ok` levels read back per (item, dimension); also the
/// items whose judgment failed.
async fn judge_items(
    job: &CalibrateJob,
    scratch: &Warehouse,
    captures: &[u8],
    part: &str,
    judge_id: &str,
    aws: &AwsClients,
) -> Result<JudgedPass, CalibrateError> {
    let (date, name) = part.split_once('/').unwrap_or(("1970-01-01", "part"));
    scratch
        .put(
            &format!("captures/model=labelled/date={date}/{name}.parquet"),
            captures.to_vec(),
        )
        .await?;
    let scored = score(
        ScoreJob::scratch(
            job.rubric.clone(),
            job.judge.clone(),
            job.budget_usd,
            job.compression,
            job.progress,
        ),
        scratch,
        aws,
    )
    .await?;
    let (judged, failed) = read_levels(scratch, judge_id).await?;
    Ok((scored, judged, failed))
}

/// The `ok` levels of `judge` in `scratch` per (item, dimension), and the items whose judgment
/// failed.
async fn read_levels(scratch: &Warehouse, judge_id: &str) -> Result<Levels, CalibrateError> {
    let mut judged: BTreeMap<(String, String), i64> = BTreeMap::new();
    let mut failed: BTreeSet<String> = BTreeSet::new();
    let keys = scratch.list(&format!("{}/", schema::scores::TABLE)).await?;
    let columns = [
        (schema::scores::REQUEST_ID, DataType::String),
        (schema::scores::DIMENSION, DataType::String),
        (schema::scores::LABEL, DataType::String),
        (schema::scores::STATUS, DataType::String),
    ];
    for key in crate::score::current::current_parts(scratch, &keys, judge_id).await? {
        let Some(df) = read_key(scratch, &key, &columns).await? else {
            continue;
        };
        let col = |n: &str| df.column(n).ok().and_then(|c| c.str().ok().cloned());
        let (Some(ids), Some(dims), Some(levels), Some(status)) = (
            col(schema::scores::REQUEST_ID),
            col(schema::scores::DIMENSION),
            col(schema::scores::LABEL),
            col(schema::scores::STATUS),
        ) else {
            continue;
        };
        for i in 0..df.height() {
            let (Some(id), Some(dim)) = (ids.get(i), dims.get(i)) else {
                continue;
            };
            match (
                status.get(i),
                levels.get(i).and_then(|l| l.parse::<i64>().ok()),
            ) {
                (Some(schema::status::OK), Some(level)) => {
                    judged.insert((id.to_string(), dim.to_string()), level);
                }
                _ => {
                    failed.insert(id.to_string());
                }
            }
        }
    }
    Ok((judged, failed))
}

/// A pass's levels per (item, dimension), and the failed items.
type Levels = (BTreeMap<(String, String), i64>, BTreeSet<String>);

/// What one pass of the judge gave: its summary, the `ok` levels, the failed items.
type JudgedPass = (
    crate::score::ScoreSummary,
    BTreeMap<(String, String), i64>,
    BTreeSet<String>,
);

/// The `calibration` table's rows of a calibration: one per dimension.
fn calibration_part(
    s: &CalibrateSummary,
    compression: Compression,
) -> Result<Vec<u8>, CalibrateError> {
    use schema::calibration as c;
    let rows: Vec<(&String, &DimensionFigures)> = s.dimensions.iter().collect();
    let height = rows.len();
    let float = |f: &dyn Fn(&DimensionFigures) -> Option<f64>| -> Vec<Option<f64>> {
        rows.iter().map(|(_, d)| f(d)).collect()
    };
    let mut df = DataFrame::new(
        height,
        vec![
            text_constant(c::RUBRIC, &s.rubric, height),
            text_constant(c::RUBRIC_HASH, &s.rubric_hash, height),
            text_constant(c::JUDGE, &s.judge, height),
            Column::new(
                c::DIMENSION.into(),
                rows.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
            ),
            Column::new(
                c::N.into(),
                rows.iter().map(|(_, d)| d.n as i64).collect::<Vec<_>>(),
            ),
            Column::new(
                c::KAPPA_UNWEIGHTED.into(),
                float(&|d| d.kappa_unweighted.value),
            ),
            Column::new(c::KAPPA_LINEAR.into(), float(&|d| d.kappa_linear.value)),
            Column::new(
                c::KAPPA_QUADRATIC.into(),
                float(&|d| d.kappa_quadratic.value),
            ),
            Column::new(
                c::KAPPA_QUADRATIC_LOW.into(),
                float(&|d| d.kappa_quadratic.low),
            ),
            Column::new(
                c::KAPPA_QUADRATIC_HIGH.into(),
                float(&|d| d.kappa_quadratic.high),
            ),
            Column::new(c::ALPHA_ORDINAL.into(), float(&|d| d.alpha_ordinal.value)),
            Column::new(c::SPEARMAN.into(), float(&|d| d.spearman.value)),
            Column::new(c::ACCURACY.into(), float(&|d| d.accuracy.value)),
            Column::new(c::MAJORITY_BASELINE.into(), float(&|d| d.majority_baseline)),
            Column::new(c::ROC_AUC.into(), float(&|d| d.roc_auc)),
            Column::new(c::RATERS_ALPHA.into(), float(&|d| d.raters_alpha)),
            text_constant(c::LABELS_FILE, &s.labels_file, height),
            utc_micros(
                c::CALIBRATED_AT,
                vec![Utc::now().timestamp_micros(); height],
            ),
        ],
    )
    .map_err(|e| CalibrateError::Write {
        what: "the calibration table".into(),
        message: e.to_string(),
    })?;
    write_parquet(&mut df, compression).map_err(|e| CalibrateError::Write {
        what: "the calibration table".into(),
        message: e.to_string(),
    })
}

impl std::fmt::Display for Estimate {
    /// `0.620 [0.550, 0.690]`, the value alone without an interval, `n/a` when undefined.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.value, self.low, self.high) {
            (Some(v), Some(l), Some(h)) => write!(f, "{v:.3} [{l:.3}, {h:.3}]"),
            (Some(v), _, _) => write!(f, "{v:.3}"),
            _ => write!(f, "n/a"),
        }
    }
}

/// The calibration as a self-contained page (the report's style): per dimension the figures with
/// their intervals and the confusion matrix; a jury's members; the rows left out.
pub fn page(s: &CalibrateSummary) -> String {
    use crate::report::html::{STYLE, esc};
    let opt = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.3}"));
    let mut out = format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>evalwatch calibrate</title><style>{STYLE}</style></head><body><main><header><h1>How well the judge agrees with your labels</h1><p class="meta">judge <code>{}</code> · rubric <code>{}</code> (hash <code>{}</code>) · {} labels of {} items, {} raters · <code>{}</code></p></header>"#,
        esc(&s.judge),
        esc(&s.rubric),
        esc(&s.rubric_hash[..12.min(s.rubric_hash.len())]),
        s.labels,
        s.items,
        s.raters,
        esc(&s.labels_file)
    );
    out.push_str(r#"<section><h2>Agreement per dimension</h2><div class="scroll"><table id="figures"><thead><tr><th>dimension</th><th class="num">n</th><th>quadratic kappa (95% CI)</th><th class="num">linear kappa</th><th class="num">kappa</th><th>alpha (ordinal)</th><th>Spearman</th><th>accuracy</th><th class="num">majority baseline</th><th class="num">ROC-AUC</th><th class="num">raters' alpha</th><th>test-retest kappa</th></tr></thead><tbody>"#);
    for (name, d) in &s.dimensions {
        out.push_str(&format!(
            r#"<tr><td>{}</td><td class="num">{}</td><td>{}</td><td class="num">{}</td><td class="num">{}</td><td>{}</td><td>{}</td><td>{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td>{}</td></tr>"#,
            esc(name),
            d.n,
            d.kappa_quadratic,
            opt(d.kappa_linear.value),
            opt(d.kappa_unweighted.value),
            d.alpha_ordinal,
            d.spearman,
            d.accuracy,
            opt(d.majority_baseline),
            opt(d.roc_auc),
            opt(d.raters_alpha),
            d.test_retest_kappa.map_or("n/a".to_string(), |e| e.to_string()),
        ));
    }
    out.push_str("</tbody></table></div></section>");
    for (name, d) in &s.dimensions {
        out.push_str(&format!(
            r#"<section><h2>{}: confusion matrix</h2><p class="note">Rows: your labels; columns: the judge's levels.</p><div class="scroll"><table class="confusion"><thead><tr><th></th>"#,
            esc(name)
        ));
        for level in &d.levels {
            out.push_str(&format!(r#"<th class="num">{level}</th>"#));
        }
        out.push_str("</tr></thead><tbody>");
        for (level, row) in d.levels.iter().zip(&d.confusion) {
            out.push_str(&format!("<tr><th>{level}</th>"));
            for n in row {
                out.push_str(&format!(r#"<td class="num">{n}</td>"#));
            }
            out.push_str("</tr>");
        }
        out.push_str("</tbody></table></div></section>");
    }
    if !s.members.is_empty() {
        out.push_str(r#"<section><h2>The jury's members</h2><div class="scroll"><table id="members"><thead><tr><th>member</th><th>dimension</th><th>quadratic kappa (95% CI)</th><th>accuracy</th></tr></thead><tbody>"#);
        for (member, dimensions) in &s.members {
            for (name, d) in dimensions {
                out.push_str(&format!(
                    "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(member),
                    esc(name),
                    d.kappa_quadratic,
                    d.accuracy
                ));
            }
        }
        out.push_str("</tbody></table></div></section>");
    }
    out.push_str(&format!(
        r#"<section><h2>Rows left out</h2><p class="note">{} rows left out, {} items whose judgment failed.</p><ul>"#,
        s.rejected, s.judge_failed
    ));
    for r in &s.rejected_examples {
        out.push_str(&format!("<li><code>{}</code></li>", esc(r)));
    }
    out.push_str("</ul></section></main></body></html>\n");
    out
}

/// The calibration in a few lines.
pub fn markdown(s: &CalibrateSummary) -> String {
    use crate::report::html::md_code;
    let mut out = format!(
        "**evalwatch calibrate**: judge {} against {} labels of {} items ({} raters) in {}, \
         rubric {}\n\n",
        md_code(&s.judge),
        s.labels,
        s.items,
        s.raters,
        md_code(&s.labels_file),
        md_code(&s.rubric)
    );
    out.push_str(
        "| dimension | n | kappa (quadratic, 95% CI) | kappa (linear) | kappa | alpha (ordinal) | \
         Spearman | accuracy | majority baseline | raters' alpha |\n",
    );
    out.push_str("|---|---|---|---|---|---|---|---|---|---|\n");
    for (name, d) in &s.dimensions {
        let opt = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.3}"));
        out.push_str(&format!(
            "| {name} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            d.n,
            d.kappa_quadratic,
            opt(d.kappa_linear.value),
            opt(d.kappa_unweighted.value),
            d.alpha_ordinal,
            d.spearman,
            d.accuracy,
            opt(d.majority_baseline),
            opt(d.raters_alpha),
        ));
    }
    for (member, dimensions) in &s.members {
        for (name, d) in dimensions {
            out.push_str(&format!(
                "\nJury member {}, {name}: quadratic kappa {}, accuracy {}.\n",
                md_code(member),
                d.kappa_quadratic,
                d.accuracy
            ));
        }
    }
    for (name, d) in &s.dimensions {
        if let Some(t) = &d.test_retest_kappa {
            out.push_str(&format!(
                "\nTest-retest, {name}: quadratic kappa of the judge against itself {}.\n",
                t
            ));
        }
    }
    out.push_str(&format!(
        "\n{} rows left out, {} items whose judgment failed.\n",
        s.rejected, s.judge_failed
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_the_schemas_columns() {
        let mut s = CalibrateSummary::default();
        s.dimensions
            .insert("safety".into(), DimensionFigures::default());
        let bytes = calibration_part(&s, Compression::Snappy).unwrap();
        let df = ParquetReader::new(std::io::Cursor::new(bytes))
            .finish()
            .unwrap();
        let expected: Vec<String> = schema::calibration::COLUMNS
            .iter()
            .map(|c| c.to_string())
            .collect();
        schema::check("calibration", &df, &expected).unwrap();
    }

    #[test]
    fn a_tie_goes_to_the_lower_level() {
        assert_eq!(majority(&[3, 4, 4, 3]), 3);
        assert_eq!(majority(&[5, 4, 5]), 5);
    }

    #[test]
    fn figures_of_perfect_and_shifted_agreement() {
        let levels = [1, 2, 3, 4, 5];
        let same: Vec<(i64, i64)> = (0..50).map(|i| (1 + i % 5, 1 + i % 5)).collect();
        let f = figures(&same, &levels, false);
        assert_eq!(f.kappa_quadratic.value, Some(1.0));
        assert_eq!(f.accuracy.value, Some(1.0));
        assert_eq!(f.confusion[2][2], 10);
        // One level up everywhere: no exact agreement, strong ordinal agreement.
        let shifted: Vec<(i64, i64)> = (0..50).map(|i| (1 + i % 4, 2 + i % 4)).collect();
        let f = figures(&shifted, &levels, false);
        assert_eq!(f.accuracy.value, Some(0.0));
        assert!(f.kappa_quadratic.value.unwrap() > 0.5);
        assert_eq!(f.spearman.value, Some(1.0));
    }
}
