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
//!
//! Preferences (`prompt`, `response_a`, `response_b`, `label` = `a` | `b` | `tie`) are judged in
//! both orders on the pairwise rubric, as `compare --pairwise` judges (its engine and cache); the
//! judge's verdict and people's become levels -1 (A better), 0 (a tie, or a verdict that changed
//! with the order) and 1 (B better), so the same figures apply, with the position consistency
//! besides and ROC-AUC where people named no tie.

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
    Compact(#[from] crate::compact::CompactError),
    #[error(transparent)]
    Score(#[from] crate::score::ScoreError),
    #[error(transparent)]
    Preferences(#[from] crate::compare::CompareError),
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
    /// The rubric preferences are judged on, when it is not `rubric` (`pairwise.toml` beside the
    /// configured rubric).
    pub pairwise: Option<Rubric>,
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
    /// Preferences: the share of judged pairs whose verdict did not change with the replies'
    /// order (an order-dependent verdict counts as a tie).
    pub position_consistency: Option<f64>,
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
    /// Preferences between two replies (levels -1: reply A better, 0: a tie, 1: reply B better).
    pub preferences: bool,
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
    for key in crate::compact::captures(warehouse).await? {
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
        position_consistency: None,
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

/// Levels per (item, dimension).
type ByItem = BTreeMap<(String, String), i64>;

/// What the judge gave on the labelled items.
#[derive(Default)]
struct Judged {
    /// Its level per (item, dimension); for a preference the direction ([`labels::PREFER_A`] ..).
    levels: ByItem,
    /// Items whose judgment failed.
    failed: BTreeSet<String>,
    calls: u64,
    cost_usd: Option<f64>,
    /// The levels of each further pass (`--repeat`).
    retests: Vec<ByItem>,
    /// A jury's members: id and levels.
    members: Vec<(String, ByItem)>,
    /// Preferences: judged items whose two orders agreed, of the judged items.
    consistent: Option<(usize, usize)>,
}

/// The labelled items: key -> texts (a reply; or two for a preference), and per (item,
/// dimension) the raters' labels.
struct Gathered {
    items: BTreeMap<String, Texts>,
    given: BTreeMap<(String, String), Vec<RaterLabel>>,
}

/// What is judged: a prompt and one reply, or two to choose between.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Texts {
    One(String, String),
    Two(String, String, String),
}

/// Runs a calibration: on preferences between two replies when the file holds any (the pairwise
/// rubric, both orders), on levels of single replies otherwise.
pub async fn calibrate(
    job: CalibrateJob,
    warehouse: &Warehouse,
    aws: &AwsClients,
) -> Result<CalibrateSummary, CalibrateError> {
    let read = labels::read(&job.labels)?;
    let mut rejected = read.rejected;
    let preferences = read.labels.iter().any(|l| l.item.is_pair());
    let rubric = match (preferences, &job.pairwise) {
        (true, Some(pairwise)) => pairwise.clone(),
        _ => job.rubric.clone(),
    };
    let usable = if preferences {
        check_preferences(read.labels, &rubric, &mut rejected)
    } else {
        check(read.labels, &rubric, &mut rejected)
    };
    let Gathered { items, given } = gather(&usable, warehouse, &mut rejected).await?;
    if items.is_empty() {
        return Err(CalibrateError::NothingUsable {
            path: job.labels.clone(),
            rejected: rejected.len(),
            first: rejected.first().cloned().unwrap_or_default(),
        });
    }

    // Judged in a scratch warehouse of its own.
    let judge_id = crate::judge::id_of(&job.judge);
    let mut identity = format!("{}\0{}", rubric.hash(), judge_id);
    for key in items.keys() {
        identity.push('\0');
        identity.push_str(key);
    }
    let id = sha256_hex(identity.as_bytes())[..12].to_string();
    let scratch = warehouse.sub(&format!("calibrations/{id}"));
    let judged = if preferences {
        judge_preferences(&job, &rubric, &scratch, &items, aws).await?
    } else {
        judge_replies(&job, &rubric, &scratch, &id, &items, &judge_id, aws).await?
    };

    // The figures, per dimension, of the judge and of a jury's members.
    let raters: BTreeSet<&str> = usable.iter().filter_map(|l| l.rater.as_deref()).collect();
    let scale = |d: &crate::rubric::Dimension| -> (Vec<i64>, bool) {
        if preferences {
            let binary = !given
                .iter()
                .any(|((_, dim), l)| *dim == d.name && l.iter().any(|(_, v)| *v == labels::TIE));
            (
                vec![labels::PREFER_A, labels::TIE, labels::PREFER_B],
                binary,
            )
        } else {
            (
                d.scale.levels().into_iter().map(i64::from).collect(),
                d.scale == crate::rubric::Scale::Binary,
            )
        }
    };
    let mut members = BTreeMap::new();
    for (member_id, levels) in &judged.members {
        let mut per_dimension = BTreeMap::new();
        for d in &rubric.dimensions {
            let pairs = reference_pairs(&given, levels, &d.name);
            if !pairs.is_empty() {
                let (levels, binary) = scale(d);
                per_dimension.insert(d.name.clone(), figures(&pairs, &levels, binary));
            }
        }
        members.insert(member_id.clone(), per_dimension);
    }
    let mut dimensions = BTreeMap::new();
    for d in &rubric.dimensions {
        let (levels, binary) = scale(d);
        let pairs = reference_pairs(&given, &judged.levels, &d.name);
        if pairs.is_empty() {
            continue;
        }
        let mut f = figures(&pairs, &levels, binary);
        let by_rater: Vec<Vec<Option<i64>>> = given
            .iter()
            .filter(|((_, dimension), labels)| *dimension == d.name && labels.len() > 1)
            .map(|(_, labels)| {
                raters
                    .iter()
                    .map(|r| {
                        labels
                            .iter()
                            .find(|(who, _)| who.as_deref() == Some(*r))
                            .map(|(_, l)| *l)
                    })
                    .collect()
            })
            .collect();
        f.raters_alpha = (!by_rater.is_empty())
            .then(|| agreement::krippendorff_alpha_ordinal(&by_rater))
            .flatten();
        if !judged.retests.is_empty() {
            let retest: Vec<(i64, i64)> = judged
                .retests
                .iter()
                .flat_map(|pass| {
                    judged
                        .levels
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
        f.position_consistency = judged
            .consistent
            .filter(|(_, of)| *of > 0)
            .map(|(agreed, of)| agreed as f64 / of as f64);
        dimensions.insert(d.name.clone(), f);
    }

    let table_key = format!(
        "{}/rubric={}/{}",
        schema::calibration::TABLE,
        rubric.key(),
        crate::score::current::part_name(&judge_id)
    );
    let mut summary = CalibrateSummary {
        id: id.clone(),
        labels_file: job.labels.display().to_string(),
        rubric: rubric.key(),
        rubric_hash: rubric.hash(),
        judge: judge_id,
        preferences,
        items: items.len(),
        labels: usable.len(),
        raters: raters.len(),
        rejected: rejected.len(),
        rejected_examples: rejected.iter().take(20).cloned().collect(),
        judge_failed: judged.failed.len(),
        judge_calls: judged.calls,
        judge_cost_usd: judged.cost_usd,
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

/// Preferences name the rubric's first dimension (or none: that one); a single reply's label
/// in a file of preferences is left out (calibrate them apart, on their own rubric).
fn check_preferences(
    labels: Vec<Label>,
    rubric: &Rubric,
    rejected: &mut Vec<String>,
) -> Vec<Label> {
    let Some(first) = rubric.dimensions.first().map(|d| d.name.clone()) else {
        return Vec::new();
    };
    labels
        .into_iter()
        .filter_map(|mut l| {
            if !l.item.is_pair() {
                rejected.push(format!(
                    "{}: a label of a single reply in a file of preferences; calibrate those in \
                     a file of their own",
                    l.at
                ));
                return None;
            }
            if l.dimension.is_empty() {
                l.dimension = first.clone();
            }
            if l.dimension != first {
                rejected.push(format!(
                    "{}: preferences are judged on `{first}`, the first dimension of rubric {}, \
                     not on `{}`",
                    l.at,
                    rubric.key(),
                    l.dimension
                ));
                return None;
            }
            Some(l)
        })
        .collect()
}

/// The labelled items and their labels: captures looked up in the warehouse by request id,
/// texts as given; an unknown request id is left out.
async fn gather(
    usable: &[Label],
    warehouse: &Warehouse,
    rejected: &mut Vec<String>,
) -> Result<Gathered, CalibrateError> {
    let wanted: BTreeSet<String> = usable
        .iter()
        .filter_map(|l| match &l.item {
            Item::Capture(id) => Some(id.clone()),
            _ => None,
        })
        .collect();
    let found = capture_texts(warehouse, &wanted).await?;
    let mut items: BTreeMap<String, Texts> = BTreeMap::new();
    let mut given: BTreeMap<(String, String), Vec<RaterLabel>> = BTreeMap::new();
    for l in usable {
        let texts = match &l.item {
            Item::Text { prompt, response } => Texts::One(prompt.clone(), response.clone()),
            Item::Pair {
                prompt,
                response_a,
                response_b,
            } => Texts::Two(prompt.clone(), response_a.clone(), response_b.clone()),
            Item::Capture(id) => match found.get(id) {
                Some((p, r)) => Texts::One(p.clone(), r.clone()),
                None => {
                    rejected.push(format!(
                        "{}: request_id `{id}` is not among the warehouse's captures",
                        l.at
                    ));
                    continue;
                }
            },
        };
        let key = match &texts {
            Texts::One(p, r) => crate::ingest::decode::content_hash(p, r),
            Texts::Two(p, a, b) => sha256_hex(format!("preference\0{p}\0{a}\0{b}").as_bytes()),
        };
        items.entry(key.clone()).or_insert(texts);
        given
            .entry((key, l.dimension.clone()))
            .or_default()
            .push((l.rater.clone(), l.label));
    }
    Ok(Gathered { items, given })
}

/// Single replies, judged through the score stage in `scratch` as captures of the model
/// `labelled`; `--repeat` passes each in a scratch of their own (their own cache: the judge is
/// asked again).
async fn judge_replies(
    job: &CalibrateJob,
    rubric: &Rubric,
    scratch: &Warehouse,
    id: &str,
    items: &BTreeMap<String, Texts>,
    judge_id: &str,
    aws: &AwsClients,
) -> Result<Judged, CalibrateError> {
    for table in [schema::captures::TABLE, schema::scores::TABLE] {
        for key in scratch.list(&format!("{table}/")).await? {
            scratch.delete(&key).await?;
        }
    }
    let today = Utc::now().date_naive();
    let n = items.len();
    let keys: Vec<String> = items.keys().cloned().collect();
    let (prompts, responses): (Vec<&str>, Vec<&str>) = items
        .values()
        .map(|t| match t {
            Texts::One(p, r) | Texts::Two(p, r, _) => (p.as_str(), r.as_str()),
        })
        .unzip();
    let df = DataFrame::new(
        n,
        vec![
            Column::new(schema::captures::REQUEST_ID.into(), keys.clone()),
            Column::new(schema::captures::CONTENT_HASH.into(), keys),
            utc_micros(
                schema::captures::CAPTURED_AT,
                vec![Utc::now().timestamp_micros(); n],
            ),
            Column::new(schema::captures::PROMPT.into(), prompts),
            Column::new(schema::captures::RESPONSE.into(), responses),
        ],
    )
    .and_then(|mut df| write_parquet(&mut df, job.compression))
    .map_err(|e| CalibrateError::Write {
        what: "the labelled items".into(),
        message: e.to_string(),
    })?;
    let part = format!("{today}/part-{id}");
    let (scored, levels, failed) =
        judge_items(job, rubric, scratch, &df, &part, judge_id, aws).await?;
    let mut judged = Judged {
        levels,
        failed,
        calls: scored.calls,
        cost_usd: scored.cost_usd,
        ..Judged::default()
    };
    for pass in 1..job.repeat {
        let again = scratch.sub(&format!("repeat-{pass}"));
        for key in again.list(&format!("{}/", schema::scores::TABLE)).await? {
            again.delete(&key).await?;
        }
        let (scored, levels, _) =
            judge_items(job, rubric, &again, &df, &part, judge_id, aws).await?;
        judged.calls += scored.calls;
        judged.retests.push(levels);
    }
    if job.judge.kind == crate::config::JudgeKind::Jury {
        for member in job.judge.members().map_err(|m| CalibrateError::Write {
            what: "the jury's members".into(),
            message: m,
        })? {
            let member_id = crate::judge::id_of(&member);
            let (levels, _) = read_levels(scratch, &member_id).await?;
            judged.members.push((member_id, levels));
        }
    }
    Ok(judged)
}

/// Preferences, judged in both orders on the pairwise rubric (as `compare --pairwise` does; a
/// jury member by member), in `scratch` with its judge cache; `--repeat` passes each in a
/// scratch of their own. An order-dependent verdict counts as a tie, and against the position
/// consistency.
async fn judge_preferences(
    job: &CalibrateJob,
    rubric: &Rubric,
    scratch: &Warehouse,
    items: &BTreeMap<String, Texts>,
    aws: &AwsClients,
) -> Result<Judged, CalibrateError> {
    use crate::compare::figures::Outcome;
    use crate::compare::pairwise::{self, judge_both_orders};
    let dimension = rubric
        .dimensions
        .first()
        .map(|d| d.name.clone())
        .unwrap_or_default();
    // Reply A is compare's baseline, B its candidate: a win is a preference for B.
    let (keys, pairs): (Vec<&String>, Vec<pairwise::Item>) = items
        .iter()
        .filter_map(|(key, t)| match t {
            Texts::Two(p, a, b) => Some((
                key,
                pairwise::Item {
                    prompt: p.clone(),
                    baseline: a.clone(),
                    candidate: b.clone(),
                },
            )),
            Texts::One(..) => None,
        })
        .unzip();
    let as_levels = |outcomes: &[Outcome]| -> ByItem {
        keys.iter()
            .zip(outcomes)
            .filter_map(|(key, o)| {
                let level = match o {
                    Outcome::Win => labels::PREFER_B,
                    Outcome::Loss => labels::PREFER_A,
                    Outcome::Tie | Outcome::Inconsistent => labels::TIE,
                    Outcome::Missing => return None,
                };
                Some(((key.to_string(), dimension.clone()), level))
            })
            .collect()
    };
    let run = judge_both_orders(scratch, rubric, &job.judge, aws, &pairs, job.budget_usd).await?;
    let mut judged = Judged {
        levels: as_levels(&run.outcomes),
        failed: keys
            .iter()
            .zip(&run.outcomes)
            .filter(|(_, o)| **o == Outcome::Missing)
            .map(|(k, _)| k.to_string())
            .collect(),
        calls: run.calls,
        cost_usd: (run.calls > 0 || run.cached > 0).then_some(run.cost_usd),
        consistent: (run.members.is_empty()).then(|| {
            let of = run
                .outcomes
                .iter()
                .filter(|o| **o != Outcome::Missing)
                .count();
            let inconsistent = run
                .outcomes
                .iter()
                .filter(|o| **o == Outcome::Inconsistent)
                .count();
            (of - inconsistent, of)
        }),
        members: run
            .members
            .iter()
            .map(|(id, outcomes)| (id.clone(), as_levels(outcomes)))
            .collect(),
        ..Judged::default()
    };
    if let Some(e) = &run.first_error {
        tracing::warn!("calibrate: {} judgments failed; the first: {e}", run.errors);
    }
    for pass in 1..job.repeat {
        let again = scratch.sub(&format!("repeat-{pass}"));
        let left = job.budget_usd.map(|b| (b - run.cost_usd).max(0.0));
        let run = judge_both_orders(&again, rubric, &job.judge, aws, &pairs, left).await?;
        judged.calls += run.calls;
        judged.retests.push(as_levels(&run.outcomes));
    }
    Ok(judged)
}

/// The judge's levels of one pass: the items (`captures`, Parquet bytes) written into `scratch`,
/// judged through the score stage, and the `ok` levels read back per (item, dimension); also the
/// items whose judgment failed.
async fn judge_items(
    job: &CalibrateJob,
    rubric: &Rubric,
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
            rubric.clone(),
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

/// A level as shown: a preference by its name, a level by its number.
fn level_name(preferences: bool, level: i64) -> String {
    match (preferences, level) {
        (true, labels::PREFER_A) => "A better".into(),
        (true, labels::TIE) => "tie".into(),
        (true, labels::PREFER_B) => "B better".into(),
        _ => level.to_string(),
    }
}

/// The calibration as a self-contained page (`reports/templates/calibrate.html`, the report's
/// style): per dimension the figures with their intervals and the confusion matrix; a jury's
/// members; the rows left out.
pub fn page(s: &CalibrateSummary) -> String {
    let opt = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.3}"));
    let dimensions: Vec<serde_json::Value> = s
        .dimensions
        .iter()
        .map(|(name, d)| {
            serde_json::json!({
                "name": name,
                "n": d.n,
                "kappa_quadratic": d.kappa_quadratic.to_string(),
                "kappa_linear": opt(d.kappa_linear.value),
                "kappa": opt(d.kappa_unweighted.value),
                "alpha_ordinal": d.alpha_ordinal.to_string(),
                "spearman": d.spearman.to_string(),
                "accuracy": d.accuracy.to_string(),
                "majority_baseline": opt(d.majority_baseline),
                "roc_auc": opt(d.roc_auc),
                "raters_alpha": opt(d.raters_alpha),
                "test_retest": d.test_retest_kappa.map_or("n/a".to_string(), |e| e.to_string()),
                "position_consistency": d.position_consistency.map(|p| format!("{:.1}%", 100.0 * p)),
                "levels": d.levels.iter().map(|l| level_name(s.preferences, *l)).collect::<Vec<_>>(),
                "confusion": d.levels.iter().zip(&d.confusion).map(|(l, row)| serde_json::json!({
                    "level": level_name(s.preferences, *l),
                    "counts": row,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let members: Vec<serde_json::Value> = s
        .members
        .iter()
        .flat_map(|(member, dims)| {
            dims.iter().map(move |(name, d)| {
                serde_json::json!({
                    "member": member,
                    "dimension": name,
                    "kappa_quadratic": d.kappa_quadratic.to_string(),
                    "accuracy": d.accuracy.to_string(),
                })
            })
        })
        .collect();
    crate::report::html::render(
        "calibrate.html",
        &serde_json::json!({
            "judge": s.judge,
            "rubric": s.rubric,
            "rubric_hash": &s.rubric_hash[..12.min(s.rubric_hash.len())],
            "labels": s.labels,
            "items": s.items,
            "raters": s.raters,
            "labels_file": s.labels_file,
            "dimensions": dimensions,
            "members": members,
            "rejected": s.rejected,
            "judge_failed": s.judge_failed,
            "rejected_examples": s.rejected_examples,
        }),
    )
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
        if let Some(p) = d.position_consistency {
            out.push_str(&format!(
                "\nPosition consistency, {name}: the verdict held with the replies swapped for \
                 {:.1}% of the pairs.\n",
                100.0 * p
            ));
        }
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
