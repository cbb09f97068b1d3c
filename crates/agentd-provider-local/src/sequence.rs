//! Sequence slots: worker threads that each own a llama.cpp context and run
//! one request at a time on it.
//!
//! A `LlamaContext` borrows the model it was made from, so a pool of
//! contexts next to the model would be a self-referential struct. A thread
//! that holds the model's `Arc` and its own context on its stack expresses
//! the same thing in safe Rust, and lets each slot keep its context (and its
//! KV-cache allocation) from one request to the next.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agentd_domain::Usage;
use agentd_providers::{Completion, CompletionRequest, ProviderError};
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use llguidance::Matcher;
use tokio::sync::oneshot;

use crate::config::LocalModelConfig;
use crate::model::{LoadedModel, PROMPT_CHUNK};
use crate::prompt::{self, FittedPrompt};
use crate::LocalError;

/// Timings of one request, for logs and benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct DecodeStats {
    /// Time the request waited for a free sequence slot.
    pub queue_time: Duration,
    pub prompt_tokens: usize,
    /// Tokens removed from user text to fit the context window.
    pub cut_tokens: usize,
    pub prompt_time: Duration,
    pub generated_tokens: usize,
    /// Sampling under the grammar plus decoding, for every answer token.
    pub generation_time: Duration,
    /// The part of `generation_time` spent masking and picking tokens
    /// (llguidance and the sampler chain) rather than in the model.
    pub sampling_time: Duration,
}

impl DecodeStats {
    pub fn prompt_tokens_per_second(&self) -> f64 {
        per_second(self.prompt_tokens, self.prompt_time)
    }

    pub fn generation_tokens_per_second(&self) -> f64 {
        per_second(self.generated_tokens, self.generation_time)
    }
}

fn per_second(tokens: usize, time: Duration) -> f64 {
    if time.is_zero() {
        0.0
    } else {
        tokens as f64 / time.as_secs_f64()
    }
}

pub(crate) type JobResult = Result<(Completion, DecodeStats), ProviderError>;

/// One request on its way to a slot.
pub(crate) struct Job {
    pub request: CompletionRequest,
    /// Set when the caller stops waiting; checked between tokens.
    pub cancel: Arc<AtomicBool>,
    pub enqueued: Instant,
    pub reply: oneshot::Sender<JobResult>,
}

/// What the slots share.
pub(crate) struct Shared {
    pub model: LoadedModel,
    pub config: LocalModelConfig,
    /// Slots running a request right now.
    pub busy: AtomicUsize,
}

/// Starts `config.max_sequences` slots; they stop when the returned sender
/// (and every clone) is dropped.
pub(crate) fn spawn_slots(shared: &Arc<Shared>) -> Result<Sender<Job>, LocalError> {
    let (sender, receiver) = mpsc::channel::<Job>();
    let receiver = Arc::new(Mutex::new(receiver));
    for slot in 0..shared.config.max_sequences.max(1) {
        let shared = Arc::clone(shared);
        let receiver = Arc::clone(&receiver);
        std::thread::Builder::new()
            .name(format!("local-model-{slot}"))
            .spawn(move || run_slot(&shared, &receiver))
            .map_err(|e| LocalError::Spawn(e.to_string()))?;
    }
    Ok(sender)
}

fn run_slot(shared: &Shared, jobs: &Mutex<Receiver<Job>>) {
    let mut context: Option<LlamaContext<'_>> = None;
    while let Some(job) = next_job(jobs) {
        if job.cancel.load(Ordering::Relaxed) {
            continue;
        }
        shared.busy.fetch_add(1, Ordering::SeqCst);
        let result = catch_unwind(AssertUnwindSafe(|| run_job(shared, &mut context, &job)))
            .unwrap_or_else(|_| {
                // The context may be half-way through an operation: start
                // the next request on a fresh one.
                context = None;
                Err(unavailable("the local model failed while decoding"))
            });
        shared.busy.fetch_sub(1, Ordering::SeqCst);
        // The caller may have gone; nobody is left to tell.
        let _ = job.reply.send(result);
    }
}

/// Waits for the next job; `None` once the provider is gone.
fn next_job(jobs: &Mutex<Receiver<Job>>) -> Option<Job> {
    let receiver = jobs.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    receiver.recv().ok()
}

fn run_job<'m>(shared: &'m Shared, context: &mut Option<LlamaContext<'m>>, job: &Job) -> JobResult {
    let queue_time = job.enqueued.elapsed();
    let request = &job.request;
    let max_output = output_cap(&shared.config, request.max_output_tokens);
    let fitted = fitted_prompt(shared, request)?;
    if fitted.cut_tokens > 0 {
        tracing::warn!(
            cut_tokens = fitted.cut_tokens,
            "input cut in the middle to fit the local model's context window"
        );
    }
    let matcher = matcher_for(shared, &request.schema)?;
    let context = slot_context(shared, context)?;
    let decoded = decode(
        &shared.model,
        context,
        &fitted.tokens,
        matcher,
        max_output,
        &job.cancel,
    )?;
    let stats = DecodeStats {
        queue_time,
        prompt_tokens: fitted.tokens.len(),
        cut_tokens: fitted.cut_tokens,
        prompt_time: decoded.prompt_time,
        generated_tokens: decoded.generated,
        generation_time: decoded.generation_time,
        sampling_time: decoded.sampling_time,
    };
    tracing::debug!(?stats, "local model answered");
    let completion = Completion {
        text: answer_text(decoded.answer)?,
        usage: Usage {
            input_tokens: to_i64(stats.prompt_tokens),
            output_tokens: to_i64(stats.generated_tokens),
            cached_input_tokens: 0,
        },
    };
    Ok((completion, stats))
}

fn matcher_for(shared: &Shared, schema: &serde_json::Value) -> Result<Matcher, ProviderError> {
    shared
        .model
        .grammar
        .matcher(schema)
        .map_err(|e| ProviderError::Rejected {
            status: 400,
            message: format!("the local model cannot enforce this output schema: {e}"),
        })
}

/// The slot's context, created on its first request so that idle slots
/// cost no memory.
fn slot_context<'c, 'm>(
    shared: &'m Shared,
    context: &'c mut Option<LlamaContext<'m>>,
) -> Result<&'c mut LlamaContext<'m>, ProviderError> {
    match context {
        Some(context) => Ok(context),
        None => {
            let created = shared
                .model
                .new_context(&shared.config)
                .map_err(|e| unavailable(&e.to_string()))?;
            Ok(context.insert(created))
        }
    }
}

/// The prompt of `request`, cut to leave room for its answer.
pub(crate) fn fitted_prompt(
    shared: &Shared,
    request: &CompletionRequest,
) -> Result<FittedPrompt, ProviderError> {
    let max_output = output_cap(&shared.config, request.max_output_tokens);
    let budget = prompt_budget(&shared.config, max_output)?;
    prompt::fit(&shared.model, prompt::turns_for(request)?, budget)
}

/// The answer-token limit of a request: its own, within the configured cap.
fn output_cap(config: &LocalModelConfig, requested: Option<u32>) -> usize {
    let cap = config.max_output_tokens.max(1);
    requested.map_or(cap, |r| r.clamp(1, cap)) as usize
}

/// Prompt tokens that leave room for `max_output` answer tokens.
fn prompt_budget(config: &LocalModelConfig, max_output: usize) -> Result<usize, ProviderError> {
    let window = config.context_size as usize;
    window
        .checked_sub(max_output)
        .filter(|&budget| budget > 0)
        .ok_or_else(|| ProviderError::Rejected {
            status: 400,
            message: format!(
                "max_output_tokens {max_output} leaves no room for input in the local model's \
                 {window}-token context window"
            ),
        })
}

struct Decoded {
    answer: Vec<u8>,
    generated: usize,
    prompt_time: Duration,
    generation_time: Duration,
    sampling_time: Duration,
}

/// Greedy decoding under the grammar, from an empty KV cache.
fn decode(
    model: &LoadedModel,
    context: &mut LlamaContext<'_>,
    prompt: &[i32],
    matcher: Matcher,
    max_output: usize,
    cancel: &AtomicBool,
) -> Result<Decoded, ProviderError> {
    let started = Instant::now();
    context.clear_kv_cache();
    let mut batch = LlamaBatch::new(PROMPT_CHUNK as usize, 1);
    feed_prompt(context, &mut batch, prompt, cancel)?;
    let prompt_time = started.elapsed();

    let started = Instant::now();
    let mut sampler =
        LlamaSampler::chain_simple([LlamaSampler::from(matcher), LlamaSampler::greedy()]);
    let mut answer = Vec::new();
    let mut position = prompt.len();
    let mut generated = 0;
    let mut sampling_time = Duration::ZERO;
    loop {
        check_cancel(cancel)?;
        let sampling = Instant::now();
        let token = sampler.sample(context, batch.n_tokens() - 1);
        sampling_time += sampling.elapsed();
        // The grammar admits an end token only once the answer is complete.
        if model.is_end(token) {
            break;
        }
        answer.extend(model.piece(token));
        generated += 1;
        if generated >= max_output {
            tracing::debug!(
                partial = %String::from_utf8_lossy(&answer),
                "local model answer cut at the token cap"
            );
            return Err(ProviderError::NoAnswer(format!(
                "the local model hit its output token cap ({max_output} tokens) before \
                 finishing an answer that matches the schema"
            )));
        }
        batch.clear();
        add(&mut batch, token, position, true)?;
        position += 1;
        context.decode(&mut batch).map_err(decode_failed)?;
    }
    Ok(Decoded {
        answer,
        generated,
        prompt_time,
        generation_time: started.elapsed(),
        sampling_time,
    })
}

/// Evaluates the prompt chunk by chunk, asking for logits of its last token.
fn feed_prompt(
    context: &mut LlamaContext<'_>,
    batch: &mut LlamaBatch,
    prompt: &[i32],
    cancel: &AtomicBool,
) -> Result<(), ProviderError> {
    let last = prompt.len().checked_sub(1).ok_or_else(|| {
        ProviderError::NoAnswer("the local model was given an empty prompt".into())
    })?;
    for (index, chunk) in prompt.chunks(PROMPT_CHUNK as usize).enumerate() {
        check_cancel(cancel)?;
        batch.clear();
        for (offset, &token) in chunk.iter().enumerate() {
            let position = index * PROMPT_CHUNK as usize + offset;
            add(batch, LlamaToken(token), position, position == last)?;
        }
        context.decode(batch).map_err(decode_failed)?;
    }
    Ok(())
}

fn add(
    batch: &mut LlamaBatch,
    token: LlamaToken,
    position: usize,
    logits: bool,
) -> Result<(), ProviderError> {
    let position = i32::try_from(position).map_err(|_| decode_failed("position overflow"))?;
    batch
        .add(token, position, &[0], logits)
        .map_err(decode_failed)
}

fn check_cancel(cancel: &AtomicBool) -> Result<(), ProviderError> {
    if cancel.load(Ordering::Relaxed) {
        // Nobody waits for this answer any more; the error only ends the job.
        Err(ProviderError::NoAnswer("the request was cancelled".into()))
    } else {
        Ok(())
    }
}

/// The grammar guarantees JSON; a failure here means the constraint was
/// not in force (llguidance gave up on a mask) and the text is unusable.
fn answer_text(answer: Vec<u8>) -> Result<String, ProviderError> {
    let text = String::from_utf8(answer).map_err(|_| {
        ProviderError::NoAnswer("the local model produced text that is not UTF-8".into())
    })?;
    serde_json::from_str::<serde_json::Value>(&text).map_err(|e| {
        ProviderError::NoAnswer(format!(
            "the local model produced text that is not JSON: {e}"
        ))
    })?;
    Ok(text)
}

fn decode_failed(error: impl std::fmt::Display) -> ProviderError {
    unavailable(&format!("the local model failed while decoding: {error}"))
}

fn unavailable(message: &str) -> ProviderError {
    ProviderError::Unavailable {
        status: 503,
        retry_after: None,
        message: message.to_string(),
    }
}

fn to_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_cap_stays_within_the_configured_cap() {
        let config = LocalModelConfig::new("model.gguf");
        assert_eq!(output_cap(&config, None), 512);
        assert_eq!(output_cap(&config, Some(100)), 100);
        assert_eq!(output_cap(&config, Some(100_000)), 512);
        assert_eq!(output_cap(&config, Some(0)), 1);
    }

    #[test]
    fn budget_leaves_room_for_the_answer() {
        let config = LocalModelConfig::new("model.gguf");
        assert_eq!(prompt_budget(&config, 512), Ok(1536));
        assert!(prompt_budget(&config, 2048).is_err());
    }

    #[test]
    fn answers_must_be_json() {
        assert_eq!(answer_text(b"{\"a\":1}".to_vec()), Ok("{\"a\":1}".into()));
        assert!(matches!(
            answer_text(b"{\"a\":".to_vec()),
            Err(ProviderError::NoAnswer(_))
        ));
    }
}
