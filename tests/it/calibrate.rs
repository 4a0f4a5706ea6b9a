//! `evalwatch calibrate`: people's labels against the pinned judge. The labels here are the
//! offline scorer's own levels (so its kappa must be 1) and, for another dimension, those levels
//! with seeded noise (so the kappa must equal `agreement::cohen_kappa` on the same pairs, itself
//! checked against scikit-learn); captures by request id and items given as text; bad rows named.

use std::collections::BTreeMap;

use crate::support::*;

/// (request_id, dimension) -> the offline scorer's level.
type Levels = BTreeMap<(String, String), i64>;
/// request_id -> (prompt, response).
type Texts = BTreeMap<String, (String, String)>;

/// The offline scorer's levels of the warehouse's captures, and their texts.
fn offline_levels(wh: &std::path::Path) -> (Levels, Texts) {
    let copy = tempfile::tempdir().unwrap();
    copy_tree(&wh.join("captures"), &copy.path().join("captures"));
    let out = run(evalwatch().arg("--warehouse").arg(copy.path()).arg("score"));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let scores = read_table(copy.path(), "scores");
    let (ids, dims, labels) = (
        strings(&scores, "request_id"),
        strings(&scores, "dimension"),
        strings(&scores, "label"),
    );
    let levels = ids
        .iter()
        .zip(&dims)
        .zip(&labels)
        .map(|((i, d), l)| ((i.clone(), d.clone()), l.parse().unwrap()))
        .collect();
    let captures = read_table(wh, "captures");
    let texts = strings(&captures, "request_id")
        .into_iter()
        .zip(
            strings(&captures, "prompt")
                .into_iter()
                .zip(strings(&captures, "response")),
        )
        .collect();
    (levels, texts)
}

#[test]
fn calibrate_reports_agreement_per_dimension_and_names_bad_rows() {
    let wh = ingested("2026-10-03", "2026-10-03");
    let (levels, texts) = offline_levels(wh.path());
    let ids: Vec<&String> = texts.keys().take(60).collect();
    let mut lines = Vec::new();
    let mut noisy_pairs: Vec<(i64, i64)> = Vec::new();
    let mut state = 12345u64;
    for (n, id) in ids.iter().enumerate() {
        let safety = levels[&((*id).clone(), "safety".to_string())];
        let relevance = levels[&((*id).clone(), "relevance".to_string())];
        // Seeded noise: a third of the relevance labels one level off (within 1..5).
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let noisy = if (state >> 33).is_multiple_of(3) {
            if relevance == 5 { 4 } else { relevance + 1 }
        } else {
            relevance
        };
        noisy_pairs.push((noisy, relevance));
        // Half by request id, half as text (the same items either way).
        let item = if n % 2 == 0 {
            serde_json::json!({ "request_id": id })
        } else {
            let (p, r) = &texts[*id];
            serde_json::json!({ "prompt": p, "response": r })
        };
        for (dimension, label, rater) in [
            ("safety", safety, "a"),
            ("safety", safety, "b"),
            ("relevance", noisy, "a"),
        ] {
            let mut row = item.clone();
            row["dimension"] = dimension.into();
            row["label"] = label.into();
            row["rater"] = rater.into();
            lines.push(row.to_string());
        }
    }
    // Three bad rows, named in the summary with their lines.
    lines.push(r#"{"request_id":"nope","dimension":"safety","label":3}"#.into());
    lines.push(
        serde_json::json!({"request_id": ids[0], "dimension": "kindness", "label": 3}).to_string(),
    );
    lines.push(
        serde_json::json!({"request_id": ids[0], "dimension": "safety", "label": 9}).to_string(),
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("labels.jsonl");
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();

    let out = run(evalwatch()
        .arg("--warehouse")
        .arg(wh.path())
        .args(["calibrate", "--labels"])
        .arg(&file));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let s = stage_summary(&out, "calibrate");
    assert_eq!(count(&s, "items"), 60, "{s}");
    assert_eq!(count(&s, "raters"), 2);
    assert_eq!(count(&s, "rejected"), 3, "{s}");
    let rejected = s["rejected_examples"].to_string();
    let total = lines.len();
    assert!(
        rejected.contains(&format!("labels.jsonl:{}: request_id `nope`", total - 2)),
        "{rejected}"
    );
    assert!(
        rejected.contains(&format!("labels.jsonl:{}: dimension `kindness`", total - 1)),
        "{rejected}"
    );
    assert!(
        rejected.contains(&format!("labels.jsonl:{total}: label 9 is not a level")),
        "{rejected}"
    );

    // The judge's own levels as labels: perfect agreement; two raters in full agreement.
    let safety = &s["dimensions"]["safety"];
    assert_eq!(safety["n"], 60);
    assert_eq!(safety["kappa_quadratic"]["value"], 1.0, "{safety}");
    assert_eq!(safety["accuracy"]["value"], 1.0);
    assert_eq!(safety["raters_alpha"], 1.0);
    // Noisy labels: the same kappa as the library-checked function on the same pairs.
    let relevance = &s["dimensions"]["relevance"];
    let (reference, judged): (Vec<i64>, Vec<i64>) = noisy_pairs.into_iter().unzip();
    let expected = evalwatch::agreement::cohen_kappa(
        &reference,
        &judged,
        Some(&[1, 2, 3, 4, 5]),
        evalwatch::agreement::Weights::Quadratic,
    )
    .unwrap();
    let got = relevance["kappa_quadratic"]["value"].as_f64().unwrap();
    assert!((got - expected).abs() < 1e-12, "{got} vs {expected}");
    assert!(got < 1.0);
    let (low, high) = (
        relevance["kappa_quadratic"]["low"].as_f64().unwrap(),
        relevance["kappa_quadratic"]["high"].as_f64().unwrap(),
    );
    assert!(low <= got && got <= high, "{low} {got} {high}");
    assert!(
        s["dimensions"].get("professional_tone").is_none(),
        "no labels, no figures"
    );

    // The calibration table: one row per dimension, keyed by rubric and judge.
    let table = read_table(wh.path(), "calibration");
    assert_eq!(table.height(), 2);
    assert!(strings(&table, "judge").iter().all(|j| j == "offline:1"));
    let md = std::fs::read_to_string(s["summary_md"].as_str().unwrap()).unwrap();
    assert!(md.contains("| safety | 60 | 1.000"), "{md}");
    let page = std::fs::read_to_string(s["index"].as_str().unwrap()).unwrap();
    assert!(
        page.contains("<td>safety</td><td class=\"num\">60</td><td>1.000"),
        "the page's table"
    );
    assert!(
        page.contains("labels.jsonl:"),
        "the rows left out are listed"
    );
    assert!(!page.contains("http"), "self-contained");

    // Every later report states it next to the dimensions, for this rubric hash and judge.
    let report = |wh: &std::path::Path| {
        let out = run(evalwatch().arg("--warehouse").arg(wh).args([
            "report",
            "--since",
            "2026-10-03",
            "--until",
            "2026-10-03",
        ]));
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let index = stage_summary(&out, "report")["index"]
            .as_str()
            .unwrap()
            .to_string();
        let json: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(std::path::Path::new(&index).with_file_name("summary.json"))
                .unwrap(),
        )
        .unwrap();
        (std::fs::read_to_string(&index).unwrap(), json)
    };
    let (page, json) = report(wh.path());
    assert_eq!(
        json["calibration"]["safety"]["kappa_quadratic"], 1.0,
        "{json}"
    );
    assert!(
        page.contains("Agreement of the judge with your labels: safety quadratic kappa 1.00"),
        "the page states it"
    );
    assert!(
        page.contains("relevance quadratic kappa")
            && page.contains("professional_tone not calibrated")
    );
    // A release gate can require a calibrated judge on the dimensions it reads.
    let pairs = |name: &str| {
        let path = dir.path().join(name);
        let lines: Vec<String> = texts
            .values()
            .take(20)
            .map(|(p, r)| serde_json::json!({ "prompt": p, "response": r }).to_string())
            .collect();
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        path
    };
    let (baseline, candidate) = (pairs("baseline.jsonl"), pairs("candidate.jsonl"));
    let gate = |gate: &str, kappa: &str| {
        run(evalwatch()
            .arg("--warehouse")
            .arg(wh.path())
            .args(["compare", "--baseline-file"])
            .arg(&baseline)
            .arg("--candidate-file")
            .arg(&candidate)
            .args(["--gate", gate, "--min-judge-kappa", kappa]))
    };
    let trusted = gate("safety.delta >= -0.1", "0.4");
    assert_eq!(trusted.status.code(), Some(0), "{}", stderr(&trusted));
    let below = gate("relevance.delta >= -0.1", "0.99");
    assert_eq!(below.status.code(), Some(2), "{}", stderr(&below));
    assert!(
        stderr(&below).contains("not trusted on `relevance`"),
        "{}",
        stderr(&below)
    );
    let missing = gate("composite.delta >= -0.1", "0.1");
    assert_eq!(missing.status.code(), Some(2), "{}", stderr(&missing));
    assert!(
        stderr(&missing).contains("`professional_tone`")
            && stderr(&missing).contains("not calibrated"),
        "{}",
        stderr(&missing)
    );

    let bare = ingested("2026-10-03", "2026-10-03");
    let (page, _) = report(bare.path());
    assert!(
        page.contains("is <b>not calibrated</b>"),
        "uncalibrated, in plain sight"
    );
}

/// The offline scorer against DICES-350's expert safety labels (CC-BY-4.0, committed): the
/// figures the README's agreement table quotes. At chance, as it should be said out loud.
#[test]
fn the_offline_scorer_on_dices_350_expert_labels() {
    let wh = tempfile::tempdir().unwrap();
    let out = run(evalwatch()
        .arg("--warehouse")
        .arg(wh.path())
        .args([
            "calibrate",
            "--rubric",
            "rubrics/safety-binary.toml",
            "--labels",
        ])
        .arg(repo_root().join("datasets/dices/dices_350_expert.labels.jsonl")));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let s = stage_summary(&out, "calibrate");
    assert_eq!(count(&s, "items"), 350);
    assert_eq!(count(&s, "rejected"), 0);
    let safety = &s["dimensions"]["safety"];
    let value = |k: &str| safety[k]["value"].as_f64().unwrap();
    // Recomputed from the confusion matrix it reports: [[7, 168], [2, 173]] (rows: people).
    assert_eq!(safety["confusion"], serde_json::json!([[7, 168], [2, 173]]));
    assert!((value("kappa_unweighted") - 0.028_571_428_571_428_58).abs() < 1e-12);
    assert!((value("accuracy") - 180.0 / 350.0).abs() < 1e-12);
    assert!((safety["roc_auc"].as_f64().unwrap() - 0.514_285_714_285_714_2).abs() < 1e-12);
    assert_eq!(safety["majority_baseline"], 0.5);
}

/// `--repeat`: the judge asked again on every item (its own cache per pass); a judge with noise
/// of its own shows it as a test-retest kappa under 1, a deterministic one at exactly 1.
#[test]
fn repeat_measures_the_judges_own_noise() {
    let wh = ingested("2026-10-03", "2026-10-03");
    let (levels, texts) = offline_levels(wh.path());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("labels.jsonl");
    let lines: Vec<String> = texts
        .keys()
        .take(80)
        .map(|id| {
            serde_json::json!({
                "request_id": id,
                "dimension": "safety",
                "label": levels[&(id.clone(), "safety".to_string())],
            })
            .to_string()
        })
        .collect();
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let calibrate = |server: &JudgeServer| {
        let config = dir.path().join("judge.toml");
        std::fs::write(
            &config,
            format!(
                "[score]\nrubric = \"{}\"\n[judge]\nkind = \"openai\"\nmodel = \"m\"\nurl = \"{}/v1\"\n\
                 requests-per-minute = 600000\ntokens-per-minute = 1000000000\n",
                repo_root().join("rubrics/quality.toml").display(),
                server.url
            ),
        )
        .unwrap();
        let out = run(evalwatch()
            .arg("--config")
            .arg(&config)
            .arg("--warehouse")
            .arg(wh.path())
            .args(["calibrate", "--repeat", "3", "--labels"])
            .arg(&file));
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        stage_summary(&out, "calibrate")
    };
    let steady = judge_server(StubConfig::default());
    let s = calibrate(&steady);
    assert_eq!(count(&s, "judge_calls"), 3 * 80, "every pass asks: {s}");
    let retest = &s["dimensions"]["safety"]["test_retest_kappa"];
    assert_eq!(retest["value"], 1.0, "{s}");
    assert_eq!(s["dimensions"]["safety"]["kappa_quadratic"]["value"], 1.0);
    let noisy = judge_server(StubConfig {
        noise: 0.4,
        seed: 7,
        ..StubConfig::default()
    });
    let s = calibrate(&noisy);
    let retest = s["dimensions"]["safety"]["test_retest_kappa"]["value"]
        .as_f64()
        .unwrap();
    assert!(retest < 0.95 && retest > 0.0, "{s}");
    let kappa = s["dimensions"]["safety"]["kappa_quadratic"]["value"]
        .as_f64()
        .unwrap();
    assert!(
        kappa < 1.0,
        "noise costs agreement with people too: {kappa}"
    );
}

/// Three stub judges with independent seeded noise (0.5) and a config naming them as a jury
/// with `aggregate`: (the servers, kept alive; the members' `--judge` ids; the config file).
fn noisy_jury(
    seeds: std::ops::RangeInclusive<u64>,
    aggregate: &str,
    dir: &std::path::Path,
) -> (Vec<JudgeServer>, Vec<String>, std::path::PathBuf) {
    let servers: Vec<JudgeServer> = seeds
        .map(|seed| {
            judge_server(StubConfig {
                noise: 0.5,
                seed,
                ..StubConfig::default()
            })
        })
        .collect();
    let members: Vec<String> = servers
        .iter()
        .map(|s| format!("openai:m@{}/v1", s.url))
        .collect();
    let config = dir.join("jury.toml");
    std::fs::write(
        &config,
        format!(
            "[score]\nrubric = \"{}\"\n[judge]\nkind = \"jury\"\njury = {:?}\n\
             jury-aggregate = \"{aggregate}\"\nrequests-per-minute = 600000\n\
             tokens-per-minute = 1000000000\n",
            repo_root().join("rubrics/quality.toml").display(),
            members
        ),
    )
    .unwrap();
    (servers, members, config)
}

/// A jury of three judges with independent noise agrees with people better than any of its
/// members (the PoLL finding, here by construction), and is written as one judge.
#[test]
fn a_jury_of_noisy_judges_beats_each_member() {
    let wh = ingested("2026-10-01", "2026-10-07");
    let (levels, texts) = offline_levels(wh.path());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("labels.jsonl");
    let lines: Vec<String> = texts
        .keys()
        .flat_map(|id| {
            ["safety", "relevance"].map(|d| {
                serde_json::json!({
                    "request_id": id,
                    "dimension": d,
                    "label": levels[&(id.clone(), d.to_string())],
                })
                .to_string()
            })
        })
        .collect();
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let (_servers, members, config) = noisy_jury(1..=3, "median", dir.path());
    let calibrate = |judge: &str| {
        let out = run(evalwatch()
            .arg("--config")
            .arg(&config)
            .arg("--warehouse")
            .arg(wh.path())
            .args(["calibrate", "--judge", judge, "--labels"])
            .arg(&file));
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        stage_summary(&out, "calibrate")
    };
    let figure =
        |s: &serde_json::Value, d: &str, f: &str| s["dimensions"][d][f]["value"].as_f64().unwrap();
    let jury = calibrate("jury");
    assert!(
        jury["judge"].as_str().unwrap().starts_with("jury:"),
        "{jury}"
    );
    assert_eq!(count(&jury, "judge_failed"), 0, "{jury}");
    // The jury's own members, on the judgments the jury combined: each is worse.
    let reported = jury["members"].as_object().unwrap();
    assert_eq!(reported.len(), 3, "{jury}");
    for member in &members {
        let alone = &reported[member];
        // Relevance spreads over the scale: the kappa shows it. Safety sits mostly at its top
        // level, where a kappa rests on a few items; there the share of exact agreement does.
        for (d, f) in [
            ("relevance", "kappa_quadratic"),
            ("relevance", "accuracy"),
            ("safety", "accuracy"),
        ] {
            let theirs = alone[d][f]["value"].as_f64().unwrap();
            assert!(
                figure(&jury, d, f) > theirs,
                "{d} {f}: jury {} vs {member} {theirs}",
                figure(&jury, d, f),
            );
        }
    }
    // Calibrating a member alone gives its own figures, under its own id.
    let alone = calibrate(&members[0]);
    assert_eq!(alone["judge"], members[0].as_str());
    assert!(alone.get("members").is_none());
}

/// A jury's own agreement, per model-day: the members' levels are on every jury row
/// (`member_levels`), and analyse puts their Krippendorff's alpha per dimension and the captures
/// whose members were two levels apart into `aggregates`.
#[test]
fn a_jurys_agreement_and_disagreements_are_in_the_aggregates() {
    let wh = ingested("2026-10-03", "2026-10-03");
    let dir = tempfile::tempdir().unwrap();
    let (_servers, _members, config) = noisy_jury(11..=13, "mean", dir.path());
    let day = ["--since", "2026-10-03", "--until", "2026-10-03"];
    for stage in ["score", "analyse"] {
        let out = run(evalwatch()
            .arg("--config")
            .arg(&config)
            .arg("--warehouse")
            .arg(wh.path())
            .arg(stage)
            .args(day));
        assert!(
            matches!(out.status.code(), Some(0 | 3)),
            "{stage}: {}",
            stderr(&out)
        );
    }
    // Counted independently from the jury's rows.
    let scores = read_table(wh.path(), "scores");
    let judges = strings(&scores, "judge");
    let jury = judges
        .iter()
        .find(|j| j.starts_with("jury:"))
        .unwrap()
        .clone();
    let (ids, models, levels) = (
        strings(&scores, "request_id"),
        strings(&scores, "model"),
        strings(&scores, "member_levels"),
    );
    let mut apart: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
    for i in 0..scores.height() {
        if judges[i] != jury || levels[i].is_empty() {
            continue;
        }
        let map: BTreeMap<String, i64> = serde_json::from_str(&levels[i]).unwrap();
        assert_eq!(map.len(), 3);
        let (low, high) = (map.values().min().unwrap(), map.values().max().unwrap());
        let entry = apart.entry(models[i].clone()).or_default();
        if high - low >= 2 {
            entry.insert(ids[i].clone());
        }
    }
    let agg = read_table(wh.path(), "aggregates");
    let agg_models = strings(&agg, "model");
    let counted = agg
        .column("jury_disagreements")
        .unwrap()
        .cast(&polars::prelude::DataType::Int64)
        .unwrap();
    let alpha = agg
        .column("safety_jury_alpha")
        .unwrap()
        .f64()
        .unwrap()
        .clone();
    for (i, model) in agg_models.iter().enumerate() {
        assert_eq!(
            counted.i64().unwrap().get(i),
            Some(apart[model].len() as i64),
            "{model}"
        );
        let a = alpha.get(i).unwrap();
        assert!(a > 0.0 && a < 1.0, "{model}: alpha {a}");
    }

    // The report shows the jury's agreement and where its members were far apart.
    let out = run(evalwatch()
        .arg("--config")
        .arg(&config)
        .arg("--warehouse")
        .arg(wh.path())
        .arg("report")
        .args(day));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let index = stage_summary(&out, "report")["index"]
        .as_str()
        .unwrap()
        .to_string();
    let page = std::fs::read_to_string(&index).unwrap();
    assert!(
        page.contains("Members' agreement (Krippendorff's alpha): safety 0."),
        "jury line"
    );
    let shown: Vec<&String> = apart.values().flatten().collect();
    assert!(
        !shown.is_empty(),
        "noise 0.5 puts some members two levels apart"
    );
    assert!(
        shown.iter().any(|id| page.contains(id.as_str())),
        "a disagreeing capture is listed"
    );
}

/// The committed LLMBar Natural preferences: (prompt, reply A, reply B, people's choice of A).
fn llmbar_pairs() -> Vec<(String, String, String, bool)> {
    std::fs::read_to_string(repo_root().join("datasets/pairs/llmbar_natural.labels.jsonl"))
        .unwrap()
        .lines()
        .map(|line| {
            let r: serde_json::Value = serde_json::from_str(line).unwrap();
            let text = |k: &str| r[k].as_str().unwrap().to_string();
            (
                text("prompt"),
                text("response_a"),
                text("response_b"),
                r["label"] == "a",
            )
        })
        .collect()
}

/// A stub judge's pairwise verdicts: `a_better(n)` for the n-th pair says whether it finds reply
/// A better; `None` makes it prefer whichever reply it sees first (a position bias).
fn pairwise_stub(
    pairs: &[(String, String, String, bool)],
    a_better: impl Fn(usize, bool) -> Option<bool>,
) -> JudgeServer {
    let key = evalwatch::judge::stub::verdict_key;
    let mut verdicts = std::collections::HashMap::new();
    for (n, (p, a, b, people_a)) in pairs.iter().enumerate() {
        let (ab, ba) = match a_better(n, *people_a) {
            Some(true) => (1, 5),
            Some(false) => (5, 1),
            None => (1, 1),
        };
        verdicts.insert(key(p, a, b), ab);
        verdicts.insert(key(p, b, a), ba);
    }
    judge_server(StubConfig {
        verdicts: Some(std::sync::Arc::new(verdicts)),
        ..StubConfig::default()
    })
}

/// A config for `warehouse` with the quality rubric (so `pairwise.toml` beside it judges
/// preferences) and a judge paced for the stub.
fn preference_config(
    dir: &std::path::Path,
    warehouse: &std::path::Path,
    judge: &str,
) -> std::path::PathBuf {
    let config = dir.join("evalwatch.toml");
    let (model, url) = judge.trim_start_matches("openai:").split_once('@').unwrap();
    std::fs::write(
        &config,
        format!(
            "[warehouse]\npath = {:?}\n[score]\nrubric = {:?}\n[judge]\nkind = \"openai\"\n\
             model = {model:?}\nurl = {url:?}\nrequests-per-minute = 600000\n\
             tokens-per-minute = 1000000000\n",
            warehouse.display().to_string(),
            repo_root()
                .join("rubrics/quality.toml")
                .display()
                .to_string(),
        ),
    )
    .unwrap();
    config
}

/// People's preferences between two replies (LLMBar Natural, committed) are judged in both
/// orders on the pairwise rubric. A judge that is right on most pairs, prefers whichever reply it
/// sees first on every fifth (its verdict changes with the order: a tie) and is wrong in both
/// orders on every seventh of the rest: calibrate's kappas equal `agreement::cohen_kappa` on the
/// same (people, judge) directions (itself checked against scikit-learn), its position
/// consistency is 80%, a second run costs no call, and `compare --min-judge-kappa` gates a
/// `pairwise.` figure on this calibration.
#[test]
fn preferences_are_judged_in_both_orders_and_a_position_bias_shows() {
    let pairs = llmbar_pairs();
    assert_eq!(pairs.len(), 100);
    let verdict = |n: usize, people_a: bool| match n {
        n if n % 5 == 0 => None,
        n if n % 7 == 0 => Some(!people_a),
        _ => Some(people_a),
    };
    let server = pairwise_stub(&pairs, verdict);
    let judge = format!("openai:biased@{}/v1", server.url);
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    std::fs::create_dir_all(&wh).unwrap();
    let config = preference_config(dir.path(), &wh, &judge);
    let labels = repo_root().join("datasets/pairs/llmbar_natural.labels.jsonl");
    let calibrate = || {
        let out = run(evalwatch()
            .arg("--config")
            .arg(&config)
            .args(["calibrate", "--labels"])
            .arg(&labels));
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        stage_summary(&out, "calibrate")
    };
    let s = calibrate();
    assert_eq!(s["preferences"], true, "{s}");
    assert!(
        s["rubric"].as_str().unwrap().starts_with("pairwise@"),
        "{s}"
    );
    assert_eq!(count(&s, "items"), 100);
    assert_eq!(count(&s, "judge_calls"), 200, "both orders: {s}");
    let (people, judged): (Vec<i64>, Vec<i64>) = pairs
        .iter()
        .enumerate()
        .map(|(n, (_, _, _, people_a))| {
            let direction = |a: bool| if a { -1 } else { 1 };
            (
                direction(*people_a),
                verdict(n, *people_a).map_or(0, direction),
            )
        })
        .unzip();
    let d = &s["dimensions"]["preference"];
    let value = |k: &str| d[k]["value"].as_f64().unwrap();
    for (figure, weights) in [
        (
            "kappa_unweighted",
            evalwatch::agreement::Weights::Unweighted,
        ),
        ("kappa_quadratic", evalwatch::agreement::Weights::Quadratic),
    ] {
        let expected =
            evalwatch::agreement::cohen_kappa(&people, &judged, Some(&[-1, 0, 1]), weights)
                .unwrap();
        assert!((value(figure) - expected).abs() < 1e-12, "{figure}: {d}");
    }
    let right = people.iter().zip(&judged).filter(|(p, j)| p == j).count();
    assert!(
        (value("accuracy") - right as f64 / 100.0).abs() < 1e-12,
        "{d}"
    );
    assert_eq!(d["position_consistency"], 0.8, "{d}");
    assert!(d["roc_auc"].as_f64().is_some(), "people named no tie: {d}");
    let a_tied = (0..100).filter(|n| n % 5 == 0 && pairs[*n].3).count();
    assert_eq!(
        d["confusion"][0][1], a_tied,
        "people's A, judged a tie: {d}"
    );
    assert_eq!(count(&calibrate(), "judge_calls"), 0, "cached");

    // The release gate reads this calibration for a `pairwise.` figure.
    let kappa = value("kappa_quadratic");
    let side = |name: &str, pick: fn(&(String, String, String, bool)) -> &String| {
        let path = dir.path().join(name);
        let lines: Vec<String> = pairs
            .iter()
            .map(|pair| {
                serde_json::json!({"instruction": pair.0, "output": pick(pair)}).to_string()
            })
            .collect();
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        path
    };
    let (a, b) = (side("a.jsonl", |p| &p.1), side("b.jsonl", |p| &p.2));
    let gate = |least: f64| {
        run(evalwatch()
            .arg("--config")
            .arg(&config)
            .args(["compare", "--pairwise", "--baseline-file"])
            .arg(&a)
            .arg("--candidate-file")
            .arg(&b)
            .args(["--gate", "pairwise.win_rate >= 0"])
            .arg("--min-judge-kappa")
            .arg(least.to_string()))
    };
    let out = gate(kappa + 0.01);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("`preference`"), "{}", stderr(&out));
    let out = gate(kappa - 0.01);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

/// A jury judges preferences member by member and takes their majority: three judges each wrong
/// on a different quarter of the pairs make a jury that is never wrong, and calibrate shows each
/// member's figures beside it.
#[test]
fn a_jury_of_pairwise_judges_beats_each_member() {
    let pairs = llmbar_pairs();
    let servers: Vec<JudgeServer> = (0..3)
        .map(|k| pairwise_stub(&pairs, move |n, people_a| Some(people_a ^ (n % 4 == k))))
        .collect();
    let members: Vec<String> = servers
        .iter()
        .map(|s| format!("openai:m@{}/v1", s.url))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("jury.toml");
    std::fs::write(
        &config,
        format!(
            "[score]\nrubric = \"{}\"\n[judge]\nkind = \"jury\"\njury = {:?}\n\
             jury-aggregate = \"majority\"\nrequests-per-minute = 600000\n\
             tokens-per-minute = 1000000000\n",
            repo_root().join("rubrics/quality.toml").display(),
            members
        ),
    )
    .unwrap();
    let out = run(evalwatch()
        .arg("--config")
        .arg(&config)
        .arg("--warehouse")
        .arg(dir.path().join("wh"))
        .args(["calibrate", "--labels"])
        .arg(repo_root().join("datasets/pairs/llmbar_natural.labels.jsonl")));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let s = stage_summary(&out, "calibrate");
    assert!(s["judge"].as_str().unwrap().starts_with("jury:"), "{s}");
    assert_eq!(count(&s, "judge_calls"), 3 * 200, "{s}");
    let accuracy = |d: &serde_json::Value| d["preference"]["accuracy"]["value"].as_f64().unwrap();
    assert_eq!(accuracy(&s["dimensions"]), 1.0, "{s}");
    for member in &members {
        assert_eq!(accuracy(&s["members"][member]), 0.75, "{member}: {s}");
    }
}

/// The offline scorer against LLMBar Natural's expert preferences: the figures the README's
/// agreement table quotes (it ties most pairs: its signals are about harm, not instructions).
#[test]
fn the_offline_scorer_on_llmbar_natural_preferences() {
    let wh = tempfile::tempdir().unwrap();
    let out = run(evalwatch()
        .arg("--warehouse")
        .arg(wh.path())
        .args(["calibrate", "--rubric", "rubrics/pairwise.toml", "--labels"])
        .arg(repo_root().join("datasets/pairs/llmbar_natural.labels.jsonl")));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let s = stage_summary(&out, "calibrate");
    let d = &s["dimensions"]["preference"];
    assert_eq!(
        d["confusion"],
        serde_json::json!([[12, 21, 9], [0, 0, 0], [9, 33, 16]])
    );
    assert_eq!(d["accuracy"]["value"], 0.28);
    assert_eq!(d["majority_baseline"], 0.58);
}

/// `offline:2` (a classifier on embeddings, trained by `scripts/train_offline2.py` on the other
/// halves) against `offline:1` on held-out people's labels: DICES-990's held-out half (safety,
/// binary) and hh-rlhf's held-out harmless pairs (preferences). The figures the README's judge
/// table quotes.
#[test]
fn offline_2_beats_offline_1_on_held_out_labels() {
    let calibrate = |judge: &str, rubric: Option<&str>, labels: &str| -> serde_json::Value {
        let wh = tempfile::tempdir().unwrap();
        let mut cmd = evalwatch();
        embedding(&mut cmd)
            .arg("--warehouse")
            .arg(wh.path())
            .args(["calibrate", "--judge", judge, "--labels"])
            .arg(repo_root().join(labels));
        if let Some(rubric) = rubric {
            cmd.args(["--rubric", rubric]);
        }
        let out = run(&mut cmd);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let s = stage_summary(&out, "calibrate");
        assert_eq!(count(&s, "rejected"), 0);
        assert_eq!(s["judge"], judge);
        s
    };
    let dices = "datasets/dices/dices_990.heldout.labels.jsonl";
    let safety = |judge: &str| calibrate(judge, Some("rubrics/safety-binary.toml"), dices);
    let (one, two) = (safety("offline:1"), safety("offline:2"));
    let kappa = |s: &serde_json::Value, d: &str| {
        s["dimensions"][d]["kappa_unweighted"]["value"]
            .as_f64()
            .unwrap()
    };
    assert_eq!(count(&two, "items"), 510);
    assert!(kappa(&one, "safety") < 0.1, "{}", kappa(&one, "safety"));
    assert!(kappa(&two, "safety") > 0.25, "{}", kappa(&two, "safety"));
    assert!(
        two["dimensions"]["safety"]["kappa_unweighted"]["low"]
            .as_f64()
            .unwrap()
            > one["dimensions"]["safety"]["kappa_unweighted"]["high"]
                .as_f64()
                .unwrap(),
        "the intervals overlap"
    );
    assert!(two["dimensions"]["safety"]["roc_auc"].as_f64().unwrap() > 0.65);

    let pairs = "datasets/pairs/hh_rlhf_harmless.heldout.labels.jsonl";
    let (one, two) = (
        calibrate("offline:1", None, pairs),
        calibrate("offline:2", None, pairs),
    );
    assert_eq!(count(&two, "items"), 144);
    assert!(
        kappa(&two, "preference") > kappa(&one, "preference") + 0.05,
        "{} vs {}",
        kappa(&two, "preference"),
        kappa(&one, "preference")
    );
    // No position bias: the same verdict in both orders.
    assert_eq!(two["dimensions"]["preference"]["position_consistency"], 1.0);
}
