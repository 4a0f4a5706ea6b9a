//! The `cloudwatch` sink: PutMetricData, packed to the API's limits (1,000 datums and 1 MB per
//! request; distributions as Values/Counts; the SDK gzips bodies past 10 KB), throttling and 5xx
//! retried with back-off by the SDK's standard retry strategy, every accepted request recorded
//! in the ledger before the next is sent. Then one alarm per rule and model (PutMetricAlarm
//! creates or updates by name, so a re-run never duplicates one).

use std::time::Duration;

use aws_sdk_cloudwatch::types::{
    ComparisonOperator, Dimension, MetricDatum, StandardUnit, Statistic, StatisticSet,
};
use aws_smithy_types::DateTime;
use serde_json::json;

use super::{
    Datum, Ledger, PublishError, PublishJob, PublishSummary, Value, alarm_name, dimensions_of, pack,
};
use crate::aws::{AwsClients, sdk_error_text};
use crate::warehouse::Warehouse;

/// Where the datums go, for the ledger: the region and endpoint the client talks to.
pub async fn target(aws: &AwsClients) -> String {
    let (region, endpoint) = aws.cloudwatch_target().await;
    format!("cloudwatch:{region}:{endpoint}")
}

fn dimensions(datum: &Datum) -> Vec<Dimension> {
    datum
        .dimensions
        .iter()
        .map(|(k, v)| Dimension::builder().name(k).value(v).build())
        .collect()
}

/// A datum as the SDK sends it.
pub fn to_sdk(datum: &Datum) -> MetricDatum {
    let builder = MetricDatum::builder()
        .metric_name(&datum.metric)
        .set_dimensions(Some(dimensions(datum)))
        .timestamp(DateTime::from_secs(datum.timestamp()))
        .unit(StandardUnit::from(datum.unit.name()));
    match &datum.value {
        Value::Single(v) => builder.value(*v),
        Value::Distribution { values, counts } => builder
            .set_values(Some(values.clone()))
            .set_counts(Some(counts.clone())),
        Value::Statistics {
            sample_count,
            sum,
            minimum,
            maximum,
        } => builder.statistic_values(
            StatisticSet::builder()
                .sample_count(*sample_count)
                .sum(*sum)
                .minimum(*minimum)
                .maximum(*maximum)
                .build(),
        ),
    }
    .build()
}

/// A datum as the API documents it (what `--dry-run` prints).
pub fn to_json(datum: &Datum) -> serde_json::Value {
    let mut out = json!({
        "MetricName": datum.metric,
        "Dimensions": datum.dimensions.iter().map(|(k, v)| json!({"Name": k, "Value": v})).collect::<Vec<_>>(),
        "Timestamp": chrono::DateTime::from_timestamp(datum.timestamp(), 0).map(|t| t.to_rfc3339()),
        "Unit": datum.unit.name(),
    });
    match &datum.value {
        Value::Single(v) => out["Value"] = json!(v),
        Value::Distribution { values, counts } => {
            out["Values"] = json!(values);
            out["Counts"] = json!(counts);
        }
        Value::Statistics {
            sample_count,
            sum,
            minimum,
            maximum,
        } => {
            out["StatisticValues"] = json!({
                "SampleCount": sample_count, "Sum": sum, "Minimum": minimum, "Maximum": maximum,
            })
        }
    }
    out
}

fn retry(max_attempts: u32) -> aws_sdk_cloudwatch::config::Builder {
    aws_sdk_cloudwatch::config::Builder::default().retry_config(
        aws_config::retry::RetryConfig::standard()
            .with_max_attempts(max_attempts)
            .with_initial_backoff(Duration::from_millis(200))
            .with_max_backoff(Duration::from_secs(20)),
    )
}

/// Sends `pending` in packed requests; a refused request is counted and the rest still go.
pub async fn send(
    job: &PublishJob,
    pending: &[Datum],
    aws: &AwsClients,
    warehouse: &Warehouse,
    ledger: &mut Ledger,
    summary: &mut PublishSummary,
) -> Result<(), PublishError> {
    let requests = pack(pending, job.settings.datums_per_request);
    summary.requests = requests.len() as u64;
    if job.dry_run {
        for members in &requests {
            let first = &pending[members[0]];
            let line = json!({"PutMetricData": {
                "Namespace": first.namespace,
                "MetricData": members.iter().map(|&i| to_json(&pending[i])).collect::<Vec<_>>(),
            }});
            println!("{line}");
        }
        return Ok(());
    }
    let client = aws.cloudwatch().await;
    for members in requests {
        let data: Vec<MetricDatum> = members.iter().map(|&i| to_sdk(&pending[i])).collect();
        let namespace = pending[members[0]].namespace.clone();
        let sent = client
            .put_metric_data()
            .namespace(&namespace)
            .set_metric_data(Some(data))
            .customize()
            .config_override(retry(job.settings.max_attempts))
            .send()
            .await;
        let datums: Vec<&Datum> = members.iter().map(|&i| &pending[i]).collect();
        match sent {
            Ok(_) => {
                summary.sent += datums.len() as u64;
                ledger.record(warehouse, &datums).await?;
            }
            Err(e) => {
                let message = format!(
                    "PutMetricData to `{namespace}` ({} datums) failed after {} attempts: {}",
                    datums.len(),
                    job.settings.max_attempts,
                    sdk_error_text(&e)
                );
                tracing::warn!("publish: {message}; a later run sends them");
                summary.failed += datums.len() as u64;
                summary.failures.push(message);
            }
        }
    }
    Ok(())
}

/// One alarm per rule and model, created or updated in place.
pub async fn alarms(
    job: &PublishJob,
    models: &[String],
    aws: &AwsClients,
    summary: &mut PublishSummary,
) {
    if models.is_empty() || job.settings.alarms.is_empty() {
        return;
    }
    let period = 86_400 * job.window_days as i32;
    let client = if job.dry_run {
        None
    } else {
        Some(aws.cloudwatch().await)
    };
    for model in models {
        let namespace = job.settings.namespace_of(model);
        let dims: Vec<Dimension> = dimensions_of(&job.settings, model)
            .into_iter()
            .map(|(k, v)| Dimension::builder().name(k).value(v).build())
            .collect();
        for rule in &job.settings.alarms {
            let name = alarm_name(rule, &namespace, model);
            let description = format!(
                "evalwatch: {} of `{model}` {} {} ({}), per {}-day window",
                rule.metric, rule.comparison, rule.threshold, rule.severity, job.window_days
            );
            let Some(client) = &client else {
                let line = json!({"PutMetricAlarm": {
                    "AlarmName": name, "AlarmDescription": description, "Namespace": namespace,
                    "MetricName": rule.metric, "Statistic": "Average", "Period": period,
                    "Dimensions": dimensions_of(&job.settings, model).iter().map(|(k, v)| json!({"Name": k, "Value": v})).collect::<Vec<_>>(),
                    "EvaluationPeriods": rule.evaluation_periods,
                    "DatapointsToAlarm": rule.datapoints_to_alarm, "Threshold": rule.threshold,
                    "ComparisonOperator": rule.comparison, "TreatMissingData": rule.treat_missing_data,
                    "AlarmActions": rule.sns_topic_arn.iter().collect::<Vec<_>>(),
                }});
                println!("{line}");
                summary.alarms += 1;
                continue;
            };
            let put = client
                .put_metric_alarm()
                .alarm_name(&name)
                .alarm_description(description)
                .namespace(&namespace)
                .metric_name(&rule.metric)
                .set_dimensions(Some(dims.clone()))
                .statistic(Statistic::Average)
                .period(period)
                .evaluation_periods(rule.evaluation_periods as i32)
                .datapoints_to_alarm(rule.datapoints_to_alarm as i32)
                .threshold(rule.threshold)
                .comparison_operator(ComparisonOperator::from(rule.comparison.as_str()))
                .treat_missing_data(&rule.treat_missing_data)
                .set_alarm_actions(rule.sns_topic_arn.clone().map(|arn| vec![arn]))
                .customize()
                .config_override(retry(job.settings.max_attempts))
                .send()
                .await;
            match put {
                Ok(_) => summary.alarms += 1,
                Err(e) => {
                    let message = format!("PutMetricAlarm `{name}` failed: {}", sdk_error_text(&e));
                    tracing::warn!("publish: {message}");
                    summary.alarm_failures.push(message);
                }
            }
        }
    }
}
