//! Prompt topic drift on real prompts: a component answers hh-rlhf harmless-base prompts (their
//! last human turn, with the crowdworkers' chosen reply; MIT, `datasets/compare/`) for a week,
//! then half of its traffic becomes LLMBar Natural instructions (with their first output; MIT,
//! `datasets/pairs/`): users started asking for something else, and the answering side is the
//! same. The embed stage embeds every prompt and reply with the real model; the analyse stage
//! must raise a `topic.*` or `embedding.prompt` alert on the first shifted day and none on the
//! stable days, the `topics` table must show the new prompts as novel, and the report must say
//! what users asked.

use std::collections::BTreeSet;
use std::path::Path;

use chrono::NaiveDate;

use crate::support::*;

const DAYS: usize = 10;
/// The first shifted day (2026-09-08, a Tuesday; topics are fitted per ISO week from the
/// Monday's baseline).
const SHIFT: usize = 7;
const PER_DAY: usize = 40;

fn day_of(index: usize) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 9, 1).unwrap() + chrono::Days::new(index as u64)
}

/// The last human turn of an hh-rlhf transcript.
fn last_human_turn(transcript: &str) -> String {
    let last = transcript.rsplit("Human: ").next().unwrap_or(transcript);
    last.split("\n\nAssistant:")
        .next()
        .unwrap_or(last)
        .trim()
        .to_string()
}

/// Prompts with their replies.
type Pairs = Vec<(String, String)>;

/// (prompt, reply) of the usual traffic and of the new one.
fn items() -> (Pairs, Pairs) {
    let read = |path: &str| -> Vec<serde_json::Value> {
        std::fs::read_to_string(repo_root().join(path))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let usual = read("datasets/compare/baseline.jsonl")
        .iter()
        .map(|r| {
            (
                last_human_turn(r["prompt"].as_str().unwrap()),
                r["response"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let new = read("datasets/pairs/llmbar_natural.labels.jsonl")
        .iter()
        .map(|r| {
            (
                r["prompt"].as_str().unwrap().to_string(),
                r["response_a"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    (usual, new)
}

fn write_captures(root: &Path, usual: &[(String, String)], new: &[(String, String)]) {
    let mut draws = Draws(20_261_130);
    for d in 0..DAYS {
        let day = day_of(d);
        let dir = root
            .join("endpoint/assistant")
            .join(day.format("%Y/%m/%d/12").to_string());
        std::fs::create_dir_all(&dir).unwrap();
        let lines: Vec<String> = (0..PER_DAY)
            .map(|i| {
                let (prompt, reply) = if d >= SHIFT && i % 2 == 1 {
                    &new[draws.below(new.len())]
                } else {
                    &usual[draws.below(usual.len())]
                };
                record(&format!("assistant-{d}-{i}"), prompt, reply, day)
            })
            .collect();
        std::fs::write(dir.join("12-00-000-capture.jsonl"), lines.join("\n") + "\n").unwrap();
    }
}

#[test]
fn a_new_topic_alerts_on_its_first_day_and_the_report_says_what_users_asked() {
    let dir = tempfile::tempdir().unwrap();
    let (usual, new) = items();
    write_captures(&dir.path().join("capture"), &usual, &new);
    let wh = dir.path().join("wh");
    let config = dir.path().join("evalwatch.toml");
    std::fs::write(
        &config,
        format!(
            "[warehouse]\npath = {:?}\n[window]\nsince = \"{}\"\nuntil = \"{}\"\n\
             [ingest]\nsource = {:?}\n",
            wh.display().to_string(),
            day_of(0),
            day_of(DAYS - 1),
            dir.path().join("capture").display().to_string(),
        ),
    )
    .unwrap();
    let out = run(embedding(&mut evalwatch())
        .arg("--config")
        .arg(&config)
        .arg("run"));
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(
        count(&stage_summary(&out, "embed"), "rows"),
        (2 * DAYS * PER_DAY) as u64
    );

    // Alerts on what users asked: on the first shifted day, and on no stable day.
    let drift = read_table(&wh, "drift");
    let (metrics, verdicts) = (strings(&drift, "metric"), strings(&drift, "verdict"));
    let days = day_numbers(&drift);
    let alerted: BTreeSet<(i32, String)> = (0..drift.height())
        .filter(|i| verdicts[*i] == "alert")
        .filter(|i| metrics[*i].starts_with("topic.") || metrics[*i] == "embedding.prompt")
        .map(|i| (days[i], metrics[i].clone()))
        .collect();
    let number =
        |d: NaiveDate| (d - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()).num_days() as i32;
    let first_shifted = number(day_of(SHIFT));
    assert!(
        alerted.iter().any(|(d, _)| *d == first_shifted),
        "no alert on what users asked on {}: {alerted:?}",
        day_of(SHIFT)
    );
    assert!(
        alerted.iter().all(|(d, _)| *d >= first_shifted),
        "an alert on a stable day: {alerted:?}"
    );
    let topics = read_table(&wh, "topics");
    let (topic, examples) = (strings(&topics, "topic"), strings(&topics, "examples"));
    let topic_days = day_numbers(&topics);
    let (shares, baseline_shares) = (floats(&topics, "share"), floats(&topics, "baseline_share"));
    let novel = (0..topics.height())
        .find(|i| topic_days[*i] == first_shifted && topic[*i] == "novel")
        .expect("a novel row on the first shifted day");
    // Half the day's prompts are new; many of them fit no topic of the baseline (topics of
    // 80 prompts are wide: the rest of the new ones land in them and move their shares).
    // (On 40 prompts a day one prompt is 2.5%: the share is held to a multiple of the
    // baseline's, not to a figure a rounding of the vectors can move.)
    assert!(
        shares[novel] >= 3.0 * baseline_shares[novel] && shares[novel] >= 0.05,
        "novel share {} (baseline {})",
        shares[novel],
        baseline_shares[novel]
    );
    // Its examples are the new instructions.
    let shown: Vec<String> = serde_json::from_str(&examples[novel]).unwrap();
    assert_eq!(shown.len(), 3);
    for e in &shown {
        let start: String = e.chars().take(30).collect();
        assert!(
            new.iter().any(|(p, _)| p.trim().starts_with(&start)),
            "{e:?} is not an LLMBar instruction"
        );
    }

    // Both new tables as Athena and DuckDB read them.
    let catalog = run(evalwatch().arg("--config").arg(&config).args([
        "catalog",
        "--athena",
        "--database",
        "ew",
    ]));
    assert_eq!(catalog.status.code(), Some(0), "{}", stderr(&catalog));
    crate::deploy::assert_catalog_matches(
        &wh,
        &stdout(&catalog),
        &[
            (
                "embeddings",
                evalwatch::schema::embeddings::COLUMNS,
                "`model` string, `date` date",
            ),
            ("topics", evalwatch::schema::topics::COLUMNS, "`date` date"),
        ],
    );

    // The report's panel.
    let report = stage_summary(&out, "report");
    let page = std::fs::read_to_string(report["index"].as_str().unwrap()).unwrap();
    assert!(page.contains("What users asked"), "no topics panel");
    assert!(
        page.contains("fit no topic of the baseline"),
        "no new-topic alert explained"
    );
}
