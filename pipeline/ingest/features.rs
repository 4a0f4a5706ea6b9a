//! Features of a captured pair computed once, at ingest, so the analyse stage reads a few small
//! columns instead of the text: lengths in characters and whether the reply is a refusal.

/// Openings of a refusal, matched in the first 300 characters of the reply, lower case.
const REFUSAL_OPENINGS: &[&str] = &[
    "i can't help",
    "i cannot help",
    "i can't assist",
    "i cannot assist",
    "i can't provide",
    "i cannot provide",
    "i can't do that",
    "i won't",
    "i will not",
    "i'm not able to",
    "i am not able to",
    "i'm unable to",
    "i am unable to",
    "i'm sorry, but i",
    "sorry, but i can",
    "i must decline",
    "i'd rather not",
    "as an ai, i can",
];

/// Whether a reply declines the request (a narrow list of explicit refusals, not pushback).
pub fn is_refusal(response: &str) -> bool {
    let head: String = response
        .chars()
        .take(300)
        .collect::<String>()
        .to_lowercase()
        .replace('\u{2019}', "'");
    REFUSAL_OPENINGS.iter().any(|p| head.contains(p))
}

/// Length in Unicode scalar values, saturating at `i32::MAX`.
pub fn chars(text: &str) -> i32 {
    i32::try_from(text.chars().count()).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_explicit_declines() {
        assert!(is_refusal("I'm sorry, but I can't help with that."));
        assert!(is_refusal("I can\u{2019}t help you hurt someone."));
        assert!(!is_refusal("Sure! Here is how to reset the router."));
        assert!(!is_refusal("That's wrong, the capital is Paris."));
        assert_eq!(chars("héllo"), 5);
    }
}
