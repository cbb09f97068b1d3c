//! Server configuration: flags with environment fallbacks.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use agentd_net::AddressPolicy;
use clap::Args;

pub const DEFAULT_DATABASE_URL: &str = "sqlite://./data/agentd.db";

#[derive(Clone, Debug, Args)]
pub struct ServeConfig {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long = "addr", env = "AGENTD_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,

    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    pub database_url: String,

    /// Pooled PostgreSQL connections of this process (SQLite ignores it).
    #[arg(
        long,
        env = "AGENTD_DB_MAX_CONNECTIONS",
        default_value_t = agentd_storage::ConnectOptions::DEFAULT_MAX_CONNECTIONS,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub db_max_connections: u32,

    /// Uploaded inputs and job references are stored here.
    #[arg(long, env = "AGENTD_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Where files' bytes are stored: `file:///path` or `s3://bucket/prefix`
    /// (credentials, region and endpoint from the standard `AWS_*`
    /// variables); by default the folder `$AGENTD_DATA_DIR/files`.
    #[arg(long, env = "AGENTD_OBJECT_STORE_URL")]
    pub object_store_url: Option<String>,

    /// Organization to create at start-up when missing (with the key below).
    #[arg(long, env = "AGENTD_BOOTSTRAP_ORG_ID")]
    pub bootstrap_org_id: Option<String>,

    #[arg(long, env = "AGENTD_BOOTSTRAP_API_KEY", hide_env_values = true)]
    pub bootstrap_api_key: Option<String>,

    /// The base of links the server returns (pagination), e.g.
    /// `https://agentd.example.com`; by default the listen address.
    #[arg(long, env = "AGENTD_PUBLIC_URL", value_parser = parse_public_url)]
    pub public_url: Option<String>,

    /// Largest request body (and so largest file), in bytes.
    #[arg(long, env = "AGENTD_MAX_REQUEST_BYTES", default_value_t = 50 * 1024 * 1024)]
    pub max_request_bytes: usize,

    /// File inputs given as URLs per run request (all items of a batch
    /// together); more is a 400.
    #[arg(long, env = "AGENTD_MAX_URL_INPUTS", default_value_t = 100)]
    pub max_url_inputs: usize,

    /// User-supplied URLs (file inputs, `images`, webhooks) may reach private,
    /// loopback and link-local addresses: `true`, or a comma-separated list
    /// of networks (`10.0.0.0/8,fd00::/8`). Public addresses only by default.
    #[arg(long, env = "AGENTD_ALLOW_PRIVATE_URLS", default_value = "false")]
    pub allow_private_urls: AddressPolicy,

    /// A synchronous run that takes longer answers 504 with its job id.
    #[arg(long, env = "AGENTD_SYNC_TIMEOUT_SECS", default_value_t = 300)]
    pub sync_timeout_secs: u64,

    /// Model used when an agent's engine_config names none; by default the
    /// local model when it is loaded, else gpt-4.1-2025-04-14.
    #[arg(long, env = "AGENTD_DEFAULT_MODEL")]
    pub default_model: Option<String>,

    /// The in-process model: `auto` loads it when its GGUF file exists,
    /// `on` requires it, `off` never loads it.
    #[arg(long, env = "AGENTD_LOCAL_MODEL", default_value = "auto", value_parser = ["auto", "on", "off"])]
    pub local_model: String,

    /// The GGUF file of the local model (default:
    /// `$AGENTD_DATA_DIR/models/SmolLM2-135M-Instruct.Q4_1.gguf`).
    #[arg(long, env = "AGENTD_LOCAL_MODEL_PATH")]
    pub local_model_path: Option<PathBuf>,

    /// CPU threads of the local model's decoder, shared by the sequences
    /// it decodes together (default: the number of cores).
    #[arg(long = "local-threads-max", env = "AGENTD_LOCAL_THREADS_MAX")]
    pub local_threads: Option<usize>,

    /// Local sequences decoded at once, each keeping its prompt prefix
    /// cached between jobs (default: the number of cores, at least 2).
    #[arg(long, env = "AGENTD_LOCAL_SEQUENCES")]
    pub local_sequences: Option<usize>,

    /// Context window of the local model, in tokens.
    #[arg(long, env = "AGENTD_LOCAL_CONTEXT_SIZE")]
    pub local_context_size: Option<u32>,

    /// Cap on the local model's answer tokens.
    #[arg(long, env = "AGENTD_LOCAL_MAX_OUTPUT_TOKENS")]
    pub local_max_output_tokens: Option<u32>,

    /// Run models whose provider has no key here on the local model.
    #[arg(long, env = "AGENTD_LOCAL_FALLBACK", default_value_t = false)]
    pub local_fallback: bool,

    #[arg(long, env = "OPENAI_API_KEY", hide_env_values = true)]
    pub openai_api_key: Option<String>,

    /// Any OpenAI-compatible server (vLLM, Ollama, llama.cpp, LM Studio).
    #[arg(long, env = "OPENAI_BASE_URL")]
    pub openai_base_url: Option<String>,

    #[arg(long, env = "ANTHROPIC_API_KEY", hide_env_values = true)]
    pub anthropic_api_key: Option<String>,

    #[arg(long, env = "ANTHROPIC_BASE_URL")]
    pub anthropic_base_url: Option<String>,

    #[arg(long, env = "GEMINI_API_KEY", hide_env_values = true)]
    pub gemini_api_key: Option<String>,

    #[arg(long, env = "GEMINI_BASE_URL")]
    pub gemini_base_url: Option<String>,

    /// TOML file adding models, OpenAI-compatible endpoints and provider
    /// limits (see README, "Models").
    #[arg(long, env = "AGENTD_MODELS_FILE")]
    pub models_file: Option<PathBuf>,

    /// Time limit of one model call.
    #[arg(long, env = "AGENTD_PROVIDER_TIMEOUT_SECS", default_value_t = 120)]
    pub provider_timeout_secs: u64,

    /// Largest answer body read from a model provider; a larger one fails
    /// the call.
    #[arg(long, env = "AGENTD_PROVIDER_MAX_RESPONSE_BYTES", default_value_t = agentd_providers::DEFAULT_MAX_RESPONSE_BYTES)]
    pub provider_max_response_bytes: usize,

    /// Retries of a model call after 429, 5xx or a timeout.
    #[arg(long, env = "AGENTD_PROVIDER_MAX_RETRIES", default_value_t = 3)]
    pub provider_max_retries: u32,

    /// Jobs run at once by this process (0: none, an API-only process).
    #[arg(long, env = "AGENTD_WORKERS", default_value_t = 16)]
    pub workers: usize,

    /// A running job's lease; a job whose worker stops renewing it is
    /// retried once it expires.
    #[arg(long, env = "AGENTD_JOB_LEASE_SECS", default_value_t = 30)]
    pub job_lease_secs: u64,

    /// Attempts before a job whose worker keeps vanishing fails.
    #[arg(long, env = "AGENTD_JOB_MAX_ATTEMPTS", default_value_t = 3)]
    pub job_max_attempts: i32,

    /// After SIGTERM, how long jobs already running may take to finish
    /// before they are handed back to the queue for other processes.
    #[arg(long, env = "AGENTD_SHUTDOWN_GRACE_SECS", default_value_t = 20)]
    pub shutdown_grace_secs: u64,

    /// How often idle workers look for jobs they were not told about.
    #[arg(long, env = "AGENTD_JOB_POLL_MS", default_value_t = 1000)]
    pub job_poll_ms: u64,

    /// Time a client has to send a request's complete head (request line and
    /// headers), counted from when the server starts waiting for it.
    #[arg(long, env = "AGENTD_HEADER_READ_TIMEOUT_SECS", default_value_t = 30)]
    pub header_read_timeout_secs: u64,

    /// A request body that sends nothing for this long fails (400).
    #[arg(long, env = "AGENTD_BODY_READ_TIMEOUT_SECS", default_value_t = 30)]
    pub body_read_timeout_secs: u64,

    /// A connection with no request in flight and no bytes moving for this
    /// long is closed.
    #[arg(long, env = "AGENTD_IDLE_TIMEOUT_SECS", default_value_t = 20)]
    pub idle_timeout_secs: u64,

    /// Open client connections at most; more wait in the listen backlog
    /// until one closes. Lowered at start to fit the file-descriptor limit.
    #[arg(long, env = "AGENTD_MAX_CONNECTIONS", default_value_t = 4096)]
    pub max_connections: usize,

    /// A second listener serving only `/metrics`, `/healthz` and `/readyz`
    /// (a port kept off the public network; the only listener of `agentd
    /// worker`, whose metrics are otherwise not served).
    #[arg(long, env = "AGENTD_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,

    /// When set, `GET /metrics` asks for `Authorization: Bearer <token>`;
    /// unset, it is open (Prometheus usually scrapes without credentials).
    #[arg(long, env = "AGENTD_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,

    /// `text` or `json` (JSON lines).
    #[arg(long, env = "AGENTD_LOG_FORMAT", default_value = "text")]
    pub log_format: String,

    /// Largest `metadata` of one job, serialized as JSON, in bytes (400 beyond).
    #[arg(long, env = "AGENTD_MAX_METADATA_BYTES", default_value_t = 16 * 1024)]
    pub max_metadata_bytes: usize,

    /// URL inputs fetched at once by this process (and image URLs).
    #[arg(long, env = "AGENTD_MAX_CONCURRENT_FETCHES", default_value_t = crate::files::DEFAULT_MAX_CONCURRENT_FETCHES)]
    pub max_concurrent_fetches: usize,

    /// Bytes fetched for the URL inputs of one job, all together (default:
    /// `AGENTD_MAX_REQUEST_BYTES`).
    #[arg(long, env = "AGENTD_MAX_FETCH_BYTES")]
    pub max_fetch_bytes: Option<u64>,

    /// Seconds between two sweeps of files nothing refers to (0: no sweep).
    #[arg(long, env = "AGENTD_FILE_SWEEP_SECS", default_value_t = 600)]
    pub file_sweep_secs: u64,

    /// Files younger than this (seconds) are never swept.
    #[arg(long, env = "AGENTD_FILE_SWEEP_GRACE_SECS", default_value_t = 3600)]
    pub file_sweep_grace_secs: u64,

    /// Days after which a finished job's inputs, outputs and files are
    /// erased by the sweep (the job stays, as after delete-data); unset
    /// keeps them.
    #[arg(long, env = "AGENTD_JOB_RETENTION_DAYS", value_parser = clap::value_parser!(u32).range(1..))]
    pub job_retention_days: Option<u32>,

    /// The PDFium library (default: `$AGENTD_DATA_DIR/lib/libpdfium.so`,
    /// where scripts/fetch-pdfium.sh puts it).
    #[arg(long, env = "AGENTD_PDFIUM_PATH")]
    pub pdfium_path: Option<PathBuf>,

    /// PDFs with more pages are refused.
    #[arg(long, env = "AGENTD_MAX_PDF_PAGES", default_value_t = 2000)]
    pub max_pdf_pages: u32,

    /// PDF reader processes (`agentd pdf-reader`) run at most; each reads
    /// one PDF request at a time on one core.
    #[arg(long, env = "AGENTD_PDF_READERS", default_value_t = agentd_documents::PdfSettings::DEFAULT_READERS as u16, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub pdf_readers: u16,

    /// Seconds one PDF request may take; a reader past it is killed and the
    /// request fails.
    #[arg(long, env = "AGENTD_PDF_TIMEOUT_SECS", default_value_t = agentd_documents::PdfSettings::DEFAULT_TIMEOUT.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    pub pdf_timeout_secs: u64,

    /// Webhook deliveries sent at once by this process (0: it sends none;
    /// another process on the same database does).
    #[arg(long, env = "AGENTD_WEBHOOK_CONCURRENCY", default_value_t = 8)]
    pub webhook_concurrency: usize,

    /// Time limit of one webhook delivery attempt, answer included.
    #[arg(long, env = "AGENTD_WEBHOOK_TIMEOUT_SECS", default_value_t = 10)]
    pub webhook_timeout_secs: u64,

    /// Multiplies every delay of the webhook retry schedule (5 s, 5 min,
    /// 30 min, 2 h, 5 h, 10 h, 10 h). For tests only: 0.001 turns the 27 h
    /// schedule into about 100 s.
    #[arg(long, env = "AGENTD_WEBHOOK_RETRY_SCALE", default_value_t = 1.0, value_parser = parse_retry_scale)]
    pub webhook_retry_scale: f64,

    /// How often an idle dispatcher looks for due webhook deliveries.
    #[arg(long, env = "AGENTD_WEBHOOK_POLL_MS", default_value_t = 1000)]
    pub webhook_poll_ms: u64,

    /// Chromium for the web engines (default: `chromium`, then
    /// `chromium-browser`, on PATH). Without one, static pages still work.
    #[arg(long, env = "AGENTD_CHROMIUM_PATH")]
    pub chromium_path: Option<PathBuf>,

    /// Browser pages (contexts) open at once in this process.
    #[arg(long, env = "AGENTD_WEB_MAX_PAGES", default_value_t = 4)]
    pub web_max_pages: usize,

    /// Time limit of loading one web page (fetched or rendered).
    #[arg(long, env = "AGENTD_WEB_PAGE_TIMEOUT_SECS", default_value_t = 30)]
    pub web_page_timeout_secs: u64,

    /// Largest web page read, in bytes; a larger one fails the job.
    #[arg(long, env = "AGENTD_WEB_MAX_PAGE_BYTES", default_value_t = 10 * 1024 * 1024)]
    pub web_max_page_bytes: u64,

    /// User agent of page fetches and the browser; its first token is what
    /// robots.txt groups are matched against.
    #[arg(long, env = "AGENTD_WEB_USER_AGENT", default_value = agentd_web::DEFAULT_USER_AGENT)]
    pub web_user_agent: String,
}

fn parse_retry_scale(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(scale) if scale.is_finite() && scale >= 0.0 => Ok(scale),
        _ => Err("must be a number, 0 or more (1 is the standard schedule)".into()),
    }
}

/// An absolute http(s) URL without query or fragment; kept without its
/// trailing `/` so paths can be appended.
fn parse_public_url(text: &str) -> Result<String, String> {
    let url = reqwest::Url::parse(text.trim()).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err("must be an http:// or https:// URL with a host".into());
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err("must not carry a query, a fragment or credentials".into());
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// The public URL when none is configured: the listen address, with an
/// unspecified address (`0.0.0.0`, `::`) replaced by loopback.
pub fn default_public_url(addr: SocketAddr) -> String {
    let mut addr = addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr.ip() {
            std::net::IpAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::IpAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    format!("http://{addr}")
}

impl ServeConfig {
    pub fn worker_config(&self) -> crate::worker::WorkerConfig {
        crate::worker::WorkerConfig {
            workers: self.workers,
            lease: Duration::from_secs(self.job_lease_secs.max(3)),
            max_attempts: self.job_max_attempts.max(1),
            poll_interval: Duration::from_millis(self.job_poll_ms.max(10)),
            shutdown_grace: Duration::from_secs(self.shutdown_grace_secs),
        }
    }

    pub fn sync_timeout(&self) -> Duration {
        Duration::from_secs(self.sync_timeout_secs)
    }

    pub fn connection_limits(&self) -> crate::server::ConnectionLimits {
        let seconds = |secs: u64| Duration::from_secs(secs.max(1));
        crate::server::ConnectionLimits {
            header_read_timeout: seconds(self.header_read_timeout_secs),
            body_read_timeout: seconds(self.body_read_timeout_secs),
            idle_timeout: seconds(self.idle_timeout_secs),
            max_connections: self.max_connections.max(1),
        }
    }

    pub fn pdfium_path(&self) -> PathBuf {
        self.pdfium_path
            .clone()
            .unwrap_or_else(|| self.data_dir.join("lib").join("libpdfium.so"))
    }

    /// PDFs are read by this binary re-executed as `agentd pdf-reader`.
    pub fn pdf_settings(&self) -> std::io::Result<agentd_documents::PdfSettings> {
        let command = agentd_documents::ReaderCommand::this_program(&[crate::cli::PDF_READER])?;
        Ok(agentd_documents::PdfSettings {
            max_pages: self.max_pdf_pages,
            readers: usize::from(self.pdf_readers),
            timeout: Duration::from_secs(self.pdf_timeout_secs),
            ..agentd_documents::PdfSettings::new(self.pdfium_path(), command)
        })
    }

    pub fn provider_timeout(&self) -> Duration {
        Duration::from_secs(self.provider_timeout_secs)
    }

    pub fn fetch_limits(&self) -> crate::files::FetchLimits {
        crate::files::FetchLimits {
            max_concurrent: self.max_concurrent_fetches.max(1),
            max_bytes_per_job: self
                .max_fetch_bytes
                .unwrap_or(self.max_request_bytes as u64),
        }
    }

    pub fn webhooks(&self) -> crate::webhooks::WebhookConfig {
        crate::webhooks::WebhookConfig {
            concurrency: self.webhook_concurrency,
            timeout: Duration::from_secs(self.webhook_timeout_secs.max(1)),
            schedule: agentd_domain::webhook::RetrySchedule {
                scale: self.webhook_retry_scale,
            },
            poll_interval: Duration::from_millis(self.webhook_poll_ms.max(10)),
            policy: self.allow_private_urls.clone(),
        }
    }

    pub fn web(&self) -> agentd_web::WebSettings {
        agentd_web::WebSettings {
            policy: self.allow_private_urls.clone(),
            chromium_path: self.chromium_path.clone(),
            max_pages: self.web_max_pages.max(1),
            page_timeout: Duration::from_secs(self.web_page_timeout_secs.max(1)),
            max_page_bytes: self.web_max_page_bytes.max(1),
            user_agent: self.web_user_agent.clone(),
        }
    }

    pub fn file_sweep(&self) -> crate::file_sweep::SweepConfig {
        crate::file_sweep::SweepConfig {
            interval: Duration::from_secs(self.file_sweep_secs),
            grace: Duration::from_secs(self.file_sweep_grace_secs),
            job_retention: self
                .job_retention_days
                .map(|days| Duration::from_secs(u64::from(days) * 24 * 3600)),
        }
    }
}
