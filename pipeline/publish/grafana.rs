//! `evalwatch publish --grafana DIR`: two importable Grafana dashboards over the CloudWatch data
//! source (quantity: GPU compute and memory, invocations, latency, cost per hour per component;
//! quality: the composite and every rubric dimension with the alarm thresholds drawn as lines,
//! and the judge's latency) and a Grafana alerting provisioning file with the same rules as the
//! CloudWatch alarms.
//!
//! The dashboards pick their data source through a `datasource` variable, so they import into
//! any Grafana with a CloudWatch data source; the alert rules need a data source UID
//! (`--grafana-datasource`, default `cloudwatch`).

use std::path::Path;

use serde_json::{Value, json};

use super::{COMPONENT, dimensions_of};
use crate::config::{AlarmRule, PublishSettings};
use crate::rubric::Rubric;

/// Grafana's dashboard schema version the files are written in (Grafana 10 and 11 read it).
pub const SCHEMA_VERSION: u32 = 39;

/// One CloudWatch query of a panel.
struct Query {
    namespace: String,
    metric: String,
    dimensions: Vec<(String, String)>,
    statistic: &'static str,
    label: String,
    /// Shown, or only an input of an expression.
    hide: bool,
}

impl Query {
    fn target(&self, ref_id: &str) -> Value {
        let dimensions: serde_json::Map<String, Value> = self
            .dimensions
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        json!({
            "refId": ref_id,
            "datasource": {"type": "cloudwatch", "uid": "${datasource}"},
            "queryMode": "Metrics",
            "metricQueryType": 0,
            "metricEditorMode": 0,
            "region": "default",
            "namespace": self.namespace,
            "metricName": self.metric,
            "dimensions": dimensions,
            "matchExact": true,
            "statistic": self.statistic,
            "period": "",
            "label": self.label,
            "id": "",
            "expression": "",
            "hide": self.hide,
        })
    }
}

fn ref_id(i: usize) -> String {
    let letters = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut id = String::new();
    let mut n = i;
    loop {
        id.insert(0, letters[n % 26] as char);
        if n < 26 {
            break;
        }
        n = n / 26 - 1;
    }
    id
}

/// A time-series panel at grid position `slot` (two per row).
fn panel(
    id: usize,
    slot: usize,
    title: &str,
    unit: &str,
    targets: Vec<Value>,
    thresholds: &[&AlarmRule],
) -> Value {
    // Colours by side of the threshold: below it is bad for a `<` rule, above it for a `>` one.
    let mut steps = vec![json!({"color": "green", "value": null})];
    for rule in thresholds {
        let color = if rule.severity == "critical" {
            "red"
        } else {
            "orange"
        };
        if rule.comparison.starts_with("LessThan") {
            steps[0] = json!({"color": color, "value": null});
            steps.push(json!({"color": "green", "value": rule.threshold}));
        } else {
            steps.push(json!({"color": color, "value": rule.threshold}));
        }
    }
    json!({
        "id": id,
        "type": "timeseries",
        "title": title,
        "datasource": {"type": "cloudwatch", "uid": "${datasource}"},
        "gridPos": {"h": 8, "w": 12, "x": (slot % 2) * 12, "y": (slot / 2) * 8},
        "targets": targets,
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "custom": {
                    "drawStyle": "line",
                    "showPoints": "always",
                    "spanNulls": false,
                    "thresholdsStyle": {"mode": if thresholds.is_empty() { "off" } else { "line" }},
                },
                "thresholds": {"mode": "absolute", "steps": steps},
            },
            "overrides": [],
        },
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "multi"}},
    })
}

fn dashboard(uid: &str, title: &str, description: &str, panels: Vec<Value>) -> Value {
    json!({
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["evalwatch"],
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "editable": true,
        "timezone": "utc",
        "time": {"from": "now-30d", "to": "now"},
        "refresh": "",
        "templating": {"list": [{
            "name": "datasource",
            "label": "CloudWatch",
            "type": "datasource",
            "query": "cloudwatch",
            "current": {},
            "hide": 0,
        }]},
        "annotations": {"list": []},
        "panels": panels,
    })
}

/// One query per model of a metric in evalwatch's namespace.
fn per_model(settings: &PublishSettings, models: &[String], metric: &str) -> Vec<Query> {
    models
        .iter()
        .map(|m| Query {
            namespace: settings.namespace_of(m),
            metric: metric.to_string(),
            dimensions: dimensions_of(settings, m),
            statistic: "Average",
            label: m.clone(),
            hide: false,
        })
        .collect()
}

fn targets(queries: &[Query]) -> Vec<Value> {
    queries
        .iter()
        .enumerate()
        .map(|(i, q)| q.target(&ref_id(i)))
        .collect()
}

/// The quality dashboard: composite, each rubric dimension, the judge's latency.
pub fn quality_dashboard(settings: &PublishSettings, rubric: &Rubric, models: &[String]) -> Value {
    let mut metrics: Vec<(String, String)> = vec![(
        "composite_quality_score".into(),
        "Composite quality (0-1)".into(),
    )];
    for d in &rubric.dimensions {
        metrics.push((format!("{}_score", d.name), format!("{} (0-1)", d.name)));
    }
    let mut panels = Vec::new();
    for (slot, (metric, title)) in metrics.iter().enumerate() {
        let rules: Vec<&AlarmRule> = settings
            .alarms
            .iter()
            .filter(|r| r.metric == *metric)
            .collect();
        panels.push(panel(
            slot + 1,
            slot,
            title,
            "percentunit",
            targets(&per_model(settings, models, metric)),
            &rules,
        ));
    }
    let slot = panels.len();
    panels.push(panel(
        slot + 1,
        slot,
        "Judge latency (ms)",
        "ms",
        targets(&per_model(settings, models, "quality_evaluation_latency")),
        &[],
    ));
    dashboard(
        "evalwatch-quality",
        "evalwatch: answer quality",
        &format!(
            "Daily judged quality per inference component (rubric {}), published by evalwatch; \
             threshold lines are the alarm rules.",
            rubric.key()
        ),
        panels,
    )
}

/// The quantity dashboard: SageMaker's own metrics per component and evalwatch's cost.
pub fn quantity_dashboard(settings: &PublishSettings, models: &[String]) -> Value {
    let sagemaker = |namespace: &str, metric: &str, statistic: &'static str| -> Vec<Query> {
        models
            .iter()
            .map(|m| Query {
                namespace: namespace.to_string(),
                metric: metric.to_string(),
                dimensions: vec![(COMPONENT.to_string(), m.clone())],
                statistic,
                label: m.clone(),
                hide: false,
            })
            .collect()
    };
    let ic = "/aws/sagemaker/InferenceComponents";
    let mut panels = vec![
        panel(
            1,
            0,
            "GPU compute (%)",
            "percent",
            targets(&sagemaker(ic, "GPUUtilizationNormalized", "Average")),
            &[],
        ),
        panel(
            2,
            1,
            "GPU memory (%)",
            "percent",
            targets(&sagemaker(ic, "GPUMemoryUtilizationNormalized", "Average")),
            &[],
        ),
        panel(
            3,
            2,
            "Invocations",
            "short",
            targets(&sagemaker("AWS/SageMaker", "Invocations", "Sum")),
            &[],
        ),
        panel(
            4,
            3,
            "Model latency (µs)",
            "µs",
            targets(&sagemaker("AWS/SageMaker", "ModelLatency", "Average")),
            &[],
        ),
    ];
    // Cost per hour: evalwatch's daily cost divided by 24, one expression per component.
    let mut cost = Vec::new();
    for (i, m) in models.iter().enumerate() {
        let input = ref_id(2 * i);
        let mut daily = per_model(settings, std::slice::from_ref(m), "cost_usd");
        daily[0].statistic = "Sum";
        daily[0].hide = true;
        cost.push(daily[0].target(&input));
        cost.push(json!({
            "refId": ref_id(2 * i + 1),
            "datasource": {"type": "cloudwatch", "uid": "${datasource}"},
            "queryMode": "Metrics",
            "metricQueryType": 0,
            "metricEditorMode": 1,
            "region": "default",
            "expression": format!("{input} / 24"),
            "label": m,
            "id": "",
            "hide": false,
        }));
    }
    panels.push(panel(5, 4, "Cost per hour (USD)", "currencyUSD", cost, &[]));
    dashboard(
        "evalwatch-quantity",
        "evalwatch: GPUs, traffic and cost",
        "GPU utilisation and memory, invocations and latency per inference component (SageMaker \
         enhanced metrics), and the hardware cost per hour evalwatch computes from your prices.",
        panels,
    )
}

/// Grafana alerting provisioning (`apiVersion: 1`) for the alarm rules, one per rule and model.
pub fn alert_rules(
    settings: &PublishSettings,
    models: &[String],
    datasource: &str,
    window_days: u32,
) -> Value {
    let mut rules = Vec::new();
    for m in models {
        for rule in &settings.alarms {
            let evaluator = match rule.comparison.as_str() {
                "LessThanThreshold" | "LessThanOrEqualToThreshold" => "lt",
                _ => "gt",
            };
            let query = Query {
                namespace: settings.namespace_of(m),
                metric: rule.metric.clone(),
                dimensions: dimensions_of(settings, m),
                statistic: "Average",
                label: m.clone(),
                hide: false,
            };
            let mut model = query.target("A");
            model["datasource"] = json!({"type": "cloudwatch", "uid": datasource});
            model["period"] = json!((86_400 * window_days).to_string());
            let uid = super::alarm_name(rule, &settings.namespace_of(m), m);
            let uid = &crate::util::sha256_hex(uid.as_bytes())[..12];
            rules.push(json!({
                "uid": format!("evalwatch-{uid}"),
                "title": format!("{m}: {} {} {}", rule.metric, if evaluator == "lt" { "below" } else { "above" }, rule.threshold),
                "condition": "C",
                "data": [
                    {"refId": "A", "relativeTimeRange": {"from": 86_400 * 2 * u64::from(window_days * rule.evaluation_periods), "to": 0},
                     "datasourceUid": datasource, "model": model},
                    {"refId": "B", "relativeTimeRange": {"from": 0, "to": 0}, "datasourceUid": "__expr__",
                     "model": {"refId": "B", "type": "reduce", "expression": "A", "reducer": "last",
                               "settings": {"mode": "dropNN"}}},
                    {"refId": "C", "relativeTimeRange": {"from": 0, "to": 0}, "datasourceUid": "__expr__",
                     "model": {"refId": "C", "type": "threshold", "expression": "B",
                               "conditions": [{"evaluator": {"type": evaluator, "params": [rule.threshold]}}]}},
                ],
                "noDataState": if rule.treat_missing_data == "breaching" { "Alerting" } else { "NoData" },
                "execErrState": "Error",
                "for": "0s",
                "labels": {"severity": rule.severity, "model": m, "source": "evalwatch"},
                "annotations": {"summary": format!(
                    "{} of {m} is {} {} (evalwatch, per {}-day window)",
                    rule.metric,
                    if evaluator == "lt" { "below" } else { "above" },
                    rule.threshold,
                    window_days
                )},
            }));
        }
    }
    json!({
        "apiVersion": 1,
        "groups": [{
            "orgId": 1,
            "name": "evalwatch",
            "folder": "evalwatch",
            "interval": "1h",
            "rules": rules,
        }],
    })
}

/// Writes `quality.json`, `quantity.json` and `alert-rules.json` into `dir`.
pub fn write(
    dir: &Path,
    settings: &PublishSettings,
    rubric: &Rubric,
    models: &[String],
    datasource: &str,
    window_days: u32,
) -> std::io::Result<Vec<std::path::PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let files = [
        ("quality.json", quality_dashboard(settings, rubric, models)),
        ("quantity.json", quantity_dashboard(settings, models)),
        (
            "alert-rules.json",
            alert_rules(settings, models, datasource, window_days),
        ),
    ];
    let mut written = Vec::new();
    for (name, value) in files {
        let path = dir.join(name);
        let mut text = serde_json::to_string_pretty(&value).unwrap_or_default();
        text.push('\n');
        std::fs::write(&path, text)?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ref_ids_run_past_z() {
        assert_eq!(ref_id(0), "A");
        assert_eq!(ref_id(25), "Z");
        assert_eq!(ref_id(26), "AA");
        assert_eq!(ref_id(27), "AB");
    }
}
