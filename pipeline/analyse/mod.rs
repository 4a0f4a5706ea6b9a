//! The analyse stage (issue 4): drift statistics per model and day, joined with telemetry.

pub mod stats;
