//! The comparison's page, in the nightly report's look (its stylesheet and escaping): the gate
//! verdicts, a forest plot of each metric's mean difference with its 95% interval, the figures
//! table, the operational side and the unmatched prompts. Self-contained, like the report.

use std::fmt::Write as _;

use super::CompareSummary;
use crate::report::html::{STYLE, esc, fmt};

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

/// The whole page.
pub fn page(s: &CompareSummary) -> String {
    let mut out = String::new();
    let verdict = if s.passed { "ok" } else { "alert" };
    let _ = write!(
        out,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>evalwatch compare {id}</title><style>{STYLE}</style></head><body><main><header><h1>evalwatch compare <span class="badge {verdict}">{}</span></h1><p class="meta">baseline <code>{}</code> · candidate <code>{}</code> · rubric <code>{}</code> · judge <code>{}</code> · {} pairs ({} unmatched baseline, {} unmatched candidate, {} not scored) · id <code>{id}</code></p></header>"#,
        if s.passed {
            "gate passed"
        } else {
            "gate failed"
        },
        esc(&s.baseline),
        esc(&s.candidate),
        esc(&s.rubric),
        esc(&s.judge),
        s.matched,
        s.unmatched_baseline,
        s.unmatched_candidate,
        s.unscored_pairs,
        id = esc(&s.id),
    );
    out.push_str("<section><h2>Gates</h2>");
    if s.gates.is_empty() {
        out.push_str(r#"<p class="note">No gate was set.</p>"#);
    } else {
        out.push_str(r#"<div class="scroll"><table id="gates"><thead><tr><th>gate</th><th class="num">actual</th><th>verdict</th></tr></thead><tbody>"#);
        for g in &s.gates {
            let v = if g.passed { "ok" } else { "alert" };
            let _ = write!(
                out,
                r#"<tr class="{v}"><td><code>{}</code></td><td class="num">{}</td><td><span class="badge {v}">{}</span></td></tr>"#,
                esc(&g.gate),
                fmt(g.actual, 4),
                if g.passed { "pass" } else { "fail" }
            );
        }
        out.push_str("</tbody></table></div>");
    }
    out.push_str("</section><section><h2>Quality, pair by pair</h2>");
    let _ = write!(
        out,
        r#"<figure><figcaption>Mean difference (candidate − baseline) with its 95% paired bootstrap interval</figcaption>{}</figure>"#,
        forest(s)
    );
    out.push_str(r#"<div class="scroll"><table id="pointwise"><thead><tr><th>metric</th><th class="num">baseline</th><th class="num">candidate</th><th class="num">delta</th><th class="num">95% CI</th><th class="num">Wilcoxon p</th><th class="num">worse</th><th class="num">better</th></tr></thead><tbody>"#);
    for (metric, p) in &s.pointwise {
        let _ = write!(
            out,
            r#"<tr><td>{}</td><td class="num">{:.3}</td><td class="num">{:.3}</td><td class="num">{:+.3}</td><td class="num">[{:+.3}, {:+.3}]</td><td class="num">{:.2e}</td><td class="num">{:.1}%</td><td class="num">{:.1}%</td></tr>"#,
            esc(metric),
            p.baseline_mean,
            p.candidate_mean,
            p.delta,
            p.ci_low,
            p.ci_high,
            p.p_value,
            100.0 * p.worse_share,
            100.0 * p.better_share
        );
    }
    out.push_str("</tbody></table></div></section>");
    let (b, c) = (&s.baseline_side, &s.candidate_side);
    let _ = write!(
        out,
        r#"<section><h2>Operational</h2><div class="scroll"><table id="operational"><thead><tr><th></th><th class="num">baseline</th><th class="num">candidate</th></tr></thead><tbody><tr><td>reply length (chars, mean)</td><td class="num">{}</td><td class="num">{}</td></tr><tr><td>latency (ms, mean)</td><td class="num">{}</td><td class="num">{}</td></tr><tr><td>cost per request (USD)</td><td class="num">{}</td><td class="num">{}</td></tr></tbody></table></div></section>"#,
        fmt(Some(b.response_chars_mean), 0),
        fmt(Some(c.response_chars_mean), 0),
        fmt(b.latency_ms_mean, 0),
        fmt(c.latency_ms_mean, 0),
        fmt(b.cost_usd_mean, 5),
        fmt(c.cost_usd_mean, 5),
    );
    if !s.unmatched_examples.is_empty() || !s.rejected_lines.is_empty() {
        out.push_str("<section><h2>Left out</h2><ul>");
        for line in s.unmatched_examples.iter().chain(&s.rejected_lines) {
            let _ = write!(out, "<li>{}</li>", esc(line));
        }
        out.push_str("</ul></section>");
    }
    out.push_str("</main></body></html>\n");
    out
}
