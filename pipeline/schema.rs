//! Every warehouse table's name and columns: the one place they are spelled. Writers build their
//! frames from these names (a test per writer checks it writes exactly [`COLUMNS`] in order), and
//! readers ask for them by the same constants, so a column cannot be declared, read, and never
//! written.
//!
//! Partition columns (`model=`, `date=`) live in the path only (ARCHITECTURE.md); readers get them
//! back from it ([`crate::table::read_part`]) under [`MODEL`] and [`DATE`].
//!
//! [`COLUMNS`]: captures::COLUMNS

/// The model (inference component) partition of `captures`, `scores`, `telemetry`; a column of
/// `drift` and `aggregates`.
pub const MODEL: &str = "model";
/// The date partition of every table.
pub const DATE: &str = "date";

macro_rules! table {
    (
        $(#[$doc:meta])*
        $module:ident = $table:literal {
            $( $(#[$col_doc:meta])* $column:ident = $name:literal, )*
        }
    ) => {
        $(#[$doc])*
        pub mod $module {
            /// The table's folder in the warehouse.
            pub const TABLE: &str = $table;
            $( $(#[$col_doc])* pub const $column: &str = $name; )*
            /// Every column the writer writes, in its order (besides per-dimension ones, where
            /// the table has them).
            pub const COLUMNS: &[&str] = &[ $( $name ),* ];
        }
    };
}

table! {
    /// `captures/model=<m>/date=<d>/`: one row per captured request (the ingest stage).
    captures = "captures" {
        REQUEST_ID = "request_id",
        INFERENCE_ID = "inference_id",
        ENDPOINT = "endpoint",
        VARIANT = "variant",
        /// UTC microseconds.
        CAPTURED_AT = "captured_at",
        PROMPT = "prompt",
        MESSAGES = "messages",
        RESPONSE = "response",
        PROMPT_TOKENS = "prompt_tokens",
        COMPLETION_TOKENS = "completion_tokens",
        LATENCY_MS = "latency_ms",
        FINISH_REASON = "finish_reason",
        /// The `model` field of an OpenAI-style payload (not the partition).
        PAYLOAD_MODEL = "payload_model",
        SOURCE_URI = "source_uri",
        SOURCE_LINE = "source_line",
        CONTENT_HASH = "content_hash",
        PROMPT_CHARS = "prompt_chars",
        RESPONSE_CHARS = "response_chars",
        REFUSAL = "refusal",
    }
}

table! {
    /// `quarantine/date=<d>/`: one row per line that is not a capture, with the reason.
    quarantine = "quarantine" {
        SOURCE_URI = "source_uri",
        SOURCE_LINE = "source_line",
        ERROR = "error",
        RAW = "raw",
        RAW_BYTES = "raw_bytes",
    }
}

table! {
    /// `scores/rubric=<id>@<version>/model=<m>/date=<d>/`: one row per capture and dimension
    /// (the score stage; which rows are current: [`crate::score::current`]).
    scores = "scores" {
        REQUEST_ID = "request_id",
        CONTENT_HASH = "content_hash",
        CAPTURED_AT = "captured_at",
        RUBRIC_ID = "rubric_id",
        RUBRIC_VERSION = "rubric_version",
        RUBRIC_HASH = "rubric_hash",
        JUDGE = "judge",
        JUDGE_PARAMS_HASH = "judge_params_hash",
        DIMENSION = "dimension",
        /// Normalised 0..1.
        SCORE = "score",
        /// The level the judge gave.
        LABEL = "label",
        RATIONALE = "rationale",
        /// `ok`, `error` or `skipped_budget`.
        STATUS = "status",
        ERROR = "error",
        JUDGE_LATENCY_MS = "judge_latency_ms",
        INPUT_TOKENS = "input_tokens",
        OUTPUT_TOKENS = "output_tokens",
        /// Input tokens the judge read from its prompt cache (Bedrock prompt caching), shared
        /// over the call's dimension rows like the other token counts.
        CACHE_READ_TOKENS = "cache_read_tokens",
        CACHE_WRITE_TOKENS = "cache_write_tokens",
        JUDGE_COST_USD = "judge_cost_usd",
        SCORED_AT = "scored_at",
        /// A jury's rows: each member's level, `{"<member judge id>": level, ...}` (JSON); null
        /// for a single judge.
        MEMBER_LEVELS = "member_levels",
    }
}

/// The values of `scores.status`.
pub mod status {
    pub const OK: &str = "ok";
    pub const ERROR: &str = "error";
    pub const SKIPPED_BUDGET: &str = "skipped_budget";
}

table! {
    /// `embeddings/model=<m>/date=<d>/`: one row per sampled capture and kind (the embed stage):
    /// the prompt's last user turn and the reply as unit-length vectors.
    embeddings = "embeddings" {
        REQUEST_ID = "request_id",
        /// UTC microseconds.
        CAPTURED_AT = "captured_at",
        /// `prompt` or `reply`.
        KIND = "kind",
        /// SHA-256 of the kind and the text: the cache key (the same text is embedded once).
        TEXT_HASH = "text_hash",
        /// 384 float32 values, L2-normalised.
        VECTOR = "vector",
        /// The model that embedded it ([`crate::embed::model::EMBEDDER_ID`]).
        EMBEDDER = "embedder",
        EMBEDDED_AT = "embedded_at",
    }
}

/// The values of `embeddings.kind`.
pub mod kind {
    pub const PROMPT: &str = "prompt";
    pub const REPLY: &str = "reply";
}

table! {
    /// `telemetry/model=<m>/date=<d>/`: one row per sample period (the telemetry stage).
    telemetry = "telemetry" {
        TS = "ts",
        GPU_UTIL_PCT = "gpu_util_pct",
        GPU_MEM_PCT = "gpu_mem_pct",
        CPU_UTIL_PCT = "cpu_util_pct",
        INVOCATIONS = "invocations",
        ERRORS_5XX = "errors_5xx",
        MODEL_LATENCY_MS = "model_latency_ms",
        GPUS_ALLOCATED = "gpus_allocated",
        INSTANCE_TYPE = "instance_type",
        PERIOD_SECONDS = "period_seconds",
        POWER_W = "power_w",
        GPU = "gpu",
        COST_USD = "cost_usd",
        SOURCE = "source",
    }
}

table! {
    /// `drift/date=<d>/`: one row per model, window, metric and test (the analyse stage).
    drift = "drift" {
        MODEL = "model",
        METRIC = "metric",
        TEST = "test",
        STATISTIC = "statistic",
        P_VALUE = "p_value",
        P_ADJUSTED = "p_adjusted",
        THRESHOLD = "threshold",
        N_CURRENT = "n_current",
        N_BASELINE = "n_baseline",
        /// Which windows formed the baseline.
        BASELINE = "baseline",
        CURRENT_MEAN = "current_mean",
        BASELINE_MEAN = "baseline_mean",
        CI_LOW = "ci_low",
        CI_HIGH = "ci_high",
        /// `ok`, `warn`, `alert` or `insufficient_data`.
        VERDICT = "verdict",
        PATTERN = "pattern",
        WINDOW_DAYS = "window_days",
        RUBRIC = "rubric",
        JUDGE = "judge",
        ANALYSED_AT = "analysed_at",
    }
}

table! {
    /// `topics/date=<d>/`: one row per model, window and topic of the baseline's prompts (and
    /// one for the novel prompts): what users asked and how it fared (the analyse stage, with
    /// embeddings).
    topics = "topics" {
        MODEL = "model",
        WINDOW_DAYS = "window_days",
        /// The first day of the epoch whose baseline the topics were fitted on: topic names
        /// mean the same within an epoch.
        EPOCH = "epoch",
        /// `topic-1`, ..., or `novel`.
        TOPIC = "topic",
        /// The window's prompts in it.
        PROMPTS = "prompts",
        SHARE = "share",
        BASELINE_SHARE = "baseline_share",
        /// Mean composite of its prompts' judged replies.
        COMPOSITE_MEAN = "composite_mean",
        JUDGE_ERROR_RATE = "judge_error_rate",
        /// Its share of the window's tokens (prompt and completion; characters / 4 without
        /// token counts): what it costs of the model's hardware.
        COST_SHARE = "cost_share",
        /// `cost_share` of the window's cost, when the cost is known.
        COST_USD = "cost_usd",
        /// The five terms that set it apart (class-based TF-IDF over its prompts), comma-separated.
        TOP_TERMS = "top_terms",
        /// Three representative prompts (nearest its centre; for `novel`, farthest from every
        /// topic), redacted, JSON array.
        EXAMPLES = "examples",
        RUBRIC = "rubric",
        JUDGE = "judge",
        ANALYSED_AT = "analysed_at",
    }
}

table! {
    /// `aggregates/date=<d>/`: one row per model and window (the analyse stage). Per rubric
    /// dimension it also has the columns of `crate::schema::dimensions` (mean, threshold, pass
    /// rate, jury alpha, minimum detectable drops in 1, 3, 7 days), after `SKIPPED_BUDGET`.
    aggregates = "aggregates" {
        MODEL = "model",
        WINDOW_DAYS = "window_days",
        TEAM = "team",
        REQUESTS = "requests",
        JUDGED = "judged",
        JUDGE_ERRORS = "judge_errors",
        SKIPPED_BUDGET = "skipped_budget",
        COMPOSITE_MEAN = "composite_mean",
        /// Share of the judged captures whose composite is at or above the rubric's threshold.
        COMPOSITE_PASS_RATE = "composite_pass_rate",
        /// The smallest sustained drop of the composite mean caught within 1, 3 and 7 days with
        /// 80% power at the window's n (`analyse::sequential::mde`).
        COMPOSITE_MDE_1D = "composite_mde_1d",
        COMPOSITE_MDE_3D = "composite_mde_3d",
        COMPOSITE_MDE_7D = "composite_mde_7d",
        LATENCY_P50_MS = "latency_p50_ms",
        LATENCY_P99_MS = "latency_p99_ms",
        PROMPT_CHARS_MEAN = "prompt_chars_mean",
        RESPONSE_CHARS_MEAN = "response_chars_mean",
        REFUSAL_RATE = "refusal_rate",
        JUDGE_COST_USD = "judge_cost_usd",
        INVOCATIONS = "invocations",
        ERRORS_5XX = "errors_5xx",
        MODEL_LATENCY_MS_MEAN = "model_latency_ms_mean",
        GPU_UTIL_MEAN = "gpu_util_mean",
        GPU_UTIL_P95 = "gpu_util_p95",
        GPU_UTIL_AT_REQUESTS = "gpu_util_at_requests",
        GPU_MEM_MEAN = "gpu_mem_mean",
        GPUS_ALLOCATED = "gpus_allocated",
        COST_USD = "cost_usd",
        COST_PER_1K_REQUESTS = "cost_per_1k_requests",
        COST_PER_1M_TOKENS = "cost_per_1m_tokens",
        QUALITY_PER_DOLLAR = "quality_per_dollar",
        /// Alert events: metrics with a test alerting.
        ALERTS = "alerts",
        /// Warning events: metrics with a test warning and none alerting.
        WARNINGS = "warnings",
        /// A jury's captures whose members were two levels or more apart on a dimension (null
        /// for a single judge).
        JURY_DISAGREEMENTS = "jury_disagreements",
        RUBRIC = "rubric",
        JUDGE = "judge",
        ANALYSED_AT = "analysed_at",
    }
}

table! {
    /// `calibration/rubric=<id>@<version>/part-<judge>.parquet`: how well a judge agrees with
    /// people's labels, one row per dimension (`evalwatch calibrate`).
    calibration = "calibration" {
        RUBRIC = "rubric",
        RUBRIC_HASH = "rubric_hash",
        JUDGE = "judge",
        DIMENSION = "dimension",
        N = "n",
        KAPPA_UNWEIGHTED = "kappa_unweighted",
        KAPPA_LINEAR = "kappa_linear",
        KAPPA_QUADRATIC = "kappa_quadratic",
        KAPPA_QUADRATIC_LOW = "kappa_quadratic_low",
        KAPPA_QUADRATIC_HIGH = "kappa_quadratic_high",
        ALPHA_ORDINAL = "alpha_ordinal",
        SPEARMAN = "spearman",
        ACCURACY = "accuracy",
        MAJORITY_BASELINE = "majority_baseline",
        ROC_AUC = "roc_auc",
        RATERS_ALPHA = "raters_alpha",
        LABELS_FILE = "labels_file",
        CALIBRATED_AT = "calibrated_at",
    }
}

pub mod dimensions {
    //! The per-dimension columns of `aggregates`.

    /// The mean score of `dimension`.
    pub fn mean(dimension: &str) -> String {
        format!("{dimension}_mean")
    }

    /// The rubric's alert threshold of `dimension`.
    pub fn threshold(dimension: &str) -> String {
        format!("{dimension}_threshold")
    }

    /// Share of the judged captures at or above the threshold of `dimension`.
    pub fn pass_rate(dimension: &str) -> String {
        format!("{dimension}_pass_rate")
    }

    /// A jury's members' agreement on `dimension` (Krippendorff's alpha, ordinal).
    pub fn jury_alpha(dimension: &str) -> String {
        format!("{dimension}_jury_alpha")
    }

    /// The smallest sustained drop of `dimension`'s mean the monitor catches within `days` days
    /// with 80% power, at the window's n (`composite` for the composite's).
    pub fn mde(dimension: &str, days: usize) -> String {
        format!("{dimension}_mde_{days}d")
    }
}

pub use dimensions::{
    jury_alpha as dimension_jury_alpha, mde as dimension_mde, mean as dimension_mean,
    pass_rate as dimension_pass_rate, threshold as dimension_threshold,
};

/// Checks that `df` has exactly `expected` columns, in order (the writers' tests).
pub fn check(
    table: &str,
    df: &polars::prelude::DataFrame,
    expected: &[String],
) -> Result<(), String> {
    let written: Vec<String> = df
        .get_column_names()
        .iter()
        .map(|n| n.to_string())
        .collect();
    if written == expected {
        Ok(())
    } else {
        Err(format!(
            "`{table}` writes {written:?}, the schema says {expected:?}"
        ))
    }
}
