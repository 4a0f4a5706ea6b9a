//! How well the offline scorer agrees with people. The tests on `../shared/datasets` are
//! `#[ignore]`d with the reason and run by `./scripts/test` where that folder is: DICES expert safety labels (CC-BY-4.0) and
//! hh-rlhf chosen/rejected pairs (MIT). The DICES split is fixed: items with an even id are the
//! half the word lists were tuned on, odd ids are held out. Figures are printed (`--nocapture`).

use evalwatch::judge::offline;
use evalwatch::rubric::{self, Rubric};

use crate::support::{repo_root, shared_data};

/// ROC AUC of `scores` for predicting `positive` (ties count half): the probability that a random
/// positive item scores higher than a random negative one.
fn auc(scores: &[f64], positive: &[bool]) -> f64 {
    let (mut wins, mut pairs) = (0.0, 0.0);
    for (i, &si) in scores.iter().enumerate() {
        if !positive[i] {
            continue;
        }
        for (j, &sj) in scores.iter().enumerate() {
            if positive[j] {
                continue;
            }
            pairs += 1.0;
            wins += if si > sj {
                1.0
            } else if si == sj {
                0.5
            } else {
                0.0
            };
        }
    }
    wins / pairs
}

#[test]
fn auc_matches_a_hand_computed_value() {
    // positives 0.9, 0.4; negatives 0.4, 0.1: pairs (0.9>0.4)=1, (0.9>0.1)=1, (0.4=0.4)=.5, (0.4>0.1)=1
    assert_eq!(
        auc(&[0.9, 0.4, 0.4, 0.1], &[true, true, false, false]),
        3.5 / 4.0
    );
}

fn quality() -> Rubric {
    rubric::load(&repo_root().join("rubrics/quality.toml")).unwrap()
}

#[test]
#[ignore = "needs ../shared/datasets (not committed); ./scripts/test runs it when that folder is there"]
fn offline_safety_rarely_alarms_on_replies_dices_experts_judged_safe() {
    let path = shared_data("real/judge_bench/data/dices/dices_350_expert.json");
    let data: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let rubric = quality();
    let mut halves = [(Vec::new(), Vec::new()), (Vec::new(), Vec::new())];
    for item in data["instances"].as_array().unwrap() {
        let prompt = item["instance"]["user_prompt"].as_str().unwrap();
        let response = item["instance"]["response"].as_str().unwrap();
        let label = item["annotations"]["safety"]["majority_human"]
            .as_str()
            .unwrap();
        let judged = offline::judge(&rubric, prompt, response).unwrap();
        let safety = judged.iter().find(|j| j.dimension == "safety").unwrap();
        let unsafety = -f64::from(safety.level);
        let half = (item["id"].as_u64().unwrap() % 2) as usize;
        halves[half].0.push(unsafety);
        halves[half].1.push(label == "Yes");
    }
    let tuned = auc(&halves[0].0, &halves[0].1);
    let held_out = auc(&halves[1].0, &halves[1].1);
    eprintln!(
        "offline:{} safety vs DICES-350 expert labels: ROC-AUC {tuned:.3} (tuning half, n={}), \
         {held_out:.3} (held-out half, n={})",
        offline::VERSION,
        halves[0].0.len(),
        halves[1].0.len()
    );
    // Its ranking is near chance on DICES (subtle, adversarial harms are beyond word lists), but
    // it must not cry wolf: few replies the expert judged safe may fall to level 3 or below.
    let (scores, unsafe_label) = &halves[1];
    let safe: Vec<f64> = scores
        .iter()
        .zip(unsafe_label)
        .filter(|(_, u)| !**u)
        .map(|(s, _)| *s)
        .collect();
    let alarms = safe.iter().filter(|s| **s >= -3.0).count();
    let rate = alarms as f64 / safe.len() as f64;
    eprintln!(
        "false alarms (level <= 3) on expert-safe held-out replies: {alarms}/{}",
        safe.len()
    );
    assert!(rate <= 0.05, "false-alarm rate {rate:.3}");
}

/// (context, final reply) from an hh-rlhf transcript.
fn split_last_reply(transcript: &str) -> Option<(&str, &str)> {
    let at = transcript.rfind("\n\nAssistant:")?;
    Some((&transcript[..at], transcript[at + 12..].trim()))
}

#[test]
#[ignore = "needs ../shared/datasets (not committed); ./scripts/test runs it when that folder is there"]
fn offline_safety_prefers_the_less_harmful_hh_rlhf_reply() {
    let path = shared_data("real/hh_rlhf/harmless-base/test.jsonl.gz");
    let rubric = quality();
    let text = {
        use std::io::Read;
        let mut s = String::new();
        flate2::read::GzDecoder::new(std::fs::File::open(&path).unwrap())
            .read_to_string(&mut s)
            .unwrap();
        s
    };
    let (mut better, mut worse, mut ties) = (0, 0, 0);
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let (Some((ctx, chosen)), Some((_, rejected))) = (
            split_last_reply(v["chosen"].as_str().unwrap()),
            split_last_reply(v["rejected"].as_str().unwrap()),
        ) else {
            continue;
        };
        let level = |reply: &str| offline::judge(&rubric, ctx, reply).unwrap()[0].level;
        match level(chosen).cmp(&level(rejected)) {
            std::cmp::Ordering::Greater => better += 1,
            std::cmp::Ordering::Less => worse += 1,
            std::cmp::Ordering::Equal => ties += 1,
        }
    }
    eprintln!(
        "hh-rlhf harmless-base test: chosen safer {better}, rejected safer {worse}, ties {ties}"
    );
    // Crowdworkers' less harmful reply should win clearly more often than it loses.
    assert!(
        better as f64 > 1.3 * worse as f64,
        "chosen safer {better}, rejected safer {worse}"
    );
}

/// On the tests' sample (no `../shared` needed): chat-b's replies after its switch to the
/// rejected hh-rlhf replies with harm vocabulary (2026-10-11, `tests/data/regressed-sample/`)
/// score lower on offline safety than before it.
#[test]
fn offline_safety_sees_the_tests_regression() {
    use evalwatch::ingest::decode::{LineContext, decode_line};
    let rubric = quality();
    let root = crate::support::sample_capture().join("assistant-prod/chat-b/2026/10");
    let (mut before, mut after) = (Vec::new(), Vec::new());
    for file in crate::support::files_under(&root) {
        let day: u32 = file
            .strip_prefix(&root)
            .unwrap()
            .iter()
            .next()
            .unwrap()
            .to_string_lossy()
            .parse()
            .unwrap();
        let ctx = LineContext {
            path_component: Some("chat-b"),
            ..LineContext::default()
        };
        for (i, line) in std::fs::read_to_string(&file).unwrap().lines().enumerate() {
            let Ok(c) = decode_line(line, i as u64 + 1, &ctx) else {
                continue;
            };
            let level = offline::judge(&rubric, &c.prompt, &c.response).unwrap()[0].level;
            if day >= 11 { &mut after } else { &mut before }.push(f64::from(level));
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (b, a) = (mean(&before), mean(&after));
    eprintln!(
        "chat-b offline safety: {b:.3} before 2026-10-11 (n={}), {a:.3} after (n={})",
        before.len(),
        after.len()
    );
    assert!(a < b - 0.05, "before {b:.3}, after {a:.3}");
}

/// AlpacaEval (GPT-4 judge, pairwise vs text_davinci_003): how often the offline composite prefers
/// the same output as GPT-4 did, over all 10 models' annotations. Not tuned on this data; the
/// halves are by position in each file (even / odd).
#[test]
#[ignore = "needs ../shared/datasets (not committed); ./scripts/test runs it when that folder is there"]
fn offline_composite_agreement_with_alpaca_eval_gpt4() {
    let results = shared_data("real/alpaca_eval/results");
    let rubric = quality();
    let composite = |instruction: &str, output: &str| {
        let judged = offline::judge(&rubric, instruction, output).unwrap();
        let scores: Vec<f64> = judged
            .iter()
            .zip(&rubric.dimensions)
            .map(|(j, d)| d.scale.normalise(j.level).unwrap())
            .collect();
        rubric.composite_of(&scores).unwrap()
    };
    // [half] -> (agree, disagree, offline tie)
    let mut tally = [(0u32, 0u32, 0u32); 2];
    for entry in std::fs::read_dir(&results).unwrap() {
        let path = entry
            .unwrap()
            .path()
            .join("alpaca_eval_gpt4/annotations.json");
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        let items: Vec<serde_json::Value> = serde_json::from_slice(&bytes).unwrap();
        for (i, item) in items.iter().enumerate() {
            // 1 = text_davinci_003 better, 2 = the model better; ties (0, 1.5) and nulls skipped.
            let preference = match &item["preference"] {
                serde_json::Value::String(text) => text.parse::<f64>().ok(),
                value => value.as_f64(),
            };
            let preference = match preference {
                Some(1.0) => 1,
                Some(2.0) => 2,
                _ => continue,
            };
            let (Some(instruction), Some(o1), Some(o2)) = (
                item["instruction"].as_str(),
                item["output_1"].as_str(),
                item["output_2"].as_str(),
            ) else {
                continue;
            };
            let (c1, c2) = (composite(instruction, o1), composite(instruction, o2));
            let t = &mut tally[i % 2];
            if c1 == c2 {
                t.2 += 1;
            } else if (c2 > c1) == (preference == 2) {
                t.0 += 1;
            } else {
                t.1 += 1;
            }
        }
    }
    for (half, (agree, disagree, tie)) in tally.iter().enumerate() {
        eprintln!(
            "AlpacaEval half {half}: offline composite agrees with GPT-4 on {agree}, disagrees on \
             {disagree}, ties {tie} ({:.1}% of decided)",
            100.0 * f64::from(*agree) / f64::from(agree + disagree)
        );
        assert!(
            f64::from(*agree) > 1.2 * f64::from(*disagree),
            "half {half}: agree {agree}, disagree {disagree}"
        );
    }
}
