//! `evalwatch compare` on the committed fixture (hh-rlhf, MIT: the same 160 prompts answered with
//! the reply people judged less harmful, and with the other one), judged through the real OpenAI
//! client by the judge stub: every pair judged once per side, a re-run pays for nothing, the
//! figures match the per-prompt table, gates pass and fail with a line each (exit 3), unmatched
//! prompts and bad lines are counted and named, an unknown figure is a usage error. Pairwise, in
//! both orders: a consistent judge shows no position inconsistency, a judge that always prefers
//! the first reply yields 100% inconsistency and a tie, never a fake win.

use std::path::{Path, PathBuf};

use polars::prelude::*;

use crate::support::*;

fn fixture(name: &str) -> std::path::PathBuf {
    repo_root().join("datasets/compare").join(name)
}

/// A config for `warehouse` whose judge is paced for the stub (which answers at once), not for a
/// real account's quota.
fn stub_paced_config(warehouse: &Path) -> PathBuf {
    let config = warehouse.join("evalwatch.toml");
    std::fs::write(
        &config,
        format!(
            "[warehouse]\npath = {:?}\n[score]\nrubric = {:?}\n[judge]\n\
             requests-per-minute = 60000\ntokens-per-minute = 100000000\n",
            warehouse.display().to_string(),
            repo_root()
                .join("rubrics/quality.toml")
                .display()
                .to_string()
        ),
    )
    .unwrap();
    config
}

fn compare(
    warehouse: &Path,
    judge: &str,
    candidate: &Path,
    gates: &[&str],
) -> std::process::Output {
    compare_with(warehouse, judge, candidate, gates, &[])
}

fn compare_with(
    warehouse: &Path,
    judge: &str,
    candidate: &Path,
    gates: &[&str],
    extra: &[&str],
) -> std::process::Output {
    let config = stub_paced_config(warehouse);
    let mut cmd = evalwatch();
    cmd.arg("--config")
        .arg(&config)
        .args(["compare", "--judge", judge, "--baseline-file"])
        .arg(fixture("baseline.jsonl"))
        .arg("--candidate-file")
        .arg(candidate);
    for g in gates {
        cmd.args(["--gate", g]);
    }
    cmd.args(extra);
    run(&mut cmd)
}

#[test]
fn two_sets_of_replies_are_compared_pair_by_pair_and_gated() {
    let server = judge_server(StubConfig::default());
    let judge = format!("openai:judge-7b@{}/v1", server.url);
    let wh = tempfile::tempdir().unwrap();
    let out = compare(
        wh.path(),
        &judge,
        &fixture("candidate.jsonl"),
        &["pairs.matched >= 160", "composite.delta >= -0.5"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let s = stage_summary(&out, "compare");
    assert_eq!(count(&s, "matched"), 160);
    assert_eq!(count(&s, "unscored_pairs"), 0);
    // One call per reply per side, through the score stage.
    assert_eq!(count(&s, "judge_calls"), 320);
    assert_eq!(server.stub.stats().requests, 320);
    assert!(s["passed"].as_bool().unwrap());

    // The figures are the per-prompt table's.
    let pairs = PathBuf::from(s["pairs_parquet"].as_str().unwrap());
    let df = ParquetReader::new(std::fs::File::open(&pairs).unwrap())
        .finish()
        .unwrap();
    assert_eq!(df.height(), 160);
    let column = |name: &str| -> Vec<f64> {
        df.column(name)
            .unwrap()
            .f64()
            .unwrap()
            .iter()
            .map(|v| v.unwrap())
            .collect()
    };
    for metric in ["composite", "safety", "relevance"] {
        let (b, c) = (
            column(&format!("baseline_{metric}")),
            column(&format!("candidate_{metric}")),
        );
        let delta: f64 = b.iter().zip(&c).map(|(b, c)| c - b).sum::<f64>() / 160.0;
        let worse = b.iter().zip(&c).filter(|(b, c)| c < b).count() as f64 / 160.0;
        let p = &s["pointwise"][metric];
        assert!(
            (p["delta"].as_f64().unwrap() - delta).abs() < 1e-12,
            "{metric}"
        );
        assert!(
            (p["worse_share"].as_f64().unwrap() - worse).abs() < 1e-12,
            "{metric}"
        );
        assert!(p["ci_low"].as_f64().unwrap() <= delta && delta <= p["ci_high"].as_f64().unwrap());
        let pv = p["p_value"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&pv), "{metric}: {pv}");
    }
    // Latency from the records: the candidate is faster.
    assert!(s["figures"]["latency.ratio"].as_f64().unwrap() < 1.0);

    // Again, with a gate that fails: nothing is judged twice, exit 3, a line for the gate.
    let again = compare(
        wh.path(),
        &judge,
        &fixture("candidate.jsonl"),
        &["safety.delta >= 0.5", "pairs.matched >= 160"],
    );
    assert_eq!(again.status.code(), Some(3), "{}", stderr(&again));
    let s2 = stage_summary(&again, "compare");
    assert_eq!(count(&s2, "judge_calls"), 0);
    assert_eq!(server.stub.stats().requests, 320);
    assert_eq!(s2["pointwise"], s["pointwise"]);
    assert!(
        stderr(&again).contains("GATE FAILED: safety.delta >= 0.5"),
        "{}",
        stderr(&again)
    );
    assert!(!stderr(&again).contains("GATE FAILED: pairs.matched"));
    let md = std::fs::read_to_string(s2["summary_md"].as_str().unwrap()).unwrap();
    assert!(
        md.contains("GATE FAILED") && md.contains("| safety |"),
        "{md}"
    );
    // Other gates, another page: the first one is still there, as it was.
    assert_ne!(s2["summary_md"], s["summary_md"]);
    let first = std::fs::read_to_string(s["summary_md"].as_str().unwrap()).unwrap();
    assert!(!first.contains("GATE FAILED"), "{first}");
    let page = std::fs::read_to_string(s2["index"].as_str().unwrap()).unwrap();
    assert!(page.contains("gate failed") && page.contains("<code>safety.delta &gt;= 0.5</code>"));
    assert_eq!(
        page.matches(r#"<circle class="point""#).count(),
        4,
        "one per metric"
    );
    assert!(!page.contains("src=\"http") && !page.contains("<link"));
    assert!(
        md.contains("GATE FAILED") && md.contains("| safety |"),
        "{md}"
    );

    // A prompt only the candidate answered and a broken line: counted and named.
    let dir = tempfile::tempdir().unwrap();
    let extra = dir.path().join("candidate.jsonl");
    let mut text = std::fs::read_to_string(fixture("candidate.jsonl")).unwrap();
    text.push_str(
        "{\"id\": \"new-1\", \"prompt\": \"Human: a new question\", \"response\": \"an answer\"}\n",
    );
    text.push_str("{\"id\": \"broken\"\n");
    std::fs::write(&extra, text).unwrap();
    let out = compare(wh.path(), &judge, &extra, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let s3 = stage_summary(&out, "compare");
    assert_eq!(count(&s3, "matched"), 160);
    assert_eq!(count(&s3, "unmatched_candidate"), 1);
    assert!(
        s3["unmatched_examples"][0]
            .as_str()
            .unwrap()
            .contains("new-1")
    );
    assert!(
        s3["rejected_lines"][0]
            .as_str()
            .unwrap()
            .contains("candidate.jsonl:162: not JSON"),
        "{}",
        s3["rejected_lines"]
    );

    // A gate on a figure that does not exist: a usage error naming the ones that do.
    let bad = compare(
        wh.path(),
        &judge,
        &fixture("candidate.jsonl"),
        &["tone.delta > 0"],
    );
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    assert!(
        stderr(&bad).contains("no figure `tone.delta`") && stderr(&bad).contains("safety.delta")
    );
}

#[test]
fn pairwise_judging_in_both_orders_exposes_a_judge_with_position_bias() {
    let server = judge_server(StubConfig::default());
    let judge = format!("openai:judge-7b@{}/v1", server.url);
    let wh = tempfile::tempdir().unwrap();
    let candidate = fixture("candidate.jsonl");
    let out = compare_with(wh.path(), &judge, &candidate, &[], &["--pairwise"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let s = stage_summary(&out, "compare");
    let p = &s["pairwise"];
    assert_eq!(count(p, "n"), 160);
    assert_eq!(
        count(p, "wins") + count(p, "ties") + count(p, "losses"),
        160
    );
    assert_eq!(p["position_inconsistency"], 0.0, "{p}");
    // 2 x 160 pointwise judgments and 2 x 160 pairwise ones, each once.
    assert_eq!(count(&s, "judge_calls"), 640);
    assert_eq!(server.stub.stats().requests, 640);
    let again = compare_with(wh.path(), &judge, &candidate, &[], &["--pairwise"]);
    assert_eq!(count(&stage_summary(&again, "compare"), "judge_calls"), 0);
    assert_eq!(stage_summary(&again, "compare")["pairwise"], *p);

    // A judge that always prefers the reply it sees first.
    let biased = judge_server(StubConfig {
        prefer_first: true,
        ..StubConfig::default()
    });
    let judge = format!("openai:judge-7b@{}/v1", biased.url);
    let wh = tempfile::tempdir().unwrap();
    let out = compare_with(
        wh.path(),
        &judge,
        &candidate,
        &["pairwise.win_rate_lower >= 0.5"],
        &["--pairwise"],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let p = &stage_summary(&out, "compare")["pairwise"];
    assert_eq!(count(p, "inconsistent"), 160);
    assert_eq!(p["position_inconsistency"], 1.0);
    assert_eq!((count(p, "wins"), count(p, "losses")), (0, 0));
    assert_eq!(p["win_rate"], 0.5);
    assert!(stderr(&out).contains("GATE FAILED: pairwise.win_rate_lower >= 0.5"));
    // The page shows them: win, tie and loss counts, the interval, the order's effect.
    let s = stage_summary(&out, "compare");
    let html = std::fs::read_to_string(s["index"].as_str().unwrap()).unwrap();
    let table = &html[html
        .find(r#"<table id="pairwise">"#)
        .expect("the pairwise table")..];
    let table = &table[..table.find("</table>").unwrap()];
    assert!(
        table.contains(r#"<td>tie (or the verdict flipped with the order)</td><td class="num">160</td><td class="num">100.0%</td>"#),
        "{table}"
    );
    assert!(
        html.contains("<b>100.0%</b><span>position inconsistency</span>"),
        "{html}"
    );
    assert!(
        html.contains("<b>0.500</b><span>candidate win rate"),
        "{html}"
    );
}

/// AlpacaEval (GPT-4 annotator) win rates against text_davinci_003, reproduced by replaying the
/// recorded GPT-4 verdicts through the stub as a scripted pairwise judge, in both orders. Uses
/// `../shared/datasets/real/alpaca_eval` (CC-BY-NC: read here, never committed); ignored with the
/// reason where that folder is absent, run by `./scripts/test` where it is.
#[test]
#[ignore = "needs ../shared/datasets (not committed); ./scripts/test runs it when that folder is there"]
fn alpaca_eval_win_rates_are_reproduced_from_the_recorded_gpt4_verdicts() {
    let root = shared_data("real/alpaca_eval");
    let board = shared_data(
        "real/alpaca_eval/src/alpaca_eval/leaderboards/data_AlpacaEval/alpaca_eval_gpt4_leaderboard.csv",
    );
    // The leaderboard's win rates (percent).
    let mut official: std::collections::BTreeMap<String, f64> = Default::default();
    for line in std::fs::read_to_string(&board).unwrap().lines().skip(1) {
        let fields: Vec<&str> = line.split(',').collect();
        if let (Some(name), Some(rate)) =
            (fields.first(), fields.get(1).and_then(|r| r.parse().ok()))
        {
            official.insert(name.to_string(), rate);
        }
    }
    // Every model's annotations: the verdicts, in both orders, and the two sides' files.
    let dir = tempfile::tempdir().unwrap();
    let mut verdicts = std::collections::HashMap::new();
    let mut models = Vec::new();
    for entry in std::fs::read_dir(root.join("results")).unwrap() {
        let model = entry.unwrap().file_name().to_string_lossy().to_string();
        let path = root
            .join("results")
            .join(&model)
            .join("alpaca_eval_gpt4/annotations.json");
        if model == "text_davinci_003" || !path.exists() || !official.contains_key(&model) {
            continue;
        }
        let rows: Vec<serde_json::Value> =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let (mut base, mut cand) = (String::new(), String::new());
        for r in &rows {
            let (Some(instruction), Some(o1), Some(o2)) = (
                r["instruction"].as_str(),
                r["output_1"].as_str(),
                r["output_2"].as_str(),
            ) else {
                continue;
            };
            // preference 1: output_1 (the baseline) better, 2: output_2 better, else a tie.
            let p = r["preference"]
                .as_f64()
                .or_else(|| r["preference"].as_str()?.parse().ok());
            let (ab, ba) = match p {
                Some(1.0) => (1, 5),
                Some(2.0) => (5, 1),
                _ => (3, 3),
            };
            verdicts.insert(evalwatch::judge::stub::verdict_key(instruction, o1, o2), ab);
            verdicts.insert(evalwatch::judge::stub::verdict_key(instruction, o2, o1), ba);
            let line = |out: &str| {
                serde_json::json!({"instruction": instruction, "output": out}).to_string() + "\n"
            };
            base.push_str(&line(o1));
            cand.push_str(&line(o2));
        }
        std::fs::write(dir.path().join(format!("{model}.baseline.jsonl")), base).unwrap();
        std::fs::write(dir.path().join(format!("{model}.candidate.jsonl")), cand).unwrap();
        models.push(model);
    }
    assert!(models.len() >= 8, "{models:?}");
    let server = judge_server(StubConfig {
        verdicts: Some(std::sync::Arc::new(verdicts)),
        ..StubConfig::default()
    });
    let judge = format!("openai:gpt4-verdicts@{}/v1", server.url);
    let mut ours: Vec<(String, f64)> = Vec::new();
    for model in &models {
        let wh = dir.path().join(format!("wh-{model}"));
        std::fs::create_dir_all(&wh).unwrap();
        let mut cmd = evalwatch();
        let config = wh.join("evalwatch.toml");
        std::fs::write(
            &config,
            format!(
                "[warehouse]\npath = {:?}\n[score]\nrubric = {:?}\n[judge]\nconcurrency = 32\n\
                 requests-per-minute = 600000\ntokens-per-minute = 1000000000\n",
                wh.display().to_string(),
                repo_root()
                    .join("rubrics/quality.toml")
                    .display()
                    .to_string()
            ),
        )
        .unwrap();
        cmd.arg("--config")
            .arg(&config)
            .args(["compare", "--judge", &judge, "--pairwise"]);
        cmd.arg("--baseline-file")
            .arg(dir.path().join(format!("{model}.baseline.jsonl")))
            .arg("--candidate-file")
            .arg(dir.path().join(format!("{model}.candidate.jsonl")));
        let out = run(&mut cmd);
        assert_eq!(out.status.code(), Some(0), "{model}: {}", stderr(&out));
        let p = &stage_summary(&out, "compare")["pairwise"];
        assert_eq!(p["position_inconsistency"], 0.0, "{model}");
        let rate = 100.0 * p["win_rate"].as_f64().unwrap();
        let want = official[model];
        assert!(
            (rate - want).abs() <= 0.5,
            "{model}: {rate:.2} vs the leaderboard's {want:.2}"
        );
        ours.push((model.clone(), rate));
    }
    // Ordered as the leaderboard orders them.
    let mut by_ours = ours.clone();
    by_ours.sort_by(|a, b| b.1.total_cmp(&a.1));
    let mut by_board = ours.clone();
    by_board.sort_by(|a, b| official[&b.0].total_cmp(&official[&a.0]));
    let names = |v: &[(String, f64)]| v.iter().map(|(m, _)| m.clone()).collect::<Vec<_>>();
    assert_eq!(names(&by_ours), names(&by_board));
}

/// Two models of the warehouse that answered the same prompts (a shadow variant): ingested as
/// plain records, compared by model name; the figures are those of the same replies compared
/// as files.
#[test]
fn two_models_of_the_warehouse_compare_like_the_same_replies_in_files() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("capture");
    std::fs::create_dir_all(&source).unwrap();
    let mut lines = String::new();
    for (file, model) in [("baseline.jsonl", "chat-a"), ("candidate.jsonl", "chat-b")] {
        for line in std::fs::read_to_string(fixture(file)).unwrap().lines() {
            let r: serde_json::Value = serde_json::from_str(line).unwrap();
            lines.push_str(
                &serde_json::json!({
                    "prompt": r["prompt"], "response": r["response"], "model": model,
                    "timestamp": "2026-10-05T12:00:00Z", "latency_ms": r["latency_ms"],
                })
                .to_string(),
            );
            lines.push('\n');
        }
    }
    std::fs::write(source.join("records.jsonl"), lines).unwrap();
    let wh = dir.path().join("wh");
    let ingest = run(evalwatch()
        .arg("--warehouse")
        .arg(&wh)
        .args(["ingest", "--source"])
        .arg(&source));
    assert_eq!(ingest.status.code(), Some(0), "{}", stderr(&ingest));
    // The bundled sample's telemetry and prices, analysed: the hardware cost per request.
    for args in [
        &[
            "telemetry",
            "--since",
            "2026-10-05",
            "--until",
            "2026-10-05",
        ][..],
        &["analyse", "--date", "2026-10-05"][..],
    ] {
        let out = run(evalwatch().arg("--warehouse").arg(&wh).args(args));
        assert!(matches!(out.status.code(), Some(0 | 3)), "{}", stderr(&out));
    }
    let by_model = run(evalwatch().arg("--warehouse").arg(&wh).args([
        "compare",
        "--judge",
        "offline",
        "--baseline",
        "chat-a",
        "--candidate",
        "chat-b",
        "--since",
        "2026-10-05",
        "--until",
        "2026-10-05",
    ]));
    assert_eq!(by_model.status.code(), Some(0), "{}", stderr(&by_model));
    let m = stage_summary(&by_model, "compare");
    assert_eq!(count(&m, "matched"), 160);
    assert!(m["baseline"].as_str().unwrap().contains("model chat-a"));
    // chat-b holds two GPUs for the traffic chat-a serves with one.
    let cost = m["figures"]["cost.ratio"]
        .as_f64()
        .expect("a cost per request");
    assert!(cost > 1.5, "{}", m["figures"]);
    let by_file = run(evalwatch()
        .arg("--warehouse")
        .arg(dir.path().join("wh2"))
        .args(["compare", "--judge", "offline", "--baseline-file"])
        .arg(fixture("baseline.jsonl"))
        .arg("--candidate-file")
        .arg(fixture("candidate.jsonl")));
    let f = stage_summary(&by_file, "compare");
    assert_eq!(m["pointwise"], f["pointwise"]);
    assert_eq!(m["figures"]["latency.ratio"], f["figures"]["latency.ratio"]);
    assert!(
        f["figures"]["cost.ratio"].is_null(),
        "the files carry no cost"
    );
    // A model without captures in the window: a clear error.
    let none = run(evalwatch().arg("--warehouse").arg(&wh).args([
        "compare",
        "--baseline",
        "chat-a",
        "--candidate",
        "nope",
        "--since",
        "2026-10-05",
    ]));
    assert_eq!(none.status.code(), Some(1), "{}", stderr(&none));
    assert!(
        stderr(&none).contains("model `nope` has no captures"),
        "{}",
        stderr(&none)
    );
}

/// LLMBar's Natural set (MIT, committed in `datasets/pairs/llmbar_natural.labels.jsonl`): the
/// expert's choice between two outputs for 100 instructions, replayed through the stub as the
/// judge's verdict in both orders, comes back as the candidate's win rate: output B was chosen
/// 58 times. The fresh-machine counterpart of the AlpacaEval reproduction.
#[test]
fn recorded_expert_verdicts_come_back_as_the_win_rate() {
    let text =
        std::fs::read_to_string(repo_root().join("datasets/pairs/llmbar_natural.labels.jsonl"))
            .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (mut a_file, mut b_file) = (String::new(), String::new());
    let mut verdicts = std::collections::HashMap::new();
    let mut b_better = 0;
    for line in text.lines() {
        let r: serde_json::Value = serde_json::from_str(line).unwrap();
        let (i, a, b) = (
            r["prompt"].as_str().unwrap(),
            r["response_a"].as_str().unwrap(),
            r["response_b"].as_str().unwrap(),
        );
        let a_wins = r["label"] == "a";
        b_better += usize::from(!a_wins);
        let key = evalwatch::judge::stub::verdict_key;
        verdicts.insert(key(i, a, b), if a_wins { 1 } else { 5 });
        verdicts.insert(key(i, b, a), if a_wins { 5 } else { 1 });
        a_file.push_str(&(serde_json::json!({"instruction": i, "output": a}).to_string() + "\n"));
        b_file.push_str(&(serde_json::json!({"instruction": i, "output": b}).to_string() + "\n"));
    }
    assert_eq!(b_better, 58);
    let (a_path, b_path) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl"));
    std::fs::write(&a_path, a_file).unwrap();
    std::fs::write(&b_path, b_file).unwrap();
    let server = judge_server(StubConfig {
        verdicts: Some(std::sync::Arc::new(verdicts)),
        ..StubConfig::default()
    });
    let judge = format!("openai:experts@{}/v1", server.url);
    let wh = dir.path().join("wh");
    std::fs::create_dir_all(&wh).unwrap();
    let config = stub_paced_config(&wh);
    let mut cmd = evalwatch();
    cmd.arg("--config")
        .arg(&config)
        .args([
            "compare",
            "--judge",
            &judge,
            "--pairwise",
            "--baseline-file",
        ])
        .arg(&a_path)
        .arg("--candidate-file")
        .arg(&b_path)
        .args(["--gate", "pairwise.win_rate_lower >= 0.5"]);
    let out = run(&mut cmd);
    // 58% with a Wilson lower bound under 0.5: the gate does not let it ship.
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let p = &stage_summary(&out, "compare")["pairwise"];
    assert_eq!(
        (count(p, "wins"), count(p, "losses"), count(p, "ties")),
        (58, 42, 0)
    );
    assert_eq!(p["win_rate"], 0.58);
    assert_eq!(p["position_inconsistency"], 0.0);
    let (lo, hi) = (
        p["win_rate_lower"].as_f64().unwrap(),
        p["win_rate_upper"].as_f64().unwrap(),
    );
    // Wilson 95% for 58/100, by its formula.
    assert!(
        (lo - 0.482_064_867).abs() < 1e-8 && (hi - 0.672_016_173).abs() < 1e-8,
        "{lo} {hi}"
    );
}
