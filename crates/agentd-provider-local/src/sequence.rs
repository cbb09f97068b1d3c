//! The decoder: one thread that owns the llama.cpp context and decodes every
//! running request together, one batch per step.
//!
//! Each request runs on a sequence slot of that context. A slot keeps the KV
//! cache of what it last decoded, so the next request on it evaluates only
//! the tokens after the longest prefix they share (chat template, system
//! prompt, instruction and schema are the same for every job of an agent);
//! a request goes to the free slot sharing the longest prefix with it.
//!
//! Why one batch rather than one context per slot: the per-token cost of a
//! small model is dominated by reading its weights and by synchronising
//! ggml's threads, both paid once per decode whatever the number of
//! sequences in the batch. A request running alone gets every thread; two
//! running together share each step (measured in the crate's README).
//!
//! A `LlamaContext` borrows the model it was made from, so a context next to
//! the model would be a self-referential struct. A thread that holds the
//! model's `Arc` and the context on its stack expresses the same thing in
//! safe Rust.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::Arc;
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
    /// Prompt tokens whose KV cache was kept from the slot's previous
    /// request (not evaluated again).
    pub reused_tokens: usize,
    /// Tokens removed from user text to fit the context window.
    pub cut_tokens: usize,
    /// From the slot being assigned to the first answer token's logits.
    pub prompt_time: Duration,
    pub generated_tokens: usize,
    /// Sampling under the grammar plus decoding, for every answer token.
    pub generation_time: Duration,
    /// The part of `generation_time` spent masking and picking tokens
    /// (llguidance and the sampler chain) rather than in the model.
    pub sampling_time: Duration,
}

impl DecodeStats {
    /// Evaluated (not reused) prompt tokens per second.
    pub fn prompt_tokens_per_second(&self) -> f64 {
        per_second(self.prompt_tokens - self.reused_tokens, self.prompt_time)
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

/// One request, tokenized and with its grammar, on its way to a slot.
pub(crate) struct Job {
    pub prompt: FittedPrompt,
    pub matcher: Matcher,
    pub max_output: usize,
    /// Set when the caller stops waiting; checked before every step.
    pub cancel: Arc<AtomicBool>,
    pub enqueued: Instant,
    pub reply: oneshot::Sender<JobResult>,
}

/// What the provider and the decoder share.
pub(crate) struct Shared {
    pub model: LoadedModel,
    pub config: LocalModelConfig,
    /// Requests being decoded right now.
    pub busy: AtomicUsize,
    /// Whether slots keep their KV cache between requests (on unless a
    /// test compares answers without it).
    pub prefix_cache: bool,
}

/// Tokenizes `request` and compiles its grammar: the work that needs no
/// context, done on the caller's side so that it never stalls the decoder.
pub(crate) fn prepare(
    shared: &Shared,
    request: &CompletionRequest,
) -> Result<(FittedPrompt, Matcher, usize), ProviderError> {
    let max_output = output_cap(&shared.config, request.max_output_tokens);
    let prompt = fitted_prompt(shared, request)?;
    let matcher = matcher_for(shared, &request.schema)?;
    if prompt.cut_tokens > 0 {
        tracing::warn!(
            cut_tokens = prompt.cut_tokens,
            "input cut in the middle to fit the local model's context window"
        );
    }
    Ok((prompt, matcher, max_output))
}

/// Starts the decoder thread; it stops when the returned sender (and every
/// clone) is dropped and its running requests are done.
pub(crate) fn spawn_decoder(shared: &Arc<Shared>) -> Result<Sender<Job>, LocalError> {
    let (sender, receiver) = mpsc::channel::<Job>();
    let shared = Arc::clone(shared);
    std::thread::Builder::new()
        .name("local-model".into())
        .spawn(move || run_decoder(&shared, &receiver))
        .map_err(|e| LocalError::Spawn(e.to_string()))?;
    Ok(sender)
}

/// A sequence of the context and the tokens its KV cache holds.
struct Slot {
    seq: i32,
    /// Tokens at positions 0.. of the sequence's KV cache.
    cached: Vec<i32>,
    /// When the slot last took a request, to pick among equals.
    last_used: u64,
    running: Option<Running>,
}

/// A request in progress on a slot.
struct Running {
    prompt: FittedPrompt,
    max_output: usize,
    cancel: Arc<AtomicBool>,
    enqueued: Instant,
    reply: oneshot::Sender<JobResult>,
    sampler: LlamaSampler,
    /// Prompt tokens already in the KV cache.
    fed: usize,
    /// Prompt tokens the batch being decoded carries for this slot.
    in_batch: usize,
    reused: usize,
    /// The sampled token to feed next (generation phase).
    pending: Option<LlamaToken>,
    /// Where this slot's logits are in the batch being decoded.
    logits_at: Option<i32>,
    answer: Vec<u8>,
    generated: usize,
    started: Instant,
    prompt_time: Option<Duration>,
    sampling_time: Duration,
    queue_time: Duration,
}

struct Decoder<'m> {
    shared: &'m Shared,
    context: Option<LlamaContext<'m>>,
    slots: Vec<Slot>,
    waiting: VecDeque<Job>,
    batch: LlamaBatch<'static>,
    clock: u64,
}

fn run_decoder(shared: &Shared, jobs: &Receiver<Job>) {
    let sequences = shared.config.max_sequences.max(1);
    let mut decoder = Decoder {
        shared,
        context: None,
        slots: (0..sequences)
            .map(|seq| Slot {
                seq: i32::try_from(seq).unwrap_or(i32::MAX),
                cached: Vec::new(),
                last_used: 0,
                running: None,
            })
            .collect(),
        waiting: VecDeque::new(),
        batch: LlamaBatch::new(batch_capacity(&shared.config), 1),
        clock: 0,
    };
    loop {
        let idle = decoder.running() == 0 && decoder.waiting.is_empty();
        if !decoder.receive(jobs, idle) {
            break;
        }
        decoder.admit();
        if decoder.running() == 0 {
            continue;
        }
        let stepped = catch_unwind(AssertUnwindSafe(|| decoder.step()));
        if stepped.is_err() {
            // The context may be half-way through an operation: start the
            // next request on a fresh one.
            decoder.fail_all("the local model failed while decoding");
            decoder.context = None;
        }
    }
    decoder.fail_all("the local model's workers have stopped");
}

/// Tokens one decode may carry: a prompt chunk plus one token per sequence.
pub(crate) fn batch_capacity(config: &LocalModelConfig) -> usize {
    PROMPT_CHUNK as usize + config.max_sequences.max(1)
}

impl<'m> Decoder<'m> {
    fn running(&self) -> usize {
        self.slots.iter().filter(|s| s.running.is_some()).count()
    }

    /// Moves new jobs into the waiting queue, blocking for one when there
    /// is nothing to do. `false` once the provider is gone and nothing is
    /// left to decode.
    fn receive(&mut self, jobs: &Receiver<Job>, block: bool) -> bool {
        if block {
            match jobs.recv() {
                Ok(job) => self.waiting.push_back(job),
                Err(_) => return false,
            }
        }
        loop {
            match jobs.try_recv() {
                Ok(job) => self.waiting.push_back(job),
                Err(TryRecvError::Empty) => return true,
                Err(TryRecvError::Disconnected) => {
                    return self.running() > 0 || !self.waiting.is_empty()
                }
            }
        }
    }

    /// Starts waiting jobs on free slots, in arrival order.
    fn admit(&mut self) {
        while self.slots.iter().any(|s| s.running.is_none()) {
            let Some(job) = self.waiting.pop_front() else {
                return;
            };
            if job.cancel.load(Ordering::Relaxed) {
                continue;
            }
            if let Err(error) = self.start(job) {
                tracing::warn!(%error, "local model could not start a request");
            }
        }
    }

    fn start(&mut self, job: Job) -> Result<(), ProviderError> {
        if let Err(error) = self.ensure_context() {
            let _ = job.reply.send(Err(error.clone()));
            return Err(error);
        }
        let Some((index, shared)) = self.best_free_slot(&job.prompt.tokens) else {
            self.waiting.push_front(job);
            return Ok(());
        };
        // At least the last prompt token is evaluated: its logits pick the
        // first answer token.
        let keep = if self.shared.prefix_cache {
            shared.min(job.prompt.tokens.len().saturating_sub(1))
        } else {
            0
        };
        let keep = self.truncate(index, keep);
        self.clock += 1;
        let slot = &mut self.slots[index];
        slot.last_used = self.clock;
        let sampler =
            LlamaSampler::chain_simple([LlamaSampler::from(job.matcher), LlamaSampler::greedy()]);
        slot.running = Some(Running {
            queue_time: job.enqueued.elapsed(),
            prompt: job.prompt,
            max_output: job.max_output,
            cancel: job.cancel,
            enqueued: job.enqueued,
            reply: job.reply,
            sampler,
            fed: keep,
            in_batch: 0,
            reused: keep,
            pending: None,
            logits_at: None,
            answer: Vec::new(),
            generated: 0,
            started: Instant::now(),
            prompt_time: None,
            sampling_time: Duration::ZERO,
        });
        self.shared.busy.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    /// The free slot for `prompt`, and how many tokens its KV cache shares
    /// with it. A slot sharing at least half of the prompt (its agent's
    /// instructions and schema) is taken, the one sharing most first.
    /// Otherwise the request goes where it destroys the least: a slot whose
    /// whole cache is a prefix of the prompt (an empty one, say), else the
    /// least recently used, so that other agents' prefixes stay cached.
    fn best_free_slot(&self, prompt: &[i32]) -> Option<(usize, usize)> {
        let free = || {
            self.slots
                .iter()
                .enumerate()
                .filter(|(_, slot)| slot.running.is_none())
                .map(|(index, slot)| (index, slot, common_prefix(&slot.cached, prompt)))
        };
        let sharing = free()
            .filter(|&(_, _, shared)| shared * 2 >= prompt.len())
            .max_by_key(|&(_, slot, shared)| (shared, std::cmp::Reverse(slot.last_used)));
        sharing
            .or_else(|| {
                free().min_by_key(|&(_, slot, shared)| {
                    let loses_cache = shared < slot.cached.len();
                    let kept = if loses_cache { 0 } else { shared };
                    (loses_cache, std::cmp::Reverse(kept), slot.last_used)
                })
            })
            .map(|(index, _, shared)| (index, shared))
    }

    fn ensure_context(&mut self) -> Result<(), ProviderError> {
        if self.context.is_none() {
            let context = self
                .shared
                .model
                .new_context(&self.shared.config)
                .map_err(|e| unavailable(&e.to_string()))?;
            self.context = Some(context);
            for slot in &mut self.slots {
                slot.cached.clear();
            }
        }
        Ok(())
    }

    /// Drops a slot's KV cache past `keep` tokens; returns how many are
    /// kept (0 when the model's memory cannot remove a part of a sequence,
    /// as with recurrent models).
    fn truncate(&mut self, index: usize, keep: usize) -> usize {
        let slot = &mut self.slots[index];
        let Some(context) = self.context.as_mut() else {
            slot.cached.clear();
            return 0;
        };
        let seq = u32::try_from(slot.seq).ok();
        let from = u32::try_from(keep).ok();
        let kept = match context.clear_kv_cache_seq(seq, from, None) {
            Ok(true) => keep,
            _ => {
                let _ = context.clear_kv_cache_seq(seq, None, None);
                0
            }
        };
        slot.cached.truncate(kept);
        kept
    }

    /// One decode: the next token of every generating request and a chunk
    /// of prompt for those still reading theirs, then sampling.
    fn step(&mut self) {
        self.drop_cancelled();
        if self.fill_batch().is_err() {
            self.fail_all("the local model failed while decoding: batch overflow");
            return;
        }
        if self.batch.n_tokens() == 0 {
            return;
        }
        let Some(context) = self.context.as_mut() else {
            self.fail_all("the local model has no context");
            return;
        };
        if let Err(error) = context.decode(&mut self.batch) {
            let message = format!("the local model failed while decoding: {error}");
            self.fail_batch(&message);
            return;
        }
        self.commit_batch();
        self.sample();
    }

    fn drop_cancelled(&mut self) {
        for index in 0..self.slots.len() {
            let cancelled = self.slots[index]
                .running
                .as_ref()
                .is_some_and(|r| r.cancel.load(Ordering::Relaxed));
            if cancelled {
                // Nobody waits for this answer any more; the slot keeps the
                // KV cache of what it decoded.
                self.finish(
                    index,
                    Err(ProviderError::NoAnswer("the request was cancelled".into())),
                );
            }
        }
    }

    /// Generating slots first (one token each), then prompt chunks sharing
    /// what is left of the batch, oldest request first.
    fn fill_batch(&mut self) -> Result<(), ProviderError> {
        self.batch.clear();
        for slot in &mut self.slots {
            let Some(running) = slot.running.as_mut() else {
                continue;
            };
            running.logits_at = None;
            running.in_batch = 0;
            if let Some(token) = running.pending {
                add(&mut self.batch, token, slot.cached.len(), slot.seq, true)?;
                running.logits_at = Some(self.batch.n_tokens() - 1);
            }
        }
        let mut reading: Vec<usize> = (0..self.slots.len())
            .filter(|&i| {
                self.slots[i]
                    .running
                    .as_ref()
                    .is_some_and(|r| r.pending.is_none())
            })
            .collect();
        reading.sort_by_key(|&i| self.slots[i].running.as_ref().map(|r| r.enqueued));
        let mut budget = PROMPT_CHUNK as usize;
        for index in reading {
            let slot = &mut self.slots[index];
            let Some(running) = slot.running.as_mut() else {
                continue;
            };
            let prompt = &running.prompt.tokens;
            let end = (running.fed + budget).min(prompt.len());
            for (position, &token) in prompt.iter().enumerate().take(end).skip(running.fed) {
                let last = position + 1 == prompt.len();
                add(&mut self.batch, LlamaToken(token), position, slot.seq, last)?;
                if last {
                    running.logits_at = Some(self.batch.n_tokens() - 1);
                }
            }
            running.in_batch = end - running.fed;
            budget -= running.in_batch;
        }
        Ok(())
    }

    /// Records what the successful decode put in each slot's KV cache.
    fn commit_batch(&mut self) {
        for slot in &mut self.slots {
            let Some(running) = slot.running.as_mut() else {
                continue;
            };
            if let Some(token) = running.pending.take() {
                slot.cached.push(token.0);
            } else {
                let end = running.fed + running.in_batch;
                slot.cached
                    .extend_from_slice(&running.prompt.tokens[running.fed..end]);
                running.fed = end;
            }
        }
    }

    /// Picks the next token of every slot whose logits the decode produced.
    fn sample(&mut self) {
        for index in 0..self.slots.len() {
            let outcome = {
                let slot = &mut self.slots[index];
                let Some(running) = slot.running.as_mut() else {
                    continue;
                };
                let Some(at) = running.logits_at else {
                    continue;
                };
                let Some(context) = self.context.as_ref() else {
                    return;
                };
                running
                    .prompt_time
                    .get_or_insert_with(|| running.started.elapsed());
                let sampling = Instant::now();
                let token = running.sampler.sample(context, at);
                running.sampling_time += sampling.elapsed();
                next_token(&self.shared.model, running, token)
            };
            if let Some(result) = outcome {
                self.finish(index, result);
            }
        }
    }

    /// Ends the request of a slot and answers its caller.
    fn finish(&mut self, index: usize, result: Result<(), ProviderError>) {
        let Some(running) = self.slots[index].running.take() else {
            return;
        };
        self.shared.busy.fetch_sub(1, Ordering::SeqCst);
        let reply = result.and_then(|()| completion(&running));
        // The caller may have gone; nobody is left to tell.
        let _ = running.reply.send(reply);
    }

    /// A decode failed: the KV cache of the slots in the batch is unknown,
    /// so it is dropped along with their requests.
    fn fail_batch(&mut self, message: &str) {
        for index in 0..self.slots.len() {
            if self.slots[index].running.is_some() {
                self.truncate(index, 0);
                self.finish(index, Err(unavailable(message)));
            }
        }
    }

    fn fail_all(&mut self, message: &str) {
        for index in 0..self.slots.len() {
            self.slots[index].cached.clear();
            self.finish(index, Err(unavailable(message)));
        }
        for job in self.waiting.drain(..) {
            let _ = job.reply.send(Err(unavailable(message)));
        }
    }
}

/// Takes a sampled token: `Some` when the request is over (its answer is
/// complete or it hit the token cap), else the token is fed next step.
fn next_token(
    model: &LoadedModel,
    running: &mut Running,
    token: LlamaToken,
) -> Option<Result<(), ProviderError>> {
    // The grammar admits an end token only once the answer is complete.
    if model.is_end(token) {
        return Some(Ok(()));
    }
    running.answer.extend(model.piece(token));
    running.generated += 1;
    if running.generated >= running.max_output {
        tracing::debug!(
            partial = %String::from_utf8_lossy(&running.answer),
            "local model answer cut at the token cap"
        );
        let cap = running.max_output;
        return Some(Err(ProviderError::NoAnswer(format!(
            "the local model hit its output token cap ({cap} tokens) before finishing an \
             answer that matches the schema"
        ))));
    }
    running.pending = Some(token);
    None
}

fn completion(running: &Running) -> JobResult {
    let prompt_time = running.prompt_time.unwrap_or_default();
    let stats = DecodeStats {
        queue_time: running.queue_time,
        prompt_tokens: running.prompt.tokens.len(),
        reused_tokens: running.reused,
        cut_tokens: running.prompt.cut_tokens,
        prompt_time,
        generated_tokens: running.generated,
        generation_time: running.started.elapsed().saturating_sub(prompt_time),
        sampling_time: running.sampling_time,
    };
    tracing::debug!(?stats, "local model answered");
    let completion = Completion {
        text: answer_text(&running.answer)?,
        usage: Usage {
            input_tokens: to_i64(stats.prompt_tokens),
            output_tokens: to_i64(stats.generated_tokens),
            cached_input_tokens: to_i64(stats.reused_tokens),
        },
    };
    Ok((completion, stats))
}

/// How many tokens `a` and `b` share from the start.
fn common_prefix(a: &[i32], b: &[i32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
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

fn add(
    batch: &mut LlamaBatch,
    token: LlamaToken,
    position: usize,
    seq: i32,
    logits: bool,
) -> Result<(), ProviderError> {
    let position = i32::try_from(position).map_err(|_| decode_failed("position overflow"))?;
    batch
        .add(token, position, &[seq], logits)
        .map_err(decode_failed)
}

/// The grammar guarantees JSON; a failure here means the constraint was
/// not in force (llguidance gave up on a mask) and the text is unusable.
/// The answer is re-serialized compactly: the grammar lets the model lay
/// JSON out as it was trained to, the API returns it without whitespace.
fn answer_text(answer: &[u8]) -> Result<String, ProviderError> {
    let text = std::str::from_utf8(answer).map_err(|_| {
        ProviderError::NoAnswer("the local model produced text that is not UTF-8".into())
    })?;
    let value = serde_json::from_str::<serde_json::Value>(text).map_err(|e| {
        ProviderError::NoAnswer(format!(
            "the local model produced text that is not JSON: {e}"
        ))
    })?;
    Ok(value.to_string())
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
    fn answers_must_be_json_and_come_out_compact() {
        assert_eq!(answer_text(b"{\"a\":1}"), Ok("{\"a\":1}".into()));
        assert_eq!(
            answer_text(b"{\n  \"b\": [1, 2],\n  \"a\": \"x y\"\n}"),
            Ok("{\"b\":[1,2],\"a\":\"x y\"}".into())
        );
        assert!(matches!(
            answer_text(b"{\"a\":"),
            Err(ProviderError::NoAnswer(_))
        ));
    }

    #[test]
    fn common_prefix_counts_shared_leading_tokens() {
        assert_eq!(common_prefix(&[1, 2, 3], &[1, 2, 4, 5]), 2);
        assert_eq!(common_prefix(&[], &[1]), 0);
        assert_eq!(common_prefix(&[1, 2], &[1, 2, 3]), 2);
    }
}
