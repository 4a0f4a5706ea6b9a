//! Bedrock batch inference (`[judge] mode = "batch"`) through the real aws-sdk-bedrock and
//! aws-sdk-s3: the judge stub's batch control plane reads the input from ministack's S3 and
//! writes the output there. A nightly run submits and writes no rows; the next one collects and
//! writes the same verdicts as on demand, at the batch price; failed, missing and shuffled
//! records are handled; a crash between the submission and its record does not submit twice.

use std::path::Path;
use std::time::Duration;

use crate::support::score_with as score;
use crate::support::*;
use evalwatch::judge::stub_batch::BatchFaults;

const MODEL: &str = "anthropic.claude-3-5-sonnet-20240620-v1:0";

/// A batch-mode config: S3 (the batch prefix) on ministack, Bedrock on the stub.
fn batch_config(dir: &Path, stub: &str, bucket: &str, extra: &str) -> std::path::PathBuf {
    let ms = ministack();
    let path = dir.join("batch.toml");
    let text = format!(
        "[judge]\nkind = \"bedrock\"\nmodel = \"{MODEL}\"\nmode = \"batch\"\n\
         batch-role-arn = \"arn:aws:iam::000000000000:role/bedrock-batch\"\n\
         batch-s3-prefix = \"s3://{bucket}/batch\"\n\
         input-usd-per-million-tokens = 3.0\noutput-usd-per-million-tokens = 15.0\n\
         batch-input-usd-per-million-tokens = 1.5\nbatch-output-usd-per-million-tokens = 7.5\n\
         requests-per-minute = 600000\ntokens-per-minute = 1000000000\n{extra}\n\
         [aws]\nregion = \"us-east-1\"\nendpoint-url = \"{}\"\ns3-force-path-style = true\n\
         bedrock-endpoint-url = \"{stub}\"\n",
        ms.endpoint
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// (request_id, dimension) -> label, sorted.
fn labels(wh: &Path) -> Vec<String> {
    rows(
        wh,
        "scores",
        &["request_id", "dimension", "label", "status"],
    )
}

fn batch_stub(faults: BatchFaults) -> JudgeServer {
    judge_server(StubConfig {
        s3_endpoint: Some(ministack().endpoint.clone()),
        batch: faults,
        ..StubConfig::default()
    })
}

#[test]
fn a_night_submits_the_next_collects_the_same_verdicts_at_the_batch_price() {
    let stub = batch_stub(BatchFaults::default());
    let rt = runtime();
    let bucket = rt.block_on(bucket(&ministack().s3(), "batch-happy"));
    let dir = tempfile::tempdir().unwrap();
    let config = batch_config(dir.path(), &stub.url, &bucket, "");
    let wh = ingested("2026-10-03", "2026-10-03");

    // Night one (a nightly `run`): everything due goes into one job; no rows yet, and the
    // report says what is waiting.
    let out = run(evalwatch()
        .arg("--config")
        .arg(&config)
        .arg("--warehouse")
        .arg(wh.path())
        .args(["run", "--only", "score,analyse,report"])
        .args(["--since", "2026-10-03", "--until", "2026-10-03"]));
    assert!(matches!(out.status.code(), Some(0 | 3)), "{}", stderr(&out));
    let summary = stage_summary(&out, "score");
    let report = stage_summary(&out, "report");
    assert_eq!(
        count(&report["batch_waiting"], "records"),
        count(&summary, "sampled"),
        "{report}"
    );
    let page = files_under(&wh.path().join("reports"))
        .into_iter()
        .find(|p| p.ends_with("index.html"))
        .unwrap();
    let html = std::fs::read_to_string(page).unwrap();
    assert!(
        html.contains("waiting in 1 Bedrock batch job"),
        "the report says so"
    );
    let sampled = count(&summary, "sampled");
    assert!(sampled >= 100, "{summary}");
    assert_eq!(summary["mode"], "batch");
    assert_eq!(count(&summary["batch"], "submitted"), sampled, "{summary}");
    assert_eq!(count(&summary["batch"], "jobs_pending"), 1);
    assert!(stderr(&out).contains("collect"), "{}", stderr(&out));
    assert!(parquet_under(&wh.path().join("scores")).is_empty());
    assert_eq!(stub.stub.stats().requests, 0, "no on-demand call");
    assert_eq!(stub.stub.batch.jobs(), 1);

    // Night two: the job is collected first; every capture gets its rows, at the batch price.
    let out = score(&config, wh.path(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let summary = stage_summary(&out, "score");
    assert_eq!(
        count(&summary["batch"]["collected"], "judged"),
        sampled,
        "{summary}"
    );
    assert_eq!(count(&summary["batch"], "submitted"), 0);
    assert_eq!(stub.stub.stats().requests, 0, "still no on-demand call");
    let df = read_table(wh.path(), "scores");
    assert_eq!(df.height() as u64, sampled * 3);
    assert!(strings(&df, "status").iter().all(|s| s == "ok"));
    let ints = |name: &str| -> Vec<f64> {
        df.column(name)
            .unwrap()
            .i64()
            .unwrap()
            .iter()
            .map(|v| v.unwrap_or(0) as f64)
            .collect()
    };
    let (input, output) = (ints("input_tokens"), ints("output_tokens"));
    let cost: Vec<f64> = df
        .column("judge_cost_usd")
        .unwrap()
        .f64()
        .unwrap()
        .iter()
        .map(|v| v.unwrap())
        .collect();
    let paid: f64 = cost.iter().sum();
    let at_batch: f64 = (0..df.height())
        .map(|i| (input[i] * 1.5 + output[i] * 7.5) / 1e6)
        .sum();
    assert!((paid - at_batch).abs() < 1e-9, "{paid} vs {at_batch}");
    let collected_usd = summary["batch"]["collected_usd"].as_f64().unwrap();
    assert!((paid - collected_usd).abs() < 1e-9);

    // The same verdicts as on demand, from the same judge.
    let on_demand_dir = tempfile::tempdir().unwrap();
    let on_demand = batch_config(on_demand_dir.path(), &stub.url, &bucket, "");
    let text = std::fs::read_to_string(&on_demand)
        .unwrap()
        .replace("mode = \"batch\"", "mode = \"on-demand\"");
    std::fs::write(&on_demand, text).unwrap();
    let wh2 = ingested("2026-10-03", "2026-10-03");
    let out = score(&on_demand, wh2.path(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(labels(wh.path()), labels(wh2.path()));

    // Night three: nothing due, nothing submitted, nothing called.
    let before = stub.stub.stats().requests;
    let out = score(&config, wh.path(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let summary = stage_summary(&out, "score");
    assert_eq!(count(&summary["batch"], "submitted"), 0);
    assert_eq!(count(&summary, "from_cache"), sampled);
    assert_eq!(stub.stub.stats().requests, before);
    assert_eq!(stub.stub.batch.jobs(), 1);
}

#[test]
fn failed_missing_and_shuffled_records_end_judged_and_a_lost_submission_is_not_repeated() {
    let stub = batch_stub(BatchFaults {
        polls: 2,
        fail_every: 7,
        shuffle: true,
        partial: true,
        ..BatchFaults::default()
    });
    let rt = runtime();
    let bucket = rt.block_on(bucket(&ministack().s3(), "batch-faults"));
    let dir = tempfile::tempdir().unwrap();
    let config = batch_config(dir.path(), &stub.url, &bucket, "");
    let wh = ingested("2026-10-03", "2026-10-03");

    // Submitted; then the record of the job loses its ARN, as if the process died right after
    // the call: the next run finds the job by its name instead of submitting it again.
    let out = score(&config, wh.path(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let sampled = count(&stage_summary(&out, "score"), "sampled");
    let records = files_under(&wh.path().join("state/batch-jobs"));
    assert_eq!(records.len(), 1, "{records:?}");
    let mut record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&records[0]).unwrap()).unwrap();
    record["job_arn"] = serde_json::Value::Null;
    record["state"] = "submitting".into();
    std::fs::write(&records[0], record.to_string()).unwrap();

    // With --wait the run polls until the job is done, collects it, and judges on demand the
    // records it failed (every 7th) or left out (partial: every 10th).
    let out = score(&config, wh.path(), &["--wait", "120"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let summary = stage_summary(&out, "score");
    assert_eq!(stub.stub.batch.jobs(), 1, "the same job, not a second one");
    assert_eq!(
        stub.stub
            .batch
            .creates
            .load(std::sync::atomic::Ordering::Relaxed),
        1,
        "found by its name, not created again"
    );
    let collected = &summary["batch"]["collected"];
    let (failed, missing) = (count(collected, "failed"), count(collected, "missing"));
    assert!(failed > 0 && missing > 0, "{summary}");
    assert_eq!(count(collected, "judged") + failed + missing, sampled);
    // The job's manifest.json.out was read: the records it answered and failed, its tokens.
    let manifest = &collected["manifest"];
    assert_eq!(
        count(manifest, "successRecordCount") + count(manifest, "errorRecordCount"),
        sampled - missing,
        "{summary}"
    );
    assert_eq!(
        count(manifest, "inputTokenCount"),
        count(collected, "input_tokens")
    );
    assert_eq!(
        count(&summary["batch"], "judged_on_demand"),
        failed + missing
    );
    assert_eq!(
        stub.stub.stats().answered,
        failed + missing,
        "on demand: just those"
    );
    let df = read_table(wh.path(), "scores");
    assert_eq!(df.height() as u64, sampled * 3);
    assert!(strings(&df, "status").iter().all(|s| s == "ok"));
    let ids = strings(&df, "request_id");
    let unique: std::collections::BTreeSet<&String> = ids.iter().collect();
    assert_eq!(unique.len() as u64, sampled, "every capture once");
}

#[test]
fn below_the_minimum_the_judgments_are_made_on_demand_and_bad_batch_settings_are_named() {
    let stub = batch_stub(BatchFaults::default());
    let rt = runtime();
    let bucket = rt.block_on(bucket(&ministack().s3(), "batch-min"));
    let dir = tempfile::tempdir().unwrap();
    let config = batch_config(
        dir.path(),
        &stub.url,
        &bucket,
        "batch-min-records = 100000\nbatch-max-records = 200000",
    );
    let wh = ingested("2026-10-03", "2026-10-03");
    let out = score(&config, wh.path(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let summary = stage_summary(&out, "score");
    assert_eq!(count(&summary["batch"], "submitted"), 0);
    assert_eq!(stub.stub.batch.jobs(), 0);
    assert_eq!(stub.stub.stats().answered, count(&summary, "sampled"));
    assert_eq!(
        read_table(wh.path(), "scores").height() as u64,
        count(&summary, "sampled") * 3
    );

    // The dry run prices the plan both ways.
    let wh2 = ingested("2026-10-03", "2026-10-03");
    let out = score(&config, wh2.path(), &["--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let summary = stage_summary(&out, "score");
    let (on_demand, batch) = (
        summary["estimated_cost_usd"].as_f64().unwrap(),
        summary["estimated_batch_cost_usd"].as_f64().unwrap(),
    );
    assert!(
        (batch - on_demand / 2.0).abs() < 1e-9 * on_demand.max(1.0),
        "{summary}"
    );

    // Batch mode without its settings: exit 2 naming the key.
    let bad = dir.path().join("bad.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &bad,
        text.replace(
            "batch-role-arn = \"arn:aws:iam::000000000000:role/bedrock-batch\"\n",
            "",
        ),
    )
    .unwrap();
    let out = score(&bad, wh2.path(), &["--dry-run"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("judge.batch-role-arn"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_expired_job_leaves_its_records_due_and_a_slow_one_is_stopped_and_judged_on_demand() {
    let ms = ministack();
    let rt = runtime();
    // Expired after half of its records, with `batch-fallback = "next-run"`: the other half is
    // due again and goes into a new job in the run that collects the first.
    let stub = batch_stub(BatchFaults {
        expire: true,
        ..BatchFaults::default()
    });
    let bucket_a = rt.block_on(bucket(&ms.s3(), "batch-expire"));
    let dir = tempfile::tempdir().unwrap();
    let config = batch_config(
        dir.path(),
        &stub.url,
        &bucket_a,
        "batch-min-records = 10\nbatch-fallback = \"next-run\"",
    );
    let wh = ingested("2026-10-03", "2026-10-03");
    let out = score(&config, wh.path(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let sampled = count(&stage_summary(&out, "score"), "sampled");
    let out = score(&config, wh.path(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let summary = stage_summary(&out, "score");
    let collected = &summary["batch"]["collected"];
    let missing = count(collected, "missing");
    assert_eq!(count(collected, "judged") + missing, sampled, "{summary}");
    assert!(missing > 0);
    assert_eq!(count(&summary["batch"], "judged_on_demand"), 0);
    assert_eq!(count(&summary["batch"], "submitted"), missing, "due again");
    assert_eq!(stub.stub.batch.jobs(), 2);
    assert_eq!(stub.stub.stats().requests, 0);
    assert_eq!(
        read_table(wh.path(), "scores").height() as u64,
        (sampled - missing) * 3
    );

    // A job still running after `batch-max-delay-hours` is stopped; its records are judged on
    // demand by the run that stops it.
    let slow = batch_stub(BatchFaults {
        polls: 1_000,
        ..BatchFaults::default()
    });
    let bucket_b = rt.block_on(bucket(&ms.s3(), "batch-slow"));
    let dir = tempfile::tempdir().unwrap();
    let config = batch_config(
        dir.path(),
        &slow.url,
        &bucket_b,
        "batch-max-delay-hours = 0.0002",
    );
    let wh = ingested("2026-10-03", "2026-10-03");
    let out = score(&config, wh.path(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    std::thread::sleep(Duration::from_millis(1_000));
    let out = score(&config, wh.path(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let summary = stage_summary(&out, "score");
    assert_eq!(
        slow.stub
            .batch
            .stops
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    assert_eq!(
        count(&summary["batch"], "judged_on_demand"),
        sampled,
        "{summary}"
    );
    assert_eq!(slow.stub.stats().answered, sampled);
    assert_eq!(read_table(wh.path(), "scores").height() as u64, sampled * 3);
}

/// A run SIGKILLed while its CreateModelInvocationJob call is in flight (the job exists at
/// Bedrock, the run never heard its ARN) does not make the next run submit the records again:
/// the job is found by its name and collected.
#[test]
fn a_run_killed_during_the_submission_does_not_submit_twice() {
    let stub = batch_stub(BatchFaults {
        create_delay: Duration::from_secs(30),
        ..BatchFaults::default()
    });
    let rt = runtime();
    let bucket = rt.block_on(bucket(&ministack().s3(), "batch-kill"));
    let dir = tempfile::tempdir().unwrap();
    let config = batch_config(dir.path(), &stub.url, &bucket, "");
    let wh = ingested("2026-10-03", "2026-10-03");
    let mut child = score_command(&config, wh.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while stub.stub.batch.jobs() == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no job created"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL, the create call unanswered
    child.wait().unwrap();
    let records = files_under(&wh.path().join("state/batch-jobs"));
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&records[0]).unwrap()).unwrap();
    assert_eq!(record["state"], "submitting", "{record}");
    assert!(record["job_arn"].is_null());

    let out = score(&config, wh.path(), &["--wait", "60"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let summary = stage_summary(&out, "score");
    assert_eq!(stub.stub.batch.jobs(), 1);
    assert_eq!(
        stub.stub
            .batch
            .creates
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    let sampled = count(&summary, "sampled");
    assert_eq!(
        count(&summary["batch"]["collected"], "judged"),
        sampled,
        "{summary}"
    );
    assert_eq!(count(&summary["batch"], "submitted"), 0);
    assert_eq!(read_table(wh.path(), "scores").height() as u64, sampled * 3);
    assert_eq!(stub.stub.stats().requests, 0);
}
