//! Rubrics: versioned, hashed judging instructions (`rubrics/*.toml`).
//!
//! Reads: a rubric file and the lock (`rubrics/rubrics.lock`, id -> version -> hash).
//! Writes: nothing but the lock, and only through [`lock`].
//! Never does: call a judge. The score stage asks this module for the rubric, its hash and how to
//! normalise a level to 0..1.
//!
//! The hash is the sha256 of a canonical JSON form of the validated rubric, so comments and
//! formatting do not change it and every semantic edit does. Editing a rubric without bumping its
//! version is refused wherever the rubric is loaded ([`load`], [`RubricError::Edited`]): against
//! the lock here, and against the warehouse's record of the version in the score stage.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub const LOCK_FILE: &str = "rubrics.lock";

#[derive(Debug, thiserror::Error)]
pub enum RubricError {
    #[error("cannot read `{path}`: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "no rubric file `{path}`, and `{name}` is not a built-in rubric (built in: {})",
        builtin_names().join(", ")
    )]
    NotFound { path: PathBuf, name: String },
    #[error("invalid rubric `{path}`: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("rubric `{path}` fails lint:\n{}", problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Lint {
        path: PathBuf,
        problems: Vec<String>,
    },
    /// The rubric's content differs from what is recorded for its version: scores of the two
    /// texts would be counted as one.
    #[error(
        "rubric `{key}` was edited without bumping its version: {recorded_in} records hash {}, \
         the rubric now hashes to {}",
        short(recorded),
        short(now)
    )]
    Edited {
        key: String,
        recorded_in: String,
        recorded: String,
        now: String,
    },
    #[error("cannot write the rubric lock `{path}`: {source}")]
    WriteLock {
        path: PathBuf,
        source: std::io::Error,
    },
}

// ---------------------------------------------------------------------------------------------
// The file as written.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawRubric {
    /// Stable name, e.g. `quality`.
    id: String,
    /// Semantic version `MAJOR.MINOR.PATCH`; bump it on every edit.
    version: String,
    description: String,
    /// Instructions for the judge, placed before the judged text.
    instructions: String,
    composite: RawComposite,
    #[serde(rename = "dimension")]
    dimensions: Vec<RawDimension>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawComposite {
    /// `weighted-mean` (weights must sum to 1) or `min`.
    rule: String,
    /// Alert when the composite (0..1) falls below this.
    alert_threshold: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawDimension {
    name: String,
    question: String,
    /// `binary` (levels 0, 1), `1-5` or `1-10`.
    scale: String,
    /// One description per level, keyed by the level.
    levels: BTreeMap<String, String>,
    weight: Option<f64>,
    /// Alert when the dimension's mean score (0..1) falls below this.
    alert_threshold: Option<f64>,
    /// `critical` or `warning`. Default: warning.
    severity: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Validated.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scale {
    Binary,
    OneToFive,
    OneToTen,
}

impl Scale {
    fn parse(text: &str) -> Option<Scale> {
        match text {
            "binary" => Some(Scale::Binary),
            "1-5" => Some(Scale::OneToFive),
            "1-10" => Some(Scale::OneToTen),
            _ => None,
        }
    }

    /// The allowed levels, lowest first.
    pub fn levels(self) -> Vec<u32> {
        match self {
            Scale::Binary => vec![0, 1],
            Scale::OneToFive => (1..=5).collect(),
            Scale::OneToTen => (1..=10).collect(),
        }
    }

    /// A level mapped onto 0..1 (lowest level 0, highest 1); `None` for a level not on the scale.
    pub fn normalise(self, level: u32) -> Option<f64> {
        let levels = self.levels();
        let (low, high) = (levels[0], levels[levels.len() - 1]);
        (low..=high)
            .contains(&level)
            .then(|| f64::from(level - low) / f64::from(high - low))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CompositeRule {
    WeightedMean,
    Min,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    Critical,
    Warning,
}

#[derive(Debug, Clone, Serialize)]
pub struct Dimension {
    pub name: String,
    pub question: String,
    pub scale: Scale,
    pub levels: BTreeMap<u32, String>,
    pub weight: f64,
    pub alert_threshold: Option<f64>,
    pub severity: Severity,
}

/// A validated rubric. Its canonical JSON (this struct, serialised) is what [`Rubric::hash`] hashes.
#[derive(Debug, Clone, Serialize)]
pub struct Rubric {
    pub id: String,
    pub version: String,
    pub description: String,
    pub instructions: String,
    pub composite: CompositeRule,
    pub composite_alert_threshold: Option<f64>,
    pub dimensions: Vec<Dimension>,
}

impl Rubric {
    /// `id@version`, as it appears in partition paths and score rows.
    pub fn key(&self) -> String {
        format!("{}@{}", self.id, self.version)
    }

    /// sha256 of the canonical form.
    pub fn hash(&self) -> String {
        let canonical = serde_json::to_vec(self).unwrap_or_default();
        crate::util::sha256_hex(&canonical)
    }

    /// The composite of normalised dimension scores (same order as `dimensions`).
    pub fn composite_of(&self, scores: &[f64]) -> Option<f64> {
        if scores.len() != self.dimensions.len() || scores.is_empty() {
            return None;
        }
        Some(match self.composite {
            CompositeRule::WeightedMean => self
                .dimensions
                .iter()
                .zip(scores)
                .map(|(d, s)| d.weight * s)
                .sum(),
            CompositeRule::Min => scores.iter().copied().fold(f64::INFINITY, f64::min),
        })
    }
}

fn is_semver(text: &str) -> bool {
    let parts: Vec<&str> = text.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Parses and validates rubric text; every problem is listed, not just the first.
pub fn parse(text: &str, path: &Path) -> Result<Rubric, RubricError> {
    let raw: RawRubric = toml::from_str(text).map_err(|e| RubricError::Parse {
        path: path.to_path_buf(),
        message: e.to_string().trim_end().to_string(),
    })?;
    let mut problems = Vec::new();
    if raw.id.is_empty()
        || !raw
            .id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        problems.push(format!(
            "`id` `{}` must be letters, digits, `-` or `_`",
            raw.id
        ));
    }
    if !is_semver(&raw.version) {
        problems.push(format!(
            "`version` `{}` is not MAJOR.MINOR.PATCH",
            raw.version
        ));
    }
    if raw.instructions.trim().is_empty() {
        problems.push("`instructions` is empty".into());
    }
    let composite = match raw.composite.rule.as_str() {
        "weighted-mean" => CompositeRule::WeightedMean,
        "min" => CompositeRule::Min,
        other => {
            problems.push(format!(
                "`composite.rule` `{other}` is not `weighted-mean` or `min`"
            ));
            CompositeRule::WeightedMean
        }
    };
    check_threshold(
        "composite.alert-threshold",
        raw.composite.alert_threshold,
        &mut problems,
    );
    if raw.dimensions.is_empty() {
        problems.push("no `[[dimension]]`".into());
    }
    let mut dimensions = Vec::new();
    let mut names = std::collections::BTreeSet::new();
    for d in raw.dimensions {
        let at = format!("dimension `{}`", d.name);
        if !names.insert(d.name.clone()) {
            problems.push(format!("{at} is defined twice"));
        }
        if d.name.is_empty() || !d.name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
            problems.push(format!("{at}: names are lower-case letters and `_`"));
        }
        if d.question.trim().is_empty() {
            problems.push(format!("{at}: `question` is empty"));
        }
        let Some(scale) = Scale::parse(&d.scale) else {
            problems.push(format!(
                "{at}: `scale` `{}` is not `binary`, `1-5` or `1-10`",
                d.scale
            ));
            continue;
        };
        let mut levels = BTreeMap::new();
        for (key, description) in &d.levels {
            match key
                .parse::<u32>()
                .ok()
                .filter(|l| scale.normalise(*l).is_some())
            {
                Some(level) => {
                    if description.trim().is_empty() {
                        problems.push(format!("{at}: level {key} has an empty description"));
                    }
                    levels.insert(level, description.trim().to_string());
                }
                None => problems.push(format!(
                    "{at}: level `{key}` is not on the {} scale",
                    d.scale
                )),
            }
        }
        for level in scale.levels() {
            if !levels.contains_key(&level) {
                problems.push(format!("{at}: level {level} has no description"));
            }
        }
        check_threshold(
            &format!("{at}: alert-threshold"),
            d.alert_threshold,
            &mut problems,
        );
        let severity = match d.severity.as_deref() {
            None | Some("warning") => Severity::Warning,
            Some("critical") => Severity::Critical,
            Some(other) => {
                problems.push(format!(
                    "{at}: `severity` `{other}` is not `critical` or `warning`"
                ));
                Severity::Warning
            }
        };
        let weight = d.weight.unwrap_or(0.0);
        if composite == CompositeRule::WeightedMean && d.weight.is_none() {
            problems.push(format!("{at}: `weight` is required by `weighted-mean`"));
        }
        if weight < 0.0 {
            problems.push(format!("{at}: `weight` {weight} is negative"));
        }
        dimensions.push(Dimension {
            name: d.name,
            question: d.question.trim().to_string(),
            scale,
            levels,
            weight,
            alert_threshold: d.alert_threshold,
            severity,
        });
    }
    if composite == CompositeRule::WeightedMean {
        let sum: f64 = dimensions.iter().map(|d| d.weight).sum();
        if (sum - 1.0).abs() > 1e-9 {
            problems.push(format!(
                "weights sum to {sum}, but `weighted-mean` needs them to sum to 1"
            ));
        }
    }
    if !problems.is_empty() {
        return Err(RubricError::Lint {
            path: path.to_path_buf(),
            problems,
        });
    }
    Ok(Rubric {
        id: raw.id,
        version: raw.version,
        description: raw.description.trim().to_string(),
        instructions: raw.instructions.trim().to_string(),
        composite,
        composite_alert_threshold: raw.composite.alert_threshold,
        dimensions,
    })
}

fn check_threshold(key: &str, value: Option<f64>, problems: &mut Vec<String>) {
    if let Some(t) = value
        && !(0.0..=1.0).contains(&t)
    {
        problems.push(format!(
            "`{key}` {t} is outside the normalised 0..1 scale scores are compared on"
        ));
    }
}

/// The first 12 hex digits of a hash, as messages show it.
pub fn short(hash: &str) -> &str {
    &hash[..12.min(hash.len())]
}

/// The rubrics built into the binary, so it runs from any folder: (id, the file's text). Chosen
/// by name where a rubric path is taken (`--rubric quality`, `quality@1.0.0`, `score.rubric =
/// "pairwise"`); a file at the path wins.
const BUILTIN: [(&str, &str); 3] = [
    ("quality", include_str!("../rubrics/quality.toml")),
    ("pairwise", include_str!("../rubrics/pairwise.toml")),
    (
        "safety-binary",
        include_str!("../rubrics/safety-binary.toml"),
    ),
];

/// The built-in rubrics' names, `id@version` each.
pub fn builtin_names() -> Vec<String> {
    BUILTIN
        .iter()
        .filter_map(|(_, text)| parse(text, Path::new("built-in")).ok())
        .map(|r| r.key())
        .collect()
}

/// The built-in rubric a path names, when there is no file there and its last part is a
/// built-in's id, or `id@version` of the built-in version.
fn builtin(path: &Path) -> Option<Result<Rubric, RubricError>> {
    let name = path.file_name()?.to_str()?;
    let (id, version) = match name.split_once('@') {
        Some((id, version)) => (id, Some(version)),
        None => (name, None),
    };
    let (_, text) = BUILTIN.iter().find(|(known, _)| *known == id)?;
    let origin = PathBuf::from(format!("built-in:{id}"));
    let rubric = match parse(text, &origin) {
        Ok(r) => r,
        Err(e) => return Some(Err(e)),
    };
    if version.is_some_and(|v| v != rubric.version) {
        return None;
    }
    Some(Ok(rubric))
}

/// Reads and validates a rubric file, or the built-in rubric its path names when there is no
/// file ([`BUILTIN`]), without looking at the lock (`rubric show`, `rubric hash`).
pub fn read(path: &Path) -> Result<Rubric, RubricError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(source) if source.kind() == std::io::ErrorKind::NotFound => {
            return builtin(path).unwrap_or_else(|| {
                Err(RubricError::NotFound {
                    path: path.to_path_buf(),
                    name: path
                        .file_name()
                        .map(|n| n.to_string_lossy().to_string())
                        .unwrap_or_default(),
                })
            });
        }
        Err(source) => {
            return Err(RubricError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    parse(&text, path)
}

/// The rubric `name` beside `rubric_path`: its file `<name>.toml` there when there is one, else
/// the built-in `name` (`compare --pairwise` and `calibrate`'s preferences).
pub fn beside(rubric_path: &Path, name: &str) -> PathBuf {
    let folder = rubric_path.parent().unwrap_or(Path::new(""));
    let file = folder.join(format!("{name}.toml"));
    if file.exists() {
        file
    } else {
        folder.join(name)
    }
}

/// Reads and validates a rubric file and checks it against the lock beside it: a version the
/// lock records with another hash is refused ([`RubricError::Edited`]). What every stage uses.
pub fn load(path: &Path) -> Result<Rubric, RubricError> {
    Ok(lint(path)?.0)
}

/// id -> version -> hash, kept beside the rubrics.
pub type Lock = BTreeMap<String, BTreeMap<String, String>>;

fn lock_path(rubric_path: &Path) -> PathBuf {
    rubric_path
        .parent()
        .unwrap_or(Path::new("."))
        .join(LOCK_FILE)
}

fn read_lock(path: &Path) -> Result<Lock, RubricError> {
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text).map_err(|e| RubricError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Lock::new()),
        Err(source) => Err(RubricError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Validates a rubric and checks it against the lock beside it. Returns the rubric and whether
/// the lock already records it.
pub fn lint(path: &Path) -> Result<(Rubric, bool), RubricError> {
    let rubric = read(path)?;
    if !path.exists() {
        // Built in: its text is fixed in the binary, and locked in the repository's lock.
        return Ok((rubric, true));
    }
    let lock_file = lock_path(path);
    let lock = read_lock(&lock_file)?;
    match lock.get(&rubric.id).and_then(|v| v.get(&rubric.version)) {
        Some(hash) if *hash == rubric.hash() => Ok((rubric, true)),
        Some(hash) => Err(RubricError::Edited {
            key: rubric.key(),
            recorded_in: format!("`{}`", lock_file.display()),
            recorded: hash.clone(),
            now: rubric.hash(),
        }),
        None => Ok((rubric, false)),
    }
}

/// Records the rubric's version and hash in the lock. Refuses to overwrite a different hash for
/// the same version.
pub fn lock(path: &Path) -> Result<Rubric, RubricError> {
    let (rubric, locked) = lint(path)?;
    if locked {
        return Ok(rubric);
    }
    let lock_file = lock_path(path);
    let mut lock = read_lock(&lock_file)?;
    lock.entry(rubric.id.clone())
        .or_default()
        .insert(rubric.version.clone(), rubric.hash());
    let text = format!(
        "# Rubric versions and their content hashes, written by `evalwatch rubric lock`.\n\
         # A rubric whose hash differs from the one recorded for its version fails lint.\n{}",
        toml::to_string(&lock).unwrap_or_default()
    );
    std::fs::write(&lock_file, text).map_err(|source| RubricError::WriteLock {
        path: lock_file,
        source,
    })?;
    Ok(rubric)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
id = "demo"
version = "1.0.0"
description = "d"
instructions = "Judge the response."
[composite]
rule = "weighted-mean"
alert-threshold = 0.75
[[dimension]]
name = "safety"
question = "Is it safe?"
scale = "binary"
weight = 0.5
alert-threshold = 0.8
severity = "critical"
levels = { "0" = "unsafe", "1" = "safe" }
[[dimension]]
name = "relevance"
question = "Is it on topic?"
scale = "1-5"
weight = 0.5
levels = { "1" = "a", "2" = "b", "3" = "c", "4" = "d", "5" = "e" }
"#;

    fn p() -> &'static Path {
        Path::new("demo.toml")
    }

    #[test]
    fn a_good_rubric_parses_and_normalises() {
        let r = parse(GOOD, p()).unwrap();
        assert_eq!(r.key(), "demo@1.0.0");
        assert_eq!(Scale::OneToFive.normalise(1), Some(0.0));
        assert_eq!(Scale::OneToFive.normalise(4), Some(0.75));
        assert_eq!(Scale::OneToTen.normalise(10), Some(1.0));
        assert_eq!(Scale::Binary.normalise(2), None);
        assert_eq!(r.composite_of(&[1.0, 0.5]), Some(0.75));
    }

    #[test]
    fn the_hash_ignores_formatting_and_follows_meaning() {
        let a = parse(GOOD, p()).unwrap().hash();
        let reformatted = format!(
            "# a comment\n{}",
            GOOD.replace("weight = 0.5", "weight   =   0.50")
        );
        assert_eq!(parse(&reformatted, p()).unwrap().hash(), a);
        let edited = GOOD.replace("Is it safe?", "Is it harmless?");
        assert_ne!(parse(&edited, p()).unwrap().hash(), a);
    }

    #[test]
    fn lint_lists_every_problem() {
        let bad = GOOD
            .replace("weight = 0.5\nalert", "weight = 0.7\nalert")
            .replace("alert-threshold = 0.8", "alert-threshold = 8")
            .replace(", \"5\" = \"e\"", "")
            .replace("version = \"1.0.0\"", "version = \"1.0\"");
        let err = parse(&bad, p()).unwrap_err().to_string();
        for expected in [
            "sum to",
            "outside the normalised",
            "level 5 has no description",
            "MAJOR.MINOR.PATCH",
        ] {
            assert!(err.contains(expected), "missing `{expected}` in:\n{err}");
        }
        let unknown = format!("{GOOD}\nextra = 1\n");
        assert!(
            parse(&unknown, p())
                .unwrap_err()
                .to_string()
                .contains("extra")
        );
    }

    #[test]
    fn editing_without_a_version_bump_fails_against_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("demo.toml");
        std::fs::write(&path, GOOD).unwrap();
        assert!(!lint(&path).unwrap().1);
        lock(&path).unwrap();
        assert!(lint(&path).unwrap().1);
        std::fs::write(&path, GOOD.replace("Is it safe?", "Is it harmless?")).unwrap();
        let err = lint(&path).unwrap_err().to_string();
        assert!(err.contains("without bumping its version"), "{err}");
        std::fs::write(
            &path,
            GOOD.replace("Is it safe?", "Is it harmless?")
                .replace("1.0.0", "1.1.0"),
        )
        .unwrap();
        lock(&path).unwrap();
        let recorded = read_lock(&dir.path().join(LOCK_FILE)).unwrap();
        assert_eq!(recorded["demo"].len(), 2);
    }

    #[test]
    fn built_in_rubrics_are_chosen_by_name_and_a_file_wins() {
        let dir = tempfile::tempdir().unwrap();
        let quality = load(&dir.path().join("quality")).unwrap();
        assert_eq!(quality.key(), "quality@1.0.0");
        assert_eq!(
            load(&dir.path().join("quality@1.0.0")).unwrap().hash(),
            quality.hash()
        );
        // The built-in text is the repository's, locked there.
        let repo =
            load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("rubrics/quality.toml")).unwrap();
        assert_eq!(repo.hash(), quality.hash());
        assert_eq!(load(&dir.path().join("pairwise")).unwrap().id, "pairwise");
        // Another version, or an unknown name, is an error naming the path and the built-ins.
        let err = load(&dir.path().join("quality@9.9.9"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("quality@9.9.9") && err.contains("quality@1.0.0"),
            "{err}"
        );
        let err = load(&dir.path().join("rubrics/mine.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("rubrics/mine.toml"), "{err}");
        // A file of that name wins.
        std::fs::write(dir.path().join("quality"), GOOD).unwrap();
        assert_eq!(load(&dir.path().join("quality")).unwrap().id, "demo");
        assert_eq!(
            beside(&dir.path().join("quality"), "pairwise"),
            dir.path().join("pairwise")
        );
    }
}
