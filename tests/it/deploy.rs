//! The shipped deployment, run as shipped: the CronJob's container command and its mounted
//! config (`deploy/kubernetes/cronjob.yaml`), from an empty folder, with nothing of the
//! repository around it. Only the placeholders for buckets, the endpoint and the region are
//! swapped for local stand-ins (a local warehouse, the bundled sample's captures, the offline
//! judge, no telemetry or publishing), as a user swaps them for theirs. The rubric comes from the
//! binary (`quality` is built in), as it must in an image that holds the binary only.

use crate::support::*;

/// The CronJob's container `args` (a flow sequence: JSON) and the ConfigMap's `evalwatch.toml`.
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
    (args, mount, config)
}

#[test]
fn the_cronjob_runs_as_shipped_from_an_empty_folder() {
    let (args, mount, config) = shipped();
    assert_eq!(args[..2], ["--config", "/etc/evalwatch/evalwatch.toml"]);
    assert_eq!(mount, "/etc/evalwatch");
    let root = tempfile::tempdir().unwrap();
    let etc = root.path().join("etc/evalwatch");
    std::fs::create_dir_all(&etc).unwrap();
    let warehouse = root.path().join("warehouse");
    let local = config
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
        .replace("\"REGION\"", "\"us-east-1\"");
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
