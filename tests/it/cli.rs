//! The command line contract: exit codes, error messages with hints, `init`.

use crate::support::*;

#[test]
fn a_config_typo_names_the_key_and_the_file_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("evalwatch.toml");
    std::fs::write(&path, "[ingest]\nsorce = \"captures\"\n").unwrap();
    let output = run(evalwatch().arg("--config").arg(&path).arg("ingest"));
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert!(err.contains("sorce"), "{err}");
    assert!(err.contains("evalwatch.toml"), "{err}");
    assert!(err.contains("hint:"), "{err}");
}

#[test]
fn init_writes_a_starter_config_that_runs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("evalwatch.toml");
    let output = run(evalwatch().args(["init", "--path"]).arg(&path));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("[ingest]"));
    // A second init refuses to overwrite.
    let again = run(evalwatch().args(["init", "--path"]).arg(&path));
    assert_eq!(again.status.code(), Some(2));
    assert!(stderr(&again).contains("--force"));
    // The starter's relative source does not exist in the temp folder: a usage error with a hint.
    let output = run(evalwatch().arg("--config").arg(&path).arg("ingest"));
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("is not a folder"));
}

#[test]
fn bad_flags_are_usage_errors() {
    let output = run(evalwatch().args(["ingest", "--until", "2026-10-02"]));
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("--until needs --since"));
    let output = run(evalwatch().args(["ingest", "--since", "yesterday"]));
    assert_eq!(output.status.code(), Some(2));
    let output = run(evalwatch().args(["--warehouse", "gs://x/y", "ingest"]));
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("--warehouse"));
}

#[test]
fn json_logs_are_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(evalwatch()
        .args(["--log-format", "json", "--warehouse"])
        .arg(dir.path())
        .args(["ingest", "--since", "2026-10-01"]));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let err = stderr(&output);
    assert!(!err.trim().is_empty());
    for line in err.lines() {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(value["level"].is_string(), "{line}");
    }
}
