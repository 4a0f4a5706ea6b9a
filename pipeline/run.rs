//! `evalwatch run`: the stages (ingest, score, telemetry, analyse, publish, report) in order for the
//! configured window, all of them or `--only` / `--from` some, under the run lock of the
//! warehouse and window ([`crate::lock`]), with a run manifest (`runs/<run-id>/manifest.json`)
//! recording what ran, how long it took and what it did.
//!
//! This module is the one place that knows the order of the stages.

use std::time::Instant;

use chrono::Utc;
use serde::Serialize;

use crate::analyse::{AnalyseError, AnalyseJob, AnalyseSummary, analyse};
use crate::context::Ctx;
use crate::ingest::{IngestError, IngestJob, IngestSummary, ingest};
use crate::publish::{PublishError, PublishJob, PublishSummary, publish};
use crate::report::{ReportError, ReportJob, ReportSummary, report};
use crate::score::{ScoreError, ScoreJob, ScoreSummary, score};
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
}

/// The stages `run` knows, in the order it runs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Ingest,
    Score,
    Telemetry,
    Analyse,
    Publish,
    Report,
}

impl Stage {
    pub const ALL: [Stage; 6] = [
        Stage::Ingest,
        Stage::Score,
        Stage::Telemetry,
        Stage::Analyse,
        Stage::Publish,
        Stage::Report,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Stage::Ingest => "ingest",
            Stage::Score => "score",
            Stage::Telemetry => "telemetry",
            Stage::Analyse => "analyse",
            Stage::Publish => "publish",
            Stage::Report => "report",
        }
    }
}

/// Which stages a run runs: all (default), `--only` some, or `--from` one on.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub only: Vec<Stage>,
    pub from: Option<Stage>,
}

impl Plan {
    pub fn runs(&self, stage: Stage) -> bool {
        (self.only.is_empty() || self.only.contains(&stage))
            && self.from.is_none_or(|from| stage >= from)
    }

    pub fn stages(&self) -> Vec<Stage> {
        Stage::ALL.into_iter().filter(|s| self.runs(*s)).collect()
    }
}

#[derive(Debug, Serialize)]
pub struct StageRecord {
    pub stage: &'static str,
    pub seconds: f64,
    pub status: &'static str,
    pub summary: serde_json::Value,
}

#[derive(Debug, Serialize)]
pub struct RunManifest {
    pub run_id: String,
    pub evalwatch_version: &'static str,
    pub started_at: String,
    pub finished_at: String,
    pub status: &'static str,
    pub config_origin: String,
    pub config_hash: String,
    pub rubric: String,
    pub judge: String,
    pub window: String,
    pub warehouse: String,
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
    }
}

/// Runs the planned stages in order, holding the run lock of the warehouse and window.
pub async fn run(ctx: &Ctx, run_id: &str, plan: &Plan) -> Result<RunOutcome, RunError> {
    let window = ctx.window();
    let lock = crate::lock::acquire(&ctx.warehouse, window, run_id).await?;
    let outcome = run_locked(ctx, run_id, plan).await;
    let released = lock.release().await;
    let outcome = outcome?;
    released?;
    Ok(outcome)
}

async fn run_locked(ctx: &Ctx, run_id: &str, plan: &Plan) -> Result<RunOutcome, RunError> {
    let started_at = Utc::now();
    let window = ctx.window();
    let stages_planned = plan.stages();
    tracing::info!(
        run_id,
        window = %window,
        warehouse = %ctx.warehouse.root_uri(),
        stages = %stages_planned.iter().map(|s| s.name()).collect::<Vec<_>>().join(","),
        "run: starting"
    );
    let rubric = crate::rubric::load(&ctx.config.rubric)?;
    // A rubric edited without a version bump is refused before any stage writes.
    crate::score::current::check_rubric(&ctx.warehouse, &rubric, true)
        .await
        .map_err(ScoreError::from)?;
    let judge = crate::judge::id_of(&ctx.config.judge);
    let mut stages = Vec::new();
    let mut outcome = RunOutcome {
        manifest: RunManifest {
            run_id: run_id.to_string(),
            evalwatch_version: env!("CARGO_PKG_VERSION"),
            started_at: started_at.to_rfc3339(),
            finished_at: String::new(),
            status: "ok",
            config_origin: ctx.config.origin.clone(),
            config_hash: ctx.config.hash.clone(),
            rubric: rubric.key(),
            judge,
            window: window.to_string(),
            warehouse: ctx.warehouse.root_uri(),
            plan: stages_planned.clone(),
            stages: Vec::new(),
        },
        ingest: None,
        score: None,
        telemetry: None,
        analyse: None,
        publish: None,
        report: None,
    };

    if plan.runs(Stage::Ingest) {
        let source_location =
            ctx.config
                .ingest
                .source
                .clone()
                .ok_or_else(|| RunError::NoSource {
                    origin: ctx.config.origin.clone(),
                })?;
        let clock = Instant::now();
        let job = IngestJob {
            source: ctx.source(&source_location).await,
            window: Some(window),
            settings: ctx.config.ingest.clone(),
            today: ctx.today,
            compression: ctx.config.compression,
        };
        let summary = ingest(job, &ctx.warehouse).await?;
        stages.push(record(Stage::Ingest, clock, summary.failed(), &summary));
        outcome.ingest = Some(summary);
    }

    if plan.runs(Stage::Score) {
        let clock = Instant::now();
        let mut job = ScoreJob::from_config(&ctx.config, rubric.clone());
        job.window = Some(window);
        job.progress = ctx.progress;
        let summary = score(job, &ctx.warehouse, &ctx.aws).await?;
        stages.push(record(
            Stage::Score,
            clock,
            summary.failure.is_some(),
            &summary,
        ));
        outcome.score = Some(summary);
    }

    // Telemetry only when a source is configured.
    if plan.runs(Stage::Telemetry) {
        let clock = Instant::now();
        let measured = telemetry(
            TelemetryJob::from_config(&ctx.config, Some(window)),
            &ctx.warehouse,
            &ctx.aws,
        )
        .await?;
        if let Some(summary) = &measured {
            stages.push(record(Stage::Telemetry, clock, false, summary));
        }
        outcome.telemetry = measured;
    }

    if plan.runs(Stage::Analyse) {
        let clock = Instant::now();
        let summary = analyse(
            AnalyseJob::from_config(&ctx.config, rubric.clone(), window),
            &ctx.warehouse,
        )
        .await?;
        stages.push(record(Stage::Analyse, clock, false, &summary));
        outcome.analyse = Some(summary);
    }

    if plan.runs(Stage::Publish) {
        let clock = Instant::now();
        let summary = publish(
            PublishJob::from_config(&ctx.config, rubric.clone(), window),
            &ctx.warehouse,
            &ctx.aws,
        )
        .await?;
        stages.push(record(Stage::Publish, clock, summary.failed(), &summary));
        outcome.publish = Some(summary);
    }

    if plan.runs(Stage::Report) {
        let clock = Instant::now();
        let mut job = ReportJob::from_config(&ctx.config, rubric.clone(), window, run_id);
        job.stages = stages
            .iter()
            .map(|s| (s.stage.to_string(), s.seconds, s.status.to_string()))
            .collect();
        let summary = report(job, &ctx.warehouse).await?;
        stages.push(record(Stage::Report, clock, false, &summary));
        outcome.report = Some(summary);
    }

    let status = if stages.iter().any(|s| s.status != "ok") {
        "failed"
    } else {
        "ok"
    };
    outcome.manifest.status = status;
    outcome.manifest.finished_at = Utc::now().to_rfc3339();
    outcome.manifest.stages = stages;
    let bytes = serde_json::to_vec_pretty(&outcome.manifest).unwrap_or_default();
    ctx.warehouse
        .put(&format!("runs/{run_id}/manifest.json"), bytes)
        .await?;
    Ok(outcome)
}
