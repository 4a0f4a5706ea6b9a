//! Test support: the real binary, real protocol servers on loopback, and readers of the warehouse.
//!
//! ministack (an AWS emulator speaking S3, CloudWatch and Bedrock) is installed on first use into a
//! venv under `target/` and started once per test binary on a free loopback port. A small Python
//! watchdog ends it when this process ends, so nothing outlives the test run.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use polars::prelude::*;

pub const MINISTACK_VERSION: &str = "1.5.33";

/// ministack speaks CloudWatch's rpc-v2-cbor only with `cbor2` installed (its `test` extra, which
/// would also pull pytest, boto3, duckdb and docker); without it every CBOR body reads as empty.
const CBOR2_VERSION: &str = "5.9.0";

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The sample the tests run on: the bundled one, but for chat-b's 2026-10-11..14, whose replies
/// come from `tests/data/regressed-sample/` (the `rejected` hh-rlhf replies with harm vocabulary,
/// `datasets/generate_sample.py --regression vocabulary`). The bundled sample's regression is
/// chosen by the human labels alone and the offline scorers hardly see it (README tour); the
/// tests need one of known size that `offline:1` sees, to check what happens downstream.
pub fn sample_capture() -> PathBuf {
    test_root().join("datasets/sample/capture")
}

/// The built-in config's text with its `datasets/` paths made absolute, to the tests' sample
/// ([`sample_capture`]): a config file for any folder, to add sections to.
pub fn sample_config_text() -> String {
    evalwatch::config::BUILTIN_CONFIG.replace(
        "\"datasets/",
        &format!("\"{}/datasets/", test_root().display()),
    )
}

/// Where the binary runs: the repository's entries as links, but `datasets/sample/capture` a
/// copy with the regressed days of [`sample_capture`]. Made once per test process under
/// `target/tmp/`; the folders of processes that ended are removed.
pub fn test_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let pid = std::process::id();
        for entry in std::fs::read_dir(&tmp).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if let Some(other) = name.strip_prefix("test-root-")
                && other != pid.to_string()
                && Path::new("/proc/self").exists()
                && !Path::new("/proc").join(other).exists()
            {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        let root = tmp.join(format!("test-root-{pid}"));
        let _ = std::fs::remove_dir_all(&root);
        let repo = repo_root();
        let link_all_but = |from: &Path, to: &Path, but: &str| {
            std::fs::create_dir_all(to).unwrap();
            for entry in std::fs::read_dir(from).unwrap().flatten() {
                let name = entry.file_name();
                if name != but && name != ".git" {
                    std::os::unix::fs::symlink(entry.path(), to.join(&name)).unwrap();
                }
            }
        };
        link_all_but(&repo, &root, "datasets");
        link_all_but(&repo.join("datasets"), &root.join("datasets"), "sample");
        let sample = root.join("datasets/sample");
        link_all_but(&repo.join("datasets/sample"), &sample, "capture");
        copy_tree(
            &repo.join("datasets/sample/capture"),
            &sample.join("capture"),
        );
        let regressed = repo.join("tests/data/regressed-sample");
        let days = regressed.join("assistant-prod/chat-b/2026/10");
        for day in std::fs::read_dir(&days).unwrap().flatten() {
            let to = sample
                .join("capture/assistant-prod/chat-b/2026/10")
                .join(day.file_name());
            std::fs::remove_dir_all(&to).unwrap();
            copy_tree(&day.path(), &to);
        }
        root
    })
}

/// The `evalwatch` binary, with a clean, offline environment.
pub fn evalwatch() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_evalwatch"));
    cmd.env_remove("EVALWATCH_CONFIG")
        .env_remove("EVALWATCH_CONFIG_TEXT")
        .env_remove("EVALWATCH_SHARDS")
        .env_remove("JOB_COMPLETION_INDEX")
        .env_remove("AWS_BATCH_JOB_ARRAY_INDEX")
        .env_remove("AWS_BATCH_JOB_ARRAY_SIZE")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_ENDPOINT_URL_S3")
        // The embed stage reads a 90 MB model; the tests of embeddings turn it on
        // ([`embedding`]), the others run without it, as `[embed] enabled = false` would.
        .env("EVALWATCH_EMBED", "off")
        .env_remove("EVALWATCH_MODELS")
        .current_dir(test_root());
    cmd
}

/// The model folder the tests of embeddings share, fetched on first use (processes take turns:
/// `models fetch` locks the folder), kept under `target/`.
pub fn test_models() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .map(|p| p.join("evalwatch-models/all-MiniLM-L6-v2"))
        .unwrap();
    let out = run(evalwatch().args(["models", "fetch", "--dir"]).arg(&dir));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    dir
}

/// `cmd` with the embed stage on, reading the tests' model folder ([`test_models`]).
pub fn embedding(cmd: &mut Command) -> &mut Command {
    let models = test_models();
    cmd.env_remove("EVALWATCH_EMBED")
        .env("EVALWATCH_MODELS", models.parent().unwrap())
}

/// `evalwatch --config CONFIG --warehouse WH score`, to run or spawn.
pub fn score_command(config: &Path, wh: &Path) -> Command {
    let mut cmd = configured(config, wh);
    cmd.arg("score");
    cmd
}

/// `evalwatch --config CONFIG --warehouse WH`, for a command to follow.
pub fn configured(config: &Path, wh: &Path) -> Command {
    let mut cmd = evalwatch();
    cmd.arg("--config").arg(config).arg("--warehouse").arg(wh);
    cmd
}

/// `evalwatch --config CONFIG --warehouse WH score ARGS...`, run.
pub fn score_with(config: &Path, wh: &Path, args: &[&str]) -> Output {
    run(score_command(config, wh).args(args))
}

/// A warehouse holding the sample's captures of the given days.
pub fn ingested(since: &str, until: &str) -> tempfile::TempDir {
    let wh = tempfile::tempdir().unwrap();
    let out = run(evalwatch()
        .arg("--warehouse")
        .arg(wh.path())
        .args(["ingest", "--since", since, "--until", until]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    wh
}

/// A file or folder of `../shared/datasets` (the tests that read it are `#[ignore]`d with the
/// reason, and `./scripts/test` runs them when that folder is there); fails naming the path
/// when it is not, never passes on nothing.
pub fn shared_data(relative: &str) -> PathBuf {
    let path = repo_root().join("../shared/datasets").join(relative);
    assert!(
        path.exists(),
        "{} is not here: this test needs ../shared/datasets (run it where that folder is)",
        path.display()
    );
    path
}

/// Runs a command to completion, returning its output; panics only if it cannot start.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("the evalwatch binary runs")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The `ingest` object of the last JSON line on stdout.
pub fn ingest_summary(output: &Output) -> serde_json::Value {
    stage_summary(output, "ingest")
}

/// One stage's object of the last JSON line on stdout.
pub fn stage_summary(output: &Output, stage: &str) -> serde_json::Value {
    let text = stdout(output);
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON summary on stdout; stderr:\n{}", stderr(output)));
    let value: serde_json::Value = serde_json::from_str(line).expect("summary is JSON");
    value[stage].clone()
}

pub fn count(summary: &serde_json::Value, key: &str) -> u64 {
    summary[key]
        .as_u64()
        .unwrap_or_else(|| panic!("summary has no count `{key}`: {summary}"))
}

/// Reads a Hive-partitioned table of a local warehouse as polars would in a notebook.
pub fn read_table(warehouse: &Path, table: &str) -> DataFrame {
    let dir = warehouse.join(table);
    let args = ScanArgsParquet {
        hive_options: polars::io::HiveOptions::new_enabled(),
        ..ScanArgsParquet::default()
    };
    let path = format!("{}/", dir.display());
    LazyFrame::scan_parquet(PlRefPath::from(path.as_str()), args)
        .and_then(|lf| lf.collect())
        .unwrap_or_else(|e| panic!("polars reads {}: {e}", dir.display()))
}

/// The `date` partition column as days since 1970-01-01, one per row.
pub fn day_numbers(df: &DataFrame) -> Vec<i32> {
    df.column("date")
        .unwrap()
        .date()
        .unwrap()
        .phys
        .iter()
        .map(|d| d.unwrap())
        .collect()
}

/// A numeric column as f64, nulls as NaN.
pub fn floats(df: &DataFrame, column: &str) -> Vec<f64> {
    df.column(column)
        .unwrap_or_else(|e| panic!("column {column}: {e}"))
        .cast(&DataType::Float64)
        .unwrap()
        .f64()
        .unwrap()
        .iter()
        .map(|v| v.unwrap_or(f64::NAN))
        .collect()
}

pub fn strings(df: &DataFrame, column: &str) -> Vec<String> {
    df.column(column)
        .unwrap_or_else(|e| panic!("column {column}: {e}"))
        .str()
        .unwrap_or_else(|e| panic!("column {column} is text: {e}"))
        .iter()
        .map(|v| v.unwrap_or_default().to_string())
        .collect()
}

/// A table's rows as sorted text, on the given columns.
pub fn rows(warehouse: &Path, table: &str, columns: &[&str]) -> Vec<String> {
    let df = read_table(warehouse, table);
    let df = df
        .select(columns.iter().copied())
        .unwrap_or_else(|e| panic!("{table}: {e}"));
    let mut out: Vec<String> = (0..df.height())
        .map(|i| {
            df.get_row(i)
                .unwrap()
                .0
                .iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect();
    out.sort();
    out
}

/// Copies a folder tree.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Every Parquet part under `dir`, sorted.
pub fn parquet_under(dir: &Path) -> Vec<PathBuf> {
    files_under(dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect()
}

/// Every file under `dir`, sorted.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

// ---------------------------------------------------------------------------------------------
// Python tools the tests call (installed on first use into a venv under `target/`)

/// `kubernetes-validate` (PyPI), the Kubernetes schemas of the manifests' API versions.
pub const KUBERNETES_VALIDATE: &str = "kubernetes-validate==1.37.0";

/// `PyYAML` (PyPI), to read the Kubernetes manifests as the tests run them.
pub const PYYAML: &str = "PyYAML==6.0.3";

/// `duckdb` (PyPI), a second reader of the warehouse's layout.
pub const DUCKDB: &str = "duckdb==2.0.0";

/// `botocore` (PyPI), the AWS service models `aws ... --cli-input-json` validates against.
pub const BOTOCORE: &str = "botocore==1.44.5";

/// The Python of `examples/analyst.py`'s venv (polars, DuckDB, matplotlib, and jupytext to turn
/// it into a notebook), made on first use under `target/`.
pub fn notebook_python() -> PathBuf {
    venv_tool(
        "notebook-venv-1",
        &[
            "polars==2.1.0",
            DUCKDB,
            "matplotlib==3.11.2",
            "jupytext==1.19.6",
        ],
        "python",
    )
}

/// The Python with the OpenTelemetry project's protobuf definitions (`opentelemetry-proto`), for
/// `tests/otlp_receiver.py`.
pub fn otlp_python() -> PathBuf {
    venv_tool("otlp-venv-1", &["opentelemetry-proto==1.45.2"], "python")
}

/// The executable `bin` of the PyPI package `requirement` (`name==version`), installed on first
/// use into `target/<name>-venv-<version>`; fails naming what went wrong, never skips.
pub fn python_tool(requirement: &str, bin: &str) -> PathBuf {
    venv_tool(
        &format!("{}-venv", requirement.replace("==", "-")),
        &[requirement],
        bin,
    )
}

/// The executable `bin` of a venv `target/<name>` holding `requirements`, made on first use.
fn venv_tool(name: &str, requirements: &[&str], bin: &str) -> PathBuf {
    // Beside the build outputs (CARGO_TARGET_TMPDIR is target/tmp).
    let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| repo_root().join("target"))
        .join(name);
    let tool = venv.join("bin").join(bin);
    if tool.exists() {
        return tool;
    }
    let status = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .expect("python3 is installed");
    assert!(status.success(), "python3 -m venv {}", venv.display());
    let output = Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet", "--disable-pip-version-check"])
        .args(requirements)
        .output()
        .expect("pip runs");
    assert!(
        output.status.success(),
        "pip install {} failed:\n{}",
        requirements.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    tool
}

// ---------------------------------------------------------------------------------------------
// ministack

pub struct Ministack {
    pub endpoint: String,
    _child: Child,
}

static MINISTACK: OnceLock<Ministack> = OnceLock::new();

/// The ministack of this test binary, installed and started on first use.
pub fn ministack() -> &'static Ministack {
    MINISTACK.get_or_init(start_ministack)
}

/// ministack (with cbor2) in `target/ministack-venv-<version>-cbor2-<version>`.
fn install_ministack() -> PathBuf {
    venv_tool(
        &format!("ministack-venv-{MINISTACK_VERSION}-cbor2-{CBOR2_VERSION}"),
        &[
            &format!("ministack=={MINISTACK_VERSION}"),
            &format!("cbor2=={CBOR2_VERSION}"),
        ],
        "ministack",
    )
}

/// Ends the child when the test process (its parent) is gone, however it ended.
const WATCHDOG: &str = r#"
import os, subprocess, sys, time
parent = os.getppid()
child = subprocess.Popen(sys.argv[1:], stdout=sys.stdout, stderr=subprocess.STDOUT)
try:
    while child.poll() is None:
        if os.getppid() != parent:
            break
        time.sleep(0.3)
finally:
    if child.poll() is None:
        child.terminate()
        try:
            child.wait(5)
        except subprocess.TimeoutExpired:
            child.kill()
"#;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn start_ministack() -> Ministack {
    let bin = install_ministack();
    let port = free_port();
    let mut child = Command::new("python3")
        .args(["-c", WATCHDOG])
        .arg(&bin)
        .env("GATEWAY_PORT", port.to_string())
        .env("BIND_HOST", "127.0.0.1")
        .env("LOG_LEVEL", "WARNING")
        // Bedrock Converse calls are forwarded, as OpenAI chat completions, to our judge stub.
        .env("MINISTACK_BEDROCK_PROXY_URL", &proxy_judge().url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("ministack starts");
    // Drain its output so it never blocks on a full pipe.
    if let Some(out) = child.stdout.take() {
        std::thread::spawn(move || for _ in BufReader::new(out).lines() {});
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "ministack did not listen on 127.0.0.1:{port} within 60 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Ministack {
        endpoint: format!("http://127.0.0.1:{port}"),
        _child: child,
    }
}

impl Ministack {
    /// An S3 client for the test's own setup, through the same builder evalwatch uses.
    pub fn s3(&self) -> aws_sdk_s3::Client {
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .endpoint_url(&self.endpoint)
            .force_path_style(true)
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                "test", "test", None, None, "tests",
            ))
            .http_client(http_client())
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    /// A CloudWatch client for the test's own setup and checks.
    pub fn cloudwatch(&self) -> aws_sdk_cloudwatch::Client {
        let config = aws_sdk_cloudwatch::Config::builder()
            .behavior_version(aws_sdk_cloudwatch::config::BehaviorVersion::latest())
            .region(aws_sdk_cloudwatch::config::Region::new("us-east-1"))
            .endpoint_url(&self.endpoint)
            .credentials_provider(aws_sdk_cloudwatch::config::Credentials::new(
                "test", "test", None, None, "tests",
            ))
            .http_client(http_client())
            .build();
        aws_sdk_cloudwatch::Client::from_conf(config)
    }

    /// A config file pointing evalwatch at this server.
    pub fn config(&self, dir: &Path, body: &str) -> PathBuf {
        let path = dir.join("evalwatch.toml");
        let text = format!(
            "{body}\n[aws]\nregion = \"us-east-1\"\nendpoint-url = \"{}\"\ns3-force-path-style = true\n",
            self.endpoint
        );
        std::fs::write(&path, text).unwrap();
        path
    }
}

/// The HTTP client evalwatch's own clients use (rustls with ring).
fn http_client() -> aws_sdk_s3::config::SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https()
}

/// A fresh bucket with a name unique to the test.
pub async fn bucket(s3: &aws_sdk_s3::Client, name: &str) -> String {
    let bucket = format!("{name}-{}", std::process::id());
    s3.create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .unwrap_or_else(|e| panic!("create bucket {bucket}: {e:?}"));
    bucket
}

pub async fn put(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, body: Vec<u8>) {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .body(body.into())
        .send()
        .await
        .unwrap_or_else(|e| panic!("put s3://{bucket}/{key}: {e:?}"));
}

/// Uploads the sample files under `days` (e.g. `2026/10/03`) for both components to
/// `s3://bucket/prefix/...`; returns how many lines they hold.
pub async fn upload_sample_days(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
    days: &[&str],
) -> usize {
    let mut lines = 0;
    for component in ["chat-a", "chat-b"] {
        for day in days {
            let dir = sample_capture().join(format!("assistant-prod/{component}/{day}"));
            for file in files_under(&dir) {
                let rel = file.strip_prefix(sample_capture()).unwrap();
                let body = std::fs::read(&file).unwrap();
                lines += String::from_utf8_lossy(&body).lines().count();
                put(s3, bucket, &format!("{prefix}/{}", rel.display()), body).await;
            }
        }
    }
    lines
}

/// Copies every object under `prefix` of a bucket into `dir`, keeping the key layout.
pub async fn download(s3: &aws_sdk_s3::Client, bucket: &str, prefix: &str, dir: &Path) -> usize {
    let mut n = 0;
    let mut pages = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        for object in page.unwrap().contents() {
            let key = object.key().unwrap();
            let body = s3
                .get_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .unwrap();
            let bytes = body.body.collect().await.unwrap().into_bytes();
            let path = dir.join(key.strip_prefix(prefix).unwrap().trim_start_matches('/'));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
            n += 1;
        }
    }
    n
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// The judge stub (evalwatch's own; speaks Converse and OpenAI chat completions)

pub use evalwatch::judge::stub::{Stub, StubConfig};

/// A judge stub serving on loopback from its own runtime, for as long as this value lives.
pub struct JudgeServer {
    pub url: String,
    pub stub: std::sync::Arc<Stub>,
    _runtime: tokio::runtime::Runtime,
}

pub fn judge_server(config: StubConfig) -> JudgeServer {
    let runtime = runtime();
    let stub = Stub::new(config);
    let (addr, _task) = runtime
        .block_on(stub.start("127.0.0.1:0"))
        .expect("the judge stub listens");
    JudgeServer {
        url: format!("http://{addr}"),
        stub,
        _runtime: runtime,
    }
}

static PROXY_JUDGE: OnceLock<JudgeServer> = OnceLock::new();

/// The fault-free stub behind ministack's Bedrock (`MINISTACK_BEDROCK_PROXY_URL`).
pub fn proxy_judge() -> &'static JudgeServer {
    PROXY_JUDGE.get_or_init(|| judge_server(StubConfig::default()))
}

// ---------------------------------------------------------------------------------------------
// A fault proxy in front of ministack

/// Forwards HTTP/1.1 requests to an upstream server, counting CloudWatch operations and
/// answering chosen PutMetricData requests with 503 instead of forwarding them.
pub struct FaultProxy {
    pub endpoint: String,
    /// PutMetricData requests that reached the proxy (failed ones included).
    pub puts: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// PutMetricData requests the upstream accepted.
    pub accepted: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// 1-based numbers of the PutMetricData requests answered 503.
    pub fail: std::sync::Arc<std::sync::Mutex<std::collections::BTreeSet<usize>>>,
}

impl FaultProxy {
    pub fn start(upstream: &str) -> FaultProxy {
        let upstream = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let proxy = FaultProxy {
            endpoint,
            puts: Default::default(),
            accepted: Default::default(),
            fail: Default::default(),
        };
        let (puts, accepted, fail) = (
            proxy.puts.clone(),
            proxy.accepted.clone(),
            proxy.fail.clone(),
        );
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (upstream, puts, accepted, fail) = (
                    upstream.clone(),
                    puts.clone(),
                    accepted.clone(),
                    fail.clone(),
                );
                std::thread::spawn(move || {
                    let _ = serve(client, &upstream, &puts, &accepted, &fail);
                });
            }
        });
        proxy
    }

    pub fn puts(&self) -> usize {
        self.puts.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn accepted(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// One client connection: requests in turn (keep-alive), each forwarded on a fresh upstream
/// connection that the upstream closes after answering.
fn serve(
    client: TcpStream,
    upstream: &str,
    puts: &std::sync::atomic::AtomicUsize,
    accepted: &std::sync::atomic::AtomicUsize,
    fail: &std::sync::Mutex<std::collections::BTreeSet<usize>>,
) -> std::io::Result<()> {
    use std::io::{Read, Write};
    use std::sync::atomic::Ordering;
    let mut reader = BufReader::new(client.try_clone()?);
    let mut writer = client;
    loop {
        let mut head = String::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let end = line == "\r\n";
            head.push_str(&line);
            if end {
                break;
            }
        }
        let length = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse::<usize>().ok())?
            })
            .unwrap_or(0);
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        let put = head.contains("/operation/PutMetricData");
        if put {
            let n = puts.fetch_add(1, Ordering::SeqCst) + 1;
            if fail.lock().unwrap().contains(&n) {
                writer
                    .write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n")?;
                continue;
            }
        }
        // Forward with `connection: close`, so the upstream's answer ends at EOF.
        let mut forwarded = String::new();
        for line in head.lines().filter(|l| !l.is_empty()) {
            if !line.to_ascii_lowercase().starts_with("connection:") {
                forwarded.push_str(line);
                forwarded.push_str("\r\n");
            }
        }
        forwarded.push_str("connection: close\r\n\r\n");
        let mut up = TcpStream::connect(upstream)?;
        up.write_all(forwarded.as_bytes())?;
        up.write_all(&body)?;
        let mut answer = Vec::new();
        up.read_to_end(&mut answer)?;
        if put && answer.starts_with(b"HTTP/1.1 200") {
            accepted.fetch_add(1, Ordering::SeqCst);
        }
        // Tell the client this connection ends here, whatever the upstream said.
        let head_end = answer
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or(answer.len());
        let says_close = String::from_utf8_lossy(&answer[..head_end])
            .to_ascii_lowercase()
            .contains("connection: close");
        if let (false, Some(status_end)) =
            (says_close, answer.windows(2).position(|w| w == b"\r\n"))
        {
            answer.splice(
                status_end + 2..status_end + 2,
                b"connection: close\r\n".iter().copied(),
            );
        }
        writer.write_all(&answer)?;
        // The answer says `connection: close` (or ends at EOF): the client reconnects.
        return Ok(());
    }
}

// ---------------------------------------------------------------------------------------------
// Captures on recent dates (CloudWatch refuses datapoints older than two weeks)

/// Copies days of the bundled sample's captures under `to`, each moved to a new date (folder
/// path and the timestamps inside).
pub fn redated_sample(days: &[(&str, chrono::NaiveDate)], to: &Path) {
    for file in files_under(&sample_capture()) {
        let relative = file.strip_prefix(sample_capture()).unwrap().to_path_buf();
        let path = relative.display().to_string();
        for (from, date) in days {
            let old_dir = from.replace('-', "/");
            if !path.contains(&format!("/{old_dir}/")) {
                continue;
            }
            let new_dir = date.format("%Y/%m/%d").to_string();
            let target = to.join(path.replace(&old_dir, &new_dir));
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            let text = std::fs::read_to_string(&file).unwrap();
            std::fs::write(&target, text.replace(from, &date.to_string())).unwrap();
        }
    }
}

/// A seeded stream (splitmix64), for which items a day holds and which of them changed.
pub struct Draws(pub u64);

impl Draws {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn chance(&mut self, p: f64) -> bool {
        ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
}

/// One SageMaker data capture record of an OpenAI chat call.
pub fn record(id: &str, prompt: &str, reply: &str, day: NaiveDate) -> String {
    let request = serde_json::json!({"messages": [{"role": "user", "content": prompt}]});
    let response = serde_json::json!({
        "choices": [{"index": 0, "message": {"role": "assistant", "content": reply},
                     "finish_reason": "stop"}]
    });
    serde_json::json!({
        "captureData": {
            "endpointInput": {"observedContentType": "application/json", "mode": "INPUT",
                              "data": request.to_string(), "encoding": "JSON"},
            "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT",
                               "data": response.to_string(), "encoding": "JSON"}
        },
        "eventMetadata": {"eventId": id, "inferenceTime": format!("{day}T12:00:00Z")},
        "eventVersion": "0"
    })
    .to_string()
}
