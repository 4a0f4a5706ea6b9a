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
    /// How captures are judged.
    #[serde(default)]
    pub score: RawScore,
    /// AWS client settings shared by every stage that talks to AWS.
    #[serde(default)]
    pub aws: RawAws,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawScore {
    /// The rubric file. Default: `rubrics/quality.toml`.
    pub rubric: Option<String>,
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
    pub aws: AwsSettings,
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
    pub workers: usize,
    pub quarantine_raw_bytes: usize,
}

#[derive(Debug, Clone, Default)]
pub struct AwsSettings {
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
    pub s3_force_path_style: bool,
    pub profile: Option<String>,
}

// ---------------------------------------------------------------------------------------------

/// Reads and validates a config file, or the built-in one when `path` is `None`.
pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
    match path {
        None => validate_text(BUILTIN_CONFIG, "built-in", Path::new("")),
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

    Ok(Config {
        origin: origin.to_string(),
        warehouse,
        compression,
        window,
        ingest: IngestConfig {
            source,
            default_model: raw.ingest.default_model,
            model_from_payload: raw.ingest.model_from_payload.unwrap_or(false),
            workers,
            quarantine_raw_bytes,
        },
        rubric: base.join(
            raw.score
                .rubric
                .as_deref()
                .unwrap_or("rubrics/quality.toml"),
        ),
        aws: AwsSettings {
            region: raw.aws.region,
            endpoint_url: raw.aws.endpoint_url,
            s3_force_path_style: raw.aws.s3_force_path_style.unwrap_or(false),
            profile: raw.aws.profile,
        },
        hash: String::new(),
    })
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
