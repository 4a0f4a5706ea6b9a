//! `evalwatch run`: every stage built so far (ingest, score, telemetry, analyse, publish), in
//! order, for the configured window, with a run manifest (`runs/<run-id>/manifest.json`) recording what ran, how long it took and what it did.
//!
//! This function is the one place that knows the order of the stages.

use std::time::Instant;

use chrono::Utc;
use serde::Serialize;

use crate::analyse::{AnalyseError, AnalyseJob, AnalyseSummary, analyse};
use crate::context::Ctx;
use crate::ingest::{IngestError, IngestJob, IngestSummary, ingest};
use crate::publish::{PublishError, PublishJob, PublishSummary, publish};
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
    #[error("cannot write the run manifest: {0}")]
    Manifest(#[from] crate::warehouse::WarehouseError),
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
    pub window: String,
    pub warehouse: String,
    pub stages: Vec<StageRecord>,
}

/// What a finished run reports to its caller.
#[derive(Debug)]
pub struct RunOutcome {
    pub manifest: RunManifest,
    pub ingest: IngestSummary,
    pub score: ScoreSummary,
    /// `None` when no telemetry source is configured.
    pub telemetry: Option<TelemetrySummary>,
    pub analyse: AnalyseSummary,
    pub publish: PublishSummary,
}

impl RunOutcome {
    pub fn failed(&self) -> bool {
        self.manifest.status != "ok"
    }

    /// The exit code the run ends with: 1 failed, 3 an alert fired, 0 otherwise.
    pub fn exit_code(&self) -> u8 {
        if self.failed() {
            1
        } else if self.analyse.alerted() {
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

/// Runs every stage in order.
pub async fn run(ctx: &Ctx, run_id: &str) -> Result<RunOutcome, RunError> {
    let started_at = Utc::now();
    let window = ctx.window();
    tracing::info!(run_id, window = %window, warehouse = %ctx.warehouse.root_uri(), "run: starting");

    // Stage 1: ingest.
    let source_location = ctx
        .config
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
    let mut stages = vec![StageRecord {
        stage: "ingest",
        seconds: clock.elapsed().as_secs_f64(),
        status: if summary.failed() { "failed" } else { "ok" },
        summary: serde_json::to_value(&summary).unwrap_or_default(),
    }];

    // Stage 2: score.
    let clock = Instant::now();
    let rubric = crate::rubric::load(&ctx.config.rubric)?;
    let mut job = ScoreJob::from_config(&ctx.config, rubric.clone());
    job.window = Some(window);
    job.progress = ctx.progress;
    let scored = score(job, &ctx.warehouse, &ctx.aws).await?;
    stages.push(StageRecord {
        stage: "score",
        seconds: clock.elapsed().as_secs_f64(),
        status: "ok",
        summary: serde_json::to_value(&scored).unwrap_or_default(),
    });

    // Stage 3: telemetry (when a source is configured).
    let clock = Instant::now();
    let measured = telemetry(
        TelemetryJob::from_config(&ctx.config, Some(window)),
        &ctx.warehouse,
        &ctx.aws,
    )
    .await?;
    if let Some(measured) = &measured {
        stages.push(StageRecord {
            stage: "telemetry",
            seconds: clock.elapsed().as_secs_f64(),
            status: "ok",
            summary: serde_json::to_value(measured).unwrap_or_default(),
        });
    }

    // Stage 4: analyse.
    let clock = Instant::now();
    let analysed = analyse(
        AnalyseJob::from_config(&ctx.config, rubric.clone(), window),
        &ctx.warehouse,
    )
    .await?;
    stages.push(StageRecord {
        stage: "analyse",
        seconds: clock.elapsed().as_secs_f64(),
        status: "ok",
        summary: serde_json::to_value(&analysed).unwrap_or_default(),
    });

    // Stage 5: publish.
    let clock = Instant::now();
    let published = publish(
        PublishJob::from_config(&ctx.config, rubric, window),
        &ctx.warehouse,
        &ctx.aws,
    )
    .await?;
    stages.push(StageRecord {
        stage: "publish",
        seconds: clock.elapsed().as_secs_f64(),
        status: if published.failed() { "failed" } else { "ok" },
        summary: serde_json::to_value(&published).unwrap_or_default(),
    });

    let status = if stages.iter().any(|s| s.status != "ok") {
        "failed"
    } else {
        "ok"
    };
    let manifest = RunManifest {
        run_id: run_id.to_string(),
        evalwatch_version: env!("CARGO_PKG_VERSION"),
        started_at: started_at.to_rfc3339(),
        finished_at: Utc::now().to_rfc3339(),
        status,
        config_origin: ctx.config.origin.clone(),
        config_hash: ctx.config.hash.clone(),
        window: window.to_string(),
        warehouse: ctx.warehouse.root_uri(),
        stages,
    };
    let bytes = serde_json::to_vec_pretty(&manifest).unwrap_or_default();
    ctx.warehouse
        .put(&format!("runs/{run_id}/manifest.json"), bytes)
        .await?;
    Ok(RunOutcome {
        manifest,
        ingest: summary,
        score: scored,
        telemetry: measured,
        analyse: analysed,
        publish: published,
    })
}
