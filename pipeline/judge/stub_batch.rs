//! The judge stub's Bedrock control plane for batch inference, over the REST-JSON protocol
//! aws-sdk-bedrock speaks: `POST /model-invocation-job` (create; the same `clientRequestToken`
//! gets the same job), `GET /model-invocation-job/{id}`, `POST /model-invocation-job/{id}/stop`,
//! `GET /model-invocation-jobs`. A job reads its input from S3 (the stub's `s3_endpoint`, e.g.
//! ministack), answers every record as the stub's Converse would, and writes
//! `<output>/<job id>/<input file>.out` and `manifest.json.out` there.
//!
//! Faults ([`BatchFaults`]): the number of status polls before a job finishes, every Nth record
//! failed, output lines in reverse order, a partially completed job (every 10th answered record
//! left out), an expired job (only the first half answered), a job that fails outright.

use std::sync::Mutex;

use serde_json::{Value, json};

#[derive(Debug, Clone, Default)]
pub struct BatchFaults {
    /// Status polls a job stays `InProgress` before it finishes (0: done at the first poll).
    pub polls: u32,
    /// Every Nth record (1-based, over the job) answered with an error; 0: none.
    pub fail_every: u32,
    /// Output lines in reverse order.
    pub shuffle: bool,
    /// `PartiallyCompleted`: every 10th answered record has no output line.
    pub partial: bool,
    /// `Expired`: only the first half of the records answered.
    pub expire: bool,
    /// `Failed`: no output at all.
    pub fail_job: bool,
    /// How long a create call takes to answer, after the job is registered (a client killed in
    /// between leaves a job it has no ARN of).
    pub create_delay: std::time::Duration,
}

#[derive(Debug, Clone)]
struct Job {
    arn: String,
    name: String,
    model: String,
    role: String,
    token: String,
    input_uri: String,
    output_uri: String,
    timeout_hours: i64,
    status: String,
    message: Option<String>,
    polls: u32,
    submit_time: String,
    counts: Option<(u64, u64, u64)>,
}

impl Job {
    fn describe(&self) -> Value {
        let (total, ok, errors) = self.counts.unwrap_or((0, 0, 0));
        json!({
            "jobArn": self.arn,
            "jobName": self.name,
            "modelId": self.model,
            "clientRequestToken": self.token,
            "roleArn": self.role,
            "status": self.status,
            "message": self.message,
            "submitTime": self.submit_time,
            "lastModifiedTime": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "inputDataConfig": {"s3InputDataConfig": {"s3Uri": self.input_uri, "s3InputFormat": "JSONL"}},
            "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": self.output_uri}},
            "timeoutDurationInHours": self.timeout_hours,
            "totalRecordCount": total,
            "processedRecordCount": total,
            "successRecordCount": ok,
            "errorRecordCount": errors,
        })
    }
}

/// The jobs the stub holds, and what it has been asked.
#[derive(Default)]
pub struct BatchPlane {
    jobs: Mutex<Vec<Job>>,
    /// CreateModelInvocationJob calls, and the jobs they created (the rest were repeats).
    pub creates: std::sync::atomic::AtomicU64,
    pub stops: std::sync::atomic::AtomicU64,
}

/// One HTTP answer: status, body.
pub type Answer = (u16, Value);

fn error(status: u16, message: &str) -> Answer {
    (status, json!({"message": message}))
}

fn s3_parts(uri: &str) -> Option<(String, String)> {
    let rest = uri.strip_prefix("s3://")?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    Some((bucket.to_string(), prefix.to_string()))
}

fn decode(segment: &str) -> String {
    crate::util::partition_unescape(segment)
}

impl BatchPlane {
    /// The number of jobs created.
    pub fn jobs(&self) -> usize {
        self.jobs.lock().map(|j| j.len()).unwrap_or(0)
    }

    /// Routes a control-plane request; `None` when the path is not one of them.
    pub async fn handle(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
        s3: Option<&aws_sdk_s3::Client>,
        faults: &BatchFaults,
        answer: &(dyn Fn(&str, &Value) -> Value + Sync),
    ) -> Option<Answer> {
        let path = path.split('?').next().unwrap_or(path);
        if method == "POST" && path == "/model-invocation-job" {
            let answer = self.create(body);
            if !faults.create_delay.is_zero() {
                tokio::time::sleep(faults.create_delay).await;
            }
            return Some(answer);
        }
        if method == "GET" && path == "/model-invocation-jobs" {
            let jobs = self.jobs.lock().ok()?.clone();
            let summaries: Vec<Value> = jobs.iter().map(Job::describe).collect();
            return Some((200, json!({"invocationJobSummaries": summaries})));
        }
        let rest = path.strip_prefix("/model-invocation-job/")?;
        if method == "POST"
            && let Some(id) = rest.strip_suffix("/stop")
        {
            return Some(self.stop(&decode(id)));
        }
        if method == "GET" {
            return Some(self.get(&decode(rest), s3, faults, answer).await);
        }
        None
    }

    fn create(&self, body: &[u8]) -> Answer {
        let Ok(request) = serde_json::from_slice::<Value>(body) else {
            return error(400, "the body is not JSON");
        };
        self.creates
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        let token = text(&request["clientRequestToken"]);
        let Ok(mut jobs) = self.jobs.lock() else {
            return error(500, "poisoned");
        };
        if !token.is_empty()
            && let Some(job) = jobs.iter().find(|j| j.token == token)
        {
            return (200, json!({"jobArn": job.arn}));
        }
        let input_uri = text(&request["inputDataConfig"]["s3InputDataConfig"]["s3Uri"]);
        let output_uri = text(&request["outputDataConfig"]["s3OutputDataConfig"]["s3Uri"]);
        let name = text(&request["jobName"]);
        if name.is_empty() || input_uri.is_empty() || output_uri.is_empty() {
            return error(
                400,
                "jobName, inputDataConfig and outputDataConfig are required",
            );
        }
        let id = format!("{:012x}", jobs.len() + 1);
        let job = Job {
            arn: format!("arn:aws:bedrock:us-east-1:000000000000:model-invocation-job/{id}"),
            name,
            model: text(&request["modelId"]),
            role: text(&request["roleArn"]),
            token,
            input_uri,
            output_uri,
            timeout_hours: request["timeoutDurationInHours"].as_i64().unwrap_or(24),
            status: "Submitted".into(),
            message: None,
            polls: 0,
            submit_time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            counts: None,
        };
        let arn = job.arn.clone();
        jobs.push(job);
        (200, json!({"jobArn": arn}))
    }

    fn stop(&self, id: &str) -> Answer {
        self.stops
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let Ok(mut jobs) = self.jobs.lock() else {
            return error(500, "poisoned");
        };
        match jobs
            .iter_mut()
            .find(|j| j.arn == id || j.arn.ends_with(&format!("/{id}")))
        {
            None => error(404, "no such job"),
            Some(job) => {
                if !crate::score::batch::is_final(&job.status) {
                    job.status = "Stopped".into();
                }
                (200, json!({}))
            }
        }
    }

    async fn get(
        &self,
        id: &str,
        s3: Option<&aws_sdk_s3::Client>,
        faults: &BatchFaults,
        answer: &(dyn Fn(&str, &Value) -> Value + Sync),
    ) -> Answer {
        let job = {
            let Ok(mut jobs) = self.jobs.lock() else {
                return error(500, "poisoned");
            };
            let Some(job) = jobs
                .iter_mut()
                .find(|j| j.arn == id || j.arn.ends_with(&format!("/{id}")))
            else {
                return (404, json!({"message": format!("no job {id}")}));
            };
            if crate::score::batch::is_final(&job.status) {
                return (200, job.describe());
            }
            job.polls += 1;
            if job.polls <= faults.polls {
                job.status = "InProgress".into();
                return (200, job.describe());
            }
            job.clone()
        };
        let (status, message, counts) = match s3 {
            None => (
                "Failed".to_string(),
                Some("the stub has no S3 endpoint (--s3-endpoint)".to_string()),
                None,
            ),
            Some(s3) => match run_job(&job, s3, faults, answer).await {
                Ok((status, counts)) => (status, None, Some(counts)),
                Err(e) => ("Failed".to_string(), Some(e), None),
            },
        };
        let Ok(mut jobs) = self.jobs.lock() else {
            return error(500, "poisoned");
        };
        let Some(stored) = jobs.iter_mut().find(|j| j.arn == job.arn) else {
            return error(500, "lost the job");
        };
        if !crate::score::batch::is_final(&stored.status) {
            stored.status = status;
            stored.message = message;
            stored.counts = counts;
        }
        (200, stored.describe())
    }
}

/// Answers a job's records into its output folder; returns its final status and counts
/// (total, answered, errors).
async fn run_job(
    job: &Job,
    s3: &aws_sdk_s3::Client,
    faults: &BatchFaults,
    answer: &(dyn Fn(&str, &Value) -> Value + Sync),
) -> Result<(String, (u64, u64, u64)), String> {
    if faults.fail_job {
        return Ok(("Failed".into(), (0, 0, 0)));
    }
    let (bucket, prefix) = s3_parts(&job.input_uri).ok_or("the input is not an s3:// URI")?;
    let (out_bucket, out_prefix) =
        s3_parts(&job.output_uri).ok_or("the output is not an s3:// URI")?;
    let job_id = job.arn.rsplit('/').next().unwrap_or_default().to_string();
    let listed = s3
        .list_objects_v2()
        .bucket(&bucket)
        .prefix(&prefix)
        .send()
        .await
        .map_err(|e| format!("cannot list the input: {e}"))?;
    let mut files = Vec::new();
    for object in listed.contents() {
        let Some(key) = object.key().filter(|k| k.ends_with(".jsonl")) else {
            continue;
        };
        let body = s3
            .get_object()
            .bucket(&bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| format!("cannot read {key}: {e}"))?;
        let bytes = body
            .body
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .into_bytes();
        files.push((key.rsplit('/').next().unwrap_or(key).to_string(), bytes));
    }
    let total: u64 = files
        .iter()
        .map(|(_, b)| b.split(|c| *c == b'\n').filter(|l| !l.is_empty()).count() as u64)
        .sum();
    let (mut n, mut ok, mut errors, mut input_tokens, mut output_tokens) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    for (name, bytes) in &files {
        let mut lines = Vec::new();
        for line in bytes.split(|c| *c == b'\n').filter(|l| !l.is_empty()) {
            n += 1;
            if faults.expire && n > total / 2 {
                break;
            }
            let record: Value = serde_json::from_slice(line).map_err(|e| e.to_string())?;
            let input = &record["modelInput"];
            if faults.fail_every > 0 && n % u64::from(faults.fail_every) == 0 {
                errors += 1;
                lines.push(json!({
                    "recordId": record["recordId"],
                    "modelInput": input,
                    "error": {"errorCode": 400, "errorMessage": "Malformed input request (stub fault)"},
                }));
                continue;
            }
            if faults.partial && n % 10 == 0 {
                continue;
            }
            let user = input["messages"][0]["content"][0]["text"]
                .as_str()
                .unwrap_or_default();
            let tool_input = answer(user, &input["tools"][0]["input_schema"]);
            let used_in = (input.to_string().len() / 4) as u64;
            let used_out = (tool_input.to_string().len() / 4) as u64 + 10;
            input_tokens += used_in;
            output_tokens += used_out;
            ok += 1;
            lines.push(json!({
                "recordId": record["recordId"],
                "modelInput": input,
                "modelOutput": {
                    "id": "msg_stub",
                    "type": "message",
                    "role": "assistant",
                    "model": job.model,
                    "content": [{"type": "tool_use", "id": "toolu_stub", "name": super::protocol::TOOL_NAME, "input": tool_input}],
                    "stop_reason": "tool_use",
                    "usage": {"input_tokens": used_in, "output_tokens": used_out},
                },
            }));
        }
        if faults.shuffle {
            lines.reverse();
        }
        let mut body = Vec::new();
        for line in lines {
            body.extend_from_slice(line.to_string().as_bytes());
            body.push(b'\n');
        }
        let key = format!("{}{job_id}/{name}.out", folder(&out_prefix));
        put(s3, &out_bucket, &key, body).await?;
    }
    let manifest = json!({
        "totalRecordCount": total,
        "processedRecordCount": ok + errors,
        "successRecordCount": ok,
        "errorRecordCount": errors,
        "inputTokenCount": input_tokens,
        "outputTokenCount": output_tokens,
    });
    let key = format!("{}{job_id}/manifest.json.out", folder(&out_prefix));
    put(s3, &out_bucket, &key, manifest.to_string().into_bytes()).await?;
    let status = if faults.expire {
        "Expired"
    } else if faults.partial {
        "PartiallyCompleted"
    } else {
        "Completed"
    };
    Ok((status.to_string(), (total, ok, errors)))
}

fn folder(prefix: &str) -> String {
    if prefix.is_empty() || prefix.ends_with('/') {
        prefix.to_string()
    } else {
        format!("{prefix}/")
    }
}

async fn put(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    body: Vec<u8>,
) -> Result<(), String> {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .body(body.into())
        .send()
        .await
        .map_err(|e| format!("cannot write s3://{bucket}/{key}: {e}"))?;
    Ok(())
}

/// A stub's S3 client for `endpoint` (path-style, test credentials).
pub fn s3_client(endpoint: &str) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::config::Builder::new()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "test", "test", None, None, "stub",
        ))
        .http_client(
            aws_smithy_http_client::Builder::new()
                .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                    aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
                ))
                .build_https(),
        )
        .build();
    aws_sdk_s3::Client::from_conf(config)
}
