//! A sharded run (`run --map` on every index, then `run --reduce`) against ministack S3, through
//! the real aws-sdk-s3, gives exactly the tables of a single-process run; a shard stopped
//! mid-way and run again changes nothing; a second process with a running index is refused; a
//! reduce before every shard committed names the missing ones.

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use evalwatch::shard::Shard;

use crate::support::*;

const SINCE: &str = "2026-10-03";
const UNTIL: &str = "2026-10-05";
const SHARDS: u32 = 4;

fn command(config: &Path, args: &[&str]) -> Command {
    let mut cmd = evalwatch();
    cmd.arg("--config")
        .arg(config)
        .args(args)
        .args(["--since", SINCE, "--until", UNTIL]);
    cmd
}

/// A running evalwatch whose stderr lines arrive on a channel (and are kept).
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    fn start(mut cmd: Command) -> Running {
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Running {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a stderr line containing `text`.
    fn wait_for(&mut self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            match self.lines.recv_timeout(Duration::from_millis(200)) {
                Ok(line) => {
                    let found = line.contains(text);
                    self.seen.push(line);
                    if found {
                        return;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        panic!("no `{text}` from the process:\n{}", self.seen.join("\n"));
    }

    /// Its exit code and all it wrote to stderr.
    fn finish(mut self) -> (Option<i32>, String) {
        let status = self.child.wait().unwrap();
        self.seen.extend(self.lines.iter());
        (status.code(), self.seen.join("\n"))
    }
}

/// The warehouse's tables, downloaded into a folder.
fn tables(s3: &aws_sdk_s3::Client, bucket: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    runtime().block_on(download(s3, bucket, "evalwatch", dir.path()));
    dir
}

/// The columns of `aggregates` that say what was measured (not when).
fn measured_columns(warehouse: &Path) -> Vec<String> {
    read_table(warehouse, "aggregates")
        .get_column_names()
        .iter()
        .map(|c| c.to_string())
        .filter(|c| !c.ends_with("_at") && c != "run_id")
        .collect()
}

#[test]
fn a_sharded_run_writes_what_one_process_writes() {
    let ms = ministack();
    let rt = runtime();
    let s3 = ms.s3();
    let source = rt.block_on(bucket(&s3, "shard-source"));
    rt.block_on(upload_sample_days(
        &s3,
        &source,
        "datacapture",
        &["2026/10/03", "2026/10/04", "2026/10/05"],
    ));
    // Every call takes a while, so the shards overlap and one can be stopped mid-score.
    let server = judge_server(StubConfig {
        latency: Duration::from_millis(40),
        ..StubConfig::default()
    });
    let config_for = |dir: &Path, warehouse: &str| {
        ms.config(
            dir,
            &format!(
                "[warehouse]\npath = \"s3://{warehouse}/evalwatch\"\n\
                 [ingest]\nsource = \"s3://{source}/datacapture\"\n\
                 [judge]\nkind = \"openai\"\nmodel = \"judge-7b\"\nurl = \"{}/v1\"\n\
                 concurrency = 2\nrequests-per-minute = 600000\ntokens-per-minute = 1000000000\n",
                server.url
            ),
        )
    };

    // One process.
    let single_bucket = rt.block_on(bucket(&s3, "shard-single"));
    let single_dir = tempfile::tempdir().unwrap();
    let single = config_for(single_dir.path(), &single_bucket);
    let out = run(&mut command(&single, &["run"]));
    assert!(matches!(out.status.code(), Some(0 | 3)), "{}", stderr(&out));

    // Four shards. The one with the most model-days is stopped once it is judging.
    let sharded_bucket = rt.block_on(bucket(&s3, "shard-map"));
    let sharded_dir = tempfile::tempdir().unwrap();
    let sharded = config_for(sharded_dir.path(), &sharded_bucket);
    let days: Vec<NaiveDate> = (3..=5)
        .map(|d| NaiveDate::from_ymd_opt(2026, 10, d).unwrap())
        .collect();
    let owned = |i: u32| {
        let shard = Shard::new(i, SHARDS).unwrap();
        ["chat-a", "chat-b"]
            .iter()
            .flat_map(|m| days.iter().map(move |d| (m, d)))
            .filter(|(m, d)| shard.owns_partition(m, **d))
            .count()
    };
    let busiest = (0..SHARDS).max_by_key(|i| owned(*i)).unwrap();
    let map = |i: u32| {
        let shard = format!("{i}/{SHARDS}");
        Running::start(command(&sharded, &["run", "--map", "--shard", &shard]))
    };
    let mut shards: Vec<(u32, Running)> = (0..SHARDS).map(|i| (i, map(i))).collect();
    let stopped = shards.iter().position(|(i, _)| *i == busiest).unwrap();
    let (_, mut victim) = shards.remove(stopped);
    victim.wait_for("score: starting");

    // A second process for a running index is refused, naming the holder.
    let twin = run(&mut command(
        &sharded,
        &["run", "--map", "--shard", &format!("{busiest}/{SHARDS}")],
    ));
    assert_eq!(twin.status.code(), Some(1), "{}", stderr(&twin));
    let err = stderr(&twin);
    assert!(
        err.contains(&format!("shard-{busiest}-of-{SHARDS}")) && err.contains("run --map"),
        "{err}"
    );

    let kill = Command::new("kill")
        .args(["-TERM", &victim.child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let (code, err) = victim.finish();
    assert_eq!(code, Some(143), "{err}");
    for (i, shard) in shards {
        let (code, err) = shard.finish();
        assert_eq!(code, Some(0), "shard {i}: {err}");
    }

    // The reduce names the shard that did not commit, and does nothing.
    let early = run(&mut command(&sharded, &["run", "--reduce"]));
    assert_eq!(early.status.code(), Some(1), "{}", stderr(&early));
    let err = stderr(&early);
    assert!(
        err.contains(&format!("{busiest}/{SHARDS} did not commit")),
        "{err}"
    );

    // The stopped shard again, then the reduce.
    let again = run(&mut command(
        &sharded,
        &["run", "--map", "--shard", &format!("{busiest}/{SHARDS}")],
    ));
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    let reduce = run(&mut command(&sharded, &["run", "--reduce"]));
    assert!(
        matches!(reduce.status.code(), Some(0 | 3)),
        "{}",
        stderr(&reduce)
    );
    assert_eq!(reduce.status.code(), out.status.code(), "the same alerts");

    let one = tables(&s3, &single_bucket);
    let many = tables(&s3, &sharded_bucket);
    let captures = [
        "request_id",
        "content_hash",
        "model",
        "date",
        "source_uri",
        "source_line",
    ];
    let single_captures = rows(one.path(), "captures", &captures);
    assert!(single_captures.len() > 300, "the sample's captures");
    assert_eq!(single_captures, rows(many.path(), "captures", &captures));
    let scores = [
        "request_id",
        "model",
        "date",
        "judge",
        "dimension",
        "score",
        "status",
    ];
    let single_scores = rows(one.path(), "scores", &scores);
    assert_eq!(single_scores.len(), single_captures.len() * 3);
    assert_eq!(single_scores, rows(many.path(), "scores", &scores));
    let measured = measured_columns(one.path());
    let measured: Vec<&str> = measured.iter().map(String::as_str).collect();
    assert!(measured.contains(&"composite_mean"), "{measured:?}");
    assert_eq!(
        rows(one.path(), "aggregates", &measured),
        rows(many.path(), "aggregates", &measured)
    );

    // Each shard wrote its own manifest files (for the groups it read); the markers were
    // consumed by the reduce.
    let manifests = files_under(&many.path().join("state/ingest/manifest"));
    let writers: std::collections::BTreeSet<String> = manifests
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().to_string())
        .collect();
    let expected: std::collections::BTreeSet<String> = (0..SHARDS)
        .filter(|i| owned(*i) > 0)
        .map(|i| format!("{i}-of-{SHARDS}.json"))
        .collect();
    assert_eq!(writers, expected);
    assert!(files_under(&many.path().join("state/shards")).is_empty());
    let again = run(&mut command(&sharded, &["run", "--reduce"]));
    assert_eq!(again.status.code(), Some(1), "{}", stderr(&again));
    assert!(
        stderr(&again).contains("no shard committed"),
        "{}",
        stderr(&again)
    );
}
