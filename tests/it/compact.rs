//! `evalwatch compact`: a partition's parts merged into one read exactly as before, by evalwatch
//! and by a plain Parquet reader; an object changed after the compaction is still replaced by
//! re-ingest (its old rows leave the merged part); the judge reads the compacted captures.

use crate::support::*;

const CAPTURES: [&str; 4] = ["request_id", "content_hash", "source_uri", "source_line"];

fn parts(warehouse: &std::path::Path) -> Vec<std::path::PathBuf> {
    parquet_under(&warehouse.join("captures"))
}

#[test]
fn compacted_partitions_read_the_same_and_re_ingest_still_replaces_an_object() {
    let source = tempfile::tempdir().unwrap();
    copy_tree(&sample_capture(), source.path());
    let wh = tempfile::tempdir().unwrap();
    let evalwatch_in = |args: &[&str]| {
        let mut cmd = evalwatch();
        cmd.arg("--warehouse").arg(wh.path()).args(args);
        cmd.args(["--since", "2026-10-03", "--until", "2026-10-04"]);
        run(&mut cmd)
    };
    let ingest = |cmd: &dyn Fn(&[&str]) -> std::process::Output| {
        let source = source.path().display().to_string();
        let out = cmd(&["ingest", "--source", &source]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        stage_summary(&out, "ingest")
    };
    ingest(&evalwatch_in);
    let before = rows(wh.path(), "captures", &CAPTURES);
    let parts_before = parts(wh.path()).len();
    assert!(
        parts_before > 50,
        "one part per capture file: {parts_before}"
    );

    let out = evalwatch_in(&["compact"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let summary = stage_summary(&out, "compact");
    assert_eq!(count(&summary, "partitions_compacted"), 4, "{summary}");
    assert_eq!(count(&summary, "parts_merged"), parts_before as u64);
    assert_eq!(count(&summary, "rows"), before.len() as u64);
    let merged = parts(wh.path());
    assert_eq!(merged.len(), 4, "{merged:?}");
    assert!(merged.iter().all(|p| {
        p.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("compact-")
    }));
    // A plain reader of the folder (polars) sees every capture once.
    assert_eq!(rows(wh.path(), "captures", &CAPTURES), before);

    // The judge reads the compacted captures: every one scored.
    let out = evalwatch_in(&["score"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(read_table(wh.path(), "scores").height(), before.len() * 3);

    // An object changes after the compaction: its first line is gone.
    let changed = files_under(&source.path().join("assistant-prod/chat-a/2026/10/03/05"))
        .into_iter()
        .next()
        .unwrap();
    let text = std::fs::read_to_string(&changed).unwrap();
    let lines = text.lines().count();
    assert!(lines >= 2, "{lines}");
    let rest: String = text.lines().skip(1).map(|l| format!("{l}\n")).collect();
    std::fs::write(&changed, rest).unwrap();
    let summary = ingest(&evalwatch_in);
    assert_eq!(count(&summary, "objects_replaced"), 1, "{summary}");
    let after = rows(wh.path(), "captures", &CAPTURES);
    assert_eq!(after.len(), before.len() - 1);
    let uri = changed.canonicalize().unwrap().display().to_string();
    let of_changed = after.iter().filter(|r| r.contains(&uri)).count();
    assert_eq!(of_changed, lines - 1, "its new rows only");
    let ids = strings(&read_table(wh.path(), "captures"), "request_id");
    let unique: std::collections::BTreeSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "no capture twice");

    // Compacting again folds the object's new part into its partition's merged part.
    let out = evalwatch_in(&["compact"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        count(&stage_summary(&out, "compact"), "partitions_compacted"),
        1
    );
    assert_eq!(parts(wh.path()).len(), 4);
    assert_eq!(rows(wh.path(), "captures", &CAPTURES), after);
}
