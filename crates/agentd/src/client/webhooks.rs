//! `agentd webhooks list|create|delete|deliveries|resend`: an agent's
//! webhook subscriptions and their delivery logs.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};

use super::http::{segment, Api};
use super::output::{cell, pretty, table};
use super::{profile, ClientError, ServerArgs};

#[derive(Debug, Args)]
pub struct WebhooksArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[command(subcommand)]
    command: WebhooksCommand,
}

#[derive(Debug, Subcommand)]
enum WebhooksCommand {
    /// List an agent's subscriptions (a table, or JSON with --json).
    List {
        agent: String,
        #[arg(long)]
        json: bool,
    },
    /// Subscribe a URL to an agent's job events; prints the subscription,
    /// with its secret (shown only now).
    Create {
        agent: String,
        #[arg(long)]
        url: String,
        /// An event to send (repeatable): job.succeeded, job.failed,
        /// job.cancelled, job.cached. Default: all of them.
        #[arg(long = "event")]
        events: Vec<String>,
        /// A `whsec_<base64>` secret; default: a new random one.
        #[arg(long)]
        secret: Option<String>,
        #[arg(long)]
        description: Option<String>,
    },
    /// Delete a subscription and its delivery log.
    Delete { agent: String, webhook: String },
    /// A subscription's deliveries, newest first, with every attempt.
    Deliveries {
        agent: String,
        webhook: String,
        #[arg(long)]
        json: bool,
    },
    /// Send a finished job's event again to its agent's subscriptions (or
    /// to one of them).
    Resend {
        job: String,
        #[arg(long)]
        webhook: Option<String>,
    },
}

pub async fn run(args: WebhooksArgs) -> Result<ExitCode, ClientError> {
    let api = Api::new(profile::resolve(args.server.profile.as_deref())?)?;
    match args.command {
        WebhooksCommand::List { agent, json } => list(&api, &agent, json).await,
        WebhooksCommand::Create {
            agent,
            url,
            events,
            secret,
            description,
        } => {
            let mut body = Map::new();
            body.insert("url".into(), json!(url));
            if !events.is_empty() {
                body.insert("events".into(), json!(events));
            }
            if let Some(secret) = secret {
                body.insert("secret".into(), json!(secret));
            }
            if let Some(description) = description {
                body.insert("description".into(), json!(description));
            }
            let created = api
                .post(&webhooks_path(&agent), &Value::Object(body))
                .await?;
            println!("{}", pretty(&created));
            Ok(())
        }
        WebhooksCommand::Delete { agent, webhook } => {
            api.delete(&webhook_path(&agent, &webhook)).await?;
            eprintln!("deleted webhook {webhook}");
            Ok(())
        }
        WebhooksCommand::Deliveries {
            agent,
            webhook,
            json,
        } => deliveries(&api, &agent, &webhook, json).await,
        WebhooksCommand::Resend { job, webhook } => {
            let body = json!({ "webhook_id": webhook });
            let answer = api
                .post(
                    &format!("/v1/agents/jobs/{}/webhook/resend/", segment(&job)),
                    &body,
                )
                .await?;
            println!("queued {}", cell(&answer["queued"]));
            Ok(())
        }
    }?;
    Ok(ExitCode::SUCCESS)
}

fn webhooks_path(agent: &str) -> String {
    format!("/v1/agents/{}/webhooks/", segment(agent))
}

fn webhook_path(agent: &str, webhook: &str) -> String {
    format!("{}{}/", webhooks_path(agent), segment(webhook))
}

/// Prints `items` as JSON, or as a table of `columns`.
fn print_items(items: Vec<Value>, as_json: bool, columns: &[&str]) {
    if as_json {
        println!("{}", pretty(&Value::Array(items)));
        return;
    }
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|item| columns.iter().map(|c| cell(&item[*c])).collect())
        .collect();
    print!("{}", table(columns, &rows));
}

async fn list(api: &Api, agent: &str, as_json: bool) -> Result<(), ClientError> {
    let webhooks = api.get_all(&webhooks_path(agent)).await?;
    print_items(webhooks, as_json, &["id", "url", "events", "active"]);
    Ok(())
}

async fn deliveries(
    api: &Api,
    agent: &str,
    webhook: &str,
    as_json: bool,
) -> Result<(), ClientError> {
    let path = format!("{}deliveries/", webhook_path(agent, webhook));
    let deliveries = api.get_all(&path).await?;
    print_items(
        deliveries,
        as_json,
        &[
            "id",
            "job_id",
            "event",
            "status",
            "attempt_count",
            "response_status",
            "latency_ms",
            "next_attempt_at",
        ],
    );
    Ok(())
}
