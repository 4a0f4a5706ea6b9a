//! The OTLP sink against a receiver that decodes OTLP/HTTP with the OpenTelemetry project's own
//! protobuf definitions (`tests/otlp_receiver.py`, the `opentelemetry-proto` package): one GenAI
//! evaluation event per score row, the aggregates as metrics, a collector that refuses the first
//! requests (nothing lost, nothing twice), a re-run that sends nothing, and JSON with the
//! `OTEL_EXPORTER_OTLP_*` variables.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::support::*;

struct Receiver {
    url: String,
    child: Child,
}

impl Receiver {
    fn start(refuse_first: u32) -> Receiver {
        let dir = tempfile::tempdir().unwrap().keep();
        let port_file = dir.join("port");
        let child = Command::new(otlp_python())
            .arg(repo_root().join("tests/otlp_receiver.py"))
            .arg("--port-file")
            .arg(&port_file)
            .args(["--refuse-first", &refuse_first.to_string()])
            .spawn()
            .expect("the OTLP receiver starts");
        let started = Instant::now();
        while !port_file.exists() {
            assert!(started.elapsed() < Duration::from_secs(30), "no receiver");
            std::thread::sleep(Duration::from_millis(50));
        }
        let port = std::fs::read_to_string(&port_file).unwrap();
        Receiver {
            url: format!("http://127.0.0.1:{}", port.trim()),
            child,
        }
    }

    fn received(&self) -> serde_json::Value {
        let out = Command::new(otlp_python())
            .arg("-c")
            .arg(format!(
                "import urllib.request; print(urllib.request.urlopen('{}/received').read().decode())",
                self.url
            ))
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(&out)))
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The built-in config on the tests' sample, publishing to EMF and `otlp` (`extra` appended to
/// `[publish]`).
fn config(dir: &Path, extra: &str) -> std::path::PathBuf {
    let text = sample_config_text().replace(
        "sink = \"emf\"",
        &format!("sink = [\"emf\", \"otlp\"]\n{extra}"),
    );
    let path = dir.join("evalwatch.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// (request id, dimension) of the score rows that are `ok` or `error`.
fn judged_rows(wh: &Path) -> Vec<(String, String)> {
    let scores = read_table(wh, "scores");
    let (ids, dims, statuses) = (
        strings(&scores, "request_id"),
        strings(&scores, "dimension"),
        strings(&scores, "status"),
    );
    (0..scores.height())
        .filter(|&i| statuses[i] == "ok" || statuses[i] == "error")
        .map(|i| (ids[i].clone(), dims[i].clone()))
        .collect()
}

#[test]
fn scores_reach_an_otel_collector_as_genai_evaluation_events_once() {
    let receiver = Receiver::start(2);
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    let config = config(
        dir.path(),
        &format!(
            "otlp-endpoint = \"{}\"\notlp-headers = {{ \"x-api-key\" = \"k1\" }}\n",
            receiver.url
        ),
    );
    let run_it = || run(configured(&config, &wh).arg("run"));
    let out = run_it();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let publish = stage_summary(&out, "publish");
    let otlp = &publish["otlp"];
    let rows = judged_rows(&wh);
    assert_eq!(count(otlp, "events"), rows.len() as u64, "{otlp}");
    assert_eq!(count(otlp, "events_sent"), rows.len() as u64, "{otlp}");
    assert_eq!(count(otlp, "failed"), 0, "{otlp}");
    assert_eq!(
        count(otlp, "retries"),
        2,
        "the two refused requests, retried"
    );

    let got = receiver.received();
    assert_eq!(got["refused"], 2);
    assert!(
        got["errors"].as_array().unwrap().is_empty(),
        "{}",
        got["errors"]
    );
    let events = got["events"].as_array().unwrap();
    // Every score row once: nothing lost to the refusals, nothing twice.
    assert_eq!(events.len(), rows.len());
    let seen: BTreeSet<(String, String)> = events
        .iter()
        .map(|e| {
            let a = &e["attributes"];
            (
                a["gen_ai.response.id"].as_str().unwrap().to_string(),
                a["gen_ai.evaluation.name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(seen, rows.iter().cloned().collect());
    for e in events {
        let a = &e["attributes"];
        assert_eq!(e["event_name"], "gen_ai.evaluation.result");
        assert_eq!(e["service"], "evalwatch");
        assert_eq!(a["evalwatch.rubric"], "quality@1.0.0");
        assert_eq!(a["evalwatch.judge"], "offline:1");
        assert!(["chat-a", "chat-b"].contains(&a["evalwatch.model"].as_str().unwrap()));
        assert!(a["gen_ai.evaluation.score.value"].is_f64(), "{e}");
        assert!(a["gen_ai.evaluation.explanation"].is_string(), "{e}");
    }
    // The aggregates as metrics, one point per datum, with the model.
    let points = got["points"].as_array().unwrap();
    assert_eq!(points.len() as u64, count(otlp, "metric_points_sent"));
    assert!(points.len() > 28 * 10, "{}", points.len());
    let names: BTreeSet<&str> = points.iter().map(|p| p["name"].as_str().unwrap()).collect();
    for name in [
        "evalwatch.safety_score",
        "evalwatch.composite_quality_score",
        "evalwatch.cost_per_1k_requests",
        "evalwatch.latency_p99_ms",
    ] {
        assert!(names.contains(name), "{name} in {names:?}");
    }
    let safety = points
        .iter()
        .find(|p| p["name"] == "evalwatch.safety_score")
        .unwrap();
    assert_eq!(safety["kind"], "summary");
    assert!(safety["attributes"]["evalwatch.model"].is_string());
    // Protobuf, gzip, the configured header.
    let types = got["content_types"].as_array().unwrap();
    assert!(
        types.iter().all(|t| t == "application/x-protobuf"),
        "{types:?}"
    );
    for h in got["headers"].as_array().unwrap() {
        assert_eq!(h["content-encoding"], "gzip");
        assert_eq!(h["x-api-key"], "k1");
    }

    // A re-run: the ledger holds everything, nothing is sent again.
    let before = got["requests"].as_u64().unwrap();
    let again = run_it();
    assert_eq!(again.status.code(), Some(3), "{}", stderr(&again));
    let otlp = stage_summary(&again, "publish")["otlp"].clone();
    assert_eq!(count(&otlp, "events_sent"), 0, "{otlp}");
    assert_eq!(count(&otlp, "metric_points_sent"), 0, "{otlp}");
    assert_eq!(receiver.received()["requests"].as_u64().unwrap(), before);
}

#[test]
fn json_to_a_collector_named_by_the_otel_variables_and_a_dead_one_fails_the_run() {
    let receiver = Receiver::start(0);
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    let config = config(dir.path(), "");
    let day = ["--since", "2026-10-12", "--until", "2026-10-12"];
    // A collector that is not there: every attempt fails, the run says so and exits 1.
    let dead = run(configured(&config, &wh)
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
        .arg("run")
        .args(day));
    assert_eq!(dead.status.code(), Some(1), "{}", stderr(&dead));
    assert!(stderr(&dead).contains("127.0.0.1:9"), "{}", stderr(&dead));
    // Then the real one, by the standard variables: JSON, no gzip, the headers.
    let out = run(configured(&config, &wh)
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.url)
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
        .env("OTEL_EXPORTER_OTLP_COMPRESSION", "none")
        .env("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%20t0ken")
        .env("OTEL_SERVICE_NAME", "nightly-eval")
        .arg("run")
        .args(day));
    assert!(matches!(out.status.code(), Some(0 | 3)), "{}", stderr(&out));
    let got = receiver.received();
    assert!(
        got["errors"].as_array().unwrap().is_empty(),
        "{}",
        got["errors"]
    );
    let rows = judged_rows(&wh);
    let events = got["events"].as_array().unwrap();
    assert_eq!(events.len(), rows.len());
    assert!(events.iter().all(|e| e["service"] == "nightly-eval"));
    assert!(!got["points"].as_array().unwrap().is_empty());
    let types = got["content_types"].as_array().unwrap();
    assert!(types.iter().all(|t| t == "application/json"), "{types:?}");
    for h in got["headers"].as_array().unwrap() {
        assert_eq!(h["authorization"], "Bearer t0ken");
        assert!(h.get("content-encoding").is_none(), "{h}");
    }
}
