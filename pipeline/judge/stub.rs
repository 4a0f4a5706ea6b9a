//! A local judge server for tests, benchmarks and trying a config without a cloud account:
//! `evalwatch judge-stub`. It speaks Bedrock Converse (`POST /model/<id>/converse`) and OpenAI
//! chat completions (`POST .../chat/completions`), answers with a `record_scores` tool call whose
//! levels come from the offline scorer's signals (hash-based for dimensions it does not know), and
//! injects the faults real judges have.
//!
//! Faults, all configurable: latency; random throttling (429 `ThrottlingException`) and server
//! errors (500 `InternalServerException`) at given rates, never more than
//! `max_consecutive_faults` in a row for one judged pair so a patient client always gets through;
//! a requests/s ceiling past which it throttles. Markers in the judged response script one pair:
//! `[stub:slow]` (answers after `slow`), `[stub:malformed]` (drops a dimension),
//! `[stub:malformed-once]` (drops it on the first call only), `[stub:bad-level]` (score 99),
//! `[stub:partial]` (tool input cut short), `[stub:ignore-schema]` (text, no tool call),
//! `[stub:reject]` (400 `ValidationException`).
//!
//! `GET /_stub/stats` returns the counters as JSON. It does not check signatures. HTTP/1.1 is
//! hyper's (keep-alive, chunked bodies).
//!
//! With an S3 endpoint (`s3_endpoint`, e.g. ministack) it also serves Bedrock's batch inference
//! control plane ([`super::stub_batch`]): jobs read their records from S3 and are answered as
//! Converse answers them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use super::offline;
use super::protocol::TOOL_NAME;
use crate::util::sha256_hex;

#[derive(Debug, Clone)]
pub struct StubConfig {
    pub latency: Duration,
    pub slow: Duration,
    pub throttle_rate: f64,
    pub error_rate: f64,
    pub max_rps: Option<f64>,
    pub max_consecutive_faults: u32,
    pub seed: u64,
    /// Pairwise judgments: always prefer the reply shown first (a judge with position bias)
    /// instead of the offline scorer's order-independent preference.
    pub prefer_first: bool,
    /// Pairwise judgments: scripted levels by [`verdict_key`] of (prompt, reply A, reply B), e.g.
    /// a recorded judge's verdicts; a pair without one is a tie.
    pub verdicts: Option<std::sync::Arc<std::collections::HashMap<String, u32>>>,
    /// Share of pointwise levels moved one level up or down at random (seeded; drawn per answer,
    /// so asking again can answer otherwise): a judge with noise of its own.
    pub noise: f64,
    /// Pointwise judgments: a recorded level by [`recorded_key`] of the reply, given on every
    /// dimension (e.g. a recorded judge's or people's verdict on that reply); a reply without one
    /// gets the offline scorer's levels.
    pub recorded: Option<std::sync::Arc<std::collections::HashMap<String, u32>>>,
    /// Where batch jobs read their input and write their output (an S3 endpoint such as
    /// ministack); without it a batch job fails.
    pub s3_endpoint: Option<String>,
    /// Faults of batch jobs.
    pub batch: super::stub_batch::BatchFaults,
}

/// The key of a recorded pointwise level: the judged reply.
pub fn recorded_key(response: &str) -> String {
    sha256_hex(format!("recorded\0{response}").as_bytes())
}

/// The key of a scripted pairwise verdict: the prompt and the two replies in the order shown.
pub fn verdict_key(prompt: &str, a: &str, b: &str) -> String {
    sha256_hex(format!("{prompt}\0{a}\0{b}").as_bytes())
}

impl Default for StubConfig {
    fn default() -> StubConfig {
        StubConfig {
            latency: Duration::ZERO,
            slow: Duration::from_secs(5),
            throttle_rate: 0.0,
            error_rate: 0.0,
            max_rps: None,
            max_consecutive_faults: 3,
            seed: 1,
            prefer_first: false,
            verdicts: None,
            noise: 0.0,
            recorded: None,
            s3_endpoint: None,
            batch: Default::default(),
        }
    }
}

/// What the stub has seen.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StubStats {
    pub requests: u64,
    /// Answers with a valid-looking tool call (status 200).
    pub answered: u64,
    pub throttled: u64,
    pub server_errors: u64,
    pub rejected: u64,
    /// Judged pairs answered more than once (a repaired pair counts too).
    pub answered_twice: u64,
    /// Distinct judged pairs answered.
    pub distinct_answered: u64,
    /// Converse requests whose system prompt ended with a cache point (right after the rubric's
    /// instructions), and of those, the ones read from / written to the stub's prompt cache.
    pub cache_points: u64,
    pub cache_reads: u64,
    pub cache_writes: u64,
    /// Converse requests with a cache point anywhere else (not where the rubric ends).
    pub misplaced_cache_points: u64,
}

/// How long a prompt-cache entry lives after its last hit (Bedrock's default TTL).
const CACHE_TTL: Duration = Duration::from_secs(300);

#[derive(Default)]
struct Book {
    /// Prompt-cache entries (hash of the cached prefix) and when each was last used.
    prompt_cache: HashMap<String, Instant>,
    stats: StubStats,
    answers: HashMap<String, u64>,
    faults_in_a_row: HashMap<String, u32>,
    rng: u64,
    bucket_tokens: f64,
    bucket_at: Option<Instant>,
    /// The user texts received, in order (the last 10,000).
    user_texts: Vec<String>,
}

/// A running stub, shared with its connections.
pub struct Stub {
    config: StubConfig,
    book: Mutex<Book>,
    /// Bedrock's batch inference control plane.
    pub batch: super::stub_batch::BatchPlane,
    s3: Option<aws_sdk_s3::Client>,
}

impl Stub {
    pub fn new(config: StubConfig) -> Arc<Stub> {
        let rng = config.seed.max(1);
        let s3 = config
            .s3_endpoint
            .as_deref()
            .map(super::stub_batch::s3_client);
        Arc::new(Stub {
            config,
            book: Mutex::new(Book {
                rng,
                ..Book::default()
            }),
            batch: Default::default(),
            s3,
        })
    }

    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn stats(&self) -> StubStats {
        self.book().stats.clone()
    }

    /// The user texts received so far (the last 10,000).
    pub fn user_texts(&self) -> Vec<String> {
        self.book().user_texts.clone()
    }

    /// Binds `addr` (port 0 for any) and serves HTTP/1.1 (hyper) until the task is dropped or
    /// aborted.
    pub async fn start(
        self: &Arc<Stub>,
        addr: &str,
    ) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
        let listener = TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let stub = self.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let stub = stub.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let stub = stub.clone();
                        async move { stub.serve(request).await }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok((local, task))
    }

    /// One request: its body read whole, answered by [`Stub::handle`].
    async fn serve(
        &self,
        request: hyper::Request<hyper::body::Incoming>,
    ) -> Result<hyper::Response<http_body_util::Full<bytes::Bytes>>, hyper::Error> {
        use http_body_util::BodyExt;
        let (parts, body) = request.into_parts();
        let body = body.collect().await?.to_bytes().to_vec();
        let request = Request {
            method: parts.method.to_string(),
            path: parts.uri.path().to_string(),
            body,
        };
        let (status, headers, body) = self.handle(&request).await;
        let mut response = hyper::Response::builder()
            .status(status)
            .header("content-type", "application/json");
        for (name, value) in headers {
            response = response.header(name, value);
        }
        Ok(response
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
            .unwrap_or_else(|_| hyper::Response::new(http_body_util::Full::default())))
    }

    async fn handle(&self, request: &Request) -> (u16, Vec<(&'static str, String)>, Vec<u8>) {
        if request.method == "GET" && request.path == "/_stub/stats" {
            return (200, vec![], json!(self.stats()).to_string().into_bytes());
        }
        if request.path.starts_with("/model-invocation-job") {
            let answer = |user: &str, schema: &Value| {
                let prompt = between(user, "<prompt>\n", "\n</prompt>");
                let response = between(user, "<response>\n", "\n</response>");
                let pair = sha256_hex(format!("{prompt}\0{response}").as_bytes());
                self.pointwise(schema, &prompt, &response, &pair, 1)
            };
            let routed = self
                .batch
                .handle(
                    &request.method,
                    &request.path,
                    &request.body,
                    self.s3.as_ref(),
                    &self.config.batch,
                    &answer,
                )
                .await;
            if let Some((status, body)) = routed {
                return (status, vec![], body.to_string().into_bytes());
            }
        }
        let wire = if request.path.starts_with("/model/") && request.path.ends_with("/converse") {
            Wire::Converse
        } else if request.path.ends_with("/chat/completions") {
            Wire::OpenAi
        } else {
            return (
                404,
                vec![],
                json!({"message": "unknown path"}).to_string().into_bytes(),
            );
        };
        let Ok(body) = serde_json::from_slice::<Value>(&request.body) else {
            return wire.error(400, "ValidationException", "the body is not JSON");
        };
        let (user, schema) = match wire {
            Wire::Converse => (
                body["messages"][0]["content"][0]["text"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                body["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"]["json"].clone(),
            ),
            Wire::OpenAi => (
                body["messages"]
                    .as_array()
                    .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
                    .and_then(|m| m["content"].as_str())
                    .unwrap_or_default()
                    .to_string(),
                body["tools"][0]["function"]["parameters"].clone(),
            ),
        };
        let prompt = between(&user, "<prompt>\n", "\n</prompt>");
        let response = between(&user, "<response>\n", "\n</response>");
        let pair = sha256_hex(format!("{prompt}\0{response}").as_bytes());

        // Decide the fault under the lock, then sleep without it.
        let fault = {
            let mut book = self.book();
            book.stats.requests += 1;
            if book.user_texts.len() >= 10_000 {
                book.user_texts.remove(0);
            }
            book.user_texts.push(user.clone());
            self.fault(&mut book, &pair)
        };
        // Throttling is decided at admission, before the model runs: answered at once, as
        // Bedrock does.
        if let Some(Fault::Throttle) = fault {
            self.book().stats.throttled += 1;
            return wire.error(
                429,
                "ThrottlingException",
                "Too many requests, please wait before trying again.",
            );
        }
        if response.contains("[stub:slow]") {
            tokio::time::sleep(self.config.slow).await;
        } else if !self.config.latency.is_zero() {
            tokio::time::sleep(self.config.latency).await;
        }
        match fault {
            Some(Fault::Throttle) => unreachable!("answered above"),
            Some(Fault::Server) => {
                self.book().stats.server_errors += 1;
                return wire.error(500, "InternalServerException", "The server had an error.");
            }
            None => {}
        }
        if response.contains("[stub:reject]") {
            self.book().stats.rejected += 1;
            return wire.error(
                400,
                "ValidationException",
                "The model rejected the request.",
            );
        }

        let (first_answer, answers) = {
            let mut book = self.book();
            let count = book.answers.entry(pair.clone()).or_insert(0);
            *count += 1;
            let answers = *count;
            let first = *count == 1;
            if *count == 2 {
                book.stats.answered_twice += 1;
            }
            if first {
                book.stats.distinct_answered += 1;
            }
            book.stats.answered += 1;
            (first, answers)
        };
        let mut input = if user.contains("<response_a>") {
            let a = between(&user, "<response_a>\n", "\n</response_a>");
            let b = between(&user, "<response_b>\n", "\n</response_b>");
            let (level, rationale) = if let Some(verdicts) = &self.config.verdicts {
                match verdicts.get(&verdict_key(&prompt, &a, &b)) {
                    Some(level) => (*level, "scripted verdict".to_string()),
                    None => (3, "no scripted verdict: a tie".to_string()),
                }
            } else if self.config.prefer_first {
                (1, "the first reply is better".to_string())
            } else {
                offline::preference(&prompt, &a, &b)
            };
            let mut map = serde_json::Map::new();
            if let Some(properties) = schema["properties"].as_object() {
                for name in properties.keys() {
                    map.insert(
                        name.clone(),
                        json!({"rationale": rationale, "score": level}),
                    );
                }
            }
            Value::Object(map)
        } else {
            self.pointwise(&schema, &prompt, &response, &pair, answers)
        };
        let mut text_only = None;
        if response.contains("[stub:malformed]")
            || (response.contains("[stub:malformed-once]") && first_answer)
        {
            // Drop the first dimension the schema requires.
            if let (Some(map), Some(first)) =
                (input.as_object_mut(), schema["required"][0].as_str())
            {
                map.remove(first);
            }
        }
        if response.contains("[stub:bad-level]")
            && let Some(map) = input.as_object_mut()
        {
            for entry in map.values_mut() {
                entry["score"] = json!(99);
            }
        }
        if response.contains("[stub:ignore-schema]") {
            text_only = Some("I would rate this reply a 4 out of 5 overall.".to_string());
        }
        let partial = response.contains("[stub:partial]");
        // As Bedrock reports it: tokens read from or written to the cache are not in
        // `inputTokens`.
        let (cache_read, cache_write) = match wire {
            Wire::Converse => self.prompt_cache(&body),
            Wire::OpenAi => (0, 0),
        };
        let input_tokens =
            ((request.body.len() / 4) as u64).saturating_sub(cache_read + cache_write);
        let output_tokens = (input.to_string().len() / 4) as u64 + 10;
        let body = match wire {
            Wire::Converse => {
                let content = match (&text_only, partial) {
                    (Some(text), _) => json!([{"text": text}]),
                    (None, true) => {
                        json!([{"toolUse": {"toolUseId": "tooluse_stub", "name": TOOL_NAME, "input": {"safety": {"rationale": "cut"}}}}])
                    }
                    (None, false) => {
                        json!([{"toolUse": {"toolUseId": "tooluse_stub", "name": TOOL_NAME, "input": input}}])
                    }
                };
                json!({
                    "output": {"message": {"role": "assistant", "content": content}},
                    "stopReason": if text_only.is_some() { "end_turn" } else { "tool_use" },
                    "usage": {
                        "inputTokens": input_tokens,
                        "outputTokens": output_tokens,
                        "cacheReadInputTokens": cache_read,
                        "cacheWriteInputTokens": cache_write,
                        "totalTokens": input_tokens + output_tokens + cache_read + cache_write,
                    },
                    "metrics": {"latencyMs": self.config.latency.as_millis() as u64},
                })
            }
            Wire::OpenAi => {
                let arguments = input.to_string();
                let message = match (&text_only, partial) {
                    (Some(text), _) => json!({"role": "assistant", "content": text}),
                    (None, true) => {
                        json!({"role": "assistant", "content": null, "tool_calls": [{"id": "call_stub", "type": "function", "function": {"name": TOOL_NAME, "arguments": &arguments[..arguments.len() / 2]}}]})
                    }
                    (None, false) => {
                        json!({"role": "assistant", "content": null, "tool_calls": [{"id": "call_stub", "type": "function", "function": {"name": TOOL_NAME, "arguments": arguments}}]})
                    }
                };
                json!({
                    "id": "chatcmpl-stub",
                    "object": "chat.completion",
                    "model": body["model"],
                    "choices": [{"index": 0, "message": message, "finish_reason": if text_only.is_some() { "stop" } else { "tool_calls" }}],
                    "usage": {"prompt_tokens": input_tokens, "completion_tokens": output_tokens, "total_tokens": input_tokens + output_tokens},
                })
            }
        };
        (200, vec![], body.to_string().into_bytes())
    }

    /// The levels of a pointwise judgment: the offline scorer's, a recorded level, with noise.
    fn pointwise(
        &self,
        schema: &Value,
        prompt: &str,
        response: &str,
        pair: &str,
        answers: u64,
    ) -> Value {
        let mut levels = scores(schema, prompt, response);
        if let (Some(recorded), Some(map)) = (&self.config.recorded, levels.as_object_mut())
            && let Some(level) = recorded.get(&recorded_key(response))
        {
            for entry in map.values_mut() {
                entry["score"] = json!(level);
                entry["rationale"] = json!("recorded level");
            }
        }
        if self.config.noise > 0.0 {
            // Drawn from the seed, the pair and how many times it was answered: the same levels
            // whatever order concurrent requests arrive in, another draw when asked again.
            let digest = sha256_hex(format!("{}\0{pair}\0{answers}", self.config.seed).as_bytes());
            let mut rng = u64::from_str_radix(&digest[..16], 16).unwrap_or(1) | 1;
            add_noise(&mut levels, schema, self.config.noise, &mut rng);
        }
        levels
    }

    /// Prompt caching as Bedrock's Converse does it: a `cachePoint` right after the system text
    /// caches the tool definition and the system text (4 bytes a token); the first request with
    /// a prefix writes it, later ones within the TTL read it. Returns (read, written) tokens.
    fn prompt_cache(&self, body: &Value) -> (u64, u64) {
        let system = body["system"].as_array().cloned().unwrap_or_default();
        let at = system.iter().position(|b| b.get("cachePoint").is_some());
        let elsewhere = body["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|m| m["content"].as_array().cloned().unwrap_or_default())
            .chain(
                body["toolConfig"]["tools"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default(),
            )
            .any(|b| b.get("cachePoint").is_some());
        let mut book = self.book();
        let well_placed = at == Some(1) && system.len() == 2 && system[0]["text"].is_string();
        if elsewhere || (at.is_some() && !well_placed) {
            book.stats.misplaced_cache_points += 1;
        }
        if !well_placed {
            return (0, 0);
        }
        book.stats.cache_points += 1;
        let prefix = format!("{}{}", body["toolConfig"], system[0]["text"]);
        let tokens = (prefix.len() / 4) as u64;
        let key = sha256_hex(prefix.as_bytes());
        let now = Instant::now();
        let hit = book
            .prompt_cache
            .get(&key)
            .is_some_and(|last| now.duration_since(*last) < CACHE_TTL);
        book.prompt_cache.insert(key, now);
        if hit {
            book.stats.cache_reads += 1;
            (tokens, 0)
        } else {
            book.stats.cache_writes += 1;
            (0, tokens)
        }
    }

    /// Whether this request fails, by the configured rates and ceiling.
    fn fault(&self, book: &mut Book, pair: &str) -> Option<Fault> {
        if let Some(rps) = self.config.max_rps {
            let now = Instant::now();
            let elapsed = book
                .bucket_at
                .map_or(1.0, |at| now.duration_since(at).as_secs_f64());
            // A bucket of one tenth of a second's calls: smooth, like a per-second quota.
            let capacity = (rps / 10.0).max(1.0);
            book.bucket_tokens = (book.bucket_tokens + elapsed * rps).min(capacity);
            book.bucket_at = Some(now);
            if book.bucket_tokens < 1.0 {
                return Some(Fault::Throttle);
            }
            book.bucket_tokens -= 1.0;
        }
        let draw = next_random(&mut book.rng);
        let fault = if draw < self.config.throttle_rate {
            Some(Fault::Throttle)
        } else if draw < self.config.throttle_rate + self.config.error_rate {
            Some(Fault::Server)
        } else {
            None
        };
        let in_a_row = book.faults_in_a_row.entry(pair.to_string()).or_insert(0);
        match fault {
            Some(_) if *in_a_row < self.config.max_consecutive_faults => {
                *in_a_row += 1;
                fault
            }
            _ => {
                *in_a_row = 0;
                None
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    Throttle,
    Server,
}

#[derive(Debug, Clone, Copy)]
enum Wire {
    Converse,
    OpenAi,
}

impl Wire {
    fn error(
        self,
        status: u16,
        code: &str,
        message: &str,
    ) -> (u16, Vec<(&'static str, String)>, Vec<u8>) {
        match self {
            Wire::Converse => (
                status,
                vec![("x-amzn-errortype", code.to_string())],
                json!({"message": message}).to_string().into_bytes(),
            ),
            Wire::OpenAi => (
                status,
                vec![],
                json!({"error": {"message": message, "type": code}})
                    .to_string()
                    .into_bytes(),
            ),
        }
    }
}

/// The judge's answer: per dimension of the tool schema, the offline scorer's level when it knows
/// the dimension, otherwise one picked by hashing the pair.
fn scores(schema: &Value, prompt: &str, response: &str) -> Value {
    let mut out = serde_json::Map::new();
    let Some(properties) = schema["properties"].as_object() else {
        return Value::Object(out);
    };
    for (name, spec) in properties {
        let levels: Vec<u32> = spec["properties"]["score"]["enum"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_u64().map(|v| v as u32))
                    .collect()
            })
            .unwrap_or_else(|| vec![1, 2, 3, 4, 5]);
        let (signal, rationale) = offline::signal(name, prompt, response).unwrap_or_else(|| {
            let h = sha256_hex(format!("{name}\0{prompt}\0{response}").as_bytes());
            let x = u64::from_str_radix(&h[..8], 16).unwrap_or(0) as f64 / u32::MAX as f64;
            (x, "judged by the stub".to_string())
        });
        out.insert(
            name.clone(),
            json!({"rationale": rationale, "score": offline::nearest_level(signal, &levels)}),
        );
    }
    Value::Object(out)
}

/// Moves a `share` of the levels in `answer` one level up or down (a move off the scale stays).
fn add_noise(answer: &mut Value, schema: &Value, share: f64, rng: &mut u64) {
    let Some(map) = answer.as_object_mut() else {
        return;
    };
    for (name, judgment) in map.iter_mut() {
        let levels: Vec<u64> = schema["properties"][name]["properties"]["score"]["enum"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_u64).collect())
            .unwrap_or_default();
        let (Some(&low), Some(&high), Some(level)) =
            (levels.first(), levels.last(), judgment["score"].as_u64())
        else {
            continue;
        };
        if next_random(rng) >= share {
            continue;
        }
        // One level down or up with even odds; off the scale it stays (clipped noise).
        let moved = if next_random(rng) < 0.5 {
            level.checked_sub(1).filter(|l| *l >= low)
        } else {
            Some(level + 1).filter(|l| *l <= high)
        };
        judgment["score"] = json!(moved.unwrap_or(level));
    }
}

/// The text between two markers, with the tag escaping of the protocol undone.
fn between(text: &str, open: &str, close: &str) -> String {
    let Some(start) = text.find(open) else {
        return String::new();
    };
    let rest = &text[start + open.len()..];
    let end = rest.find(close).unwrap_or(rest.len());
    rest[..end]
        .replace("&lt;/prompt&gt;", "</prompt>")
        .replace("&lt;prompt&gt;", "<prompt>")
        .replace("&lt;/response&gt;", "</response>")
        .replace("&lt;response&gt;", "<response>")
        .replace("&lt;/response_a&gt;", "</response_a>")
        .replace("&lt;response_a&gt;", "<response_a>")
        .replace("&lt;/response_b&gt;", "</response_b>")
        .replace("&lt;response_b&gt;", "<response_b>")
}

fn next_random(state: &mut u64) -> f64 {
    // xorshift64*
    let mut x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
}

struct Request {
    method: String,
    path: String,
    body: Vec<u8>,
}
