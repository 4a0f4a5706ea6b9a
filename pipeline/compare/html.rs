//! The comparison's page (`reports/templates/compare.html`), in the nightly report's look: the
//! gate verdicts, a forest plot of each metric's mean difference with its 95% interval, the
//! figures table, the pairwise results (`--pairwise`), the operational side and the unmatched
//! prompts. Self-contained, like the report.

use std::fmt::Write as _;

use super::CompareSummary;
use crate::report::html::{esc, fmt, render};

/// Each metric's delta and interval on a shared axis, zero marked.
fn forest(s: &CompareSummary) -> String {
    let rows: Vec<(&String, f64, f64, f64)> = s
        .pointwise
        .iter()
        .filter(|(_, p)| p.delta.is_finite())
        .map(|(m, p)| (m, p.delta, p.ci_low, p.ci_high))
        .collect();
    let reach = rows
        .iter()
        .flat_map(|(_, d, lo, hi)| [d.abs(), lo.abs(), hi.abs()])
        .filter(|v| v.is_finite())
        .fold(0.05f64, f64::max)
        * 1.1;
    let (w, row_h, left, right) = (640.0, 26.0, 150.0, 20.0);
    let h = row_h * rows.len() as f64 + 30.0;
    let x = |v: f64| left + (v + reach) / (2.0 * reach) * (w - left - right);
    let mut svg = format!(
        r#"<svg class="chart" id="forest" viewBox="0 0 {w} {h}" role="img" aria-label="differences"><title>candidate − baseline, 95% intervals</title>"#
    );
    let _ = write!(
        svg,
        r#"<line class="grid" x1="{0:.1}" y1="4" x2="{0:.1}" y2="{1:.1}"/><text class="tick" x="{0:.1}" y="{2:.1}" text-anchor="middle">0</text><text class="tick" x="{3:.1}" y="{2:.1}" text-anchor="middle">{4:+.2}</text><text class="tick" x="{5:.1}" y="{2:.1}" text-anchor="middle">{6:+.2}</text>"#,
        x(0.0),
        h - 22.0,
        h - 8.0,
        x(-reach),
        -reach,
        x(reach),
        reach
    );
    for (i, (metric, delta, lo, hi)) in rows.iter().enumerate() {
        let y = 14.0 + i as f64 * row_h;
        let colour = if *hi < 0.0 {
            "#c62828"
        } else if *lo > 0.0 {
            "#2e7d32"
        } else {
            "#1f77b4"
        };
        let _ = write!(
            svg,
            r#"<text class="legend" x="{:.1}" y="{:.1}" text-anchor="end">{}</text><line class="series" x1="{:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{colour}" stroke-width="2"/><circle class="point" cx="{:.1}" cy="{y:.1}" r="4" fill="{colour}"><title>{}: {delta:+.4} [{lo:+.4}, {hi:+.4}]</title></circle>"#,
            left - 8.0,
            y + 4.0,
            esc(metric),
            x(*lo),
            x(*hi),
            x(*delta),
            esc(metric),
        );
    }
    svg.push_str("</svg>");
    svg
}

/// The whole page: `reports/templates/compare.html`.
pub fn page(s: &CompareSummary) -> String {
    let percent = |v: f64| format!("{:.1}%", 100.0 * v);
    let pointwise: Vec<serde_json::Value> = s
        .pointwise
        .iter()
        .map(|(metric, p)| {
            serde_json::json!({
                "metric": metric,
                "baseline": format!("{:.3}", p.baseline_mean),
                "candidate": format!("{:.3}", p.candidate_mean),
                "delta": format!("{:+.3}", p.delta),
                "ci": format!("[{:+.3}, {:+.3}]", p.ci_low, p.ci_high),
                "p": format!("{:.2e}", p.p_value),
                "worse": percent(p.worse_share),
                "better": percent(p.better_share),
            })
        })
        .collect();
    let pairwise = s.pairwise.as_ref().map(|p| {
        let share = |k: usize| percent(k as f64 / p.n.max(1) as f64);
        serde_json::json!({
            "n": p.n,
            "wins": p.wins,
            "ties": p.ties,
            "losses": p.losses,
            "missing": p.missing,
            "inconsistent": p.inconsistent,
            "win_share": share(p.wins),
            "tie_share": share(p.ties),
            "loss_share": share(p.losses),
            "win_rate": format!("{:.3}", p.win_rate),
            "interval": format!("{:.3}–{:.3}", p.win_rate_lower, p.win_rate_upper),
            "length_controlled": fmt(Some(p.length_controlled_win_rate).filter(|v| v.is_finite()), 3),
            "inconsistency": percent(p.position_inconsistency),
        })
    });
    let (b, c) = (&s.baseline_side, &s.candidate_side);
    let operational = [
        (
            "reply length (chars, mean)",
            fmt(Some(b.response_chars_mean), 0),
            fmt(Some(c.response_chars_mean), 0),
        ),
        (
            "latency (ms, mean)",
            fmt(b.latency_ms_mean, 0),
            fmt(c.latency_ms_mean, 0),
        ),
        (
            "cost per request (USD)",
            fmt(b.cost_usd_mean, 5),
            fmt(c.cost_usd_mean, 5),
        ),
    ];
    let context = serde_json::json!({
        "id": s.id,
        "passed": s.passed,
        "verdict": if s.passed { "ok" } else { "alert" },
        "baseline": s.baseline,
        "candidate": s.candidate,
        "rubric": s.rubric,
        "judge": s.judge,
        "matched": s.matched,
        "unmatched_baseline": s.unmatched_baseline,
        "unmatched_candidate": s.unmatched_candidate,
        "unscored": s.unscored_pairs,
        "gates": s.gates.iter().map(|g| serde_json::json!({
            "gate": g.gate,
            "actual": fmt(g.actual, 4),
            "passed": g.passed,
            "verdict": if g.passed { "ok" } else { "alert" },
        })).collect::<Vec<_>>(),
        "forest": forest(s),
        "pointwise": pointwise,
        "pairwise": pairwise,
        "operational": operational.iter().map(|(label, b, c)| serde_json::json!({
            "label": label, "baseline": b, "candidate": c,
        })).collect::<Vec<_>>(),
        "left_out": s.unmatched_examples.iter().chain(&s.rejected_lines).collect::<Vec<_>>(),
    });
    render("compare.html", &context)
}
