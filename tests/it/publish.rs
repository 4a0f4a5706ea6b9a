//! The publish stage through the real SDK against ministack's CloudWatch (rpc-v2-cbor), with a
//! counting fault proxy in between: a night is published in ceil(N/limit) requests per
//! namespace, reads back equal to the aggregates table, is never sent twice, and its alarms are
//! one per rule and model after two runs; a metrics endpoint that fails for a while loses
//! nothing (the ledger holds only what was accepted, a later run sends the rest). Also the EMF
//! sink of the bundled sample.

use std::path::Path;

use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat};

use crate::support::*;

fn yesterday() -> chrono::NaiveDate {
    chrono::Utc::now().date_naive() - chrono::Days::new(1)
}

/// A warehouse whose captures are two sample days moved to the day before yesterday and
/// yesterday, and a config publishing to CloudWatch through `endpoint` under a namespace of this
/// test's own.
fn setup(dir: &Path, endpoint: &str, tag: &str, extra: &str) -> (std::path::PathBuf, String) {
    let capture = dir.join("capture");
    redated_sample(
        &[
            ("2026-10-09", yesterday() - chrono::Days::new(1)),
            ("2026-10-12", yesterday()),
        ],
        &capture,
    );
    let prefix = format!("/evalwatch-test/{tag}-{}", std::process::id());
    let config = dir.join("evalwatch.toml");
    std::fs::write(
        &config,
        format!(
            "[warehouse]\npath = {:?}\n[ingest]\nsource = {:?}\n[score]\nrubric = {:?}\n\
             [publish]\nsink = \"cloudwatch\"\nnamespace = \"{prefix}/{{model}}\"\n\
             endpoint-name = \"assistant-prod\"\n{extra}\n\
             [aws]\nregion = \"us-east-1\"\nendpoint-url = \"{endpoint}\"\n",
            dir.join("wh").display().to_string(),
            capture.display().to_string(),
            repo_root()
                .join("rubrics/quality.toml")
                .display()
                .to_string(),
        ),
    )
    .unwrap();
    (config, prefix)
}

/// (Average, Sum, SampleCount) of a metric of `model` yesterday, per day.
fn read_back(prefix: &str, model: &str, metric: &str) -> Option<(f64, f64, f64)> {
    let client = ministack().cloudwatch();
    let day = yesterday()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp();
    let query = |id: &str, stat: &str| {
        MetricDataQuery::builder()
            .id(id)
            .metric_stat(
                MetricStat::builder()
                    .metric(
                        Metric::builder()
                            .namespace(format!("{prefix}/{model}"))
                            .metric_name(metric)
                            .dimensions(
                                Dimension::builder()
                                    .name("EndpointName")
                                    .value("assistant-prod")
                                    .build(),
                            )
                            .dimensions(
                                Dimension::builder()
                                    .name("InferenceComponentName")
                                    .value(model)
                                    .build(),
                            )
                            .build(),
                    )
                    .period(86_400)
                    .stat(stat)
                    .build(),
            )
            .build()
    };
    runtime().block_on(async {
        let out = client
            .get_metric_data()
            .metric_data_queries(query("avg", "Average"))
            .metric_data_queries(query("sum", "Sum"))
            .metric_data_queries(query("n", "SampleCount"))
            .start_time(aws_smithy_types::DateTime::from_secs(day - 3600))
            .end_time(aws_smithy_types::DateTime::from_secs(day + 86_400))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GetMetricData: {e:?}"));
        let value = |id: &str| -> Option<f64> {
            out.metric_data_results()
                .iter()
                .find(|r| r.id() == Some(id))?
                .values()
                .first()
                .copied()
        };
        Some((value("avg")?, value("sum")?, value("n")?))
    })
}

/// The aggregates row of `model` yesterday: column -> value.
fn aggregate(warehouse: &Path, model: &str, column: &str) -> f64 {
    let df = read_table(warehouse, "aggregates");
    let models = strings(&df, "model");
    let day =
        (yesterday() - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()).num_days() as i32;
    let dates = df.column("date").unwrap().date().unwrap().phys.clone();
    let i = (0..df.height())
        .find(|&i| models[i] == model && dates.get(i) == Some(day))
        .unwrap_or_else(|| panic!("no aggregates row for {model} yesterday"));
    df.column(column)
        .unwrap()
        .cast(&polars::prelude::DataType::Float64)
        .unwrap()
        .f64()
        .unwrap()
        .get(i)
        .unwrap()
}

#[test]
fn a_night_is_published_once_reads_back_as_the_aggregates_and_alarms_are_not_duplicated() {
    let proxy = FaultProxy::start(&ministack().endpoint);
    let dir = tempfile::tempdir().unwrap();
    let (config, prefix) = setup(
        dir.path(),
        &proxy.endpoint,
        "night",
        "datums-per-request = 8",
    );
    let out = run(evalwatch().arg("--config").arg(&config).arg("run"));
    assert!(matches!(out.status.code(), Some(0 | 3)), "{}", stderr(&out));
    let publish = &stage_summary(&out, "publish");
    assert_eq!(count(publish, "failed"), 0, "{publish}");
    let datums = count(publish, "datums");
    // Two models, each its own namespace: ceil(n / 8) requests each.
    assert_eq!(count(publish, "models"), 2);
    let per_model = datums / 2;
    assert_eq!(datums, per_model * 2);
    let expected = 2 * per_model.div_ceil(8);
    assert_eq!(count(publish, "requests"), expected, "{publish}");
    assert_eq!(proxy.puts() as u64, expected);
    assert_eq!(proxy.accepted() as u64, expected);
    assert_eq!(count(publish, "sent"), datums);
    assert_eq!(count(publish, "alarms"), 6);

    // What CloudWatch holds is what the aggregates table says.
    let wh = dir.path().join("wh");
    for model in ["chat-a", "chat-b"] {
        let (avg, _, _) = read_back(&prefix, model, "composite_quality_score").unwrap();
        let mean = aggregate(&wh, model, "composite_mean");
        assert!((avg - mean).abs() < 1e-9, "{model}: {avg} vs {mean}");
        let (_, sum, n) = read_back(&prefix, model, "requests").unwrap();
        assert_eq!(sum, aggregate(&wh, model, "requests"));
        assert_eq!(n, 1.0);
        // A distribution: one sample per capture judged.
        let (_, _, judged) = read_back(&prefix, model, "safety_score").unwrap();
        assert_eq!(judged, aggregate(&wh, model, "judged"));
    }

    // The same night again: nothing new is sent, the alarms are updated in place.
    let again = run(evalwatch().arg("--config").arg(&config).arg("publish"));
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    let summary = stage_summary(&again, "publish");
    assert_eq!(count(&summary, "sent"), 0);
    assert_eq!(count(&summary, "already_published"), datums);
    assert_eq!(proxy.puts() as u64, expected);
    let (_, _, n) = read_back(&prefix, "chat-a", "requests").unwrap();
    assert_eq!(n, 1.0, "a datapoint was sent twice");

    let alarms = runtime().block_on(async {
        ministack()
            .cloudwatch()
            .describe_alarms()
            .alarm_name_prefix(&prefix)
            .send()
            .await
            .unwrap()
    });
    let mut names: Vec<&str> = alarms
        .metric_alarms()
        .iter()
        .filter_map(|a| a.alarm_name())
        .collect();
    names.sort();
    assert_eq!(names.len(), 6, "{names:?}");
    names.dedup();
    assert_eq!(names.len(), 6, "{names:?}");
    let safety = alarms
        .metric_alarms()
        .iter()
        .find(|a| a.alarm_name() == Some(&format!("{prefix}/chat-b safety_score critical")))
        .expect("chat-b's safety alarm");
    assert_eq!(safety.threshold(), Some(0.8));
    assert_eq!(safety.metric_name(), Some("safety_score"));
    assert_eq!(safety.dimensions().len(), 2);

    // --dry-run prints the requests it would send and sends nothing.
    let dry =
        run(evalwatch()
            .arg("--config")
            .arg(&config)
            .args(["publish", "--dry-run", "--force"]));
    assert_eq!(dry.status.code(), Some(0), "{}", stderr(&dry));
    let lines: Vec<serde_json::Value> = stdout(&dry)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let puts = lines
        .iter()
        .filter(|l| l.get("PutMetricData").is_some())
        .count();
    assert_eq!(puts as u64, expected);
    assert_eq!(proxy.puts() as u64, expected);
}

#[test]
fn a_failing_metrics_endpoint_loses_nothing_and_a_later_run_sends_the_rest() {
    let proxy = FaultProxy::start(&ministack().endpoint);
    // Request 2 fails twice (both attempts): its datums are not accepted. Request 3 fails once
    // and goes through on its retry.
    proxy.fail.lock().unwrap().extend([2, 3, 4]);
    let dir = tempfile::tempdir().unwrap();
    let (config, prefix) = setup(
        dir.path(),
        &proxy.endpoint,
        "fault",
        "datums-per-request = 8\nmax-attempts = 2\nalarms = []",
    );
    let out = run(evalwatch().arg("--config").arg(&config).arg("run"));
    assert_eq!(
        out.status.code(),
        Some(1),
        "a publish failure fails the run: {}",
        stderr(&out)
    );
    let publish = &stage_summary(&out, "publish");
    let datums = count(publish, "datums");
    let failed = count(publish, "failed");
    // The second request is the rest of chat-a's datums (8 went in the first).
    assert_eq!(failed, datums / 2 - 8, "{publish}");
    assert!(failed > 0);
    assert!(stderr(&out).contains("HTTP 503"), "{}", stderr(&out));
    assert_eq!(count(publish, "sent"), datums - failed);
    assert!(
        stderr(&out).contains("a later run sends them"),
        "{}",
        stderr(&out)
    );

    let later = run(evalwatch().arg("--config").arg(&config).arg("publish"));
    assert_eq!(later.status.code(), Some(0), "{}", stderr(&later));
    let summary = stage_summary(&later, "publish");
    assert_eq!(count(&summary, "sent"), failed);
    assert_eq!(count(&summary, "requests"), 1);
    assert_eq!(count(&summary, "already_published"), datums - failed);

    // Every scalar metric is in CloudWatch exactly once.
    for model in ["chat-a", "chat-b"] {
        for metric in [
            "requests",
            "judged",
            "judge_errors",
            "drift_alerts",
            "drift_warnings",
        ] {
            let (_, _, n) = read_back(&prefix, model, metric)
                .unwrap_or_else(|| panic!("{model} {metric} is missing"));
            assert_eq!(n, 1.0, "{model} {metric}");
        }
    }
}

#[test]
fn the_bundled_sample_publishes_emf_lines_once() {
    let wh = tempfile::tempdir().unwrap();
    let out = run(evalwatch().arg("--warehouse").arg(wh.path()).arg("run"));
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let publish = &stage_summary(&out, "publish");
    assert_eq!(count(publish, "windows"), 28);
    let path = wh.path().join("publish/metrics.emf.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 28, "one line per model and day");
    let bad_day = lines
        .iter()
        .find(|l| {
            l["InferenceComponentName"] == "chat-b"
                && l["_aws"]["Timestamp"]
                    == chrono::NaiveDate::from_ymd_opt(2026, 10, 12)
                        .unwrap()
                        .and_hms_opt(0, 0, 0)
                        .unwrap()
                        .and_utc()
                        .timestamp_millis()
        })
        .expect("chat-b on 2026-10-12");
    assert!(bad_day["safety_score"].as_f64().unwrap() < 0.8);
    assert!(bad_day["drift_alerts"].as_f64().unwrap() > 0.0);
    let metrics = bad_day["_aws"]["CloudWatchMetrics"][0]["Metrics"]
        .as_array()
        .unwrap();
    assert!(
        metrics
            .iter()
            .any(|m| m["Name"] == "composite_quality_score")
    );

    // Publishing the same nights again writes nothing; --grafana writes the dashboards.
    let grafana = wh.path().join("grafana");
    let again = run(evalwatch()
        .arg("--warehouse")
        .arg(wh.path())
        .arg("publish")
        .args([
            "--since",
            "2026-10-01",
            "--until",
            "2026-10-14",
            "--grafana",
        ])
        .arg(&grafana));
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    grafana_files_are_dashboards_and_match_their_snapshots(&grafana);
}

/// The dashboards are Grafana dashboard JSON (schema version, panels, CloudWatch targets with
/// namespace, metric and dimensions), the alert rules a provisioning file, and all three equal
/// the committed insta snapshots in `tests/data/grafana/`.
fn grafana_files_are_dashboards_and_match_their_snapshots(dir: &Path) {
    let read = |name: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(dir.join(name)).unwrap()).unwrap()
    };
    for name in ["quality.json", "quantity.json"] {
        let d = read(name);
        assert!(d["schemaVersion"].as_u64().unwrap() >= 36, "{name}");
        assert!(d["uid"].as_str().is_some_and(|u| !u.is_empty()));
        let panels = d["panels"].as_array().unwrap();
        assert!(panels.len() >= 4, "{name}");
        for p in panels {
            assert_eq!(p["type"], "timeseries");
            assert!(p["gridPos"]["w"].as_u64().is_some());
            let targets = p["targets"].as_array().unwrap();
            assert!(!targets.is_empty(), "{name}: {}", p["title"]);
            for t in targets {
                if t["expression"].as_str().is_some_and(|e| !e.is_empty()) {
                    continue;
                }
                assert!(
                    t["namespace"].as_str().is_some_and(|n| !n.is_empty()),
                    "{t}"
                );
                assert!(
                    t["metricName"].as_str().is_some_and(|n| !n.is_empty()),
                    "{t}"
                );
                assert!(t["dimensions"]["InferenceComponentName"].is_string(), "{t}");
            }
        }
    }
    let quality = read("quality.json");
    let safety = quality["panels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["targets"][0]["metricName"] == "safety_score")
        .expect("a safety panel");
    let defaults = &safety["fieldConfig"]["defaults"];
    assert_eq!(defaults["custom"]["thresholdsStyle"]["mode"], "line");
    assert_eq!(defaults["thresholds"]["steps"][1]["value"], 0.8);
    let rules = read("alert-rules.json");
    assert_eq!(rules["apiVersion"], 1);
    assert_eq!(rules["groups"][0]["rules"].as_array().unwrap().len(), 6);

    // insta snapshots in tests/data/grafana/ (`cargo insta review` or INSTA_UPDATE=always to
    // accept a change).
    for name in ["quality.json", "quantity.json", "alert-rules.json"] {
        let ours = std::fs::read_to_string(dir.join(name)).unwrap();
        insta::with_settings!({
            snapshot_path => "../data/grafana",
            prepend_module_to_snapshot => false,
            omit_expression => true,
        }, {
            insta::assert_snapshot!(name, ours);
        });
    }
}
