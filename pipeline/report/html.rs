//! The report's page and its Markdown summary. The HTML pages (the report, `compare`'s,
//! `calibrate`'s) are minijinja templates in `reports/templates/` (with their stylesheet,
//! `report.css`), compiled into the binary and escaped by default; this module works out what
//! they show and draws the charts as inline SVG. One small inline script marks the report ready
//! once its charts are in place. Nothing is fetched, so a page opens offline and attaches to a
//! ticket as is.

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

/// The pages' stylesheet, inlined into each.
const STYLE: &str = include_str!("../../reports/templates/report.css");

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

/// The templates of `reports/templates/`, compiled into the binary (a lone binary still writes
/// reports); HTML escaped by default (minijinja escapes every value of a `.html` template but
/// the chart SVGs this module draws, marked `| safe` there).
fn templates() -> &'static minijinja::Environment<'static> {
    static ENV: std::sync::OnceLock<minijinja::Environment<'static>> = std::sync::OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = minijinja::Environment::new();
        for (name, source) in [
            (
                "report.html",
                include_str!("../../reports/templates/report.html"),
            ),
            (
                "compare.html",
                include_str!("../../reports/templates/compare.html"),
            ),
            (
                "calibrate.html",
                include_str!("../../reports/templates/calibrate.html"),
            ),
            ("report.css", STYLE),
        ] {
            if let Err(e) = env.add_template(name, source) {
                panic!("reports/templates/{name} does not parse: {e}");
            }
        }
        env
    })
}

/// Renders a template of [`templates`] with a JSON context.
pub fn render(name: &str, context: &serde_json::Value) -> String {
    templates()
        .get_template(name)
        .and_then(|t| t.render(minijinja::value::Serde(context)))
        .unwrap_or_else(|e| panic!("reports/templates/{name}: {e:#}"))
}

/// The whole page: `reports/templates/report.html` with what this function works out.
pub fn page(job: &ReportJob, s: &ReportSummary) -> String {
    let calibration: Vec<String> = if s.calibration.is_empty() {
        Vec::new()
    } else {
        job.rubric
            .dimensions
            .iter()
            .map(|d| match s.calibration.get(&d.name) {
                Some(c) => format!("{} {}", d.name, c),
                None => format!("{} not calibrated", d.name),
            })
            .collect()
    };
    let first = s.models.iter().flat_map(|m| m.trend.keys()).min().copied();
    let last = s.models.iter().flat_map(|m| m.trend.keys()).max().copied();
    let window = s.window.split_once("..").and_then(|(a, b)| {
        Some((
            crate::config::parse_date(a).ok()?,
            crate::config::parse_date(b).ok()?,
        ))
    });
    let limits = thresholds(job);
    let models: Vec<serde_json::Value> = s
        .models
        .iter()
        .map(|m| {
            let g = |k: &str| m.window.get(k).copied();
            let overview = [
                fmt(g(schema::aggregates::REQUESTS), 0),
                fmt(g(schema::aggregates::JUDGED), 0),
                fmt(g(schema::aggregates::COMPOSITE_MEAN), 3),
                fmt(g(schema::aggregates::ALERTS), 0),
                fmt(g(schema::aggregates::WARNINGS), 0),
                fmt(g(schema::aggregates::JUDGE_ERRORS), 0),
                usd(g(schema::aggregates::JUDGE_COST_USD)),
                usd(g(schema::aggregates::COST_USD)),
                fmt(g(schema::aggregates::QUALITY_PER_DOLLAR), 3),
            ];
            let mut model = serde_json::json!({
                "model": m.model,
                "status": m.status,
                "overview": overview,
            });
            let (Some(first), Some(last), Some(window)) = (first, last, window) else {
                return model;
            };
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
            let gpu_chart = gpu.iter().any(|s| !s.points.is_empty()).then(|| {
                line_chart(
                    &format!("gpu-{}", m.model),
                    &format!("{} GPU", m.model),
                    (first, last),
                    window,
                    (0.0, 100.0),
                    &gpu,
                    &[],
                )
            });
            let cards = [
                (fmt(g(schema::aggregates::REQUESTS), 0), "requests captured"),
                (
                    fmt(g(schema::aggregates::INVOCATIONS), 0),
                    "invocations (endpoint)",
                ),
                (
                    fmt(g(schema::aggregates::LATENCY_P50_MS), 0),
                    "latency p50 (ms)",
                ),
                (
                    fmt(g(schema::aggregates::LATENCY_P99_MS), 0),
                    "latency p99 (ms)",
                ),
                (
                    fmt(g(schema::aggregates::GPU_UTIL_MEAN), 1),
                    "GPU util mean (%)",
                ),
                (usd(g(schema::aggregates::COST_USD)), "hardware cost"),
                (
                    usd(g(schema::aggregates::COST_PER_1K_REQUESTS)),
                    "cost per 1k requests",
                ),
                (usd(g(schema::aggregates::JUDGE_COST_USD)), "judge cost"),
                (
                    fmt(g(schema::aggregates::QUALITY_PER_DOLLAR), 3),
                    "quality per $",
                ),
                (fmt(g(schema::aggregates::REFUSAL_RATE), 3), "refusal rate"),
            ];
            let findings: Vec<serde_json::Value> = m
                .findings
                .iter()
                .map(|f| {
                    serde_json::json!({
                        "date": f.date.to_string(),
                        "metric": f.metric,
                        "test": f.test,
                        "statistic": fmt(f.statistic, 3),
                        "p": f.p_adjusted.map_or("–".into(), |p| if p < 1e-4 {
                            format!("{p:.1e}")
                        } else {
                            format!("{p:.4}")
                        }),
                        "baseline": fmt(f.baseline_mean, 3),
                        "current": fmt(f.current_mean, 3),
                        "verdict": f.verdict,
                        "pattern": f.pattern,
                    })
                })
                .collect();
            let alphas: Vec<String> = job
                .rubric
                .dimensions
                .iter()
                .filter_map(|d| {
                    g(&schema::dimension_jury_alpha(&d.name)).map(|a| format!("{} {a:.2}", d.name))
                })
                .collect();
            let jury = (!alphas.is_empty()).then(|| {
                serde_json::json!({
                    "alphas": alphas,
                    "disagreeing": fmt(g(schema::aggregates::JURY_DISAGREEMENTS), 0),
                    "disagreements": m.disagreements.iter().map(|d| serde_json::json!({
                        "date": d.date.to_string(),
                        "request_id": d.request_id,
                        "dimension": d.dimension,
                        "levels": d.members.iter().map(|(id, l)| format!("{id} {l}")).collect::<Vec<_>>(),
                    })).collect::<Vec<_>>(),
                })
            });
            let breaches: Vec<serde_json::Value> = m
                .breaches
                .iter()
                .map(|b| {
                    serde_json::json!({
                        "date": b.date.to_string(),
                        "metric": b.metric,
                        "value": format!("{:.3}", b.value),
                        "threshold": format!("{} {}", symbol(&b.comparison), b.threshold),
                        "severity": b.severity,
                        "level": if b.severity == "critical" { "alert" } else { "warn" },
                    })
                })
                .collect();
            let worst: Vec<serde_json::Value> = m
                .worst
                .iter()
                .map(|e| {
                    let scores: Vec<String> =
                        e.scores.iter().map(|(k, v)| format!("{k} {v:.2}")).collect();
                    serde_json::json!({
                        "date": e.date.to_string(),
                        "request_id": e.request_id,
                        "composite": format!("{:.3}", e.composite),
                        "scores": scores.join(", "),
                        "prompt": e.prompt,
                        "response": e.response,
                    })
                })
                .collect();
            let extra = serde_json::json!({
                "charts": true,
                "quality_chart": line_chart(
                    &format!("quality-{}", m.model),
                    &format!("{} quality", m.model),
                    (first, last),
                    window,
                    (0.0, 1.0),
                    &quality_series(m, job),
                    &limits,
                ),
                "detectable": m.detectable.as_ref().map(|d| d.sentence(job.window_days)),
                "gpu_chart": gpu_chart,
                "cards": cards.iter().map(|(value, label)| serde_json::json!({"value": value, "label": label})).collect::<Vec<_>>(),
                "findings": findings,
                "jury": jury,
                "breaches": breaches,
                "topics": what_users_asked(m),
                "worst": worst,
            });
            if let (Some(model), serde_json::Value::Object(extra)) = (model.as_object_mut(), extra) {
                model.extend(extra);
            }
            model
        })
        .collect();
    let context = serde_json::json!({
        "window": s.window,
        "run_id": s.run_id,
        "rubric": s.rubric,
        "rubric_hash": &s.rubric_hash[..12.min(s.rubric_hash.len())],
        "judge": s.judge,
        "config_origin": job.config_origin,
        "config_hash": &s.config_hash[..12.min(s.config_hash.len())],
        "version": s.evalwatch_version,
        "generated_at": s.generated_at,
        "offline": s.judge.starts_with("offline:"),
        "batch_waiting": s.batch_waiting.as_ref().map(|w| serde_json::json!({
            "records": w.records,
            "jobs": w.jobs,
            "since": w.since.map(|t| t.to_rfc3339()).unwrap_or_default(),
        })),
        "calibration": calibration,
        "models": models,
        "alerts": s.alerts,
        "warnings": s.warnings,
        "quarantined": s.quarantined,
        "judge_errors": s.judge_errors,
        "telemetry": job.telemetry,
        "teams": s.teams.iter().map(|t| serde_json::json!({
            "team": t.team,
            "models": t.models.join(", "),
            "requests": fmt(Some(t.requests), 0),
            "judged": fmt(Some(t.judged), 0),
            "composite": fmt(t.composite_mean, 3),
            "judge_cost": usd(t.judge_cost_usd),
            "cost": usd(t.cost_usd),
            "cost_per_1k": usd(t.cost_per_1k_requests),
            "quality_per_dollar": fmt(t.quality_per_dollar, 3),
        })).collect::<Vec<_>>(),
        "stages": job.stages.iter().map(|(stage, seconds, status)| serde_json::json!({
            "stage": stage,
            "status": status,
            "seconds": format!("{seconds:.2}"),
        })).collect::<Vec<_>>(),
    });
    render("report.html", &context)
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
fn what_users_asked(m: &ModelReport) -> Option<serde_json::Value> {
    let panel = m.topics.as_ref()?;
    let percent = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{:.1}%", v * 100.0));
    let alerts: Vec<serde_json::Value> = m
        .findings
        .iter()
        .filter(|f| f.verdict == "alert" && about_topics(&f.metric))
        .map(|f| {
            serde_json::json!({
                "date": f.date.to_string(),
                "metric": f.metric,
                "test": f.test,
                "pattern": f.pattern,
            })
        })
        .collect();
    // What moved on the panel's window: prompts that fit no topic, and the topic that grew the
    // most.
    let novel = panel
        .topics
        .iter()
        .find(|t| t.topic == crate::analyse::embedding::NOVEL)
        .filter(|n| n.prompts > 0 && n.share > n.baseline_share)
        .map(|n| {
            serde_json::json!({
                "share": percent(Some(n.share)),
                "baseline": percent(Some(n.baseline_share)),
                "terms": if n.top_terms.is_empty() { "(too few to say)" } else { n.top_terms.as_str() },
                "examples": n.examples,
            })
        });
    let grew = panel
        .topics
        .iter()
        .filter(|t| t.topic != crate::analyse::embedding::NOVEL && t.prompts > 0)
        .max_by(|a, b| (a.share - a.baseline_share).total_cmp(&(b.share - b.baseline_share)))
        .filter(|t| t.share > t.baseline_share)
        .map(|t| {
            serde_json::json!({
                "topic": t.topic,
                "share": percent(Some(t.share)),
                "baseline": percent(Some(t.baseline_share)),
                "terms": t.top_terms,
                "example": t.examples.first(),
            })
        });
    let rows: Vec<serde_json::Value> = panel
        .topics
        .iter()
        .map(|t| {
            serde_json::json!({
                "topic": t.topic,
                "share": percent(Some(t.share)),
                "trend": sparkline(&t.trend),
                "baseline": percent(Some(t.baseline_share)),
                "prompts": t.prompts,
                "composite": fmt(t.composite_mean, 3),
                "errors": percent(t.judge_error_rate),
                "cost_share": percent(t.cost_share),
                "terms": t.top_terms,
                "example": t.examples.first().map_or("", String::as_str),
            })
        })
        .collect();
    Some(serde_json::json!({
        "date": panel.date.to_string(),
        "epoch": panel.epoch.to_string(),
        "alerts": alerts,
        "novel": novel,
        "grew": grew,
        "rows": rows,
    }))
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
    for t in &s.teams {
        let _ = writeln!(
            out,
            "- team {}: {} · composite {} · cost {} ({} per 1k) · judge cost {} · quality per $ {}",
            md_code(&t.team),
            t.models
                .iter()
                .map(|m| md_code(m))
                .collect::<Vec<_>>()
                .join(", "),
            fmt(t.composite_mean, 3),
            usd(t.cost_usd),
            usd(t.cost_per_1k_requests),
            usd(t.judge_cost_usd),
            fmt(t.quality_per_dollar, 3)
        );
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
