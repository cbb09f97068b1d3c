//! Runs a file of extraction requests through the local provider, as
//! agentd's engines send them, and writes each answer with its timings:
//! the agentd half of `benches/local_model_bench.py`.
//!
//! Input: JSON lines `{"id", "system", "user", "schema"}`. Output (stdout):
//! JSON lines `{"id", "text" | "error", "latency_s", "prompt_tokens",
//! "reused_tokens", "generated_tokens"}`, then one line
//! `{"summary": {"requests", "wall_s", "requests_per_s"}}`.
//!
//! `--clients N` sends N requests at a time (each client sends its next one
//! when its answer comes back), in file order.

mod cli;

use std::collections::VecDeque;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use agentd_provider_local::{
    available_cores, default_model_path, JsonLayout, LocalModelConfig, LocalProvider,
};
use agentd_providers::{CompletionRequest, Message, Role};
use serde_json::{json, Value};
use tokio::task::JoinSet;

const USAGE: &str = "usage: local-eval --requests FILE [--model PATH] [--threads N] \
[--sequences N] [--clients N] [--layout flexible|compact] [--no-prefix-cache]";

struct Args {
    requests: PathBuf,
    model: PathBuf,
    threads: usize,
    sequences: usize,
    clients: usize,
    layout: JsonLayout,
    prefix_cache: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        requests: PathBuf::new(),
        model: default_model_path(),
        threads: available_cores(),
        sequences: available_cores().max(2),
        clients: 1,
        layout: JsonLayout::default(),
        prefix_cache: true,
    };
    let mut words = std::env::args().skip(1);
    while let Some(flag) = words.next() {
        match flag.as_str() {
            "-h" | "--help" => return Err(USAGE.into()),
            "--no-prefix-cache" => {
                args.prefix_cache = false;
                continue;
            }
            _ => {}
        }
        let value = cli::flag_value(&mut words, &flag, USAGE)?;
        let number = || cli::positive_number(&flag, &value);
        match flag.as_str() {
            "--requests" => args.requests = PathBuf::from(&value),
            "--model" | "-m" => args.model = PathBuf::from(&value),
            "--threads" | "-t" => args.threads = number()?,
            "--sequences" => args.sequences = number()?,
            "--clients" | "-c" => args.clients = number()?,
            "--layout" => {
                args.layout = match value.as_str() {
                    "flexible" => JsonLayout::Flexible,
                    "compact" => JsonLayout::Compact,
                    _ => return Err(format!("--layout is flexible or compact, not {value:?}")),
                }
            }
            _ => return Err(format!("unknown flag {flag}\n{USAGE}")),
        }
    }
    if args.requests.as_os_str().is_empty() {
        return Err(format!("--requests is required\n{USAGE}"));
    }
    Ok(args)
}

/// One line of the input file.
struct Item {
    id: Value,
    request: CompletionRequest,
}

fn read_items(path: &PathBuf) -> Result<Vec<Item>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut items = Vec::new();
    for line in std::io::BufReader::new(file).lines() {
        let line = line.map_err(|e| e.to_string())?;
        if line.trim().is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(&line).map_err(|e| format!("{e}: {line}"))?;
        let text = |key: &str| {
            value[key]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("request line without a string {key:?}: {line}"))
        };
        items.push(Item {
            id: value["id"].clone(),
            request: CompletionRequest {
                upstream_model: "local".into(),
                messages: vec![
                    Message::text(Role::System, text("system")?),
                    Message::text(Role::User, text("user")?),
                ],
                schema_name: "output".into(),
                schema: value["schema"].clone(),
                temperature: None,
                reasoning: None,
                max_output_tokens: None,
            },
        });
    }
    Ok(items)
}

async fn answer(provider: &LocalProvider, item: &Item) -> Value {
    let started = Instant::now();
    let outcome = provider.complete_with_stats(&item.request).await;
    let latency = started.elapsed().as_secs_f64();
    match outcome {
        Ok((completion, stats)) => json!({
            "id": item.id,
            "text": completion.text,
            "latency_s": latency,
            "prompt_tokens": stats.prompt_tokens,
            "reused_tokens": stats.reused_tokens,
            "generated_tokens": stats.generated_tokens,
        }),
        Err(error) => json!({"id": item.id, "error": error.to_string(), "latency_s": latency}),
    }
}

async fn run(args: Args) -> Result<(), String> {
    let items = read_items(&args.requests)?;
    let config = LocalModelConfig {
        threads: args.threads,
        max_sequences: args.sequences,
        prefix_cache: args.prefix_cache,
        json_layout: args.layout,
        ..LocalModelConfig::new(&args.model)
    };
    let provider = Arc::new(LocalProvider::load(config).map_err(|e| e.to_string())?);
    // Warm-up: the first decode allocates the context's buffers.
    if let Some(first) = items.first() {
        let mut warm = first.request.clone();
        warm.messages[1] = Message::text(Role::User, "Warm-up.");
        let _ = provider.complete_with_stats(&warm).await;
    }
    let queue = Arc::new(Mutex::new(items.into_iter().collect::<VecDeque<_>>()));
    let count = queue.lock().map_err(|e| e.to_string())?.len();
    let started = Instant::now();
    let mut clients = JoinSet::new();
    for _ in 0..args.clients {
        let (provider, queue) = (Arc::clone(&provider), Arc::clone(&queue));
        clients.spawn(async move {
            let mut lines = Vec::new();
            loop {
                let next = queue.lock().ok().and_then(|mut q| q.pop_front());
                let Some(item) = next else { break };
                lines.push(answer(&provider, &item).await);
            }
            lines
        });
    }
    let mut lines = Vec::with_capacity(count);
    while let Some(done) = clients.join_next().await {
        lines.extend(done.map_err(|e| e.to_string())?);
    }
    let wall = started.elapsed().as_secs_f64();
    let mut out = std::io::stdout().lock();
    for line in lines {
        writeln!(out, "{line}").map_err(|e| e.to_string())?;
    }
    let summary = json!({"summary": {
        "requests": count,
        "wall_s": wall,
        "requests_per_s": count as f64 / wall,
    }});
    writeln!(out, "{summary}").map_err(|e| e.to_string())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    cli::exit_code("local-eval", parse_args(), run).await
}
