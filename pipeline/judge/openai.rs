//! The OpenAI-compatible judge: `POST <url>/chat/completions` (vLLM, Ollama, llama.cpp, OpenAI)
//! with the `record_scores` tool forced through `tool_choice`, temperature 0. Token counts come
//! from the response's `usage`.

use serde_json::{Value, json};

use super::protocol::TOOL_NAME;
use super::{CallError, Llm, Reply};
use crate::util::truncate_utf8;

#[derive(Debug, Clone)]
pub struct OpenAiJudge {
    http: reqwest::Client,
    endpoint: String,
    api_key: Option<String>,
    pub llm: Llm,
}

impl OpenAiJudge {
    /// `url` is the base up to `/v1`; the key, if any, is read from the environment variable
    /// `api_key_env` now, so a missing key fails before the first call.
    pub fn new(url: String, api_key_env: Option<&str>, llm: Llm) -> Result<OpenAiJudge, String> {
        let api_key = match api_key_env {
            None => None,
            Some(var) => Some(std::env::var(var).map_err(|_| {
                format!("the environment variable `{var}` (judge.api-key-env) is not set")
            })?),
        };
        let http = reqwest::Client::builder()
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(OpenAiJudge {
            http,
            endpoint: format!("{}/chat/completions", url.trim_end_matches('/')),
            api_key,
            llm,
        })
    }

    /// The base URL the judge was given (up to `/v1`).
    pub fn endpoint_base(&self) -> String {
        self.endpoint
            .strip_suffix("/chat/completions")
            .unwrap_or(&self.endpoint)
            .to_string()
    }

    pub async fn call(&self, user_text: &str) -> Result<Reply, CallError> {
        let prompting = &self.llm.prompting;
        let body = json!({
            "model": self.llm.model,
            "temperature": 0,
            "max_tokens": self.llm.max_output_tokens,
            "messages": [
                {"role": "system", "content": prompting.system},
                {"role": "user", "content": user_text},
            ],
            "tools": [{
                "type": "function",
                "function": {
                    "name": TOOL_NAME,
                    "description": prompting.tool_description,
                    "parameters": prompting.tool_schema,
                },
            }],
            "tool_choice": {"type": "function", "function": {"name": TOOL_NAME}},
        });
        let mut request = self
            .http
            .post(&self.endpoint)
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.map_err(transport)?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(transport)?;
        if !(200..300).contains(&status) {
            let text = String::from_utf8_lossy(&bytes);
            return Err(CallError::from_status(
                status,
                format!(
                    "HTTP {status} from {}: {}",
                    self.endpoint,
                    truncate_utf8(&text, 300)
                ),
            ));
        }
        let parsed: Value = serde_json::from_slice(&bytes).map_err(|e| {
            CallError::Server(format!("{} answered with invalid JSON: {e}", self.endpoint))
        })?;
        Ok(parse_reply(&parsed))
    }
}

fn transport(err: reqwest::Error) -> CallError {
    let text = crate::util::error_chain(&err);
    if err.is_timeout() {
        CallError::Timeout(text)
    } else {
        CallError::Transport(text)
    }
}

/// Reads a chat-completions response: the `record_scores` call's arguments, any text, the usage.
fn parse_reply(body: &Value) -> Reply {
    let message = &body["choices"][0]["message"];
    let mut reply = Reply {
        text: message["content"].as_str().unwrap_or_default().to_string(),
        input_tokens: body["usage"]["prompt_tokens"].as_u64().unwrap_or(0),
        output_tokens: body["usage"]["completion_tokens"].as_u64().unwrap_or(0),
        ..Reply::default()
    };
    if let Some(calls) = message["tool_calls"].as_array() {
        reply.tool_input = calls
            .iter()
            .find(|c| c["function"]["name"] == TOOL_NAME)
            .map(|c| c["function"]["arguments"].clone());
    }
    if reply.tool_input.is_none() && reply.text.is_empty() {
        reply.text = format!(
            "(finish reason {})",
            body["choices"][0]["finish_reason"]
                .as_str()
                .unwrap_or("none")
        );
    }
    reply
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_tool_arguments_text_and_usage() {
        let body = json!({
            "choices": [{"message": {"content": null, "tool_calls": [
                {"type": "function", "function": {"name": "record_scores", "arguments": "{\"a\":1}"}}
            ]}, "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": 120, "completion_tokens": 30},
        });
        let reply = parse_reply(&body);
        assert_eq!(reply.tool_input, Some(Value::String("{\"a\":1}".into())));
        assert_eq!((reply.input_tokens, reply.output_tokens), (120, 30));
        let text_only = json!({"choices": [{"message": {"content": "I think 4/5"}}]});
        let reply = parse_reply(&text_only);
        assert!(reply.tool_input.is_none());
        assert_eq!(reply.text, "I think 4/5");
    }
}
