//! `examples/analyst.py`, the analyst's notebook: jupytext turns it into a notebook that
//! nbformat validates, and it runs as a script on a warehouse of the tests' sample (with
//! embeddings, so every question has data), answering with tables, `answers.json` and PNG plots.

use crate::support::*;

#[test]
fn the_analyst_notebook_is_a_valid_notebook_and_answers_on_the_sample() {
    let python = notebook_python();
    let notebook = repo_root().join("examples/analyst.py");
    let out = tempfile::tempdir().unwrap();

    // A notebook as Jupyter opens it: markdown and code cells, valid nbformat 4.
    let ipynb = out.path().join("analyst.ipynb");
    let converted = run(std::process::Command::new(&python)
        .args(["-m", "jupytext", "--to", "ipynb", "--output"])
        .arg(&ipynb)
        .arg(&notebook));
    assert!(converted.status.success(), "{}", stderr(&converted));
    let check = run(std::process::Command::new(&python).arg("-c").arg(format!(
        "import nbformat, json; nb = nbformat.read({:?}, as_version=4); nbformat.validate(nb); \
         print(json.dumps([c.cell_type for c in nb.cells]))",
        ipynb.display().to_string()
    )));
    assert!(check.status.success(), "{}", stderr(&check));
    let cells: Vec<String> = serde_json::from_str(stdout(&check).trim()).unwrap();
    assert!(
        cells.iter().filter(|c| *c == "markdown").count() >= 5,
        "{cells:?}"
    );
    assert!(
        cells.iter().filter(|c| *c == "code").count() >= 5,
        "{cells:?}"
    );

    // The warehouse it reads: the sample's run, with embeddings and topics.
    let wh = tempfile::tempdir().unwrap();
    let ran = run(embedding(&mut evalwatch())
        .arg("--warehouse")
        .arg(wh.path())
        .arg("run"));
    assert_eq!(ran.status.code(), Some(3), "{}", stderr(&ran));

    let answers_dir = out.path().join("answers");
    let script = run(std::process::Command::new(&python)
        .arg(&notebook)
        .env("EVALWATCH_WAREHOUSE", wh.path())
        .env("EVALWATCH_ANALYST_OUT", &answers_dir)
        .env("MPLCONFIGDIR", out.path().join("mpl")));
    assert!(
        script.status.success(),
        "{}\n{}",
        stdout(&script),
        stderr(&script)
    );
    let answers: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(answers_dir.join("answers.json")).unwrap())
            .unwrap();
    // chat-b's regression of the tests' sample: alerts, and its worst day is one of them.
    assert!(answers["alerts"].as_u64().unwrap() > 0, "{answers}");
    assert_eq!(answers["worst_day"]["model"], "chat-b", "{answers}");
    assert!(answers["worst_day"]["date"].as_str().unwrap() >= "2026-10-11");
    assert_eq!(answers["worst_day"]["replies"], 5);
    let qpd = &answers["quality_per_dollar"];
    assert!(qpd["chat-a"].as_f64().unwrap() > qpd["chat-b"].as_f64().unwrap());
    assert!(answers["topics"].as_u64().unwrap() >= 4, "{answers}");
    for png in ["quality_per_dollar.png", "topic_shares.png"] {
        let bytes = std::fs::read(answers_dir.join(png)).unwrap();
        assert!(
            bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 10_000,
            "{png}"
        );
    }
    let printed = stdout(&script);
    assert!(printed.contains("five lowest-scoring replies"), "{printed}");
}
