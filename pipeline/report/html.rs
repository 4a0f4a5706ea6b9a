//! The report's page and its Markdown summary, written by hand: inline CSS, charts as inline
//! SVG, one small inline script that marks the page ready once its charts are in place. Nothing
//! is fetched, so the file opens offline and attaches to a ticket as is.

use crate::schema;
use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::NaiveDate;

use super::{ModelReport, ReportJob, ReportSummary, Row};

const PALETTE: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2",
];

/// Text made safe for HTML.
/// `text` as a markdown code span that holds it whatever it contains: a fence longer than any
/// run of backticks in it, newlines as spaces. Inside a code span no markdown or HTML is
/// interpreted, so capture-derived names (model folders, judge ids) stay text.
pub fn md_code(text: &str) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let mut longest = 0;
    let mut run = 0;
    for c in flat.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    let fence = "`".repeat(longest + 1);
    let pad = if flat.starts_with('`') || flat.ends_with('`') || flat.is_empty() {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{flat}{pad}{fence}")
}

pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

pub fn fmt(value: Option<f64>, digits: usize) -> String {
    match value {
        Some(v) if v.is_finite() => format!("{v:.digits$}"),
        _ => "–".into(),
    }
}

fn usd(value: Option<f64>) -> String {
    match value {
        Some(v) if v.is_finite() && v.abs() < 1.0 => format!("${v:.4}"),
        Some(v) if v.is_finite() => format!("${v:.2}"),
        _ => "–".into(),
    }
}

/// One line of a chart.
pub struct Series {
    pub name: String,
    pub points: Vec<(NaiveDate, f64)>,
}

/// A horizontal line across a chart.
pub struct Threshold {
    pub label: String,
    pub value: f64,
    pub critical: bool,
}

/// A line chart as inline SVG: days on x, `y` range on y, the window shaded, thresholds dashed.
pub fn line_chart(
    id: &str,
    title: &str,
    days: (NaiveDate, NaiveDate),
    window: (NaiveDate, NaiveDate),
    y: (f64, f64),
    series: &[Series],
    thresholds: &[Threshold],
) -> String {
    let (w, h) = (640.0, 260.0);
    let (left, right, top, bottom) = (44.0, 12.0, 12.0, 58.0);
    let span = ((days.1 - days.0).num_days().max(1)) as f64;
    let x_of = |d: NaiveDate| left + (d - days.0).num_days() as f64 / span * (w - left - right);
    let (y0, y1) = (y.0, if y.1 > y.0 { y.1 } else { y.0 + 1.0 });
    let y_of = |v: f64| top + (1.0 - (v.clamp(y0, y1) - y0) / (y1 - y0)) * (h - top - bottom);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" id="{id}" viewBox="0 0 {w} {h}" role="img" aria-label="{t}" preserveAspectRatio="xMidYMid meet"><title>{t}</title>"#,
        id = esc(id),
        t = esc(title)
    );
    // The analysed window.
    let (wx0, wx1) = (x_of(window.0), x_of(window.1).max(x_of(window.0) + 3.0));
    let _ = write!(
        svg,
        r#"<rect class="window" x="{wx0:.1}" y="{top}" width="{:.1}" height="{:.1}"/>"#,
        wx1 - wx0,
        h - top - bottom
    );
    // Axes and grid.
    for i in 0..=4 {
        let v = y0 + (y1 - y0) * i as f64 / 4.0;
        let py = y_of(v);
        let _ = write!(
            svg,
            r#"<line class="grid" x1="{left}" y1="{py:.1}" x2="{:.1}" y2="{py:.1}"/><text class="tick" x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            w - right,
            left - 4.0,
            py + 4.0,
            if y1 - y0 <= 1.0 {
                format!("{v:.2}")
            } else {
                format!("{v:.0}")
            }
        );
    }
    let step = (span / 6.0).ceil().max(1.0) as u64;
    let mut d = days.0;
    while d <= days.1 {
        let _ = write!(
            svg,
            r#"<text class="tick" x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            x_of(d),
            h - bottom + 16.0,
            d.format("%m-%d")
        );
        d = d + chrono::Days::new(step);
    }
    // Labels of lines closer than a label's height step leftwards instead of overlapping.
    let mut placed: Vec<(f64, f64)> = Vec::new();
    for t in thresholds {
        let py = y_of(t.value);
        let mut lx = w - right - 2.0;
        while placed
            .iter()
            .any(|(x, y)| (x - lx).abs() < 1.0 && (y - py).abs() < 11.0)
        {
            lx -= 100.0;
        }
        placed.push((lx, py));
        let class = if t.critical {
            "threshold critical"
        } else {
            "threshold"
        };
        let _ = write!(
            svg,
            r#"<line class="{class}" x1="{left}" y1="{py:.1}" x2="{:.1}" y2="{py:.1}"><title>{}</title></line><text class="threshold-label" x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            w - right,
            esc(&t.label),
            lx,
            py - 3.0,
            esc(&t.label)
        );
    }
    for (i, s) in series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let points: Vec<String> = s
            .points
            .iter()
            .map(|(d, v)| format!("{:.1},{:.1}", x_of(*d), y_of(*v)))
            .collect();
        let _ = write!(
            svg,
            r#"<polyline class="series" data-series="{}" fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
            esc(&s.name),
            points.join(" ")
        );
        for (d, v) in &s.points {
            let _ = write!(
                svg,
                r#"<circle class="point" cx="{:.1}" cy="{:.1}" r="2.5" fill="{color}"><title>{} {d}: {v:.3}</title></circle>"#,
                x_of(*d),
                y_of(*v),
                esc(&s.name)
            );
        }
        // The legend, under the axis.
        let lx = left + (i % 4) as f64 * 140.0;
        let ly = h - bottom + 32.0 + (i / 4) as f64 * 14.0;
        let _ = write!(
            svg,
            r#"<rect x="{lx:.1}" y="{:.1}" width="10" height="10" fill="{color}"/><text class="legend" x="{:.1}" y="{ly:.1}">{}</text>"#,
            ly - 9.0,
            lx + 14.0,
            esc(&s.name)
        );
    }
    svg.push_str("</svg>");
    svg
}

pub const STYLE: &str = r#"
:root { --fg:#1d2330; --muted:#5b6577; --line:#d9dee7; --bg:#ffffff; --card:#f6f8fb;
        --alert:#c62828; --warn:#ef6c00; --ok:#2e7d32; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif; color:var(--fg); background:var(--bg); }
main { max-width:1200px; margin:0 auto; padding:16px; }
h1 { font-size:1.5em; margin:0.2em 0; } h2 { font-size:1.25em; margin:1.4em 0 0.4em; } h3 { font-size:1.05em; margin:1.2em 0 0.4em; }
.meta { color:var(--muted); font-size:0.9em; overflow-wrap:anywhere; }
.badge { display:inline-block; padding:1px 8px; border-radius:10px; font-size:0.8em; color:#fff; vertical-align:middle; }
.badge.alert { background:var(--alert); } .badge.warn { background:var(--warn); } .badge.ok { background:var(--ok); }
.scroll { overflow-x:auto; -webkit-overflow-scrolling:touch; }
table { border-collapse:collapse; width:100%; font-size:0.9em; }
th, td { text-align:left; padding:5px 8px; border-bottom:1px solid var(--line); white-space:nowrap; }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; }
tr.alert td:first-child { border-left:4px solid var(--alert); } tr.warn td:first-child { border-left:4px solid var(--warn); }
.grid { display:grid; grid-template-columns:repeat(auto-fit,minmax(320px,1fr)); gap:16px; }
figure { margin:0; background:var(--card); border-radius:8px; padding:8px; }
figcaption { font-weight:600; font-size:0.9em; margin-bottom:4px; }
svg.chart { width:100%; height:auto; display:block; }
svg .grid { stroke:var(--line); stroke-width:1; } svg .tick, svg .legend { font-size:11px; fill:var(--muted); }
svg .window { fill:#fff3cd; } svg .threshold { stroke:var(--warn); stroke-dasharray:6 4; stroke-width:1.5; }
svg .threshold.critical { stroke:var(--alert); } svg .threshold-label { font-size:10px; fill:var(--muted); }
.cards { display:grid; grid-template-columns:repeat(auto-fill,minmax(150px,1fr)); gap:8px; margin:12px 0; }
.card { background:var(--card); border-radius:8px; padding:8px 10px; }
.card b { display:block; font-size:1.15em; } .card span { color:var(--muted); font-size:0.8em; }
.example { background:var(--card); border-radius:8px; padding:8px 12px; margin:8px 0; }
.example pre { white-space:pre-wrap; overflow-wrap:anywhere; margin:4px 0; font:0.85em/1.4 ui-monospace,Menlo,Consolas,monospace; }
.note { color:var(--muted); font-style:italic; }
.spark { color:var(--accent, #1f77b4); vertical-align:middle; }
.topic-alert { border-left:4px solid #d62728; }
@media (max-width:600px) { main { padding:10px; } body { font-size:14px; } th, td { padding:4px 6px; } }
"#;

/// The 0..1 quality metrics of the trend chart: the composite and each dimension, with their
/// aggregates columns.
fn quality_series(model: &ModelReport, job: &ReportJob) -> Vec<Series> {
    let mut out = vec![Series {
        name: "composite".into(),
        points: points(&model.trend, schema::aggregates::COMPOSITE_MEAN),
    }];
    for d in &job.rubric.dimensions {
        out.push(Series {
            name: d.name.clone(),
            points: points(&model.trend, &schema::dimension_mean(&d.name)),
        });
    }
    out.retain(|s| !s.points.is_empty());
    out
}

fn points(trend: &BTreeMap<NaiveDate, Row>, column: &str) -> Vec<(NaiveDate, f64)> {
    trend
        .iter()
        .filter_map(|(d, r)| r.get(column).map(|v| (*d, *v)))
        .collect()
}

fn thresholds(job: &ReportJob) -> Vec<Threshold> {
    job.alarms
        .iter()
        .filter_map(|rule| {
            let name = match rule.metric.as_str() {
                "composite_quality_score" => "composite",
                m => m.strip_suffix("_score")?,
            };
            Some(Threshold {
                label: format!("{name} {} {}", symbol(&rule.comparison), rule.threshold),
                value: rule.threshold,
                critical: rule.severity == "critical",
            })
        })
        .collect()
}

fn symbol(comparison: &str) -> &'static str {
    match comparison {
        "LessThanThreshold" => "<",
        "LessThanOrEqualToThreshold" => "≤",
        "GreaterThanThreshold" => ">",
        _ => "≥",
    }
}

fn card(out: &mut String, value: String, label: &str) {
    let _ = write!(
        out,
        r#"<div class="card"><b>{}</b><span>{}</span></div>"#,
        esc(&value),
        esc(label)
    );
}

/// The whole page.
pub fn page(job: &ReportJob, s: &ReportSummary) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>evalwatch report {w}</title><style>{STYLE}</style></head><body><main>"#,
        w = esc(&s.window)
    );
    let _ = write!(
        out,
        r#"<header><h1>evalwatch report · {w}</h1><p class="meta">run <code>{run}</code> · rubric <code>{rubric}</code> (hash <code>{rh}</code>) · judge <code>{judge}</code> · config {origin} (sha256 <code>{ch}</code>) · evalwatch {v} · generated {at}</p></header>"#,
        w = esc(&s.window),
        run = esc(&s.run_id),
        rubric = esc(&s.rubric),
        rh = esc(&s.rubric_hash[..12.min(s.rubric_hash.len())]),
        judge = esc(&s.judge),
        origin = esc(&job.config_origin),
        ch = esc(&s.config_hash[..12.min(s.config_hash.len())]),
        v = esc(&s.evalwatch_version),
        at = esc(&s.generated_at),
    );
    if s.judge.starts_with("offline:") {
        out.push_str(r#"<p class="note">Scores by the offline scorer: a deterministic heuristic, not an LLM judge (README: how well it agrees with human labels).</p>"#);
    }
    if let Some(w) = &s.batch_waiting {
        let _ = write!(
            out,
            r#"<p class="note batch">{} judgments are waiting in {} Bedrock batch job(s) submitted since {}: their scores come with the run that collects them; the figures here leave them out.</p>"#,
            w.records,
            w.jobs,
            w.since.map(|t| t.to_rfc3339()).unwrap_or_default()
        );
    }
    // How far to trust the judge: its agreement with people's labels, or that nobody measured it.
    if s.calibration.is_empty() {
        let _ = write!(
            out,
            r#"<p class="note calibration">The judge <code>{}</code> is <b>not calibrated</b> for this rubric: nothing here says how well it agrees with people. <code>evalwatch calibrate --labels FILE</code> measures it.</p>"#,
            esc(&s.judge)
        );
    } else {
        out.push_str(r#"<p class="note calibration">Agreement of the judge with your labels: "#);
        let parts: Vec<String> = job
            .rubric
            .dimensions
            .iter()
            .map(|d| match s.calibration.get(&d.name) {
                Some(c) => format!("{} {}", esc(&d.name), esc(&c.to_string())),
                None => format!("{} not calibrated", esc(&d.name)),
            })
            .collect();
        out.push_str(&parts.join("; "));
        out.push_str("</p>");
    }

    // Overview.
    out.push_str(r#"<section><h2>Overview</h2><div class="scroll"><table id="overview"><thead><tr><th>model</th><th>status</th><th class="num">requests</th><th class="num">judged</th><th class="num">composite</th><th class="num">alerts</th><th class="num">warnings</th><th class="num">judge errors</th><th class="num">judge cost</th><th class="num">cost</th><th class="num">quality per $</th></tr></thead><tbody>"#);
    for m in &s.models {
        let g = |k: &str| m.window.get(k).copied();
        let _ = write!(
            out,
            r##"<tr class="{st}"><td><a href="#model-{id}">{name}</a></td><td><span class="badge {st}">{st}</span></td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td></tr>"##,
            fmt(g(schema::aggregates::REQUESTS), 0),
            fmt(g(schema::aggregates::JUDGED), 0),
            fmt(g(schema::aggregates::COMPOSITE_MEAN), 3),
            fmt(g(schema::aggregates::ALERTS), 0),
            fmt(g(schema::aggregates::WARNINGS), 0),
            fmt(g(schema::aggregates::JUDGE_ERRORS), 0),
            usd(g(schema::aggregates::JUDGE_COST_USD)),
            usd(g(schema::aggregates::COST_USD)),
            fmt(g(schema::aggregates::QUALITY_PER_DOLLAR), 3),
            st = esc(&m.status),
            id = esc(&m.model),
            name = esc(&m.model),
        );
    }
    out.push_str("</tbody></table></div>");
    let _ = write!(
        out,
        r#"<p class="meta">{} alerts and {} warnings in the window · {} quarantined capture lines · {} judge errors{}</p></section>"#,
        s.alerts,
        s.warnings,
        s.quarantined,
        s.judge_errors,
        if job.telemetry {
            ""
        } else {
            " · no telemetry source is configured: GPU and cost figures are empty"
        }
    );

    let first = s.models.iter().flat_map(|m| m.trend.keys()).min().copied();
    let last = s.models.iter().flat_map(|m| m.trend.keys()).max().copied();
    let window = s.window.split_once("..").and_then(|(a, b)| {
        Some((
            crate::config::parse_date(a).ok()?,
            crate::config::parse_date(b).ok()?,
        ))
    });
    let limits = thresholds(job);
    for m in &s.models {
        let _ = write!(
            out,
            r#"<section class="model" id="model-{id}"><h2>{name} <span class="badge {st}">{st}</span></h2>"#,
            id = esc(&m.model),
            name = esc(&m.model),
            st = esc(&m.status)
        );
        let (Some(first), Some(last), Some(window)) = (first, last, window) else {
            out.push_str("</section>");
            continue;
        };
        out.push_str(r#"<div class="grid">"#);
        let _ = write!(
            out,
            r#"<figure><figcaption>Quality per window (mean, 0–1), alarm thresholds dashed, the analysed window shaded</figcaption>{}{}</figure>"#,
            line_chart(
                &format!("quality-{}", m.model),
                &format!("{} quality", m.model),
                (first, last),
                window,
                (0.0, 1.0),
                &quality_series(m, job),
                &limits,
            ),
            m.detectable.as_ref().map_or(String::new(), |d| format!(
                r#"<p class="note detectable">Sensitivity: {}.</p>"#,
                esc(&d.sentence(job.window_days))
            ))
        );
        let gpu = vec![
            Series {
                name: "GPU util mean".into(),
                points: points(&m.trend, schema::aggregates::GPU_UTIL_MEAN),
            },
            Series {
                name: "GPU util p95".into(),
                points: points(&m.trend, schema::aggregates::GPU_UTIL_P95),
            },
            Series {
                name: "GPU memory".into(),
                points: points(&m.trend, schema::aggregates::GPU_MEM_MEAN),
            },
        ];
        if gpu.iter().any(|s| !s.points.is_empty()) {
            let _ = write!(
                out,
                r#"<figure><figcaption>GPU utilisation and memory (%)</figcaption>{}</figure>"#,
                line_chart(
                    &format!("gpu-{}", m.model),
                    &format!("{} GPU", m.model),
                    (first, last),
                    window,
                    (0.0, 100.0),
                    &gpu,
                    &[],
                )
            );
        } else {
            out.push_str(r#"<figure><figcaption>GPU utilisation and memory</figcaption><p class="note">No telemetry for this model.</p></figure>"#);
        }
        out.push_str("</div>");

        // Cost, latency, traffic.
        let g = |k: &str| m.window.get(k).copied();
        out.push_str(r#"<div class="cards">"#);
        card(
            &mut out,
            fmt(g(schema::aggregates::REQUESTS), 0),
            "requests captured",
        );
        card(
            &mut out,
            fmt(g(schema::aggregates::INVOCATIONS), 0),
            "invocations (endpoint)",
        );
        card(
            &mut out,
            fmt(g(schema::aggregates::LATENCY_P50_MS), 0),
            "latency p50 (ms)",
        );
        card(
            &mut out,
            fmt(g(schema::aggregates::LATENCY_P99_MS), 0),
            "latency p99 (ms)",
        );
        card(
            &mut out,
            fmt(g(schema::aggregates::GPU_UTIL_MEAN), 1),
            "GPU util mean (%)",
        );
        card(
            &mut out,
            usd(g(schema::aggregates::COST_USD)),
            "hardware cost",
        );
        card(
            &mut out,
            usd(g(schema::aggregates::COST_PER_1K_REQUESTS)),
            "cost per 1k requests",
        );
        card(
            &mut out,
            usd(g(schema::aggregates::JUDGE_COST_USD)),
            "judge cost",
        );
        card(
            &mut out,
            fmt(g(schema::aggregates::QUALITY_PER_DOLLAR), 3),
            "quality per $",
        );
        card(
            &mut out,
            fmt(g(schema::aggregates::REFUSAL_RATE), 3),
            "refusal rate",
        );
        out.push_str("</div>");

        // Drift.
        out.push_str("<h3>Drift in the window</h3>");
        if m.findings.is_empty() {
            out.push_str(r#"<p class="note">No metric moved against its baseline.</p>"#);
        } else {
            out.push_str(r#"<div class="scroll"><table class="drift"><thead><tr><th>window</th><th>metric</th><th>tests</th><th class="num">statistic</th><th class="num">p (BH)</th><th class="num">baseline mean</th><th class="num">window mean</th><th>verdict</th><th>pattern</th></tr></thead><tbody>"#);
            for f in &m.findings {
                let _ = write!(
                    out,
                    r#"<tr class="{v}"><td>{}</td><td>{}</td><td>{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td><span class="badge {v}">{v}</span></td><td>{}</td></tr>"#,
                    f.date,
                    esc(&f.metric),
                    esc(&f.test),
                    fmt(f.statistic, 3),
                    f.p_adjusted.map_or("–".into(), |p| if p < 1e-4 {
                        format!("{p:.1e}")
                    } else {
                        format!("{p:.4}")
                    }),
                    fmt(f.baseline_mean, 3),
                    fmt(f.current_mean, 3),
                    esc(&f.pattern),
                    v = esc(&f.verdict),
                );
            }
            out.push_str("</tbody></table></div>");
        }

        // A jury: its members' own agreement, and where they were far apart.
        let alphas: Vec<String> = job
            .rubric
            .dimensions
            .iter()
            .filter_map(|d| {
                g(&schema::dimension_jury_alpha(&d.name))
                    .map(|a| format!("{} {a:.2}", esc(&d.name)))
            })
            .collect();
        if !alphas.is_empty() {
            let _ = write!(
                out,
                r#"<h3>Jury</h3><p class="note jury">Members' agreement (Krippendorff's alpha): {}; {} captures with members two levels or more apart.</p>"#,
                alphas.join(", "),
                fmt(g(schema::aggregates::JURY_DISAGREEMENTS), 0)
            );
            if !m.disagreements.is_empty() {
                out.push_str(r#"<div class="scroll"><table class="disagreements"><thead><tr><th>day</th><th>request</th><th>dimension</th><th>members' levels</th></tr></thead><tbody>"#);
                for d in &m.disagreements {
                    let levels: Vec<String> = d
                        .members
                        .iter()
                        .map(|(id, l)| format!("{} {l}", esc(id)))
                        .collect();
                    let _ = write!(
                        out,
                        "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                        d.date,
                        esc(&d.request_id),
                        esc(&d.dimension),
                        levels.join("; ")
                    );
                }
                out.push_str("</tbody></table></div>");
            }
        }

        // Alarm thresholds.
        if !m.breaches.is_empty() {
            out.push_str(r#"<h3>Alarm thresholds crossed</h3><div class="scroll"><table class="breaches"><thead><tr><th>window</th><th>metric</th><th class="num">mean</th><th>threshold</th><th>severity</th></tr></thead><tbody>"#);
            for b in &m.breaches {
                let level = if b.severity == "critical" {
                    "alert"
                } else {
                    "warn"
                };
                let _ = write!(
                    out,
                    r#"<tr class="{level}"><td>{}</td><td>{}</td><td class="num">{:.3}</td><td>{} {}</td><td><span class="badge {level}">{}</span></td></tr>"#,
                    b.date,
                    esc(&b.metric),
                    b.value,
                    symbol(&b.comparison),
                    b.threshold,
                    esc(&b.severity),
                );
            }
            out.push_str("</tbody></table></div>");
        }

        what_users_asked(&mut out, m);

        // Worst replies.
        out.push_str("<h3>Lowest-scoring replies (personal data redacted)</h3>");
        if m.worst.is_empty() {
            out.push_str(r#"<p class="note">No scored replies in the window.</p>"#);
        }
        for e in &m.worst {
            let scores: Vec<String> = e
                .scores
                .iter()
                .map(|(k, v)| format!("{k} {v:.2}"))
                .collect();
            let _ = write!(
                out,
                r#"<div class="example"><div class="meta">{} · <code>{}</code> · composite {:.3} · {}</div><b>prompt</b><pre>{}</pre><b>reply</b><pre>{}</pre></div>"#,
                e.date,
                esc(&e.request_id),
                e.composite,
                esc(&scores.join(", ")),
                esc(&e.prompt),
                esc(&e.response)
            );
        }
        out.push_str("</section>");
    }

    // The run.
    if !job.stages.is_empty() {
        out.push_str(r#"<section><h2>Run</h2><div class="scroll"><table id="stages"><thead><tr><th>stage</th><th>status</th><th class="num">seconds</th></tr></thead><tbody>"#);
        for (stage, seconds, status) in &job.stages {
            let _ = write!(
                out,
                r#"<tr><td>{}</td><td>{}</td><td class="num">{seconds:.2}</td></tr>"#,
                esc(stage),
                esc(status)
            );
        }
        out.push_str("</tbody></table></div></section>");
    }
    // Marks the page ready when every model section has its charts (the browser test reads it).
    let _ = write!(
        out,
        r#"<script>(function(){{var models=document.querySelectorAll("section.model").length;var charts=document.querySelectorAll("svg.chart polyline.series").length;document.body.dataset.models=String(models);document.body.dataset.series=String(charts);document.body.dataset.ready=(models==={} && (models===0 || charts>0))?"1":"0";}})();</script>"#,
        s.models.len()
    );
    out.push_str("</main></body></html>\n");
    out
}

/// The short summary: a few lines fit for a ticket or a chat message.
/// A share trend as a small inline SVG polyline (0 at the bottom, the largest share at the top).
fn sparkline(points: &[(NaiveDate, f64)]) -> String {
    if points.len() < 2 {
        return String::new();
    }
    let top = points
        .iter()
        .map(|(_, v)| *v)
        .fold(0.0f64, f64::max)
        .max(1e-9);
    let step = 80.0 / (points.len() - 1) as f64;
    let coordinates: Vec<String> = points
        .iter()
        .enumerate()
        .map(|(i, (_, v))| format!("{:.1},{:.1}", i as f64 * step, 18.0 - v / top * 16.0))
        .collect();
    format!(
        r#"<svg class="spark" width="80" height="20" viewBox="0 0 80 20" role="img" aria-label="share over the epoch's windows"><polyline fill="none" stroke="currentColor" stroke-width="1.5" points="{}"/></svg>"#,
        coordinates.join(" ")
    )
}

/// Whether a finding is about what users asked (topics or prompt embeddings).
fn about_topics(metric: &str) -> bool {
    metric.starts_with("topic.") || metric == "embedding.prompt"
}

/// The "What users asked" panel: the window's topics with their share, quality and cost, and
/// an alert on what users asked explained by the novel prompts' terms and examples.
fn what_users_asked(out: &mut String, m: &ModelReport) {
    let Some(panel) = &m.topics else {
        return;
    };
    out.push_str("<h3>What users asked</h3>");
    let novel = panel
        .topics
        .iter()
        .find(|t| t.topic == crate::analyse::embedding::NOVEL);
    let alerts: Vec<&super::Finding> = m
        .findings
        .iter()
        .filter(|f| f.verdict == "alert" && about_topics(&f.metric))
        .collect();
    if !alerts.is_empty() {
        out.push_str(r#"<div class="example topic-alert"><div class="meta">"#);
        let listed: Vec<String> = alerts
            .iter()
            .map(|f| {
                format!(
                    "alert · {} · <code>{}</code> ({}, {})",
                    f.date,
                    esc(&f.metric),
                    esc(&f.test),
                    esc(&f.pattern)
                )
            })
            .collect();
        out.push_str(&listed.join("<br>"));
        out.push_str("</div>");
        // What moved on the panel's window: prompts that fit no topic, and the topic that grew
        // the most.
        if let Some(n) = novel.filter(|n| n.prompts > 0 && n.share > n.baseline_share) {
            let _ = write!(
                out,
                "<p>On {}, {:.1}% of the prompts fit no topic of the baseline (baseline {:.1}%); they are about: <b>{}</b>.</p>",
                panel.date,
                n.share * 100.0,
                n.baseline_share * 100.0,
                esc(if n.top_terms.is_empty() {
                    "(too few to say)"
                } else {
                    &n.top_terms
                })
            );
            for e in &n.examples {
                let _ = write!(out, "<pre>{}</pre>", esc(e));
            }
        }
        let grew = panel
            .topics
            .iter()
            .filter(|t| t.topic != crate::analyse::embedding::NOVEL && t.prompts > 0)
            .max_by(|a, b| (a.share - a.baseline_share).total_cmp(&(b.share - b.baseline_share)))
            .filter(|t| t.share > t.baseline_share);
        if let Some(t) = grew {
            let _ = write!(
                out,
                "<p>On {}, the topic that grew the most: {} ({:.1}% of the prompts, baseline {:.1}%), about <b>{}</b>; for example:</p>",
                panel.date,
                esc(&t.topic),
                t.share * 100.0,
                t.baseline_share * 100.0,
                esc(&t.top_terms)
            );
            if let Some(e) = t.examples.first() {
                let _ = write!(out, "<pre>{}</pre>", esc(e));
            }
        }
        out.push_str("</div>");
    }
    let _ = write!(
        out,
        r#"<p class="note">Topics: k-means on the embedded prompts of the baseline for the epoch from {} (topic names hold within an epoch); shares on {}, the line their trend over the epoch's windows. Cost share: the topic's share of the window's tokens. Examples redacted.</p><div class="scroll"><table class="topics"><thead><tr><th>topic</th><th class="num">share</th><th>trend</th><th class="num">baseline</th><th class="num">prompts</th><th class="num">composite</th><th class="num">judge errors</th><th class="num">cost share</th><th>terms</th><th>example</th></tr></thead><tbody>"#,
        panel.epoch, panel.date
    );
    let percent = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{:.1}%", v * 100.0));
    for t in &panel.topics {
        let _ = write!(
            out,
            r#"<tr><td>{}</td><td class="num">{}</td><td>{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td>{}</td><td>{}</td></tr>"#,
            esc(&t.topic),
            percent(Some(t.share)),
            sparkline(&t.trend),
            percent(Some(t.baseline_share)),
            t.prompts,
            fmt(t.composite_mean, 3),
            percent(t.judge_error_rate),
            percent(t.cost_share),
            esc(&t.top_terms),
            esc(t.examples.first().map_or("", String::as_str)),
        );
    }
    out.push_str("</tbody></table></div>");
}

pub fn markdown(job: &ReportJob, s: &ReportSummary) -> String {
    let mut out = String::new();
    let verdict = if s.alerts > 0 {
        "ALERT"
    } else if s.warnings > 0 {
        "warnings"
    } else {
        "ok"
    };
    let _ = writeln!(
        out,
        "**evalwatch {}: {verdict}** ({} alerts, {} warnings; rubric {}, judge {})\n",
        s.window,
        s.alerts,
        s.warnings,
        md_code(&s.rubric),
        md_code(&s.judge)
    );
    for m in &s.models {
        let g = |k: &str| m.window.get(k).copied();
        let _ = write!(
            out,
            "- {}: {} · composite {} · {} requests · cost {} ({} per 1k)",
            md_code(&m.model),
            m.status,
            fmt(g(schema::aggregates::COMPOSITE_MEAN), 3),
            fmt(g(schema::aggregates::REQUESTS), 0),
            usd(g(schema::aggregates::COST_USD)),
            usd(g(schema::aggregates::COST_PER_1K_REQUESTS)),
        );
        // Per metric: the first day it alerted, and whether it became sustained.
        let mut alerted: BTreeMap<&str, (NaiveDate, bool)> = BTreeMap::new();
        for f in m.findings.iter().filter(|f| f.verdict == "alert") {
            let entry = alerted.entry(&f.metric).or_insert((f.date, false));
            entry.0 = entry.0.min(f.date);
            entry.1 |= f.pattern == "sustained";
        }
        let alerted: Vec<String> = alerted
            .iter()
            .map(|(metric, (since, sustained))| {
                let kind = if *sustained {
                    "sustained"
                } else {
                    "intermittent"
                };
                format!("{metric} since {since} ({kind})")
            })
            .collect();
        if !alerted.is_empty() {
            let _ = write!(out, " · alerts: {}", alerted.join(", "));
        }
        if let Some(d) = &m.detectable {
            let _ = write!(out, " · {}", d.sentence(job.window_days));
        }
        if let Some(panel) = &m.topics {
            let largest: Vec<String> = panel
                .topics
                .iter()
                .filter(|t| t.topic != crate::analyse::embedding::NOVEL && t.prompts > 0)
                .take(3)
                .map(|t| format!("{} {:.0}% ({})", t.topic, t.share * 100.0, t.top_terms))
                .collect();
            let novel = panel
                .topics
                .iter()
                .find(|t| t.topic == crate::analyse::embedding::NOVEL)
                .map_or(0.0, |t| t.share);
            let _ = write!(
                out,
                " · users asked ({}): {}; {:.0}% fit no topic",
                panel.date,
                md_code(&largest.join("; ")),
                novel * 100.0
            );
        }
        // Alarm thresholds crossed: per metric, on how many windows.
        let mut crossed: BTreeMap<&str, (usize, f64, &str)> = BTreeMap::new();
        for b in &m.breaches {
            let entry = crossed
                .entry(&b.metric)
                .or_insert((0, b.threshold, &b.severity));
            entry.0 += 1;
        }
        if !crossed.is_empty() {
            let text: Vec<String> = crossed
                .iter()
                .map(|(metric, (n, threshold, severity))| {
                    format!("{metric} past {threshold} in {n} windows ({severity})")
                })
                .collect();
            let _ = write!(out, " · alarm thresholds: {}", text.join(", "));
        }
        out.push('\n');
    }
    if let Some(w) = &s.batch_waiting {
        let _ = writeln!(
            out,
            "\n{} judgments are waiting in {} Bedrock batch job(s); their scores come with the run that collects them.",
            w.records, w.jobs
        );
    }
    if s.calibration.is_empty() {
        let _ = writeln!(
            out,
            "\nThe judge is not calibrated for this rubric (`evalwatch calibrate --labels FILE`)."
        );
    } else {
        for (dimension, c) in &s.calibration {
            let _ = writeln!(out, "\nAgreement with your labels, {dimension}: {c}.");
        }
    }
    let _ = writeln!(
        out,
        "\n{} quarantined lines, {} judge errors. Report: {}",
        s.quarantined,
        s.judge_errors,
        md_code(&s.index)
    );
    let _ = job;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_code_spans_hold_any_text() {
        assert_eq!(md_code("chat-a"), "`chat-a`");
        assert_eq!(md_code("a`b"), "``a`b``");
        assert_eq!(md_code("`x"), "`` `x ``");
        assert_eq!(md_code("x\n# h"), "`x # h`");
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            esc(r#"<script>"x" & 'y'</script>"#),
            "&lt;script&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/script&gt;"
        );
    }

    #[test]
    fn a_chart_has_its_series_thresholds_and_window() {
        let d = |day| NaiveDate::from_ymd_opt(2026, 10, day).unwrap();
        let svg = line_chart(
            "q",
            "quality",
            (d(1), d(14)),
            (d(12), d(12)),
            (0.0, 1.0),
            &[Series {
                name: "safety".into(),
                points: vec![(d(1), 0.9), (d(12), 0.5)],
            }],
            &[Threshold {
                label: "safety < 0.8".into(),
                value: 0.8,
                critical: true,
            }],
        );
        assert!(svg.starts_with(r#"<svg class="chart""#));
        assert_eq!(svg.matches("<polyline").count(), 1);
        assert_eq!(svg.matches(r#"class="point""#).count(), 2);
        assert!(svg.contains(r#"class="threshold critical""#));
        assert!(svg.contains(r#"class="window""#));
        assert!(svg.ends_with("</svg>"));
    }
}
