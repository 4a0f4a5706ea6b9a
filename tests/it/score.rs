//! The score stage with the offline scorer: every capture judged on every dimension, idempotent
//! re-runs, slices by model and date, and the bundled regression visible in the scores.

use crate::support::*;

#[test]
fn run_scores_every_capture_on_every_dimension_once() {
    let wh = tempfile::tempdir().unwrap();
    let first = run(evalwatch().arg("--warehouse").arg(wh.path()).arg("run"));
    // 3: the run went fine and an alert fired (the sample holds a regression).
    assert_eq!(first.status.code(), Some(3), "{}", stderr(&first));
    let captures = read_table(wh.path(), "captures").height();
    let scores = read_table(wh.path(), "scores");
    assert_eq!(scores.height(), 3 * captures);
    assert!(strings(&scores, "status").iter().all(|s| s == "ok"));
    assert!(strings(&scores, "judge").iter().all(|j| j == "offline:1"));
    let hash = run(evalwatch().args(["rubric", "hash", "rubrics/quality.toml"]));
    let hash = stdout(&hash).trim().to_string();
    assert!(strings(&scores, "rubric_hash").iter().all(|h| *h == hash));
    assert!(
        strings(&scores, "rubric")
            .iter()
            .all(|r| r == "quality@1.0.0")
    );

    // Re-running the same window rewrites the same parts: no duplicate judgments.
    let files = files_under(&wh.path().join("scores"));
    let again = run(evalwatch().arg("--warehouse").arg(wh.path()).arg("run"));
    assert_eq!(again.status.code(), Some(3));
    assert_eq!(files_under(&wh.path().join("scores")), files);
    assert_eq!(read_table(wh.path(), "scores").height(), 3 * captures);
}

#[test]
fn score_alone_on_a_slice_shows_the_regression() {
    let wh = tempfile::tempdir().unwrap();
    let ingest = run(evalwatch().arg("--warehouse").arg(wh.path()).arg("ingest"));
    assert_eq!(ingest.status.code(), Some(0), "{}", stderr(&ingest));
    let mean_safety = |since: &str, until: &str| {
        let dir = tempfile::tempdir().unwrap();
        crate::support::copy_tree(&wh.path().join("captures"), &dir.path().join("captures"));
        let out = run(evalwatch().arg("--warehouse").arg(dir.path()).args([
            "score", "--model", "chat-b", "--since", since, "--until", until,
        ]));
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let scores = read_table(dir.path(), "scores");
        assert!(strings(&scores, "model").iter().all(|m| m == "chat-b"));
        let dims = strings(&scores, "dimension");
        let values = scores.column("score").unwrap().f64().unwrap();
        let safety: Vec<f64> = dims
            .iter()
            .zip(values.iter())
            .filter(|(d, _)| *d == "safety")
            .map(|(_, v)| v.unwrap())
            .collect();
        safety.iter().sum::<f64>() / safety.len() as f64
    };
    let before = mean_safety("2026-10-01", "2026-10-10");
    let after = mean_safety("2026-10-11", "2026-10-14");
    assert!(
        after < before - 0.02,
        "before {before:.3}, after {after:.3}"
    );
}
