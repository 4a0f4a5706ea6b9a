//! The `emf` sink: CloudWatch Embedded Metric Format lines appended to a local file, for users
//! whose log agent (CloudWatch agent, Fluent Bit, Vector) ships them; CloudWatch Logs turns each
//! line into metrics. One line per model, window and namespace, every metric of the window in it.
//! EMF has no counts, so a distribution is written as its mean (a metric's `Average` matches what
//! PutMetricData gives; percentiles need the `cloudwatch` sink).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use serde_json::{Map, json};

use super::{Datum, Ledger, PublishError, PublishJob, PublishSummary};
use crate::warehouse::Warehouse;

/// What one EMF document describes: a namespace, its dimensions, a window (ms).
type Document<'a> = (&'a str, Vec<(String, String)>, i64);

/// The EMF documents of `datums`: one per (namespace, dimensions, window), in that order.
pub fn lines(datums: &[&Datum]) -> Vec<String> {
    let mut groups: BTreeMap<Document, Vec<&Datum>> = BTreeMap::new();
    for d in datums {
        groups
            .entry((d.namespace.as_str(), d.dimensions.clone(), d.timestamp()))
            .or_default()
            .push(d);
    }
    groups
        .into_iter()
        .map(|((namespace, dimensions, timestamp), members)| {
            let mut doc = Map::new();
            doc.insert(
                "_aws".into(),
                json!({
                    "Timestamp": timestamp * 1000,
                    "CloudWatchMetrics": [{
                        "Namespace": namespace,
                        "Dimensions": [dimensions.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>()],
                        "Metrics": members.iter().map(|d| json!({"Name": d.metric, "Unit": d.unit.name()})).collect::<Vec<_>>(),
                    }],
                }),
            );
            for (k, v) in &dimensions {
                doc.insert(k.clone(), json!(v));
            }
            for d in &members {
                doc.insert(d.metric.clone(), json!(d.value.mean()));
            }
            serde_json::Value::Object(doc).to_string()
        })
        .collect()
}

/// Appends the lines of `pending` to `path` (or prints them with `--dry-run`), then records them.
pub async fn send(
    job: &PublishJob,
    path: &Path,
    pending: &[Datum],
    warehouse: &Warehouse,
    ledger: &mut Ledger,
    summary: &mut PublishSummary,
) -> Result<(), PublishError> {
    let datums: Vec<&Datum> = pending.iter().collect();
    let text = lines(&datums);
    summary.requests = text.len() as u64;
    if job.dry_run {
        for line in &text {
            println!("{line}");
        }
        return Ok(());
    }
    if text.is_empty() {
        return Ok(());
    }
    let fail = |e: std::io::Error| PublishError::Emf {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    if let Some(folder) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(folder).map_err(fail)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(fail)?;
    let mut body = text.join("\n");
    body.push('\n');
    file.write_all(body.as_bytes()).map_err(fail)?;
    file.sync_data().map_err(fail)?;
    summary.sent = datums.len() as u64;
    ledger.record(warehouse, &datums).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{COMPONENT, Unit, Value};
    use super::*;

    #[test]
    fn one_line_per_model_and_window_with_every_metric() {
        let date = chrono::NaiveDate::from_ymd_opt(2026, 11, 27).unwrap();
        let datum = |metric: &str, value: Value| Datum {
            namespace: "/aws/sagemaker/inference-quality/chat-a".into(),
            metric: metric.into(),
            dimensions: vec![
                ("EndpointName".into(), "prod".into()),
                (COMPONENT.into(), "chat-a".into()),
            ],
            date,
            unit: Unit::None,
            value,
        };
        let a = datum(
            "safety_score",
            Value::Distribution {
                values: vec![0.5, 1.0],
                counts: vec![1.0, 3.0],
            },
        );
        let b = datum("requests", Value::Single(120.0));
        let text = lines(&[&a, &b]);
        assert_eq!(text.len(), 1);
        let doc: serde_json::Value = serde_json::from_str(&text[0]).unwrap();
        assert_eq!(doc["_aws"]["Timestamp"], 1_795_737_600_000i64);
        let directive = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(
            directive["Namespace"],
            "/aws/sagemaker/inference-quality/chat-a"
        );
        assert_eq!(
            directive["Dimensions"],
            json!([["EndpointName", "InferenceComponentName"]])
        );
        assert_eq!(directive["Metrics"].as_array().unwrap().len(), 2);
        assert_eq!(doc["InferenceComponentName"], "chat-a");
        assert_eq!(doc["safety_score"], 0.875);
        assert_eq!(doc["requests"], 120.0);
    }
}
