//! Judges: what turns a (prompt, response) pair and a rubric into one level per dimension.
//! Shared by the score and compare stages; never writes anything itself.
//!
//! So far: the offline scorer (the no-cloud default). The Bedrock and OpenAI-compatible judges
//! come with the scoring stage (issue 3).

pub mod offline;
