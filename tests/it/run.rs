//! `evalwatch run` as a scheduler sees it: `--only` / `--from` run the stages asked for and the
//! manifest says which; a re-run of the same night adds no rows, judgments or datapoints; the
//! run lock stops a second run on the same warehouse and window (naming the holder) and is taken
//! over when its holder is gone, on a local warehouse and on S3.

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
    assert_eq!(
        stages(second),
        ["score", "telemetry", "analyse", "publish", "report"]
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
    let path = wh.path().join("state/locks/run-2026-10-01_2026-10-14.lock");
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
        message.contains("another run holds the lock") && message.contains("nightly-7"),
        "{message}"
    );
    assert!(!wh.path().join("captures").exists(), "nothing ran");

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
    let key = "wh/state/locks/run-2026-10-01_2026-10-01.json";
    let holder = |heartbeat: chrono::DateTime<chrono::Utc>| {
        format!(
            r#"{{"run_id":"nightly-9","host":"batch-2","pid":7,"started_at":"{0}","heartbeat_at":"{0}"}}"#,
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
        stderr(&next).contains("took over an abandoned lock"),
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
