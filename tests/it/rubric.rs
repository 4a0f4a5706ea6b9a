//! `evalwatch rubric`: the shipped rubrics are valid and locked; an edit without a version bump
//! fails lint with exit code 2.

use crate::support::*;

#[test]
fn shipped_rubrics_lint_clean_and_are_locked() {
    let output = run(evalwatch().args([
        "rubric",
        "lint",
        "rubrics/quality.toml",
        "rubrics/pairwise.toml",
    ]));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let out = stdout(&output);
    assert!(out.contains("ok quality@1.0.0"), "{out}");
    assert!(out.contains("ok pairwise@1.0.0"), "{out}");
    assert!(!out.contains("not in the lock"), "{out}");

    let show = run(evalwatch().args(["rubric", "show", "rubrics/quality.toml"]));
    let json: serde_json::Value = serde_json::from_str(&stdout(&show)).unwrap();
    let names: Vec<&str> = json["rubric"]["dimensions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["safety", "relevance", "professional_tone"]);
    let hash = run(evalwatch().args(["rubric", "hash", "rubrics/quality.toml"]));
    assert_eq!(stdout(&hash).trim(), json["hash"].as_str().unwrap());
}

#[test]
fn an_edit_without_a_version_bump_fails_lint() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["quality.toml", "rubrics.lock"] {
        std::fs::copy(
            repo_root().join("rubrics").join(name),
            dir.path().join(name),
        )
        .unwrap();
    }
    let path = dir.path().join("quality.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("weight = 0.2", "weight = 0.2\n# tweak")).unwrap();
    let ok = run(evalwatch().args(["rubric", "lint"]).arg(&path));
    assert_eq!(ok.status.code(), Some(0), "a comment is not an edit");

    std::fs::write(
        &path,
        text.replace("Rude, mocking", "Rude, insulting, mocking"),
    )
    .unwrap();
    let output = run(evalwatch().args(["rubric", "lint"]).arg(&path));
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("without bumping its version"),
        "{}",
        stderr(&output)
    );

    std::fs::write(
        &path,
        text.replace("Rude, mocking", "Rude, insulting, mocking")
            .replace("version = \"1.0.0\"", "version = \"1.0.1\""),
    )
    .unwrap();
    let lock = run(evalwatch().args(["rubric", "lock"]).arg(&path));
    assert_eq!(lock.status.code(), Some(0), "{}", stderr(&lock));
    let output = run(evalwatch().args(["rubric", "lint"]).arg(&path));
    assert_eq!(output.status.code(), Some(0));
    assert!(stdout(&output).contains("ok quality@1.0.1"));
}
