//! Settings of the local model and where its weights live by default.

use std::path::{Path, PathBuf};

use crate::grammar::JsonLayout;

/// The file name of the default weights, as `scripts/fetch-model.sh` writes it.
pub const DEFAULT_MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// The model id users put in `engine_config.model` for the default weights.
pub const DEFAULT_MODEL_ID: &str = "local/smollm2-135m-instruct";

/// Environment variable naming the GGUF file explicitly.
pub const MODEL_PATH_ENV: &str = "AGENTD_LOCAL_MODEL_PATH";

/// Sequences by default on machines with fewer cores: idle sequences keep
/// the prompt prefixes of recent agents cached, at 47 MiB of KV cache each
/// for the default weights and context.
pub const DEFAULT_MIN_SEQUENCES: usize = 4;

/// How the local model is loaded and run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalModelConfig {
    /// The GGUF file.
    pub path: PathBuf,
    /// Tokens of context per sequence (prompt and answer together).
    pub context_size: u32,
    /// CPU threads of the decoder. Every step decodes all running
    /// sequences in one batch with all of them: a request alone gets every
    /// thread, concurrent ones share each step. Keep it within the cores:
    /// ggml's workers spin at barriers and slow down several-fold when they
    /// have to share a core.
    pub threads: usize,
    /// Sequences decoded at the same time (each with `context_size` tokens
    /// of KV cache); further requests wait in a queue.
    pub max_sequences: usize,
    /// Whether a sequence keeps the KV cache of its previous request so
    /// that the next one evaluates only the tokens after their common
    /// prefix. Answers are the same either way (greedy decoding).
    pub prefix_cache: bool,
    /// The JSON layout the grammar allows (the API returns answers compact
    /// either way).
    pub json_layout: JsonLayout,
    /// Upper bound on answer tokens, whatever a request asks for.
    pub max_output_tokens: u32,
    /// A chat template (a llama.cpp template name such as `chatml`, or a
    /// Jinja template) used instead of the one stored in the GGUF.
    pub chat_template: Option<String>,
}

impl LocalModelConfig {
    /// Defaults: 2,048 tokens of context, answers of at most 512 tokens,
    /// one decoder thread per core, one sequence per core but at least
    /// [`DEFAULT_MIN_SEQUENCES`], and the prefix cache on.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            context_size: 2048,
            threads: available_cores(),
            max_sequences: available_cores().max(DEFAULT_MIN_SEQUENCES),
            prefix_cache: true,
            json_layout: JsonLayout::default(),
            max_output_tokens: 512,
            chat_template: None,
        }
    }
}

/// The cores this process may use (at least 1).
pub fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Where the server looks for the default weights: `AGENTD_LOCAL_MODEL_PATH`
/// when set, else `$AGENTD_DATA_DIR/models/SmolLM2-135M-Instruct.Q4_1.gguf`
/// (`AGENTD_DATA_DIR` defaulting to `./data`).
pub fn default_model_path() -> PathBuf {
    if let Some(path) = std::env::var_os(MODEL_PATH_ENV).filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    let data_dir = std::env::var_os("AGENTD_DATA_DIR")
        .filter(|p| !p.is_empty())
        .map_or_else(|| PathBuf::from("./data"), PathBuf::from);
    model_path_in(&data_dir)
}

/// The default weights' place inside a data directory.
pub fn model_path_in(data_dir: &Path) -> PathBuf {
    data_dir.join("models").join(DEFAULT_MODEL_FILE)
}
