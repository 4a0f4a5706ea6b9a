//! The release gate's expression language: `<figure> <op> <number>`, e.g.
//! `composite.delta >= -0.02`, `safety.worse_share <= 0.01`, `pairwise.win_rate_lower >= 0.5`.
//!
//! A figure is `<group>.<name>`: a rubric dimension or `composite` (`delta`, `ci_low`, `ci_high`,
//! `p_value`, `worse_share`, `better_share`, `baseline_mean`, `candidate_mean`), `pairwise`
//! (`win_rate`, `win_rate_lower`, `win_rate_upper`, `tie_rate`, `loss_rate`,
//! `length_controlled_win_rate`, `position_inconsistency`), `latency` / `cost` (`delta`,
//! `ratio`), ... whatever [`super::Figures`] computes; an unknown one is an error naming the
//! figures there are. Operators: `<`, `<=`, `>`, `>=`, `==`, `!=`. Several gates all must pass.

use std::collections::BTreeMap;

/// A parsed gate.
#[derive(Debug, Clone, PartialEq)]
pub struct Gate {
    pub text: String,
    pub figure: String,
    pub op: Op,
    pub value: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl Op {
    fn holds(self, left: f64, right: f64) -> bool {
        match self {
            Op::Lt => left < right,
            Op::Le => left <= right,
            Op::Gt => left > right,
            Op::Ge => left >= right,
            Op::Eq => left == right,
            Op::Ne => left != right,
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GateError {
    #[error(
        "gate `{text}`: {reason}; a gate reads `<figure> <op> <number>`, e.g. `composite.delta >= -0.02`"
    )]
    Syntax { text: String, reason: String },
    #[error("gate `{text}`: no figure `{figure}`; there are: {known}")]
    UnknownFigure {
        text: String,
        figure: String,
        known: String,
    },
}

/// Parses one gate.
pub fn parse(text: &str) -> Result<Gate, GateError> {
    let syntax = |reason: &str| GateError::Syntax {
        text: text.to_string(),
        reason: reason.to_string(),
    };
    let trimmed = text.trim();
    // Two-character operators first.
    let ops = [
        ("<=", Op::Le),
        (">=", Op::Ge),
        ("==", Op::Eq),
        ("!=", Op::Ne),
        ("<", Op::Lt),
        (">", Op::Gt),
    ];
    let (at, symbol, op) = ops
        .iter()
        .filter_map(|(s, op)| trimmed.find(s).map(|at| (at, *s, *op)))
        .min_by_key(|(at, s, _)| (*at, std::cmp::Reverse(s.len())))
        .ok_or_else(|| syntax("no comparison operator (<, <=, >, >=, ==, !=)"))?;
    let figure = trimmed[..at].trim();
    let number = trimmed[at + symbol.len()..].trim();
    if figure.is_empty() {
        return Err(syntax("no figure before the operator"));
    }
    let valid = figure.split('.').all(|part| {
        !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    });
    if !valid || !figure.contains('.') {
        return Err(syntax(&format!(
            "`{figure}` is not a figure name like `composite.delta`"
        )));
    }
    let value: f64 = number
        .parse()
        .map_err(|_| syntax(&format!("`{number}` is not a number")))?;
    if !value.is_finite() {
        return Err(syntax("the bound must be a finite number"));
    }
    Ok(Gate {
        text: trimmed.to_string(),
        figure: figure.to_string(),
        op,
        value,
    })
}

/// One gate's outcome.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Verdict {
    pub gate: String,
    pub figure: String,
    /// The figure's value (`None` when it could not be computed, which fails the gate).
    pub actual: Option<f64>,
    pub passed: bool,
}

/// Checks `gates` against the computed `figures`. A figure that exists but has no value (too few
/// pairs, say) fails its gate; a figure that does not exist is an error.
pub fn check(
    gates: &[Gate],
    figures: &BTreeMap<String, Option<f64>>,
) -> Result<Vec<Verdict>, GateError> {
    gates
        .iter()
        .map(|g| {
            let actual = figures
                .get(&g.figure)
                .ok_or_else(|| GateError::UnknownFigure {
                    text: g.text.clone(),
                    figure: g.figure.clone(),
                    known: figures.keys().cloned().collect::<Vec<_>>().join(", "),
                })?;
            let actual = actual.filter(|v| v.is_finite());
            Ok(Verdict {
                gate: g.text.clone(),
                figure: g.figure.clone(),
                actual,
                passed: actual.is_some_and(|v| g.op.holds(v, g.value)),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gates_parse() {
        let g = parse("composite.delta >= -0.02").unwrap();
        assert_eq!(g.figure, "composite.delta");
        assert_eq!(g.op, Op::Ge);
        assert_eq!(g.value, -0.02);
        assert_eq!(parse("safety.worse_share<=0.01").unwrap().op, Op::Le);
        assert_eq!(parse(" pairwise.win_rate_lower > 0.5 ").unwrap().op, Op::Gt);
        assert_eq!(parse("a.b != 1e-3").unwrap().value, 0.001);
        for bad in [
            "composite.delta",
            ">= 0.1",
            "composite >= 0.1",
            "composite.delta >= x",
            "composite.delta >= inf",
            "comp osite.delta >= 1",
        ] {
            assert!(parse(bad).is_err(), "{bad} parsed");
        }
        let message = parse("composite.delta => 1").unwrap_err().to_string();
        assert!(
            message.contains("e.g. `composite.delta >= -0.02`"),
            "{message}"
        );
    }

    #[test]
    fn gates_pass_fail_and_name_unknown_figures() {
        let figures: BTreeMap<String, Option<f64>> = [
            ("composite.delta".to_string(), Some(-0.01)),
            ("safety.worse_share".to_string(), Some(0.03)),
            ("pairwise.win_rate_lower".to_string(), None),
        ]
        .into();
        let gates: Vec<Gate> = [
            "composite.delta >= -0.02",
            "safety.worse_share <= 0.01",
            "pairwise.win_rate_lower >= 0.5",
        ]
        .iter()
        .map(|t| parse(t).unwrap())
        .collect();
        let verdicts = check(&gates, &figures).unwrap();
        let passed: Vec<bool> = verdicts.iter().map(|v| v.passed).collect();
        assert_eq!(passed, [true, false, false]);
        assert_eq!(verdicts[2].actual, None);
        let err = check(&[parse("tone.delta > 0").unwrap()], &figures).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("tone.delta") && text.contains("composite.delta"),
            "{text}"
        );
    }
}
