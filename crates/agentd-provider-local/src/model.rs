//! The loaded GGUF: weights, chat template, tokenizer and grammar compiler,
//! shared read-only by every sequence.

use std::num::NonZeroU32;
use std::sync::{Mutex, OnceLock};

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use llama_cpp_2::{send_logs_to_tracing, LogOptions};

use crate::config::LocalModelConfig;
use crate::grammar::GrammarCompiler;
use crate::prompt::{PromptModel, Turn};
use crate::sequence::batch_capacity;
use crate::LocalError;

/// Template used when the GGUF carries none and the config names none.
const FALLBACK_TEMPLATE: &str = "chatml";

/// Tokens per prompt chunk: small enough that a dropped request stops within
/// a chunk's time (~1 s at the slowest), large enough to keep matrix
/// multiplication efficient.
pub(crate) const PROMPT_CHUNK: u32 = 256;

/// Rows of one llama.cpp micro-batch. Below ggml's flash-attention query
/// tile (64 rows), every prompt token goes through the same attention
/// kernel however the prompt is split: a prompt evaluated after a cached
/// prefix then gets the same KV values, and greedy answers, as one
/// evaluated whole. (From 64 rows ggml switches to a tiled F32 kernel whose
/// rounding differs, enough to change an answer now and then.)
const MICRO_BATCH: u32 = 32;

/// `LLAMA_FLASH_ATTN_TYPE_ENABLED`. llama.cpp's default ("auto") leaves
/// flash attention off on CPU, where it makes generation after a 512-token
/// prompt ~1.5× faster (llama-bench tg128 @ d512: 56 → 82 tokens/s).
const FLASH_ATTENTION_ENABLED: i32 = 1;

/// llama.cpp may be initialised once per process; every provider shares it.
pub(crate) fn backend() -> Result<&'static LlamaBackend, LocalError> {
    static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            // llama.cpp logs every tensor at load time on stderr; route its
            // lines through `tracing` so `RUST_LOG` governs them.
            send_logs_to_tracing(LogOptions::default());
            LlamaBackend::init().map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| LocalError::Backend(e.clone()))
}

pub(crate) struct LoadedModel {
    pub model: LlamaModel,
    template: LlamaChatTemplate,
    pub grammar: GrammarCompiler,
    /// llama.cpp mutates the model while creating a context, so contexts are
    /// created one at a time.
    context_creation: Mutex<()>,
}

impl LoadedModel {
    pub(crate) fn load(config: &LocalModelConfig) -> Result<Self, LocalError> {
        let backend = backend()?;
        if !config.path.is_file() {
            return Err(LocalError::MissingWeights(config.path.clone()));
        }
        let model = LlamaModel::load_from_file(backend, &config.path, &LlamaModelParams::default())
            .map_err(|e| LocalError::Load {
                path: config.path.clone(),
                reason: e.to_string(),
            })?;
        let template = chat_template(&model, config.chat_template.as_deref())?;
        let tok_env = LlamaSampler::llguidance_tok_env(&model);
        let grammar =
            GrammarCompiler::new(&tok_env, config.json_layout).map_err(LocalError::Grammar)?;
        Ok(Self {
            model,
            template,
            grammar,
            context_creation: Mutex::new(()),
        })
    }

    /// The decoder's context: `max_sequences` sequences of `context_size`
    /// tokens each, in separate KV streams (a sequence attends only to its
    /// own tokens, and one long request cannot crowd out the others).
    pub(crate) fn new_context(
        &self,
        config: &LocalModelConfig,
    ) -> Result<LlamaContext<'_>, LocalError> {
        let threads = i32::try_from(config.threads.max(1)).unwrap_or(i32::MAX);
        let sequences = u32::try_from(config.max_sequences.max(1))
            .map_err(|_| LocalError::Config("too many sequences".into()))?;
        let total = config
            .context_size
            .checked_mul(sequences)
            .ok_or_else(|| LocalError::Config("context_size × sequences overflows".into()))?;
        let batch = u32::try_from(batch_capacity(config)).unwrap_or(u32::MAX);
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(total))
            .with_n_batch(batch)
            .with_n_ubatch(MICRO_BATCH.min(batch))
            .with_n_seq_max(sequences)
            .with_kv_unified(false)
            .with_n_threads(threads)
            .with_n_threads_batch(threads)
            .with_flash_attention_policy(FLASH_ATTENTION_ENABLED);
        let _one_at_a_time = self
            .context_creation
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        self.model
            .new_context(backend()?, params)
            .map_err(|e| LocalError::Context(e.to_string()))
    }

    pub(crate) fn is_end(&self, token: LlamaToken) -> bool {
        self.model.vocab().is_eog(token)
    }

    pub(crate) fn piece(&self, token: LlamaToken) -> Vec<u8> {
        self.model.vocab().token_to_piece(token, false, None)
    }
}

fn chat_template(
    model: &LlamaModel,
    configured: Option<&str>,
) -> Result<LlamaChatTemplate, LocalError> {
    let template = match configured {
        Some(text) => LlamaChatTemplate::new(text),
        None => match model.chat_template(None) {
            Ok(template) => return Ok(template),
            Err(_) => LlamaChatTemplate::new(FALLBACK_TEMPLATE),
        },
    };
    template.map_err(|e| LocalError::Template(e.to_string()))
}

impl PromptModel for LoadedModel {
    fn render(&self, turns: &[Turn]) -> Result<String, String> {
        let chat = turns
            .iter()
            .map(|t| LlamaChatMessage::new(t.role.to_string(), t.text.clone()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        self.model
            .apply_chat_template(&self.template, &chat, true)
            .map_err(|e| e.to_string())
    }

    fn tokenize_prompt(&self, text: &str) -> Vec<i32> {
        let tokens = self.model.vocab().tokenize(text.as_bytes(), true, true);
        tokens.into_iter().map(|t| t.0).collect()
    }

    fn tokenize_text(&self, text: &str) -> Vec<i32> {
        let tokens = self.model.vocab().tokenize(text.as_bytes(), false, false);
        tokens.into_iter().map(|t| t.0).collect()
    }

    fn detokenize(&self, tokens: &[i32]) -> String {
        let tokens: Vec<LlamaToken> = tokens.iter().map(|&t| LlamaToken(t)).collect();
        let bytes = self.model.vocab().detokenize(&tokens, false, false);
        String::from_utf8_lossy(&bytes).into_owned()
    }
}
