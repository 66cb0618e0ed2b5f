//! Starting and stopping the server.

use std::sync::Arc;

use anyhow::Context;
use mishkah_core::VersionPolicy;

use crate::app::router;
use crate::auth::{AuthMode, Authenticator};
use crate::config::ServeConfig;
use crate::datadir::DataDir;
use crate::engine::{Engine, EngineConfig};
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::state::AppState;
use crate::storage::OpenOptions;

/// `--cors-origins`: none for `*` (any origin), else each as a header value.
fn cors_origins(list: &[String]) -> anyhow::Result<Vec<axum::http::HeaderValue>> {
    let list: Vec<&str> = list.iter().map(|o| o.trim()).filter(|o| !o.is_empty()).collect();
    if list.is_empty() || list.contains(&"*") {
        return Ok(Vec::new());
    }
    list.iter().map(|o| o.parse().with_context(|| format!("--cors-origins: `{o}` is not an origin"))).collect()
}

/// The authenticator `config` asks for, or why it cannot be built (checked before anything opens).
fn authenticator(config: &ServeConfig, keys: crate::keys::KeyStore) -> anyhow::Result<Authenticator> {
    let mut auth = Authenticator::new(
        config.auth,
        config.jwt_secret.as_deref(),
        config.jwt_issuer.as_deref(),
        config.jwt_audience.as_deref(),
    );
    if config.require_exp {
        auth = auth.requiring_exp();
    }
    if config.jwt_secret.as_deref().is_some_and(|s| !s.is_empty() && s.len() < 32) {
        tracing::warn!("--jwt-secret is shorter than 32 bytes: tokens signed with it can be forged by guessing it");
    }
    if let Some(path) = &config.jwt_public_key {
        let pem = std::fs::read(path).with_context(|| format!("cannot read --jwt-public-key {}", path.display()))?;
        auth = auth.with_public_key(&pem).map_err(|e| anyhow::anyhow!("--jwt-public-key {}: {e}", path.display()))?;
    }
    let has_keys = keys.any();
    let auth = auth.with_keys(keys);
    let can_verify_tokens =
        config.jwt_secret.as_deref().is_some_and(|s| !s.is_empty()) || config.jwt_public_key.is_some();
    match config.auth {
        AuthMode::Off => tracing::warn!(
            "AUTH IS OFF: anyone who can reach this port can read and write every branch (as the original). \
             Use --auth required with --jwt-secret on any network you do not fully trust."
        ),
        AuthMode::Required if !can_verify_tokens && !has_keys => anyhow::bail!(
            "--auth required needs --jwt-secret (MISHKAH_JWT_SECRET), --jwt-public-key or API keys \
             (mishkah keys create) to verify credentials with"
        ),
        AuthMode::Required => tracing::info!("auth required: every request and session needs a token or an API key"),
    }
    Ok(auth)
}

/// How the listener admits sockets (checked before anything opens: a bad `--trusted-proxies`
/// stops the server first).
fn socket_limits(config: &ServeConfig) -> anyhow::Result<crate::listener::SocketLimits> {
    Ok(crate::listener::SocketLimits {
        gate: crate::limits::Gate::new(
            crate::listener::socket_budget(config.max_connections),
            config.max_sockets_per_ip,
        ),
        header_timeout: std::time::Duration::from_secs(config.header_timeout.max(1)),
        body_timeout: std::time::Duration::from_secs(config.body_timeout.max(1)),
        proxies: crate::proxies::TrustedProxies::parse(&config.trusted_proxies).map_err(anyhow::Error::msg)?,
    })
}

/// How long open connections get to finish after a shutdown signal.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// Runs until `shutdown` resolves, then drains the writers.
pub async fn serve(
    config: ServeConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let mut data =
        DataDir::load(&config.data).with_context(|| format!("cannot use data directory {}", config.data.display()))?;
    // A PostgreSQL client blocks: it is made (and pinged) off the async runtime, and the keys
    // it keeps are read there too.
    let (store, dir) = (config.store.clone(), config.data.clone());
    let (backend, keys, docs) = tokio::task::spawn_blocking(move || {
        let backend = crate::storage::backend(store.as_deref())?;
        let docs = backend.shared_docs(&dir);
        let keys = crate::keys::KeyStore::open(docs.clone());
        Ok::<_, crate::storage::StorageError>((backend, keys, docs))
    })
    .await??;
    let auth = authenticator(&config, keys)?;
    let sockets = socket_limits(&config)?;
    // Held until `serve` returns, after the writers have drained.
    let _lock = crate::datadir::DirLock::acquire(&config.data)?;
    if let Some(path) = &config.rules {
        data.use_rules(path).with_context(|| format!("cannot use the rules file {}", path.display()))?;
    }
    if data.rules.is_open() {
        if config.auth == AuthMode::Required {
            tracing::warn!(
                "no security rules (security/rules.json or --rules): every identity may read and write everything"
            );
        }
    } else {
        tracing::info!(rules = %data.rules_path().display(), "security rules loaded");
        if config.auth == AuthMode::Off {
            tracing::warn!(
                rules = %data.rules_path().display(),
                "security rules are in force with --auth off: every request is anonymous, without a role, so \
                 writes the rules give to roles will be refused (403). Serve with --auth required, or without the rules"
            );
        }
    }
    let server_id = format!("mishkah-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let metrics = Arc::new(Metrics::default());
    let hub = Hub::new(server_id.clone(), metrics.clone());
    let policy =
        VersionPolicy { required_tables: config.versioned_tables.iter().filter(|t| !t.is_empty()).cloned().collect() };
    let engine = Engine::start(
        EngineConfig {
            backend,
            store: OpenOptions {
                durability: config.durability,
                max_pages: config.max_db_pages,
                max_record_bytes: config.max_record_bytes.max(1024),
                ..OpenOptions::default()
            },
            policy,
            missing_fields: config.missing_fields,
            values: config.validation,
            max_open_modules: config.max_open_modules,
            idle_close: std::time::Duration::from_secs(config.idle_close.max(1)),
            max_new_branches: config.max_new_branches,
            ..EngineConfig::new(data)
        },
        hub,
        metrics.clone(),
    );

    for (branch, module, error) in engine.open_configured().await {
        // A configuration that would misread the rules stops the server; a module whose
        // database cannot open, or whose stored rows the schema would reinterpret, is reported
        // and answers 503 while the others serve.
        if matches!(error.code(), "invalid-index" | "invalid-rules") {
            anyhow::bail!("branch `{branch}` module `{module}`: {error}");
        }
        tracing::warn!(%branch, %module, code = error.code(), "module unavailable: {error}");
    }

    let webhooks = crate::webhooks::Webhooks::start(
        engine.clone(),
        docs.clone(),
        metrics.clone(),
        server_id.clone(),
        crate::webhooks::Timing {
            backoff: std::time::Duration::from_millis(config.webhook_backoff_ms.max(1)),
            timeout: std::time::Duration::from_millis(config.webhook_timeout_ms.max(1)),
        },
    );
    let backup = match &config.backup_to {
        None => None,
        Some(to) => Some(crate::backup::shipping::Shipping::start(
            engine.clone(),
            metrics.clone(),
            crate::backup::shipping::Schedule {
                target: crate::backup::Target::open(to, true)?,
                every: config.backup_every.max(std::time::Duration::from_secs(1)),
                keep: config.backup_keep.max(1),
                ship: std::time::Duration::from_millis(config.backup_ship_ms.max(10)),
            },
            docs.clone(),
            &server_id,
        )),
    };
    let static_dir =
        config.static_dir.clone().or_else(|| Some("static".into()).filter(|p: &std::path::PathBuf| p.is_dir()));
    let metrics_for_listener = metrics.clone();
    let state = AppState {
        engine: engine.clone(),
        metrics,
        server_id: server_id.clone(),
        static_dir: static_dir.map(Arc::new),
        max_page: config.max_page.max(1),
        auth: Arc::new(auth),
        limits: Arc::new(crate::limits::Limits::new(config.rate_limit, config.max_connections_per_ip)),
        cors_origins: Arc::new(cors_origins(&config.cors_origins)?),
        snapshots: Arc::new(tokio::sync::Semaphore::new(config.max_snapshots.max(1))),
        send_timeout: std::time::Duration::from_secs(config.send_timeout.max(1)),
        min_send_rate: config.min_send_rate,
        ping_interval: std::time::Duration::from_secs(config.ping_interval.max(1)),
        webhooks,
        backup: backup.clone(),
        docs,
    };
    let limits = state.limits.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
        loop {
            every.tick().await;
            limits.forget_idle();
        }
    });
    let addr = format!("{}:{}", config.host, config.port);
    let listener = tokio::net::TcpListener::bind(&addr).await.with_context(|| format!("cannot listen on {addr}"))?;
    tracing::info!(addr = %listener.local_addr()?, %server_id, data = %config.data.display(), "mishkah listening");
    // WebSocket clients may never hang up: after the signal they get a few seconds, then the
    // server stops anyway (every acknowledged write is already committed; the writers drain below).
    crate::listener::run(listener, router(state), sockets, metrics_for_listener, shutdown, SHUTDOWN_GRACE).await;
    if let Some(backup) = &backup {
        // What committed since the last round goes out before the process does.
        backup.round().await;
    }
    engine.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}
