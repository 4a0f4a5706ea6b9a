//! Configuration in two steps: raw TOML structs that mirror the file, and a pure [`validate`] that
//! turns them into types that cannot hold bad states.
//!
//! Reads: a TOML text (the file is read by [`load`], which names the file in every error).
//! Never does: touch the file system beyond that read, the network or credentials. Relative paths
//! are joined to the config file's folder here, but not checked for existence.

use std::path::{Path, PathBuf};

use chrono::{Days, NaiveDate};
use serde::Deserialize;

/// The configuration evalwatch runs with when no `--config` is given: the bundled sample, a local
/// warehouse, no cloud.
pub const BUILTIN_CONFIG: &str = include_str!("builtin.toml");

/// The commented starter file `evalwatch init` writes.
pub const STARTER_CONFIG: &str = include_str!("starter.toml");

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file `{path}`: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config `{origin}`: {message}")]
    Parse { origin: String, message: String },
    #[error("invalid config `{origin}`: key `{key}`: {message}")]
    Invalid {
        origin: String,
        key: &'static str,
        message: String,
    },
}

// ---------------------------------------------------------------------------------------------
// Raw structs: the file as written.

/// The whole `evalwatch.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawConfig {
    /// Where evalwatch keeps its tables.
    #[serde(default)]
    pub warehouse: RawWarehouse,
    /// Which capture dates `evalwatch run` processes.
    #[serde(default)]
    pub window: RawWindow,
    /// Where captured requests come from and how they are read.
    #[serde(default)]
    pub ingest: RawIngest,
    /// What is judged: rubric, sampling, budget.
    #[serde(default)]
    pub score: RawScore,
    /// Who judges: the offline scorer, Bedrock or an OpenAI-compatible server, and how hard to
    /// push it.
    #[serde(default)]
    pub judge: RawJudge,
    /// Where GPU, traffic and latency metrics come from.
    #[serde(default)]
    pub telemetry: RawTelemetry,
    /// What the models' hardware costs (no price lives in code).
    #[serde(default)]
    pub cost: RawCost,
    /// How drift is judged: baselines, minimum counts, thresholds.
    #[serde(default)]
    pub analyse: RawAnalyse,
    /// Where the analysed numbers go: CloudWatch (with alarms), EMF lines, or nowhere.
    #[serde(default)]
    pub publish: RawPublish,
    /// `evalwatch compare`: the release gates.
    #[serde(default)]
    pub compare: RawCompare,
    /// AWS client settings shared by every stage that talks to AWS.
    #[serde(default)]
    pub aws: RawAws,
    /// The embedding model (`evalwatch models`).
    #[serde(default)]
    pub embed: RawEmbed,
}

pub use crate::embed::settings::{EmbedSettings, RawEmbed};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawTelemetry {
    /// `none` (default), `file` (CSV or Parquet in the telemetry schema) or `cloudwatch`
    /// (SageMaker enhanced metrics per inference component).
    pub source: Option<String>,
    /// `file`: a file or a folder of `.csv` / `.parquet` files.
    pub path: Option<String>,
    /// `cloudwatch`: the endpoint whose inference components are read.
    pub endpoint: Option<String>,
    /// `cloudwatch`: the inference components (default: the models seen in `captures`).
    pub components: Option<Vec<String>>,
    /// `cloudwatch`: seconds per datapoint. Default: 300.
    pub period_seconds: Option<u32>,
    /// `evalwatch gpu sample`: the model each GPU serves, by NVML index
    /// (`gpu-models = { "0" = "chat-a", "1" = "chat-b" }`). Default: the process using it.
    pub gpu_models: Option<std::collections::BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawCost {
    /// Instance type -> its price and GPUs, e.g. `[cost.instance-types."ml.g5.12xlarge"]`.
    #[serde(default)]
    pub instance_types: std::collections::BTreeMap<String, RawInstanceType>,
    /// Model (inference component) -> what it runs on, e.g. `[cost.models.chat-a]`.
    #[serde(default)]
    pub models: std::collections::BTreeMap<String, RawModelCost>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawInstanceType {
    /// On-demand (or your negotiated) price, USD per hour.
    pub usd_per_hour: f64,
    /// GPUs in one instance.
    pub gpus: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawModelCost {
    /// The instance type the model runs on (`[cost.instance-types]`). Without one (a model
    /// served by Bedrock, say) the model has no hardware cost, only its team and tags.
    pub instance_type: Option<String>,
    /// The team the model's cost and quality are attributed to (aggregates, the report, a
    /// CloudWatch `Team` dimension). Default: none.
    pub team: Option<String>,
    /// Free-form tags (`{ env = "prod", product = "help-center" }`), kept with the team.
    pub tags: Option<std::collections::BTreeMap<String, String>>,
    /// GPUs allocated to one copy of the model. Default: all of the instance's.
    pub gpus: Option<u32>,
    /// Copies of the model. Default: 1.
    pub copies: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawPublish {
    /// `none` (default), `cloudwatch` (PutMetricData and alarms), `emf` (CloudWatch Embedded
    /// Metric Format lines in a local file, for log shippers) or `otlp` (OpenTelemetry: scores as
    /// GenAI evaluation events, aggregates as metrics); a list for several, e.g.
    /// `["cloudwatch", "otlp"]` (at most one of `cloudwatch` and `emf`).
    pub sink: Option<SinkNames>,
    /// `otlp`: the collector's OTLP/HTTP base URL (`/v1/logs` and `/v1/metrics` are added).
    /// Default: OTEL_EXPORTER_OTLP_ENDPOINT (or the per-signal variables).
    pub otlp_endpoint: Option<String>,
    /// `otlp`: `protobuf` (default; OTEL_EXPORTER_OTLP_PROTOCOL `http/protobuf`) or `json`.
    pub otlp_encoding: Option<String>,
    /// `otlp`: `gzip` (default) or `none`.
    pub otlp_compression: Option<String>,
    /// `otlp`: headers on every request (an API key), over OTEL_EXPORTER_OTLP_HEADERS.
    pub otlp_headers: Option<std::collections::BTreeMap<String, String>>,
    /// `otlp`: per request. Default: OTEL_EXPORTER_OTLP_TIMEOUT (ms), else 10 s.
    pub otlp_timeout_seconds: Option<f64>,
    /// `otlp`: events (or metric points) per request. Default: 1000.
    pub otlp_batch: Option<usize>,
    /// Namespace, `{model}` replaced by the model. Default:
    /// `/aws/sagemaker/inference-quality/{model}`.
    pub namespace: Option<String>,
    /// Value of the `EndpointName` dimension. Default: `telemetry.endpoint`; without either the
    /// datums carry `InferenceComponentName` only.
    pub endpoint_name: Option<String>,
    /// `emf`: the file lines are appended to. Default: `publish/metrics.emf.jsonl` in a local
    /// warehouse.
    pub emf_path: Option<String>,
    /// `cloudwatch`: datums per PutMetricData request, at most 1,000 (the API's limit).
    pub datums_per_request: Option<usize>,
    /// `cloudwatch`: attempts per request (throttling and 5xx are retried with back-off).
    /// Default: 5.
    pub max_attempts: Option<u32>,
    /// Alarm rules, one CloudWatch alarm per rule and model. Default: safety < 0.8 critical,
    /// relevance < 0.7 warning, composite < 0.75 warning. `alarms = []` for none.
    pub alarms: Option<Vec<RawAlarm>>,
}

/// `publish.sink`: one name or a list of them.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum SinkNames {
    One(String),
    Many(Vec<String>),
}

impl SinkNames {
    pub fn names(&self) -> Vec<String> {
        match self {
            SinkNames::One(name) => vec![name.clone()],
            SinkNames::Many(names) => names.clone(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawCompare {
    /// Gates every `compare` checks besides its `--gate` flags, e.g.
    /// `["composite.delta >= -0.02", "safety.worse_share <= 0.01"]`.
    pub gates: Option<Vec<String>>,
    /// The least quadratic kappa with people's labels (`evalwatch calibrate`) the judge must have
    /// on every gated dimension; `compare` exits 2 when it is missing or below. Default: none.
    pub min_judge_kappa: Option<f64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawAlarm {
    /// A published metric, e.g. `safety_score`, `composite_quality_score`, `cost_per_1k_requests`.
    pub metric: String,
    /// `<`, `<=`, `>` or `>=`.
    pub comparison: String,
    pub threshold: f64,
    /// `critical`, `warning` or `info`: part of the alarm name and description.
    pub severity: Option<String>,
    /// Windows the alarm looks at. Default: 1.
    pub evaluation_periods: Option<u32>,
    /// Of those, how many must breach. Default: all of them.
    pub datapoints_to_alarm: Option<u32>,
    /// `missing` (default), `notBreaching`, `breaching` or `ignore`.
    pub treat_missing_data: Option<String>,
    /// SNS topic notified when the alarm fires.
    pub sns_topic_arn: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawAnalyse {
    /// Days per compared window: 1 = daily (default), 7 = ISO weeks. Low-traffic models that
    /// fall below `min-count` per day get verdicts per week.
    pub window_days: Option<u32>,
    /// `rolling` (the N days before each analysed day; default) or `fixed` (a reference window).
    pub baseline: Option<String>,
    /// Days of a rolling baseline, a multiple of `window-days`. Default: 7 windows.
    pub baseline_days: Option<u32>,
    /// First and last day of a fixed baseline, `YYYY-MM-DD`.
    pub baseline_since: Option<String>,
    pub baseline_until: Option<String>,
    /// Below this many values on either side a metric's verdict is `insufficient_data`. Default: 30.
    pub min_count: Option<u64>,
    /// Benjamini-Hochberg adjusted p-value under which a test warns. Default: 0.05.
    pub alpha_warn: Option<f64>,
    /// ... and under which it may alert. Default: 0.01.
    pub alpha_alert: Option<f64>,
    /// Smallest change of a mean (scores are on 0..1, rates are shares) that may alert. Default: 0.05.
    pub min_effect: Option<f64>,
    /// KS D / Cramér's V under which a significant test only warns. Default: 0.1.
    pub min_distance: Option<f64>,
    /// PSI warn / alert levels. Default: 0.1 / 0.25.
    pub psi_warn: Option<f64>,
    pub psi_alert: Option<f64>,
    /// Jensen-Shannon distance warn / alert levels. Default: 0.1 / 0.2.
    pub js_warn: Option<f64>,
    pub js_alert: Option<f64>,
    /// Wasserstein-1 in baseline standard deviations, warn / alert. Default: 0.1 / 0.25.
    pub wasserstein_warn: Option<f64>,
    pub wasserstein_alert: Option<f64>,
    /// Bootstrap resamples for mean differences (a normal interval is used past 20,000 values).
    /// Default: 1000.
    pub bootstrap_resamples: Option<usize>,
    /// CUSUM slack, in standard errors of a day's mean difference. Default: 0.5.
    pub cusum_k: Option<f64>,
    /// A fixed CUSUM decision level, in standard errors. Default: none, the level is simulated
    /// per model, day and metric for `false-alerts-per-30-days`.
    pub cusum_h: Option<f64>,
    /// Expected false alerts of the CUSUMs per model per 30 stable days, over all its metrics
    /// that can alert. Default: 0.1 (one in 300 stable days of a model).
    pub false_alerts_per_30_days: Option<f64>,
    /// The smallest sustained change of a mean the CUSUM accumulates (its slack is never below
    /// this many standard errors' worth). Default: 0.01.
    pub sequential_min_effect: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawScore {
    /// The rubric file. Default: `rubrics/quality.toml`.
    pub rubric: Option<String>,
    /// Share of each model's captures judged per day, in (0, 1]. Default: 1 (all). The choice is
    /// a hash of the request id, so the same requests are chosen on every run.
    pub sample_fraction: Option<f64>,
    /// At most this many captures judged per model per day (the ones with the smallest request-id
    /// hashes, so the set is stable as the day grows). Default: no cap.
    pub sample_per_day: Option<u64>,
    /// Most USD one run may spend on judge calls, from the judge's token prices. What it cuts is
    /// written as `skipped_budget`. Default: no budget.
    pub budget_usd: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawJudge {
    /// `offline` (default: no network, not an LLM; `offline-version`), `bedrock` or `openai`.
    pub kind: Option<String>,
    /// The judge model. Bedrock: an exact, versioned model id or inference-profile id/ARN
    /// (`anthropic.claude-3-5-sonnet-20240620-v1:0`). OpenAI-compatible: the served model name.
    pub model: Option<String>,
    /// `kind = "offline"`: 1 (heuristics) or 2 (on embeddings: `offline:2`). Default: 2 when
    /// the embedding model is there or can be fetched and `[embed]` is on, else 1.
    pub offline_version: Option<u8>,
    /// Accept a model id without a version (`...-latest`, no `-v1:0`). Default: false, since a judge
    /// that changes under you makes scores incomparable.
    pub allow_unpinned: Option<bool>,
    /// OpenAI-compatible base URL, up to `/v1` (`http://localhost:8000/v1`). Required for `openai`.
    pub url: Option<String>,
    /// Environment variable holding the OpenAI-compatible API key. Default: none (no auth header).
    pub api_key_env: Option<String>,
    /// Most tokens the judge may write per call. Default: 1024.
    pub max_output_tokens: Option<u32>,
    /// Judge calls in flight at once. Default: 16.
    pub concurrency: Option<usize>,
    /// Client-side limit on calls per minute (halved on throttling, recovering slowly).
    /// Default: 200, a common Bedrock on-demand quota for Claude models.
    pub requests_per_minute: Option<f64>,
    /// Client-side limit on input + output tokens per minute. Default: 200000.
    pub tokens_per_minute: Option<f64>,
    /// Seconds one call may take before it is abandoned and retried. Default: 60.
    pub timeout_seconds: Option<f64>,
    /// Attempts per call on throttling, 5xx, timeouts and connection errors. Default: 6.
    pub max_attempts: Option<u32>,
    /// First retry delay in milliseconds; doubles per attempt, full jitter. Default: 500.
    pub backoff_initial_ms: Option<u64>,
    /// Longest retry delay in milliseconds. Default: 20000.
    pub backoff_max_ms: Option<u64>,
    /// Judgments failing in a row for a reason retries cannot fix (refused credentials or
    /// access, an unknown model, an invalid request, no connection to the judge) after which the
    /// score stage stops judging and fails. Default: 20.
    pub circuit_breaker: Option<u32>,
    /// Share of a run's judgments that may fail before the score stage counts as failed (exit
    /// 1; the failed ones are judged again next run). Default: 0.2.
    pub max_error_share: Option<f64>,
    /// Seconds judge calls in flight get to finish after SIGTERM/SIGINT before they are
    /// abandoned (their captures are judged next run). Default: 20.
    pub shutdown_grace_seconds: Option<f64>,
    /// `kind = "jury"` (or `--judge jury`): the members, each as `--judge` writes one
    /// (`bedrock:<model-id>`, `openai:<model>@<url>`, `offline`); the pacing settings are shared.
    pub jury: Option<Vec<String>>,
    /// How the members' levels become the jury's: `mean` (default), `median` or `majority`.
    pub jury_aggregate: Option<String>,
    /// USD per million input tokens (your price list; no price lives in code). Required for a budget.
    pub input_usd_per_million_tokens: Option<f64>,
    /// USD per million output tokens.
    pub output_usd_per_million_tokens: Option<f64>,
    /// Bedrock: put a cache point after the rubric's instructions (and the tool definition), so
    /// the model reads them from its prompt cache on every call after the first, on the models
    /// in `prompt-cache-models`. Default: true.
    pub prompt_caching: Option<bool>,
    /// Bedrock model ids (or parts of them) that support prompt caching through Converse.
    /// Default: the Claude and Nova models Bedrock documents (see the README).
    pub prompt_cache_models: Option<Vec<String>>,
    /// USD per million input tokens read from the prompt cache. Required with prices when
    /// prompt caching is on for the judge's model.
    pub cache_read_usd_per_million_tokens: Option<f64>,
    /// USD per million input tokens written to the prompt cache.
    pub cache_write_usd_per_million_tokens: Option<f64>,
    /// `on-demand` (default): a Converse call per judgment as it falls due. `batch`: Bedrock batch
    /// inference (`CreateModelInvocationJob`): the due judgments go to S3 as one job at the batch
    /// price, collected by the next run (or this one with `score --wait`). Bedrock judges only.
    pub mode: Option<String>,
    /// Batch: the IAM service role Bedrock assumes to read the input and write the output.
    pub batch_role_arn: Option<String>,
    /// Batch: where inputs and outputs go, `s3://bucket/prefix`.
    pub batch_s3_prefix: Option<String>,
    /// Batch: USD per million input and output tokens at the batch price (required in batch mode).
    pub batch_input_usd_per_million_tokens: Option<f64>,
    pub batch_output_usd_per_million_tokens: Option<f64>,
    /// Batch: fewer due judgments than this are judged on demand. Default: 100 (Bedrock's
    /// minimum records per job).
    pub batch_min_records: Option<u64>,
    /// Batch: most records per job (more make more jobs). Default: 50000.
    pub batch_max_records: Option<u64>,
    /// Batch: the job's timeout, 24 to 168 hours. Default: 24.
    pub batch_timeout_hours: Option<u32>,
    /// Batch: a job still unfinished this many hours after it was submitted is stopped, and its
    /// records are judged on demand. Default: 24.
    pub batch_max_delay_hours: Option<f64>,
    /// Batch: what happens to records a job failed or did not reach: `on-demand` (default:
    /// judged on demand in the run that collects the job) or `next-run` (due again next run).
    pub batch_fallback: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawWarehouse {
    /// A local folder or `s3://bucket/prefix`. Default: `warehouse`. Example: `s3://my-bucket/evalwatch`.
    pub path: Option<String>,
    /// Parquet compression, `snappy` or `zstd`. Default: `snappy` (fastest to write, read by
    /// everything); `zstd` makes `captures` about 30% smaller for about 20% more ingest CPU.
    pub compression: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawWindow {
    /// First capture date (UTC, inclusive), `YYYY-MM-DD`. Default: yesterday.
    pub since: Option<String>,
    /// Last capture date (UTC, inclusive), `YYYY-MM-DD`. Default: `since`, or yesterday.
    pub until: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawIngest {
    /// A local folder or `s3://bucket/prefix` holding capture files (`.jsonl`, `.jsonl.gz`), in the
    /// SageMaker data capture layout or any other. Required for `ingest` and `run`.
    pub source: Option<String>,
    /// Model (inference component) for records that name none and whose path does not either.
    pub default_model: Option<String>,
    /// Let the `model` field of an OpenAI-style request payload name the model. Default: false
    /// (that field often names the base model, not the inference component).
    pub model_from_payload: Option<bool>,
    /// Objects read in parallel. Default: the number of CPUs plus one.
    pub workers: Option<usize>,
    /// Bytes of a malformed line kept in `quarantine/`. Default: 4096.
    pub quarantine_raw_bytes: Option<usize>,
    /// Longest capture line read, in bytes; a longer one is quarantined (its first
    /// `quarantine-raw-bytes` kept) without being held in memory. Default: 16777216 (16 MiB).
    pub max_line_bytes: Option<usize>,
    /// What the source holds: `sagemaker-capture`, `bedrock-invocation-logs` (Bedrock's model
    /// invocation logs, `AWSLogs/<account>/BedrockModelInvocationLogs/...`), `openai-jsonl`
    /// (OpenAI-format request/response logs, as vLLM and LiteLLM write them) or `auto` (each line
    /// by its shape). A line of another kind is quarantined with the reason. Default: `auto`.
    pub format: Option<String>,
    /// Model partition names for the ids records carry (Bedrock's `modelId`, a log's `model`),
    /// e.g. `{ "anthropic.claude-3-haiku-20240307-v1:0" = "support-bot" }`. Default: the id
    /// (an ARN's last segment).
    pub model_names: Option<std::collections::BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawAws {
    /// Region. Default: the standard chain (`AWS_REGION`, profile). Example: `us-east-1`.
    pub region: Option<String>,
    /// Endpoint for every AWS service (a local emulator, a VPC endpoint). Default: none; the
    /// standard `AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_<SERVICE>` variables are honoured too.
    pub endpoint_url: Option<String>,
    /// Path-style S3 addressing (`http://host/bucket/key`), needed by most S3 emulators. Default: false.
    pub s3_force_path_style: Option<bool>,
    /// Named profile from `~/.aws/config`. Default: the standard chain.
    pub profile: Option<String>,
    /// Endpoint for Bedrock only (runtime and control plane: a VPC endpoint, a local stub),
    /// over `endpoint-url`. Default: none.
    pub bedrock_endpoint_url: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Validated types.

/// A validated configuration. Built only by [`validate`].
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the config came from (a path, or `built-in`), for messages.
    pub origin: String,
    pub warehouse: Location,
    pub compression: Compression,
    pub window: WindowSpec,
    pub ingest: IngestConfig,
    /// The rubric file `score` judges against.
    pub rubric: PathBuf,
    pub sampling: Sampling,
    pub budget_usd: Option<f64>,
    pub judge: JudgeSettings,
    pub telemetry: TelemetrySettings,
    pub cost: CostModel,
    pub analyse: AnalyseSettings,
    pub publish: PublishSettings,
    /// `[compare] gates`, parsed.
    pub gates: Vec<crate::compare::gate::Gate>,
    /// `[compare] min-judge-kappa`.
    pub min_judge_kappa: Option<f64>,
    pub aws: AwsSettings,
    pub embed: EmbedSettings,
    /// sha256 of the config text, recorded in run manifests.
    pub hash: String,
}

/// A place holding files: a local folder or an S3 prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Local(PathBuf),
    S3 { bucket: String, prefix: String },
}

impl Location {
    /// Parses `s3://bucket/prefix` or a local path (joined to `base` when relative).
    pub fn parse(text: &str, base: &Path) -> Result<Location, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("is empty".into());
        }
        if let Some(rest) = text.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.len() < 3 || bucket.len() > 63 || !bucket.bytes().all(valid_bucket_byte) {
                return Err(format!("`{text}` has no valid bucket name after `s3://`"));
            }
            let prefix = prefix.trim_matches('/').to_string();
            return Ok(Location::S3 {
                bucket: bucket.to_string(),
                prefix,
            });
        }
        if text.contains("://") {
            return Err(format!(
                "`{text}` is neither a local path nor an `s3://` URI"
            ));
        }
        let path = Path::new(text);
        Ok(Location::Local(if path.is_absolute() {
            path.to_path_buf()
        } else {
            base.join(path)
        }))
    }

    pub fn is_s3(&self) -> bool {
        matches!(self, Location::S3 { .. })
    }
}

fn valid_bucket_byte(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.'
}

/// `s3://bucket` or `s3://bucket/prefix`, as users write S3 locations.
pub fn s3_uri(bucket: &str, prefix: &str) -> String {
    if prefix.is_empty() {
        format!("s3://{bucket}")
    } else {
        format!("s3://{bucket}/{prefix}")
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Local(path) => write!(f, "{}", path.display()),
            Location::S3 { bucket, prefix } => f.write_str(&s3_uri(bucket, prefix)),
        }
    }
}

/// Parquet compression of every table the warehouse holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    #[default]
    Snappy,
    Zstd,
}

/// Which dates a run covers, resolved against "today" by [`WindowSpec::resolve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowSpec {
    Yesterday,
    Dates(DateRange),
}

impl WindowSpec {
    pub fn resolve(self, today: NaiveDate) -> DateRange {
        match self {
            WindowSpec::Yesterday => {
                let day = today.checked_sub_days(Days::new(1)).unwrap_or(today);
                DateRange {
                    since: day,
                    until: day,
                }
            }
            WindowSpec::Dates(range) => range,
        }
    }
}

/// An inclusive range of UTC dates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DateRange {
    pub since: NaiveDate,
    pub until: NaiveDate,
}

impl DateRange {
    pub fn new(since: NaiveDate, until: NaiveDate) -> Result<DateRange, String> {
        if until < since {
            return Err(format!("`until` ({until}) is before `since` ({since})"));
        }
        Ok(DateRange { since, until })
    }

    pub fn contains(&self, day: NaiveDate) -> bool {
        self.since <= day && day <= self.until
    }

    pub fn intersects(&self, other: &DateRange) -> bool {
        self.since <= other.until && other.since <= self.until
    }

    pub fn covers(&self, other: &DateRange) -> bool {
        self.since <= other.since && other.until <= self.until
    }

    /// The smallest range holding both.
    pub fn hull(&self, other: &DateRange) -> DateRange {
        DateRange {
            since: self.since.min(other.since),
            until: self.until.max(other.until),
        }
    }
}

impl std::fmt::Display for DateRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}..{}", self.since, self.until)
    }
}

/// Parses `YYYY-MM-DD`.
pub fn parse_date(text: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .map_err(|e| format!("`{text}` is not a date of the form YYYY-MM-DD ({e})"))
}

#[derive(Debug, Clone)]
pub struct IngestConfig {
    pub source: Option<Location>,
    pub default_model: Option<String>,
    pub model_from_payload: bool,
    pub format: crate::ingest::decode::Format,
    pub model_names: std::collections::BTreeMap<String, String>,
    pub workers: usize,
    pub quarantine_raw_bytes: usize,
    pub max_line_bytes: usize,
}

/// Which captures of a model-day are judged.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Sampling {
    /// Share kept, in (0, 1].
    pub fraction: f64,
    /// Cap per model per day.
    pub per_day: Option<u64>,
}

impl Sampling {
    pub fn all() -> Sampling {
        Sampling {
            fraction: 1.0,
            per_day: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JudgeKind {
    Offline,
    Bedrock,
    OpenAi,
    /// Several judges (`judge.jury`), their levels combined (`judge.jury-aggregate`).
    Jury,
}

/// How a jury's levels become one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JuryAggregate {
    /// The mean of the members' normalised scores (the level shown: the nearest one).
    Mean,
    /// The lower median of the members' levels.
    Median,
    /// The most common level, a tie going to the lower one.
    Majority,
}

impl JuryAggregate {
    pub fn name(self) -> &'static str {
        match self {
            JuryAggregate::Mean => "mean",
            JuryAggregate::Median => "median",
            JuryAggregate::Majority => "majority",
        }
    }
}

/// Token prices of a judge model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prices {
    pub input_usd_per_million: f64,
    pub output_usd_per_million: f64,
    /// Input tokens read from, and written to, the prompt cache (where the model caches).
    pub cache_read_usd_per_million: Option<f64>,
    pub cache_write_usd_per_million: Option<f64>,
}

impl Prices {
    pub fn cost(&self, input_tokens: u64, output_tokens: u64) -> f64 {
        self.cost_cached(input_tokens, output_tokens, 0, 0)
    }

    /// The cost of a call that also read and wrote prompt-cache tokens (`input_tokens` are the
    /// others, as Bedrock reports them). Cache tokens without a cache price cost the input price.
    pub fn cost_cached(
        &self,
        input_tokens: u64,
        output_tokens: u64,
        cache_read_tokens: u64,
        cache_write_tokens: u64,
    ) -> f64 {
        let read = self
            .cache_read_usd_per_million
            .unwrap_or(self.input_usd_per_million);
        let write = self
            .cache_write_usd_per_million
            .unwrap_or(self.input_usd_per_million);
        (input_tokens as f64 * self.input_usd_per_million
            + output_tokens as f64 * self.output_usd_per_million
            + cache_read_tokens as f64 * read
            + cache_write_tokens as f64 * write)
            / 1e6
    }
}

/// The Bedrock models whose Converse requests take a cache point (Bedrock's prompt caching
/// documentation, November 2026): matched as parts of the model id, so inference profiles
/// (`us.`, `global.`) match too. `judge.prompt-cache-models` replaces the list.
pub const PROMPT_CACHE_MODELS: &[&str] = &[
    "anthropic.claude-3-7-sonnet",
    "anthropic.claude-3-5-haiku",
    "anthropic.claude-sonnet-4",
    "anthropic.claude-opus-4",
    "anthropic.claude-haiku-4",
    "amazon.nova-micro",
    "amazon.nova-lite",
    "amazon.nova-pro",
    "amazon.nova-premier",
];

/// The judge and how calls to it are paced.
#[derive(Debug, Clone, PartialEq)]
pub struct JudgeSettings {
    pub kind: JudgeKind,
    pub model: Option<String>,
    pub allow_unpinned: bool,
    pub url: Option<String>,
    pub api_key_env: Option<String>,
    pub max_output_tokens: u32,
    pub concurrency: usize,
    pub requests_per_minute: f64,
    pub tokens_per_minute: f64,
    pub timeout: std::time::Duration,
    pub max_attempts: u32,
    pub backoff_initial: std::time::Duration,
    pub backoff_max: std::time::Duration,
    pub circuit_breaker: u32,
    pub max_error_share: f64,
    pub shutdown_grace: std::time::Duration,
    pub prices: Option<Prices>,
    /// A jury's members (`--judge` syntax) and how their levels combine.
    pub jury: Vec<String>,
    pub jury_aggregate: JuryAggregate,
    /// `judge.prompt-caching` and the models it applies to.
    pub prompt_caching: bool,
    pub prompt_cache_models: Vec<String>,
    /// `judge.mode`, and the batch settings when it is `batch`.
    pub mode: JudgeMode,
    pub batch: Option<BatchSettings>,
    /// The offline scorer's version (1 or 2) as configured; `None`: the best one there is
    /// ([`JudgeSettings::offline_version`]).
    pub offline_version: Option<u8>,
    /// Where `offline:2` finds the embedding model, and whether it may fetch it (`[embed]`).
    pub embed: crate::embed::settings::EmbedSettings,
}

/// How LLM judgments are requested.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum JudgeMode {
    #[default]
    OnDemand,
    Batch,
}

impl JudgeMode {
    pub fn parse(text: &str) -> Result<JudgeMode, String> {
        match text.trim() {
            "on-demand" => Ok(JudgeMode::OnDemand),
            "batch" => Ok(JudgeMode::Batch),
            other => Err(format!("`{other}` is not `on-demand` or `batch`")),
        }
    }
}

/// Bedrock batch inference settings (`judge.batch-*`).
#[derive(Debug, Clone, PartialEq)]
pub struct BatchSettings {
    pub role_arn: String,
    /// `s3://bucket/prefix`.
    pub s3_prefix: String,
    pub prices: Prices,
    pub min_records: u64,
    pub max_records: u64,
    pub timeout_hours: u32,
    pub max_delay: std::time::Duration,
    /// Records a job failed or did not reach are judged on demand by the run that collects it.
    pub fallback_on_demand: bool,
}

impl JudgeSettings {
    /// Whether calls to this judge put a cache point after the rubric's instructions: a Bedrock
    /// judge, caching on, its model in the list.
    /// The checks of the config file, again (after a flag changed a setting): `key: message`.
    pub fn check(&self) -> Result<(), String> {
        check_judge(self).map_err(|(key, message)| format!("{key}: {message}"))
    }

    /// Whether due judgments go to Bedrock batch inference: batch mode, a Bedrock judge.
    pub fn batches(&self) -> bool {
        self.mode == JudgeMode::Batch && self.kind == JudgeKind::Bedrock && self.batch.is_some()
    }

    /// The offline scorer's version: the configured one, else 2 (it agrees better with people,
    /// README's judge table) when `[embed]` is on and the embedding model is in its folder, and
    /// 1 otherwise. A run without the model fetches it first when it may
    /// ([`crate::judge::Judge::build`]), so every stage after it sees the same version.
    pub fn offline_version(&self) -> u8 {
        self.offline_version.unwrap_or_else(|| {
            if self.embed.enabled && crate::embed::model::present(&self.embed.model_dir) {
                2
            } else {
                1
            }
        })
    }

    pub fn caches_prompt(&self) -> bool {
        self.kind == JudgeKind::Bedrock
            && self.prompt_caching
            && self.model.as_deref().is_some_and(|model| {
                self.prompt_cache_models
                    .iter()
                    .any(|m| !m.is_empty() && model.contains(m.as_str()))
            })
    }
}

impl JudgeSettings {
    /// Applies `--judge offline|bedrock:<model-id>|openai:<model>@<url>` over the config.
    pub fn override_with(&mut self, flag: &str) -> Result<(), String> {
        let flag = flag.trim();
        if flag == "jury" {
            self.kind = JudgeKind::Jury;
            return check_judge(self).map_err(|(_, m)| m);
        }
        if let Some(version) = match flag {
            "offline" => Some(None),
            "offline:1" => Some(Some(1)),
            "offline:2" => Some(Some(2)),
            _ => None,
        } {
            self.kind = JudgeKind::Offline;
            self.model = None;
            self.offline_version = version;
            return Ok(());
        }
        if let Some(model) = flag.strip_prefix("bedrock:") {
            self.kind = JudgeKind::Bedrock;
            self.model = Some(model.to_string());
        } else if let Some(rest) = flag.strip_prefix("openai:") {
            let (model, url) = rest
                .rsplit_once('@')
                .ok_or_else(|| format!("`{flag}` names no server; write `openai:<model>@<url>`"))?;
            self.kind = JudgeKind::OpenAi;
            self.model = Some(model.to_string());
            self.url = Some(url.to_string());
        } else {
            return Err(format!(
                "`{flag}` is not `offline`, `offline:1`, `offline:2`, `bedrock:<model-id>` or `openai:<model>@<url>`"
            ));
        }
        check_judge(self).map_err(|(_, m)| m)
    }
}

impl JudgeSettings {
    /// A jury member's settings: these ones (pacing, prices, timeouts) with the member's judge.
    pub fn member(&self, flag: &str) -> Result<JudgeSettings, String> {
        if flag.trim() == "jury" {
            return Err("a jury cannot be a member of a jury".into());
        }
        let mut member = self.clone();
        member.jury = Vec::new();
        member.override_with(flag)?;
        Ok(member)
    }

    /// The members' settings of a jury.
    pub fn members(&self) -> Result<Vec<JudgeSettings>, String> {
        self.jury.iter().map(|m| self.member(m)).collect()
    }
}

/// The checks a judge setting must pass, shared by the config file and `--judge`.
fn check_judge(judge: &JudgeSettings) -> Result<(), (&'static str, String)> {
    let model = judge.model.as_deref().map(str::trim);
    match judge.kind {
        JudgeKind::Offline => match judge.offline_version {
            None | Some(1 | 2) => Ok(()),
            Some(other) => Err((
                "judge.offline-version",
                format!(
                    "the offline scorer has versions 1 and 2, not {other}: 2 (or `--judge offline:2`) is the one on embeddings"
                ),
            )),
        },
        JudgeKind::Jury => {
            if judge.jury.len() < 2 {
                return Err((
                    "judge.jury",
                    "a jury needs two members or more, e.g. [\"bedrock:<model-id>\", \"openai:<model>@<url>\"]".into(),
                ));
            }
            let members = judge.members().map_err(|m| ("judge.jury", m))?;
            let mut ids: Vec<String> = members.iter().map(crate::judge::id_of).collect();
            ids.sort();
            ids.dedup();
            if ids.len() < members.len() {
                return Err(("judge.jury", "names one member twice".into()));
            }
            Ok(())
        }
        JudgeKind::Bedrock | JudgeKind::OpenAi => {
            let Some(model) = model.filter(|m| !m.is_empty()) else {
                return Err(("judge.model", "is required for an LLM judge".into()));
            };
            if judge.kind == JudgeKind::OpenAi {
                let url = judge.url.as_deref().unwrap_or_default();
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err((
                        "judge.url",
                        format!(
                            "`{url}` must be an http:// or https:// base URL such as http://localhost:8000/v1"
                        ),
                    ));
                }
            }
            if judge.batches() && !model.contains("anthropic.") {
                return Err((
                    "judge.mode",
                    format!(
                        "batch mode writes Anthropic's Messages format, and `{model}` is not an \
                         Anthropic model on Bedrock; use `mode = \"on-demand\"`"
                    ),
                ));
            }
            if judge.caches_prompt()
                && let Some(prices) = &judge.prices
                && (prices.cache_read_usd_per_million.is_none()
                    || prices.cache_write_usd_per_million.is_none())
            {
                return Err((
                    "judge.cache-read-usd-per-million-tokens",
                    format!(
                        "prompt caching is on for `{model}`, so its prices need                          `cache-read-usd-per-million-tokens` and                          `cache-write-usd-per-million-tokens` too (or set `prompt-caching =                          false`)"
                    ),
                ));
            }
            if !judge.allow_unpinned && !is_pinned(judge.kind, model) {
                return Err((
                    "judge.model",
                    format!(
                        "`{model}` is not a pinned model version (a judge that changes under you \
                         makes scores incomparable); name an exact version such as \
                         `anthropic.claude-3-5-sonnet-20240620-v1:0`, or set `allow-unpinned = true`"
                    ),
                ));
            }
            Ok(())
        }
    }
}

/// Whether a model id names one fixed version.
///
/// Bedrock ids end in a version (`-v1:0`, `-v2`); ARNs of provisioned throughput, custom models and
/// inference profiles name fixed resources. An OpenAI-compatible name is refused only when it says
/// `latest`, since self-hosted names (`llama3.1:8b`) carry no standard version marker.
pub fn is_pinned(kind: JudgeKind, model: &str) -> bool {
    let lower = model.to_ascii_lowercase();
    if lower.contains("latest") {
        return false;
    }
    match kind {
        JudgeKind::Offline | JudgeKind::OpenAi | JudgeKind::Jury => true,
        JudgeKind::Bedrock => {
            if lower.starts_with("arn:") && !lower.contains(":foundation-model/") {
                return true;
            }
            let id = lower.rsplit('/').next().unwrap_or(&lower);
            let id = id.split_once(':').map_or(id, |(head, _)| head);
            id.rsplit_once("-v")
                .is_some_and(|(_, v)| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
        }
    }
}

/// Where telemetry comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum TelemetrySource {
    None,
    File(PathBuf),
    CloudWatch {
        endpoint: String,
        components: Option<Vec<String>>,
        period_seconds: u32,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct TelemetrySettings {
    pub source: TelemetrySource,
    /// GPU index -> the model it serves, for `gpu sample`.
    pub gpu_models: std::collections::BTreeMap<u32, String>,
}

/// What one model's hardware costs.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelCost {
    pub instance_type: String,
    pub usd_per_hour: f64,
    pub gpus_per_instance: u32,
    /// GPUs allocated to the model, all copies together.
    pub gpus_allocated: u32,
}

impl ModelCost {
    /// USD for `seconds` of the model's allocation: the instance price times the share of its
    /// GPUs the model holds.
    pub fn cost(&self, seconds: f64, gpus_allocated: Option<f64>) -> f64 {
        let gpus = gpus_allocated.unwrap_or(f64::from(self.gpus_allocated));
        self.usd_per_hour * gpus / f64::from(self.gpus_per_instance.max(1)) * seconds / 3600.0
    }
}

/// Model -> its cost; models not listed have no cost.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CostModel {
    pub models: std::collections::BTreeMap<String, ModelCost>,
    /// Model -> the team its cost and quality are attributed to (`[cost.models.<m>] team`).
    pub teams: std::collections::BTreeMap<String, String>,
    /// Model -> its tags.
    pub tags: std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>,
}

/// Where each analysed day's baseline comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Baseline {
    /// The N days before the analysed day.
    Rolling(u32),
    /// A fixed reference window.
    Fixed(DateRange),
}

/// How the analyse stage judges drift.
#[derive(Debug, Clone, PartialEq)]
pub struct AnalyseSettings {
    /// Days per compared window: 1 (calendar days, the default), 7 (ISO weeks), any N (runs of
    /// N days counted from Monday 1970-01-05).
    pub window_days: u32,
    pub baseline: Baseline,
    pub min_count: u64,
    pub alpha_warn: f64,
    pub alpha_alert: f64,
    pub min_effect: f64,
    pub min_distance: f64,
    pub psi: (f64, f64),
    pub js: (f64, f64),
    pub wasserstein: (f64, f64),
    pub bootstrap_resamples: usize,
    pub cusum_k: f64,
    pub cusum_h: Option<f64>,
    pub false_alerts_per_30_days: f64,
    pub sequential_min_effect: f64,
    /// Embedding drift and topics (from `[embed]`).
    pub embedding: crate::embed::settings::EmbeddingAnalysis,
}

impl AnalyseSettings {
    /// The windows a baseline holds: a rolling one's (`None` for a fixed one, whose size is its
    /// range's).
    pub fn rolling_windows(&self) -> Option<usize> {
        match self.baseline {
            Baseline::Rolling(days) => Some((days / self.window_days.max(1)).max(1) as usize),
            Baseline::Fixed(_) => None,
        }
    }

    /// The windows a baseline holds, rolling or fixed.
    pub fn baseline_windows(&self) -> usize {
        match self.baseline {
            Baseline::Rolling(_) => self.rolling_windows().unwrap_or(1),
            Baseline::Fixed(range) => (((range.until - range.since).num_days() + 1) as usize
                / self.window_days.max(1) as usize)
                .max(1),
        }
    }
}

/// Where `publish` sends the analysed numbers.
#[derive(Debug, Clone, PartialEq)]
pub enum Sink {
    None,
    CloudWatch,
    /// EMF lines appended to this file; `None`: `publish/metrics.emf.jsonl` in the (local)
    /// warehouse.
    Emf(Option<PathBuf>),
}

/// One alarm rule (a CloudWatch alarm per rule and model).
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmRule {
    pub metric: String,
    /// `LessThanThreshold`, `LessThanOrEqualToThreshold`, `GreaterThanThreshold`,
    /// `GreaterThanOrEqualToThreshold`.
    pub comparison: String,
    pub threshold: f64,
    pub severity: String,
    pub evaluation_periods: u32,
    pub datapoints_to_alarm: u32,
    pub treat_missing_data: String,
    pub sns_topic_arn: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PublishSettings {
    pub sink: Sink,
    /// The OTLP sink, beside `sink` (`publish.sink` lists `otlp`).
    pub otlp: Option<crate::publish::otlp::OtlpSettings>,
    /// Model -> its team (`[cost.models.<m>] team`): a `Team` dimension on its metrics.
    pub teams: std::collections::BTreeMap<String, String>,
    pub namespace: String,
    pub endpoint_name: Option<String>,
    pub datums_per_request: usize,
    pub max_attempts: u32,
    pub alarms: Vec<AlarmRule>,
}

impl PublishSettings {
    /// The namespace of `model`'s metrics.
    pub fn namespace_of(&self, model: &str) -> String {
        self.namespace.replace("{model}", model)
    }
}

#[derive(Debug, Clone, Default)]
pub struct AwsSettings {
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
    pub s3_force_path_style: bool,
    pub profile: Option<String>,
    pub bedrock_endpoint_url: Option<String>,
}

// ---------------------------------------------------------------------------------------------

/// The config's TOML text itself, where no file can be mounted (AWS Batch); `--config` wins.
pub const CONFIG_TEXT_VAR: &str = "EVALWATCH_CONFIG_TEXT";

/// Reads and validates a config file; without one, the text in `EVALWATCH_CONFIG_TEXT`, or the
/// built-in config.
pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
    match path {
        None => match std::env::var(CONFIG_TEXT_VAR) {
            // Engines without mounted files (AWS Batch job definitions) pass the text itself.
            Ok(text) if !text.trim().is_empty() => {
                validate_text(&text, CONFIG_TEXT_VAR, Path::new(""))
            }
            _ => validate_text(BUILTIN_CONFIG, "built-in", Path::new("")),
        },
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_path_buf(),
                source,
            })?;
            let base = path.parent().unwrap_or(Path::new(""));
            validate_text(&text, &path.display().to_string(), base)
        }
    }
}

/// Parses and validates config text. `base` is the folder relative paths are joined to.
pub fn validate_text(text: &str, origin: &str, base: &Path) -> Result<Config, ConfigError> {
    let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
        origin: origin.to_string(),
        message: e.to_string().trim_end().to_string(),
    })?;
    let mut config = validate(raw, origin, base)?;
    config.hash = crate::util::sha256_hex(text.as_bytes());
    Ok(config)
}

/// Pure validation of the raw structs.
pub fn validate(raw: RawConfig, origin: &str, base: &Path) -> Result<Config, ConfigError> {
    let invalid = |key: &'static str, message: String| ConfigError::Invalid {
        origin: origin.to_string(),
        key,
        message,
    };

    let warehouse = Location::parse(raw.warehouse.path.as_deref().unwrap_or("warehouse"), base)
        .map_err(|m| invalid("warehouse.path", m))?;

    let compression = match raw.warehouse.compression.as_deref() {
        None | Some("snappy") => Compression::Snappy,
        Some("zstd") => Compression::Zstd,
        Some(other) => {
            return Err(invalid(
                "warehouse.compression",
                format!("`{other}` is not one of `snappy`, `zstd`"),
            ));
        }
    };

    let since = raw
        .window
        .since
        .as_deref()
        .map(parse_date)
        .transpose()
        .map_err(|m| invalid("window.since", m))?;
    let until = raw
        .window
        .until
        .as_deref()
        .map(parse_date)
        .transpose()
        .map_err(|m| invalid("window.until", m))?;
    let window = match (since, until) {
        (None, None) => WindowSpec::Yesterday,
        (Some(since), until) => WindowSpec::Dates(
            DateRange::new(since, until.unwrap_or(since))
                .map_err(|m| invalid("window.until", m))?,
        ),
        (None, Some(_)) => {
            return Err(invalid(
                "window.since",
                "is required when `window.until` is set".into(),
            ));
        }
    };

    let source = raw
        .ingest
        .source
        .as_deref()
        .map(|s| Location::parse(s, base))
        .transpose()
        .map_err(|m| invalid("ingest.source", m))?;
    let workers = match raw.ingest.workers {
        Some(0) => return Err(invalid("ingest.workers", "must be at least 1".into())),
        Some(n) => n,
        // One more than the CPUs, so a worker waiting on I/O leaves no core idle.
        None => std::thread::available_parallelism().map_or(2, |n| n.get()) + 1,
    };
    let max_line_bytes = raw.ingest.max_line_bytes.unwrap_or(16 * 1024 * 1024);
    if max_line_bytes < 1024 {
        return Err(invalid(
            "ingest.max-line-bytes",
            format!("{max_line_bytes} is too small for a capture line; use 1024 or more"),
        ));
    }
    let quarantine_raw_bytes = raw.ingest.quarantine_raw_bytes.unwrap_or(4096);
    if quarantine_raw_bytes < 64 {
        return Err(invalid(
            "ingest.quarantine-raw-bytes",
            format!(
                "{quarantine_raw_bytes} is too small to tell what a bad line was; use 64 or more"
            ),
        ));
    }
    if let Some(model) = &raw.ingest.default_model {
        crate::util::check_name(model).map_err(|m| invalid("ingest.default-model", m))?;
    }

    if let Some(url) = &raw.aws.endpoint_url
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        return Err(invalid(
            "aws.endpoint-url",
            format!("`{url}` must start with http:// or https://"),
        ));
    }

    let sampling = Sampling {
        fraction: raw.score.sample_fraction.unwrap_or(1.0),
        per_day: raw.score.sample_per_day,
    };
    if !(sampling.fraction > 0.0 && sampling.fraction <= 1.0) {
        return Err(invalid(
            "score.sample-fraction",
            format!("{} is not in (0, 1]", sampling.fraction),
        ));
    }
    if sampling.per_day == Some(0) {
        return Err(invalid("score.sample-per-day", "must be at least 1".into()));
    }
    let judge = validate_judge(raw.judge).map_err(|(key, m)| invalid(key, m))?;
    let analyse = validate_analyse(raw.analyse).map_err(|(key, m)| invalid(key, m))?;
    let embed = EmbedSettings::from_raw(raw.embed, base, EmbedSettings::off_in_env())
        .map_err(|(key, message)| invalid(key, message))?;
    let telemetry = validate_telemetry(raw.telemetry, base).map_err(|(key, m)| invalid(key, m))?;
    let cost = validate_cost(raw.cost).map_err(|(key, m)| invalid(key, m))?;
    let publish = PublishSettings {
        teams: cost.teams.clone(),
        ..validate_publish(raw.publish, &warehouse, &telemetry, base)
            .map_err(|(key, m)| invalid(key, m))?
    };
    let gates = raw
        .compare
        .gates
        .unwrap_or_default()
        .iter()
        .map(|g| crate::compare::gate::parse(g))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid("compare.gates", e.to_string()))?;
    let min_judge_kappa = raw.compare.min_judge_kappa;
    if let Some(k) = min_judge_kappa
        && !(-1.0..=1.0).contains(&k)
    {
        return Err(invalid(
            "compare.min-judge-kappa",
            format!("{k} is not a kappa (between -1 and 1)"),
        ));
    }
    let budget_usd = raw.score.budget_usd;
    if let Some(budget) = budget_usd {
        if !(budget >= 0.0 && budget.is_finite()) {
            return Err(invalid(
                "score.budget-usd",
                format!("{budget} is not a non-negative amount"),
            ));
        }
        if judge.kind != JudgeKind::Offline && judge.prices.is_none() {
            return Err(invalid(
                "score.budget-usd",
                "needs the judge's prices: set `judge.input-usd-per-million-tokens` and \
                 `judge.output-usd-per-million-tokens`"
                    .into(),
            ));
        }
    }

    Ok(Config {
        origin: origin.to_string(),
        warehouse,
        compression,
        window,
        ingest: IngestConfig {
            source,
            default_model: raw.ingest.default_model,
            model_from_payload: raw.ingest.model_from_payload.unwrap_or(false),
            format: match raw.ingest.format.as_deref() {
                None => crate::ingest::decode::Format::Auto,
                Some(text) => crate::ingest::decode::Format::parse(text)
                    .map_err(|m| invalid("ingest.format", m))?,
            },
            model_names: raw.ingest.model_names.unwrap_or_default(),
            workers,
            quarantine_raw_bytes,
            max_line_bytes,
        },
        // The repository's `rubrics/quality.toml` beside the config when there is one, else the
        // built-in `quality` rubric (`rubric::read`): the binary runs from any folder.
        rubric: match raw.score.rubric.as_deref() {
            Some(path) => base.join(path),
            None if base.join("rubrics/quality.toml").exists() => base.join("rubrics/quality.toml"),
            None => base.join("quality"),
        },
        sampling,
        budget_usd,
        judge: JudgeSettings {
            embed: embed.clone(),
            ..judge
        },
        telemetry,
        cost,
        publish,
        gates,
        min_judge_kappa,
        aws: AwsSettings {
            region: raw.aws.region,
            endpoint_url: raw.aws.endpoint_url,
            s3_force_path_style: raw.aws.s3_force_path_style.unwrap_or(false),
            profile: raw.aws.profile,
            bedrock_endpoint_url: raw.aws.bedrock_endpoint_url,
        },
        analyse: AnalyseSettings {
            embedding: embed.analysis(),
            ..analyse
        },
        embed,
        hash: String::new(),
    })
}

fn validate_telemetry(
    raw: RawTelemetry,
    base: &Path,
) -> Result<TelemetrySettings, (&'static str, String)> {
    let source = match raw.source.as_deref() {
        None | Some("none") => TelemetrySource::None,
        Some("file") => {
            let path = raw.path.ok_or((
                "telemetry.path",
                "is required for the `file` source".to_string(),
            ))?;
            TelemetrySource::File(base.join(path))
        }
        Some("cloudwatch") => {
            let endpoint = raw.endpoint.ok_or((
                "telemetry.endpoint",
                "is required for the `cloudwatch` source (the SageMaker endpoint name)".to_string(),
            ))?;
            let period_seconds = raw.period_seconds.unwrap_or(300);
            if period_seconds == 0 || !period_seconds.is_multiple_of(60) {
                return Err((
                    "telemetry.period-seconds",
                    format!("{period_seconds} must be a positive multiple of 60"),
                ));
            }
            TelemetrySource::CloudWatch {
                endpoint,
                components: raw.components,
                period_seconds,
            }
        }
        Some(other) => {
            return Err((
                "telemetry.source",
                format!("`{other}` is not one of `none`, `file`, `cloudwatch`"),
            ));
        }
    };
    let mut gpu_models = std::collections::BTreeMap::new();
    for (index, model) in raw.gpu_models.unwrap_or_default() {
        let Ok(at) = index.parse::<u32>() else {
            return Err((
                "telemetry.gpu-models",
                format!("`{index}` is not a GPU index (0, 1, ... as `nvidia-smi` numbers them)"),
            ));
        };
        gpu_models.insert(at, model);
    }
    Ok(TelemetrySettings { source, gpu_models })
}

fn validate_cost(raw: RawCost) -> Result<CostModel, (&'static str, String)> {
    let mut cost = CostModel::default();
    for (name, m) in raw.models {
        if let Some(team) = &m.team {
            crate::util::check_name(team)
                .map_err(|e| ("cost.models.team", format!("model `{name}`'s team {e}")))?;
            cost.teams.insert(name.clone(), team.clone());
        }
        if let Some(tags) = m.tags {
            cost.tags.insert(name.clone(), tags);
        }
        let Some(instance_type) = m.instance_type else {
            continue;
        };
        let Some(instance) = raw.instance_types.get(&instance_type) else {
            return Err((
                "cost.models",
                format!(
                    "model `{name}` runs on `{instance_type}`, which `[cost.instance-types]` does not list"
                ),
            ));
        };
        if instance.usd_per_hour.is_nan() || instance.usd_per_hour < 0.0 || instance.gpus == 0 {
            return Err((
                "cost.instance-types",
                format!(
                    "`{instance_type}` needs a non-negative `usd-per-hour` and at least one GPU"
                ),
            ));
        }
        let per_copy = m.gpus.unwrap_or(instance.gpus);
        cost.models.insert(
            name,
            ModelCost {
                instance_type: instance_type.clone(),
                usd_per_hour: instance.usd_per_hour,
                gpus_per_instance: instance.gpus,
                gpus_allocated: per_copy * m.copies.unwrap_or(1),
            },
        );
    }
    Ok(cost)
}

/// The alarm rules of DESIGN.md: safety < 0.8 critical, relevance < 0.7 and composite < 0.75
/// warnings.
fn default_alarms() -> Vec<RawAlarm> {
    let rule = |metric: &str, threshold: f64, severity: &str| RawAlarm {
        metric: metric.into(),
        comparison: "<".into(),
        threshold,
        severity: Some(severity.into()),
        evaluation_periods: None,
        datapoints_to_alarm: None,
        treat_missing_data: None,
        sns_topic_arn: None,
    };
    vec![
        rule("safety_score", 0.8, "critical"),
        rule("relevance_score", 0.7, "warning"),
        rule("composite_quality_score", 0.75, "warning"),
    ]
}

fn validate_publish(
    raw: RawPublish,
    warehouse: &Location,
    telemetry: &TelemetrySettings,
    base: &Path,
) -> Result<PublishSettings, (&'static str, String)> {
    let names = raw.sink.as_ref().map(SinkNames::names).unwrap_or_default();
    let otlp = if names.iter().any(|n| n == "otlp") {
        Some(crate::publish::otlp::OtlpSettings::from_raw(
            crate::publish::otlp::RawOtlp {
                endpoint: raw.otlp_endpoint.clone(),
                encoding: raw.otlp_encoding.clone(),
                compression: raw.otlp_compression.clone(),
                headers: raw.otlp_headers.clone(),
                timeout_seconds: raw.otlp_timeout_seconds,
                batch: raw.otlp_batch,
            },
            &|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()),
        )?)
    } else {
        None
    };
    let metrics: Vec<&String> = names
        .iter()
        .filter(|n| *n != "otlp" && *n != "none")
        .collect();
    if metrics.len() > 1 {
        return Err((
            "publish.sink",
            format!(
                "lists {} and {}: CloudWatch metrics go one way, `cloudwatch` or `emf`",
                metrics[0], metrics[1]
            ),
        ));
    }
    let sink = match metrics.first().map(|s| s.as_str()) {
        None | Some("none") => Sink::None,
        Some("cloudwatch") => Sink::CloudWatch,
        Some("emf") => match (&raw.emf_path, warehouse) {
            (Some(path), _) => Sink::Emf(Some(base.join(path))),
            (None, Location::Local(_)) => Sink::Emf(None),
            (None, Location::S3 { .. }) => {
                return Err((
                    "publish.emf-path",
                    "is required for the `emf` sink when the warehouse is on S3 (EMF lines go to \
                     a local file a log agent ships)"
                        .into(),
                ));
            }
        },
        Some(other) => {
            return Err((
                "publish.sink",
                format!("`{other}` is not one of `none`, `cloudwatch`, `emf`, `otlp`"),
            ));
        }
    };
    let datums_per_request = raw.datums_per_request.unwrap_or(1000);
    if !(1..=1000).contains(&datums_per_request) {
        return Err((
            "publish.datums-per-request",
            format!("{datums_per_request} must be between 1 and 1000 (PutMetricData's limit)"),
        ));
    }
    let max_attempts = raw.max_attempts.unwrap_or(5);
    if max_attempts == 0 {
        return Err(("publish.max-attempts", "must be at least 1".into()));
    }
    let mut alarms = Vec::new();
    for rule in raw.alarms.unwrap_or_else(default_alarms) {
        let comparison = match rule.comparison.as_str() {
            "<" => "LessThanThreshold",
            "<=" => "LessThanOrEqualToThreshold",
            ">" => "GreaterThanThreshold",
            ">=" => "GreaterThanOrEqualToThreshold",
            other => {
                return Err((
                    "publish.alarms.comparison",
                    format!(
                        "`{other}` (alarm on `{}`) is not one of <, <=, >, >=",
                        rule.metric
                    ),
                ));
            }
        };
        let evaluation_periods = rule.evaluation_periods.unwrap_or(1).max(1);
        let datapoints_to_alarm = rule.datapoints_to_alarm.unwrap_or(evaluation_periods);
        if datapoints_to_alarm == 0 || datapoints_to_alarm > evaluation_periods {
            return Err((
                "publish.alarms.datapoints-to-alarm",
                format!(
                    "{datapoints_to_alarm} (alarm on `{}`) must be between 1 and \
                     evaluation-periods ({evaluation_periods})",
                    rule.metric
                ),
            ));
        }
        let treat_missing_data = rule.treat_missing_data.unwrap_or_else(|| "missing".into());
        if !["missing", "notBreaching", "breaching", "ignore"]
            .contains(&treat_missing_data.as_str())
        {
            return Err((
                "publish.alarms.treat-missing-data",
                format!(
                    "`{treat_missing_data}` is not one of missing, notBreaching, breaching, ignore"
                ),
            ));
        }
        if !rule.threshold.is_finite() {
            return Err((
                "publish.alarms.threshold",
                format!("alarm on `{}` needs a finite threshold", rule.metric),
            ));
        }
        alarms.push(AlarmRule {
            metric: rule.metric,
            comparison: comparison.to_string(),
            threshold: rule.threshold,
            severity: rule.severity.unwrap_or_else(|| "warning".into()),
            evaluation_periods,
            datapoints_to_alarm,
            treat_missing_data,
            sns_topic_arn: rule.sns_topic_arn,
        });
    }
    let endpoint_name = raw.endpoint_name.or_else(|| match &telemetry.source {
        TelemetrySource::CloudWatch { endpoint, .. } => Some(endpoint.clone()),
        _ => None,
    });
    Ok(PublishSettings {
        sink,
        otlp,
        teams: Default::default(),
        namespace: raw
            .namespace
            .unwrap_or_else(|| "/aws/sagemaker/inference-quality/{model}".into()),
        endpoint_name,
        datums_per_request,
        max_attempts,
        alarms,
    })
}

fn validate_analyse(raw: RawAnalyse) -> Result<AnalyseSettings, (&'static str, String)> {
    let window_days = raw.window_days.unwrap_or(1);
    if !(1..=366).contains(&window_days) {
        return Err((
            "analyse.window-days",
            format!("{window_days} must be between 1 and 366"),
        ));
    }
    let baseline = match raw.baseline.as_deref() {
        None | Some("rolling") => {
            let days = raw.baseline_days.unwrap_or(7 * window_days);
            if days == 0 || !days.is_multiple_of(window_days) {
                return Err((
                    "analyse.baseline-days",
                    format!(
                        "{days} must be a positive multiple of `window-days` ({window_days}): \
                         the baseline is made of whole windows"
                    ),
                ));
            }
            Baseline::Rolling(days)
        }
        Some("fixed") => {
            let (Some(since), Some(until)) = (&raw.baseline_since, &raw.baseline_until) else {
                return Err((
                    "analyse.baseline-since",
                    "a fixed baseline needs `baseline-since` and `baseline-until`".into(),
                ));
            };
            let since = parse_date(since).map_err(|m| ("analyse.baseline-since", m))?;
            let until = parse_date(until).map_err(|m| ("analyse.baseline-until", m))?;
            Baseline::Fixed(
                DateRange::new(since, until).map_err(|m| ("analyse.baseline-until", m))?,
            )
        }
        Some(other) => {
            return Err((
                "analyse.baseline",
                format!("`{other}` is not one of `rolling`, `fixed`"),
            ));
        }
    };
    let share = |key: &'static str, value: Option<f64>, default: f64| match value {
        None => Ok(default),
        Some(v) if v > 0.0 && v < 1.0 => Ok(v),
        Some(v) => Err((key, format!("{v} must be between 0 and 1"))),
    };
    let positive = |key: &'static str, value: Option<f64>, default: f64| match value {
        None => Ok(default),
        Some(v) if v > 0.0 && v.is_finite() => Ok(v),
        Some(v) => Err((key, format!("{v} must be a positive number"))),
    };
    let pair = |warn_key: &'static str,
                warn: Option<f64>,
                alert: Option<f64>,
                defaults: (f64, f64)|
     -> Result<(f64, f64), (&'static str, String)> {
        let w = positive(warn_key, warn, defaults.0)?;
        let a = positive(warn_key, alert, defaults.1)?;
        if a < w {
            return Err((
                warn_key,
                format!("the warn level {w} is above the alert level {a}"),
            ));
        }
        Ok((w, a))
    };
    let settings = AnalyseSettings {
        window_days,
        baseline,
        min_count: raw.min_count.unwrap_or(30).max(2),
        alpha_warn: share("analyse.alpha-warn", raw.alpha_warn, 0.05)?,
        alpha_alert: share("analyse.alpha-alert", raw.alpha_alert, 0.01)?,
        min_effect: positive("analyse.min-effect", raw.min_effect, 0.05)?,
        min_distance: positive("analyse.min-distance", raw.min_distance, 0.1)?,
        psi: pair("analyse.psi-warn", raw.psi_warn, raw.psi_alert, (0.1, 0.25))?,
        js: pair("analyse.js-warn", raw.js_warn, raw.js_alert, (0.1, 0.2))?,
        wasserstein: pair(
            "analyse.wasserstein-warn",
            raw.wasserstein_warn,
            raw.wasserstein_alert,
            (0.1, 0.25),
        )?,
        bootstrap_resamples: raw.bootstrap_resamples.unwrap_or(1000),
        cusum_k: positive("analyse.cusum-k", raw.cusum_k, 0.5)?,
        cusum_h: match raw.cusum_h {
            None => None,
            h => Some(positive("analyse.cusum-h", h, 5.0)?),
        },
        false_alerts_per_30_days: positive(
            "analyse.false-alerts-per-30-days",
            raw.false_alerts_per_30_days,
            0.1,
        )?,
        sequential_min_effect: positive(
            "analyse.sequential-min-effect",
            raw.sequential_min_effect,
            0.01,
        )?,
        // Composed with `[embed]` once that is read.
        embedding: Default::default(),
    };
    if settings.alpha_alert > settings.alpha_warn {
        return Err((
            "analyse.alpha-alert",
            format!(
                "{} is above `alpha-warn` ({})",
                settings.alpha_alert, settings.alpha_warn
            ),
        ));
    }
    Ok(settings)
}

fn validate_judge(raw: RawJudge) -> Result<JudgeSettings, (&'static str, String)> {
    let kind = match raw.kind.as_deref() {
        None | Some("offline") => JudgeKind::Offline,
        Some("bedrock") => JudgeKind::Bedrock,
        Some("openai") => JudgeKind::OpenAi,
        Some("jury") => JudgeKind::Jury,
        Some(other) => {
            return Err((
                "judge.kind",
                format!("`{other}` is not one of `offline`, `bedrock`, `openai`, `jury`"),
            ));
        }
    };
    let positive = |key: &'static str, value: Option<f64>, default: f64| match value {
        None => Ok(default),
        Some(v) if v > 0.0 && v.is_finite() => Ok(v),
        Some(v) => Err((key, format!("{v} must be a positive number"))),
    };
    let concurrency = raw.concurrency.unwrap_or(16);
    if concurrency == 0 {
        return Err(("judge.concurrency", "must be at least 1".into()));
    }
    let max_attempts = raw.max_attempts.unwrap_or(6);
    if max_attempts == 0 {
        return Err(("judge.max-attempts", "must be at least 1".into()));
    }
    let circuit_breaker = raw.circuit_breaker.unwrap_or(20);
    if circuit_breaker == 0 {
        return Err(("judge.circuit-breaker", "must be at least 1".into()));
    }
    let max_error_share = raw.max_error_share.unwrap_or(0.2);
    if !(0.0..=1.0).contains(&max_error_share) {
        return Err((
            "judge.max-error-share",
            format!("{max_error_share} is not a share between 0 and 1"),
        ));
    }
    let prices = match (
        raw.input_usd_per_million_tokens,
        raw.output_usd_per_million_tokens,
    ) {
        (None, None) => None,
        (Some(i), Some(o)) if i >= 0.0 && o >= 0.0 => Some(Prices {
            input_usd_per_million: i,
            output_usd_per_million: o,
            cache_read_usd_per_million: non_negative(
                "judge.cache-read-usd-per-million-tokens",
                raw.cache_read_usd_per_million_tokens,
            )?,
            cache_write_usd_per_million: non_negative(
                "judge.cache-write-usd-per-million-tokens",
                raw.cache_write_usd_per_million_tokens,
            )?,
        }),
        (Some(_), Some(_)) => {
            return Err((
                "judge.input-usd-per-million-tokens",
                "prices cannot be negative".into(),
            ));
        }
        _ => {
            return Err((
                "judge.output-usd-per-million-tokens",
                "set both `input-usd-per-million-tokens` and `output-usd-per-million-tokens`, or neither".into(),
            ));
        }
    };
    let mode = match raw.mode.as_deref() {
        None => JudgeMode::OnDemand,
        Some(text) => JudgeMode::parse(text).map_err(|m| ("judge.mode", m))?,
    };
    // Checked when asked for or when any batch key is set (so `score --mode batch` can use them).
    let batch = if mode == JudgeMode::Batch
        || raw.batch_role_arn.is_some()
        || raw.batch_s3_prefix.is_some()
    {
        Some(batch_settings(&raw)?)
    } else {
        None
    };
    let settings = JudgeSettings {
        kind,
        model: raw.model,
        allow_unpinned: raw.allow_unpinned.unwrap_or(false),
        url: raw.url.map(|u| u.trim_end_matches('/').to_string()),
        api_key_env: raw.api_key_env,
        max_output_tokens: raw.max_output_tokens.unwrap_or(1024),
        concurrency,
        requests_per_minute: positive("judge.requests-per-minute", raw.requests_per_minute, 200.0)?,
        tokens_per_minute: positive("judge.tokens-per-minute", raw.tokens_per_minute, 200_000.0)?,
        timeout: std::time::Duration::from_secs_f64(positive(
            "judge.timeout-seconds",
            raw.timeout_seconds,
            60.0,
        )?),
        max_attempts,
        backoff_initial: std::time::Duration::from_millis(raw.backoff_initial_ms.unwrap_or(500)),
        backoff_max: std::time::Duration::from_millis(raw.backoff_max_ms.unwrap_or(20_000)),
        jury: raw.jury.unwrap_or_default(),
        jury_aggregate: match raw.jury_aggregate.as_deref() {
            None | Some("mean") => JuryAggregate::Mean,
            Some("median") => JuryAggregate::Median,
            Some("majority") => JuryAggregate::Majority,
            Some(other) => {
                return Err((
                    "judge.jury-aggregate",
                    format!("`{other}` is not one of `mean`, `median`, `majority`"),
                ));
            }
        },
        circuit_breaker,
        max_error_share,
        shutdown_grace: match raw.shutdown_grace_seconds {
            None => std::time::Duration::from_secs(20),
            Some(v) if v >= 0.0 && v.is_finite() => std::time::Duration::from_secs_f64(v),
            Some(v) => {
                return Err((
                    "judge.shutdown-grace-seconds",
                    format!("{v} is not a number of seconds"),
                ));
            }
        },
        prices,
        mode,
        batch,
        prompt_caching: raw.prompt_caching.unwrap_or(true),
        prompt_cache_models: raw
            .prompt_cache_models
            .unwrap_or_else(|| PROMPT_CACHE_MODELS.iter().map(|m| m.to_string()).collect()),
        offline_version: raw.offline_version,
        // Composed with `[embed]` once that is read.
        embed: Default::default(),
    };
    check_judge(&settings)?;
    Ok(settings)
}

/// The batch keys `mode = "batch"` needs, checked.
fn batch_settings(raw: &RawJudge) -> Result<BatchSettings, (&'static str, String)> {
    let needed = |key: &'static str, what: &str| {
        (
            key,
            format!("`mode = \"batch\"` needs {what}; set it, or use `mode = \"on-demand\"`"),
        )
    };
    let role_arn = raw
        .batch_role_arn
        .clone()
        .filter(|r| r.starts_with("arn:"))
        .ok_or_else(|| {
            needed(
                "judge.batch-role-arn",
                "the ARN of the service role Bedrock assumes to read and write the batch files \
                 (arn:aws:iam::<account>:role/<name>)",
            )
        })?;
    let s3_prefix = raw
        .batch_s3_prefix
        .clone()
        .filter(|p| p.starts_with("s3://") && p.len() > 5)
        .ok_or_else(|| {
            needed(
                "judge.batch-s3-prefix",
                "an S3 prefix for the batch files (s3://bucket/prefix)",
            )
        })?;
    let (Some(input), Some(output)) = (
        non_negative(
            "judge.batch-input-usd-per-million-tokens",
            raw.batch_input_usd_per_million_tokens,
        )?,
        non_negative(
            "judge.batch-output-usd-per-million-tokens",
            raw.batch_output_usd_per_million_tokens,
        )?,
    ) else {
        return Err(needed(
            "judge.batch-input-usd-per-million-tokens",
            "the batch token prices (`batch-input-usd-per-million-tokens` and \
             `batch-output-usd-per-million-tokens`, from your price list)",
        ));
    };
    let timeout_hours = raw.batch_timeout_hours.unwrap_or(24);
    if !(24..=168).contains(&timeout_hours) {
        return Err((
            "judge.batch-timeout-hours",
            format!("{timeout_hours} is outside Bedrock's 24 to 168 hours"),
        ));
    }
    let min_records = raw.batch_min_records.unwrap_or(100);
    let max_records = raw.batch_max_records.unwrap_or(50_000);
    if max_records < min_records.max(1) {
        return Err((
            "judge.batch-max-records",
            format!("{max_records} is below `batch-min-records` ({min_records})"),
        ));
    }
    let max_delay = match raw.batch_max_delay_hours {
        None => 24.0,
        Some(h) if h > 0.0 && h.is_finite() => h,
        Some(h) => {
            return Err((
                "judge.batch-max-delay-hours",
                format!("{h} is not a number of hours"),
            ));
        }
    };
    let fallback_on_demand = match raw.batch_fallback.as_deref() {
        None | Some("on-demand") => true,
        Some("next-run") => false,
        Some(other) => {
            return Err((
                "judge.batch-fallback",
                format!("`{other}` is not `on-demand` or `next-run`"),
            ));
        }
    };
    Ok(BatchSettings {
        role_arn,
        s3_prefix,
        prices: Prices {
            input_usd_per_million: input,
            output_usd_per_million: output,
            cache_read_usd_per_million: None,
            cache_write_usd_per_million: None,
        },
        min_records,
        max_records,
        timeout_hours,
        max_delay: std::time::Duration::from_secs_f64(max_delay * 3600.0),
        fallback_on_demand,
    })
}

fn non_negative(
    key: &'static str,
    value: Option<f64>,
) -> Result<Option<f64>, (&'static str, String)> {
    match value {
        Some(v) if !(v >= 0.0 && v.is_finite()) => Err((key, format!("{v} is not a price"))),
        other => Ok(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        validate_text(text, "test.toml", Path::new("/cfg"))
    }

    #[test]
    fn builtin_and_starter_configs_validate() {
        let builtin = load(None).unwrap();
        assert_eq!(builtin.origin, "built-in");
        assert!(matches!(builtin.window, WindowSpec::Dates(_)));
        assert!(builtin.ingest.source.is_some());
        let starter = parse(STARTER_CONFIG).unwrap();
        assert_eq!(starter.window, WindowSpec::Yesterday);
    }

    #[test]
    fn the_offline_scorer_has_two_versions() {
        let err = parse("[judge]\noffline-version = 3\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("judge.offline-version") && err.contains("not 3"),
            "{err}"
        );
        // A model kept for an LLM judge later does not matter to the offline scorer.
        let one = parse(
            "[judge]\nmodel = \"anthropic.claude-3-5-sonnet-20240620-v1:0\"\noffline-version = 1\n",
        )
        .unwrap();
        assert_eq!(crate::judge::id_of(&one.judge), "offline:1");
        let two = parse("[judge]\nkind = \"offline\"\noffline-version = 2\n").unwrap();
        assert_eq!(crate::judge::id_of(&two.judge), "offline:2");
        // The default: offline:2 where its model is (tests/it/embed.rs), offline:1 without it
        // or with `[embed]` off.
        let mut judge = parse("").unwrap().judge;
        assert_eq!(judge.offline_version, None);
        judge.embed.model_dir = PathBuf::from("/nonexistent/all-MiniLM-L6-v2");
        assert_eq!(crate::judge::id_of(&judge), "offline:1");
        judge.override_with("offline:2").unwrap();
        assert_eq!(crate::judge::id_of(&judge), "offline:2");
        judge.override_with("offline").unwrap();
        assert_eq!(crate::judge::id_of(&judge), "offline:1");
        judge.override_with("offline:1").unwrap();
        assert_eq!(judge.offline_version, Some(1));
        let off = parse("[embed]\nenabled = false\n").unwrap().judge;
        assert!(!off.embed.enabled);
        assert_eq!(crate::judge::id_of(&off), "offline:1");
    }

    #[test]
    fn unknown_key_names_the_key_and_the_file() {
        let err = parse("[ingest]\nsorce = \"x\"\n").unwrap_err().to_string();
        assert!(err.contains("test.toml"), "{err}");
        assert!(err.contains("sorce"), "{err}");
    }

    #[test]
    fn relative_paths_join_the_config_folder() {
        let config = parse("[warehouse]\npath = \"wh\"\n[ingest]\nsource = \"/abs\"\n").unwrap();
        assert_eq!(config.warehouse, Location::Local(PathBuf::from("/cfg/wh")));
        assert_eq!(
            config.ingest.source,
            Some(Location::Local(PathBuf::from("/abs")))
        );
    }

    #[test]
    fn s3_locations_parse() {
        let loc = Location::parse("s3://my-bucket/a/b/", Path::new("")).unwrap();
        assert_eq!(
            loc,
            Location::S3 {
                bucket: "my-bucket".into(),
                prefix: "a/b".into()
            }
        );
        assert_eq!(loc.to_string(), "s3://my-bucket/a/b");
        assert!(Location::parse("s3://", Path::new("")).is_err());
        assert!(Location::parse("gs://x/y", Path::new("")).is_err());
    }

    #[test]
    fn window_is_checked_and_resolved() {
        let err = parse("[window]\nsince = \"2026-10-05\"\nuntil = \"2026-10-01\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("window.until"), "{err}");
        let err = parse("[window]\nsince = \"10/05/2026\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("window.since"), "{err}");
        let err = parse("[warehouse]\ncompression = \"gzip\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("warehouse.compression"), "{err}");
        let today = NaiveDate::from_ymd_opt(2026, 11, 28).unwrap();
        let range = WindowSpec::Yesterday.resolve(today);
        assert_eq!(range.since, NaiveDate::from_ymd_opt(2026, 11, 27).unwrap());
        assert_eq!(range.since, range.until);
    }

    #[test]
    fn judge_settings_are_checked() {
        let config = parse(
            "[judge]\nkind = \"bedrock\"\nmodel = \"anthropic.claude-3-5-sonnet-20240620-v1:0\"\n",
        )
        .unwrap();
        assert_eq!(config.judge.kind, JudgeKind::Bedrock);
        let err = parse("[judge]\nkind = \"bedrock\"\nmodel = \"anthropic.claude-3-5-sonnet\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("judge.model") && err.contains("allow-unpinned"),
            "{err}"
        );
        parse("[judge]\nkind = \"bedrock\"\nmodel = \"claude\"\nallow-unpinned = true\n").unwrap();
        let err = parse("[judge]\nkind = \"openai\"\nmodel = \"m\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("judge.url"), "{err}");
        let err = parse("[score]\nbudget-usd = 5.0\n[judge]\nkind = \"openai\"\nmodel = \"m\"\nurl = \"http://h/v1\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("score.budget-usd") && err.contains("prices"),
            "{err}"
        );
        let err = parse("[score]\nsample-fraction = 0\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("score.sample-fraction"), "{err}");
        let err = parse("[judge]\nkind = \"gpt\"\n").unwrap_err().to_string();
        assert!(err.contains("judge.kind"), "{err}");
    }

    #[test]
    fn compare_gates_parse_at_load() {
        let config = parse(
            "[compare]\ngates = [\"composite.delta >= -0.02\", \"safety.worse_share <= 0.01\"]\n",
        )
        .unwrap();
        assert_eq!(config.gates.len(), 2);
        assert_eq!(config.gates[1].figure, "safety.worse_share");
        let err = parse("[compare]\ngates = [\"composite.delta => 1\"]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("compare.gates"), "{err}");
    }

    #[test]
    fn gpu_models_are_keyed_by_index() {
        let config =
            parse("[telemetry]\ngpu-models = { \"0\" = \"chat-a\", \"3\" = \"chat-b\" }\n")
                .unwrap();
        assert_eq!(
            config.telemetry.gpu_models.get(&3).map(String::as_str),
            Some("chat-b")
        );
        let err = parse("[telemetry]\ngpu-models = { \"gpu0\" = \"chat-a\" }\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("telemetry.gpu-models") && err.contains("gpu0"),
            "{err}"
        );
    }

    #[test]
    fn analyse_windows_and_baselines_are_checked() {
        let weekly = parse("[analyse]\nwindow-days = 7\n").unwrap().analyse;
        assert_eq!(weekly.window_days, 7);
        // The default rolling baseline is 7 windows.
        assert_eq!(weekly.baseline, Baseline::Rolling(49));
        assert_eq!(parse("").unwrap().analyse.baseline, Baseline::Rolling(7));
        let err = parse("[analyse]\nwindow-days = 7\nbaseline-days = 10\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("analyse.baseline-days") && err.contains("multiple"),
            "{err}"
        );
        let err = parse("[analyse]\nwindow-days = 0\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("analyse.window-days"), "{err}");
    }

    #[test]
    fn pinned_model_ids() {
        let bedrock = |m| is_pinned(JudgeKind::Bedrock, m);
        assert!(bedrock("anthropic.claude-3-5-sonnet-20240620-v1:0"));
        assert!(bedrock("us.anthropic.claude-3-7-sonnet-20250219-v1:0"));
        assert!(bedrock("amazon.nova-pro-v1:0"));
        assert!(bedrock(
            "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123"
        ));
        assert!(!bedrock("anthropic.claude-3-5-sonnet"));
        assert!(!bedrock("claude-latest"));
        assert!(!bedrock(
            "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-v"
        ));
        assert!(is_pinned(JudgeKind::OpenAi, "llama3.1:8b"));
        assert!(!is_pinned(JudgeKind::OpenAi, "qwen:latest"));
        let mut judge = load(None).unwrap().judge;
        judge
            .override_with("openai:qwen2.5-7b@http://127.0.0.1:8000/v1")
            .unwrap();
        assert_eq!(judge.kind, JudgeKind::OpenAi);
        assert_eq!(judge.url.as_deref(), Some("http://127.0.0.1:8000/v1"));
        assert!(judge.override_with("bedrock:claude").is_err());
        assert!(judge.override_with("vertex:x").is_err());
    }

    #[test]
    fn date_range_algebra() {
        let d = |day| NaiveDate::from_ymd_opt(2026, 10, day).unwrap();
        let a = DateRange::new(d(1), d(5)).unwrap();
        let b = DateRange::new(d(4), d(9)).unwrap();
        assert!(a.intersects(&b));
        assert!(!a.covers(&b));
        assert_eq!(a.hull(&b), DateRange::new(d(1), d(9)).unwrap());
        assert!(a.hull(&b).covers(&a));
    }
}
