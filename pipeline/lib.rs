//! evalwatch: watches the quality and the cost of LLMs served in production.
//!
//! The stages (ingest, score, telemetry, analyse) each live in their own module and talk to each other only
//! through the warehouse. [`run::run`] holds their order. See ARCHITECTURE.md for the map.

pub mod agreement;
pub mod analyse;
pub mod aws;
pub mod calibrate;
pub mod catalog;
pub mod compact;
pub mod compare;
pub mod config;
pub mod context;
pub mod embed;
pub mod ingest;
pub mod judge;
pub mod lock;
pub mod logs;
pub mod publish;
pub mod redact;
pub mod report;
pub mod rubric;
pub mod run;
pub mod schema;
pub mod score;
pub mod shard;
pub mod shutdown;
pub mod table;
pub mod telemetry;
pub mod util;
pub mod warehouse;
