//! Telemetry from CloudWatch: the SageMaker enhanced metrics of each inference component
//! (`/aws/sagemaker/InferenceComponents`: GPU, GPU memory and CPU utilisation, normalised to
//! 0-100%) and its endpoint metrics (`AWS/SageMaker`: Invocations, Invocation5XXErrors,
//! ModelLatency in microseconds), all with the dimension `InferenceComponentName`, through
//! GetMetricData: up to 500 queries per request, every page followed.
//!
//! A component with no datapoint at all is reported in `no_data`, not taken as idle.

use std::collections::BTreeMap;

use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat};
use chrono::{DateTime, Days, Utc};

use super::{Read, Sample, TelemetryError};
use crate::config::DateRange;

const COMPONENTS_NAMESPACE: &str = "/aws/sagemaker/InferenceComponents";
const ENDPOINT_NAMESPACE: &str = "AWS/SageMaker";
const DIMENSION: &str = "InferenceComponentName";

/// The metrics read: (namespace, name, statistic, which sample field).
const METRICS: &[(&str, &str, &str, Field)] = &[
    (
        COMPONENTS_NAMESPACE,
        "GPUUtilizationNormalized",
        "Average",
        Field::GpuUtil,
    ),
    (
        COMPONENTS_NAMESPACE,
        "GPUMemoryUtilizationNormalized",
        "Average",
        Field::GpuMem,
    ),
    (
        COMPONENTS_NAMESPACE,
        "CPUUtilizationNormalized",
        "Average",
        Field::CpuUtil,
    ),
    (ENDPOINT_NAMESPACE, "Invocations", "Sum", Field::Invocations),
    (
        ENDPOINT_NAMESPACE,
        "Invocation5XXErrors",
        "Sum",
        Field::Errors,
    ),
    (
        ENDPOINT_NAMESPACE,
        "ModelLatency",
        "Average",
        Field::LatencyMicros,
    ),
];

#[derive(Debug, Clone, Copy)]
enum Field {
    GpuUtil,
    GpuMem,
    CpuUtil,
    Invocations,
    Errors,
    LatencyMicros,
}

/// At most this many queries in one GetMetricData request (the API limit).
const QUERIES_PER_REQUEST: usize = 500;

fn query(
    id: String,
    component: &str,
    metric: &(&str, &str, &str, Field),
    period: u32,
) -> MetricDataQuery {
    let dimension = Dimension::builder()
        .name(DIMENSION)
        .value(component)
        .build();
    let stat = MetricStat::builder()
        .metric(
            Metric::builder()
                .namespace(metric.0)
                .metric_name(metric.1)
                .dimensions(dimension)
                .build(),
        )
        .period(period as i32)
        .stat(metric.2)
        .build();
    MetricDataQuery::builder()
        .id(id)
        .metric_stat(stat)
        .return_data(true)
        .build()
}

fn to_chrono(t: &aws_smithy_types::DateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}

/// Reads every metric of every component for the days of `window`.
pub async fn read(
    client: &aws_sdk_cloudwatch::Client,
    endpoint: &str,
    components: &[String],
    window: DateRange,
    period: u32,
) -> Result<Read, TelemetryError> {
    let start = window
        .since
        .and_hms_opt(0, 0, 0)
        .unwrap_or_default()
        .and_utc();
    let end = window
        .until
        .checked_add_days(Days::new(1))
        .unwrap_or(window.until)
        .and_hms_opt(0, 0, 0)
        .unwrap_or_default()
        .and_utc();
    // Query ids must start with a lower-case letter: q<component>_<metric>.
    let mut queries = Vec::new();
    for (c, component) in components.iter().enumerate() {
        for (m, metric) in METRICS.iter().enumerate() {
            queries.push((
                format!("q{c}_{m}"),
                c,
                m,
                query(format!("q{c}_{m}"), component, metric, period),
            ));
        }
    }
    let mut samples: BTreeMap<(usize, i64), Sample> = BTreeMap::new();
    let mut datapoints = vec![0u64; components.len()];
    for chunk in queries.chunks(QUERIES_PER_REQUEST) {
        let by_id: BTreeMap<&str, (usize, usize)> = chunk
            .iter()
            .map(|(id, c, m, _)| (id.as_str(), (*c, *m)))
            .collect();
        let mut token: Option<String> = None;
        loop {
            let response = client
                .get_metric_data()
                .start_time(aws_smithy_types::DateTime::from_secs(start.timestamp()))
                .end_time(aws_smithy_types::DateTime::from_secs(end.timestamp()))
                .set_metric_data_queries(Some(chunk.iter().map(|(_, _, _, q)| q.clone()).collect()))
                .set_next_token(token.clone())
                .send()
                .await
                .map_err(|e| {
                    TelemetryError::CloudWatch(format!(
                        "GetMetricData for endpoint `{endpoint}`: {}",
                        aws_sdk_cloudwatch::error::DisplayErrorContext(&e)
                    ))
                })?;
            for result in response.metric_data_results() {
                let Some(&(c, m)) = result.id().and_then(|id| by_id.get(id)) else {
                    continue;
                };
                for (t, v) in result.timestamps().iter().zip(result.values()) {
                    let Some(ts) = to_chrono(t) else { continue };
                    datapoints[c] += 1;
                    let sample = samples
                        .entry((c, ts.timestamp()))
                        .or_insert_with(|| Sample {
                            ts,
                            model: components[c].clone(),
                            period_seconds: Some(f64::from(period)),
                            ..Sample::default()
                        });
                    let v = Some(*v);
                    match METRICS[m].3 {
                        Field::GpuUtil => sample.gpu_util_pct = v,
                        Field::GpuMem => sample.gpu_mem_pct = v,
                        Field::CpuUtil => sample.cpu_util_pct = v,
                        Field::Invocations => sample.invocations = v,
                        Field::Errors => sample.errors_5xx = v,
                        Field::LatencyMicros => sample.model_latency_ms = v.map(|us| us / 1000.0),
                    }
                }
            }
            token = response.next_token().map(str::to_string);
            if token.is_none() {
                break;
            }
        }
    }
    let no_data = components
        .iter()
        .zip(&datapoints)
        .filter(|(_, n)| **n == 0)
        .map(|(c, _)| c.clone())
        .collect::<Vec<_>>();
    for component in &no_data {
        tracing::warn!(
            "telemetry: CloudWatch has no datapoint for inference component `{component}` of `{endpoint}` in {window}; it is reported, not taken as idle"
        );
    }
    Ok(Read {
        samples: samples.into_values().collect(),
        rejected: Vec::new(),
        no_data,
    })
}
