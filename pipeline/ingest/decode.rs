//! Decoding one captured line into a [`Capture`] row, or into the reason it cannot be one.
//!
//! Understands SageMaker data capture records (`captureData` + `eventMetadata`, payloads encoded
//! `JSON` or `BASE64`) carrying OpenAI chat/completions, TGI/LMI (`inputs` -> `generated_text`) or
//! plain-text payloads, and plain records (`{prompt, response, model, timestamp, ...}`).
//!
//! Parsing borrows from the line wherever the JSON has no escapes; unknown fields are skipped
//! without being built.

use std::borrow::Cow;

use base64::Engine;
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Deserialize;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

/// One row of the `captures` table, less its lineage (added by the caller).
#[derive(Debug, Clone, PartialEq)]
pub struct Capture {
    pub request_id: String,
    pub inference_id: Option<String>,
    pub endpoint: Option<String>,
    pub model: String,
    pub variant: Option<String>,
    /// Microseconds since the Unix epoch, UTC.
    pub captured_at_us: i64,
    pub prompt: String,
    pub messages: Option<String>,
    pub response: String,
    pub prompt_tokens: Option<i32>,
    pub completion_tokens: Option<i32>,
    pub latency_ms: Option<f64>,
    pub finish_reason: Option<String>,
    pub payload_model: Option<String>,
    pub content_hash: String,
}

/// What is known of a line before reading it: where it came from.
#[derive(Debug, Clone, Default)]
pub struct LineContext<'a> {
    pub source_uri: &'a str,
    /// Endpoint and component named by a SageMaker capture path, if the object has one.
    pub path_endpoint: Option<&'a str>,
    pub path_component: Option<&'a str>,
    pub default_model: Option<&'a str>,
    pub model_from_payload: bool,
    /// `ingest.format`: what the lines are.
    pub format: Format,
    /// `ingest.model-names`: a model id (Bedrock's `modelId`, a log's `model`) -> its partition.
    pub model_names: Option<&'a std::collections::BTreeMap<String, String>>,
}

/// `ingest.format`: the kind of records a source holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// Each line by its shape: SageMaker data capture, a Bedrock invocation log record, an
    /// OpenAI-format request/response log, or a plain record.
    #[default]
    Auto,
    SagemakerCapture,
    BedrockInvocationLogs,
    OpenaiJsonl,
}

impl Format {
    pub const NAMES: &str =
        "`auto`, `sagemaker-capture`, `bedrock-invocation-logs` or `openai-jsonl`";

    pub fn parse(text: &str) -> Result<Format, String> {
        match text.trim() {
            "auto" => Ok(Format::Auto),
            "sagemaker-capture" => Ok(Format::SagemakerCapture),
            "bedrock-invocation-logs" => Ok(Format::BedrockInvocationLogs),
            "openai-jsonl" => Ok(Format::OpenaiJsonl),
            other => Err(format!("`{other}` is not {}", Self::NAMES)),
        }
    }

    /// Whether records name their model (so a SageMaker-style path does not).
    pub fn records_name_models(self) -> bool {
        matches!(self, Format::BedrockInvocationLogs | Format::OpenaiJsonl)
    }
}

/// sha256 of the canonical prompt+response: the UTF-8 prompt, one 0x00 byte, the UTF-8 response.
pub fn content_hash(prompt: &str, response: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(prompt.as_bytes());
    hasher.update([0u8]);
    hasher.update(response.as_bytes());
    hex::encode(hasher.finalize())
}

// ---------------------------------------------------------------------------------------------
// The wire shapes.

#[derive(Deserialize)]
struct Line<'a> {
    #[serde(rename = "captureData", borrow)]
    capture_data: Option<CaptureData<'a>>,
    #[serde(rename = "eventMetadata", borrow)]
    event_metadata: Option<EventMetadata<'a>>,
    // A plain record.
    #[serde(borrow)]
    prompt: Option<Cow<'a, str>>,
    /// A plain record's reply (text), or an OpenAI log's response (an object).
    #[serde(borrow)]
    response: Option<&'a RawValue>,
    #[serde(rename = "schemaType", borrow)]
    schema_type: Option<Cow<'a, str>>,
    #[serde(borrow)]
    request: Option<&'a RawValue>,
    #[serde(borrow)]
    model: Option<Cow<'a, str>>,
    #[serde(borrow)]
    timestamp: Option<&'a RawValue>,
    #[serde(borrow, alias = "id")]
    request_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    inference_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    endpoint: Option<Cow<'a, str>>,
    #[serde(borrow)]
    variant: Option<Cow<'a, str>>,
    latency_ms: Option<f64>,
    prompt_tokens: Option<i64>,
    completion_tokens: Option<i64>,
    #[serde(borrow)]
    finish_reason: Option<Cow<'a, str>>,
    #[serde(borrow)]
    messages: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct CaptureData<'a> {
    #[serde(rename = "endpointInput", borrow)]
    input: Option<Part<'a>>,
    #[serde(rename = "endpointOutput", borrow)]
    output: Option<Part<'a>>,
}

#[derive(Deserialize)]
struct Part<'a> {
    #[serde(borrow)]
    data: Option<&'a RawValue>,
    #[serde(borrow)]
    encoding: Option<Cow<'a, str>>,
    #[serde(rename = "observedContentType", borrow)]
    content_type: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct EventMetadata<'a> {
    #[serde(rename = "eventId", borrow)]
    event_id: Option<Cow<'a, str>>,
    #[serde(rename = "inferenceId", borrow)]
    inference_id: Option<Cow<'a, str>>,
    #[serde(rename = "inferenceTime", borrow)]
    inference_time: Option<Cow<'a, str>>,
    #[serde(rename = "inferenceComponentName", borrow)]
    inference_component: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct InputPayload<'a> {
    #[serde(borrow)]
    messages: Option<&'a RawValue>,
    #[serde(borrow)]
    inputs: Option<&'a RawValue>,
    #[serde(borrow)]
    prompt: Option<&'a RawValue>,
    #[serde(borrow)]
    model: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow)]
    role: Option<Cow<'a, str>>,
    #[serde(borrow)]
    content: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct ContentPart<'a> {
    #[serde(borrow)]
    text: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct OutputPayload<'a> {
    #[serde(borrow)]
    choices: Option<Vec<Choice<'a>>>,
    usage: Option<Usage>,
    #[serde(borrow)]
    model: Option<Cow<'a, str>>,
    #[serde(borrow)]
    generated_text: Option<Cow<'a, str>>,
    #[serde(borrow)]
    details: Option<Details<'a>>,
}

#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(borrow)]
    message: Option<ChoiceMessage<'a>>,
    #[serde(borrow)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow)]
    finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct ChoiceMessage<'a> {
    #[serde(borrow)]
    content: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Usage {
    prompt_tokens: Option<i64>,
    completion_tokens: Option<i64>,
}

#[derive(Deserialize)]
struct Details<'a> {
    #[serde(borrow)]
    finish_reason: Option<Cow<'a, str>>,
    generated_tokens: Option<i64>,
    prompt_tokens: Option<i64>,
}

// ---------------------------------------------------------------------------------------------

/// Decodes one line (without its newline). `line_no` is 1-based. A Bedrock record whose bodies
/// are in their own objects goes through [`super::bedrock::decode`] with them instead.
pub fn decode_line(line: &str, line_no: u64, ctx: &LineContext<'_>) -> Result<Capture, String> {
    let record: Line<'_> = serde_json::from_str(line).map_err(|e| {
        if e.is_data() {
            format!("not a capture record: {e}")
        } else {
            format!("not JSON: {e}")
        }
    })?;
    let bedrock = record.schema_type.as_deref() == Some("ModelInvocationLog");
    let response_is_text = record.response.is_some_and(|r| r.get().starts_with('"'));
    let openai = record.request.is_some() || (record.response.is_some() && !response_is_text);
    match ctx.format {
        Format::BedrockInvocationLogs if !bedrock => {
            return Err(
                "not a Bedrock invocation log record (`schemaType` is not `ModelInvocationLog`; \
                 a large-payload object? keep `largeDataDeliveryS3Config` outside the source)"
                    .into(),
            );
        }
        Format::OpenaiJsonl if !openai => {
            return Err(
                "not an OpenAI request/response log record: expected `request` (or `messages`) \
                 and `response`"
                    .into(),
            );
        }
        Format::SagemakerCapture if record.capture_data.is_none() => {
            return Err("not a SageMaker data capture record: `captureData` is missing".into());
        }
        _ => {}
    }
    if bedrock {
        return super::bedrock::decode(line, ctx, super::bedrock::Bodies::default());
    }
    if openai {
        return decode_openai_log(line, line_no, ctx);
    }
    match record.capture_data {
        Some(ref capture) => decode_sagemaker(&record, capture, line_no, ctx),
        None if record.prompt.is_some() || record.response.is_some() => {
            decode_plain(&record, line_no, ctx)
        }
        None => Err(
            "not a capture record: expected `captureData` (SageMaker data capture), \
             `schemaType: ModelInvocationLog` (Bedrock), `request` and `response` (an OpenAI \
             log) or `prompt` and `response` (a plain record)"
                .into(),
        ),
    }
}

/// An OpenAI-format request/response log record, as vLLM or LiteLLM write them: `request` (a
/// chat/completions request body; or its `messages` at the top, LiteLLM's standard payload) and
/// `response` (the response body); time from `timestamp`, `startTime` or the response's
/// `created`; the model from `model`, the request's or the response's.
fn decode_openai_log(line: &str, line_no: u64, ctx: &LineContext<'_>) -> Result<Capture, String> {
    let value: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let request_value = match value.get("request") {
        Some(request) => request.clone(),
        None => serde_json::json!({ "messages": value["messages"] }),
    };
    let response_value = value
        .get("response")
        .filter(|r| r.is_object() || r.is_array())
        .ok_or("an OpenAI log record without a `response` object")?;
    let request = parse_request(&request_value.to_string(), true)
        .map_err(|e| e.replace("endpointInput", "`request`"))?;
    let reply = parse_reply(&response_value.to_string(), true)
        .map_err(|e| e.replace("endpointOutput", "`response`"))?;
    let time = ["timestamp", "startTime", "start_time", "created"]
        .iter()
        .find_map(|k| value.get(*k))
        .or_else(|| response_value.get("created"))
        .ok_or("an OpenAI log record without a time (`timestamp`, `startTime` or the response's `created`)")?;
    let captured_at_us = parse_time_json(time).map_err(|e| format!("bad time: {e}"))?;
    let end = ["endTime", "end_time"].iter().find_map(|k| value.get(*k));
    let latency_ms = end
        .and_then(|e| parse_time_json(e).ok())
        .map(|e| (e - captured_at_us) as f64 / 1000.0)
        .filter(|ms| *ms >= 0.0)
        .or_else(|| value.get("latency_ms").and_then(serde_json::Value::as_f64));
    let named = value
        .get("model")
        .and_then(serde_json::Value::as_str)
        .map(str::to_string)
        .or(request.model.clone())
        .or(reply.model.clone());
    let mapped = named.as_deref().map(|m| {
        ctx.model_names
            .and_then(|n| n.get(m))
            .map_or(m, String::as_str)
    });
    let model = resolve_model(mapped, None, ctx)?;
    let request_id = ["id", "request_id", "litellm_call_id"]
        .iter()
        .find_map(|k| value.get(*k).and_then(serde_json::Value::as_str))
        .or_else(|| response_value.get("id").and_then(serde_json::Value::as_str))
        .map_or_else(
            || derived_request_id(ctx.source_uri, line_no),
            str::to_string,
        );
    Ok(Capture {
        request_id,
        inference_id: None,
        endpoint: ctx.path_endpoint.map(str::to_string),
        model,
        variant: None,
        captured_at_us,
        content_hash: content_hash(&request.prompt, &reply.response),
        prompt: request.prompt,
        messages: request.messages,
        response: reply.response,
        prompt_tokens: reply.prompt_tokens.and_then(to_i32),
        completion_tokens: reply.completion_tokens.and_then(to_i32),
        latency_ms,
        finish_reason: reply.finish_reason,
        payload_model: named,
    })
}

/// A time as RFC 3339 text or Unix seconds (or milliseconds) in a JSON value.
fn parse_time_json(value: &serde_json::Value) -> Result<i64, String> {
    let raw = serde_json::value::to_raw_value(value).map_err(|e| e.to_string())?;
    parse_time_value(&raw)
}

fn decode_sagemaker(
    record: &Line<'_>,
    capture: &CaptureData<'_>,
    line_no: u64,
    ctx: &LineContext<'_>,
) -> Result<Capture, String> {
    let meta = record
        .event_metadata
        .as_ref()
        .ok_or("not a capture record: `eventMetadata` is missing")?;
    let time = meta
        .inference_time
        .as_deref()
        .ok_or("not a capture record: `eventMetadata.inferenceTime` is missing")?;
    let captured_at_us =
        parse_time_text(time).map_err(|e| format!("bad `eventMetadata.inferenceTime`: {e}"))?;
    let input = capture
        .input
        .as_ref()
        .ok_or("not a capture record: `captureData.endpointInput` is missing")?;
    let output = capture
        .output
        .as_ref()
        .ok_or("not a capture record: `captureData.endpointOutput` is missing")?;
    let input_text = decode_part(input, "endpointInput")?;
    let output_text = decode_part(output, "endpointOutput")?;

    let request = parse_request(&input_text, is_json(input, &input_text))?;
    let reply = parse_reply(&output_text, is_json(output, &output_text))?;

    let payload_model = request.model.or(reply.model);
    let model = resolve_model(
        meta.inference_component.as_deref(),
        payload_model.as_deref(),
        ctx,
    )?;
    let request_id = match &meta.event_id {
        Some(id) => id.to_string(),
        None => derived_request_id(ctx.source_uri, line_no),
    };
    let content_hash = content_hash(&request.prompt, &reply.response);
    Ok(Capture {
        request_id,
        inference_id: meta.inference_id.as_deref().map(str::to_string),
        endpoint: ctx.path_endpoint.map(str::to_string),
        model,
        variant: ctx.path_component.map(str::to_string),
        captured_at_us,
        prompt: request.prompt,
        messages: request.messages,
        response: reply.response,
        prompt_tokens: reply.prompt_tokens.and_then(to_i32),
        completion_tokens: reply.completion_tokens.and_then(to_i32),
        latency_ms: None,
        finish_reason: reply.finish_reason,
        payload_model,
        content_hash,
    })
}

fn decode_plain(record: &Line<'_>, line_no: u64, ctx: &LineContext<'_>) -> Result<Capture, String> {
    let prompt = record
        .prompt
        .as_deref()
        .ok_or("plain record without `prompt`")?;
    let response: Cow<'_, str> = match record.response {
        Some(raw) => serde_json::from_str(raw.get())
            .map_err(|_| "plain record whose `response` is not text".to_string())?,
        None => return Err("plain record without `response`".into()),
    };
    let response = response.as_ref();
    let raw_time = record
        .timestamp
        .ok_or("plain record without `timestamp` (RFC 3339 text or Unix seconds)")?;
    let captured_at_us = parse_time_value(raw_time).map_err(|e| format!("bad `timestamp`: {e}"))?;
    let model = resolve_model(record.model.as_deref(), None, ctx)?;
    let messages = match record.messages {
        Some(raw) if raw.get() != "null" => Some(raw.get().to_string()),
        _ => None,
    };
    let request_id = match &record.request_id {
        Some(id) => id.to_string(),
        None => derived_request_id(ctx.source_uri, line_no),
    };
    Ok(Capture {
        request_id,
        inference_id: record.inference_id.as_deref().map(str::to_string),
        endpoint: record
            .endpoint
            .as_deref()
            .or(ctx.path_endpoint)
            .map(str::to_string),
        model,
        variant: record
            .variant
            .as_deref()
            .or(ctx.path_component)
            .map(str::to_string),
        captured_at_us,
        prompt: prompt.to_string(),
        messages,
        response: response.to_string(),
        prompt_tokens: record.prompt_tokens.and_then(to_i32),
        completion_tokens: record.completion_tokens.and_then(to_i32),
        latency_ms: record.latency_ms,
        finish_reason: record.finish_reason.as_deref().map(str::to_string),
        payload_model: None,
        content_hash: content_hash(prompt, response),
    })
}

/// The model: named by the record, else by the capture path, else by config.
fn resolve_model(
    record_model: Option<&str>,
    payload_model: Option<&str>,
    ctx: &LineContext<'_>,
) -> Result<String, String> {
    let from_payload = payload_model.filter(|_| ctx.model_from_payload);
    record_model
        .or(from_payload)
        .or(ctx.path_component)
        .or(ctx.default_model)
        .filter(|m| !m.trim().is_empty())
        .map(str::to_string)
        .ok_or_else(|| {
            "no model: the record names none, its path is not in the SageMaker layout \
             (<endpoint>/<component>/yyyy/mm/dd/hh/), and `ingest.default-model` is not set"
                .to_string()
        })
}

fn derived_request_id(source_uri: &str, line_no: u64) -> String {
    let mut hasher = Sha256::new();
    hasher.update(source_uri.as_bytes());
    hasher.update(b"#");
    hasher.update(line_no.to_string().as_bytes());
    hex::encode(&hasher.finalize()[..16])
}

fn to_i32(n: i64) -> Option<i32> {
    i32::try_from(n).ok().filter(|n| *n >= 0)
}

/// The payload text of a `captureData` part, decoded from its `encoding`.
fn decode_part<'a>(part: &'a Part<'a>, name: &str) -> Result<Cow<'a, str>, String> {
    let raw = part
        .data
        .ok_or_else(|| format!("not a capture record: `captureData.{name}.data` is missing"))?;
    let encoding = part.encoding.as_deref().unwrap_or("JSON");
    let text = raw.get();
    if encoding.eq_ignore_ascii_case("BASE64") {
        let encoded: Cow<'_, str> = serde_json::from_str(text)
            .map_err(|_| format!("`captureData.{name}.data` is BASE64-encoded but not a string"))?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded.as_bytes())
            .map_err(|e| format!("bad base64 in `captureData.{name}.data`: {e}"))?;
        return String::from_utf8(bytes)
            .map(Cow::Owned)
            .map_err(|_| format!("`captureData.{name}.data` decodes to bytes that are not UTF-8"));
    }
    if text.starts_with('"') {
        // JSON (and CSV, text) payloads are carried as a JSON string.
        serde_json::from_str::<Cow<'a, str>>(text)
            .map_err(|e| format!("bad string in `captureData.{name}.data`: {e}"))
    } else {
        // Some producers inline the payload as a JSON value.
        Ok(Cow::Borrowed(text))
    }
}

fn is_json(part: &Part<'_>, text: &str) -> bool {
    match part.content_type.as_deref() {
        Some(ct) if ct.contains("json") => true,
        _ => matches!(text.trim_start().as_bytes().first(), Some(b'{' | b'[')),
    }
}

struct Request {
    prompt: String,
    messages: Option<String>,
    model: Option<String>,
}

struct Reply {
    response: String,
    prompt_tokens: Option<i64>,
    completion_tokens: Option<i64>,
    finish_reason: Option<String>,
    model: Option<String>,
}

fn parse_request(text: &str, json: bool) -> Result<Request, String> {
    if !json {
        return Ok(Request {
            prompt: text.to_string(),
            messages: None,
            model: None,
        });
    }
    let payload: InputPayload<'_> = serde_json::from_str(text)
        .map_err(|e| format!("unknown payload shape in endpointInput: {e}"))?;
    let model = payload.model.as_deref().map(str::to_string);
    if let Some(messages) = payload.messages {
        let prompt = last_user_turn(messages)?;
        return Ok(Request {
            prompt,
            messages: Some(messages.get().to_string()),
            model,
        });
    }
    if let Some(raw) = payload.inputs.or(payload.prompt) {
        return Ok(Request {
            prompt: text_or_first(raw, "endpointInput")?,
            messages: None,
            model,
        });
    }
    Err(
        "unknown payload shape in endpointInput: expected `messages` (OpenAI chat), \
         `inputs` (TGI/LMI) or `prompt` (completions)"
            .into(),
    )
}

/// A JSON string, or the first string of a JSON list of strings (batched TGI inputs).
fn text_or_first(raw: &RawValue, part: &str) -> Result<String, String> {
    if let Ok(text) = serde_json::from_str::<Cow<'_, str>>(raw.get()) {
        return Ok(text.into_owned());
    }
    match serde_json::from_str::<Vec<Cow<'_, str>>>(raw.get()) {
        Ok(list) if !list.is_empty() => Ok(list[0].to_string()),
        _ => Err(format!(
            "unknown payload shape in {part}: the prompt is neither text nor a list of texts"
        )),
    }
}

fn last_user_turn(messages: &RawValue) -> Result<String, String> {
    let messages: Vec<Message<'_>> = serde_json::from_str(messages.get())
        .map_err(|e| format!("unknown payload shape in endpointInput: bad `messages`: {e}"))?;
    let user = messages
        .iter()
        .rev()
        .find(|m| m.role.as_deref() == Some("user"))
        .ok_or("unknown payload shape in endpointInput: `messages` has no user turn")?;
    let Some(content) = user.content else {
        return Ok(String::new());
    };
    if let Ok(text) = serde_json::from_str::<Cow<'_, str>>(content.get()) {
        return Ok(text.into_owned());
    }
    let parts: Vec<ContentPart<'_>> = serde_json::from_str(content.get()).map_err(|_| {
        "unknown payload shape in endpointInput: user `content` is neither text nor a list of parts"
            .to_string()
    })?;
    Ok(parts
        .iter()
        .filter_map(|p| p.text.as_deref())
        .collect::<Vec<_>>()
        .join(""))
}

fn parse_reply(text: &str, json: bool) -> Result<Reply, String> {
    if !json {
        return Ok(Reply {
            response: text.to_string(),
            prompt_tokens: None,
            completion_tokens: None,
            finish_reason: None,
            model: None,
        });
    }
    let unknown = |e: serde_json::Error| format!("unknown payload shape in endpointOutput: {e}");
    let payload: OutputPayload<'_> = if text.trim_start().starts_with('[') {
        // TGI answers a list: [{"generated_text": ...}]
        let mut list: Vec<OutputPayload<'_>> = serde_json::from_str(text).map_err(unknown)?;
        if list.is_empty() {
            return Err("unknown payload shape in endpointOutput: empty list".into());
        }
        list.swap_remove(0)
    } else {
        serde_json::from_str(text).map_err(unknown)?
    };
    // Move the texts out of the payload: they were unescaped into owned strings already.
    let model = payload.model.map(Cow::into_owned);
    if let Some(choices) = payload.choices {
        let choice = choices
            .into_iter()
            .next()
            .ok_or("unknown payload shape in endpointOutput: `choices` is empty")?;
        let response = choice
            .message
            .and_then(|m| m.content)
            .or(choice.text)
            .map(Cow::into_owned)
            .unwrap_or_default();
        return Ok(Reply {
            response,
            prompt_tokens: payload.usage.as_ref().and_then(|u| u.prompt_tokens),
            completion_tokens: payload.usage.as_ref().and_then(|u| u.completion_tokens),
            finish_reason: choice.finish_reason.map(Cow::into_owned),
            model,
        });
    }
    if let Some(generated) = payload.generated_text {
        let details = payload.details;
        return Ok(Reply {
            response: generated.into_owned(),
            prompt_tokens: details.as_ref().and_then(|d| d.prompt_tokens),
            completion_tokens: details.as_ref().and_then(|d| d.generated_tokens),
            finish_reason: details.and_then(|d| d.finish_reason).map(Cow::into_owned),
            model,
        });
    }
    Err(
        "unknown payload shape in endpointOutput: expected `choices` (OpenAI) \
         or `generated_text` (TGI/LMI)"
            .into(),
    )
}

/// Parses RFC 3339 (`2026-10-01T12:00:00Z`, offsets, fractions) or a naive
/// `YYYY-MM-DD[T ]HH:MM:SS[.f]` taken as UTC, into microseconds since the epoch.
pub fn parse_time_text(text: &str) -> Result<i64, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc).timestamp_micros());
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
            return Ok(t.and_utc().timestamp_micros());
        }
    }
    Err(format!("`{text}` is not an RFC 3339 time"))
}

fn parse_time_value(raw: &RawValue) -> Result<i64, String> {
    let text = raw.get();
    if text.starts_with('"') {
        let s: Cow<'_, str> = serde_json::from_str(text).map_err(|e| e.to_string())?;
        return parse_time_text(&s);
    }
    let seconds: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is neither RFC 3339 text nor Unix seconds"))?;
    // Values this large are milliseconds (year 5138 in seconds).
    let micros = if seconds.abs() > 1e11 {
        seconds * 1e3
    } else {
        seconds * 1e6
    };
    Ok(micros.round() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> LineContext<'static> {
        LineContext {
            source_uri: "s3://b/capture/ep/chat-a/2026/10/01/00/f.jsonl",
            path_endpoint: Some("ep"),
            path_component: Some("chat-a"),
            default_model: None,
            model_from_payload: false,
            ..LineContext::default()
        }
    }

    #[test]
    fn openai_logs_as_vllm_and_litellm_write_them() {
        let vllm = r#"{"id":"req-7","timestamp":"2026-10-02T08:00:00Z","request":{"model":"llama-3-8b","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Capital of France?"}]},"response":{"id":"cmpl-1","object":"chat.completion","created":1790000000,"model":"llama-3-8b","choices":[{"index":0,"message":{"role":"assistant","content":"Paris."},"finish_reason":"stop"}],"usage":{"prompt_tokens":14,"completion_tokens":2}}}"#;
        let c = decode_line(vllm, 1, &LineContext::default()).unwrap();
        assert_eq!(
            (c.prompt.as_str(), c.response.as_str()),
            ("Capital of France?", "Paris.")
        );
        assert_eq!(
            (c.model.as_str(), c.request_id.as_str()),
            ("llama-3-8b", "req-7")
        );
        assert_eq!((c.prompt_tokens, c.completion_tokens), (Some(14), Some(2)));
        // LiteLLM's standard payload: messages at the top, start and end times in seconds.
        let litellm = r#"{"id":"chatcmpl-9","model":"gpt-4o-mini","messages":[{"role":"user","content":"Hi"}],"response":{"choices":[{"message":{"content":"Hello!"}}]},"startTime":1790000000.0,"endTime":1790000000.75}"#;
        let names =
            std::collections::BTreeMap::from([("gpt-4o-mini".to_string(), "router".to_string())]);
        let ctx = LineContext {
            format: Format::OpenaiJsonl,
            model_names: Some(&names),
            ..LineContext::default()
        };
        let c = decode_line(litellm, 2, &ctx).unwrap();
        assert_eq!(
            (c.model.as_str(), c.response.as_str()),
            ("router", "Hello!")
        );
        assert_eq!(c.latency_ms, Some(750.0));
        // Pinned formats refuse the others' lines, naming what they expected.
        let err =
            decode_line(r#"{"prompt":"a","response":"b","timestamp":1}"#, 3, &ctx).unwrap_err();
        assert!(err.contains("not an OpenAI request/response log"), "{err}");
        let bedrock = LineContext {
            format: Format::BedrockInvocationLogs,
            ..LineContext::default()
        };
        let err = decode_line(vllm, 1, &bedrock).unwrap_err();
        assert!(err.contains("not a Bedrock invocation log record"), "{err}");
        // A plain record still reads as before.
        let plain = decode_line(
            r#"{"prompt":"a","response":"b","timestamp":1790000000,"model":"m"}"#,
            4,
            &LineContext::default(),
        )
        .unwrap();
        assert_eq!(plain.response, "b");
    }

    fn sagemaker(input: &str, output: &str, encoding: &str) -> String {
        let (i, o) = if encoding == "BASE64" {
            let e = base64::engine::general_purpose::STANDARD;
            (
                serde_json::to_string(&e.encode(input)).unwrap(),
                serde_json::to_string(&e.encode(output)).unwrap(),
            )
        } else {
            (
                serde_json::to_string(input).unwrap(),
                serde_json::to_string(output).unwrap(),
            )
        };
        format!(
            r#"{{"captureData":{{"endpointInput":{{"observedContentType":"application/json","mode":"INPUT","data":{i},"encoding":"{encoding}"}},"endpointOutput":{{"observedContentType":"application/json","mode":"OUTPUT","data":{o},"encoding":"{encoding}"}}}},"eventMetadata":{{"eventId":"ev-1","inferenceId":"inf-1","inferenceTime":"2026-10-01T00:15:30Z"}},"eventVersion":"0"}}"#
        )
    }

    const OPENAI_IN: &str = r#"{"model":"llama-3","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi \"there\""},{"role":"assistant","content":"Hello"},{"role":"user","content":[{"type":"text","text":"What is 2+2?"}]}]}"#;
    const OPENAI_OUT: &str = r#"{"id":"x","choices":[{"index":0,"message":{"role":"assistant","content":"4."},"finish_reason":"stop"}],"usage":{"prompt_tokens":21,"completion_tokens":2,"total_tokens":23}}"#;

    #[test]
    fn openai_chat_in_both_encodings() {
        for encoding in ["JSON", "BASE64"] {
            let line = sagemaker(OPENAI_IN, OPENAI_OUT, encoding);
            let c = decode_line(&line, 1, &ctx()).unwrap();
            assert_eq!(c.prompt, "What is 2+2?");
            assert_eq!(c.response, "4.");
            assert_eq!(c.model, "chat-a");
            assert_eq!(c.payload_model.as_deref(), Some("llama-3"));
            assert_eq!(c.endpoint.as_deref(), Some("ep"));
            assert_eq!(c.request_id, "ev-1");
            assert_eq!(c.inference_id.as_deref(), Some("inf-1"));
            assert_eq!(c.prompt_tokens, Some(21));
            assert_eq!(c.completion_tokens, Some(2));
            assert_eq!(c.finish_reason.as_deref(), Some("stop"));
            assert_eq!(c.captured_at_us, 1_790_813_730_000_000);
            let messages: serde_json::Value =
                serde_json::from_str(c.messages.as_deref().unwrap()).unwrap();
            assert_eq!(messages.as_array().unwrap().len(), 4);
            assert_eq!(c.content_hash, content_hash("What is 2+2?", "4."));
        }
    }

    #[test]
    fn tgi_list_and_object_outputs() {
        let input = r#"{"inputs":"Tell me a joke","parameters":{"max_new_tokens":64}}"#;
        for output in [
            r#"[{"generated_text":"Why did..."}]"#,
            r#"{"generated_text":"Why did...","details":{"finish_reason":"length","generated_tokens":64}}"#,
        ] {
            let c = decode_line(&sagemaker(input, output, "JSON"), 3, &ctx()).unwrap();
            assert_eq!(c.prompt, "Tell me a joke");
            assert_eq!(c.response, "Why did...");
        }
        let c = decode_line(
            &sagemaker(
                input,
                r#"{"generated_text":"x","details":{"finish_reason":"length","generated_tokens":64}}"#,
                "BASE64",
            ),
            3,
            &ctx(),
        )
        .unwrap();
        assert_eq!(c.finish_reason.as_deref(), Some("length"));
        assert_eq!(c.completion_tokens, Some(64));
    }

    #[test]
    fn plain_text_payloads() {
        let line = r#"{"captureData":{"endpointInput":{"observedContentType":"text/plain","data":"hello","encoding":"CSV"},"endpointOutput":{"observedContentType":"text/plain","data":"world","encoding":"CSV"}},"eventMetadata":{"eventId":"e","inferenceTime":"2026-10-01T00:00:00.123Z"}}"#;
        let c = decode_line(line, 1, &ctx()).unwrap();
        assert_eq!((c.prompt.as_str(), c.response.as_str()), ("hello", "world"));
        assert_eq!(c.captured_at_us % 1_000_000, 123_000);
    }

    #[test]
    fn plain_records() {
        let line = r#"{"prompt":"p","response":"r","model":"m1","timestamp":"2026-10-02 03:04:05","latency_ms":812.5}"#;
        let c = decode_line(line, 7, &LineContext::default()).unwrap();
        assert_eq!(c.model, "m1");
        assert_eq!(c.latency_ms, Some(812.5));
        assert_eq!(c.request_id.len(), 32);
        let again = decode_line(line, 7, &LineContext::default()).unwrap();
        assert_eq!(c.request_id, again.request_id, "derived ids are stable");
        let epoch = r#"{"prompt":"p","response":"r","timestamp":1790000000,"model":"m"}"#;
        assert_eq!(
            decode_line(epoch, 1, &LineContext::default())
                .unwrap()
                .captured_at_us,
            1_790_000_000_000_000
        );
    }

    #[test]
    fn model_precedence_record_path_config() {
        let no_path = LineContext {
            default_model: Some("fallback"),
            ..LineContext::default()
        };
        let line = r#"{"prompt":"p","response":"r","timestamp":1}"#;
        assert_eq!(decode_line(line, 1, &no_path).unwrap().model, "fallback");
        let err = decode_line(line, 1, &LineContext::default()).unwrap_err();
        assert!(err.contains("default-model"), "{err}");
        let payload_first = LineContext {
            model_from_payload: true,
            ..ctx()
        };
        let line = sagemaker(OPENAI_IN, OPENAI_OUT, "JSON");
        assert_eq!(
            decode_line(&line, 1, &payload_first).unwrap().model,
            "llama-3"
        );
    }

    #[test]
    fn bad_lines_say_why() {
        let cases = [
            ("{not json", "not JSON"),
            ("[1,2]", "not a capture record"),
            (r#"{"foo":1}"#, "not a capture record"),
            (
                r#"{"captureData":{"endpointInput":{"data":"@@@","encoding":"BASE64"},"endpointOutput":{"data":"e30=","encoding":"BASE64"}},"eventMetadata":{"inferenceTime":"2026-10-01T00:00:00Z"}}"#,
                "bad base64",
            ),
            (
                r#"{"captureData":{"endpointInput":{"data":"{\"foo\":1}","encoding":"JSON"},"endpointOutput":{"data":"{}","encoding":"JSON"}},"eventMetadata":{"inferenceTime":"2026-10-01T00:00:00Z"}}"#,
                "unknown payload shape in endpointInput",
            ),
            (
                r#"{"captureData":{"endpointInput":{"data":"{\"inputs\":\"x\"}","encoding":"JSON"},"endpointOutput":{"data":"{\"answer\":1}","encoding":"JSON"}},"eventMetadata":{"inferenceTime":"2026-10-01T00:00:00Z"}}"#,
                "unknown payload shape in endpointOutput",
            ),
            (
                r#"{"captureData":{"endpointInput":{"data":"x"},"endpointOutput":{"data":"y"}},"eventMetadata":{"inferenceTime":"yesterday"}}"#,
                "inferenceTime",
            ),
        ];
        for (line, expected) in cases {
            let err = decode_line(line, 1, &ctx()).unwrap_err();
            assert!(err.contains(expected), "{line}: {err}");
        }
    }
}
