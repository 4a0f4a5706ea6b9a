//! What the tables say stays true: one capture, one rubric version, one judge id -> one current
//! judgment (issue 11). A rubric edited without a version bump is refused; a judge's new
//! generation of scores replaces the older one for every reader; older generations left by
//! earlier versions are never counted twice.

use std::path::Path;

use polars::prelude::ChunkAgg;

use crate::support::*;

/// Every `part-*.parquet` under `scores/`, as paths relative to the warehouse.
fn score_parts(wh: &Path) -> Vec<std::path::PathBuf> {
    parquet_under(&wh.join("scores"))
}

#[test]
fn a_rubric_edited_without_a_version_bump_is_refused() {
    let wh = ingested("2026-10-03", "2026-10-03");
    let dir = tempfile::tempdir().unwrap();
    let rubric = dir.path().join("quality.toml");
    let text = std::fs::read_to_string(repo_root().join("rubrics/quality.toml")).unwrap();
    std::fs::write(&rubric, &text).unwrap();
    let score = |path: &Path| {
        run(evalwatch()
            .arg("--warehouse")
            .arg(wh.path())
            .arg("score")
            .arg("--rubric")
            .arg(path))
    };
    let first = score(&rubric);
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let rows = read_table(wh.path(), "scores").height();
    let parts = score_parts(wh.path());

    // One description changed, the version kept: refused, nothing written.
    let edited = text.replace(
        "Safety, relevance and professional tone",
        "Safety, relevance and a professional tone",
    );
    assert_ne!(edited, text);
    std::fs::write(&rubric, &edited).unwrap();
    let second = score(&rubric);
    assert_eq!(second.status.code(), Some(2), "{}", stderr(&second));
    let err = stderr(&second);
    assert!(
        err.contains("was edited without bumping its version"),
        "{err}"
    );
    assert!(err.contains("quality@1.0.0"), "{err}");
    assert!(err.contains("hint: bump the rubric's `version`"), "{err}");
    assert_eq!(score_parts(wh.path()), parts);
    assert_eq!(read_table(wh.path(), "scores").height(), rows);

    // `run` refuses it too, before any stage writes.
    let config = dir.path().join("evalwatch.toml");
    std::fs::write(
        &config,
        format!(
            "[ingest]\nsource = \"{}\"\n\n[score]\nrubric = \"{}\"\n",
            sample_capture().display(),
            rubric.display()
        ),
    )
    .unwrap();
    let whole = run(evalwatch()
        .arg("--config")
        .arg(&config)
        .arg("--warehouse")
        .arg(wh.path())
        .args(["run", "--since", "2026-10-03", "--until", "2026-10-03"]));
    assert_eq!(whole.status.code(), Some(2), "{}", stderr(&whole));
    assert!(stderr(&whole).contains("without bumping its version"));
    assert_eq!(read_table(wh.path(), "scores").height(), rows);

    // A bumped version is a new rubric: scored beside the old one.
    std::fs::write(
        &rubric,
        edited.replace("version = \"1.0.0\"", "version = \"1.1.0\""),
    )
    .unwrap();
    let bumped = score(&rubric);
    assert_eq!(bumped.status.code(), Some(0), "{}", stderr(&bumped));
    assert!(wh.path().join("scores/rubric=quality@1.1.0").is_dir());

    // The lock beside a rubric refuses the same edit before the warehouse is consulted.
    std::fs::copy(
        repo_root().join("rubrics/rubrics.lock"),
        dir.path().join("rubrics.lock"),
    )
    .unwrap();
    std::fs::write(&rubric, &edited).unwrap();
    let fresh = ingested("2026-10-04", "2026-10-04");
    let locked = run(evalwatch()
        .arg("--warehouse")
        .arg(fresh.path())
        .arg("score")
        .arg("--rubric")
        .arg(&rubric));
    assert_eq!(locked.status.code(), Some(2), "{}", stderr(&locked));
    assert!(
        stderr(&locked).contains("rubrics.lock"),
        "{}",
        stderr(&locked)
    );
}

#[test]
fn an_older_generation_of_a_judges_scores_is_never_counted_twice() {
    // Parts written before one part per judge (named from the rubric hash, judge and its
    // parameters): a copy of each current part under another name, as a second generation
    // would have been. Analyse must count each capture once.
    let wh = tempfile::tempdir().unwrap();
    let day = ["--since", "2026-10-03", "--until", "2026-10-04"];
    let out = run(evalwatch()
        .arg("--warehouse")
        .arg(wh.path())
        .arg("run")
        .args(day)
        .args(["--only", "ingest", "--only", "score"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let parts = score_parts(wh.path());
    assert!(!parts.is_empty());
    for part in &parts {
        std::fs::copy(part, part.with_file_name("part-0123456789abcdef.parquet")).unwrap();
    }
    let analysed = run(evalwatch()
        .arg("--warehouse")
        .arg(wh.path())
        .arg("analyse")
        .args(day));
    assert!(
        matches!(analysed.status.code(), Some(0 | 3)),
        "{}",
        stderr(&analysed)
    );
    let agg = read_table(wh.path(), "aggregates");
    let total = |name: &str| -> i64 {
        agg.column(name)
            .unwrap()
            .cast(&polars::prelude::DataType::Int64)
            .unwrap()
            .i64()
            .unwrap()
            .sum()
            .unwrap()
    };
    assert!(total("requests") > 100);
    assert_eq!(
        total("judged"),
        total("requests"),
        "each capture judged once"
    );

    // Scoring the days again replaces both generations with the judge's one part.
    let again = run(evalwatch()
        .arg("--warehouse")
        .arg(wh.path())
        .arg("score")
        .args(day));
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    assert_eq!(score_parts(wh.path()), parts);
}

#[test]
fn new_judge_parameters_supersede_the_older_generation_capture_by_capture() {
    let server = judge_server(StubConfig::default());
    let wh = ingested("2026-10-03", "2026-10-03");
    let dir = tempfile::tempdir().unwrap();
    let config = |tokens: u32| {
        let path = dir.path().join(format!("judge-{tokens}.toml"));
        std::fs::write(
            &path,
            format!(
                "[score]\nrubric = \"{}\"\n\n[judge]\nkind = \"openai\"\nmodel = \"judge-7b\"\n\
                 url = \"{}/v1\"\nrequests-per-minute = 600000\ntokens-per-minute = 1000000000\n\
                 max-output-tokens = {tokens}\n",
                repo_root().join("rubrics/quality.toml").display(),
                server.url
            ),
        )
        .unwrap();
        path
    };
    let score = |tokens: u32, extra: &[&str]| {
        run(evalwatch()
            .arg("--config")
            .arg(config(tokens))
            .arg("--warehouse")
            .arg(wh.path())
            .arg("score")
            .args(extra))
    };
    let first = score(512, &[]);
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let captures = count(&stage_summary(&first, "score"), "captures");
    let parts = score_parts(wh.path());
    let params_of = |wh: &Path| strings(&read_table(wh, "scores"), "judge_params_hash");
    let old_params = params_of(wh.path())[0].clone();

    // Other parameters, five new judgments: the five carry the new parameters, every other
    // capture keeps its older judgment, none has two.
    let limited = score(1024, &["--limit", "5"]);
    assert_eq!(limited.status.code(), Some(0), "{}", stderr(&limited));
    assert_eq!(score_parts(wh.path()), parts, "one part per judge and day");
    let scores = read_table(wh.path(), "scores");
    assert_eq!(scores.height() as u64, 3 * captures);
    let ids = strings(&scores, "request_id");
    let dims = strings(&scores, "dimension");
    let mut seen = std::collections::BTreeSet::new();
    for (id, dim) in ids.iter().zip(&dims) {
        assert!(seen.insert((id, dim)), "two judgments of {id} {dim}");
    }
    let params = params_of(wh.path());
    let new = params.iter().filter(|p| **p != old_params).count();
    assert_eq!(new, 3 * 5, "five captures judged with the new parameters");

    // Without the limit the new generation covers the day.
    let full = score(1024, &[]);
    assert_eq!(full.status.code(), Some(0), "{}", stderr(&full));
    assert_eq!(score_parts(wh.path()), parts);
    let params = params_of(wh.path());
    assert_eq!(params.len() as u64, 3 * captures);
    assert!(params.iter().all(|p| *p != old_params));
}

// ---------------------------------------------------------------------------------------------
// Failure is loud and bounded

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn write_config(dir: &Path, judge: &str) -> std::path::PathBuf {
    let path = dir.join("evalwatch.toml");
    std::fs::write(
        &path,
        format!(
            "[ingest]\nsource = \"{}\"\n\n[score]\nrubric = \"{}\"\n\n[judge]\n\
             requests-per-minute = 600000\ntokens-per-minute = 1000000000\n\
             backoff-initial-ms = 5\nbackoff-max-ms = 20\n{judge}\n",
            sample_capture().display(),
            repo_root().join("rubrics/quality.toml").display(),
        ),
    )
    .unwrap();
    path
}

#[test]
fn a_dead_judge_trips_the_breaker_and_the_run_fails_naming_the_cause() {
    let wh = ingested("2026-10-03", "2026-10-03");
    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://127.0.0.1:{}/v1", closed_port());
    let config = write_config(
        dir.path(),
        &format!(
            "kind = \"openai\"\nmodel = \"judge-7b\"\nurl = \"{url}\"\nconcurrency = 4\n\
             max-attempts = 2\ncircuit-breaker = 10"
        ),
    );
    let out = run(evalwatch()
        .arg("--config")
        .arg(&config)
        .arg("--warehouse")
        .arg(wh.path())
        .arg("score"));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("stopped judging after 10 judgments in a row failed"),
        "{err}"
    );
    assert!(err.contains("connection failed"), "{err}");
    assert!(
        err.contains("hint: the judge's endpoint cannot be reached"),
        "{err}"
    );
    assert!(
        err.lines().count() < 20,
        "a few lines, not one per capture:\n{err}"
    );
    // Only the attempted captures have rows (errors, judged again next run); the rest none.
    let scores = read_table(wh.path(), "scores");
    let ids: std::collections::BTreeSet<String> =
        strings(&scores, "request_id").into_iter().collect();
    assert!(
        (10..=14).contains(&ids.len()),
        "{} captures have rows",
        ids.len()
    );
    assert!(strings(&scores, "status").iter().all(|s| s == "error"));
}

#[test]
fn a_bedrock_judge_without_credentials_stops_before_the_first_call() {
    let wh = ingested("2026-10-03", "2026-10-03");
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            "kind = \"bedrock\"\nmodel = \"anthropic.claude-3-5-sonnet-20240620-v1:0\"\n\n\
             [aws]\nendpoint-url = \"http://127.0.0.1:{}\"",
            closed_port()
        ),
    );
    let started = std::time::Instant::now();
    let out = run(evalwatch()
        .arg("--config")
        .arg(&config)
        .arg("--warehouse")
        .arg(wh.path())
        .arg("score")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_WEB_IDENTITY_TOKEN_FILE")
        .env_remove("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
        .env_remove("AWS_CONTAINER_CREDENTIALS_FULL_URI")
        .env("HOME", dir.path())
        .env("AWS_CONFIG_FILE", dir.path().join("none"))
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.path().join("none")));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("no AWS credentials could be loaded"), "{err}");
    assert!(err.contains("hint: set `AWS_ACCESS_KEY_ID`"), "{err}");
    assert!(err.lines().count() < 10, "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    assert!(
        !wh.path().join("scores").exists(),
        "nothing judged, nothing written"
    );
}

// ---------------------------------------------------------------------------------------------
// What people count

#[test]
fn alerts_are_events_pass_rates_are_filled_and_the_report_shows_alarm_thresholds() {
    let wh = tempfile::tempdir().unwrap();
    let out = run(evalwatch().arg("--warehouse").arg(wh.path()).arg("run"));
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let analyse = stage_summary(&out, "analyse");
    let alerted = analyse["alerted"].as_array().unwrap();
    // One alert per (model, day, metric), with the tests that agreed; the test rows stay in drift/.
    assert_eq!(count(&analyse, "alerts"), alerted.len() as u64, "{analyse}");
    let mut events = std::collections::BTreeSet::new();
    for a in alerted {
        assert!(events.insert((
            a["model"].to_string(),
            a["date"].to_string(),
            a["metric"].to_string()
        )));
        assert!(!a["tests"].as_array().unwrap().is_empty());
    }
    let drift = read_table(wh.path(), "drift");
    let alert_rows = strings(&drift, "verdict")
        .iter()
        .filter(|v| *v == "alert")
        .count() as u64;
    assert_eq!(count(&analyse, "alerting_tests"), alert_rows);
    assert!(
        alert_rows > count(&analyse, "alerts"),
        "some events have several tests"
    );
    let agg = read_table(wh.path(), "aggregates");
    let alerts_column: i64 = agg
        .column("alerts")
        .unwrap()
        .cast(&polars::prelude::DataType::Int64)
        .unwrap()
        .i64()
        .unwrap()
        .sum()
        .unwrap();
    assert_eq!(alerts_column as u64, count(&analyse, "alerts"));

    // Pass rates: the share of a model-day's safety scores at or above its threshold (0.8),
    // recomputed here from the scores table.
    let scores = read_table(wh.path(), "scores");
    let (models, dims) = (strings(&scores, "model"), strings(&scores, "dimension"));
    let dates = scores.column("date").unwrap().date().unwrap().phys.clone();
    let values = scores.column("score").unwrap().f64().unwrap().clone();
    let agg_models = strings(&agg, "model");
    let agg_dates = agg.column("date").unwrap().date().unwrap().phys.clone();
    let pass = agg
        .column("safety_pass_rate")
        .unwrap()
        .f64()
        .unwrap()
        .clone();
    let composite_pass = agg
        .column("composite_pass_rate")
        .unwrap()
        .f64()
        .unwrap()
        .clone();
    for (i, agg_model) in agg_models.iter().enumerate() {
        let safety: Vec<f64> = (0..scores.height())
            .filter(|&j| {
                models[j] == *agg_model && dates.get(j) == agg_dates.get(i) && dims[j] == "safety"
            })
            .filter_map(|j| values.get(j))
            .collect();
        let expected = safety.iter().filter(|v| **v >= 0.8).count() as f64 / safety.len() as f64;
        assert!((pass.get(i).unwrap() - expected).abs() < 1e-12, "row {i}");
        assert!((0.0..=1.0).contains(&composite_pass.get(i).unwrap()));
    }

    // chat-a drifts nowhere but its relevance sits under the 0.7 alarm every day: the report
    // says so instead of "ok".
    let report = stage_summary(&out, "report");
    let index = std::path::PathBuf::from(report["index"].as_str().unwrap());
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(index.with_file_name("summary.json")).unwrap(),
    )
    .unwrap();
    let chat_a = json["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["model"] == "chat-a")
        .unwrap();
    assert_eq!(chat_a["status"], "warn", "{chat_a}");
    let breaches = chat_a["breaches"].as_array().unwrap();
    assert!(
        breaches
            .iter()
            .any(|b| b["metric"] == "relevance_score" && b["value"].as_f64().unwrap() < 0.7),
        "{breaches:?}"
    );
    let md = std::fs::read_to_string(index.with_file_name("summary.md")).unwrap();
    assert!(
        md.contains("relevance_score past 0.7 in 14 windows (warning)"),
        "{md}"
    );
    let html = std::fs::read_to_string(&index).unwrap();
    assert!(html.contains("Alarm thresholds crossed"));
}
