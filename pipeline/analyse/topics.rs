//! The `topics` table: what users asked, per model, analysed window and topic of the baseline's
//! prompts ([`super::embedding::Topics`]), and how each topic fared: its share against the
//! baseline's, the mean composite and judge error rate of its judged replies, its share of the
//! window's tokens (what it costs of the model's hardware), the terms that set it apart
//! (class-based TF-IDF, as BERTopic computes it) and three representative prompts, redacted.
//!
//! Reads: the window's captures (prompt text and token counts) for the prompts the embed stage
//! embedded. Never does: write a prompt unredacted, or longer than 240 characters.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use chrono::NaiveDate;
use polars::prelude::*;

use super::embedding::{NOVEL, Topics, topic_name};
use super::load::DayData;
use crate::schema::{self, topics as col};
use crate::table::{PartKey, read_key, text_constant, utc_micros};
use crate::warehouse::Warehouse;

/// An embedded prompt of a window: request id, topic (`None`: novel), distance to the nearest
/// centroid.
pub type Assigned = (Arc<str>, Option<usize>, f32);

/// A window's prompts against its epoch's topics, as the analysis assigned them.
#[derive(Debug, Clone)]
pub struct TopicWindow {
    pub epoch: NaiveDate,
    pub topics: Arc<Topics>,
    pub assigned: Vec<Assigned>,
    /// The baseline's share per topic name (prompts not fitted on).
    pub baseline_shares: BTreeMap<String, f64>,
    /// Per embedded prompt's capture, when judged: composite and judge error (from the scores).
    pub judged: HashMap<String, (Option<f64>, bool)>,
    /// The window's hardware cost, when known.
    pub cost_usd: Option<f64>,
}

impl TopicWindow {
    /// The window's assignment under `topics`; `None` without embedded prompts.
    pub fn of(
        epoch: NaiveDate,
        topics: &Arc<Topics>,
        current: &DayData,
        baseline: &DayData,
    ) -> Option<TopicWindow> {
        if current.prompt_vectors.is_empty() {
            return None;
        }
        let assigned = current
            .prompt_vectors
            .iter()
            .map(|e| {
                let topic = topics.assign(&e.vector);
                (e.request_id.clone(), topic, topics.distance(&e.vector))
            })
            .collect();
        let mut counts: BTreeMap<String, f64> = BTreeMap::new();
        let mut total = 0.0;
        for e in baseline
            .prompt_vectors
            .iter()
            .filter(|e| !topics.fitted.contains(&e.request_id))
        {
            let name = topics
                .assign(&e.vector)
                .map_or(NOVEL.to_string(), topic_name);
            *counts.entry(name).or_default() += 1.0;
            total += 1.0;
        }
        counts.values_mut().for_each(|c| *c /= f64::max(total, 1.0));
        Some(TopicWindow {
            epoch,
            topics: topics.clone(),
            assigned,
            baseline_shares: counts,
            judged: current
                .prompt_vectors
                .iter()
                .filter_map(|e| {
                    let judged = current.judged.get(&*e.request_id)?;
                    Some((e.request_id.to_string(), *judged))
                })
                .collect(),
            cost_usd: current.cost_usd,
        })
    }
}

/// One row of the `topics` table.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicRow {
    pub model: String,
    pub epoch: NaiveDate,
    pub topic: String,
    pub prompts: u64,
    pub share: f64,
    pub baseline_share: f64,
    pub composite_mean: Option<f64>,
    pub judge_error_rate: Option<f64>,
    pub cost_share: Option<f64>,
    pub cost_usd: Option<f64>,
    pub top_terms: Vec<String>,
    pub examples: Vec<String>,
}

/// What the topic rows need of a capture.
#[derive(Debug, Clone)]
struct Asked {
    prompt: String,
    /// Prompt and completion tokens (characters / 4 without counts).
    tokens: f64,
}

/// The prompts and token counts of the captures of `days` among `wanted`, by request id.
async fn asked(
    warehouse: &Warehouse,
    days: &BTreeSet<(String, NaiveDate)>,
    wanted: &HashSet<&str>,
) -> Result<HashMap<String, Asked>, super::AnalyseError> {
    let keys = crate::compact::captures(warehouse)
        .await
        .map_err(super::load::LoadError::from)?;
    let columns = [
        (schema::captures::REQUEST_ID, DataType::String),
        (schema::captures::PROMPT, DataType::String),
        (schema::captures::PROMPT_TOKENS, DataType::Float64),
        (schema::captures::COMPLETION_TOKENS, DataType::Float64),
        (schema::captures::PROMPT_CHARS, DataType::Float64),
        (schema::captures::RESPONSE_CHARS, DataType::Float64),
    ];
    let mut out = HashMap::new();
    for key in keys {
        let Some(part) = PartKey::parse(&key) else {
            continue;
        };
        let (Some(model), Some(date)) = (part.value("model"), part.date()) else {
            continue;
        };
        if !days.contains(&(model.to_string(), date)) {
            continue;
        }
        let Some(df) = read_key(warehouse, &key, &columns)
            .await
            .map_err(super::load::LoadError::from)?
        else {
            continue;
        };
        let read = |e: PolarsError| super::load::LoadError::Read {
            key: key.clone(),
            message: e.to_string(),
        };
        let ids = df
            .column(schema::captures::REQUEST_ID)
            .and_then(|c| c.str().cloned())
            .map_err(read)?;
        let prompts = df
            .column(schema::captures::PROMPT)
            .and_then(|c| c.str().cloned())
            .map_err(read)?;
        let number = |name: &str| -> Result<Vec<Option<f64>>, super::load::LoadError> {
            Ok(df
                .column(name)
                .and_then(|c| c.f64().cloned())
                .map_err(read)?
                .iter()
                .collect())
        };
        let (pt, ct) = (
            number(schema::captures::PROMPT_TOKENS)?,
            number(schema::captures::COMPLETION_TOKENS)?,
        );
        let (pc, rc) = (
            number(schema::captures::PROMPT_CHARS)?,
            number(schema::captures::RESPONSE_CHARS)?,
        );
        for (i, (id, prompt)) in ids.iter().zip(prompts.iter()).enumerate() {
            let Some(id) = id.filter(|id| wanted.contains(id)) else {
                continue;
            };
            let tokens = match (pt[i], ct[i]) {
                (Some(p), Some(c)) => p + c,
                _ => (pc[i].unwrap_or(0.0) + rc[i].unwrap_or(0.0)) / 4.0,
            };
            out.insert(
                id.to_string(),
                Asked {
                    prompt: prompt.unwrap_or_default().to_string(),
                    tokens,
                },
            );
        }
    }
    Ok(out)
}

/// Lowercase words of three letters or more, English stop words left out.
fn terms(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric() && c != '\'')
        .map(|w| w.trim_matches('\'').to_lowercase())
        .filter(|w| w.chars().count() >= 3 && !w.chars().all(|c| c.is_ascii_digit()))
        .filter(|w| !STOP_WORDS.contains(w.as_str()))
}

/// The most common English function words and chat filler, and the role markers of prompts
/// sent as transcripts (`Human: ... Assistant:`): never a topic's term.
static STOP_WORDS: std::sync::LazyLock<HashSet<&'static str>> = std::sync::LazyLock::new(|| {
    "the and for are but not you your all any can had her was one our out has have him his \
     how its may new now see two who did does get got let she too use way what when where \
     which while with would will this that these those there their them they then than from \
     into about also been being could should some such just like more most much very only \
     other over same here were why yes don't i'm it's can't i've you're know want think make \
     good well really okay please thanks thank tell give need something anything someone \
     because after before again each few both between through during above below under until \
     off own down once further doing having myself yourself itself ours yours what's there's \
     that's let's doesn't didn't isn't wasn't won't wouldn't human assistant user system"
        .split_whitespace()
        .collect()
});

/// The `n` terms of each class with the highest class-based TF-IDF: tf = the term's count in
/// the class over the class's terms; idf = ln(1 + A / f), A the mean number of terms per class,
/// f the term's count over every class (BERTopic's c-TF-IDF).
pub fn top_terms(classes: &BTreeMap<String, Vec<&str>>, n: usize) -> BTreeMap<String, Vec<String>> {
    let counts: BTreeMap<&String, BTreeMap<String, f64>> = classes
        .iter()
        .map(|(class, texts)| {
            let mut c: BTreeMap<String, f64> = BTreeMap::new();
            for text in texts {
                for term in terms(text) {
                    *c.entry(term).or_default() += 1.0;
                }
            }
            (class, c)
        })
        .collect();
    let mut overall: HashMap<&str, f64> = HashMap::new();
    for c in counts.values() {
        for (term, n) in c {
            *overall.entry(term.as_str()).or_default() += n;
        }
    }
    let total: f64 = overall.values().sum();
    let mean_per_class = total / counts.len().max(1) as f64;
    counts
        .iter()
        .map(|(class, c)| {
            let size: f64 = c.values().sum::<f64>().max(1.0);
            let mut scored: Vec<(&String, f64)> = c
                .iter()
                // A term seen once says nothing about a class.
                .filter(|(_, n)| **n >= 2.0)
                .map(|(term, n)| {
                    let f = overall.get(term.as_str()).copied().unwrap_or(1.0);
                    (term, n / size * (1.0 + mean_per_class / f).ln())
                })
                .collect();
            scored.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(b.0)));
            (
                (*class).clone(),
                scored.into_iter().take(n).map(|(t, _)| t.clone()).collect(),
            )
        })
        .collect()
}

/// The rows of every window in `windows` (keyed by model and window start), the window's prompts
/// read from `captures/` of its `days`.
pub async fn rows(
    warehouse: &Warehouse,
    windows: &BTreeMap<(String, NaiveDate), TopicWindow>,
    days_of: impl Fn(NaiveDate) -> Vec<NaiveDate>,
) -> Result<BTreeMap<(String, NaiveDate), Vec<TopicRow>>, super::AnalyseError> {
    let days: BTreeSet<(String, NaiveDate)> = windows
        .keys()
        .flat_map(|(model, start)| days_of(*start).into_iter().map(|d| (model.clone(), d)))
        .collect();
    let wanted: HashSet<&str> = windows
        .values()
        .flat_map(|w| w.assigned.iter().map(|(id, _, _)| &**id))
        .collect();
    let asked = asked(warehouse, &days, &wanted).await?;
    Ok(windows
        .iter()
        .map(|((model, start), window)| {
            ((model.clone(), *start), window_rows(model, window, &asked))
        })
        .collect())
}

fn window_rows(model: &str, window: &TopicWindow, asked: &HashMap<String, Asked>) -> Vec<TopicRow> {
    let names: Vec<String> = (0..window.topics.centroids.len())
        .map(topic_name)
        .chain([NOVEL.to_string()])
        .collect();
    let name_of = |t: &Option<usize>| t.map_or(NOVEL.to_string(), topic_name);
    let n = window.assigned.len() as f64;
    let total_tokens: f64 = window
        .assigned
        .iter()
        .filter_map(|(id, _, _)| asked.get(&**id).map(|a| a.tokens))
        .sum();
    let mut members: BTreeMap<String, Vec<&Assigned>> = BTreeMap::new();
    for a in &window.assigned {
        members.entry(name_of(&a.1)).or_default().push(a);
    }
    let texts: BTreeMap<String, Vec<&str>> = members
        .iter()
        .map(|(name, items)| {
            (
                name.clone(),
                items
                    .iter()
                    .filter_map(|(id, _, _)| asked.get(&**id).map(|a| a.prompt.as_str()))
                    .collect(),
            )
        })
        .collect();
    let terms = top_terms(&texts, 5);
    names
        .into_iter()
        .map(|name| {
            let items = members.get(&name).cloned().unwrap_or_default();
            let judged: Vec<(Option<f64>, bool)> = items
                .iter()
                .filter_map(|(id, _, _)| window.judged.get(&**id).copied())
                .collect();
            let composites: Vec<f64> = judged.iter().filter_map(|(c, _)| *c).collect();
            // `+ 0.0`: an empty sum of floats is -0.0.
            let tokens: f64 = items
                .iter()
                .filter_map(|(id, _, _)| asked.get(&**id).map(|a| a.tokens))
                .sum::<f64>()
                + 0.0;
            let cost_share = (total_tokens > 0.0).then(|| tokens / total_tokens);
            // Representative: nearest the centre; for the novel ones, the farthest out.
            let mut ordered = items.clone();
            ordered.sort_by(|a, b| a.2.total_cmp(&b.2).then_with(|| a.0.cmp(&b.0)));
            if name == NOVEL {
                ordered.reverse();
            }
            let examples = ordered
                .iter()
                .filter_map(|(id, _, _)| asked.get(&**id))
                .take(3)
                .map(|a| crate::redact::clip(&crate::redact::redact(a.prompt.trim()), 240))
                .collect();
            TopicRow {
                model: model.to_string(),
                epoch: window.epoch,
                share: if n > 0.0 { items.len() as f64 / n } else { 0.0 },
                baseline_share: window.baseline_shares.get(&name).copied().unwrap_or(0.0),
                prompts: items.len() as u64,
                composite_mean: (!composites.is_empty())
                    .then(|| composites.iter().sum::<f64>() / composites.len() as f64),
                judge_error_rate: (!judged.is_empty()).then(|| {
                    judged.iter().filter(|(_, e)| *e).count() as f64 / judged.len() as f64
                }),
                cost_usd: cost_share.zip(window.cost_usd).map(|(s, c)| s * c),
                cost_share,
                top_terms: terms.get(&name).cloned().unwrap_or_default(),
                examples,
                topic: name,
            }
        })
        .collect()
}

/// The `topics` part of one window: the rows of every model.
pub fn frame(
    rows: &[&TopicRow],
    window_days: u32,
    rubric: &str,
    judge: &str,
    analysed_at: i64,
) -> PolarsResult<DataFrame> {
    let height = rows.len();
    let float = |f: &dyn Fn(&TopicRow) -> Option<f64>| -> Vec<Option<f64>> {
        rows.iter()
            .map(|r| f(r).filter(|v| v.is_finite()))
            .collect()
    };
    let epoch_days: Vec<i32> = rows
        .iter()
        .map(|r| {
            (r.epoch - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default()).num_days() as i32
        })
        .collect();
    DataFrame::new(
        height,
        vec![
            Column::new(
                col::MODEL.into(),
                rows.iter().map(|r| r.model.as_str()).collect::<Vec<_>>(),
            ),
            Column::new(col::WINDOW_DAYS.into(), vec![window_days; height]),
            Series::new(col::EPOCH.into(), epoch_days)
                .cast(&DataType::Date)?
                .into(),
            Column::new(
                col::TOPIC.into(),
                rows.iter().map(|r| r.topic.as_str()).collect::<Vec<_>>(),
            ),
            Column::new(
                col::PROMPTS.into(),
                rows.iter().map(|r| r.prompts).collect::<Vec<_>>(),
            ),
            Column::new(col::SHARE.into(), float(&|r| Some(r.share))),
            Column::new(
                col::BASELINE_SHARE.into(),
                float(&|r| Some(r.baseline_share)),
            ),
            Column::new(col::COMPOSITE_MEAN.into(), float(&|r| r.composite_mean)),
            Column::new(col::JUDGE_ERROR_RATE.into(), float(&|r| r.judge_error_rate)),
            Column::new(col::COST_SHARE.into(), float(&|r| r.cost_share)),
            Column::new(col::COST_USD.into(), float(&|r| r.cost_usd)),
            Column::new(
                col::TOP_TERMS.into(),
                rows.iter()
                    .map(|r| r.top_terms.join(", "))
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                col::EXAMPLES.into(),
                rows.iter()
                    .map(|r| serde_json::to_string(&r.examples).unwrap_or_default())
                    .collect::<Vec<_>>(),
            ),
            text_constant(col::RUBRIC, rubric, height),
            text_constant(col::JUDGE, judge, height),
            utc_micros(col::ANALYSED_AT, vec![analysed_at; height]),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_based_tf_idf_names_what_sets_a_topic_apart() {
        let mut classes: BTreeMap<String, Vec<&str>> = BTreeMap::new();
        classes.insert(
            "topic-1".into(),
            vec![
                "How do I reset my router password?",
                "My router keeps dropping the wifi connection",
                "Which router settings fix slow wifi?",
            ],
        );
        classes.insert(
            "topic-2".into(),
            vec![
                "Write a poem about the sea",
                "Write a short poem about autumn leaves",
                "A poem for my sister's wedding, please",
            ],
        );
        assert!(STOP_WORDS.contains("his") && STOP_WORDS.contains("how"));
        assert!(STOP_WORDS.contains("human") && STOP_WORDS.contains("the"));
        let terms = top_terms(&classes, 2);
        assert_eq!(terms["topic-1"], vec!["router", "wifi"]);
        assert_eq!(terms["topic-2"], vec!["poem", "write"]);
    }

    #[test]
    fn the_frame_has_the_schema_columns_in_order() {
        let row = TopicRow {
            model: "m".into(),
            epoch: NaiveDate::from_ymd_opt(2026, 10, 5).unwrap(),
            topic: "topic-1".into(),
            prompts: 3,
            share: 0.5,
            baseline_share: 0.25,
            composite_mean: Some(0.8),
            judge_error_rate: Some(0.0),
            cost_share: Some(0.4),
            cost_usd: None,
            top_terms: vec!["router".into()],
            examples: vec!["How do I reset my router?".into()],
        };
        let df = frame(&[&row], 1, "quality@1", "offline:1", 0).unwrap();
        let names: Vec<&str> = df.get_column_names().iter().map(|n| n.as_str()).collect();
        assert_eq!(names, col::COLUMNS);
    }
}
