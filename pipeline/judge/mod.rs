//! Judges: what turns a (prompt, response) pair and a rubric into one level per dimension.
//! Shared by the score and compare stages; never writes anything itself.
//!
//! - [`offline`]: deterministic heuristics, no network, not an LLM (the default).
//! - [`bedrock`]: Amazon Bedrock Converse with a forced `record_scores` tool call.
//! - [`openai`]: any OpenAI-compatible `/v1/chat/completions` with the same tool.
//!
//! [`protocol`] holds what the LLM judges are sent and how their answers are checked. Pacing,
//! retries, repair and the cache live in the score stage's engine, not here: a [`Judge::call`] is
//! one attempt, classified by [`CallError`] as worth retrying or not.

pub mod bedrock;
pub mod offline;
pub mod offline2;
pub mod openai;
pub mod protocol;
pub mod stub;
pub mod stub_batch;

use serde_json::{Value, json};

use crate::aws::AwsClients;
use crate::config::{JudgeKind, JudgeSettings};
use crate::rubric::Rubric;
use crate::util::sha256_hex;

/// What one judge call returned.
#[derive(Debug, Clone, Default)]
pub struct Reply {
    /// The input of the `record_scores` call, if the judge made one.
    pub tool_input: Option<Value>,
    /// Any text the judge wrote instead of, or besides, the tool call (for error messages).
    pub text: String,
    /// Input tokens besides those read from or written to the prompt cache.
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
}

/// Why one judge call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallError {
    #[error("throttled: {0}")]
    Throttled(String),
    #[error("server error: {0}")]
    Server(String),
    #[error("timed out: {0}")]
    Timeout(String),
    #[error("connection failed: {0}")]
    Transport(String),
    /// The request was refused for a reason a retry will not fix (validation, access, model).
    #[error("rejected: {0}")]
    Rejected(String),
    /// Not made: the process is stopping (SIGTERM/SIGINT).
    #[error("not made: stopping")]
    Interrupted,
}

impl CallError {
    pub fn is_retryable(&self) -> bool {
        !matches!(self, CallError::Rejected(_) | CallError::Interrupted)
    }

    pub fn is_throttle(&self) -> bool {
        matches!(self, CallError::Throttled(_))
    }

    /// Whether the failure says the judge cannot be reached or will not answer this client at
    /// all (refused, or no connection), as opposed to being busy: what trips the score stage's
    /// circuit breaker.
    pub fn is_fatal(&self) -> bool {
        matches!(self, CallError::Rejected(_) | CallError::Transport(_))
    }

    /// What a user can do about a failure of this kind.
    pub fn hint(&self) -> &'static str {
        match self {
            CallError::Transport(_) => {
                "the judge's endpoint cannot be reached: check `judge.url` / `[aws] endpoint-url`, \
                 the network, and that the server is up"
            }
            CallError::Rejected(_) => {
                "the judge refused the call: check the credentials, the IAM permission \
                 `bedrock:InvokeModel` on the model, that the model id is enabled in the region, \
                 and `judge.model`"
            }
            CallError::Throttled(_) => {
                "the judge kept throttling: lower `judge.requests-per-minute` or ask for a higher quota"
            }
            CallError::Server(_) | CallError::Timeout(_) => {
                "the judge kept failing on its side: try again later, or raise `judge.timeout-seconds`"
            }
            CallError::Interrupted => "run again to judge what was left",
        }
    }

    /// Sorts an HTTP status with its message into a kind.
    pub fn from_status(status: u16, message: String) -> CallError {
        match status {
            429 => CallError::Throttled(message),
            408 => CallError::Timeout(message),
            500..=599 => CallError::Server(message),
            _ => CallError::Rejected(message),
        }
    }
}

/// The judge id the settings describe, as [`Judge::id`] records it, without building a client.
pub fn id_of(settings: &JudgeSettings) -> String {
    let model = settings.model.clone().unwrap_or_default();
    match settings.kind {
        JudgeKind::Offline if settings.offline_version() == 2 => offline2::judge_id(),
        JudgeKind::Offline => offline::judge_id(),
        JudgeKind::Bedrock => format!("bedrock:{model}"),
        JudgeKind::OpenAi => openai_id(&model, settings.url.as_deref().unwrap_or_default()),
        JudgeKind::Jury => {
            // The members' ids and the aggregate: another member or rule is another judge.
            let mut ids: Vec<String> = settings
                .members()
                .unwrap_or_default()
                .iter()
                .map(id_of)
                .collect();
            ids.sort();
            ids.push(settings.jury_aggregate.name().to_string());
            format!("jury:{}", &sha256_hex(ids.join("\n").as_bytes())[..12])
        }
    }
}

/// An OpenAI-compatible judge's id names its server too (`openai:<model>@<url>`, the `--judge`
/// syntax): two servers serving a model under the same name never share a cache or a part.
fn openai_id(model: &str, url: &str) -> String {
    format!("openai:{model}@{}", url.trim_end_matches('/'))
}

/// What both LLM judges hold besides their client: the model and how it is prompted.
#[derive(Debug, Clone)]
pub struct Llm {
    pub model: String,
    pub max_output_tokens: u32,
    pub prompting: protocol::Prompting,
}

impl Llm {
    /// The generation parameters recorded in the params hash.
    fn params(&self) -> Value {
        json!({
            "protocol": protocol::PROTOCOL_VERSION,
            "temperature": 0,
            "max_output_tokens": self.max_output_tokens,
        })
    }
}

/// `offline:2`'s scorer: the embedding model from `[embed]`'s folder, fetched first when it is
/// not there and `[embed] fetch` allows it.
async fn offline2_scorer(
    embed: &crate::embed::settings::EmbedSettings,
) -> Result<offline2::Scorer, String> {
    let dir = embed.model_dir.clone();
    if !crate::embed::model::present(&dir) {
        if !embed.fetch {
            return Err(format!(
                "offline:2 needs the embedding model, which is not in `{}`; run `evalwatch models fetch`",
                dir.display()
            ));
        }
        crate::embed::model::fetch(&embed.index_url, &dir)
            .await
            .map_err(|e| format!("offline:2 needs the embedding model: {e}"))?;
    }
    tokio::task::spawn_blocking(move || offline2::Scorer::load(&dir))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("offline:2 cannot load the embedding model: {e}"))
}

/// A judge ready to be called.
#[derive(Debug, Clone)]
pub enum Judge {
    Offline,
    /// `offline:2`: the offline scorer on embeddings, its model loaded.
    Offline2(std::sync::Arc<offline2::Scorer>),
    Bedrock(bedrock::BedrockJudge),
    OpenAi(openai::OpenAiJudge),
}

impl Judge {
    /// Builds the configured judge. LLM judges get their client here; nothing is called yet.
    pub async fn build(
        settings: &JudgeSettings,
        rubric: &Rubric,
        aws: &AwsClients,
    ) -> Result<Judge, String> {
        let llm = Llm {
            model: settings.model.clone().unwrap_or_default(),
            max_output_tokens: settings.max_output_tokens,
            prompting: protocol::Prompting::new(rubric),
        };
        Ok(match settings.kind {
            JudgeKind::Offline => match settings.offline_version {
                Some(2) => {
                    Judge::Offline2(std::sync::Arc::new(offline2_scorer(&settings.embed).await?))
                }
                Some(_) => Judge::Offline,
                // The default: offline:2 when the model is there or can be fetched.
                None if settings.embed.enabled => match offline2_scorer(&settings.embed).await {
                    Ok(scorer) => Judge::Offline2(std::sync::Arc::new(scorer)),
                    Err(why) => {
                        tracing::warn!(
                            "score: judging with offline:1, not the default offline:2 ({why}); \
                             `[judge] offline-version = 1` silences this"
                        );
                        Judge::Offline
                    }
                },
                None => Judge::Offline,
            },
            JudgeKind::Bedrock => Judge::Bedrock(bedrock::BedrockJudge::new(
                aws.bedrock().await,
                llm,
                settings.caches_prompt(),
            )?),
            JudgeKind::Jury => {
                return Err("a jury is judged member by member by the score stage".into());
            }
            JudgeKind::OpenAi => Judge::OpenAi(openai::OpenAiJudge::new(
                settings.url.clone().unwrap_or_default(),
                settings.api_key_env.as_deref(),
                llm,
            )?),
        })
    }

    /// The id recorded on every score row: `offline:<v>`, `bedrock:<model-id>`,
    /// `openai:<model>@<url>`.
    pub fn id(&self) -> String {
        match self {
            Judge::Offline => offline::judge_id(),
            Judge::Offline2(_) => offline2::judge_id(),
            Judge::Bedrock(j) => format!("bedrock:{}", j.llm.model),
            Judge::OpenAi(j) => openai_id(&j.llm.model, &j.endpoint_base()),
        }
    }

    /// The model and prompting of an LLM judge.
    pub fn llm(&self) -> Option<&Llm> {
        match self {
            Judge::Offline | Judge::Offline2(_) => None,
            Judge::Bedrock(j) => Some(&j.llm),
            Judge::OpenAi(j) => Some(&j.llm),
        }
    }

    /// sha256 of the canonical JSON of everything besides the model that changes a judgment.
    pub fn params_hash(&self) -> String {
        let params = self.llm().map_or(json!({}), Llm::params);
        sha256_hex(params.to_string().as_bytes())
    }

    pub fn is_offline(&self) -> bool {
        matches!(self, Judge::Offline | Judge::Offline2(_))
    }

    /// An offline scorer's pairwise preference (`pairwise` rubric's level, rationale); `None`
    /// for an LLM judge.
    pub fn offline_preference(
        &self,
        prompt: &str,
        a: &str,
        b: &str,
    ) -> Option<Result<(u32, String), String>> {
        match self {
            Judge::Offline => Some(Ok(offline::preference(prompt, a, b))),
            Judge::Offline2(scorer) => Some(scorer.preference(prompt, a, b)),
            _ => None,
        }
    }

    /// The request-independent prompting of an LLM judge.
    pub fn prompting(&self) -> Option<&protocol::Prompting> {
        self.llm().map(|l| &l.prompting)
    }

    /// One attempt at judging `user_text` (built by [`protocol::user_text`]). The offline scorer
    /// is not called this way.
    pub async fn call(&self, user_text: &str) -> Result<Reply, CallError> {
        match self {
            Judge::Offline | Judge::Offline2(_) => Err(CallError::Rejected(
                "the offline scorer is not called over the network".into(),
            )),
            Judge::Bedrock(j) => j.call(user_text).await,
            Judge::OpenAi(j) => j.call(user_text).await,
        }
    }
}
