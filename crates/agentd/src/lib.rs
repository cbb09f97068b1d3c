//! agentd: the HTTP API, job execution, admin CLI and start-up wiring.
//! Domain rules, storage, engines and providers live in their own crates.

pub mod admin;
pub mod api;
pub mod auth;
pub mod cli;
pub mod client;
pub mod config;
pub mod console;
pub mod documents;
pub mod file_sweep;
pub mod files;
pub mod local_model;
pub mod metrics;
pub mod models_file;
pub mod panics;
pub mod public_url;
pub mod references;
pub mod retention;
pub mod server;
pub mod shared_limits;
pub mod startup;
pub mod telemetry;
pub mod webhooks;
pub mod worker;
