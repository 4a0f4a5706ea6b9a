//! Stage summaries as log lines (stderr, through `tracing`): what a user reads as each stage
//! finishes, from `run` and from the single-stage commands alike. Never prints to stdout.

use crate::analyse::AnalyseSummary;
use crate::calibrate::CalibrateSummary;
use crate::compare::CompareSummary;
use crate::ingest::IngestSummary;
use crate::publish::PublishSummary;
use crate::report::ReportSummary;
use crate::score::ScoreSummary;
use crate::telemetry::TelemetrySummary;

use std::sync::atomic::{AtomicBool, Ordering};

static JSON: AtomicBool = AtomicBool::new(false);

/// Makes [`line`] write JSON objects (`--log-format json`), like the `tracing` subscriber.
pub fn set_json(json: bool) {
    JSON.store(json, Ordering::Relaxed);
}

#[derive(Debug, Clone, Copy)]
pub enum Level {
    Info,
    Warn,
    Error,
}

/// A line for people on stderr without the log prefix (`error: ...`, `hint: ...`, `report:
/// <path>`): plain text, or with `--log-format json` a JSON object like every other log line.
pub fn line(level: Level, text: &str) {
    if JSON.load(Ordering::Relaxed) {
        let level = match level {
            Level::Info => "INFO",
            Level::Warn => "WARN",
            Level::Error => "ERROR",
        };
        let object = serde_json::json!({
            "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            "level": level,
            "message": text,
        });
        eprintln!("{object}");
    } else {
        eprintln!("{text}");
    }
}

pub fn embed(summary: &crate::embed::stage::EmbedSummary) {
    if let Some(skipped) = &summary.skipped {
        tracing::warn!("{skipped}");
        return;
    }
    tracing::info!(
        "embed: {} rows in {} partitions ({} written), {} texts embedded ({:.0}/s), {} cached{}",
        summary.rows,
        summary.partitions,
        summary.partitions_written,
        summary.embedded,
        summary.texts_per_s,
        summary.cached,
        if summary.fetched {
            format!("; the model was fetched into {}", summary.model_dir)
        } else {
            String::new()
        }
    );
}

pub fn telemetry(summary: &TelemetrySummary) {
    tracing::info!(
        "telemetry: {} samples of {} models from {} into {} partitions, {} rejected, {} outside the window, cost {}",
        summary.samples,
        summary.models,
        summary.source,
        summary.partitions,
        summary.rejected,
        summary.out_of_window,
        summary
            .cost_usd
            .map_or("unknown (no [cost] entry)".to_string(), |c| format!(
                "{c:.2} USD"
            ))
    );
    for r in &summary.rejected_examples {
        tracing::warn!("telemetry: rejected {}: {}", r.location, r.reason);
    }
    for c in &summary.no_data {
        tracing::warn!("telemetry: no datapoints for `{c}`");
    }
}

pub fn compare(s: &CompareSummary) {
    tracing::info!(
        "compare: {} pairs ({} unmatched baseline, {} unmatched candidate, {} not scored), {} judge calls",
        s.matched,
        s.unmatched_baseline,
        s.unmatched_candidate,
        s.unscored_pairs,
        s.judge_calls
    );
    for line in &s.rejected_lines {
        tracing::warn!("compare: skipped {line}");
    }
    if let Some(p) = &s.pairwise {
        tracing::info!(
            "compare: pairwise (both orders): {} wins, {} ties, {} losses; win rate {:.3} [{:.3}, {:.3}], length-controlled {:.3}, position inconsistency {:.1}%",
            p.wins,
            p.ties,
            p.losses,
            p.win_rate,
            p.win_rate_lower,
            p.win_rate_upper,
            p.length_controlled_win_rate,
            100.0 * p.position_inconsistency
        );
    }
    for (metric, p) in &s.pointwise {
        tracing::info!("compare: {metric}: {p}");
    }
    for g in &s.gates {
        let actual = g.actual.map_or("n/a".to_string(), |a| format!("{a:.4}"));
        if g.passed {
            tracing::info!("compare: gate passed: {} (actual {actual})", g.gate);
        } else {
            tracing::warn!("compare: GATE FAILED: {} (actual {actual})", g.gate);
        }
    }
    line(Level::Info, &format!("compare: {}", s.index));
}

pub fn report(summary: &ReportSummary) {
    tracing::info!(
        "report: {} models, {} alerts, {} warnings -> {}",
        summary.models.len(),
        summary.alerts,
        summary.warnings,
        summary.index
    );
}

pub fn publish(summary: &PublishSummary) {
    let verb = if summary.dry_run {
        "would send"
    } else {
        "sent"
    };
    tracing::info!(
        "publish: {} windows of {} models to {}: {verb} {} of {} datums in {} requests \
         ({} already published, {} too old, {} failed), {} alarms",
        summary.windows,
        summary.models,
        summary.sink,
        if summary.dry_run {
            summary.datums - summary.already_published - summary.too_old
        } else {
            summary.sent
        },
        summary.datums,
        summary.requests,
        summary.already_published,
        summary.too_old,
        summary.failed,
        summary.alarms
    );
    for file in &summary.grafana_files {
        tracing::info!("publish: wrote {file}");
    }
    for day in &summary.windows_missing {
        tracing::warn!(
            "publish: no aggregates for the window of {day}: run `evalwatch analyse` first"
        );
    }
    for f in summary.failures.iter().chain(&summary.alarm_failures) {
        tracing::warn!("publish: {f}");
    }
}

pub fn analyse(summary: &AnalyseSummary) {
    let unit = match summary.window_days {
        1 => "model-days".to_string(),
        7 => "model-weeks".to_string(),
        n => format!("model-windows of {n} days"),
    };
    tracing::info!(
        "analyse: {} {unit} of {} against their baselines ({} by {}) -> {} alerts ({} tests), \
         {} warnings ({} tests), {} tests with too little data",
        summary.model_days,
        summary.window,
        summary.rubric,
        summary.judge,
        summary.alerts,
        summary.alerting_tests,
        summary.warnings,
        summary.warning_tests,
        summary.insufficient_data
    );
    for a in &summary.alerted {
        tracing::warn!(
            "analyse: ALERT {} {} {} ({}; {} {}, {})",
            a.model,
            a.date,
            a.metric,
            a.tests.join(", "),
            a.tests.first().map_or("-", String::as_str),
            a.statistic.map_or("-".to_string(), |s| format!("{s:.3}")),
            a.pattern
        );
    }
}

pub fn score(summary: &ScoreSummary) {
    planned_sensitivity(summary);
    let usd = |v: Option<f64>| {
        v.map_or("unknown (no judge prices)".to_string(), |c| {
            format!("{c:.4} USD")
        })
    };
    let cost = usd(summary.cost_usd);
    if summary.dry_run {
        tracing::info!(
            "score (dry run): {} captures, {} sampled, {} cached, {} to judge by {} against {}, \
             {} cut by the budget, {} left by --limit; estimated cost {}",
            summary.captures,
            summary.sampled,
            summary.from_cache,
            summary.judged,
            summary.judge,
            summary.rubric,
            summary.skipped_budget,
            summary.deferred_limit,
            usd(summary.estimated_cost_usd)
        );
        if let Some(batch) = summary.estimated_batch_cost_usd {
            tracing::info!(
                "score (dry run): the same judgments at the batch price: {batch:.4} USD (on demand: {})",
                usd(summary.estimated_cost_usd)
            );
        }
        return;
    }
    if let Some(batch) = &summary.batch {
        if batch.jobs_collected > 0 {
            tracing::info!(
                "score: collected {} batch job(s): {} records judged, {} failed, {} without output                  ({} of them judged on demand now), {:.4} USD at the batch price",
                batch.jobs_collected,
                batch.collected.judged,
                batch.collected.failed,
                batch.collected.missing,
                batch.judged_on_demand,
                batch.collected_usd
            );
        }
        if batch.submitted > 0 || batch.pending > 0 {
            tracing::info!(
                "score: {} judgments submitted to Bedrock batch inference this run ({} job(s),                  about {:.4} USD at the batch price); {} waiting in {} job(s): their rows come                  when the next run collects them (or pass --wait SECONDS)",
                batch.submitted,
                batch.jobs_submitted,
                batch.submitted_estimated_usd,
                batch.pending,
                batch.jobs_pending
            );
        }
    }
    tracing::info!(
        "score: {} captures, {} sampled, {} from cache, {} judged by {} against {} in {} partitions \
         -> {} ok rows, {} error rows, {} skipped_budget rows; {} calls ({} retries, {} throttled, \
         {} timeouts, {} repairs, {:.1}/s), {} + {} tokens, {cost}, {:.1} judgments/s",
        summary.captures,
        summary.sampled,
        summary.from_cache,
        summary.judged,
        summary.judge,
        summary.rubric,
        summary.partitions,
        summary.rows_ok,
        summary.rows_error,
        summary.rows_skipped_budget,
        summary.calls,
        summary.retries,
        summary.throttled,
        summary.timeouts,
        summary.repairs,
        summary.calls_per_s,
        summary.input_tokens,
        summary.output_tokens,
        summary.judgments_per_s
    );
    if summary.pacer_cuts > 0 {
        tracing::info!(
            "score: the pacer cut its rate {} times on throttling and took {} of the cuts back \
             (the service's own throttling, not the rate's)",
            summary.pacer_cuts,
            summary.pacer_restores
        );
    }
    if let Some(failure) = &summary.failure {
        tracing::error!("score: {failure}");
    }
}

/// The ingest summary for people, on stderr (the JSON goes to stdout).
pub fn ingest(summary: &IngestSummary) {
    if let Some(shard) = &summary.shard {
        tracing::info!(
            "ingest: shard {shard}: {} of {} objects listed are other shards'",
            summary.objects_other_shards,
            summary.objects_listed
        );
    }
    tracing::info!(
        "ingest: {} objects read ({} unchanged, {} failed), {} lines -> {} rows, {} quarantined, \
         {} outside the window, {:.1} MB/s",
        summary.objects_read,
        summary.objects_unchanged,
        summary.objects_failed.len(),
        summary.lines,
        summary.rows,
        summary.quarantined,
        summary.out_of_window,
        summary.mb_per_s
    );
    for failed in &summary.objects_failed {
        tracing::error!("ingest: `{}` was not read: {}", failed.uri, failed.error);
    }
    if let Some(e) = &summary.list_error {
        tracing::error!("ingest: listing stopped early: {e}");
    }
    if summary.every_line_failed() {
        tracing::error!(
            "ingest: every line was quarantined; hint: look at quarantine/ for the reasons"
        );
    }
}

pub fn calibrate(s: &CalibrateSummary) {
    tracing::info!(
        "calibrate: {} labels of {} items ({} raters, {} rows left out) against {} by {}; {} judge \
         calls, {} items whose judgment failed",
        s.labels,
        s.items,
        s.raters,
        s.rejected,
        s.rubric,
        s.judge,
        s.judge_calls,
        s.judge_failed
    );
    for r in s.rejected_examples.iter().take(5) {
        tracing::warn!("calibrate: left out {r}");
    }
    for (name, d) in &s.dimensions {
        tracing::info!(
            "calibrate: {name}: n={}, quadratic kappa {}, alpha {}, Spearman {}, accuracy {} \
             (majority baseline {})",
            d.n,
            d.kappa_quadratic,
            d.alpha_ordinal,
            d.spearman,
            d.accuracy,
            d.majority_baseline
                .map_or("n/a".to_string(), |v| format!("{v:.3}"))
        );
        if let Some(p) = d.position_consistency {
            tracing::info!(
                "calibrate: {name}: the verdict held with the replies swapped for {:.1}% of the pairs",
                100.0 * p
            );
        }
    }
    line(Level::Info, &format!("calibrate: {}", s.summary_md));
}

/// `score --dry-run`: what the monitor would see at the planned volume.
fn planned_sensitivity(s: &crate::score::ScoreSummary) {
    let at = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!(">= {v:.3}"));
    for p in &s.sensitivity {
        tracing::info!(
            "score: plan: {}: at {:.0} judged a day the monitor would see a sustained drop of the \
             composite {} within 3 days, {} in one, {} within 7 (80% power; spread of {} earlier \
             judgments; `evalwatch plan --detect X` for the volume a drop needs)",
            p.model,
            p.judged_per_day,
            at(p.within_3d),
            at(p.within_1d),
            at(p.within_7d),
            p.spread_from
        );
    }
}

/// `plan`: per model what catching the drop takes, and what it costs.
pub fn plan(s: &crate::analyse::plan::PlanSummary) {
    let usd = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("${v:.2}"));
    if s.models.is_empty() {
        tracing::warn!(
            "plan: no judgments of {} by {} in {}: score some days first",
            s.rubric,
            s.judge,
            s.window
        );
    }
    for m in &s.models {
        let now = m
            .detectable_now
            .map_or("n/a".to_string(), |v| format!("{v:.3}"));
        match m.needed_per_day {
            Some(n) => tracing::info!(
                "plan: {}: to catch a sustained drop of {:.3} in {} within {} days ({:.0}% power) \
                 it needs {n} judged a day (now {:.0}, which sees >= {now}); {} a judgment, {} a \
                 day, {} per 30 days ({})",
                m.model,
                s.detect,
                s.metric,
                s.within_days,
                100.0 * s.power,
                m.judged_per_day,
                usd(m.cost_per_judgment_usd),
                usd(m.cost_per_day_usd),
                usd(m.cost_per_30_days_usd),
                s.cost_source,
            ),
            None => tracing::warn!(
                "plan: {}: a sustained drop of {:.3} in {} cannot be caught within {} days: {}",
                m.model,
                s.detect,
                s.metric,
                s.within_days,
                m.note.as_deref().unwrap_or("")
            ),
        }
    }
}

pub fn compact(summary: &crate::compact::CompactSummary) {
    tracing::info!(
        "compact: {} of {} partitions compacted, {} parts merged into {} ({} rows, {:.1} MB -> \
         {:.1} MB) in {:.1}s",
        summary.partitions_compacted,
        summary.partitions,
        summary.parts_merged,
        summary.parts_written,
        summary.rows,
        summary.bytes_before as f64 / 1e6,
        summary.bytes_after as f64 / 1e6,
        summary.seconds
    );
}
