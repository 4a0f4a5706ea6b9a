//! The report in a real browser: headless Chromium (Debian's `chromium`, which `scripts/test`
//! installs when missing) loads the page of a run on the bundled sample from disk, runs its
//! script without a console message, and the DOM has every model's charts (series, thresholds,
//! the analysed window), the drift table showing chat-b's sustained regression and redacted
//! examples. Screenshots at 1280 px and at phone width go to `target/report-*.png`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::*;

fn chromium() -> PathBuf {
    for name in [
        "chromium",
        "chromium-browser",
        "google-chrome",
        "google-chrome-stable",
    ] {
        if let Ok(out) = Command::new("sh")
            .args(["-c", &format!("command -v {name}")])
            .output()
        {
            let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if out.status.success() && !path.is_empty() {
                return PathBuf::from(path);
            }
        }
    }
    panic!(
        "no Chromium: the report is tested in a real browser; `./scripts/test` installs Debian's \
         `chromium` (apt-get install chromium)"
    );
}

/// Runs headless Chromium on `page` with `args`; (stdout, stderr).
fn headless(page: &Path, profile: &Path, args: &[&str]) -> (String, String) {
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_report_renders_in_a_browser_with_its_charts_and_the_regression() {
    let wh = tempfile::tempdir().unwrap();
    let out = run(evalwatch().arg("--warehouse").arg(wh.path()).arg("run"));
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let summary = stage_summary(&out, "report");
    let index = PathBuf::from(summary["index"].as_str().unwrap());
    assert!(index.starts_with(wh.path()), "{}", index.display());
    let html = std::fs::read_to_string(&index).unwrap();
    // The thresholds crossed, their `<` escaped like every other value (the page was built with
    // format strings once and left it raw).
    assert!(
        html.contains(r#"<td>&lt; 0.8</td>"#) && !html.contains("<td>< 0.8</td>"),
        "the safety threshold cell"
    );
    // Self-contained: nothing to fetch.
    for external in ["src=\"http", "href=\"http", "<link", "@import", "url(http"] {
        assert!(!html.contains(external), "the page fetches `{external}`");
    }
    let md = std::fs::read_to_string(index.with_file_name("summary.md")).unwrap();
    assert!(
        md.contains("ALERT") && md.contains("score.safety since 2026-10-11 (sustained)"),
        "{md}"
    );
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(index.with_file_name("summary.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(json["models"].as_array().unwrap().len(), 2);
    assert_eq!(json["quarantined"], 6);
    // What the monitor can see, per model, from the aggregates of the window's last day: in
    // the JSON, in the Markdown, under each quality chart.
    for m in json["models"].as_array().unwrap() {
        let d = &m["detectable"];
        let (one, three, seven) = (
            d["within_1d"].as_f64().unwrap(),
            d["within_3d"].as_f64().unwrap(),
            d["within_7d"].as_f64().unwrap(),
        );
        assert!(one > three && three > seven && seven > 0.0, "{d}");
        assert_eq!(d["date"], "2026-10-14");
        let sentence = format!(
            "at {:.0} judged a day this monitor sees a sustained drop of the composite >= {three:.3} within 3 days",
            d["judged"].as_f64().unwrap()
        );
        assert!(md.contains(&sentence), "{sentence}\n{md}");
        let escaped = sentence.replace('>', "&gt;");
        assert!(
            html.contains(&format!("Sensitivity: {escaped}")),
            "{escaped}"
        );
    }

    let profile = tempfile::tempdir().unwrap();
    let (dom, log) = headless(&index, profile.path(), &["--dump-dom"]);
    let console: Vec<&str> = log.lines().filter(|l| l.contains(":CONSOLE")).collect();
    assert!(console.is_empty(), "console messages: {console:?}");
    assert!(
        dom.contains(r#"data-ready="1""#),
        "the page's script did not finish"
    );
    assert!(dom.contains(r#"data-models="2""#));
    assert_eq!(
        dom.matches(r#"<svg class="chart""#).count(),
        4,
        "two charts per model"
    );
    assert!(dom.matches(r#"class="series""#).count() >= 2 * 4 + 2 * 3);
    assert!(dom.matches(r#"class="threshold critical""#).count() >= 2);
    assert!(dom.contains(r#"class="window""#));
    let chat_b = &dom[dom.find(r#"id="model-chat-b""#).expect("chat-b's section")..];
    assert!(chat_b.contains("score.safety") && chat_b.contains("sustained"));
    assert!(dom.matches(r#"class="example""#).count() >= 2 * evalwatch::report::WORST);

    // At phone width (390 px) nothing makes the page wider than the screen: charts shrink,
    // wide tables scroll inside their own boxes.
    // Headless Chromium's window is at least 500 px wide, so the page goes in a 390 px frame.
    let profile = tempfile::tempdir().unwrap();
    let frame = index.with_file_name("phone.html");
    std::fs::write(
        &frame,
        r#"<!doctype html><html><body><iframe id="f" src="index.html" width="390" height="2400"></iframe><script>window.onload=function(){var b=document.getElementById("f").contentDocument.body.dataset;document.body.dataset.width=b.width;document.body.dataset.viewport=b.viewport;};</script></body></html>"#,
    )
    .unwrap();
    let (phone, _) = headless(
        &frame,
        profile.path(),
        &[
            "--dump-dom",
            "--allow-file-access-from-files",
            "--virtual-time-budget=5000",
        ],
    );
    let attr = |name: &str| -> u32 {
        let at = phone
            .find(&format!("data-{name}=\""))
            .unwrap_or_else(|| panic!("{name}: {phone}"));
        let rest = &phone[at + name.len() + 7..];
        rest[..rest.find('"').unwrap()].parse().unwrap()
    };
    assert_eq!(attr("viewport"), 390);
    assert!(
        attr("width") <= attr("viewport"),
        "the page is {} px wide on a 390 px screen",
        attr("width")
    );

    // Screenshots for people to look at: desktop and phone widths.
    let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    for (name, size) in [
        ("report-1280.png", "1280,2400"),
        ("report-phone.png", "390,2400"),
    ] {
        let shot = target.join(name);
        let _ = std::fs::remove_file(&shot);
        let profile = tempfile::tempdir().unwrap();
        headless(
            &index,
            profile.path(),
            &[
                &format!("--screenshot={}", shot.display()),
                &format!("--window-size={size}"),
            ],
        );
        let bytes = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
        assert!(bytes > 10_000, "{name}: {bytes} bytes");
    }
}

#[test]
fn capture_derived_names_and_replies_stay_text_in_the_page_and_the_markdown() {
    let evil = r#"x"><img src=x onerror=alert(1)>"#;
    let dir = tempfile::tempdir().unwrap();
    let folder = dir
        .path()
        .join("capture/assistant-prod")
        .join(evil)
        .join("2026/10/05/00");
    std::fs::create_dir_all(&folder).unwrap();
    let lines: Vec<String> = (0..30)
        .map(|i| {
            serde_json::json!({
                "request_id": format!("evil-{i}"),
                "timestamp": format!("2026-10-05T00:{i:02}:00Z"),
                "prompt": "Say hello to the team.",
                "response": format!("<script>alert({i})</script> Hello team, here is the update."),
            })
            .to_string()
        })
        .collect();
    std::fs::write(folder.join("part.jsonl"), lines.join("\n") + "\n").unwrap();
    let config = dir.path().join("evalwatch.toml");
    std::fs::write(
        &config,
        format!(
            "[ingest]\nsource = \"{}\"\n\n[window]\nsince = \"2026-10-05\"\n\n[score]\nrubric = \"{}\"\n",
            dir.path().join("capture").display(),
            repo_root().join("rubrics/quality.toml").display()
        ),
    )
    .unwrap();
    let wh = dir.path().join("wh");
    let out = run(evalwatch()
        .arg("--config")
        .arg(&config)
        .arg("--warehouse")
        .arg(&wh)
        .arg("run"));
    assert!(matches!(out.status.code(), Some(0 | 3)), "{}", stderr(&out));
    let index = PathBuf::from(
        stage_summary(&out, "report")["index"]
            .as_str()
            .unwrap()
            .to_string(),
    );
    let html = std::fs::read_to_string(&index).unwrap();
    assert!(
        html.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "the name is shown"
    );
    assert!(!html.contains("<img"), "no element from a model name");
    assert!(!html.contains("<script>alert"), "no element from a reply");
    assert!(
        html.contains("&lt;script&gt;alert("),
        "the reply is shown as text"
    );
    let md = std::fs::read_to_string(index.with_file_name("summary.md")).unwrap();
    assert!(md.contains(&format!("`{evil}`")), "{md}");

    // The browser agrees: no image element, no script ran.
    let profile = tempfile::tempdir().unwrap();
    let (dom, log) = headless(&index, profile.path(), &["--dump-dom"]);
    assert!(!dom.contains("<img"), "an element was injected");
    let console: Vec<&str> = log.lines().filter(|l| l.contains(":CONSOLE")).collect();
    assert!(console.is_empty(), "console messages: {console:?}");
}
