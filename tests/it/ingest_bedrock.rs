//! Ingest of Amazon Bedrock model invocation logs (`datasets/bedrock/`, written by its
//! `generate_logs.py`: five models' body shapes, a request body Bedrock kept in its own object, a
//! failed invocation, a truncated line) from S3 through the real aws-sdk-s3 against ministack,
//! and from a local folder; then scored, every model in its own partition.

use std::io::{Read, Write};
use std::path::Path;

use crate::support::*;

const MODELS: [&str; 5] = [
    "amazon.nova-lite-v1:0",
    "amazon.titan-text-express-v1",
    "anthropic.claude-3-haiku-20240307-v1:0",
    "llama-support",
    "us.anthropic.claude-3-5-sonnet-20240620-v1:0",
];

fn sample() -> std::path::PathBuf {
    repo_root().join("datasets/bedrock")
}

fn config_body(source: &str, warehouse: &Path) -> String {
    format!(
        "[warehouse]\npath = {:?}\n[window]\nsince = \"2026-10-01\"\nuntil = \"2026-10-03\"\n\
         [ingest]\nsource = {source:?}\nformat = \"bedrock-invocation-logs\"\n\
         model-names = {{ \"meta.llama3-8b-instruct-v1:0\" = \"llama-support\" }}\n",
        warehouse.display().to_string()
    )
}

/// Ingests, checks the rows and the quarantine, scores; returns the quarantine's reasons.
fn ingest_and_score(config: &Path, warehouse: &Path, rows: u64) -> Vec<String> {
    let out = run(evalwatch().arg("--config").arg(config).arg("ingest"));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let summary = ingest_summary(&out);
    assert_eq!(count(&summary, "objects_read"), 9, "{summary}");
    assert_eq!(count(&summary, "rows"), rows, "{summary}");
    assert_eq!(count(&summary, "quarantined"), 47 - rows, "{summary}");

    let captures = read_table(warehouse, "captures");
    let mut models = strings(&captures, "model");
    models.sort();
    models.dedup();
    assert_eq!(models, MODELS);
    // Every reply and prompt decoded, token counts carried over.
    for text in strings(&captures, "prompt")
        .iter()
        .chain(&strings(&captures, "response"))
    {
        assert!(!text.trim().is_empty());
    }
    let tokens = captures.column("completion_tokens").unwrap();
    assert_eq!(tokens.null_count(), 0);

    let out = run(evalwatch().arg("--config").arg(config).arg("score"));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let scores = read_table(warehouse, "scores");
    assert_eq!(
        scores.height() as u64,
        3 * rows,
        "three dimensions per capture"
    );
    strings(&read_table(warehouse, "quarantine"), "error")
}

#[test]
fn bedrock_invocation_logs_from_s3_follow_large_bodies_and_quarantine_failures() {
    let ms = ministack();
    let rt = runtime();
    let s3 = ms.s3();
    let logs = rt.block_on(bucket(&s3, "bedrock-logs"));
    // Bedrock's own layout and gzip files; the large body's path names this test's bucket.
    for file in files_under(&sample()) {
        let rel = file.strip_prefix(sample()).unwrap().display().to_string();
        if !rel.starts_with("AWSLogs/") && !rel.starts_with("large-data/") {
            continue;
        }
        let mut body = std::fs::read(&file).unwrap();
        if rel.starts_with("AWSLogs/") {
            let mut text = String::new();
            flate2::read::GzDecoder::new(&body[..])
                .read_to_string(&mut text)
                .unwrap();
            let text = text.replace("s3://bedrock-logs/", &format!("s3://{logs}/"));
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(text.as_bytes()).unwrap();
            body = gz.finish().unwrap();
        }
        rt.block_on(put(&s3, &logs, &rel, body));
    }
    let dir = tempfile::tempdir().unwrap();
    let warehouse = dir.path().join("wh");
    let config = ms.config(
        dir.path(),
        &config_body(
            &format!("s3://{logs}/AWSLogs/123456789012/BedrockModelInvocationLogs"),
            &warehouse,
        ),
    );
    let reasons = ingest_and_score(&config, &warehouse, 45);
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(
        reasons.iter().any(|r| r.contains("ThrottlingException")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("not JSON")),
        "{reasons:?}"
    );

    // The record whose request body was its own object: its prompt came from there.
    let captures = read_table(&warehouse, "captures");
    let large = std::fs::read_dir(sample().join("large-data"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .file_name()
        .to_string_lossy()
        .replace("-input.json.gz", "");
    let ids = strings(&captures, "request_id");
    let row = ids
        .iter()
        .position(|id| *id == large)
        .expect("the large record");
    assert!(!strings(&captures, "prompt")[row].is_empty());
}

#[test]
fn bedrock_invocation_logs_from_a_folder_say_which_body_they_cannot_read() {
    let dir = tempfile::tempdir().unwrap();
    let warehouse = dir.path().join("wh");
    let config = dir.path().join("evalwatch.toml");
    let source = sample().join("AWSLogs");
    std::fs::write(
        &config,
        config_body(&source.display().to_string(), &warehouse),
    )
    .unwrap();
    let reasons = ingest_and_score(&config, &warehouse, 44);
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("s3://bedrock-logs/large-data/") && r.contains("local source")),
        "{reasons:?}"
    );
}
