//! Ingest from S3 into an S3 warehouse through the real aws-sdk-s3, against ministack.

use std::collections::BTreeSet;
use std::path::Path;

use crate::support::*;

/// `evalwatch --config CONFIG --warehouse DIR ingest`.
fn ingest_into(config: &Path, warehouse: &Path) -> std::process::Output {
    run(evalwatch()
        .arg("--config")
        .arg(config)
        .arg("--warehouse")
        .arg(warehouse)
        .arg("ingest"))
}

/// Content hashes, sorted (request ids of plain records derive from their URI, which differs).
fn content_hashes(df: &polars::prelude::DataFrame) -> Vec<String> {
    let mut hashes = strings(df, "content_hash");
    hashes.sort();
    hashes
}

#[test]
fn s3_source_into_an_s3_warehouse_is_incremental_and_replaces_changed_objects() {
    let ms = ministack();
    let rt = runtime();
    let s3 = ms.s3();
    let source = rt.block_on(bucket(&s3, "capture"));
    let wh_bucket = rt.block_on(bucket(&s3, "warehouse"));
    let lines = rt.block_on(upload_sample_days(
        &s3,
        &source,
        "datacapture",
        &["2026/10/03", "2026/10/04"],
    ));
    // A plain-record object, gzip-compressed, outside the SageMaker layout.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(
        &mut gz,
        b"{\"prompt\":\"hi\",\"response\":\"hello\",\"model\":\"chat-c\",\"timestamp\":\"2026-10-03T08:00:00Z\"}\n",
    )
    .unwrap();
    rt.block_on(put(
        &s3,
        &source,
        "datacapture/exports/extra.jsonl.gz",
        gz.finish().unwrap(),
    ));

    let dir = tempfile::tempdir().unwrap();
    let config = ms.config(
        dir.path(),
        &format!(
            "[warehouse]\npath = \"s3://{wh_bucket}/evalwatch\"\n[ingest]\nsource = \"s3://{source}/datacapture\"\n"
        ),
    );
    let output = run(evalwatch().arg("--config").arg(&config).arg("ingest"));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let summary = ingest_summary(&output);
    // Days 3 and 4 hold two malformed lines (see MALFORMED in datasets/generate_sample.py).
    let quarantined = count(&summary, "quarantined");
    assert_eq!(
        quarantined, 2,
        "truncated JSON on 10-03 (chat-a), bad base64 on 10-04 (chat-b)"
    );
    assert_eq!(count(&summary, "rows"), lines as u64 + 1 - quarantined);
    assert_eq!(count(&summary, "objects_read"), 2 * 2 * 24 + 1);

    // The same objects ingested from a local copy give the same rows.
    let local_wh = tempfile::tempdir().unwrap();
    let local_src = tempfile::tempdir().unwrap();
    rt.block_on(download(&s3, &source, "datacapture", local_src.path()));
    let local = run(evalwatch()
        .arg("--warehouse")
        .arg(local_wh.path())
        .args(["ingest", "--source"])
        .arg(local_src.path()));
    assert_eq!(local.status.code(), Some(0), "{}", stderr(&local));

    let copy = tempfile::tempdir().unwrap();
    rt.block_on(download(&s3, &wh_bucket, "evalwatch", copy.path()));
    // One manifest file per endpoint/component folder and day, written by the unsharded ingest.
    let manifests = files_under(&copy.path().join("state/ingest/manifest"));
    assert!(!manifests.is_empty());
    assert!(
        manifests.iter().all(|p| p.ends_with("0-of-1.json")),
        "{manifests:?}"
    );
    let from_s3 = read_table(copy.path(), "captures");
    let from_local = read_table(local_wh.path(), "captures");
    assert_eq!(from_s3.height() as u64, count(&summary, "rows"));
    assert_eq!(content_hashes(&from_s3), content_hashes(&from_local));
    assert!(strings(&from_s3, "model").contains(&"chat-c".to_string()));
    assert!(
        strings(&from_s3, "source_uri")
            .iter()
            .all(|u| u.starts_with(&format!("s3://{source}/datacapture/")))
    );

    // Second run: the manifest on S3 says every object is unchanged.
    let again = run(evalwatch().arg("--config").arg(&config).arg("ingest"));
    let summary2 = ingest_summary(&again);
    assert_eq!(count(&summary2, "rows"), 0);
    assert_eq!(
        count(&summary2, "objects_unchanged"),
        count(&summary, "objects_read")
    );

    // Overwrite one object with new content: its ETag changes, its rows are replaced.
    let key = "datacapture/exports/extra.jsonl.gz";
    rt.block_on(put(
        &s3,
        &source,
        key,
        b"{\"prompt\":\"hi\",\"response\":\"hello again\",\"model\":\"chat-c\",\"timestamp\":\"2026-10-03T08:00:00Z\"}\n{\"prompt\":\"2\",\"response\":\"two\",\"model\":\"chat-c\",\"timestamp\":\"2026-10-03T08:01:00Z\"}\n"
            .to_vec(),
    ));
    let third = run(evalwatch().arg("--config").arg(&config).arg("ingest"));
    let summary3 = ingest_summary(&third);
    assert_eq!(count(&summary3, "objects_replaced"), 1);
    assert_eq!(count(&summary3, "rows"), 2);
    let copy = tempfile::tempdir().unwrap();
    rt.block_on(download(&s3, &wh_bucket, "evalwatch", copy.path()));
    let after = read_table(copy.path(), "captures");
    assert_eq!(after.height(), from_s3.height() + 1);
    let responses = strings(&after, "response");
    assert!(responses.contains(&"hello again".to_string()));
    assert!(!responses.contains(&"hello".to_string()));

    // A window prunes the listing to the day's folders.
    let wh3 = tempfile::tempdir().unwrap();
    let windowed = run(evalwatch()
        .arg("--config")
        .arg(&config)
        .arg("--warehouse")
        .arg(wh3.path())
        .args(["ingest", "--since", "2026-10-04"]));
    let summary4 = ingest_summary(&windowed);
    assert_eq!(
        count(&summary4, "objects_listed"),
        2 * 24 + 1,
        "day 4 and the undated export"
    );
    let dates = read_table(wh3.path(), "captures")
        .column("date")
        .unwrap()
        .n_unique()
        .unwrap();
    assert_eq!(dates, 1);
}

#[test]
fn listings_of_more_than_1000_objects_are_paginated() {
    let ms = ministack();
    let rt = runtime();
    let s3 = ms.s3();
    let source = rt.block_on(bucket(&s3, "many"));
    rt.block_on(async {
        let mut uploads = tokio::task::JoinSet::new();
        for i in 0..1050 {
            let (s3, source) = (s3.clone(), source.clone());
            uploads.spawn(async move {
                let body = format!(
                    r#"{{"prompt":"q{i}","response":"a{i}","model":"bulk","timestamp":{}}}"#,
                    1_790_000_000 + i
                );
                put(
                    &s3,
                    &source,
                    &format!("c/part-{i:05}.jsonl"),
                    body.into_bytes(),
                )
                .await;
            });
            while uploads.len() >= 32 {
                uploads.join_next().await.unwrap().unwrap();
            }
        }
        while let Some(done) = uploads.join_next().await {
            done.unwrap();
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let config = ms.config(
        dir.path(),
        &format!("[ingest]\nsource = \"s3://{source}/c\"\nworkers = 4\n"),
    );
    let wh = tempfile::tempdir().unwrap();
    let output = ingest_into(&config, wh.path());
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let summary = ingest_summary(&output);
    assert_eq!(count(&summary, "objects_listed"), 1050);
    assert_eq!(count(&summary, "rows"), 1050);
    let prompts: BTreeSet<String> = strings(&read_table(wh.path(), "captures"), "prompt")
        .into_iter()
        .collect();
    assert_eq!(prompts.len(), 1050);
}

#[test]
fn an_s3_error_names_the_location_and_fails_the_run() {
    let ms = ministack();
    let dir = tempfile::tempdir().unwrap();
    let config = ms.config(
        dir.path(),
        "[ingest]\nsource = \"s3://no-such-bucket-evalwatch/capture\"\n",
    );
    let wh = tempfile::tempdir().unwrap();
    let output = ingest_into(&config, wh.path());
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let err = stderr(&output);
    assert!(
        err.contains("s3://no-such-bucket-evalwatch/capture"),
        "{err}"
    );
    assert!(err.contains("NoSuchBucket"), "{err}");
}
