//! The OTLP sink: every judged capture's scores as OpenTelemetry GenAI evaluation events, and
//! the windows' aggregates as OTLP metrics, over OTLP/HTTP to a collector (Datadog, Grafana,
//! Langfuse, Honeycomb and the OpenTelemetry Collector all take it).
//!
//! Reads: the `scores` of the published windows (one event per score row that is `ok` or
//! `error`), the datums [`super::datums`] makes of the aggregates.
//! Writes: `POST <endpoint>/v1/logs` and `/v1/metrics` (protobuf, or JSON with
//! `otlp-encoding = "json"`; gzip unless `otlp-compression = "none"`), batched, retried on 429,
//! 502, 503, 504 and transport errors (honouring `Retry-After`); the publish ledger under the
//! target `otlp:<logs url>`, so a re-run sends nothing twice.
//! Never does: record a batch the collector did not accept, or send an event the ledger holds.
//!
//! An event (GenAI semantic conventions, `gen_ai.evaluation.result`): `gen_ai.evaluation.name`
//! (the rubric dimension), `gen_ai.evaluation.score.value` (the level), `.score.label`,
//! `gen_ai.evaluation.explanation` (the judge's rationale), `gen_ai.response.id` (the capture's
//! request id), `error.type` for a failed judgment; and `evalwatch.model`, `evalwatch.rubric`,
//! `evalwatch.judge`. A metric is `evalwatch.<metric>` (the CloudWatch metric's name) with
//! `evalwatch.model` (and `evalwatch.endpoint`): a gauge, or a summary for a distribution.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::time::Duration;

use chrono::NaiveDate;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Summary, SummaryDataPoint,
    metric, number_data_point, summary_data_point::ValueAtQuantile,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use polars::prelude::*;
use prost::Message;
use serde::Serialize;

use super::{COMPONENT, Datum, Ledger, PublishError, PublishJob, Unit, Value};
use crate::schema::scores as col;
use crate::table::{PartKey, read_key};
use crate::warehouse::Warehouse;

/// The event name of the GenAI semantic conventions' evaluation result.
pub const EVENT_NAME: &str = "gen_ai.evaluation.result";

/// How the body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Protobuf,
    Json,
}

/// `[publish] otlp-*`, with the `OTEL_EXPORTER_OTLP_*` variables where a key is not set.
#[derive(Debug, Clone, PartialEq)]
pub struct OtlpSettings {
    pub logs_url: String,
    pub metrics_url: String,
    pub encoding: Encoding,
    pub gzip: bool,
    pub headers: Vec<(String, String)>,
    pub timeout: Duration,
    /// Log records (or data points) per request.
    pub batch: usize,
    pub service_name: String,
}

/// The `[publish]` keys of the OTLP sink, as read.
#[derive(Debug, Default, Clone)]
pub struct RawOtlp {
    pub endpoint: Option<String>,
    pub encoding: Option<String>,
    pub compression: Option<String>,
    pub headers: Option<BTreeMap<String, String>>,
    pub timeout_seconds: Option<f64>,
    pub batch: Option<usize>,
}

type Invalid = (&'static str, String);

impl OtlpSettings {
    /// The settings: each key from the config, else its `OTEL_EXPORTER_OTLP_*` variable (read
    /// through `env`), else the default.
    pub fn from_raw(
        raw: RawOtlp,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<OtlpSettings, Invalid> {
        let signal = |base: &str, path: &str| format!("{}/{path}", base.trim_end_matches('/'));
        let (logs_url, metrics_url) =
            match raw.endpoint.or_else(|| env("OTEL_EXPORTER_OTLP_ENDPOINT")) {
                Some(base) => (
                    env("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT")
                        .unwrap_or_else(|| signal(&base, "v1/logs")),
                    env("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
                        .unwrap_or_else(|| signal(&base, "v1/metrics")),
                ),
                None => match (
                    env("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT"),
                    env("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"),
                ) {
                    (Some(logs), Some(metrics)) => (logs, metrics),
                    _ => {
                        return Err((
                            "publish.otlp-endpoint",
                            "the `otlp` sink needs the collector's OTLP/HTTP endpoint, e.g. \
                         `http://otel-collector:4318` (or OTEL_EXPORTER_OTLP_ENDPOINT)"
                                .into(),
                        ));
                    }
                },
            };
        for url in [&logs_url, &metrics_url] {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err((
                    "publish.otlp-endpoint",
                    format!("`{url}` is not an http:// or https:// URL"),
                ));
            }
        }
        let encoding = match raw.encoding.as_deref() {
            Some("protobuf") => Encoding::Protobuf,
            Some("json") => Encoding::Json,
            Some(other) => {
                return Err((
                    "publish.otlp-encoding",
                    format!("`{other}` is not `protobuf` or `json`"),
                ));
            }
            None => match env("OTEL_EXPORTER_OTLP_PROTOCOL").as_deref().map(str::trim) {
                None | Some("http/protobuf") => Encoding::Protobuf,
                Some("http/json") => Encoding::Json,
                Some(other) => {
                    return Err((
                        "publish.otlp-encoding",
                        format!(
                            "OTEL_EXPORTER_OTLP_PROTOCOL `{other}` is not supported: evalwatch \
                             speaks OTLP/HTTP (`http/protobuf`, `http/json`; port 4318), not gRPC"
                        ),
                    ));
                }
            },
        };
        let gzip = match raw
            .compression
            .or_else(|| env("OTEL_EXPORTER_OTLP_COMPRESSION"))
            .as_deref()
            .map(str::trim)
        {
            None | Some("gzip") => true,
            Some("none") => false,
            Some(other) => {
                return Err((
                    "publish.otlp-compression",
                    format!("`{other}` is not `gzip` or `none`"),
                ));
            }
        };
        let mut headers: BTreeMap<String, String> = BTreeMap::new();
        if let Some(text) = env("OTEL_EXPORTER_OTLP_HEADERS") {
            for pair in text.split(',').filter(|p| !p.trim().is_empty()) {
                let (k, v) = pair.split_once('=').ok_or_else(|| {
                    (
                        "publish.otlp-headers",
                        format!("OTEL_EXPORTER_OTLP_HEADERS: `{pair}` is not `key=value`"),
                    )
                })?;
                let decode = |s: &str| {
                    percent_encoding::percent_decode_str(s.trim())
                        .decode_utf8_lossy()
                        .into_owned()
                };
                headers.insert(decode(k), decode(v));
            }
        }
        headers.extend(raw.headers.unwrap_or_default());
        let timeout = match raw.timeout_seconds {
            Some(s) if s > 0.0 && s.is_finite() => Duration::from_secs_f64(s),
            Some(s) => {
                return Err((
                    "publish.otlp-timeout-seconds",
                    format!("{s} is not a positive number of seconds"),
                ));
            }
            None => env("OTEL_EXPORTER_OTLP_TIMEOUT")
                .and_then(|ms| ms.trim().parse::<u64>().ok())
                .map_or(Duration::from_secs(10), Duration::from_millis),
        };
        let batch = raw.batch.unwrap_or(1000);
        if batch == 0 {
            return Err(("publish.otlp-batch", "must be at least 1".into()));
        }
        Ok(OtlpSettings {
            logs_url,
            metrics_url,
            encoding,
            gzip,
            headers: headers.into_iter().collect(),
            timeout,
            batch,
            service_name: env("OTEL_SERVICE_NAME").unwrap_or_else(|| "evalwatch".into()),
        })
    }

    /// The ledger's name for where events and metrics go.
    pub fn target(&self) -> String {
        format!("otlp:{}", self.logs_url)
    }
}

/// What the OTLP sink did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct OtlpSummary {
    pub logs_url: String,
    pub events: u64,
    pub events_sent: u64,
    pub metric_points: u64,
    pub metric_points_sent: u64,
    /// Events and points the ledger says were sent before.
    pub already_published: u64,
    pub requests: u64,
    /// Attempts the collector refused or missed, retried.
    pub retries: u64,
    /// Events and points in requests refused after every attempt (sent by a later run).
    pub failed: u64,
    pub failures: Vec<String>,
}

/// One score row as an event.
struct Event {
    date: NaiveDate,
    key: String,
    record: LogRecord,
}

fn text(key: &str, value: impl Into<String>) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

fn number(key: &str, value: f64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::DoubleValue(value)),
        }),
        ..Default::default()
    }
}

fn resource(settings: &OtlpSettings) -> Resource {
    Resource {
        attributes: vec![
            text("service.name", settings.service_name.clone()),
            text("service.version", env!("CARGO_PKG_VERSION")),
        ],
        ..Default::default()
    }
}

fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: "evalwatch".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        ..Default::default()
    }
}

/// The events of the score rows of `days`, by this job's rubric and judge.
async fn events(
    job: &PublishJob,
    warehouse: &Warehouse,
    days: &BTreeSet<NaiveDate>,
) -> Result<Vec<Event>, PublishError> {
    let keys =
        crate::score::current::parts_of_days(warehouse, &job.rubric, &job.judge, days).await?;
    let rubric = job.rubric.key();
    let observed = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0) as u64;
    let columns = [
        (col::REQUEST_ID, DataType::String),
        (col::DIMENSION, DataType::String),
        (col::SCORE, DataType::Float64),
        (col::LABEL, DataType::String),
        (col::RATIONALE, DataType::String),
        (col::STATUS, DataType::String),
        (col::ERROR, DataType::String),
        (col::JUDGE, DataType::String),
        (
            col::SCORED_AT,
            DataType::Datetime(TimeUnit::Microseconds, Some(TimeZone::UTC)),
        ),
    ];
    let mut out = Vec::new();
    for key in keys {
        let part = PartKey::parse(&key);
        let (Some(model), Some(date)) = (
            part.as_ref()
                .and_then(|p| p.value("model"))
                .map(str::to_string),
            part.as_ref().and_then(PartKey::date),
        ) else {
            continue;
        };
        let Some(df) = read_key(warehouse, &key, &columns).await? else {
            continue;
        };
        let read = |e: PolarsError| PublishError::Read {
            key: key.clone(),
            message: e.to_string(),
        };
        let strings = |name: &str| -> Result<Vec<Option<String>>, PublishError> {
            Ok(df
                .column(name)
                .and_then(|c| c.str().cloned())
                .map_err(read)?
                .iter()
                .map(|v| v.map(str::to_string))
                .collect())
        };
        let (ids, dimensions, labels, rationales, statuses, errors, judges) = (
            strings(col::REQUEST_ID)?,
            strings(col::DIMENSION)?,
            strings(col::LABEL)?,
            strings(col::RATIONALE)?,
            strings(col::STATUS)?,
            strings(col::ERROR)?,
            strings(col::JUDGE)?,
        );
        let scores: Vec<Option<f64>> = df
            .column(col::SCORE)
            .and_then(|c| c.f64().cloned())
            .map_err(read)?
            .iter()
            .collect();
        let scored_at: Vec<Option<i64>> = df
            .column(col::SCORED_AT)
            .and_then(|c| c.datetime().map(|d| d.phys.clone()))
            .map_err(read)?
            .iter()
            .collect();
        for i in 0..df.height() {
            let status = statuses[i].as_deref().unwrap_or_default();
            if judges[i].as_deref() != Some(job.judge.as_str()) || !matches!(status, "ok" | "error")
            {
                continue;
            }
            let (Some(id), Some(dimension)) = (&ids[i], &dimensions[i]) else {
                continue;
            };
            let mut attributes = vec![
                text("gen_ai.evaluation.name", dimension.clone()),
                text("gen_ai.response.id", id.clone()),
                text("evalwatch.model", model.clone()),
                text("evalwatch.rubric", rubric.clone()),
                text("evalwatch.judge", job.judge.clone()),
            ];
            if let Some(team) = job.settings.teams.get(&model) {
                attributes.push(text("evalwatch.team", team.clone()));
            }
            if status == "ok" {
                if let Some(score) = scores[i] {
                    attributes.push(number("gen_ai.evaluation.score.value", score));
                }
                if let Some(label) = &labels[i] {
                    attributes.push(text("gen_ai.evaluation.score.label", label.clone()));
                }
                if let Some(why) = rationales[i].as_ref().filter(|r| !r.is_empty()) {
                    attributes.push(text("gen_ai.evaluation.explanation", why.clone()));
                }
            } else {
                attributes.push(text("error.type", "judge_error"));
                if let Some(error) = &errors[i] {
                    attributes.push(text("gen_ai.evaluation.explanation", error.clone()));
                }
            }
            let time = scored_at[i].map_or(observed, |us| (us.max(0) as u64) * 1000);
            out.push(Event {
                date,
                key: format!("event|{model}|{id}|{dimension}|{rubric}|{}", job.judge),
                record: LogRecord {
                    time_unix_nano: time,
                    observed_time_unix_nano: observed,
                    severity_number: if status == "ok" { 9 } else { 17 },
                    severity_text: if status == "ok" { "INFO" } else { "ERROR" }.into(),
                    attributes,
                    event_name: EVENT_NAME.into(),
                    ..Default::default()
                },
            });
        }
    }
    Ok(out)
}

/// A datum as an OTLP metric: a gauge for one number, a summary for a distribution.
fn metric_of(datum: &Datum) -> Metric {
    let attributes: Vec<KeyValue> = datum
        .dimensions
        .iter()
        .map(|(k, v)| {
            let key = match k.as_str() {
                COMPONENT => "evalwatch.model",
                super::TEAM => "evalwatch.team",
                _ => "evalwatch.endpoint",
            };
            text(key, v.clone())
        })
        .collect();
    let time = (datum.timestamp().max(0) as u64) * 1_000_000_000;
    let unit = match datum.unit {
        Unit::None => "1",
        Unit::Count => "{count}",
        Unit::Percent => "%",
        Unit::Milliseconds => "ms",
    };
    let data = match &datum.value {
        Value::Single(v) => metric::Data::Gauge(Gauge {
            data_points: vec![NumberDataPoint {
                attributes,
                start_time_unix_nano: time,
                time_unix_nano: time,
                value: Some(number_data_point::Value::AsDouble(*v)),
                ..Default::default()
            }],
        }),
        other => {
            let (count, sum, min, max) = match other {
                Value::Distribution { values, counts } => (
                    counts.iter().sum::<f64>(),
                    values.iter().zip(counts).map(|(v, c)| v * c).sum::<f64>(),
                    values.first().copied().unwrap_or(0.0),
                    values.last().copied().unwrap_or(0.0),
                ),
                Value::Statistics {
                    sample_count,
                    sum,
                    minimum,
                    maximum,
                } => (*sample_count, *sum, *minimum, *maximum),
                Value::Single(_) => unreachable!("a single value is a gauge"),
            };
            metric::Data::Summary(Summary {
                data_points: vec![SummaryDataPoint {
                    attributes,
                    start_time_unix_nano: time,
                    time_unix_nano: time,
                    count: count as u64,
                    sum,
                    quantile_values: vec![
                        ValueAtQuantile {
                            quantile: 0.0,
                            value: min,
                        },
                        ValueAtQuantile {
                            quantile: 1.0,
                            value: max,
                        },
                    ],
                    ..Default::default()
                }],
            })
        }
    };
    Metric {
        name: format!("evalwatch.{}", datum.metric),
        unit: unit.into(),
        data: Some(data),
        ..Default::default()
    }
}

/// The request body of `message`, encoded and compressed as configured; with its content type.
fn body<M: Message + Serialize>(
    settings: &OtlpSettings,
    message: &M,
) -> Result<(Vec<u8>, &'static str), String> {
    let (raw, content_type) = match settings.encoding {
        Encoding::Protobuf => (message.encode_to_vec(), "application/x-protobuf"),
        Encoding::Json => (
            serde_json::to_vec(message).map_err(|e| e.to_string())?,
            "application/json",
        ),
    };
    if !settings.gzip {
        return Ok((raw, content_type));
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&raw).map_err(|e| e.to_string())?;
    Ok((gz.finish().map_err(|e| e.to_string())?, content_type))
}

/// POSTs one body, retrying what OTLP says is retryable; the error says why it was given up.
async fn post(
    client: &reqwest::Client,
    settings: &OtlpSettings,
    url: &str,
    (bytes, content_type): (Vec<u8>, &'static str),
    max_attempts: u32,
    summary: &mut OtlpSummary,
) -> Result<(), String> {
    let mut attempt = 1;
    loop {
        summary.requests += 1;
        let mut request = client
            .post(url)
            .timeout(settings.timeout)
            .header("Content-Type", content_type)
            .body(bytes.clone());
        if settings.gzip {
            request = request.header("Content-Encoding", "gzip");
        }
        for (k, v) in &settings.headers {
            request = request.header(k.as_str(), v.as_str());
        }
        let (retryable, why, wait) = match request.send().await {
            Ok(response) if response.status().is_success() => return Ok(()),
            Ok(response) => {
                let status = response.status().as_u16();
                let wait = response
                    .headers()
                    .get("Retry-After")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(|s| Duration::from_secs(s.min(30)));
                let text = response.text().await.unwrap_or_default();
                (
                    matches!(status, 429 | 502 | 503 | 504),
                    format!("{url} answered {status}: {}", text.trim()),
                    wait,
                )
            }
            Err(e) => (true, format!("{url}: {e}"), None),
        };
        if !retryable || attempt >= max_attempts {
            return Err(format!("{why} (attempt {attempt} of {max_attempts})"));
        }
        summary.retries += 1;
        let backoff = Duration::from_millis(250 * 2u64.pow(attempt - 1));
        tokio::time::sleep(wait.unwrap_or(backoff)).await;
        attempt += 1;
    }
}

/// Whether a request went through; a refused one's records are counted as failed, with why.
fn accepted(sent: Result<(), String>, records: usize, summary: &mut OtlpSummary) -> bool {
    match sent {
        Ok(()) => true,
        Err(why) => {
            summary.failed += records as u64;
            summary.failures.push(why);
            false
        }
    }
}

/// Sends the events of the windows' days and the metrics of `datums` not in the ledger.
pub async fn send(
    job: &PublishJob,
    settings: &OtlpSettings,
    days: &BTreeSet<NaiveDate>,
    datums: &[Datum],
    warehouse: &Warehouse,
) -> Result<OtlpSummary, PublishError> {
    let mut summary = OtlpSummary {
        logs_url: settings.logs_url.clone(),
        ..OtlpSummary::default()
    };
    let events = events(job, warehouse, days).await?;
    summary.events = events.len() as u64;
    summary.metric_points = datums.len() as u64;
    let dates: BTreeSet<NaiveDate> = events
        .iter()
        .map(|e| e.date)
        .chain(datums.iter().map(|d| d.date))
        .collect();
    let mut ledger = Ledger::open(warehouse, &settings.target(), dates).await?;
    let events: Vec<Event> = events
        .into_iter()
        .filter(|e| {
            let sent = !job.force && ledger.contains_key(e.date, &e.key);
            summary.already_published += u64::from(sent);
            !sent
        })
        .collect();
    let datums: Vec<&Datum> = datums
        .iter()
        .filter(|d| {
            let sent = !job.force && ledger.contains(d);
            summary.already_published += u64::from(sent);
            !sent
        })
        .collect();
    if job.dry_run {
        return Ok(summary);
    }
    let client = reqwest::Client::builder()
        .build()
        .map_err(|e| PublishError::Otlp(e.to_string()))?;
    let max_attempts = job.settings.max_attempts;
    for batch in events.chunks(settings.batch) {
        let request = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(resource(settings)),
                scope_logs: vec![ScopeLogs {
                    scope: Some(scope()),
                    log_records: batch.iter().map(|e| e.record.clone()).collect(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let bytes = body(settings, &request).map_err(PublishError::Otlp)?;
        let sent = post(
            &client,
            settings,
            &settings.logs_url,
            bytes,
            max_attempts,
            &mut summary,
        )
        .await;
        if accepted(sent, batch.len(), &mut summary) {
            let keys: Vec<(NaiveDate, String)> =
                batch.iter().map(|e| (e.date, e.key.clone())).collect();
            ledger.record_keys(warehouse, &keys).await?;
            summary.events_sent += batch.len() as u64;
        }
    }
    for batch in datums.chunks(settings.batch) {
        let request = ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(resource(settings)),
                scope_metrics: vec![ScopeMetrics {
                    scope: Some(scope()),
                    metrics: batch.iter().map(|d| metric_of(d)).collect(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let bytes = body(settings, &request).map_err(PublishError::Otlp)?;
        let sent = post(
            &client,
            settings,
            &settings.metrics_url,
            bytes,
            max_attempts,
            &mut summary,
        )
        .await;
        if accepted(sent, batch.len(), &mut summary) {
            ledger.record(warehouse, batch).await?;
            summary.metric_points_sent += batch.len() as u64;
        }
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: BTreeMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| vars.get(k).cloned()
    }

    #[test]
    fn the_config_wins_over_the_environment_and_the_environment_over_defaults() {
        let env = env_of(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=s%3Dcret,x-team=ml"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
        ]);
        let s = OtlpSettings::from_raw(RawOtlp::default(), &env).unwrap();
        assert_eq!(s.logs_url, "http://collector:4318/v1/logs");
        assert_eq!(s.metrics_url, "http://collector:4318/v1/metrics");
        assert_eq!(s.encoding, Encoding::Json);
        assert!(s.gzip);
        assert_eq!(s.timeout, Duration::from_millis(2500));
        assert!(s.headers.contains(&("api-key".into(), "s=cret".into())));
        let raw = RawOtlp {
            endpoint: Some("https://otlp.example.com".into()),
            encoding: Some("protobuf".into()),
            compression: Some("none".into()),
            headers: Some([("x-team".to_string(), "search".to_string())].into()),
            ..RawOtlp::default()
        };
        let s = OtlpSettings::from_raw(raw, &env).unwrap();
        assert_eq!(s.logs_url, "https://otlp.example.com/v1/logs");
        assert_eq!((s.encoding, s.gzip), (Encoding::Protobuf, false));
        assert!(s.headers.contains(&("x-team".into(), "search".into())));

        let none = OtlpSettings::from_raw(RawOtlp::default(), &env_of(&[])).unwrap_err();
        assert_eq!(none.0, "publish.otlp-endpoint");
        let grpc = env_of(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ]);
        let err = OtlpSettings::from_raw(RawOtlp::default(), &grpc).unwrap_err();
        assert!(err.1.contains("not gRPC"), "{}", err.1);
    }

    #[test]
    fn a_distribution_is_a_summary_and_a_number_a_gauge() {
        let datum = |value| Datum {
            namespace: "ns".into(),
            metric: "safety_score".into(),
            dimensions: vec![(COMPONENT.into(), "chat-a".into())],
            date: NaiveDate::from_ymd_opt(2026, 10, 1).unwrap(),
            unit: Unit::None,
            value,
        };
        let m = metric_of(&datum(Value::Distribution {
            values: vec![0.0, 1.0],
            counts: vec![1.0, 3.0],
        }));
        assert_eq!(m.name, "evalwatch.safety_score");
        match m.data {
            Some(metric::Data::Summary(s)) => {
                assert_eq!((s.data_points[0].count, s.data_points[0].sum), (4, 3.0));
                assert_eq!(s.data_points[0].time_unix_nano, 1_790_812_800_000_000_000);
            }
            other => panic!("{other:?}"),
        }
        let g = metric_of(&datum(Value::Single(0.5)));
        assert!(matches!(g.data, Some(metric::Data::Gauge(_))));
    }
}
