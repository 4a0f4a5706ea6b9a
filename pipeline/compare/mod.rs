//! `evalwatch compare` (issue 6, in progress): a candidate model against a baseline on the same
//! prompts, with paired statistics and a release gate.
//!
//! Built so far: [`figures`] (pointwise and pairwise figures from matched pairs) and [`gate`]
//! (the gate expression language). Next: reading the two sides (warehouse models matched by
//! prompt hash, or two JSONL/Parquet files), judging both with the scoring engine (cache and
//! budget included) and the `pairwise` rubric in both orders, the report and the per-prompt
//! Parquet table.

pub mod figures;
pub mod gate;
