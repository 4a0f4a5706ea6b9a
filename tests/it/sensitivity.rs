//! Sensitivity on real replies with a known change point: a component answers with good replies
//! every day, and from day 30 a share of its traffic goes to a worse model (a canary); a twin
//! component never changes. The judge is a stub replaying recorded verdicts on each reply
//! (`StubConfig::recorded`). The canary must alert within 3 days of its onset at 150 judged a
//! day, the twin must stay quiet for its 37 days, and neither may alert before the onset.
//!
//! - hh-rlhf (committed, MIT): `chosen` replies, 20% replaced by the `rejected` ones from the
//!   onset; crowdworkers' choice replayed as levels 4 (chosen) and 2 (rejected) with a judge's
//!   noise of its own (30% of levels one off).
//! - AlpacaEval (`../shared/datasets`, CC-BY-NC: never committed): GPT-4's answers, 30% replaced
//!   by Llama-2-7B-chat's; GPT-4's recorded pairwise verdicts against text-davinci-003 replayed
//!   as levels 5 (better), 3 (tie), 1 (worse): a composite drop of about 0.07 (0.95 -> 0.88),
//!   about 4 standard errors of a day's mean at 150 a day. These scores are far from normal
//!   (95% at the top), which raises the CUSUM's level for drops; at 25% (a drop of 0.06) this
//!   seeded run is caught on the fourth day. `examples/sensitivity.rs` states the detection
//!   rates by drop and volume (BENCHMARKS.md), and every report states the model's own.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use chrono::NaiveDate;

use crate::support::*;

const DAYS: usize = 37;
const ONSET: usize = 30;
const PER_DAY: usize = 150;

/// (prompt, good reply, worse reply) and the recorded level of every reply.
struct Scenario {
    items: Vec<(String, String, String)>,
    levels: HashMap<String, u32>,
    noise: f64,
}

fn first_day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 9, 1).unwrap()
}

fn day_of(index: usize) -> NaiveDate {
    first_day() + chrono::Days::new(index as u64)
}

/// Writes `DAYS` days of captures for the twin (`steady`) and the `canary` (a share `worse` of
/// its replies from the worse model from day `ONSET`) under `root`, in the S3 layout.
fn write_captures(root: &Path, scenario: &Scenario, worse: f64) {
    let mut draws = Draws(20_261_130);
    for component in ["steady", "canary"] {
        for d in 0..DAYS {
            let day = day_of(d);
            let dir = root
                .join("endpoint")
                .join(component)
                .join(day.format("%Y/%m/%d/12").to_string());
            std::fs::create_dir_all(&dir).unwrap();
            let mut lines = Vec::with_capacity(PER_DAY);
            for i in 0..PER_DAY {
                let (prompt, good, bad) = &scenario.items[draws.below(scenario.items.len())];
                let changed = component == "canary" && d >= ONSET && draws.chance(worse);
                let reply = if changed { bad } else { good };
                lines.push(record(&format!("{component}-{d}-{i}"), prompt, reply, day));
            }
            std::fs::write(dir.join("12-00-000-capture.jsonl"), lines.join("\n") + "\n").unwrap();
        }
    }
}

/// What the analyse made of a scenario: per component the days (indexes) with a score metric
/// alerting, with the metrics and tests; and the canary's baseline on its last day, as `drift/`
/// describes it.
struct Found {
    alerts: HashMap<String, Vec<(usize, String, String)>>,
    canary_last_baseline: String,
}

/// Ingests, scores (the stub replaying the scenario's levels) and analyses the days.
fn alerts(scenario: &Scenario, worse: f64) -> Found {
    let dir = tempfile::tempdir().unwrap();
    let capture = dir.path().join("capture");
    write_captures(&capture, scenario, worse);
    let server = judge_server(StubConfig {
        recorded: Some(std::sync::Arc::new(scenario.levels.clone())),
        noise: scenario.noise,
        seed: 11,
        ..StubConfig::default()
    });
    let wh = dir.path().join("wh");
    let config = dir.path().join("evalwatch.toml");
    std::fs::write(
        &config,
        format!(
            "[warehouse]\npath = {:?}\n[ingest]\nsource = {:?}\n[score]\nrubric = {:?}\n\
             [judge]\nkind = \"openai\"\nmodel = \"recorded\"\nurl = \"{}/v1\"\n\
             requests-per-minute = 6000000\ntokens-per-minute = 10000000000\nconcurrency = 32\n",
            wh.display().to_string(),
            capture.display().to_string(),
            repo_root()
                .join("rubrics/quality.toml")
                .display()
                .to_string(),
            server.url
        ),
    )
    .unwrap();
    let window = [
        "--since".to_string(),
        first_day().to_string(),
        "--until".to_string(),
        day_of(DAYS - 1).to_string(),
    ];
    for stage in ["ingest", "score", "analyse"] {
        let out = run(evalwatch()
            .arg("--config")
            .arg(&config)
            .arg(stage)
            .args(&window));
        assert!(
            matches!(out.status.code(), Some(0) | Some(3)),
            "{stage}: {}",
            stderr(&out)
        );
    }
    let drift = read_table(&wh, "drift");
    let (models, metrics, tests, verdicts) = (
        strings(&drift, "model"),
        strings(&drift, "metric"),
        strings(&drift, "test"),
        strings(&drift, "verdict"),
    );
    let dates = day_numbers(&drift);
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
    let baselines = strings(&drift, "baseline");
    let last = (day_of(DAYS - 1) - epoch).num_days() as i32;
    let canary_last_baseline = (0..drift.height())
        .find(|i| models[*i] == "canary" && dates[*i] == last)
        .map(|i| baselines[i].clone())
        .unwrap_or_default();
    let mut out: HashMap<String, Vec<(usize, String, String)>> = HashMap::new();
    for i in 0..drift.height() {
        if verdicts[i] == "alert" && metrics[i].starts_with("score.") {
            let day = epoch + chrono::Days::new(dates[i] as u64);
            let index = (day - first_day()).num_days() as usize;
            out.entry(models[i].clone()).or_default().push((
                index,
                metrics[i].clone(),
                tests[i].clone(),
            ));
        }
    }
    Found {
        alerts: out,
        canary_last_baseline,
    }
}

/// The canary alerts within 3 days of its onset and not before; the twin never. The canary's
/// alerted days stay out of its baseline, replaced by days before the onset: `drift/` says so.
fn assert_caught(found: &Found) {
    let baseline = &found.canary_last_baseline;
    // Its range is the 7 days before the last; every one from the onset alerted and is out, the
    // newest clean days before the range take their places.
    for d in ONSET..DAYS - 1 {
        assert!(
            baseline.contains(&format!("{} (alerted)", day_of(d))),
            "the canary's last baseline: {baseline}"
        );
    }
    assert!(
        baseline.contains(&format!(", with {}", day_of(DAYS - 9))),
        "the canary's last baseline: {baseline}"
    );
    let found = &found.alerts;
    let steady = found.get("steady").cloned().unwrap_or_default();
    assert!(
        steady.is_empty(),
        "false alarms in {DAYS} stable days: {steady:?}"
    );
    let canary = found.get("canary").cloned().unwrap_or_default();
    let days: BTreeSet<usize> = canary.iter().map(|(d, _, _)| *d).collect();
    assert!(
        days.iter().all(|d| *d >= ONSET),
        "alerts before the onset: {canary:?}"
    );
    let first = days.first().copied();
    assert!(
        first.is_some_and(|d| d <= ONSET + 2),
        "not caught within 3 days of day {ONSET}: {canary:?}"
    );
}

#[test]
fn a_canary_of_rejected_hh_rlhf_replies_is_caught_within_three_days() {
    let text =
        std::fs::read_to_string(repo_root().join("datasets/pairs/hh_rlhf_harmless.labels.jsonl"))
            .unwrap();
    let mut scenario = Scenario {
        items: Vec::new(),
        levels: HashMap::new(),
        noise: 0.3,
    };
    for line in text.lines() {
        let r: serde_json::Value = serde_json::from_str(line).unwrap();
        let (a, b) = (
            r["response_a"].as_str().unwrap(),
            r["response_b"].as_str().unwrap(),
        );
        let (chosen, rejected) = if r["label"] == "a" { (a, b) } else { (b, a) };
        let key = evalwatch::judge::stub::recorded_key;
        scenario.levels.insert(key(chosen), 4);
        scenario.levels.insert(key(rejected), 2);
        scenario.items.push((
            r["prompt"].as_str().unwrap().to_string(),
            chosen.to_string(),
            rejected.to_string(),
        ));
    }
    assert_caught(&alerts(&scenario, 0.2));
}

#[test]
#[ignore = "needs ../shared/datasets (AlpacaEval, CC-BY-NC: never committed); ./scripts/test runs it where that folder is"]
fn a_canary_of_a_weaker_alpacaeval_model_is_caught_within_three_days() {
    let results = shared_data("real/alpaca_eval/results");
    // The recorded verdict of GPT-4 on each output of a model against text-davinci-003.
    let verdicts = |model: &str| -> HashMap<String, (String, u32)> {
        let path = results
            .join(model)
            .join("alpaca_eval_gpt4/annotations.json");
        let all: Vec<serde_json::Value> =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        all.iter()
            .filter_map(|a| {
                let preference = a["preference"].as_f64()?;
                let level = if preference == 2.0 {
                    5
                } else if preference == 1.0 {
                    1
                } else {
                    3
                };
                Some((
                    a["instruction"].as_str()?.to_string(),
                    (a["output_2"].as_str()?.to_string(), level),
                ))
            })
            .collect()
    };
    let (strong, weak) = (verdicts("gpt4"), verdicts("llama-2-7b-chat-hf"));
    let mut scenario = Scenario {
        items: Vec::new(),
        levels: HashMap::new(),
        noise: 0.0,
    };
    let key = evalwatch::judge::stub::recorded_key;
    let mut instructions: Vec<&String> = strong.keys().filter(|i| weak.contains_key(*i)).collect();
    instructions.sort();
    for instruction in instructions {
        let ((good, lg), (bad, lb)) = (&strong[instruction], &weak[instruction]);
        scenario.levels.insert(key(good), *lg);
        scenario.levels.insert(key(bad), *lb);
        scenario
            .items
            .push((instruction.clone(), good.clone(), bad.clone()));
    }
    assert!(scenario.items.len() > 800, "{}", scenario.items.len());
    assert_caught(&alerts(&scenario, 0.3));
}

/// `evalwatch plan`: from a week of judgments by a priced judge (the stub reports token usage),
/// each model's judgments a day to catch a 0.03 drop of the composite within 3 days, costed
/// with the judge's recorded cost per judgment; below the CUSUM's least effect, no volume is
/// enough and it says why.
#[test]
fn plan_says_how_many_judgments_a_drop_needs_and_what_they_cost() {
    let wh = ingested("2026-10-01", "2026-10-07");
    let server = judge_server(StubConfig::default());
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("priced.toml");
    std::fs::write(
        &config,
        format!(
            "[warehouse]\npath = {:?}\n[score]\nrubric = {:?}\n[judge]\nkind = \"openai\"\n\
             model = \"m\"\nurl = \"{}/v1\"\nrequests-per-minute = 600000\n\
             tokens-per-minute = 1000000000\ninput-usd-per-million-tokens = 3.0\n\
             output-usd-per-million-tokens = 15.0\n",
            wh.path().display().to_string(),
            repo_root()
                .join("rubrics/quality.toml")
                .display()
                .to_string(),
            server.url
        ),
    )
    .unwrap();
    let week = ["--since", "2026-10-01", "--until", "2026-10-07"];
    let out = run(evalwatch()
        .arg("--config")
        .arg(&config)
        .arg("score")
        .args(week));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let plan = |detect: &str| {
        let out = run(evalwatch()
            .arg("--config")
            .arg(&config)
            .args(["plan", "--detect", detect, "--within", "3d"])
            .args(week));
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        (stage_summary(&out, "plan"), stderr(&out))
    };
    let (s, log) = plan("0.03");
    assert_eq!(s["cost_source"], "recorded", "{s}");
    let models = s["models"].as_array().unwrap();
    assert_eq!(models.len(), 2, "{s}");
    for m in models {
        let needed = m["needed_per_day"].as_f64().unwrap();
        let now = m["judged_per_day"].as_f64().unwrap();
        // About 67 judged a day see drops of about 0.05: a 0.03 drop needs more.
        assert!(m["detectable_now"].as_f64().unwrap() > 0.03, "{m}");
        assert!(needed > now, "{m}");
        let each = m["cost_per_judgment_usd"].as_f64().unwrap();
        assert!(each > 0.0, "{m}");
        assert!(
            (m["cost_per_day_usd"].as_f64().unwrap() - needed * each).abs() < 1e-9,
            "{m}"
        );
    }
    assert!(log.contains("judged a day"), "{log}");
    let (s, log) = plan("0.005");
    assert!(s["models"][0]["needed_per_day"].is_null(), "{s}");
    assert!(log.contains("sequential-min-effect"), "{log}");
    // A dry run states what its plan would let the monitor see, from the judgments before it.
    let out = run(evalwatch().arg("--config").arg(&config).args([
        "score",
        "--dry-run",
        "--since",
        "2026-10-07",
        "--until",
        "2026-10-07",
    ]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let dry = stage_summary(&out, "score");
    let seen = dry["sensitivity"].as_array().unwrap();
    assert_eq!(seen.len(), 2, "{dry}");
    for m in seen {
        let (one, three, seven) = (
            m["within_1d"].as_f64().unwrap(),
            m["within_3d"].as_f64().unwrap(),
            m["within_7d"].as_f64().unwrap(),
        );
        assert!(one > three && three > seven && seven > 0.0, "{m}");
        assert!(m["spread_from"].as_u64().unwrap() > 300, "{m}");
    }
    assert!(
        stderr(&out).contains("the monitor would see"),
        "{}",
        stderr(&out)
    );
    // A metric the rubric does not have is a usage error.
    let out = run(evalwatch()
        .arg("--config")
        .arg(&config)
        .args(["plan", "--detect", "0.03", "--metric", "kindness"]));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}
