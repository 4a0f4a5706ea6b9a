//! Sentence embeddings on CPU, as sentence-transformers computes them for all-MiniLM-L6-v2: Hugging
//! Face's tokenizer from `tokenizer.json` (truncated at 256 tokens, the model's
//! `max_seq_length`), candle's BERT, mean pooling over the attention mask, L2 normalisation.
//!
//! Reads: the model folder ([`super::model`]). Never does: download anything.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

/// sentence-transformers' `max_seq_length` for this model.
const MAX_TOKENS: usize = 256;
/// Texts embedded per forward pass: 8 was as fast as 32 on short texts, faster on long ones, and
/// holds a third of the memory (BENCHMARKS.md).
const BATCH: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error(transparent)]
    Model(#[from] super::model::ModelError),
    #[error("cannot load the embedding model from `{dir}`: {message}")]
    Load { dir: String, message: String },
    #[error("embedding failed: {0}")]
    Run(String),
}

/// A loaded embedding model.
pub struct Embedder {
    model: BertModel,
    tokenizer: Tokenizer,
    device: Device,
    /// Vector length (384).
    pub dimensions: usize,
}

fn run_error(e: impl std::fmt::Display) -> EmbedError {
    EmbedError::Run(e.to_string())
}

impl Embedder {
    /// Loads the model from `dir`, after checking its files' pinned hashes.
    pub fn load(dir: &Path) -> Result<Embedder, EmbedError> {
        super::model::check(dir)?;
        let load = |message: String| EmbedError::Load {
            dir: dir.display().to_string(),
            message,
        };
        let config: Config = serde_json::from_slice(
            &std::fs::read(dir.join("config.json")).map_err(|e| load(e.to_string()))?,
        )
        .map_err(|e| load(format!("config.json: {e}")))?;
        let device = Device::Cpu;
        // SAFETY: the file is memory-mapped read-only and checked against its pinned hash
        // above; it is not modified while the model lives (a process that rewrites it during a
        // run would be a bug of its own).
        let vb = unsafe {
            VarBuilder::from_mmaped_safetensors(
                &[dir.join("model.safetensors")],
                DType::F32,
                &device,
            )
        }
        .map_err(|e| load(format!("model.safetensors: {e}")))?;
        let model = BertModel::load(vb, &config).map_err(|e| load(e.to_string()))?;
        let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json"))
            .map_err(|e| load(format!("tokenizer.json: {e}")))?;
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS,
                ..TruncationParams::default()
            }))
            .map_err(|e| load(e.to_string()))?;
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            ..PaddingParams::default()
        }));
        Ok(Embedder {
            model,
            tokenizer,
            device,
            dimensions: config.hidden_size,
        })
    }

    /// Unit-length embeddings of `texts`, in order. Texts are batched by length (as
    /// sentence-transformers does), so a batch pads little.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(texts[i].len()));
        let mut out: Vec<Vec<f32>> = vec![Vec::new(); texts.len()];
        for chunk in order.chunks(BATCH) {
            let batch: Vec<&str> = chunk.iter().map(|&i| texts[i]).collect();
            for (&i, vector) in chunk.iter().zip(self.embed_batch(&batch)?) {
                out[i] = vector;
            }
        }
        Ok(out)
    }

    fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(run_error)?;
        let tensor = |rows: Vec<Vec<u32>>| -> Result<Tensor, EmbedError> {
            let rows: Vec<Tensor> = rows
                .iter()
                .map(|r| Tensor::new(r.as_slice(), &self.device))
                .collect::<Result<_, _>>()
                .map_err(run_error)?;
            Tensor::stack(&rows, 0).map_err(run_error)
        };
        let ids = tensor(encodings.iter().map(|e| e.get_ids().to_vec()).collect())?;
        let types = tensor(
            encodings
                .iter()
                .map(|e| e.get_type_ids().to_vec())
                .collect(),
        )?;
        let mask = tensor(
            encodings
                .iter()
                .map(|e| e.get_attention_mask().to_vec())
                .collect(),
        )?;
        let hidden = self
            .model
            .forward(&ids, &types, Some(&mask))
            .map_err(run_error)?;
        // Mean over the real tokens, then unit length.
        let mask = mask
            .to_dtype(DType::F32)
            .and_then(|m| m.unsqueeze(2))
            .map_err(run_error)?;
        let summed = hidden
            .broadcast_mul(&mask)
            .and_then(|h| h.sum(1))
            .map_err(run_error)?;
        let counts = mask.sum(1).map_err(run_error)?;
        let mean = summed.broadcast_div(&counts).map_err(run_error)?;
        let norm = mean
            .sqr()
            .and_then(|s| s.sum_keepdim(1))
            .and_then(|s| s.sqrt())
            .map_err(run_error)?;
        let unit = mean.broadcast_div(&norm).map_err(run_error)?;
        unit.to_vec2::<f32>().map_err(run_error)
    }
}
