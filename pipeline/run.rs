//! `evalwatch run`: the stages (ingest, score, embed, telemetry, analyse, publish, report) in order for the
//! configured window, all of them or `--only` / `--from` some, under the warehouse's writer lock
//! ([`crate::lock`]), with a run manifest (`runs/<run-id>/manifest.json`)
//! recording what ran, how long it took and what it did.
//!
//! This module is the one place that knows the order of the stages.
//!
//! At fleet scale a run is split in two ([`Mode`]): `run --map` (ingest, score, embed of one shard,
//! under that shard's lock, committing a marker when it finished well) on every index of a
//! Kubernetes Indexed Job or AWS Batch array job, then `run --reduce` (score again from the
//! judge cache for what no shard could judge, then telemetry, analyse, publish, report, under
//! the writer lock) once all N shards committed ([`crate::shard`]).

use std::time::Instant;

use chrono::Utc;
use serde::Serialize;

use crate::analyse::{AnalyseError, AnalyseJob, AnalyseSummary, analyse};
use crate::context::Ctx;
use crate::embed::stage::{EmbedJob, EmbedStageError, EmbedSummary, embed};
use crate::ingest::{IngestError, IngestJob, IngestSummary, ingest};
use crate::publish::{PublishError, PublishJob, PublishSummary, publish};
use crate::report::{ReportError, ReportJob, ReportSummary, report};
use crate::score::{ScoreError, ScoreJob, ScoreSummary, score};
use crate::shard::Shard;
use crate::telemetry::{TelemetryError, TelemetryJob, TelemetrySummary, telemetry};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("`ingest.source` is not set in `{origin}`")]
    NoSource { origin: String },
    #[error(transparent)]
    Ingest(#[from] IngestError),
    #[error(transparent)]
    Rubric(#[from] crate::rubric::RubricError),
    #[error(transparent)]
    Score(#[from] ScoreError),
    #[error(transparent)]
    Embed(#[from] EmbedStageError),
    #[error(transparent)]
    Telemetry(#[from] TelemetryError),
    #[error(transparent)]
    Analyse(#[from] AnalyseError),
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error(transparent)]
    Report(#[from] ReportError),
    #[error("cannot write the run manifest: {0}")]
    Manifest(#[from] crate::warehouse::WarehouseError),
    #[error(transparent)]
    Lock(#[from] crate::lock::LockError),
    #[error(transparent)]
    Interrupted(#[from] crate::shutdown::Interrupted),
    #[error(transparent)]
    Shard(#[from] crate::shard::ShardError),
}

impl RunError {
    /// The stop request behind this error, if it is one.
    pub fn interrupted(&self) -> Option<crate::shutdown::Interrupted> {
        match self {
            RunError::Interrupted(i) | RunError::Score(ScoreError::Interrupted(i)) => Some(*i),
            _ => None,
        }
    }
}

/// The stages `run` knows, in the order it runs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Ingest,
    Score,
    Embed,
    Telemetry,
    Analyse,
    Publish,
    Report,
}

impl Stage {
    pub const ALL: [Stage; 7] = [
        Stage::Ingest,
        Stage::Score,
        Stage::Embed,
        Stage::Telemetry,
        Stage::Analyse,
        Stage::Publish,
        Stage::Report,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Stage::Ingest => "ingest",
            Stage::Score => "score",
            Stage::Embed => "embed",
            Stage::Telemetry => "telemetry",
            Stage::Analyse => "analyse",
            Stage::Publish => "publish",
            Stage::Report => "report",
        }
    }
}

/// Whether a run is the whole pipeline, or one half of a sharded one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Mode {
    #[default]
    Whole,
    /// Ingest, score and embed of one shard.
    Map(Shard),
    /// Score (from the cache, but for rows no shard judged), telemetry, analyse, publish and
    /// report, once `shards` shards (as given, or as their
    /// markers say) committed the window; waiting up to `wait` for them.
    Reduce {
        shards: Option<u32>,
        wait: Option<std::time::Duration>,
    },
}

impl Mode {
    fn describe(&self) -> String {
        match self {
            Mode::Whole => "whole".into(),
            Mode::Map(shard) => format!("map {shard}"),
            Mode::Reduce { .. } => "reduce".into(),
        }
    }
}

/// Which stages a run runs: all (default), `--only` some, or `--from` one on; a map step
/// runs ingest and score, a reduce step the rest.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub only: Vec<Stage>,
    pub from: Option<Stage>,
    pub mode: Mode,
}

impl Plan {
    pub fn runs(&self, stage: Stage) -> bool {
        let half = match self.mode {
            Mode::Whole => true,
            Mode::Map(_) => stage <= Stage::Embed,
            // The reduce scores the window once more, unsharded: rows a shard read into a
            // partition another shard had judged already are judged now, all else is cached.
            Mode::Reduce { .. } => stage >= Stage::Score,
        };
        half && (self.only.is_empty() || self.only.contains(&stage))
            && self.from.is_none_or(|from| stage >= from)
    }

    /// The shard a map step works on.
    pub fn shard(&self) -> Option<Shard> {
        match self.mode {
            Mode::Map(shard) => Some(shard),
            _ => None,
        }
    }

    pub fn stages(&self) -> Vec<Stage> {
        Stage::ALL.into_iter().filter(|s| self.runs(*s)).collect()
    }
}

#[derive(Debug, Serialize)]
pub struct StageRecord {
    pub stage: &'static str,
    pub seconds: f64,
    /// `ok`, `failed` (finished, but with failures it counts) or `error` / `interrupted` (did
    /// not finish: `error` says why).
    pub status: &'static str,
    pub summary: serde_json::Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct RunManifest {
    pub run_id: String,
    pub evalwatch_version: &'static str,
    pub started_at: String,
    pub finished_at: String,
    /// `ok`, `failed` (a stage failed; `error` says why when it did not finish) or
    /// `interrupted` (SIGTERM/SIGINT; what was done is saved).
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub config_origin: String,
    pub config_hash: String,
    pub rubric: String,
    pub judge: String,
    pub window: String,
    pub warehouse: String,
    /// `whole`, `map I/N` or `reduce`.
    pub mode: String,
    /// For a reduce: the shards whose map steps it reduced (`I/N` and their run ids).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<String>,
    /// The stages this run was asked to run.
    pub plan: Vec<Stage>,
    pub stages: Vec<StageRecord>,
}

/// What a finished run reports to its caller; a stage not run has no summary.
#[derive(Debug)]
pub struct RunOutcome {
    pub manifest: RunManifest,
    pub ingest: Option<IngestSummary>,
    pub score: Option<ScoreSummary>,
    pub embed: Option<EmbedSummary>,
    /// Also `None` when no telemetry source is configured.
    pub telemetry: Option<TelemetrySummary>,
    pub analyse: Option<AnalyseSummary>,
    pub publish: Option<PublishSummary>,
    pub report: Option<ReportSummary>,
}

impl RunOutcome {
    pub fn failed(&self) -> bool {
        self.manifest.status != "ok"
    }

    /// The exit code the run ends with: 1 failed, 3 an alert fired, 0 otherwise.
    pub fn exit_code(&self) -> u8 {
        if self.failed() {
            1
        } else if self.analyse.as_ref().is_some_and(|a| a.alerted()) {
            3
        } else {
            0
        }
    }
}

/// A run id: UTC start time plus a few random hex digits, sortable and unique enough.
pub fn new_run_id() -> String {
    let now = Utc::now();
    let noise = crate::util::sha256_hex(
        format!(
            "{}{}",
            now.timestamp_nanos_opt().unwrap_or(0),
            std::process::id()
        )
        .as_bytes(),
    );
    format!("{}-{}", now.format("%Y%m%dT%H%M%SZ"), &noise[..6])
}

fn record<T: Serialize>(stage: Stage, clock: Instant, failed: bool, summary: &T) -> StageRecord {
    StageRecord {
        stage: stage.name(),
        seconds: clock.elapsed().as_secs_f64(),
        status: if failed { "failed" } else { "ok" },
        summary: serde_json::to_value(summary).unwrap_or_default(),
        error: None,
    }
}

/// Runs the planned stages in order, holding the warehouse's writer lock. Whatever
/// the outcome (done, a stage failed, a stop was requested), the run manifest is written and the
/// lock released; each stage's summary is logged as the stage finishes.
///
/// A map step holds its shard's lock instead, forgets its marker first and commits it when every
/// stage finished well. A reduce waits (unlocked, so the shards can finish) for the markers,
/// then checks them again under the lock, and consumes them once it finished well.
pub async fn run(ctx: &Ctx, run_id: &str, plan: &Plan) -> Result<RunOutcome, RunError> {
    let window = ctx.window();
    if let Mode::Reduce { shards, wait } = plan.mode {
        crate::shard::wait_committed(&ctx.warehouse, &window, shards, wait).await?;
    }
    let command = match plan.mode {
        Mode::Whole => "run",
        Mode::Map(_) => "run --map",
        Mode::Reduce { .. } => "run --reduce",
    };
    let lock =
        crate::lock::acquire(&ctx.warehouse, run_id, command, ctx.wait_lock, plan.shard()).await?;
    let outcome = run_sharded(ctx, run_id, plan).await;
    let released = lock.release().await;
    let outcome = outcome?;
    released?;
    Ok(outcome)
}

/// [`run_locked`] with the map's and the reduce's markers around it.
async fn run_sharded(ctx: &Ctx, run_id: &str, plan: &Plan) -> Result<RunOutcome, RunError> {
    let window = ctx.window();
    let markers = match plan.mode {
        Mode::Whole => Vec::new(),
        Mode::Map(shard) => {
            crate::shard::clear(&ctx.warehouse, &window, shard).await?;
            Vec::new()
        }
        Mode::Reduce { shards, .. } => {
            crate::shard::committed(&ctx.warehouse, &window, shards).await?
        }
    };
    let outcome = run_locked(ctx, run_id, plan, &markers).await?;
    if outcome.failed() {
        return Ok(outcome);
    }
    match plan.mode {
        Mode::Whole => {}
        Mode::Map(shard) => {
            let stages = serde_json::json!({
                "ingest": outcome.ingest,
                "score": outcome.score,
            });
            let marker = crate::shard::marker(shard, &window, run_id, stages);
            crate::shard::commit(&ctx.warehouse, &marker, &window).await?;
        }
        Mode::Reduce { .. } => crate::shard::consume(&ctx.warehouse, &window, &markers).await?,
    }
    Ok(outcome)
}

async fn run_locked(
    ctx: &Ctx,
    run_id: &str,
    plan: &Plan,
    markers: &[crate::shard::Marker],
) -> Result<RunOutcome, RunError> {
    let started_at = Utc::now();
    let window = ctx.window();
    let stages_planned = plan.stages();
    tracing::info!(
        run_id,
        window = %window,
        mode = %plan.mode.describe(),
        warehouse = %ctx.warehouse.root_uri(),
        stages = %stages_planned.iter().map(|s| s.name()).collect::<Vec<_>>().join(","),
        "run: starting"
    );
    let rubric = crate::rubric::load(&ctx.config.rubric)?;
    // A rubric edited without a version bump is refused before any stage writes.
    crate::score::current::check_rubric(&ctx.warehouse, &rubric, true)
        .await
        .map_err(ScoreError::from)?;
    let mut outcome = RunOutcome {
        manifest: RunManifest {
            run_id: run_id.to_string(),
            evalwatch_version: env!("CARGO_PKG_VERSION"),
            started_at: started_at.to_rfc3339(),
            finished_at: String::new(),
            status: "ok",
            error: None,
            config_origin: ctx.config.origin.clone(),
            config_hash: ctx.config.hash.clone(),
            rubric: rubric.key(),
            judge: crate::judge::id_of(&ctx.config.judge),
            window: window.to_string(),
            warehouse: ctx.warehouse.root_uri(),
            mode: plan.mode.describe(),
            shards: markers
                .iter()
                .map(|m| format!("{} ({})", m.shard, m.run_id))
                .collect(),
            plan: stages_planned.clone(),
            stages: Vec::new(),
        },
        ingest: None,
        score: None,
        embed: None,
        telemetry: None,
        analyse: None,
        publish: None,
        report: None,
    };
    let result = run_stages(ctx, run_id, plan, &rubric, &mut outcome).await;
    let manifest = &mut outcome.manifest;
    manifest.finished_at = Utc::now().to_rfc3339();
    if let Err((stage, e)) = &result {
        let interrupted = e.interrupted().is_some();
        manifest.status = if interrupted { "interrupted" } else { "failed" };
        manifest.error = Some(format!("{}: {}", stage.name(), crate::util::error_chain(e)));
        manifest.stages.push(StageRecord {
            stage: stage.name(),
            seconds: 0.0,
            status: if interrupted { "interrupted" } else { "error" },
            summary: serde_json::Value::Null,
            error: Some(crate::util::error_chain(e)),
        });
    } else if manifest.stages.iter().any(|s| s.status != "ok") {
        manifest.status = "failed";
    }
    let bytes = serde_json::to_vec_pretty(&outcome.manifest).unwrap_or_default();
    let written = ctx
        .warehouse
        .put(&format!("runs/{run_id}/manifest.json"), bytes)
        .await;
    result.map_err(|(_, e)| e)?;
    written?;
    Ok(outcome)
}

/// Runs the planned stages into `outcome`; on a stage's error, which stage and why. Stops
/// before the next stage when a stop was requested.
async fn run_stages(
    ctx: &Ctx,
    run_id: &str,
    plan: &Plan,
    rubric: &crate::rubric::Rubric,
    outcome: &mut RunOutcome,
) -> Result<(), (Stage, RunError)> {
    let window = ctx.window();
    let begin = |stage: Stage| -> Result<Instant, (Stage, RunError)> {
        ctx.shutdown.check().map_err(|i| (stage, i.into()))?;
        Ok(Instant::now())
    };
    let fail = |stage: Stage| move |e: RunError| (stage, e);

    if plan.runs(Stage::Ingest) {
        let clock = begin(Stage::Ingest)?;
        let source_location = ctx.config.ingest.source.clone().ok_or_else(|| {
            (
                Stage::Ingest,
                RunError::NoSource {
                    origin: ctx.config.origin.clone(),
                },
            )
        })?;
        let job = IngestJob {
            source: ctx.source(&source_location).await,
            window: Some(window),
            settings: ctx.config.ingest.clone(),
            today: ctx.today,
            compression: ctx.config.compression,
            shard: plan.shard(),
        };
        let summary = ingest(job, &ctx.warehouse)
            .await
            .map_err(|e| fail(Stage::Ingest)(e.into()))?;
        crate::logs::ingest(&summary);
        let record = record(Stage::Ingest, clock, summary.failed(), &summary);
        outcome.manifest.stages.push(record);
        outcome.ingest = Some(summary);
    }

    if plan.runs(Stage::Score) {
        let clock = begin(Stage::Score)?;
        let mut job = ScoreJob::from_config(&ctx.config, rubric.clone()).for_shard(plan.shard());
        job.window = Some(window);
        job.progress = ctx.progress;
        job.shutdown = ctx.shutdown.clone();
        let summary = score(job, &ctx.warehouse, &ctx.aws)
            .await
            .map_err(|e| fail(Stage::Score)(e.into()))?;
        crate::logs::score(&summary);
        let failed = summary.failure.is_some();
        outcome
            .manifest
            .stages
            .push(record(Stage::Score, clock, failed, &summary));
        outcome.score = Some(summary);
    }

    if plan.runs(Stage::Embed) {
        let clock = begin(Stage::Embed)?;
        let mut job = EmbedJob::from_config(&ctx.config, Some(window));
        job.shard = plan.shard();
        let summary = embed(job, &ctx.warehouse)
            .await
            .map_err(|e| fail(Stage::Embed)(e.into()))?;
        crate::logs::embed(&summary);
        let record = record(Stage::Embed, clock, false, &summary);
        outcome.manifest.stages.push(record);
        outcome.embed = Some(summary);
    }

    // Telemetry only when a source is configured.
    if plan.runs(Stage::Telemetry) {
        let clock = begin(Stage::Telemetry)?;
        let measured = telemetry(
            TelemetryJob::from_config(&ctx.config, Some(window)),
            &ctx.warehouse,
            &ctx.aws,
        )
        .await
        .map_err(|e| fail(Stage::Telemetry)(e.into()))?;
        if let Some(summary) = &measured {
            crate::logs::telemetry(summary);
            let record = record(Stage::Telemetry, clock, false, summary);
            outcome.manifest.stages.push(record);
        }
        outcome.telemetry = measured;
    }

    if plan.runs(Stage::Analyse) {
        let clock = begin(Stage::Analyse)?;
        let summary = analyse(
            AnalyseJob::from_config(&ctx.config, rubric.clone(), window),
            &ctx.warehouse,
        )
        .await
        .map_err(|e| fail(Stage::Analyse)(e.into()))?;
        crate::logs::analyse(&summary);
        let record = record(Stage::Analyse, clock, false, &summary);
        outcome.manifest.stages.push(record);
        outcome.analyse = Some(summary);
    }

    if plan.runs(Stage::Publish) {
        let clock = begin(Stage::Publish)?;
        let summary = publish(
            PublishJob::from_config(&ctx.config, rubric.clone(), window),
            &ctx.warehouse,
            &ctx.aws,
        )
        .await
        .map_err(|e| fail(Stage::Publish)(e.into()))?;
        crate::logs::publish(&summary);
        let record = record(Stage::Publish, clock, summary.failed(), &summary);
        outcome.manifest.stages.push(record);
        outcome.publish = Some(summary);
    }

    if plan.runs(Stage::Report) {
        let clock = begin(Stage::Report)?;
        let mut job = ReportJob::from_config(&ctx.config, rubric.clone(), window, run_id);
        job.stages = outcome
            .manifest
            .stages
            .iter()
            .map(|s| (s.stage.to_string(), s.seconds, s.status.to_string()))
            .collect();
        let summary = report(job, &ctx.warehouse)
            .await
            .map_err(|e| fail(Stage::Report)(e.into()))?;
        crate::logs::report(&summary);
        let record = record(Stage::Report, clock, false, &summary);
        outcome.manifest.stages.push(record);
        outcome.report = Some(summary);
    }
    Ok(())
}
