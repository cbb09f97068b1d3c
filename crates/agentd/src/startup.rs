//! Wiring: storage, providers, engines and the HTTP server. `build` binds
//! the listener, so tests can ask for port 0 and read the port back.

use std::net::SocketAddr;
use std::sync::Arc;

use agentd_documents::Documents;
use agentd_engines::EngineRegistry;
use agentd_providers::anthropic::{self, AnthropicProvider};
use agentd_providers::gemini::{self, GeminiProvider};
use agentd_providers::limits::Limits;
use agentd_providers::openai::{self, OpenAiProvider};
use agentd_providers::{
    HttpSettings, ModelCatalog, ModelProvider, ProviderRegistry, RetryPolicy, RetryingProvider,
};
use agentd_storage::Storage;
use anyhow::Context as _;
use tokio::net::TcpListener;

use crate::config::ServeConfig;
use crate::files::{FileStore, Objects};
use crate::local_model;
use crate::metrics::JobCounts;
use crate::models_file::ModelsFile;
use crate::public_url::PublicUrl;
use crate::references::JobReferenceStore;
use crate::shared_limits::SharedLimitedProvider;
use crate::webhooks::Dispatcher;
use crate::worker::{JobExecutor, JobSignals, WorkerPool};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio_util::sync::CancellationToken;

pub struct AppState {
    pub storage: Arc<dyn Storage>,
    pub engines: EngineRegistry,
    pub models: Arc<ProviderRegistry>,
    pub files: FileStore,
    pub documents: Documents,
    pub executor: Arc<JobExecutor>,
    pub signals: Arc<JobSignals>,
    pub config: ServeConfig,
    /// This process's metrics; `None` when another recorder was installed.
    pub metrics: Option<PrometheusHandle>,
    /// The database gauges of `/metrics`.
    pub job_counts: JobCounts,
    /// Saves and serves what jobs keep for their callers.
    pub references: JobReferenceStore,
    /// The base of returned links.
    public_url: PublicUrl,
}

pub struct Application {
    listener: TcpListener,
    state: Arc<AppState>,
}

/// The default model when no local model is loaded and none is configured.
const HOSTED_DEFAULT_MODEL: &str = "gpt-4.1-2025-04-14";

/// Builds a provider from its name, base URL, key and HTTP limits.
type ProviderFactory = fn(&str, &str, Option<String>, HttpSettings) -> Arc<dyn ModelProvider>;

/// A hosted provider: name, key, base URL, default base URL, factory.
type HostedProvider<'a> = (
    &'static str,
    &'a Option<String>,
    &'a Option<String>,
    &'static str,
    ProviderFactory,
);

/// The model table and the providers whose credentials or endpoints are
/// configured, each behind its limits (shared through `storage` by every
/// process on the database) and retries.
pub async fn provider_registry(
    config: &ServeConfig,
    storage: &Arc<dyn Storage>,
) -> anyhow::Result<ProviderRegistry> {
    let file = match &config.models_file {
        Some(path) => ModelsFile::load(path)?,
        None => ModelsFile::default(),
    };
    let mut catalog = ModelCatalog::builtin();
    file.apply_to(&mut catalog)?;
    let mut registry = ProviderRegistry::new(
        catalog,
        config
            .default_model
            .as_deref()
            .unwrap_or(HOSTED_DEFAULT_MODEL),
    );
    let retry = RetryPolicy {
        max_retries: config.provider_max_retries,
        ..RetryPolicy::default()
    };
    let mut register = |provider: Arc<dyn ModelProvider>, limits: Limits| {
        let limited: Arc<dyn ModelProvider> = if limits.is_unlimited() {
            provider
        } else {
            Arc::new(SharedLimitedProvider::new(
                provider,
                limits,
                Arc::clone(storage),
            ))
        };
        registry.register(Arc::new(RetryingProvider::new(limited, retry)));
    };
    let http = HttpSettings {
        timeout: config.provider_timeout(),
        max_response_bytes: config.provider_max_response_bytes,
    };
    let hosted: [HostedProvider; 3] = [
        (
            "openai",
            &config.openai_api_key,
            &config.openai_base_url,
            openai::DEFAULT_BASE_URL,
            |n, b, k, t| Arc::new(OpenAiProvider::new(n, b, k, t)),
        ),
        (
            "anthropic",
            &config.anthropic_api_key,
            &config.anthropic_base_url,
            anthropic::DEFAULT_BASE_URL,
            |n, b, k, t| Arc::new(AnthropicProvider::new(n, b, k, t)),
        ),
        (
            "gemini",
            &config.gemini_api_key,
            &config.gemini_base_url,
            gemini::DEFAULT_BASE_URL,
            |n, b, k, t| Arc::new(GeminiProvider::new(n, b, k, t)),
        ),
    ];
    for (name, key, base_url, default_base_url, build) in hosted {
        // A custom base URL may point at a server that needs no key (vLLM, Ollama).
        if key.is_some() || base_url.is_some() {
            let base_url = base_url.as_deref().unwrap_or(default_base_url);
            register(build(name, base_url, key.clone(), http), file.limits(name));
        }
    }
    for endpoint in &file.endpoints {
        let key = match &endpoint.api_key_env {
            Some(variable) => Some(std::env::var(variable).with_context(|| {
                format!(
                    "endpoint '{}' reads its key from {variable}, which is not set",
                    endpoint.name
                )
            })?),
            None => None,
        };
        let provider = OpenAiProvider::new(&endpoint.name, &endpoint.base_url, key, http);
        let mut limits = file.limits(&endpoint.name);
        limits.max_concurrency = endpoint.max_concurrency.or(limits.max_concurrency);
        limits.requests_per_minute = endpoint.requests_per_minute.or(limits.requests_per_minute);
        register(Arc::new(provider), limits);
    }
    for entry in &file.local_models {
        let (spec, provider) = local_model::declared_model(config, entry).await?;
        registry.register_model(spec, provider);
    }
    if let Some((spec, provider)) = local_model::default_model(config).await? {
        let id = spec.id.clone();
        registry.register_model(spec, provider);
        if config.default_model.is_none() {
            registry.set_default_model(&id);
        }
        if config.local_fallback {
            registry.set_fallback_model(Some(id));
        }
    }
    Ok(registry)
}

impl AppState {
    /// Opens storage (bootstrapping tenancy), providers, engines and files.
    pub async fn build(config: ServeConfig) -> anyhow::Result<Arc<Self>> {
        let options = agentd_storage::ConnectOptions {
            max_connections: config.db_max_connections,
        };
        let storage = agentd_storage::connect_with(&config.database_url, &options)
            .await
            .with_context(|| {
                format!(
                    "opening {}",
                    agentd_storage::url_without_password(&config.database_url)
                )
            })?;
        crate::admin::bootstrap(
            storage.as_ref(),
            config.bootstrap_org_id.as_deref(),
            config.bootstrap_api_key.as_deref(),
        )
        .await?;
        let objects = Objects::open(
            config.object_store_url.as_deref(),
            &config.data_dir.join("files"),
        )?;
        let files = FileStore::new(
            objects,
            config.max_request_bytes,
            config.allow_private_urls.clone(),
        )
        .context("building the URL fetch client")?
        .with_fetch_limits(config.fetch_limits());
        let engines = EngineRegistry::builtin();
        let models = Arc::new(provider_registry(&config, &storage).await?);
        let documents = Documents::new(
            config
                .pdf_settings()
                .context("finding this program, which reads PDFs as `agentd pdf-reader`")?,
        );
        let web = Arc::new(
            agentd_web::Web::from_settings(config.web()).context("setting up the web engines")?,
        );
        let public_url = PublicUrl::new(config.public_url.clone(), config.addr);
        let references =
            JobReferenceStore::new(Arc::clone(&storage), files.clone(), public_url.clone());
        let executor = Arc::new(JobExecutor::new(
            Arc::clone(&storage),
            engines.clone(),
            Arc::clone(&models),
            files.clone(),
            documents.clone(),
            references.clone(),
            web,
        ));
        Ok(Arc::new(Self {
            storage: Arc::clone(&storage),
            engines,
            models,
            files,
            documents,
            executor,
            signals: Arc::new(JobSignals::default()),
            metrics: crate::metrics::recorder(),
            job_counts: JobCounts::new(Arc::clone(&storage)),
            references,
            public_url,
            config,
        }))
    }

    /// The base of links the server returns, without a trailing `/`.
    pub fn public_url(&self) -> &str {
        self.public_url.get()
    }

    /// Starts the worker pool; it stops claiming when `shutdown` fires.
    pub fn start_workers(&self, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        WorkerPool::new(
            Arc::clone(&self.storage),
            Arc::clone(&self.executor),
            Arc::clone(&self.signals),
            self.config.worker_config(),
        )
        .spawn(shutdown)
    }

    /// Relays other processes' job notifications (PostgreSQL) to this
    /// one's workers and waiters until `shutdown`.
    pub fn start_notices(
        &self,
        shutdown: CancellationToken,
    ) -> Option<tokio::task::JoinHandle<()>> {
        crate::worker::notices::spawn(self.storage.as_ref(), Arc::clone(&self.signals), shutdown)
    }

    /// Starts sending webhook deliveries (unless `AGENTD_WEBHOOK_CONCURRENCY`
    /// is 0); it stops when `shutdown` fires.
    pub fn start_webhooks(
        &self,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
        let dispatcher = Dispatcher::new(Arc::clone(&self.storage), self.config.webhooks())
            .context("building the webhook HTTP client")?
            .with_outcome_hook(Arc::new(|outcome| {
                crate::metrics::record_webhook_delivery(outcome.as_str())
            }));
        Ok(dispatcher.spawn(shutdown))
    }

    /// Runs workers only, without the HTTP API (`agentd worker`); with
    /// `AGENTD_METRICS_ADDR`, serves the probes and metrics there.
    pub async fn run_workers_until_stopped(self: &Arc<Self>) -> anyhow::Result<()> {
        let shutdown = CancellationToken::new();
        let monitoring = self.serve_monitoring(shutdown.clone()).await?;
        // Stopped after the workers: jobs still running hear of cancels.
        let notices_stop = CancellationToken::new();
        let notices = self.start_notices(notices_stop.clone());
        let workers = self.start_workers(shutdown.clone());
        let webhooks = self.start_webhooks(shutdown.clone())?;
        println!("agentd worker running ({} workers)", self.config.workers);
        shutdown_signal().await;
        shutdown.cancel();
        let _ = workers.await;
        notices_stop.cancel();
        if let Some(webhooks) = webhooks {
            let _ = webhooks.await;
        }
        if let Some(monitoring) = monitoring {
            let _ = monitoring.await;
        }
        if let Some(notices) = notices {
            let _ = notices.await;
        }
        Ok(())
    }

    /// Binds `AGENTD_METRICS_ADDR`, when set, and serves `/metrics`,
    /// `/healthz` and `/readyz` there until `shutdown`.
    async fn serve_monitoring(
        self: &Arc<Self>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
        let Some(addr) = self.config.metrics_addr else {
            return Ok(None);
        };
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding AGENTD_METRICS_ADDR {addr}"))?;
        let bound = listener.local_addr().unwrap_or(addr);
        // Scripts and tests wait for this line to learn the port.
        println!("agentd metrics listening on http://{bound}");
        let router = crate::api::monitoring_router(Arc::clone(self));
        let limits = self.config.connection_limits();
        Ok(Some(tokio::spawn(crate::server::serve(
            listener,
            router,
            limits,
            async move { shutdown.cancelled().await },
        ))))
    }
}

impl Application {
    pub async fn build(config: ServeConfig) -> anyhow::Result<Self> {
        let addr = config.addr;
        let state = AppState::build(config).await?;
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        if let Ok(bound) = listener.local_addr() {
            // Unless AGENTD_PUBLIC_URL set it, links name the bound port.
            state.public_url.bound(bound);
        }
        Ok(Self { listener, state })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn state(&self) -> Arc<AppState> {
        Arc::clone(&self.state)
    }

    /// Serves the API and runs workers until SIGTERM or Ctrl-C, then lets
    /// requests in flight and jobs already claimed finish; queued jobs stay
    /// queued for the other processes (or the next start). Jobs of a process
    /// killed before that are retried once their leases expire.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let addr = self.local_addr();
        let shutdown = CancellationToken::new();
        // Stopped after the workers: jobs still running hear of cancels.
        let notices_stop = CancellationToken::new();
        let notices = self.state.start_notices(notices_stop.clone());
        let workers = self.state.start_workers(shutdown.clone());
        let webhooks = self.state.start_webhooks(shutdown.clone())?;
        let sweeper = crate::file_sweep::spawn(
            Arc::clone(&self.state.storage),
            self.state.files.clone(),
            self.state.config.file_sweep(),
            shutdown.clone(),
        );
        // Before the line below: once it is printed, every listener is up.
        let monitoring = self.state.serve_monitoring(shutdown.clone()).await?;
        // Scripts and tests wait for this line to learn the port.
        println!("agentd listening on http://{addr}");
        tracing::info!(%addr, "listening");
        let open_files = crate::server::raise_open_files_limit();
        let limits = self.state.config.connection_limits().fitted_to(open_files);
        tracing::info!(?open_files, ?limits, "connection limits");
        let stop = shutdown.clone();
        crate::server::serve(
            self.listener,
            crate::api::router(self.state),
            limits,
            async move {
                shutdown_signal().await;
                stop.cancel();
            },
        )
        .await;
        shutdown.cancel();
        let _ = workers.await;
        notices_stop.cancel();
        if let Some(monitoring) = monitoring {
            let _ = monitoring.await;
        }
        if let Some(sweeper) = sweeper {
            let _ = sweeper.await;
        }
        if let Some(webhooks) = webhooks {
            let _ = webhooks.await;
        }
        if let Some(notices) = notices {
            let _ = notices.await;
        }
        tracing::info!("stopped");
        Ok(())
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down");
}
