//! The telemetry stage: CloudWatch GetMetricData through the real SDK against ministack
//! (a component without datapoints is reported, not taken as idle), the file source of the
//! bundled sample with its cost, and `gpu sample` on a machine without NVML.

use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};

use crate::support::*;

/// Yesterday, UTC: CloudWatch (and ministack) refuse datapoints older than two weeks.
fn yesterday() -> chrono::NaiveDate {
    chrono::Utc::now().date_naive() - chrono::Days::new(1)
}

fn datum(name: &str, component: &str, minute: i64, value: f64, unit: StandardUnit) -> MetricDatum {
    // Yesterday 10:00 UTC plus `minute` minutes.
    let t = yesterday()
        .and_hms_opt(10, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp()
        + minute * 60;
    MetricDatum::builder()
        .metric_name(name)
        .dimensions(
            Dimension::builder()
                .name("InferenceComponentName")
                .value(component)
                .build(),
        )
        .timestamp(aws_smithy_types::DateTime::from_secs(t))
        .value(value)
        .unit(unit)
        .build()
}

#[test]
fn cloudwatch_metrics_become_telemetry_and_a_silent_component_is_reported() {
    let stack = ministack();
    let component = format!("ic-busy-{}", std::process::id());
    let silent = format!("ic-silent-{}", std::process::id());
    let client = stack.cloudwatch();
    runtime().block_on(async {
        let minutes = || (0..3).map(|i| i * 5);
        let gpu: Vec<MetricDatum> = minutes()
            .map(|m| {
                let value = 40.0 + (m / 5) as f64;
                datum(
                    "GPUUtilizationNormalized",
                    &component,
                    m,
                    value,
                    StandardUnit::Percent,
                )
            })
            .collect();
        let calls: Vec<MetricDatum> = minutes()
            .map(|m| datum("Invocations", &component, m, 100.0, StandardUnit::Count))
            .chain(minutes().map(|m| {
                datum(
                    "ModelLatency",
                    &component,
                    m,
                    250_000.0,
                    StandardUnit::Microseconds,
                )
            }))
            .collect();
        for (namespace, data) in [
            ("/aws/sagemaker/InferenceComponents", gpu),
            ("AWS/SageMaker", calls),
        ] {
            client
                .put_metric_data()
                .namespace(namespace)
                .set_metric_data(Some(data))
                .send()
                .await
                .unwrap_or_else(|e| panic!("put metrics to {namespace}: {e:?}"));
        }
    });

    let dir = tempfile::tempdir().unwrap();
    let config = stack.config(
        dir.path(),
        &format!(
            "[warehouse]\npath = \"{wh}\"\n[telemetry]\nsource = \"cloudwatch\"\nendpoint = \"assistant-prod\"\n\
             components = [\"{component}\", \"{silent}\"]\n\
             [cost.instance-types.\"ml.g5.12xlarge\"]\nusd-per-hour = 5.752\ngpus = 4\n\
             [cost.models.{component}]\ninstance-type = \"ml.g5.12xlarge\"\ngpus = 1\n",
            wh = dir.path().join("wh").display(),
        ),
    );
    let day = yesterday().to_string();
    let out = run(evalwatch().arg("--config").arg(&config).args([
        "telemetry",
        "--since",
        &day,
        "--until",
        &day,
    ]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let summary = stage_summary(&out, "telemetry");
    assert_eq!(summary["no_data"], serde_json::json!([silent]), "{summary}");
    assert_eq!(count(&summary, "samples"), 3);

    let df = read_table(&dir.path().join("wh"), "telemetry");
    assert_eq!(df.height(), 3);
    let gpu: Vec<f64> = df
        .column("gpu_util_pct")
        .unwrap()
        .f64()
        .unwrap()
        .iter()
        .flatten()
        .collect();
    assert_eq!(gpu, [40.0, 41.0, 42.0]);
    let latency: Vec<f64> = df
        .column("model_latency_ms")
        .unwrap()
        .f64()
        .unwrap()
        .iter()
        .flatten()
        .collect();
    assert_eq!(
        latency,
        [250.0, 250.0, 250.0],
        "microseconds become milliseconds"
    );
    // 5 minutes of one of four GPUs at 5.752 USD/h.
    let cost: Vec<f64> = df
        .column("cost_usd")
        .unwrap()
        .f64()
        .unwrap()
        .iter()
        .flatten()
        .collect();
    for c in cost {
        assert!((c - 5.752 / 4.0 * 300.0 / 3600.0).abs() < 1e-9, "{c}");
    }
}

#[test]
fn the_sample_telemetry_shows_the_over_provisioned_component() {
    let wh = tempfile::tempdir().unwrap();
    let out = run(evalwatch().arg("--warehouse").arg(wh.path()).arg("run"));
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let summary = stage_summary(&out, "telemetry");
    assert_eq!(count(&summary, "samples"), 8064);
    assert_eq!(count(&summary, "rejected"), 0);

    let agg = read_table(wh.path(), "aggregates");
    let models = strings(&agg, "model");
    let mean_of = |column: &str, model: &str| {
        let values = agg.column(column).unwrap().f64().unwrap().clone();
        let v: Vec<f64> = (0..agg.height())
            .filter(|&i| models[i] == model)
            .filter_map(|i| values.get(i))
            .collect();
        assert_eq!(v.len(), 14, "{column} {model}");
        v.iter().sum::<f64>() / v.len() as f64
    };
    // chat-b holds two GPUs for the same traffic and idles: lower utilisation, double the cost
    // per request, and (with its regression) far less quality per dollar.
    assert!(mean_of("gpu_util_mean", "chat-b") < mean_of("gpu_util_mean", "chat-a") / 3.0);
    let ratio =
        mean_of("cost_per_1k_requests", "chat-b") / mean_of("cost_per_1k_requests", "chat-a");
    assert!((1.8..2.2).contains(&ratio), "{ratio}");
    assert!(
        mean_of("quality_per_dollar", "chat-b") < mean_of("quality_per_dollar", "chat-a") / 2.0
    );
    // The captures carry no latency: p50 and p99 come from the telemetry's 5-minute means,
    // weighted by their invocations, so they lie within those means' range; chat-a's latency
    // grows with its load (850 ms + 900 ms x load), chat-b's hardly (620 + 180).
    let telemetry = read_table(wh.path(), "telemetry");
    let latencies = floats(&telemetry, "model_latency_ms");
    let (low, high) = latencies
        .iter()
        .fold((f64::MAX, f64::MIN), |(l, h), v| (l.min(*v), h.max(*v)));
    for (p50, p99) in floats(&agg, "latency_p50_ms")
        .into_iter()
        .zip(floats(&agg, "latency_p99_ms"))
    {
        assert!(
            low <= p50 && p50 <= p99 && p99 <= high,
            "{p50} {p99} in {low}..{high}"
        );
    }
    assert!(mean_of("latency_p50_ms", "chat-a") > mean_of("latency_p50_ms", "chat-b") + 200.0);
    assert!(mean_of("latency_p99_ms", "chat-a") > mean_of("latency_p50_ms", "chat-a"));
    // 14 days of one GPU at 5.752/4 USD/h for chat-a.
    let cost: f64 = (0..agg.height())
        .filter(|&i| models[i] == "chat-a")
        .map(|i| {
            agg.column("cost_usd")
                .unwrap()
                .f64()
                .unwrap()
                .get(i)
                .unwrap()
        })
        .sum();
    assert!((cost - 14.0 * 24.0 * 5.752 / 4.0).abs() < 1e-6, "{cost}");
}

#[test]
fn gpu_sample_without_nvml_fails_with_one_line_and_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(evalwatch()
        .args(["gpu", "sample", "--duration", "1s", "--out"])
        .arg(dir.path().join("gpu.csv")));
    if out.status.code() == Some(0) {
        eprintln!("skipped: this machine has NVML; the error path cannot be shown here");
        return;
    }
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("cannot load NVML"), "{err}");
    assert!(err.contains("hint:"), "{err}");
    assert!(!dir.path().join("gpu.csv").exists());
}

/// `[cost.models.<m>] team`: the aggregates carry the team, the report and `summary.json` give
/// cost, judge cost and quality per dollar per team, and the published metrics a `Team`
/// dimension; a model with a team and no instance type has no hardware cost, and no error.
#[test]
fn cost_and_quality_are_attributed_to_teams() {
    let dir = tempfile::tempdir().unwrap();
    let text = sample_config_text()
        .replace(
            "[cost.models.chat-a]\n",
            "[cost.models.chat-a]\nteam = \"search\"\ntags = { env = \"prod\" }\n",
        )
        .replace(
            "[cost.models.chat-b]\n",
            "[cost.models.chat-b]\nteam = \"support\"\n",
        )
        + "\n[cost.models.chat-z]\nteam = \"support\"\n";
    let config = dir.path().join("evalwatch.toml");
    std::fs::write(&config, text).unwrap();
    let wh = dir.path().join("wh");
    let out = run(configured(&config, &wh).arg("run"));
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));

    let agg = read_table(&wh, "aggregates");
    for (model, team) in strings(&agg, "model").iter().zip(strings(&agg, "team")) {
        let want = if model == "chat-a" {
            "search"
        } else {
            "support"
        };
        assert_eq!(team, want, "{model}");
    }
    let report = stage_summary(&out, "report");
    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            report["summary_md"]
                .as_str()
                .unwrap()
                .replace("summary.md", "summary.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let teams = summary["teams"].as_array().unwrap();
    assert_eq!(teams.len(), 2);
    let team = |name: &str| teams.iter().find(|t| t["team"] == name).unwrap();
    let model = |name: &str| {
        summary["models"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["model"] == name)
            .unwrap()["window"]
            .clone()
    };
    // One model each: the team's figures are its model's (the team's ratios are of its totals,
    // the model's window a mean of its days: the same to 0.5%).
    for (t, m) in [("search", "chat-a"), ("support", "chat-b")] {
        let (t, m) = (team(t), model(m));
        assert!((t["cost_usd"].as_f64().unwrap() - m["cost_usd"].as_f64().unwrap()).abs() < 1e-6);
        assert_eq!(t["requests"], m["requests"]);
        let (a, b) = (
            t["quality_per_dollar"].as_f64().unwrap(),
            m["quality_per_dollar"].as_f64().unwrap(),
        );
        assert!((a - b).abs() < 5e-3 * b, "{t} {m}");
    }
    assert!(
        team("search")["quality_per_dollar"].as_f64().unwrap()
            > team("support")["quality_per_dollar"].as_f64().unwrap()
    );
    let html = std::fs::read_to_string(report["index"].as_str().unwrap()).unwrap();
    assert!(html.contains(r#"<table id="teams">"#) && html.contains("<td>search</td>"));
    // The published metrics name the team.
    let emf = std::fs::read_to_string(wh.join("publish/metrics.emf.jsonl")).unwrap();
    let line = emf
        .lines()
        .find(|l| l.contains("\"chat-a\""))
        .expect("a line of chat-a");
    assert!(line.contains("\"Team\":\"search\""), "{line}");
}
