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
    // A budget is set, not commented out: no run spends without a bound.
    assert!(
        text.lines().any(|l| l.trim() == "budget-usd = 25.0"),
        "{text}"
    );
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

/// Every stderr line as JSON, or the test fails naming the line; the messages.
fn json_lines(err: &str) -> Vec<String> {
    assert!(!err.trim().is_empty());
    err.lines()
        .map(|line| {
            let value: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            assert!(value["level"].is_string(), "{line}");
            value["message"].as_str().unwrap_or_default().to_string()
        })
        .collect()
}

#[test]
fn json_logs_are_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(evalwatch()
        .args(["--log-format", "json", "--warehouse"])
        .arg(dir.path())
        .args(["run", "--since", "2026-10-01", "--until", "2026-10-02"]));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let messages = json_lines(&stderr(&output));
    assert!(
        messages.iter().any(|m| m.starts_with("report: ")),
        "{messages:?}"
    );
    // Errors and hints too.
    let output = run(evalwatch().args(["--log-format", "json", "ingest", "--until", "2026-10-02"]));
    assert_eq!(output.status.code(), Some(2));
    let messages = json_lines(&stderr(&output));
    assert!(
        messages.iter().any(|m| m.starts_with("error: ")),
        "{messages:?}"
    );
    let output = run(evalwatch().args([
        "--log-format",
        "json",
        "--config",
        "/nonexistent.toml",
        "ingest",
    ]));
    assert_eq!(output.status.code(), Some(2));
    let messages = json_lines(&stderr(&output));
    assert!(
        messages.iter().any(|m| m.starts_with("hint: ")),
        "{messages:?}"
    );
}

/// The IAM policy in `deploy/` grants exactly the actions of the AWS calls the code makes: a new
/// call without its action (or a stale action) fails here, not in someone's nightly job.
#[test]
fn the_iam_policy_grants_what_the_code_calls_and_nothing_else() {
    let calls: &[(&str, &str)] = &[
        (".get_object()", "s3:GetObject"),
        (".put_object()", "s3:PutObject"),
        (".delete_object()", "s3:DeleteObject"),
        (".list_objects_v2()", "s3:ListBucket"),
        (".converse()", "bedrock:InvokeModel"),
        (
            ".create_model_invocation_job()",
            "bedrock:CreateModelInvocationJob",
        ),
        // A batch job is created with a service role the caller passes to Bedrock.
        (".create_model_invocation_job()", "iam:PassRole"),
        (
            ".list_model_invocation_jobs()",
            "bedrock:ListModelInvocationJobs",
        ),
        (
            ".get_model_invocation_job()",
            "bedrock:GetModelInvocationJob",
        ),
        (
            ".stop_model_invocation_job()",
            "bedrock:StopModelInvocationJob",
        ),
        (".get_metric_data()", "cloudwatch:GetMetricData"),
        (".put_metric_data()", "cloudwatch:PutMetricData"),
        (".put_metric_alarm()", "cloudwatch:PutMetricAlarm"),
    ];
    let mut source = String::new();
    for file in files_under(&repo_root().join("pipeline")) {
        if file.extension().is_some_and(|e| e == "rs") {
            source.push_str(&std::fs::read_to_string(&file).unwrap());
        }
    }
    // Any SDK operation call not in the table above is a call this test does not know.
    let known: Vec<&str> = calls.iter().map(|(c, _)| *c).collect();
    let sdk_call = regex::Regex::new(r"client\s*\.\s*([a-z_0-9]+)\(\)").unwrap();
    for m in sdk_call.captures_iter(&source) {
        if &m[1] == "clone" {
            continue;
        }
        let call = format!(".{}()", &m[1]);
        assert!(
            known.contains(&call.as_str()),
            "an AWS call this test does not know: {call}"
        );
    }
    let used: std::collections::BTreeSet<&str> = calls
        .iter()
        .filter(|(call, _)| source.contains(call))
        .map(|(_, action)| *action)
        .collect();
    let policy: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("deploy/iam-policy.json")).unwrap(),
    )
    .unwrap();
    let granted: std::collections::BTreeSet<String> = policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["Action"].as_array().unwrap().iter())
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    let used: std::collections::BTreeSet<String> = used.into_iter().map(String::from).collect();
    assert_eq!(granted, used);
    // The Kubernetes manifest runs the nightly job with JSON logs and does not retry an alert.
    let cronjob =
        std::fs::read_to_string(repo_root().join("deploy/kubernetes/cronjob.yaml")).unwrap();
    assert!(cronjob.contains(r#""--log-format", "json", "run""#));
    assert!(cronjob.contains("concurrencyPolicy: Forbid") && cronjob.contains("values: [2, 3]"));
}
