//! Ingest from a local folder: the bundled sample end to end, idempotence, replacement of changed
//! files, windows, damaged gzip, and a source that is all garbage.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::support::*;

fn ingest_cmd(warehouse: &Path, source: &Path) -> std::process::Command {
    let mut cmd = evalwatch();
    cmd.arg("--warehouse")
        .arg(warehouse)
        .arg("ingest")
        .arg("--source")
        .arg(source);
    cmd
}

/// Lines per component in the sample's files, counted without evalwatch.
fn sample_lines_by_component() -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for file in files_under(&sample_capture()) {
        let rel = file.strip_prefix(sample_capture()).unwrap();
        let component = rel.iter().nth(1).unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(&file).unwrap();
        *counts.entry(component).or_insert(0) += text.lines().count();
    }
    counts
}

/// sha256(prompt \0 response) of every well-formed OpenAI chat record of one capture file, by
/// eventId, decoded here with plain serde_json values (independently of evalwatch's decoder).
fn independent_hashes(file: &Path) -> BTreeMap<String, String> {
    use base64::Engine;
    let mut out = BTreeMap::new();
    for line in std::fs::read_to_string(file).unwrap().lines() {
        let Ok(record) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let payload = |part: &str| -> Option<serde_json::Value> {
            let p = &record["captureData"][part];
            let data = p["data"].as_str()?;
            let text = if p["encoding"] == "BASE64" {
                String::from_utf8(
                    base64::engine::general_purpose::STANDARD
                        .decode(data)
                        .ok()?,
                )
                .ok()?
            } else {
                data.to_string()
            };
            serde_json::from_str(&text).ok()
        };
        let (Some(input), Some(output)) = (payload("endpointInput"), payload("endpointOutput"))
        else {
            continue;
        };
        let Some(messages) = input["messages"].as_array() else {
            continue;
        };
        let prompt = messages
            .iter()
            .rev()
            .find(|m| m["role"] == "user")
            .and_then(|m| m["content"].as_str())
            .unwrap();
        let response = output["choices"][0]["message"]["content"].as_str().unwrap();
        let mut hasher = Sha256::new();
        hasher.update(prompt.as_bytes());
        hasher.update([0]);
        hasher.update(response.as_bytes());
        let id = record["eventMetadata"]["eventId"]
            .as_str()
            .unwrap()
            .to_string();
        out.insert(id, hex::encode(hasher.finalize()));
    }
    out
}

#[test]
fn the_bundled_sample_round_trips_through_parquet() {
    let wh = tempfile::tempdir().unwrap();
    let output = run(evalwatch().arg("--warehouse").arg(wh.path()).arg("run"));
    // 3: the run went fine and an alert fired (the sample holds a regression).
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    let summary = ingest_summary(&output);

    let lines = sample_lines_by_component();
    let total_lines: usize = lines.values().sum();
    assert_eq!(count(&summary, "lines"), total_lines as u64);
    assert_eq!(
        count(&summary, "quarantined"),
        6,
        "the sample has 6 malformed lines"
    );
    assert_eq!(count(&summary, "rows"), total_lines as u64 - 6);
    assert_eq!(count(&summary, "objects_read"), 672);

    // polars reads the Hive partitions back as they are.
    let captures = read_table(wh.path(), "captures");
    assert_eq!(captures.height() as u64, count(&summary, "rows"));
    let models: BTreeSet<String> = strings(&captures, "model").into_iter().collect();
    assert_eq!(
        models,
        BTreeSet::from(["chat-a".to_string(), "chat-b".to_string()])
    );
    for (component, n) in &lines {
        let rows = strings(&captures, "model")
            .iter()
            .filter(|m| *m == component)
            .count();
        assert_eq!(rows, n - 3, "{component}: 3 malformed lines each");
    }
    let dates = captures.column("date").unwrap().n_unique().unwrap();
    assert_eq!(dates, 14);
    let ids: BTreeSet<String> = strings(&captures, "request_id").into_iter().collect();
    assert_eq!(ids.len(), captures.height(), "request ids are unique");
    assert!(
        strings(&captures, "endpoint")
            .iter()
            .all(|e| e == "assistant-prod")
    );

    // Content hashes match an independent decoding of the source.
    let uris = strings(&captures, "source_uri");
    let hashes = strings(&captures, "content_hash");
    let request_ids = strings(&captures, "request_id");
    let mut checked = 0;
    for file in files_under(&sample_capture().join("assistant-prod/chat-a/2026/10/03")) {
        let expected = independent_hashes(&file);
        let uri = file.display().to_string();
        for i in (0..uris.len()).filter(|&i| uris[i] == uri) {
            assert_eq!(Some(&hashes[i]), expected.get(&request_ids[i]), "{uri}");
            checked += 1;
        }
    }
    assert!(checked > 50, "checked {checked} rows");

    // Quarantine: file, line, reason and the raw text of each bad line.
    let quarantine = read_table(wh.path(), "quarantine");
    assert_eq!(quarantine.height(), 6);
    let errors = strings(&quarantine, "error").join("\n");
    for reason in [
        "not JSON",
        "bad base64",
        "unknown payload shape",
        "not a capture record",
    ] {
        assert!(errors.contains(reason), "missing `{reason}` in:\n{errors}");
    }
    let raw = strings(&quarantine, "raw");
    assert!(raw.iter().any(|r| r.contains("502 Bad Gateway")));
    for (uri, line) in strings(&quarantine, "source_uri").iter().zip(
        quarantine
            .column("source_line")
            .unwrap()
            .i64()
            .unwrap()
            .into_no_null_iter(),
    ) {
        let text = std::fs::read_to_string(uri).unwrap();
        let bad = text.lines().nth(line as usize - 1).unwrap();
        assert!(
            raw.iter().any(|r| bad.starts_with(r.as_str())),
            "{uri}:{line}"
        );
    }

    // The run manifest records the stage.
    let runs = files_under(&wh.path().join("runs"));
    assert_eq!(runs.len(), 1);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&runs[0]).unwrap()).unwrap();
    assert_eq!(manifest["status"], "ok");
    assert_eq!(manifest["stages"][0]["stage"], "ingest");

    // A second run adds nothing and rewrites nothing.
    let before: Vec<_> = files_under(&wh.path().join("captures"));
    let again = run(evalwatch().arg("--warehouse").arg(wh.path()).arg("run"));
    assert_eq!(again.status.code(), Some(3));
    let summary = ingest_summary(&again);
    assert_eq!(count(&summary, "rows"), 0);
    assert_eq!(count(&summary, "objects_unchanged"), 672);
    assert_eq!(files_under(&wh.path().join("captures")), before);
    assert_eq!(
        read_table(wh.path(), "captures").height(),
        captures.height()
    );
}

#[test]
fn a_changed_file_replaces_its_rows_and_a_new_file_adds_only_its_own() {
    let src = tempfile::tempdir().unwrap();
    let wh = tempfile::tempdir().unwrap();
    let day = "assistant-prod/chat-a/2026/10/05";
    copy_tree(&sample_capture().join(day), &src.path().join(day));
    let first = run(&mut ingest_cmd(wh.path(), src.path()));
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let rows_before = read_table(wh.path(), "captures").height();

    // Rewrite one file with one line fewer (its mtime and size change).
    let files = files_under(src.path());
    let changed = &files[3];
    let text = std::fs::read_to_string(changed).unwrap();
    let kept: Vec<&str> = text.lines().skip(1).collect();
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(changed, kept.join("\n") + "\n").unwrap();
    let second = run(&mut ingest_cmd(wh.path(), src.path()));
    let summary = ingest_summary(&second);
    assert_eq!(count(&summary, "objects_read"), 1);
    assert_eq!(count(&summary, "objects_replaced"), 1);
    assert_eq!(count(&summary, "rows"), kept.len() as u64);
    let captures = read_table(wh.path(), "captures");
    assert_eq!(captures.height(), rows_before - 1);
    let ids: BTreeSet<String> = strings(&captures, "request_id").into_iter().collect();
    assert_eq!(ids.len(), captures.height(), "no duplicates");

    // A new file adds its rows only.
    let extra = src
        .path()
        .join("assistant-prod/chat-a/2026/10/05/23/99-new.jsonl");
    std::fs::write(
        &extra,
        r#"{"prompt":"What is PSI?","response":"Population stability index.","timestamp":"2026-10-05T23:59:00Z"}"#,
    )
    .unwrap();
    let third = run(&mut ingest_cmd(wh.path(), src.path()));
    let summary = ingest_summary(&third);
    assert_eq!(count(&summary, "objects_read"), 1);
    assert_eq!(count(&summary, "rows"), 1);
    assert_eq!(read_table(wh.path(), "captures").height(), rows_before);
}

#[test]
fn windows_select_by_capture_time_and_never_lose_rows_read_before() {
    let src = tempfile::tempdir().unwrap();
    let wh = tempfile::tempdir().unwrap();
    // A flat file (no date in its path) with one record on each of three days.
    let records: Vec<String> = (1..=3)
        .map(|d| {
            format!(
                r#"{{"prompt":"p{d}","response":"r{d}","model":"m","timestamp":"2026-10-0{d}T12:00:00Z"}}"#
            )
        })
        .collect();
    std::fs::write(src.path().join("flat.jsonl"), records.join("\n")).unwrap();

    let mut cmd = ingest_cmd(wh.path(), src.path());
    let first = run(cmd.args(["--since", "2026-10-02"]));
    let summary = ingest_summary(&first);
    assert_eq!(count(&summary, "rows"), 1);
    assert_eq!(count(&summary, "out_of_window"), 2);

    // The next day's window re-reads the file under both windows: days 2 and 3, no duplicate.
    let mut cmd = ingest_cmd(wh.path(), src.path());
    let second = run(cmd.args(["--since", "2026-10-03"]));
    assert_eq!(count(&ingest_summary(&second), "rows"), 2);
    let captures = read_table(wh.path(), "captures");
    let mut prompts = strings(&captures, "prompt");
    prompts.sort();
    assert_eq!(prompts, vec!["p2", "p3"]);

    // The same window again reads nothing.
    let mut cmd = ingest_cmd(wh.path(), src.path());
    let third = run(cmd.args(["--since", "2026-10-03"]));
    assert_eq!(count(&ingest_summary(&third), "objects_unchanged"), 1);

    // Date folders outside the window are not even listed.
    let wh2 = tempfile::tempdir().unwrap();
    let mut cmd = ingest_cmd(wh2.path(), &sample_capture());
    let sliced = run(cmd.args(["--since", "2026-10-03", "--until", "2026-10-04"]));
    let summary = ingest_summary(&sliced);
    assert_eq!(count(&summary, "objects_listed"), 2 * 2 * 24);
    assert_eq!(count(&summary, "out_of_window"), 0);
    let captures = read_table(wh2.path(), "captures");
    let dates = captures.column("date").unwrap().n_unique().unwrap();
    assert_eq!(dates, 2);
}

#[test]
fn a_truncated_gzip_keeps_what_was_readable_and_quarantines_the_rest() {
    let src = tempfile::tempdir().unwrap();
    let wh = tempfile::tempdir().unwrap();
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    for i in 0..2000 {
        writeln!(
            encoder,
            r#"{{"prompt":"question {i} {}","response":"answer {i}","model":"m","timestamp":{}}}"#,
            "padding ".repeat(i % 17),
            1_790_000_000 + i
        )
        .unwrap();
    }
    let gz = encoder.finish().unwrap();
    std::fs::write(src.path().join("cut.jsonl.gz"), &gz[..gz.len() / 2]).unwrap();

    let output = run(&mut ingest_cmd(wh.path(), src.path()));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let summary = ingest_summary(&output);
    let rows = count(&summary, "rows");
    assert!(rows > 100 && rows < 2000, "{rows}");
    assert_eq!(count(&summary, "quarantined"), 1);
    let quarantine = read_table(wh.path(), "quarantine");
    let error = &strings(&quarantine, "error")[0];
    assert!(error.contains("damaged"), "{error}");
}

#[test]
fn a_line_longer_than_the_cap_is_quarantined_and_the_next_lines_are_read() {
    let src = tempfile::tempdir().unwrap();
    let wh = tempfile::tempdir().unwrap();
    let record = |i: usize, pad: usize| {
        format!(
            r#"{{"prompt":"question {i} {}","response":"answer {i}","model":"m","timestamp":{}}}"#,
            "x".repeat(pad),
            1_790_000_000 + i
        )
    };
    let text = [record(1, 10), record(2, 50_000), record(3, 10)].join("\n") + "\n";
    std::fs::write(src.path().join("long.jsonl"), text).unwrap();
    let config = src.path().join("evalwatch.toml");
    std::fs::write(&config, "[ingest]\nmax-line-bytes = 4096\n").unwrap();
    let output = run(ingest_cmd(wh.path(), src.path())
        .arg("--config")
        .arg(&config));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let summary = ingest_summary(&output);
    assert_eq!(count(&summary, "rows"), 2, "{summary}");
    assert_eq!(count(&summary, "quarantined"), 1, "{summary}");
    let quarantine = read_table(wh.path(), "quarantine");
    let error = &strings(&quarantine, "error")[0];
    assert!(error.contains("longer than 4096 bytes"), "{error}");
    assert!(error.contains("ingest.max-line-bytes"), "{error}");
    let line = quarantine.column("source_line").unwrap();
    assert_eq!(
        line.cast(&polars::prelude::DataType::Int64)
            .unwrap()
            .i64()
            .unwrap()
            .get(0),
        Some(2)
    );
}

#[test]
fn a_source_of_nothing_but_garbage_fails_the_run() {
    let src = tempfile::tempdir().unwrap();
    let wh = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("junk.jsonl"), "not json\n{\"a\":1}\n").unwrap();
    let output = run(&mut ingest_cmd(wh.path(), src.path()));
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(stderr(&output).contains("every line was quarantined"));
    assert_eq!(count(&ingest_summary(&output), "quarantined"), 2);
}

#[test]
fn a_zstd_warehouse_holds_the_same_rows() {
    let snappy = tempfile::tempdir().unwrap();
    let zstd = tempfile::tempdir().unwrap();
    let config = zstd.path().join("evalwatch.toml");
    std::fs::write(
        &config,
        "[warehouse]\npath = \"wh\"\ncompression = \"zstd\"\n",
    )
    .unwrap();
    let day = ["--since", "2026-10-12"];
    let a = run(ingest_cmd(snappy.path(), &sample_capture()).args(day));
    let b = run(evalwatch()
        .arg("--config")
        .arg(&config)
        .args(["ingest", "--source"])
        .arg(sample_capture())
        .args(day));
    assert_eq!(b.status.code(), Some(0), "{}", stderr(&b));
    assert_eq!(
        count(&ingest_summary(&a), "rows"),
        count(&ingest_summary(&b), "rows")
    );
    let mut x = strings(&read_table(snappy.path(), "captures"), "content_hash");
    let mut y = strings(
        &read_table(&zstd.path().join("wh"), "captures"),
        "content_hash",
    );
    x.sort();
    y.sort();
    assert_eq!(x, y);
    assert!(!x.is_empty());
}

/// The bundled sample is what `datasets/generate_sample.py` writes from hh-rlhf: its chat-b
/// regression chosen by the people's labels alone (`rejected` replies of the same random pairs,
/// `--regression labels`), and the tests' regressed days (`tests/data/regressed-sample/`) what
/// `--regression vocabulary` writes, nothing else differing.
#[test]
#[ignore = "needs ../shared/datasets (not committed); ./scripts/test runs it when that folder is there"]
fn the_bundled_sample_and_the_tests_regression_are_what_the_generator_writes() {
    let hh = shared_data("real/hh_rlhf/harmless-base/test.jsonl.gz");
    let out = tempfile::tempdir().unwrap();
    let generate = |regression: &str| {
        let to = out.path().join(regression).join("capture");
        let status = std::process::Command::new("python3")
            .arg(repo_root().join("datasets/generate_sample.py"))
            .arg("--hh")
            .arg(&hh)
            .arg("--out")
            .arg(&to)
            .args(["--regression", regression])
            .output()
            .expect("python3 runs");
        assert!(status.status.success(), "{}", stderr(&status));
        to
    };
    let digest = |root: &Path| -> BTreeMap<String, String> {
        files_under(root)
            .into_iter()
            .filter(|f| f.extension().is_some_and(|e| e == "jsonl"))
            .map(|f| {
                let rel = f.strip_prefix(root).unwrap().display().to_string();
                (
                    rel,
                    format!("{:x}", Sha256::digest(std::fs::read(&f).unwrap())),
                )
            })
            .collect()
    };
    let labels = digest(&generate("labels"));
    assert_eq!(labels, digest(&repo_root().join("datasets/sample/capture")));
    assert_eq!(
        std::fs::read(out.path().join("labels/telemetry/telemetry.csv")).unwrap(),
        std::fs::read(repo_root().join("datasets/sample/telemetry/telemetry.csv")).unwrap()
    );
    let vocabulary = digest(&generate("vocabulary"));
    let overlay = digest(&repo_root().join("tests/data/regressed-sample"));
    assert_eq!(overlay.len(), 96, "chat-b's 24 files a day, 2026-10-11..14");
    for (file, hash) in &vocabulary {
        match overlay.get(file) {
            Some(theirs) => {
                assert_eq!(theirs, hash, "{file}");
                assert_ne!(&labels[file], hash, "{file}: the same reply either way");
            }
            None => assert_eq!(&labels[file], hash, "{file}"),
        }
    }
}
