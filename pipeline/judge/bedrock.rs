//! The Bedrock judge: one `Converse` call per judged pair, temperature 0, with the `record_scores`
//! tool forced through `toolChoice`. Token counts come from the response's `usage`.
//!
//! Prompt caching: on models that support it (`judge.prompt-cache-models`), the system prompt
//! (the rubric's instructions, the same for every call) ends with a `cachePoint`, so the tool
//! definition and the instructions before it are read from the model's cache after the first call
//! (for five minutes after the last hit); only the judged prompt and reply, in the user message,
//! are new input. The reply's `usage` says how many tokens were read from and written to the
//! cache; `inputTokens` counts the rest.
//!
//! The SDK's own retries are off for this client: the score engine retries with its adaptive
//! limiter, which has to see every throttle.

use std::collections::HashMap;

use aws_sdk_bedrockruntime::config::http::HttpResponse;
use aws_sdk_bedrockruntime::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_bedrockruntime::operation::converse::ConverseError;
use aws_sdk_bedrockruntime::types::{
    CachePointBlock, CachePointType, ContentBlock, ConversationRole, ConverseOutput,
    InferenceConfiguration, Message, SpecificToolChoice, SystemContentBlock, Tool, ToolChoice,
    ToolConfiguration, ToolInputSchema, ToolSpecification,
};
use aws_smithy_types::{Document, Number};
use serde_json::Value;

use super::protocol::TOOL_NAME;
use super::{CallError, Llm, Reply};

#[derive(Debug, Clone)]
pub struct BedrockJudge {
    client: aws_sdk_bedrockruntime::Client,
    pub llm: Llm,
    tool_config: ToolConfiguration,
    /// The system prompt: the rubric's instructions, then a cache point where the model caches.
    system: Vec<SystemContentBlock>,
}

impl BedrockJudge {
    pub fn new(
        client: aws_sdk_bedrockruntime::Client,
        llm: Llm,
        cache_prompt: bool,
    ) -> Result<BedrockJudge, String> {
        let prompting = &llm.prompting;
        let spec = ToolSpecification::builder()
            .name(TOOL_NAME)
            .description(&prompting.tool_description)
            .input_schema(ToolInputSchema::Json(to_document(&prompting.tool_schema)))
            .build()
            .map_err(|e| e.to_string())?;
        let choice = SpecificToolChoice::builder()
            .name(TOOL_NAME)
            .build()
            .map_err(|e| e.to_string())?;
        let tool_config = ToolConfiguration::builder()
            .tools(Tool::ToolSpec(spec))
            .tool_choice(ToolChoice::Tool(choice))
            .build()
            .map_err(|e| e.to_string())?;
        let mut system = vec![SystemContentBlock::Text(prompting.system.clone())];
        if cache_prompt {
            let point = CachePointBlock::builder()
                .r#type(CachePointType::Default)
                .build()
                .map_err(|e| e.to_string())?;
            system.push(SystemContentBlock::CachePoint(point));
        }
        Ok(BedrockJudge {
            client,
            llm,
            tool_config,
            system,
        })
    }

    pub async fn call(&self, user_text: &str) -> Result<Reply, CallError> {
        let message = Message::builder()
            .role(ConversationRole::User)
            .content(ContentBlock::Text(user_text.to_string()))
            .build()
            .map_err(|e| CallError::Rejected(e.to_string()))?;
        let inference = InferenceConfiguration::builder()
            .temperature(0.0)
            .max_tokens(i32::try_from(self.llm.max_output_tokens).unwrap_or(i32::MAX))
            .build();
        let response = self
            .client
            .converse()
            .model_id(&self.llm.model)
            .set_system(Some(self.system.clone()))
            .messages(message)
            .inference_config(inference)
            .tool_config(self.tool_config.clone())
            .send()
            .await
            .map_err(classify)?;
        let mut reply = Reply::default();
        if let Some(usage) = response.usage() {
            reply.input_tokens = u64::try_from(usage.input_tokens()).unwrap_or(0);
            reply.output_tokens = u64::try_from(usage.output_tokens()).unwrap_or(0);
            let tokens = |n: Option<i32>| n.and_then(|n| u64::try_from(n).ok()).unwrap_or(0);
            reply.cache_read_tokens = tokens(usage.cache_read_input_tokens());
            reply.cache_write_tokens = tokens(usage.cache_write_input_tokens());
        }
        if let Some(ConverseOutput::Message(message)) = response.output() {
            for block in message.content() {
                match block {
                    ContentBlock::ToolUse(tool) if tool.name() == TOOL_NAME => {
                        reply
                            .tool_input
                            .get_or_insert_with(|| to_value(tool.input()));
                    }
                    ContentBlock::Text(text) => reply.text.push_str(text),
                    _ => {}
                }
            }
        }
        if reply.tool_input.is_none() && reply.text.is_empty() {
            reply.text = format!("(stop reason {})", response.stop_reason().as_str());
        }
        Ok(reply)
    }
}

/// Sorts an SDK error into retryable kinds by the HTTP status and error code the service sent.
fn classify(err: SdkError<ConverseError, HttpResponse>) -> CallError {
    match &err {
        SdkError::ServiceError(service) => {
            let inner = service.err();
            let code = inner.code().unwrap_or("UnknownError");
            let message = format!("{code}: {}", inner.message().unwrap_or("no message"));
            let status = service.raw().status().as_u16();
            match code {
                "ThrottlingException" | "ModelNotReadyException" => CallError::Throttled(message),
                "ModelTimeoutException" => CallError::Timeout(message),
                "InternalServerException" | "ServiceUnavailableException" => {
                    CallError::Server(message)
                }
                _ => CallError::from_status(status, message),
            }
        }
        SdkError::TimeoutError(_) => CallError::Timeout(sdk_text(&err)),
        SdkError::DispatchFailure(_) => CallError::Transport(sdk_text(&err)),
        // A response that could not be read (cut short, not the protocol): worth another try.
        SdkError::ResponseError(_) => CallError::Server(sdk_text(&err)),
        _ => CallError::Rejected(sdk_text(&err)),
    }
}

/// One line: each cause of the chain once (no SDK debug dump), at most 300 bytes.
fn sdk_text(err: &SdkError<ConverseError, HttpResponse>) -> String {
    crate::util::truncate_utf8(&crate::util::error_chain(err), 300).to_string()
}

/// JSON to a Smithy document (tool schemas).
pub fn to_document(value: &Value) -> Document {
    match value {
        Value::Null => Document::Null,
        Value::Bool(b) => Document::Bool(*b),
        Value::Number(n) => Document::Number(if let Some(u) = n.as_u64() {
            Number::PosInt(u)
        } else if let Some(i) = n.as_i64() {
            Number::NegInt(i)
        } else {
            Number::Float(n.as_f64().unwrap_or(0.0))
        }),
        Value::String(s) => Document::String(s.clone()),
        Value::Array(items) => Document::Array(items.iter().map(to_document).collect()),
        Value::Object(map) => Document::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), to_document(v)))
                .collect::<HashMap<_, _>>(),
        ),
    }
}

/// A Smithy document to JSON (tool inputs).
pub fn to_value(document: &Document) -> Value {
    match document {
        Document::Null => Value::Null,
        Document::Bool(b) => Value::Bool(*b),
        Document::Number(Number::PosInt(u)) => Value::from(*u),
        Document::Number(Number::NegInt(i)) => Value::from(*i),
        Document::Number(Number::Float(f)) => {
            serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number)
        }
        Document::String(s) => Value::String(s.clone()),
        Document::Array(items) => Value::Array(items.iter().map(to_value).collect()),
        Document::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), to_value(v))).collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_round_trip() {
        let value = serde_json::json!({"a": [1, -2, 2.5, "x", null, true], "b": {"c": {}}});
        assert_eq!(to_value(&to_document(&value)), value);
    }
}
