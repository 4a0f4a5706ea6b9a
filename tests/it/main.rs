//! Integration tests: the real `evalwatch` binary against real files and real protocol servers
//! (ministack for S3) on loopback. One module per stage.

mod analyse;
mod calibrate;
mod cli;
mod compact;
mod compare;
mod deploy;
mod embed;
mod ingest_bedrock;
mod ingest_local;
mod ingest_s3;
mod integrity;
mod notebook;
mod offline_judge;
mod otlp;
mod publish;
mod report;
mod rubric;
mod run;
mod score;
mod score_batch;
mod score_llm;
mod sensitivity;
mod shards;
mod support;
mod telemetry;
mod topics;
