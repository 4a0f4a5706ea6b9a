//! Amazon Bedrock model invocation log records (`schemaType` "ModelInvocationLog", what Bedrock
//! delivers under `AWSLogs/<account>/BedrockModelInvocationLogs/<region>/yyyy/mm/dd/hh/`) and
//! OpenAI-format request/response logs (vLLM, LiteLLM) as [`Capture`] rows.
//!
//! Bedrock bodies are decoded by shape, not by model name: Converse and Nova (`messages` of
//! content blocks -> `output.message`), Anthropic Messages (`messages` -> `content`), Titan text
//! (`inputText` -> `results`), Llama, Mistral and Cohere (`prompt` -> `generation`, `outputs`,
//! `generations`), streamed responses (a list of chunks) joined. A body Bedrock kept in its own S3
//! object (`inputBodyS3Path`, `outputBodyS3Path`) is read by the caller ([`body_paths`]) and
//! passed in.

use serde::Deserialize;
use serde_json::Value;

use super::decode::{Capture, LineContext, content_hash, parse_time_text};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Record {
    timestamp: Option<String>,
    request_id: Option<String>,
    model_id: Option<String>,
    region: Option<String>,
    error_code: Option<String>,
    input: Option<Input>,
    output: Option<Output>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Input {
    input_body_json: Option<Value>,
    input_body_s3_path: Option<String>,
    input_token_count: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Output {
    output_body_json: Option<Value>,
    output_body_s3_path: Option<String>,
    output_token_count: Option<i64>,
}

/// Bodies read from the S3 objects a record points to.
#[derive(Debug, Default)]
pub struct Bodies {
    pub input: Option<Value>,
    pub output: Option<Value>,
}

/// The S3 objects holding a record's bodies, (input, output), where it has any.
pub fn body_paths(line: &str) -> Option<(Option<String>, Option<String>)> {
    if !line.contains("BodyS3Path") {
        return None;
    }
    let record: Record = serde_json::from_str(line).ok()?;
    let input = record
        .input
        .filter(|i| i.input_body_json.is_none())
        .and_then(|i| i.input_body_s3_path);
    let output = record
        .output
        .filter(|o| o.output_body_json.is_none())
        .and_then(|o| o.output_body_s3_path);
    (input.is_some() || output.is_some()).then_some((input, output))
}

/// A body object's content: the body itself, gzipped or not.
pub fn parse_body(bytes: &[u8]) -> Result<Value, String> {
    let text = if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(bytes), &mut out)
            .map_err(|e| format!("not gzip text: {e}"))?;
        out
    } else {
        String::from_utf8(bytes.to_vec()).map_err(|_| "not UTF-8".to_string())?
    };
    serde_json::from_str(&text).map_err(|e| format!("not JSON: {e}"))
}

/// The model partition of a Bedrock model id: the `[ingest] model-names` entry, else the id, an
/// ARN's last path segment (an inference profile's or a provisioned model's id).
fn model_name(model_id: &str, ctx: &LineContext<'_>) -> String {
    if let Some(name) = ctx.model_names.and_then(|m| m.get(model_id)) {
        return name.clone();
    }
    let id = match model_id.strip_prefix("arn:") {
        Some(_) => model_id.rsplit('/').next().unwrap_or(model_id),
        None => model_id,
    };
    ctx.model_names
        .and_then(|m| m.get(id))
        .cloned()
        .unwrap_or_else(|| id.to_string())
}

/// Decodes a Bedrock invocation log record, with the bodies read from S3 where it kept them.
pub fn decode(line: &str, ctx: &LineContext<'_>, bodies: Bodies) -> Result<Capture, String> {
    let record: Record = serde_json::from_str(line)
        .map_err(|e| format!("not a Bedrock invocation log record: {e}"))?;
    let model_id = record
        .model_id
        .as_deref()
        .ok_or("not a Bedrock invocation log record: `modelId` is missing")?;
    if let Some(code) = &record.error_code {
        return Err(format!(
            "a failed invocation of `{model_id}` (errorCode {code}): there is no reply to judge"
        ));
    }
    let time = record
        .timestamp
        .as_deref()
        .ok_or("not a Bedrock invocation log record: `timestamp` is missing")?;
    let captured_at_us = parse_time_text(time).map_err(|e| format!("bad `timestamp`: {e}"))?;
    let input = record
        .input
        .ok_or("not a Bedrock invocation log record: `input` is missing")?;
    let output = record
        .output
        .ok_or("not a Bedrock invocation log record: `output` is missing")?;
    let request = match (input.input_body_json, bodies.input) {
        (Some(body), _) | (None, Some(body)) => body,
        (None, None) => {
            return Err(match input.input_body_s3_path {
                Some(path) => format!(
                    "the request body is in `{path}`, which this source cannot read: ingest from \
                     the bucket (`s3://...`)"
                ),
                None => "no request body: `input.inputBodyJson` is missing (is text data \
                         delivery on in the logging configuration?)"
                    .into(),
            });
        }
    };
    let response = match (output.output_body_json, bodies.output) {
        (Some(body), _) | (None, Some(body)) => body,
        (None, None) => {
            return Err(match output.output_body_s3_path {
                Some(path) => format!(
                    "the response body is in `{path}`, which this source cannot read: ingest \
                     from the bucket (`s3://...`)"
                ),
                None => "no response body: `output.outputBodyJson` is missing".into(),
            });
        }
    };
    let (prompt, messages) = request_text(&request)
        .ok_or("unknown request body: expected `messages` (Converse, Anthropic, Nova), `inputText` (Titan) or `prompt` (Llama, Mistral, Cohere)")?;
    let reply = reply_text(&response).ok_or(
        "unknown response body: expected `output.message` (Converse, Nova), `content` \
         (Anthropic), `results` (Titan), `generation` (Llama), `outputs` (Mistral) or \
         `generations` (Cohere)",
    )?;
    let usage = |keys: &[&str]| -> Option<i64> {
        keys.iter()
            .find_map(|k| pointer(&response, k).and_then(Value::as_i64))
    };
    let prompt_tokens = input.input_token_count.or_else(|| {
        usage(&[
            "/usage/inputTokens",
            "/usage/input_tokens",
            "/inputTextTokenCount",
            "/prompt_token_count",
        ])
    });
    let completion_tokens = output.output_token_count.or_else(|| {
        usage(&[
            "/usage/outputTokens",
            "/usage/output_tokens",
            "/results/0/tokenCount",
            "/generation_token_count",
        ])
    });
    let finish_reason = [
        "/stopReason",
        "/stop_reason",
        "/results/0/completionReason",
        "/outputs/0/stop_reason",
    ]
    .iter()
    .find_map(|k| pointer(&response, k).and_then(Value::as_str))
    .map(str::to_string);
    let request_id = record
        .request_id
        .ok_or("not a Bedrock invocation log record: `requestId` is missing")?;
    Ok(Capture {
        request_id,
        inference_id: None,
        endpoint: record.region.map(|r| format!("bedrock:{r}")),
        model: model_name(model_id, ctx),
        variant: None,
        captured_at_us,
        content_hash: content_hash(&prompt, &reply),
        prompt,
        messages,
        response: reply,
        prompt_tokens: prompt_tokens.and_then(|n| i32::try_from(n).ok()),
        completion_tokens: completion_tokens.and_then(|n| i32::try_from(n).ok()),
        latency_ms: pointer(&response, "/metrics/latencyMs").and_then(Value::as_f64),
        finish_reason,
        payload_model: Some(model_id.to_string()),
    })
}

fn pointer<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    value.pointer(path)
}

/// A content field's text: a string, or the `text` of its blocks joined.
fn content_text(content: &Value) -> Option<String> {
    match content {
        Value::String(s) => Some(s.clone()),
        Value::Array(blocks) => Some(
            blocks
                .iter()
                .filter_map(|b| b.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join(""),
        ),
        _ => None,
    }
}

/// The request's last user turn and, for a chat, its messages as JSON.
fn request_text(body: &Value) -> Option<(String, Option<String>)> {
    if let Some(messages) = body.get("messages").and_then(Value::as_array) {
        let user = messages
            .iter()
            .rev()
            .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))?;
        let text = content_text(user.get("content")?)?;
        return Some((text, Some(Value::Array(messages.clone()).to_string())));
    }
    if let Some(text) = body.get("inputText").and_then(Value::as_str) {
        return Some((text.to_string(), None));
    }
    if let Some(text) = body
        .get("prompt")
        .or_else(|| body.get("message"))
        .and_then(Value::as_str)
    {
        return Some((last_template_turn(text), None));
    }
    None
}

/// The last user turn of a prompt in the Llama 3 (`<|start_header_id|>user<|end_header_id|>`)
/// or Llama 2 / Mistral (`[INST] ... [/INST]`) chat template; otherwise the prompt as it is.
fn last_template_turn(prompt: &str) -> String {
    const USER: &str = "<|start_header_id|>user<|end_header_id|>";
    if let Some((_, rest)) = prompt.rsplit_once(USER) {
        return rest
            .split("<|eot_id|>")
            .next()
            .unwrap_or(rest)
            .trim()
            .to_string();
    }
    if let Some((_, rest)) = prompt.rsplit_once("[INST]") {
        let turn = rest.split("[/INST]").next().unwrap_or(rest);
        let turn = turn.rsplit_once("<</SYS>>").map_or(turn, |(_, t)| t);
        return turn.trim().to_string();
    }
    prompt.trim().to_string()
}

/// The reply of a response body, or of a streamed one's chunks joined.
fn reply_text(body: &Value) -> Option<String> {
    if let Value::Array(chunks) = body {
        let text: String = chunks.iter().filter_map(chunk_text).collect();
        return (!chunks.is_empty()).then_some(text);
    }
    if let Some(content) = body.pointer("/output/message/content") {
        return content_text(content);
    }
    if let Some(content) = body.get("content") {
        return content_text(content);
    }
    [
        "/results/0/outputText",
        "/generation",
        "/outputs/0/text",
        "/generations/0/text",
        "/completion",
        "/text",
    ]
    .iter()
    .find_map(|k| body.pointer(k).and_then(Value::as_str))
    .map(|s| s.trim_start().to_string())
}

/// One streamed chunk's text: Anthropic `content_block_delta`, Converse `contentBlockDelta`,
/// Llama `generation`, Titan `outputText`.
fn chunk_text(chunk: &Value) -> Option<&str> {
    [
        "/delta/text",
        "/contentBlockDelta/delta/text",
        "/generation",
        "/outputText",
    ]
    .iter()
    .find_map(|k| chunk.pointer(k).and_then(Value::as_str))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(model: &str, request: Value, response: Value) -> String {
        serde_json::json!({
            "schemaType": "ModelInvocationLog", "schemaVersion": "1.0",
            "timestamp": "2026-10-01T09:24:33Z", "accountId": "123456789012",
            "region": "us-east-1", "requestId": "r-1", "operation": "InvokeModel",
            "modelId": model,
            "input": {"inputContentType": "application/json", "inputBodyJson": request, "inputTokenCount": 12},
            "output": {"outputContentType": "application/json", "outputBodyJson": response, "outputTokenCount": 5},
        })
        .to_string()
    }

    fn decoded(model: &str, request: Value, response: Value) -> Capture {
        decode(
            &record(model, request, response),
            &LineContext::default(),
            Bodies::default(),
        )
        .unwrap()
    }

    #[test]
    fn every_body_shape_gives_the_last_user_turn_and_the_reply() {
        use serde_json::json;
        let converse = decoded(
            "anthropic.claude-3-haiku-20240307-v1:0",
            json!({"messages": [
                {"role": "user", "content": [{"text": "first"}]},
                {"role": "assistant", "content": [{"text": "ok"}]},
                {"role": "user", "content": [{"text": "How do I "}, {"text": "bake bread?"}]}],
                "system": [{"text": "Be brief."}]}),
            json!({"output": {"message": {"role": "assistant", "content": [{"text": "Knead it."}]}},
                   "stopReason": "end_turn", "metrics": {"latencyMs": 812},
                   "usage": {"inputTokens": 30, "outputTokens": 4}}),
        );
        assert_eq!(converse.prompt, "How do I bake bread?");
        assert_eq!(converse.response, "Knead it.");
        assert_eq!(converse.model, "anthropic.claude-3-haiku-20240307-v1:0");
        assert_eq!(converse.latency_ms, Some(812.0));
        assert_eq!(converse.finish_reason.as_deref(), Some("end_turn"));
        // The record's token counts win over the body's.
        assert_eq!(
            (converse.prompt_tokens, converse.completion_tokens),
            (Some(12), Some(5))
        );
        assert!(converse.messages.unwrap().contains("first"));
        assert_eq!(converse.endpoint.as_deref(), Some("bedrock:us-east-1"));

        let anthropic = decoded(
            "anthropic.claude-3-5-sonnet-20240620-v1:0",
            json!({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 10,
                   "messages": [{"role": "user", "content": "Hi there"}]}),
            json!({"type": "message", "content": [{"type": "text", "text": "Hello!"}],
                   "stop_reason": "end_turn", "usage": {"input_tokens": 3, "output_tokens": 2}}),
        );
        assert_eq!(
            (anthropic.prompt.as_str(), anthropic.response.as_str()),
            ("Hi there", "Hello!")
        );

        let titan = decoded(
            "amazon.titan-text-express-v1",
            json!({"inputText": "User: Name a colour.\nBot:"}),
            json!({"results": [{"outputText": " Blue.", "completionReason": "FINISH", "tokenCount": 2}]}),
        );
        assert_eq!(titan.response, "Blue.");
        assert_eq!(titan.finish_reason.as_deref(), Some("FINISH"));

        let llama = decoded(
            "meta.llama3-8b-instruct-v1:0",
            json!({"prompt": "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe kind<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"}),
            json!({"generation": "4", "stop_reason": "stop"}),
        );
        assert_eq!(
            (llama.prompt.as_str(), llama.response.as_str()),
            ("What is 2+2?", "4")
        );
        let mistral = decoded(
            "mistral.mistral-7b-instruct-v0:2",
            json!({"prompt": "<s>[INST] Say yes [/INST]"}),
            json!({"outputs": [{"text": " Yes", "stop_reason": "stop"}]}),
        );
        assert_eq!(
            (mistral.prompt.as_str(), mistral.response.as_str()),
            ("Say yes", "Yes")
        );

        let streamed = decoded(
            "anthropic.claude-3-haiku-20240307-v1:0",
            json!({"messages": [{"role": "user", "content": [{"text": "Count"}]}]}),
            json!([{"messageStart": {"role": "assistant"}},
                   {"contentBlockDelta": {"delta": {"text": "one, "}}},
                   {"contentBlockDelta": {"delta": {"text": "two"}}},
                   {"messageStop": {"stopReason": "end_turn"}}]),
        );
        assert_eq!(streamed.response, "one, two");
    }

    #[test]
    fn failed_invocations_missing_bodies_and_unknown_shapes_say_why() {
        let failed = r#"{"schemaType":"ModelInvocationLog","timestamp":"2026-10-01T00:00:00Z","requestId":"x","modelId":"m","errorCode":"ThrottlingException","input":{"inputBodyJson":{"messages":[]}}}"#;
        let err = decode(failed, &LineContext::default(), Bodies::default()).unwrap_err();
        assert!(
            err.contains("ThrottlingException") && err.contains("no reply"),
            "{err}"
        );

        let mut line: Value = serde_json::from_str(&record(
            "m",
            serde_json::json!({"messages": [{"role": "user", "content": "hi"}]}),
            serde_json::json!({"generation": "yo"}),
        ))
        .unwrap();
        let body = line["input"]
            .as_object_mut()
            .unwrap()
            .remove("inputBodyJson")
            .unwrap();
        line["input"]["inputBodyS3Path"] = "s3://logs/large/r-1-input.json.gz".into();
        let text = line.to_string();
        assert_eq!(
            body_paths(&text),
            Some((Some("s3://logs/large/r-1-input.json.gz".into()), None))
        );
        let err = decode(&text, &LineContext::default(), Bodies::default()).unwrap_err();
        assert!(err.contains("s3://logs/large/r-1-input.json.gz"), "{err}");
        let bodies = Bodies {
            input: Some(body),
            output: None,
        };
        let capture = decode(&text, &LineContext::default(), bodies).unwrap();
        assert_eq!(
            (capture.prompt.as_str(), capture.response.as_str()),
            ("hi", "yo")
        );

        let odd = record(
            "m",
            serde_json::json!({"images": []}),
            serde_json::json!({}),
        );
        let err = decode(&odd, &LineContext::default(), Bodies::default()).unwrap_err();
        assert!(err.contains("unknown request body"), "{err}");
    }

    #[test]
    fn models_are_named_by_id_by_profile_or_by_the_config() {
        let names: std::collections::BTreeMap<String, String> = [(
            "meta.llama3-8b-instruct-v1:0".to_string(),
            "support-bot".to_string(),
        )]
        .into();
        let ctx = LineContext {
            model_names: Some(&names),
            ..LineContext::default()
        };
        assert_eq!(
            model_name("meta.llama3-8b-instruct-v1:0", &ctx),
            "support-bot"
        );
        assert_eq!(
            model_name(
                "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.amazon.nova-lite-v1:0",
                &ctx
            ),
            "us.amazon.nova-lite-v1:0"
        );
        assert_eq!(
            model_name("amazon.titan-text-express-v1", &ctx),
            "amazon.titan-text-express-v1"
        );
    }
}
