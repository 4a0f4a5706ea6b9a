//! Small helpers shared by every stage: hashing, names safe for partition paths, text truncation.

use sha2::{Digest, Sha256};

/// Lower-case hex sha256 of `bytes`.
/// For `#[serde(skip_serializing_if = "crate::util::is_zero")]` on counts.
pub fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Where a request id hashes to: the first 64 bits of its SHA-256. Sampling (which captures a
/// day judges) and the embedding analysis (which vectors a side keeps) both pick by it.
pub fn request_key(request_id: &str) -> u64 {
    let digest = sha256_hex(request_id.as_bytes());
    u64::from_str_radix(&digest[..16], 16).unwrap_or(0)
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Checks a model or endpoint name given in config: non-empty, printable, no path separators.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err("is empty".into());
    }
    if name
        .chars()
        .any(|c| c.is_control() || c == '/' || c == '\\')
    {
        return Err(format!(
            "`{name}` may not contain `/`, `\\` or control characters"
        ));
    }
    Ok(())
}

/// What [`partition_value`] escapes: every byte but `[A-Za-z0-9._-]`.
const PARTITION_ESCAPED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'.')
    .remove(b'_')
    .remove(b'-');

/// Encodes a value for a Hive partition path segment (`model=<value>`): bytes outside
/// `[A-Za-z0-9._-]` become `%XX`, as Hive, Spark and pyarrow expect and decode.
pub fn partition_value(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, PARTITION_ESCAPED).to_string()
}

/// Decodes a Hive partition path segment written by [`partition_value`].
pub fn partition_unescape(segment: &str) -> String {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8_lossy()
        .into_owned()
}

/// An error and its sources, joined with `: ` (what `{:#}` gives for anyhow errors).
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        let next = inner.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = inner.source();
    }
    text
}

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
pub fn truncate_utf8(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_values_are_escaped() {
        assert_eq!(partition_value("chat-a_1.2"), "chat-a_1.2");
        assert_eq!(partition_value("meta/llama 3"), "meta%2Fllama%203");
        assert_eq!(partition_value("é"), "%C3%A9");
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        assert_eq!(truncate_utf8("héllo", 2), "h");
        assert_eq!(truncate_utf8("héllo", 3), "hé");
        assert_eq!(truncate_utf8("abc", 10), "abc");
    }

    #[test]
    fn sha256_matches_a_known_vector() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
