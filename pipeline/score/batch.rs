//! Bedrock batch inference for the score stage (`[judge] mode = "batch"`): the judgments a run
//! finds due go to S3 as JSON lines and one model invocation job, at the batch price; the run
//! that finds the job finished reads its output into the judge cache, and from there into rows
//! like any cached judgment.
//!
//! Reads: the job records in `state/batch-jobs/`, the jobs' output in the batch S3 prefix.
//! Writes: the jobs' input (`<batch-s3-prefix>/<job>/input/part-*.jsonl`), the job records, and
//! (through the caller) judge cache entries. Never does: write score rows, or judge a record
//! twice: a record in a job not collected yet is never submitted again, and a job is submitted
//! under an idempotency token derived from its records, recorded before the call, so a crash
//! between the call and the record re-sends the same token and gets the same job back.
//!
//! - Input: `recordId` = the judgment's cache key; `modelInput` = Anthropic's Messages format
//!   (`anthropic_version`, `system` = the rubric's instructions, the same user text and forced
//!   `record_scores` tool as on demand).
//! - Output (`*.jsonl.out`, in any order): joined on `recordId`; every `modelOutput` is validated
//!   like an on-demand answer. A record that failed, did not validate, or is missing (a job
//!   partially completed, failed, stopped or expired) is judged on demand by the collecting run
//!   (`batch-fallback = "on-demand"`, with its one repair) or left due for the next run.
//! - A job unfinished `batch-max-delay-hours` after its submission is stopped, and its records
//!   fall back the same way.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::config::{BatchSettings, Location};
use crate::judge::protocol::{self, Judgment, Prompting, TOOL_NAME};
use crate::rubric::Rubric;
use crate::util::sha256_hex;
use crate::warehouse::{Warehouse, WarehouseError};

use super::cache::{CachedJudgment, Scope};

const JOBS: &str = "state/batch-jobs";
pub const ANTHROPIC_VERSION: &str = "bedrock-2023-05-31";
/// Records per input file.
const RECORDS_PER_FILE: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error(transparent)]
    Warehouse(#[from] WarehouseError),
    #[error("Bedrock batch inference ({operation}): {message}")]
    Bedrock {
        operation: &'static str,
        message: String,
    },
    #[error("the batch job record `{uri}` is damaged: {message}")]
    Damaged { uri: String, message: String },
    #[error("judge.batch-s3-prefix: {0}")]
    Prefix(String),
}

/// One record of a job: the judgment's cache key and the capture's content hash.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RecordRef {
    pub key: String,
    pub content_hash: String,
}

/// A due judgment: its record and the user text the judge is sent.
#[derive(Debug, Clone)]
pub struct Due {
    pub record: RecordRef,
    pub user_text: String,
}

/// What evalwatch keeps of a job (`state/batch-jobs/<scope>/<name>.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobRecord {
    pub name: String,
    /// The `clientRequestToken`: derived from the scope and the records.
    pub token: String,
    pub model: String,
    pub input_uri: String,
    pub output_uri: String,
    pub records: Vec<RecordRef>,
    pub job_arn: Option<String>,
    /// `submitting` (recorded, the call not confirmed), `submitted`, or `collected`.
    pub state: String,
    /// Bedrock's last status of the job.
    pub status: Option<String>,
    pub submitted_at: DateTime<Utc>,
    pub collected_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub counts: Option<Counts>,
}

/// What collecting a job found.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Counts {
    pub records: u64,
    pub judged: u64,
    /// Records the job answered with an error, or with an answer that did not validate.
    pub failed: u64,
    /// Records without output (a job partially completed, stopped, expired or failed).
    pub missing: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// What the job's `manifest.json.out` reported, when it wrote one: records answered and
    /// failed, and tokens (Bedrock's own count, for the bill).
    #[serde(default)]
    pub manifest: Option<Value>,
}

/// The `modelInput` of one record: Anthropic's Messages format with the forced tool.
pub fn model_input(prompting: &Prompting, user_text: &str, max_tokens: u32) -> Value {
    json!({
        "anthropic_version": ANTHROPIC_VERSION,
        "max_tokens": max_tokens,
        "temperature": 0,
        "system": prompting.system,
        "messages": [{"role": "user", "content": [{"type": "text", "text": user_text}]}],
        "tools": [{
            "name": TOOL_NAME,
            "description": prompting.tool_description,
            "input_schema": prompting.tool_schema,
        }],
        "tool_choice": {"type": "tool", "name": TOOL_NAME},
    })
}

/// One line of a job's output.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputLine {
    pub record_id: String,
    /// The tool input and the token counts, or why the record failed.
    pub answer: Result<NativeAnswer, String>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct NativeAnswer {
    pub tool_input: Option<Value>,
    pub text: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
}

/// Reads one line of a `*.jsonl.out` file.
pub fn parse_output(line: &str) -> Result<OutputLine, String> {
    let value: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let record_id = value["recordId"]
        .as_str()
        .ok_or("no `recordId`")?
        .to_string();
    if let Some(error) = value.get("error").filter(|e| !e.is_null()) {
        let message = error["errorMessage"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| error.to_string());
        let code = &error["errorCode"];
        return Ok(OutputLine {
            record_id,
            answer: Err(format!(
                "the batch job failed the record ({code}): {message}"
            )),
        });
    }
    let output = &value["modelOutput"];
    if output.is_null() {
        return Ok(OutputLine {
            record_id,
            answer: Err("the batch job gave the record no output".into()),
        });
    }
    let mut answer = NativeAnswer {
        input_tokens: output["usage"]["input_tokens"].as_u64().unwrap_or(0),
        output_tokens: output["usage"]["output_tokens"].as_u64().unwrap_or(0),
        ..NativeAnswer::default()
    };
    for block in output["content"].as_array().into_iter().flatten() {
        match block["type"].as_str() {
            Some("tool_use") if block["name"] == TOOL_NAME => {
                answer
                    .tool_input
                    .get_or_insert_with(|| block["input"].clone());
            }
            Some("text") => answer
                .text
                .push_str(block["text"].as_str().unwrap_or_default()),
            _ => {}
        }
    }
    Ok(OutputLine {
        record_id,
        answer: Ok(answer),
    })
}

/// The judgments of a validated answer, or why it is not one.
pub fn validate(rubric: &Rubric, answer: &NativeAnswer) -> Result<Vec<Judgment>, String> {
    match &answer.tool_input {
        None => Err(format!(
            "the judge answered without calling `{TOOL_NAME}`: {:?}",
            crate::util::truncate_utf8(answer.text.trim(), 200)
        )),
        Some(input) => protocol::validate(rubric, input),
    }
}

/// The token and name of a job of `records` in `scope`.
fn identity(scope: &Scope, model: &str, records: &[RecordRef]) -> (String, String) {
    let mut keys: Vec<&str> = records.iter().map(|r| r.key.as_str()).collect();
    keys.sort_unstable();
    let token = sha256_hex(format!("{}\0{model}\0{}", scope.folder(), keys.join("\n")).as_bytes());
    let token = token[..40].to_string();
    let name = format!("evalwatch-{}", &token[..16]);
    (token, name)
}

fn scope_folder(scope: &Scope) -> String {
    let id = scope.folder();
    let id = id.rsplit('/').next().unwrap_or_default();
    format!("{JOBS}/{id}")
}

/// What a collection found, for the run to act on.
#[derive(Debug, Default)]
pub struct Collected {
    /// New judgments, to cache (and so to write as rows).
    pub judgments: Vec<CachedJudgment>,
    /// Records to judge on demand in this run (`batch-fallback = "on-demand"`).
    pub on_demand: HashSet<String>,
    /// Records in jobs still running: neither judged nor submitted again.
    pub pending: HashSet<String>,
    pub jobs_collected: u64,
    pub jobs_pending: u64,
    pub counts: Counts,
}

/// A run's handle on batch inference: the control-plane client, the batch S3 area, the job
/// records of one cache scope.
pub struct Batcher<'a> {
    pub client: aws_sdk_bedrock::Client,
    /// The batch S3 prefix, as a warehouse (put, get, list).
    pub area: Warehouse,
    pub warehouse: &'a Warehouse,
    pub settings: &'a BatchSettings,
    pub scope: &'a Scope,
    pub rubric: &'a Rubric,
    pub model: String,
}

/// The batch S3 prefix as a warehouse.
pub async fn area(
    settings: &BatchSettings,
    aws: &crate::aws::AwsClients,
) -> Result<Warehouse, BatchError> {
    let location = Location::parse(&settings.s3_prefix, std::path::Path::new(""))
        .map_err(BatchError::Prefix)?;
    if !matches!(location, Location::S3 { .. }) {
        return Err(BatchError::Prefix(format!(
            "`{}` is not an s3:// location",
            settings.s3_prefix
        )));
    }
    Ok(Warehouse::open(&location, aws).await)
}

fn bedrock_error<E: std::error::Error>(operation: &'static str, e: E) -> BatchError {
    BatchError::Bedrock {
        operation,
        message: crate::util::truncate_utf8(&crate::util::error_chain(&e), 400).to_string(),
    }
}

impl Batcher<'_> {
    async fn records(&self) -> Result<Vec<(String, JobRecord)>, BatchError> {
        let mut out = Vec::new();
        for key in self
            .warehouse
            .list(&format!("{}/", scope_folder(self.scope)))
            .await?
        {
            let Some(bytes) = self.warehouse.get(&key).await? else {
                continue;
            };
            let record: JobRecord =
                serde_json::from_slice(&bytes).map_err(|e| BatchError::Damaged {
                    uri: self.warehouse.uri(&key),
                    message: e.to_string(),
                })?;
            out.push((key, record));
        }
        Ok(out)
    }

    async fn save(&self, record: &JobRecord) -> Result<(), BatchError> {
        let key = format!("{}/{}.json", scope_folder(self.scope), record.name);
        let bytes = serde_json::to_vec_pretty(record).unwrap_or_default();
        self.warehouse.put(&key, bytes).await?;
        Ok(())
    }

    /// Submits the due judgments as jobs of at most `batch-max-records` records. Returns the
    /// records submitted.
    pub async fn submit(
        &self,
        due: Vec<Due>,
        prompting: &Prompting,
        max_tokens: u32,
    ) -> Result<Vec<JobRecord>, BatchError> {
        let mut submitted = Vec::new();
        for chunk in due.chunks(self.settings.max_records as usize) {
            let records: Vec<RecordRef> = chunk.iter().map(|d| d.record.clone()).collect();
            let (token, name) = identity(self.scope, &self.model, &records);
            let input_folder = format!("{name}/input");
            for (n, part) in chunk.chunks(RECORDS_PER_FILE).enumerate() {
                let mut body = Vec::new();
                for due in part {
                    let line = json!({
                        "recordId": due.record.key,
                        "modelInput": model_input(prompting, &due.user_text, max_tokens),
                    });
                    serde_json::to_writer(&mut body, &line).unwrap_or_default();
                    body.push(b'\n');
                }
                self.area
                    .put(&format!("{input_folder}/part-{n:05}.jsonl"), body)
                    .await?;
            }
            let mut record = JobRecord {
                name: name.clone(),
                token,
                model: self.model.clone(),
                input_uri: format!("{}/", self.area.uri(&input_folder)),
                output_uri: format!("{}/", self.area.uri(&format!("{name}/output"))),
                records,
                job_arn: None,
                state: "submitting".into(),
                status: None,
                submitted_at: Utc::now(),
                collected_at: None,
                counts: None,
            };
            // Recorded before the call: a crash after it re-sends the same token.
            self.save(&record).await?;
            record.job_arn = Some(self.create(&record).await?);
            record.state = "submitted".into();
            record.status = Some("Submitted".into());
            self.save(&record).await?;
            tracing::info!(job = %record.name, records = record.records.len(), "score: batch job submitted");
            submitted.push(record);
        }
        Ok(submitted)
    }

    async fn create(&self, record: &JobRecord) -> Result<String, BatchError> {
        use aws_sdk_bedrock::types::{
            ModelInvocationJobInputDataConfig, ModelInvocationJobOutputDataConfig,
            ModelInvocationJobS3InputDataConfig, ModelInvocationJobS3OutputDataConfig,
            S3InputFormat,
        };
        let input = ModelInvocationJobS3InputDataConfig::builder()
            .s3_uri(&record.input_uri)
            .s3_input_format(S3InputFormat::Jsonl)
            .build()
            .map_err(|e| bedrock_error("CreateModelInvocationJob", e))?;
        let output = ModelInvocationJobS3OutputDataConfig::builder()
            .s3_uri(&record.output_uri)
            .build()
            .map_err(|e| bedrock_error("CreateModelInvocationJob", e))?;
        let response = self
            .client
            .create_model_invocation_job()
            .job_name(&record.name)
            .role_arn(&self.settings.role_arn)
            .model_id(&record.model)
            .client_request_token(&record.token)
            .timeout_duration_in_hours(self.settings.timeout_hours as i32)
            .input_data_config(ModelInvocationJobInputDataConfig::S3InputDataConfig(input))
            .output_data_config(ModelInvocationJobOutputDataConfig::S3OutputDataConfig(
                output,
            ))
            .send()
            .await
            .map_err(|e| bedrock_error("CreateModelInvocationJob", e))?;
        Ok(response.job_arn().to_string())
    }

    /// Collects every finished job of the scope (waiting up to `wait` for running ones), stops
    /// those older than `batch-max-delay-hours`, and says what is pending.
    pub async fn collect(&self, wait: Option<Duration>) -> Result<Collected, BatchError> {
        let deadline = wait.map(|w| tokio::time::Instant::now() + w);
        let mut collected = Collected::default();
        for (_, mut record) in self.records().await? {
            if record.state == "collected" {
                continue;
            }
            if record.job_arn.is_none() {
                // Recorded, but the call's answer was lost: the job is looked up by its name,
                // and created (with the same token, which Bedrock does not run twice) only when
                // there is none.
                let arn = match self.find(&record.name).await? {
                    Some(arn) => arn,
                    None => self.create(&record).await?,
                };
                record.job_arn = Some(arn);
                record.state = "submitted".into();
                self.save(&record).await?;
            }
            let arn = record.job_arn.clone().unwrap_or_default();
            let mut poll = Duration::from_secs(2);
            let status = loop {
                let status = self.status(&arn).await?;
                if is_final(&status) {
                    break status;
                }
                let age = Utc::now() - record.submitted_at;
                if age.to_std().unwrap_or_default() >= self.settings.max_delay {
                    tracing::warn!(job = %record.name, status, "score: batch job too slow, stopping it");
                    self.client
                        .stop_model_invocation_job()
                        .job_identifier(&arn)
                        .send()
                        .await
                        .map_err(|e| bedrock_error("StopModelInvocationJob", e))?;
                    break "Stopped".to_string();
                }
                match deadline {
                    Some(d) if tokio::time::Instant::now() + poll < d => {
                        tokio::time::sleep(poll).await;
                        poll = (poll * 2).min(Duration::from_secs(60));
                    }
                    _ => break status,
                }
            };
            record.status = Some(status.clone());
            if !is_final(&status) {
                collected.jobs_pending += 1;
                collected
                    .pending
                    .extend(record.records.iter().map(|r| r.key.clone()));
                self.save(&record).await?;
                continue;
            }
            let counts = self.read_output(&record, &mut collected).await?;
            tracing::info!(job = %record.name, status, judged = counts.judged, failed = counts.failed, missing = counts.missing, "score: batch job collected");
            collected.counts.add(&counts);
            record.counts = Some(counts);
            record.state = "collected".into();
            record.collected_at = Some(Utc::now());
            self.save(&record).await?;
            collected.jobs_collected += 1;
        }
        Ok(collected)
    }

    /// The ARN of the job named `name`, if Bedrock has one.
    async fn find(&self, name: &str) -> Result<Option<String>, BatchError> {
        let listed = self
            .client
            .list_model_invocation_jobs()
            .name_contains(name)
            .send()
            .await
            .map_err(|e| bedrock_error("ListModelInvocationJobs", e))?;
        Ok(listed
            .invocation_job_summaries()
            .iter()
            .find(|job| job.job_name() == name)
            .map(|job| job.job_arn().to_string()))
    }

    async fn status(&self, arn: &str) -> Result<String, BatchError> {
        let job = self
            .client
            .get_model_invocation_job()
            .job_identifier(arn)
            .send()
            .await
            .map_err(|e| bedrock_error("GetModelInvocationJob", e))?;
        Ok(job
            .status()
            .map_or_else(|| "Submitted".to_string(), |s| s.as_str().to_string()))
    }

    /// Reads a finished job's output: judgments into `collected`, the records without one into
    /// its fallback.
    async fn read_output(
        &self,
        record: &JobRecord,
        collected: &mut Collected,
    ) -> Result<Counts, BatchError> {
        let wanted: HashMap<&str, &RecordRef> =
            record.records.iter().map(|r| (r.key.as_str(), r)).collect();
        let mut answered: BTreeMap<String, Result<Vec<Judgment>, String>> = BTreeMap::new();
        let mut counts = Counts {
            records: record.records.len() as u64,
            ..Counts::default()
        };
        let folder = format!("{}/output", record.name);
        for key in self.area.list(&format!("{folder}/")).await? {
            if key.ends_with("manifest.json.out") {
                if let Some(bytes) = self.area.get(&key).await? {
                    counts.manifest = serde_json::from_slice(&bytes).ok();
                }
                continue;
            }
            if !key.ends_with(".jsonl.out") {
                continue;
            }
            let Some(bytes) = self.area.get(&key).await? else {
                continue;
            };
            for line in String::from_utf8_lossy(&bytes).lines() {
                if line.trim().is_empty() {
                    continue;
                }
                let parsed = match parse_output(line) {
                    Ok(parsed) => parsed,
                    Err(e) => {
                        tracing::warn!(file = %self.area.uri(&key), error = %e, "score: unreadable batch output line");
                        continue;
                    }
                };
                let Some(reference) = wanted.get(parsed.record_id.as_str()) else {
                    continue;
                };
                let result = match parsed.answer {
                    Err(e) => Err(e),
                    Ok(answer) => {
                        counts.input_tokens += answer.input_tokens;
                        counts.output_tokens += answer.output_tokens;
                        validate(self.rubric, &answer).inspect(|judgments| {
                            let cost = self
                                .settings
                                .prices
                                .cost(answer.input_tokens, answer.output_tokens);
                            collected.judgments.push(CachedJudgment {
                                key: reference.key.clone(),
                                content_hash: reference.content_hash.clone(),
                                levels: judgments
                                    .iter()
                                    .map(|j| (j.dimension.clone(), j.level))
                                    .collect(),
                                rationales: judgments.iter().map(|j| j.rationale.clone()).collect(),
                                input_tokens: answer.input_tokens,
                                output_tokens: answer.output_tokens,
                                cache_read_tokens: 0,
                                cache_write_tokens: 0,
                                cost_usd: Some(cost),
                                latency_ms: 0.0,
                                judged_at: Utc::now().to_rfc3339(),
                            });
                        })
                    }
                };
                answered.insert(parsed.record_id, result);
            }
        }
        if let Some(manifest) = &counts.manifest {
            let reported = manifest["inputTokenCount"].as_u64();
            if reported.is_some_and(|n| n != counts.input_tokens) {
                tracing::warn!(
                    job = %record.name,
                    reported = reported.unwrap_or(0),
                    read = counts.input_tokens,
                    "score: the batch job's manifest counts other input tokens than its records"
                );
            }
        }
        for reference in &record.records {
            match answered.get(&reference.key) {
                Some(Ok(_)) => counts.judged += 1,
                Some(Err(reason)) => {
                    counts.failed += 1;
                    tracing::warn!(record = %reference.key, reason, "score: batch record not judged");
                    if self.settings.fallback_on_demand {
                        collected.on_demand.insert(reference.key.clone());
                    }
                }
                None => {
                    counts.missing += 1;
                    if self.settings.fallback_on_demand {
                        collected.on_demand.insert(reference.key.clone());
                    }
                }
            }
        }
        Ok(counts)
    }
}

impl Counts {
    /// Adds another job's counts (its manifest's numbers too).
    pub fn add(&mut self, more: &Counts) {
        self.records += more.records;
        self.judged += more.judged;
        self.failed += more.failed;
        self.missing += more.missing;
        self.input_tokens += more.input_tokens;
        self.output_tokens += more.output_tokens;
        let Some(Value::Object(theirs)) = &more.manifest else {
            return;
        };
        let mine = self.manifest.get_or_insert_with(|| json!({}));
        for (key, value) in theirs {
            if let Some(n) = value.as_u64() {
                let sum = mine[key.as_str()].as_u64().unwrap_or(0) + n;
                mine[key.as_str()] = json!(sum);
            }
        }
    }
}

/// Judgments of `judge` (a judge id, `bedrock:<model>`) waiting in batch jobs not collected yet,
/// for the report: (jobs, records, the earliest submission). Damaged records are left out.
pub async fn waiting(
    warehouse: &Warehouse,
    judge: &str,
) -> Result<Option<Waiting>, WarehouseError> {
    let mut out = Waiting::default();
    for key in warehouse.list(&format!("{JOBS}/")).await? {
        let Some(bytes) = warehouse.get(&key).await? else {
            continue;
        };
        let Ok(record) = serde_json::from_slice::<JobRecord>(&bytes) else {
            continue;
        };
        if record.state == "collected" || format!("bedrock:{}", record.model) != judge {
            continue;
        }
        out.jobs += 1;
        out.records += record.records.len() as u64;
        out.since = Some(
            out.since
                .map_or(record.submitted_at, |s| s.min(record.submitted_at)),
        );
    }
    Ok((out.jobs > 0).then_some(out))
}

/// Judgments waiting in batch jobs.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Waiting {
    pub jobs: u64,
    pub records: u64,
    pub since: Option<DateTime<Utc>>,
}

/// Whether Bedrock is done with a job (whatever it produced).
pub fn is_final(status: &str) -> bool {
    matches!(
        status,
        "Completed" | "PartiallyCompleted" | "Failed" | "Stopped" | "Expired"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_lines_are_read_in_any_form_bedrock_writes() {
        let ok = json!({
            "recordId": "k1",
            "modelInput": {},
            "modelOutput": {
                "content": [{"type": "tool_use", "name": TOOL_NAME, "input": {"a": 1}}],
                "usage": {"input_tokens": 900, "output_tokens": 120},
            },
        });
        let line = parse_output(&ok.to_string()).unwrap();
        assert_eq!(line.record_id, "k1");
        let answer = line.answer.unwrap();
        assert_eq!(answer.tool_input, Some(json!({"a": 1})));
        assert_eq!((answer.input_tokens, answer.output_tokens), (900, 120));
        let failed = json!({"recordId": "k2", "modelInput": {}, "error": {"errorCode": 400, "errorMessage": "Malformed input"}});
        let line = parse_output(&failed.to_string()).unwrap();
        assert!(line.answer.unwrap_err().contains("Malformed input"));
        assert!(parse_output("{}").is_err());
        assert!(parse_output("not json").is_err());
    }

    #[test]
    fn a_jobs_identity_follows_its_records_not_their_order() {
        let scope = Scope {
            rubric_hash: "r".into(),
            judge: "bedrock:m".into(),
            params_hash: "p".into(),
        };
        let r = |k: &str| RecordRef {
            key: k.into(),
            content_hash: format!("h{k}"),
        };
        let a = identity(&scope, "m", &[r("1"), r("2")]);
        assert_eq!(a, identity(&scope, "m", &[r("2"), r("1")]));
        assert_ne!(a, identity(&scope, "m", &[r("1"), r("3")]));
        // Bedrock's patterns: a token of letters and digits, a name of at most 63 characters.
        assert!(a.0.chars().all(|c| c.is_ascii_alphanumeric()));
        assert!(a.1.len() <= 63 && a.1.starts_with("evalwatch-"));
    }
}
