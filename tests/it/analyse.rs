//! The analyse stage on the tests' sample (`support::sample_capture`): the harmlessness
//! regression of chat-b is found on its first bad day (2026-10-11) and called sustained from the
//! second; chat-a raises nothing in 14 days; the tables open in polars; a re-run replaces, never
//! duplicates.

use polars::prelude::*;

use crate::support::*;

fn day(text: &str) -> i32 {
    let d = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap();
    (d - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()).num_days() as i32
}

/// (model, date, metric, test) -> (verdict, pattern), from the drift table, sorted.
fn drift_rows(df: &DataFrame) -> Vec<(String, i32, String, String, String, String)> {
    let models = strings(df, "model");
    let metrics = strings(df, "metric");
    let tests = strings(df, "test");
    let verdicts = strings(df, "verdict");
    let patterns = strings(df, "pattern");
    let dates = day_numbers(df);
    let mut rows: Vec<_> = (0..df.height())
        .map(|i| {
            (
                models[i].clone(),
                dates[i],
                metrics[i].clone(),
                tests[i].clone(),
                verdicts[i].clone(),
                patterns[i].clone(),
            )
        })
        .collect();
    rows.sort();
    rows
}

#[test]
fn the_sample_regression_is_found_on_its_first_day_and_sustained_from_the_second() {
    let wh = tempfile::tempdir().unwrap();
    let out = run(evalwatch().arg("--warehouse").arg(wh.path()).arg("run"));
    assert_eq!(
        out.status.code(),
        Some(3),
        "an alert fired: {}",
        stderr(&out)
    );
    let summary = stage_summary(&out, "analyse");
    assert_eq!(count(&summary, "model_days"), 28);

    let rows = drift_rows(&read_table(wh.path(), "drift"));
    let safety = |model: &str, date: &str| -> Vec<(String, String)> {
        rows.iter()
            .filter(|r| r.0 == model && r.1 == day(date) && r.2 == "score.safety")
            .map(|r| (r.4.clone(), r.5.clone()))
            .collect()
    };
    // Before the regression: no alert on safety.
    assert!(
        safety("chat-b", "2026-10-10")
            .iter()
            .all(|(v, _)| v != "alert")
    );
    // First bad day: an alert, and one bad day is not yet a trend.
    let first = safety("chat-b", "2026-10-11");
    assert!(first.iter().any(|(v, _)| v == "alert"), "{first:?}");
    assert!(first.iter().all(|(_, p)| p == "intermittent"), "{first:?}");
    // Second bad day: sustained.
    let second = safety("chat-b", "2026-10-12");
    assert!(second.iter().any(|(v, _)| v == "alert"), "{second:?}");
    assert!(second.iter().all(|(_, p)| p == "sustained"), "{second:?}");
    // chat-a: nothing over 14 days.
    let noisy: Vec<_> = rows
        .iter()
        .filter(|r| r.0 == "chat-a" && r.4 == "alert")
        .collect();
    assert!(noisy.is_empty(), "false alarms on chat-a: {noisy:?}");
    // The first day has no baseline: too little data, never a verdict.
    assert!(
        rows.iter()
            .filter(|r| r.1 == day("2026-10-01"))
            .all(|r| r.4 == "insufficient_data")
    );

    // Aggregates: one row per model-day, the safety drop visible in the means.
    let agg = read_table(wh.path(), "aggregates");
    assert_eq!(agg.height(), 28);
    let models = strings(&agg, "model");
    let means = agg.column("safety_mean").unwrap().f64().unwrap().clone();
    let dates = agg.column("date").unwrap().date().unwrap().phys.clone();
    let mean_of = |model: &str, from: &str, to: &str| {
        let v: Vec<f64> = (0..agg.height())
            .filter(|&i| {
                models[i] == model
                    && dates.get(i).unwrap() >= day(from)
                    && dates.get(i).unwrap() <= day(to)
            })
            .map(|i| means.get(i).unwrap())
            .collect();
        v.iter().sum::<f64>() / v.len() as f64
    };
    assert!(
        mean_of("chat-b", "2026-10-11", "2026-10-14")
            < mean_of("chat-b", "2026-10-01", "2026-10-10") - 0.2
    );
    let requests: i64 = agg
        .column("requests")
        .unwrap()
        .i64()
        .unwrap()
        .sum()
        .unwrap();
    assert_eq!(requests, 1899);

    // Analysing one day again replaces that day's parts. The patterns continue from the tracks
    // stored after the day before (no re-comparison of earlier days) and come out as they did
    // when the whole window was analysed in one go; without stored tracks, the days before are
    // compared again, with the same result.
    let files = files_under(&wh.path().join("drift"));
    let rebuilding = "comparing the windows before it too";
    let again = run(evalwatch().arg("--warehouse").arg(wh.path()).args([
        "analyse",
        "--date",
        "2026-10-12",
    ]));
    assert_eq!(again.status.code(), Some(3), "{}", stderr(&again));
    assert!(!stderr(&again).contains(rebuilding), "{}", stderr(&again));
    assert_eq!(files_under(&wh.path().join("drift")), files);
    assert_eq!(drift_rows(&read_table(wh.path(), "drift")), rows);
    std::fs::remove_dir_all(wh.path().join("state/analyse-tracks")).unwrap();
    let cold = run(evalwatch().arg("--warehouse").arg(wh.path()).args([
        "analyse",
        "--date",
        "2026-10-12",
    ]));
    assert_eq!(cold.status.code(), Some(3), "{}", stderr(&cold));
    assert!(stderr(&cold).contains(rebuilding), "{}", stderr(&cold));
    assert_eq!(drift_rows(&read_table(wh.path(), "drift")), rows);

    // Weekly windows (ISO weeks), side by side with the daily ones: chat-b's bad days fall in
    // the weeks of 2026-10-05 (one of seven: the week's safety mean 0.81 against 0.88) and
    // 2026-10-12 (every test).
    let config = wh.path().join("weekly.toml");
    std::fs::write(
        &config,
        format!(
            "[warehouse]\npath = {:?}\n[score]\nrubric = {:?}\n[analyse]\nwindow-days = 7\nbaseline-days = 7\n",
            wh.path().display().to_string(),
            repo_root().join("rubrics/quality.toml").display().to_string()
        ),
    )
    .unwrap();
    let weekly = run(evalwatch().arg("--config").arg(&config).args([
        "analyse",
        "--since",
        "2026-10-01",
        "--until",
        "2026-10-14",
    ]));
    assert_eq!(weekly.status.code(), Some(3), "{}", stderr(&weekly));
    let summary = stage_summary(&weekly, "analyse");
    assert_eq!(summary["window"], "2026-09-28..2026-10-18");
    assert_eq!(count(&summary, "window_days"), 7);
    assert_eq!(count(&summary, "model_days"), 6);
    let all = read_table(wh.path(), "drift");
    let of = |days: i32| {
        all.clone()
            .lazy()
            .filter(col("window_days").eq(lit(days)))
            .collect()
            .unwrap()
    };
    assert_eq!(drift_rows(&of(1)), rows, "the daily rows stay");
    let weeks = drift_rows(&of(7));
    let starts: std::collections::BTreeSet<i32> = weeks.iter().map(|r| r.1).collect();
    assert_eq!(
        starts,
        [day("2026-09-28"), day("2026-10-05"), day("2026-10-12")].into()
    );
    let verdicts = |model: &str, start: &str| -> Vec<(String, String)> {
        weeks
            .iter()
            .filter(|r| r.0 == model && r.1 == day(start) && r.2 == "score.safety")
            .map(|r| (r.4.clone(), r.5.clone()))
            .collect()
    };
    let onset = weeks
        .iter()
        .filter(|r| r.0 == "chat-b" && r.1 == day("2026-10-05") && r.2 == "score.safety")
        .filter(|r| r.4 == "alert")
        .map(|r| r.3.as_str())
        .collect::<Vec<_>>();
    // One bad day in seven: no per-day test sees it; the sequential test may, depending on its
    // simulated level (a one-week baseline carries as much error as the week).
    assert!(
        onset.iter().all(|t| t.starts_with("cusum")),
        "the week of one bad day: {onset:?}"
    );
    let bad = verdicts("chat-b", "2026-10-12");
    assert!(
        bad.iter().filter(|(v, _)| v == "alert").count() >= 5,
        "{bad:?}"
    );
    assert!(
        weeks.iter().all(|r| r.0 != "chat-a" || r.4 != "alert"),
        "false alarms on chat-a"
    );

    // A day of chat-a alone: no alert, exit 0.
    let calm = run(evalwatch().arg("--warehouse").arg(wh.path()).args([
        "analyse",
        "--date",
        "2026-10-09",
    ]));
    assert_eq!(calm.status.code(), Some(0), "{}", stderr(&calm));
}
