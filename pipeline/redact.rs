//! Redaction of personal data in the texts a report or a table shows (the report's examples, the
//! `topics` table's representative prompts): e-mail addresses, phone numbers,
//! card and account numbers (long digit runs), US social security numbers and IP addresses become
//! `[email]`, `[phone]`, `[number]`, `[ssn]`, `[ip]`. Deliberately eager: a report is attached to
//! tickets, so a false positive costs a few characters and a miss costs a leak.

use std::sync::LazyLock;

use regex::Regex;

static PATTERNS: LazyLock<Vec<(Regex, &'static str)>> = LazyLock::new(|| {
    [
        (r"(?i)[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,}", "[email]"),
        (r"\b\d{3}-\d{2}-\d{4}\b", "[ssn]"),
        (r"\b(?:\d{1,3}\.){3}\d{1,3}\b", "[ip]"),
        (r"(?i)\b[0-9a-f]{1,4}(?::[0-9a-f]{1,4}){7}\b", "[ip]"),
        // 13-19 digits, spaces or dashes between groups: cards, IBAN-like account numbers.
        (r"\b\d(?:[ -]?\d){12,18}\b", "[number]"),
        // Phone numbers: international (+country), an area code in parentheses, or three groups.
        (
            r"\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]?\d{2,4}){1,3}\b",
            "[phone]",
        ),
        (r"\(\d{2,4}\)[ .-]?\d{3,4}[ .-]?\d{3,4}\b", "[phone]"),
        (r"\b\d{2,4}[ .-]\d{3,4}[ .-]\d{3,4}\b", "[phone]"),
    ]
    .into_iter()
    .filter_map(|(p, label)| Regex::new(p).ok().map(|r| (r, label)))
    .collect()
});

/// `text` with personal data replaced by labels.
pub fn redact(text: &str) -> String {
    let mut out = text.to_string();
    for (pattern, label) in PATTERNS.iter() {
        out = pattern.replace_all(&out, *label).into_owned();
    }
    out
}

/// At most `max` characters of `text`, cut at a character boundary with an ellipsis.
pub fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn personal_data_is_replaced() {
        let text = "Mail jane.doe+x@example.co.uk or call +1 (415) 555-0123 / 020 7946 0958; \
                    card 4111 1111 1111 1111, SSN 123-45-6789, host 10.0.0.12, \
                    v6 2001:0db8:85a3:0000:0000:8a2e:0370:7334. Version 3.11 ships in 2026.";
        let out = redact(text);
        for leak in [
            "jane.doe",
            "555-0123",
            "7946",
            "4111",
            "123-45-6789",
            "10.0.0.12",
            "2001:0db8",
        ] {
            assert!(!out.contains(leak), "{leak} left in: {out}");
        }
        for label in ["[email]", "[phone]", "[number]", "[ssn]", "[ip]"] {
            assert!(out.contains(label), "{label} missing: {out}");
        }
        // Ordinary numbers stay.
        assert!(out.contains("Version 3.11 ships in 2026."), "{out}");
    }

    #[test]
    fn clipping_respects_characters() {
        assert_eq!(clip("héllo wörld", 5), "héllo…");
        assert_eq!(clip("short", 10), "short");
    }
}
