//! A jury of judges (`[judge] kind = "jury"`, `jury = [...]`, `--judge jury`): each member judges
//! the window through the score stage under its own judge id (its own parts, cache, pacing and
//! costs), then the members' current rows of each (rubric version, model, date) are combined
//! into the jury's own part, under `jury:<hash of the members and the aggregate>`, so analyse,
//! publish, report, compare and calibrate treat a jury as one judge.
//!
//! A capture's jury row is `ok` when every member judged it `ok`: the level is the members'
//! `mean` (of normalised scores; the level shown is the nearest one), lower `median` or
//! `majority` (a tie going to the lower level), and the rationale lists each member's level. A
//! member's failure makes the jury's row an `error` naming it; a member cut by the budget makes
//! it `skipped_budget`. Costs and tokens are the members' sums, latency the slowest member's.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use polars::prelude::*;

use super::{ScoreError, ScoreJob, ScoreRows, ScoreSummary, current, partitions, score};
use crate::aws::AwsClients;
use crate::config::JuryAggregate;
use crate::rubric::Rubric;
use crate::schema;
use crate::table::{read_key, write_parquet};
use crate::util::sha256_hex;
use crate::warehouse::Warehouse;

/// One member's row for one capture and dimension.
#[derive(Debug, Clone)]
struct MemberRow {
    content_hash: String,
    captured_at: i64,
    level: Option<u32>,
    status: String,
    error: Option<String>,
    latency_ms: Option<f64>,
    input_tokens: Option<i64>,
    output_tokens: Option<i64>,
    cache_read_tokens: Option<i64>,
    cache_write_tokens: Option<i64>,
    cost_usd: Option<f64>,
}

/// The members' levels as one: (level, normalised score).
pub fn combine(
    aggregate: JuryAggregate,
    levels: &[u32],
    scale: crate::rubric::Scale,
) -> Option<(u32, f64)> {
    if levels.is_empty() {
        return None;
    }
    let mut sorted = levels.to_vec();
    sorted.sort_unstable();
    let level = match aggregate {
        JuryAggregate::Median => sorted[(sorted.len() - 1) / 2],
        JuryAggregate::Majority => {
            let mut counts: BTreeMap<u32, usize> = BTreeMap::new();
            for l in &sorted {
                *counts.entry(*l).or_default() += 1;
            }
            let most = counts.values().copied().max().unwrap_or(0);
            counts
                .into_iter()
                .find(|(_, c)| *c == most)
                .map(|(l, _)| l)?
        }
        JuryAggregate::Mean => {
            let scores: Vec<f64> = levels.iter().filter_map(|l| scale.normalise(*l)).collect();
            let mean = scores.iter().sum::<f64>() / scores.len().max(1) as f64;
            let all = scale.levels();
            let nearest = all
                .iter()
                .copied()
                .min_by(|a, b| {
                    let da = (scale.normalise(*a).unwrap_or(0.0) - mean).abs();
                    let db = (scale.normalise(*b).unwrap_or(0.0) - mean).abs();
                    da.total_cmp(&db)
                })
                .unwrap_or(sorted[0]);
            return Some((nearest, mean));
        }
    };
    Some((level, scale.normalise(level)?))
}

/// The rows of `judge` in the parts of one scores folder: (request_id, dimension) -> row, in
/// the order of the part.
async fn member_rows(
    warehouse: &Warehouse,
    listing: &[String],
    judge: &str,
) -> Result<Vec<((String, String), MemberRow)>, ScoreError> {
    use schema::scores as s;
    let columns = [
        (s::REQUEST_ID, DataType::String),
        (s::CONTENT_HASH, DataType::String),
        (s::CAPTURED_AT, DataType::Int64),
        (s::JUDGE, DataType::String),
        (s::DIMENSION, DataType::String),
        (s::LABEL, DataType::String),
        (s::STATUS, DataType::String),
        (s::ERROR, DataType::String),
        (s::JUDGE_LATENCY_MS, DataType::Float64),
        (s::INPUT_TOKENS, DataType::Int64),
        (s::OUTPUT_TOKENS, DataType::Int64),
        (s::CACHE_READ_TOKENS, DataType::Int64),
        (s::CACHE_WRITE_TOKENS, DataType::Int64),
        (s::JUDGE_COST_USD, DataType::Float64),
    ];
    let mut out = Vec::new();
    for key in current::current_parts(warehouse, listing, judge).await? {
        let Some(df) = read_key(warehouse, &key, &columns).await? else {
            continue;
        };
        let text = |n: &str| df.column(n).ok().and_then(|c| c.str().ok().cloned());
        let float = |n: &str| df.column(n).ok().and_then(|c| c.f64().ok().cloned());
        let int = |n: &str| df.column(n).ok().and_then(|c| c.i64().ok().cloned());
        let (Some(ids), Some(hashes), Some(judges), Some(dims), Some(labels), Some(status)) = (
            text(s::REQUEST_ID),
            text(s::CONTENT_HASH),
            text(s::JUDGE),
            text(s::DIMENSION),
            text(s::LABEL),
            text(s::STATUS),
        ) else {
            continue;
        };
        let errors = text(s::ERROR);
        let (times, input, output) = (
            int(s::CAPTURED_AT),
            int(s::INPUT_TOKENS),
            int(s::OUTPUT_TOKENS),
        );
        let (cache_read, cache_write) = (int(s::CACHE_READ_TOKENS), int(s::CACHE_WRITE_TOKENS));
        let (latency, cost) = (float(s::JUDGE_LATENCY_MS), float(s::JUDGE_COST_USD));
        for i in 0..df.height() {
            if judges.get(i) != Some(judge) {
                continue;
            }
            let (Some(id), Some(dim)) = (ids.get(i), dims.get(i)) else {
                continue;
            };
            out.push((
                (id.to_string(), dim.to_string()),
                MemberRow {
                    content_hash: hashes.get(i).unwrap_or_default().to_string(),
                    captured_at: times.as_ref().and_then(|t| t.get(i)).unwrap_or(0),
                    level: labels.get(i).and_then(|l| l.parse().ok()),
                    status: status.get(i).unwrap_or_default().to_string(),
                    error: errors.as_ref().and_then(|e| e.get(i)).map(str::to_string),
                    latency_ms: latency.as_ref().and_then(|c| c.get(i)),
                    input_tokens: input.as_ref().and_then(|c| c.get(i)),
                    output_tokens: output.as_ref().and_then(|c| c.get(i)),
                    cache_read_tokens: cache_read.as_ref().and_then(|c| c.get(i)),
                    cache_write_tokens: cache_write.as_ref().and_then(|c| c.get(i)),
                    cost_usd: cost.as_ref().and_then(|c| c.get(i)),
                },
            ));
        }
    }
    Ok(out)
}

/// Adds the members' sums to the jury's summary.
fn add(total: &mut ScoreSummary, member: &ScoreSummary) {
    total.calls += member.calls;
    total.retries += member.retries;
    total.throttled += member.throttled;
    total.timeouts += member.timeouts;
    total.server_errors += member.server_errors;
    total.repairs += member.repairs;
    total.input_tokens += member.input_tokens;
    total.output_tokens += member.output_tokens;
    total.cache_read_tokens += member.cache_read_tokens;
    total.cache_write_tokens += member.cache_write_tokens;
    total.pacer_cuts += member.pacer_cuts;
    total.pacer_restores += member.pacer_restores;
    total.failed += member.failed;
    let sum = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0.0) + b.unwrap_or(0.0)),
    };
    total.cost_usd = sum(total.cost_usd, member.cost_usd);
    total.estimated_cost_usd = sum(total.estimated_cost_usd, member.estimated_cost_usd);
    if total.failure.is_none() {
        total.failure = member
            .failure
            .as_ref()
            .map(|f| format!("member {}: {f}", member.judge));
    }
}

/// Runs the score stage for a jury: every member, then the jury's parts.
pub(super) async fn score_jury(
    job: ScoreJob,
    warehouse: &Warehouse,
    aws: &AwsClients,
) -> Result<ScoreSummary, ScoreError> {
    let started = Instant::now();
    let members = job.judge.members().map_err(ScoreError::Judge)?;
    let ids: Vec<String> = members.iter().map(crate::judge::id_of).collect();
    let jury = crate::judge::id_of(&job.judge);
    let aggregate = job.judge.jury_aggregate;
    let params = sha256_hex(format!("{}\0{}", ids.join("\0"), aggregate.name()).as_bytes());
    let mut summary = ScoreSummary {
        rubric: job.rubric.key(),
        rubric_hash: job.rubric.hash(),
        judge: jury.clone(),
        judge_params_hash: params.clone(),
        dry_run: job.dry_run,
        budget_usd: job.budget_usd,
        ..ScoreSummary::default()
    };
    for member in members {
        let mut member_job = job.clone();
        member_job.judge = member;
        let done = Box::pin(score(member_job, warehouse, aws)).await?;
        tracing::info!(member = %done.judge, judged = done.judged, "score: jury member done");
        summary.captures = summary.captures.max(done.captures);
        summary.sampled = summary.sampled.max(done.sampled);
        add(&mut summary, &done);
    }
    if job.dry_run {
        return Ok(summary);
    }
    let keys = crate::compact::captures(warehouse).await?;
    for partition in partitions(&keys, &job) {
        let folder = current::folder(&job.rubric.key(), &partition.model_segment, partition.date);
        let listing = warehouse.list(&format!("{folder}/")).await?;
        let mut per_member = Vec::new();
        for id in &ids {
            per_member.push(member_rows(warehouse, &listing, id).await?);
        }
        let lookup: Vec<HashMap<(String, String), MemberRow>> = per_member
            .iter()
            .map(|rows| rows.iter().cloned().collect())
            .collect();
        let Some(first) = per_member.first() else {
            continue;
        };
        let mut rows = ScoreRows::default();
        for (key, lead) in first {
            let Some(dimension) = job.rubric.dimensions.iter().find(|d| d.name == key.1) else {
                continue;
            };
            let found: Vec<(&String, Option<&MemberRow>)> =
                ids.iter().zip(lookup.iter().map(|m| m.get(key))).collect();
            rows.request_id.push(key.0.clone());
            rows.content_hash.push(lead.content_hash.clone());
            rows.captured_at.push(lead.captured_at);
            rows.dimension.push(key.1.clone());
            let present: Vec<&MemberRow> = found.iter().filter_map(|(_, r)| *r).collect();
            let sum_i = |f: fn(&MemberRow) -> Option<i64>| {
                let v: Vec<i64> = present.iter().filter_map(|r| f(r)).collect();
                (!v.is_empty()).then(|| v.iter().sum())
            };
            let cost: Vec<f64> = present.iter().filter_map(|r| r.cost_usd).collect();
            rows.judge_cost_usd
                .push((!cost.is_empty()).then(|| cost.iter().sum()));
            rows.input_tokens.push(sum_i(|r| r.input_tokens));
            rows.output_tokens.push(sum_i(|r| r.output_tokens));
            rows.cache_read_tokens.push(sum_i(|r| r.cache_read_tokens));
            rows.cache_write_tokens
                .push(sum_i(|r| r.cache_write_tokens));
            rows.judge_latency_ms.push(
                present
                    .iter()
                    .filter_map(|r| r.latency_ms)
                    .max_by(f64::total_cmp),
            );
            let missing = found.iter().find(|(_, r)| r.is_none()).map(|(id, _)| *id);
            let budget = present
                .iter()
                .any(|r| r.status == schema::status::SKIPPED_BUDGET);
            let failed = found.iter().find_map(|(id, r)| {
                r.filter(|r| r.status == schema::status::ERROR)
                    .map(|r| (*id, r.error.clone().unwrap_or_default()))
            });
            let levels: Vec<(&String, u32)> = found
                .iter()
                .filter_map(|(id, r)| r.and_then(|r| r.level).map(|l| (*id, l)))
                .collect();
            let outcome = if let Some(id) = missing {
                Err((
                    schema::status::ERROR,
                    format!("jury member {id} has no judgment"),
                ))
            } else if budget {
                Err((
                    schema::status::SKIPPED_BUDGET,
                    "a jury member was cut by the budget".to_string(),
                ))
            } else if let Some((id, error)) = failed {
                Err((schema::status::ERROR, format!("jury member {id}: {error}")))
            } else {
                let only: Vec<u32> = levels.iter().map(|(_, l)| *l).collect();
                combine(aggregate, &only, dimension.scale)
                    .ok_or((schema::status::ERROR, "no member level".to_string()))
            };
            match outcome {
                Ok((level, score)) => {
                    let each: Vec<String> =
                        levels.iter().map(|(id, l)| format!("{id} {l}")).collect();
                    rows.score.push(Some(score));
                    rows.label.push(Some(level.to_string()));
                    rows.rationale.push(Some(format!(
                        "jury {} of {}: {}",
                        aggregate.name(),
                        levels.len(),
                        each.join("; ")
                    )));
                    rows.status.push(schema::status::OK);
                    rows.error.push(None);
                    let map: serde_json::Map<String, serde_json::Value> = levels
                        .iter()
                        .map(|(id, l)| ((*id).clone(), serde_json::json!(l)))
                        .collect();
                    rows.member_levels
                        .push(Some(serde_json::Value::Object(map).to_string()));
                    summary.rows_ok += 1;
                }
                Err((status, reason)) => {
                    rows.score.push(None);
                    rows.label.push(None);
                    rows.rationale.push(None);
                    rows.status.push(status);
                    rows.error.push(Some(reason));
                    rows.member_levels.push(None);
                    if status == schema::status::ERROR {
                        summary.rows_error += 1;
                    } else {
                        summary.rows_skipped_budget += 1;
                    }
                }
            }
        }
        if rows.request_id.is_empty() {
            continue;
        }
        summary.judged += (rows.request_id.len() / job.rubric.dimensions.len().max(1)) as u64;
        write_part(
            &job.rubric,
            &jury,
            &params,
            rows,
            &job,
            warehouse,
            &partition,
        )
        .await?;
        summary.partitions += 1;
    }
    summary.seconds = started.elapsed().as_secs_f64();
    if summary.seconds > 0.0 {
        summary.judgments_per_s = summary.judged as f64 / summary.seconds;
        summary.calls_per_s = summary.calls as f64 / summary.seconds;
    }
    Ok(summary)
}

async fn write_part(
    rubric: &Rubric,
    jury: &str,
    params: &str,
    rows: ScoreRows,
    job: &ScoreJob,
    warehouse: &Warehouse,
    partition: &super::Partition,
) -> Result<(), ScoreError> {
    let key = current::part_key(
        &rubric.key(),
        &partition.model_segment,
        partition.date,
        jury,
    );
    let (rubric, jury_id, params, compression) = (
        rubric.clone(),
        jury.to_string(),
        params.to_string(),
        job.compression,
    );
    let bytes = tokio::task::spawn_blocking(move || {
        let mut df = rows.into_frame(
            &rubric,
            &jury_id,
            &params,
            chrono::Utc::now().timestamp_micros(),
        )?;
        write_parquet(&mut df, compression)
    })
    .await
    .map_err(|e| ScoreError::WritePart {
        partition: key.clone(),
        message: e.to_string(),
    })?
    .map_err(|e| ScoreError::WritePart {
        partition: key.clone(),
        message: e.to_string(),
    })?;
    warehouse.put(&key, bytes).await?;
    current::delete_superseded(warehouse, &key, jury).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rubric::Scale;

    #[test]
    fn members_combine_by_mean_median_or_majority() {
        let five = Scale::OneToFive;
        assert_eq!(
            combine(JuryAggregate::Median, &[5, 2, 4], five),
            Some((4, 0.75))
        );
        assert_eq!(
            combine(JuryAggregate::Median, &[2, 4], five),
            Some((2, 0.25))
        );
        assert_eq!(
            combine(JuryAggregate::Majority, &[3, 5, 3], five),
            Some((3, 0.5))
        );
        assert_eq!(
            combine(JuryAggregate::Majority, &[5, 3], five),
            Some((3, 0.5))
        );
        let (level, score) = combine(JuryAggregate::Mean, &[4, 5, 5], five).unwrap();
        assert_eq!(level, 5);
        assert!((score - (0.75 + 1.0 + 1.0) / 3.0).abs() < 1e-12);
        assert_eq!(combine(JuryAggregate::Mean, &[], five), None);
    }
}
