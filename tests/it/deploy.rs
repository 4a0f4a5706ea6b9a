//! The shipped deployment, run as shipped: the CronJob's container command and its mounted
//! config (`deploy/kubernetes/`), the sharded map and reduce Jobs, and the AWS Batch job
//! definition and submissions (`deploy/aws-batch/`), from an empty folder, with nothing of the
//! repository around it. Only the placeholders for buckets, the endpoint and the region are
//! swapped for local stand-ins (a local warehouse, the bundled sample's captures, the offline
//! judge, no telemetry or publishing), as a user swaps them for theirs. The rubric comes from the
//! binary (`quality` is built in), as it must in an image that holds the binary only.

use std::path::Path;

use crate::support::*;

/// The CronJob's container `args` (a flow sequence: JSON) and mount, and the shared ConfigMap's
/// `evalwatch.toml` (`deploy/kubernetes/config.yaml`).
fn shipped() -> (Vec<String>, String, String) {
    let yaml = std::fs::read_to_string(repo_root().join("deploy/kubernetes/cronjob.yaml")).unwrap();
    let args_line = yaml
        .lines()
        .find(|l| l.trim_start().starts_with("args:"))
        .expect("the container's args");
    let list = args_line.split_once("args:").unwrap().1;
    let list = list.split(" #").next().unwrap().trim();
    let args: Vec<String> = serde_json::from_str(list).unwrap();
    let mount = yaml
        .lines()
        .find_map(|l| l.trim().strip_prefix("mountPath: "))
        .expect("the config's mount")
        .trim()
        .to_string();
    (args, mount, shipped_config())
}

/// The ConfigMap's `evalwatch.toml`.
fn shipped_config() -> String {
    let yaml = std::fs::read_to_string(repo_root().join("deploy/kubernetes/config.yaml")).unwrap();
    let mut config = String::new();
    let mut inside = false;
    for line in yaml.lines() {
        if line.trim() == "evalwatch.toml: |" {
            inside = true;
            continue;
        }
        if inside {
            if line.starts_with("---") {
                break;
            }
            config.push_str(line.strip_prefix("    ").unwrap_or(line.trim()));
            config.push('\n');
        }
    }
    config
}

/// A shipped config with its placeholders swapped for local stand-ins: a local warehouse, the
/// bundled sample's captures, the offline judge, no telemetry or publishing.
fn localize(config: &str, warehouse: &std::path::Path) -> String {
    config
        .replace(
            "s3://WAREHOUSE_BUCKET/WAREHOUSE_PREFIX",
            &warehouse.display().to_string(),
        )
        .replace(
            "s3://CAPTURE_BUCKET/CAPTURE_PREFIX",
            &sample_capture().display().to_string(),
        )
        .replace("kind = \"bedrock\"", "kind = \"offline\"")
        .replace("source = \"cloudwatch\"", "source = \"none\"")
        .replace("endpoint = \"ENDPOINT_NAME\"\n", "")
        .replace("sink = \"cloudwatch\"", "sink = \"none\"")
        .replace("\"REGION\"", "\"us-east-1\"")
}

#[test]
fn the_cronjob_runs_as_shipped_from_an_empty_folder() {
    let (args, mount, config) = shipped();
    assert_eq!(args[..2], ["--config", "/etc/evalwatch/evalwatch.toml"]);
    assert_eq!(mount, "/etc/evalwatch");
    let root = tempfile::tempdir().unwrap();
    let etc = root.path().join("etc/evalwatch");
    std::fs::create_dir_all(&etc).unwrap();
    let local = localize(&config, &root.path().join("warehouse"));
    assert!(
        !local.contains("rubric"),
        "the shipped config names no rubric file"
    );
    std::fs::write(etc.join("evalwatch.toml"), &local).unwrap();
    let empty = root.path().join("work");
    std::fs::create_dir_all(&empty).unwrap();
    let mut cmd = evalwatch();
    cmd.current_dir(&empty);
    for arg in &args {
        cmd.arg(arg.replace("/etc/evalwatch", &etc.display().to_string()));
    }
    cmd.args(["--since", "2026-10-01", "--until", "2026-10-14"]);
    let out = run(&mut cmd);
    // Ran fine and the sample's regression alerted.
    assert_eq!(out.status.code(), Some(3), "{}\n{local}", stderr(&out));
    let score = stage_summary(&out, "score");
    assert_eq!(score["rubric"], "quality@1.0.0", "the built-in rubric");
    assert!(count(&score, "judged") > 1000, "{score}");
    assert_eq!(
        std::fs::read_dir(&empty).unwrap().count(),
        0,
        "nothing written in the cwd"
    );
}

/// The image, built from the repository's `Dockerfile` with podman, runs the nightly job with
/// only its config mounted (and a folder for the warehouse). It needs podman (`apt-get install
/// podman`) and access to docker.io for the base images; the CI machine has no registry access,
/// so it runs by hand (`cargo test --test it -- --ignored the_image`). What the image holds (the
/// binary alone, run from an empty folder with a mounted config) is checked on every run by
/// `the_cronjob_runs_as_shipped_from_an_empty_folder`.
#[test]
#[ignore = "builds the container image: needs podman and access to docker.io; run by hand"]
fn the_image_builds_and_runs_the_nightly_job() {
    let podman = |args: &[&str]| {
        std::process::Command::new("podman")
            .args(args)
            .current_dir(repo_root())
            .output()
            .unwrap_or_else(|e| panic!("podman cannot run ({e}): apt-get install podman"))
    };
    let tag = "localhost/evalwatch-test:latest";
    let out = podman(&["build", "--network=host", "-t", tag, "."]);
    assert!(out.status.success(), "podman build: {}", stderr(&out));
    let root = tempfile::tempdir().unwrap();
    let (etc, warehouse) = (root.path().join("etc"), root.path().join("warehouse"));
    for dir in [&etc, &warehouse] {
        std::fs::create_dir_all(dir).unwrap();
        // The image runs as an unprivileged user.
        std::process::Command::new("chmod")
            .arg("777")
            .arg(dir)
            .status()
            .unwrap();
    }
    let config = localize(&shipped_config(), std::path::Path::new("/data/warehouse"))
        .replace(&sample_capture().display().to_string(), "/data/capture");
    std::fs::write(etc.join("evalwatch.toml"), config).unwrap();
    let mount =
        |from: &std::path::Path, to: &str, mode: &str| format!("{}:{to}:{mode}", from.display());
    let out = podman(&[
        "run",
        "--rm",
        "-v",
        &mount(&etc, "/etc/evalwatch", "ro"),
        "-v",
        &mount(&sample_capture(), "/data/capture", "ro"),
        "-v",
        &mount(&warehouse, "/data/warehouse", "rw"),
        tag,
        "--config",
        "/etc/evalwatch/evalwatch.toml",
        "run",
        "--since",
        "2026-10-01",
        "--until",
        "2026-10-14",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(!parquet_under(&warehouse.join("scores")).is_empty());
    // The model baked into the image: embedded with no network and no home.
    assert!(!parquet_under(&warehouse.join("embeddings")).is_empty());
    assert!(!parquet_under(&warehouse.join("topics")).is_empty());
}

/// A container of a shipped Job, as `scripts/deploy_check.py workloads` reads it with PyYAML.
#[derive(serde::Deserialize)]
struct Workload {
    name: String,
    indexed: bool,
    completions: u32,
    args: Vec<String>,
    env: std::collections::BTreeMap<String, String>,
    mounts: Vec<String>,
}

/// The window the deploy tests run, and what the offline judge's run of it must end with.
const WINDOW: [&str; 4] = ["--since", "2026-10-08", "--until", "2026-10-14"];

/// Runs the map step's `n` indexes at once (each with `index_env(i)` set, as the engine sets it),
/// then the reduce; asserts they exit 0 and the reduce 3 (the sample's regression alerts), and
/// that the reduce names every shard it reduced.
fn map_then_reduce(
    n: u32,
    map: impl Fn(u32) -> std::process::Command,
    reduce: std::process::Command,
    warehouse: &std::path::Path,
) {
    let maps: Vec<_> = (0..n)
        .map(|i| {
            let mut cmd = map(i);
            cmd.args(WINDOW)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for (i, child) in maps.into_iter().enumerate() {
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "index {i}: {}", stderr(&out));
        assert_eq!(stage_summary(&out, "ingest")["shard"], format!("{i}/{n}"));
    }
    let mut reduce = reduce;
    let out = run(reduce.args(WINDOW));
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let manifests: Vec<serde_json::Value> = files_under(&warehouse.join("runs"))
        .iter()
        .map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap())
        .collect();
    let reduced = manifests
        .iter()
        .find(|m| m["mode"] == "reduce")
        .expect("the reduce's run manifest");
    assert_eq!(reduced["shards"].as_array().unwrap().len(), n as usize);
    // Every sampled capture of the window was judged, by exactly one shard.
    let captures = read_table(warehouse, "captures").height();
    assert_eq!(read_table(warehouse, "scores").height(), captures * 3);
}

/// `deploy/kubernetes/sharded.yaml` as shipped: the Indexed Job's container (args, env, mount)
/// on every index with `JOB_COMPLETION_INDEX` set as Kubernetes sets it, then the reduce Job's,
/// from an empty folder with only the mounted config.
#[test]
fn the_sharded_jobs_run_as_shipped_from_an_empty_folder() {
    let python = python_tool(PYYAML, "python");
    let out = std::process::Command::new(python)
        .arg(repo_root().join("scripts/deploy_check.py"))
        .arg("workloads")
        .arg(repo_root().join("deploy/kubernetes/sharded.yaml"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let workloads: Vec<Workload> = serde_json::from_slice(&out.stdout).unwrap();
    let [map, reduce] = workloads.as_slice() else {
        panic!("a map and a reduce");
    };
    assert_eq!(
        (map.name.as_str(), reduce.name.as_str()),
        ("evalwatch-map", "evalwatch-reduce")
    );
    assert!(map.indexed && !reduce.indexed);
    assert_eq!(map.env["EVALWATCH_SHARDS"], map.completions.to_string());
    assert!(
        reduce
            .args
            .windows(2)
            .any(|w| w == ["--shards", &map.completions.to_string()])
    );
    let root = tempfile::tempdir().unwrap();
    let etc = root.path().join("etc/evalwatch");
    std::fs::create_dir_all(&etc).unwrap();
    assert_eq!(map.mounts, ["/etc/evalwatch"]);
    assert_eq!(reduce.mounts, ["/etc/evalwatch"]);
    let warehouse = root.path().join("warehouse");
    std::fs::write(
        etc.join("evalwatch.toml"),
        localize(&shipped_config(), &warehouse),
    )
    .unwrap();
    let empty = root.path().join("work");
    std::fs::create_dir_all(&empty).unwrap();
    let container = |w: &Workload| {
        let mut cmd = evalwatch();
        cmd.current_dir(&empty).envs(&w.env);
        for arg in &w.args {
            cmd.arg(arg.replace("/etc/evalwatch", &etc.display().to_string()));
        }
        cmd
    };
    map_then_reduce(
        map.completions,
        |i| {
            let mut cmd = container(map);
            cmd.env("JOB_COMPLETION_INDEX", i.to_string());
            cmd
        },
        container(reduce),
        &warehouse,
    );
    assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0);
}

/// `deploy/aws-batch/` as shipped: the job definition and both submit-job inputs validate against
/// botocore's `batch` model (and a misspelt key is shown to fail), and the job definition's
/// command and environment (the config in `EVALWATCH_CONFIG_TEXT`) run on every array index with
/// `AWS_BATCH_JOB_ARRAY_INDEX` and `AWS_BATCH_JOB_ARRAY_SIZE` set as AWS Batch sets them, then
/// the reduce job's command, from an empty folder.
#[test]
fn the_aws_batch_files_validate_and_run_as_shipped() {
    let dir = repo_root().join("deploy/aws-batch");
    let python = python_tool(BOTOCORE, "python");
    let check = |files: &[std::path::PathBuf]| {
        std::process::Command::new(&python)
            .arg(repo_root().join("scripts/deploy_check.py"))
            .arg("batch")
            .args(files)
            .output()
            .unwrap()
    };
    let files = ["job-definition.json", "map-job.json", "reduce-job.json"].map(|f| dir.join(f));
    let out = check(&files);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("map-job.json");
    let text = std::fs::read_to_string(&files[1]).unwrap();
    std::fs::write(
        &bad,
        text.replace("\"arrayProperties\"", "\"arrayProperty\""),
    )
    .unwrap();
    let out = check(&[files[0].clone(), bad]);
    assert!(!out.status.success());
    assert!(stdout(&out).contains("arrayProperty"), "{}", stdout(&out));

    let read = |f: &std::path::PathBuf| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap()
    };
    let (definition, map_job, reduce_job) = (read(&files[0]), read(&files[1]), read(&files[2]));
    let container = &definition["containerProperties"];
    let strings = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    let map_command = strings(&container["command"]);
    let reduce_command = strings(&reduce_job["containerOverrides"]["command"]);
    let size = map_job["arrayProperties"]["size"].as_u64().unwrap() as u32;
    assert!(
        reduce_command
            .windows(2)
            .any(|w| w == ["--shards", &size.to_string()])
    );
    let config = container["environment"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "EVALWATCH_CONFIG_TEXT")
        .and_then(|e| e["value"].as_str())
        .expect("the config in the environment")
        .to_string();
    assert_eq!(config, shipped_config(), "one config for both engines");
    let warehouse = tmp.path().join("warehouse");
    let local = localize(&config, &warehouse);
    let empty = tmp.path().join("work");
    std::fs::create_dir_all(&empty).unwrap();
    let container = |command: &[String]| {
        let mut cmd = evalwatch();
        cmd.current_dir(&empty)
            .env("EVALWATCH_CONFIG_TEXT", &local)
            .args(command);
        cmd
    };
    map_then_reduce(
        size,
        |i| {
            let mut cmd = container(&map_command);
            cmd.env("AWS_BATCH_JOB_ARRAY_INDEX", i.to_string())
                .env("AWS_BATCH_JOB_ARRAY_SIZE", size.to_string());
            cmd
        },
        container(&reduce_command),
        &warehouse,
    );
    assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0);
}

/// Built-in rubrics by name wherever a rubric is taken, from a folder without `rubrics/`.
#[test]
fn built_in_rubrics_are_chosen_by_name_from_any_folder() {
    let wh = ingested("2026-10-03", "2026-10-03");
    let empty = tempfile::tempdir().unwrap();
    let score = |rubric: &str| {
        let mut cmd = evalwatch();
        cmd.current_dir(empty.path())
            .arg("--warehouse")
            .arg(wh.path())
            .args(["score", "--dry-run", "--rubric", rubric]);
        run(&mut cmd)
    };
    let out = score("quality@1.0.0");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stage_summary(&out, "score")["rubric"], "quality@1.0.0");
    let out = score("safety-binary");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // An unknown name is a usage error naming the path and the built-ins.
    let out = score("kindness");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("kindness") && err.contains("pairwise@1.0.0"),
        "{err}"
    );
}

/// `catalog --athena`: a `CREATE EXTERNAL TABLE` per table, its columns exactly the Parquet
/// columns the writers wrote (names, order, types), every column the schema module names, the
/// partition keys in path order with their projection, and the models found as the projected
/// values.
#[test]
fn the_athena_catalog_matches_what_the_writers_wrote() {
    let wh = tempfile::tempdir().unwrap();
    let out = run(evalwatch().arg("--warehouse").arg(wh.path()).arg("run"));
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let out = run(evalwatch().arg("--warehouse").arg(wh.path()).args([
        "catalog",
        "--athena",
        "--database",
        "ew",
    ]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let ddl = stdout(&out);
    let tables = [
        (
            "captures",
            evalwatch::schema::captures::COLUMNS,
            "`model` string, `date` date",
        ),
        (
            "quarantine",
            evalwatch::schema::quarantine::COLUMNS,
            "`date` date",
        ),
        (
            "scores",
            evalwatch::schema::scores::COLUMNS,
            "`rubric` string, `model` string, `date` date",
        ),
        (
            "telemetry",
            evalwatch::schema::telemetry::COLUMNS,
            "`model` string, `date` date",
        ),
        ("drift", evalwatch::schema::drift::COLUMNS, "`date` date"),
        (
            "aggregates",
            evalwatch::schema::aggregates::COLUMNS,
            "`date` date",
        ),
    ];
    assert_catalog_matches(wh.path(), &ddl, &tables);
    assert!(ddl.contains("`captured_at` timestamp"));
    assert!(ddl.contains("'projection.model.values' = 'chat-a,chat-b'"));
    assert!(ddl.contains("'projection.rubric.values' = 'quality@1.0.0'"));
    assert!(
        ddl.contains("no part written yet"),
        "calibration has none: {ddl}"
    );
}

/// A table, the columns its schema declares, and its partition keys as the DDL names them.
pub type CatalogTable<'a> = (&'a str, &'a [&'a str], &'a str);

/// Checks that `catalog --athena`'s DDL (`ddl`, database `ew`) gives each of `tables` the columns
/// its writer wrote (read from a part) and its partition keys, that DuckDB's hive-partitioned
/// reader reads the same, and that every column the schema declares is there.
pub fn assert_catalog_matches(wh: &Path, ddl: &str, tables: &[CatalogTable]) {
    // A second reader of the same layout: DuckDB's hive-partitioned Parquet reader.
    let python = python_tool(DUCKDB, "python");
    let out = std::process::Command::new(python)
        .arg(repo_root().join("scripts/duckdb_columns.py"))
        .arg(wh)
        .args(tables.iter().map(|(t, _, _)| *t))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let duckdb: std::collections::BTreeMap<String, Vec<(String, String)>> =
        serde_json::from_slice(&out.stdout).unwrap();
    for &(table, declared, partitions) in tables {
        let start = ddl
            .find(&format!(
                "CREATE EXTERNAL TABLE IF NOT EXISTS `ew`.`{table}` ("
            ))
            .unwrap_or_else(|| panic!("no {table} in\n{ddl}"));
        let body = &ddl[start..];
        let columns_end = body.find("\n)\nPARTITIONED BY (").unwrap();
        let columns: Vec<(String, String)> = body[..columns_end]
            .lines()
            .skip(1)
            .map(|l| {
                let (name, kind) = l.trim().trim_end_matches(',').split_once(' ').unwrap();
                (name.trim_matches('`').to_string(), kind.to_string())
            })
            .collect();
        let partitions_line = body[columns_end..].lines().nth(2).unwrap();
        assert_eq!(
            partitions_line,
            format!("PARTITIONED BY ({partitions})"),
            "{table}"
        );
        // The writers' columns, as a part holds them.
        let part = parquet_under(&wh.join(table)).remove(0);
        use polars::prelude::SerReader;
        let df = polars::prelude::ParquetReader::new(std::fs::File::open(&part).unwrap())
            .finish()
            .unwrap();
        let written: Vec<(String, String)> = df
            .schema()
            .iter()
            .map(|(n, t)| (n.to_string(), evalwatch::catalog::hive_type(t)))
            .collect();
        assert_eq!(columns, written, "{table}");
        // DuckDB reads the same columns, of the same kinds, then the partition keys (in an order
        // of its own).
        let mut keys: Vec<(String, String)> = partitions
            .split(", ")
            .map(|key| {
                let (name, kind) = key.split_once(' ').unwrap();
                (name.trim_matches('`').to_string(), kind.to_string())
            })
            .collect();
        let read: Vec<(String, String)> = duckdb[table]
            .iter()
            .map(|(name, kind)| (name.clone(), hive_of_duckdb(kind)))
            .collect();
        let (file_columns, key_columns) = read.split_at(columns.len().min(read.len()));
        assert_eq!(
            file_columns,
            columns.as_slice(),
            "{table}: DuckDB's columns"
        );
        let mut key_columns = key_columns.to_vec();
        key_columns.sort();
        keys.sort();
        assert_eq!(key_columns, keys, "{table}: DuckDB's partition keys");
        let names: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
        for column in declared {
            assert!(
                names.contains(column),
                "{table}: `{column}` missing from {names:?}"
            );
        }
        assert!(
            body.contains("'projection.date.type' = 'date'") || !partitions.contains("date"),
            "{table}"
        );
    }
}

/// The Hive type of a DuckDB column type, as `catalog --athena` names it.
fn hive_of_duckdb(kind: &str) -> String {
    if let Some(inner) = kind.strip_suffix("[]") {
        return format!("array<{}>", hive_of_duckdb(inner));
    }
    match kind {
        "VARCHAR" => "string",
        "BOOLEAN" => "boolean",
        "TINYINT" => "tinyint",
        "SMALLINT" => "smallint",
        "INTEGER" | "UTINYINT" | "USMALLINT" => "int",
        "BIGINT" | "UINTEGER" | "UBIGINT" => "bigint",
        "FLOAT" => "float",
        "DOUBLE" => "double",
        "DATE" => "date",
        k if k.starts_with("TIMESTAMP") => "timestamp",
        other => other,
    }
    .to_string()
}

/// Every manifest in `deploy/kubernetes/` validates against the Kubernetes schemas
/// (`kubernetes-validate --strict`: unknown fields refused), and the validator is shown to
/// refuse a manifest with a misspelt field, so the check cannot pass on nothing.
#[test]
fn the_kubernetes_manifests_validate_against_the_schemas() {
    let validate = python_tool(KUBERNETES_VALIDATE, "kubernetes-validate");
    let manifests: Vec<std::path::PathBuf> = files_under(&repo_root().join("deploy/kubernetes"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    assert!(!manifests.is_empty());
    let check = |path: &std::path::Path| {
        std::process::Command::new(&validate)
            .args(["--strict", "--quiet"])
            .arg(path)
            .output()
            .unwrap()
    };
    for manifest in &manifests {
        let out = check(manifest);
        assert!(
            out.status.success(),
            "{}: {}{}",
            manifest.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    let text = std::fs::read_to_string(repo_root().join("deploy/kubernetes/cronjob.yaml")).unwrap();
    std::fs::write(
        &bad,
        text.replace(
            "concurrencyPolicy: Forbid",
            "concurrencyPolicy: Forbid\n  concurencyLimit: 3",
        ),
    )
    .unwrap();
    let out = check(&bad);
    assert!(
        !out.status.success(),
        "a misspelt field must fail validation"
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("concurencyLimit"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// A config written by `evalwatch init` outside the repository runs there: it names no rubric
/// file, so the built-in `quality` is used (before, it resolved to a `rubrics/quality.toml`
/// beside the config that is not there, and the run failed).
#[test]
fn a_config_from_init_runs_outside_the_repository() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("evalwatch.toml");
    let mut init = evalwatch();
    init.current_dir(dir.path())
        .args(["init", "--path"])
        .arg(&config);
    let out = run(&mut init);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let mut score = evalwatch();
    score
        .current_dir(dir.path())
        .arg("--config")
        .arg(&config)
        .arg("--warehouse")
        .arg(dir.path().join("wh"))
        .args(["score", "--dry-run"]);
    let out = run(&mut score);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stage_summary(&out, "score")["rubric"], "quality@1.0.0");
}
