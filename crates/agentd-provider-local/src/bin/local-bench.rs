//! Throughput of the local provider, to compare with llama.cpp's
//! `llama-bench` (pp512 / tg128) on the same GGUF and thread count.
//!
//! Each repetition sends two requests through the provider, both decoding
//! under a JSON Schema grammar:
//! - `pp+tg`: a prompt of `--prompt-tokens` tokens, then `--gen-tokens`
//!   answer tokens (prompt and generation speed measured separately);
//! - `tg`: a short prompt, then `--gen-tokens` answer tokens (closest to
//!   llama-bench's tg on an empty context).
//!
//! With `--concurrency C > 1` the `tg` request is sent C times at once and
//! the aggregate generation rate is reported as well.

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use agentd_provider_local::{
    available_cores, default_model_path, DecodeStats, LocalModelConfig, LocalProvider,
};
use agentd_providers::{CompletionRequest, Message, Role};
use serde_json::json;
use tokio::task::JoinSet;

const USAGE: &str = "usage: local-bench [--model PATH] [--threads N] [--prompt-tokens N] \
[--gen-tokens N] [--reps N] [--concurrency N]";

struct Args {
    model: PathBuf,
    threads: usize,
    prompt_tokens: usize,
    gen_tokens: usize,
    reps: usize,
    concurrency: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        model: default_model_path(),
        threads: available_cores(),
        prompt_tokens: 512,
        gen_tokens: 128,
        reps: 3,
        concurrency: 1,
    };
    let mut words = std::env::args().skip(1);
    while let Some(flag) = words.next() {
        if flag == "-h" || flag == "--help" {
            return Err(USAGE.into());
        }
        let value = cli::flag_value(&mut words, &flag, USAGE)?;
        let number = || cli::positive_number(&flag, &value);
        match flag.as_str() {
            "--model" | "-m" => args.model = PathBuf::from(&value),
            "--threads" | "-t" => args.threads = number()?,
            "--prompt-tokens" | "-p" => args.prompt_tokens = number()?,
            "--gen-tokens" | "-n" => args.gen_tokens = number()?,
            "--reps" | "-r" => args.reps = number()?,
            "--concurrency" | "-c" => args.concurrency = number()?,
            _ => return Err(format!("unknown flag {flag}\n{USAGE}")),
        }
    }
    Ok(args)
}

/// An answer of exactly `tokens` tokens, give or take the braces: a list
/// of one-digit numbers is a digit and a comma per item.
fn request(user_text: String, gen_tokens: usize) -> CompletionRequest {
    let items = gen_tokens.saturating_sub(6) / 2;
    CompletionRequest {
        upstream_model: "local".into(),
        messages: vec![
            Message::text(
                Role::System,
                "Read the text, then write the digits you find in it.",
            ),
            Message::text(Role::User, user_text),
        ],
        schema_name: "bench".into(),
        schema: json!({
            "type": "object",
            "properties": {
                "digits": {
                    "type": "array",
                    "items": {"type": "integer", "minimum": 0, "maximum": 9},
                    "minItems": items,
                    "maxItems": items,
                },
            },
            "required": ["digits"],
        }),
        temperature: None,
        reasoning: None,
        max_output_tokens: Some(u32::try_from(gen_tokens + 16).unwrap_or(u32::MAX)),
    }
}

/// User text sized so the whole prompt is `target` tokens (or just above).
fn sized_request(
    provider: &LocalProvider,
    target: usize,
    gen_tokens: usize,
) -> Result<CompletionRequest, String> {
    let sentence = "Report 7 says the 3 depots shipped 9 crates on day 4. ";
    let words: Vec<&str> = sentence
        .split_whitespace()
        .cycle()
        .take(target * 2)
        .collect();
    let text = |n: usize| words[..n].join(" ");
    let tokens_of = |n: usize| -> Result<usize, String> {
        provider
            .prompt_tokens(&request(text(n), gen_tokens))
            .map_err(|e| e.to_string())
    };
    // The fewest words that reach the target.
    let (mut low, mut high) = (1, words.len());
    while low < high {
        let mid = (low + high) / 2;
        if tokens_of(mid)? < target {
            low = mid + 1;
        } else {
            high = mid;
        }
    }
    Ok(request(text(low), gen_tokens))
}

#[derive(Default)]
struct Series(Vec<f64>);

impl Series {
    fn push(&mut self, value: f64) {
        self.0.push(value);
    }

    fn summary(&self) -> String {
        let n = self.0.len() as f64;
        let mean = self.0.iter().sum::<f64>() / n;
        let var = self.0.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
        format!("{mean:8.1} ± {:5.1}", var.sqrt())
    }
}

async fn run(args: Args) -> Result<(), String> {
    let config = LocalModelConfig {
        threads: args.threads,
        max_sequences: args.concurrency,
        // Each repetition sends the same prompts: measure evaluating them.
        prefix_cache: false,
        max_output_tokens: u32::try_from(args.gen_tokens + 16).unwrap_or(u32::MAX),
        ..LocalModelConfig::new(&args.model)
    };
    let provider = Arc::new(LocalProvider::load(config).map_err(|e| e.to_string())?);
    let long = sized_request(&provider, args.prompt_tokens, args.gen_tokens)?;
    let short = request("Day 4: 9 crates.".into(), args.gen_tokens);

    // Warm-up: first use allocates the context and the grammar's caches.
    provider
        .complete_with_stats(&short)
        .await
        .map_err(|e| e.to_string())?;

    let (mut pp, mut tg_long, mut tg_short, mut tg_many) = Default::default();
    let mut last: Option<(DecodeStats, DecodeStats)> = None;
    for _ in 0..args.reps {
        let (_, a) = provider
            .complete_with_stats(&long)
            .await
            .map_err(|e| e.to_string())?;
        let (_, b) = provider
            .complete_with_stats(&short)
            .await
            .map_err(|e| e.to_string())?;
        Series::push(&mut pp, a.prompt_tokens_per_second());
        Series::push(&mut tg_long, a.generation_tokens_per_second());
        Series::push(&mut tg_short, b.generation_tokens_per_second());
        if args.concurrency > 1 {
            Series::push(
                &mut tg_many,
                concurrent_rate(&provider, &short, args.concurrency).await?,
            );
        }
        last = Some((a, b));
    }
    let Some((a, b)) = last else {
        return Err("no repetitions".into());
    };
    println!(
        "model {} | threads {} | reps {}",
        args.model.display(),
        args.threads,
        args.reps
    );
    println!("{:<40} {:>18}", "test", "tokens/s");
    println!(
        "{:<40} {:>18}",
        format!("pp{} (prompt, provider)", a.prompt_tokens),
        pp.summary()
    );
    println!(
        "{:<40} {:>18}",
        format!(
            "tg{} after pp{} (grammar)",
            a.generated_tokens, a.prompt_tokens
        ),
        tg_long.summary()
    );
    println!(
        "{:<40} {:>18}",
        format!(
            "tg{} after pp{} (grammar)",
            b.generated_tokens, b.prompt_tokens
        ),
        tg_short.summary()
    );
    for (name, stats) in [("pp+tg", a), ("tg", b)] {
        println!(
            "{name}: last run spent {:.0}% of generation time sampling under the grammar",
            100.0 * stats.sampling_time.as_secs_f64() / stats.generation_time.as_secs_f64()
        );
    }
    if args.concurrency > 1 {
        println!(
            "{:<40} {:>18}",
            format!(
                "tg{} x{} concurrent, aggregate",
                b.generated_tokens, args.concurrency
            ),
            tg_many.summary()
        );
    }
    Ok(())
}

/// Generated tokens per second over `count` identical requests at once.
async fn concurrent_rate(
    provider: &Arc<LocalProvider>,
    request: &CompletionRequest,
    count: usize,
) -> Result<f64, String> {
    let started = Instant::now();
    let mut runs = JoinSet::new();
    for _ in 0..count {
        let (provider, request) = (Arc::clone(provider), request.clone());
        runs.spawn(async move { provider.complete_with_stats(&request).await });
    }
    let mut tokens = 0;
    while let Some(outcome) = runs.join_next().await {
        let (_, stats) = outcome
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        tokens += stats.generated_tokens;
    }
    Ok(tokens as f64 / started.elapsed().as_secs_f64())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    cli::exit_code("local-bench", parse_args(), run).await
}
