//! `evalwatch run` as a scheduler sees it: `--only` / `--from` run the stages asked for and the
//! manifest says which, for every outcome (ok, failed, interrupted); a re-run of the same night
//! adds no rows, judgments or datapoints; the warehouse's writer lock stops a second writer
//! (naming the holder) or makes it wait, and is taken over when its holder is gone, on a local
//! warehouse and on S3; SIGTERM stops a run cleanly and the next run continues.

use std::io::Write;

use crate::support::*;

fn manifests(warehouse: &std::path::Path) -> Vec<serde_json::Value> {
    files_under(&warehouse.join("runs"))
        .iter()
        .map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap())
        .collect()
}

fn stages(manifest: &serde_json::Value) -> Vec<String> {
    manifest["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stage"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn stages_run_as_planned_and_a_second_night_adds_nothing() {
    let wh = tempfile::tempdir().unwrap();
    let only = run(evalwatch()
        .arg("--warehouse")
        .arg(wh.path())
        .args(["run", "--only", "ingest"]));
    assert_eq!(only.status.code(), Some(0), "{}", stderr(&only));
    let first = manifests(wh.path());
    assert_eq!(first.len(), 1);
    assert_eq!(stages(&first[0]), ["ingest"]);
    assert_eq!(first[0]["plan"], serde_json::json!(["ingest"]));
    assert!(!wh.path().join("scores").exists());

    let rest = run(evalwatch()
        .arg("--warehouse")
        .arg(wh.path())
        .args(["run", "--from", "score"]));
    assert_eq!(rest.status.code(), Some(3), "{}", stderr(&rest));
    let after = manifests(wh.path());
    let second = after
        .iter()
        .find(|m| m["run_id"] != first[0]["run_id"])
        .unwrap();
    // The embed stage runs too (skipped with its line: the tests run without the model).
    assert_eq!(
        stages(second),
        [
            "score",
            "embed",
            "telemetry",
            "analyse",
            "publish",
            "report"
        ]
    );
    assert_eq!(second["status"], "ok");
    assert_eq!(second["rubric"], "quality@1.0.0");

    // The same night again, every stage: nothing is added anywhere.
    let count_rows = |table: &str| read_table(wh.path(), table).height();
    let (captures, scores, drift) = (
        count_rows("captures"),
        count_rows("scores"),
        count_rows("drift"),
    );
    let emf = std::fs::read_to_string(wh.path().join("publish/metrics.emf.jsonl")).unwrap();
    let again = run(evalwatch().arg("--warehouse").arg(wh.path()).arg("run"));
    assert_eq!(again.status.code(), Some(3), "{}", stderr(&again));
    assert_eq!(count_rows("captures"), captures);
    assert_eq!(count_rows("scores"), scores);
    assert_eq!(count_rows("drift"), drift);
    assert_eq!(
        std::fs::read_to_string(wh.path().join("publish/metrics.emf.jsonl")).unwrap(),
        emf
    );
    let score = stage_summary(&again, "score");
    assert_eq!(count(&score, "calls"), 0, "{score}");
}

#[test]
fn a_held_lock_stops_a_second_run_and_a_dead_holders_lock_is_taken_over() {
    let wh = tempfile::tempdir().unwrap();
    let path = wh.path().join("state/locks/writer.lock");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut held = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)
        .unwrap();
    held.try_lock().unwrap();
    held.write_all(
        br#"{"run_id":"nightly-7","host":"batch-1","pid":4242,"started_at":"2026-11-28T01:00:00Z","heartbeat_at":"2026-11-28T01:00:00Z"}"#,
    )
    .unwrap();
    let blocked = run(evalwatch()
        .arg("--warehouse")
        .arg(wh.path())
        .args(["run", "--only", "ingest"]));
    assert_eq!(blocked.status.code(), Some(1), "{}", stderr(&blocked));
    let message = stderr(&blocked);
    assert!(
        message.contains("another writer holds this warehouse's lock")
            && message.contains("nightly-7"),
        "{message}"
    );
    assert!(!wh.path().join("captures").exists(), "nothing ran");
    // Any writer, whatever its window: a single command, another window.
    for args in [
        &["ingest", "--since", "2026-10-05", "--until", "2026-10-06"][..],
        &["score", "--since", "2026-10-05", "--until", "2026-10-05"][..],
        &["run", "--since", "2026-10-05", "--until", "2026-10-06"][..],
    ] {
        let other = run(evalwatch().arg("--warehouse").arg(wh.path()).args(args));
        assert_eq!(other.status.code(), Some(1), "{args:?}: {}", stderr(&other));
        assert!(stderr(&other).contains("nightly-7"), "{}", stderr(&other));
    }
    // A reader needs no lock.
    let plan = run(evalwatch()
        .arg("--warehouse")
        .arg(wh.path())
        .args(["score", "--dry-run"]));
    assert_eq!(plan.status.code(), Some(0), "{}", stderr(&plan));
    // `--wait-lock` waits for the holder to finish.
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(1500));
        held.set_len(0).unwrap();
        drop(held);
    });
    let waited = run(evalwatch().arg("--warehouse").arg(wh.path()).args([
        "--wait-lock",
        "30",
        "ingest",
        "--since",
        "2026-10-05",
        "--until",
        "2026-10-05",
    ]));
    releaser.join().unwrap();
    assert_eq!(waited.status.code(), Some(0), "{}", stderr(&waited));
    assert!(stderr(&waited).contains("waiting for the warehouse's writer lock"));
    let mut held = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    held.try_lock().unwrap();
    held.write_all(
        br#"{"run_id":"nightly-8","host":"batch-1","pid":4243,"started_at":"2026-11-28T01:00:00Z","heartbeat_at":"2026-11-28T01:00:00Z"}"#,
    )
    .unwrap();

    // The holder dies without releasing it: the next run takes it over.
    drop(held);
    let next = run(evalwatch()
        .arg("--warehouse")
        .arg(wh.path())
        .args(["run", "--only", "ingest"]));
    assert_eq!(next.status.code(), Some(0), "{}", stderr(&next));
    assert!(
        stderr(&next).contains("ended without releasing it"),
        "{}",
        stderr(&next)
    );
    // Released: empty again.
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
}

#[test]
fn an_s3_lock_names_its_holder_and_an_abandoned_one_is_taken_over() {
    let stack = ministack();
    let s3 = stack.s3();
    let dir = tempfile::tempdir().unwrap();
    let bucket = runtime().block_on(bucket(&s3, "lock"));
    let config = stack.config(
        dir.path(),
        &format!(
            "[warehouse]\npath = \"s3://{bucket}/wh\"\n[score]\nrubric = {:?}\n",
            repo_root()
                .join("rubrics/quality.toml")
                .display()
                .to_string()
        ),
    );
    let key = "wh/state/locks/writer.json";
    let holder = |heartbeat: chrono::DateTime<chrono::Utc>| {
        format!(
            r#"{{"run_id":"nightly-9","command":"run","generation":4,"host":"batch-2","pid":7,"started_at":"{0}","heartbeat_at":"{0}"}}"#,
            heartbeat.to_rfc3339()
        )
        .into_bytes()
    };
    let analyse = || {
        run(evalwatch().arg("--config").arg(&config).args([
            "run",
            "--only",
            "analyse",
            "--since",
            "2026-10-01",
            "--until",
            "2026-10-01",
        ]))
    };
    runtime().block_on(put(&s3, &bucket, key, holder(chrono::Utc::now())));
    let blocked = analyse();
    assert_eq!(blocked.status.code(), Some(1), "{}", stderr(&blocked));
    assert!(
        stderr(&blocked).contains("nightly-9"),
        "{}",
        stderr(&blocked)
    );

    let old = chrono::Utc::now() - chrono::Duration::minutes(30);
    runtime().block_on(put(&s3, &bucket, key, holder(old)));
    let next = analyse();
    assert_eq!(next.status.code(), Some(0), "{}", stderr(&next));
    assert!(
        stderr(&next).contains("took over an abandoned writer lock")
            && stderr(&next).contains("generation=5"),
        "{}",
        stderr(&next)
    );
    // Released: gone.
    let left = runtime().block_on(async {
        s3.get_object()
            .bucket(&bucket)
            .key(key)
            .send()
            .await
            .is_ok()
    });
    assert!(!left, "the lock was released");
}

#[test]
fn a_failed_run_leaves_a_manifest_naming_the_stage_and_the_error() {
    let wh = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let config = dir.path().join("evalwatch.toml");
    std::fs::write(
        &config,
        format!(
            "[ingest]\nsource = \"{}\"\n[score]\nrubric = \"{}\"\n[judge]\nkind = \"openai\"\n\
             model = \"m\"\nurl = \"http://127.0.0.1:{port}/v1\"\nmax-attempts = 1\n\
             circuit-breaker = 5\n",
            sample_capture().display(),
            repo_root().join("rubrics/quality.toml").display()
        ),
    )
    .unwrap();
    let out = run(evalwatch()
        .arg("--config")
        .arg(&config)
        .arg("--warehouse")
        .arg(wh.path())
        .args(["run", "--since", "2026-10-03", "--until", "2026-10-03"]));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    // The ingest summary was logged as ingest finished, before score failed.
    let err = stderr(&out);
    let (ingest_at, error_at) = (err.find("ingest: ").unwrap(), err.find("error: ").unwrap());
    assert!(ingest_at < error_at, "{err}");
    let manifest = &manifests(wh.path())[0];
    assert_eq!(manifest["status"], "failed", "{manifest}");
    assert!(
        manifest["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("score: stopped judging")),
        "{manifest}"
    );
    let stages: Vec<(&str, &str)> = manifest["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["stage"].as_str().unwrap(), s["status"].as_str().unwrap()))
        .collect();
    assert_eq!(stages, [("ingest", "ok"), ("score", "error")]);
}

#[test]
fn sigterm_stops_a_run_cleanly_and_the_next_run_continues() {
    let server = judge_server(StubConfig {
        latency: std::time::Duration::from_millis(1500),
        ..StubConfig::default()
    });
    let wh = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("evalwatch.toml");
    std::fs::write(
        &config,
        format!(
            "[ingest]\nsource = \"{}\"\n[score]\nrubric = \"{}\"\n[judge]\nkind = \"openai\"\n\
             model = \"judge-7b\"\nurl = \"{}/v1\"\nconcurrency = 8\n\
             requests-per-minute = 600000\ntokens-per-minute = 1000000000\n",
            sample_capture().display(),
            repo_root().join("rubrics/quality.toml").display(),
            server.url
        ),
    )
    .unwrap();
    let command = || {
        let mut cmd = evalwatch();
        cmd.arg("--config")
            .arg(&config)
            .arg("--warehouse")
            .arg(wh.path())
            .args([
                "run",
                "--only",
                "ingest,score",
                "--since",
                "2026-10-03",
                "--until",
                "2026-10-03",
            ]);
        cmd
    };
    let child = command()
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the first calls are in flight, then ask it to stop.
    let started = std::time::Instant::now();
    while server.stub.stats().requests == 0 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "no call made"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(143), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("SIGTERM received"), "{err}");
    assert!(err.contains("interrupted by SIGTERM"), "{err}");
    assert!(err.contains("hint: run the same command again"), "{err}");
    let manifest = &manifests(wh.path())[0];
    assert_eq!(manifest["status"], "interrupted", "{manifest}");
    // The calls in flight finished within the grace period and were kept; nothing else started.
    let judged = read_table(wh.path(), "scores").height() as u64 / 3;
    let answered = server.stub.stats().answered;
    assert!((1..=8).contains(&judged), "{judged} judged");
    assert_eq!(judged, answered, "every answer was kept");
    // The lock was released: the next run goes ahead and pays only for the rest.
    let next = run(&mut command());
    assert_eq!(next.status.code(), Some(0), "{}", stderr(&next));
    let score = stage_summary(&next, "score");
    assert_eq!(count(&score, "from_cache"), judged, "{score}");
    assert_eq!(server.stub.stats().answered, count(&score, "captures"));
}
