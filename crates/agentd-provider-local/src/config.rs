//! Settings of the local model and where its weights live by default.

use std::path::{Path, PathBuf};

/// The file name of the default weights, as `scripts/fetch-model.sh` writes it.
pub const DEFAULT_MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// The model id users put in `engine_config.model` for the default weights.
pub const DEFAULT_MODEL_ID: &str = "local/smollm2-135m-instruct";

/// Environment variable naming the GGUF file explicitly.
pub const MODEL_PATH_ENV: &str = "AGENTD_LOCAL_MODEL_PATH";

/// How the local model is loaded and run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalModelConfig {
    /// The GGUF file.
    pub path: PathBuf,
    /// Tokens of context per sequence (prompt and answer together).
    pub context_size: u32,
    /// CPU threads each sequence decodes with. Keep `threads ×
    /// max_sequences` within the cores: ggml's workers spin at barriers and
    /// slow down several-fold when they have to share a core.
    pub threads: usize,
    /// Sequences decoded at the same time; further requests wait in a queue.
    pub max_sequences: usize,
    /// Upper bound on answer tokens, whatever a request asks for.
    pub max_output_tokens: u32,
    /// A chat template (a llama.cpp template name such as `chatml`, or a
    /// Jinja template) used instead of the one stored in the GGUF.
    pub chat_template: Option<String>,
}

impl LocalModelConfig {
    /// Defaults: 2,048 tokens of context, answers of at most 512 tokens,
    /// and one sequence per core with one thread each: the most jobs at
    /// once, and no two decoding threads sharing a core (ggml's threads
    /// spin at barriers and slow down several-fold when they must share).
    /// Fewer sequences with more threads each answer one job sooner.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            context_size: 2048,
            threads: 1,
            max_sequences: available_cores(),
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
