//! The herd server: osquery TLS API, Fleet-compatible REST API, background workers.
//!
//! The `herd` binary (crate `herd`) parses the command line and calls [`serve_with`]; everything else lives in
//! this library so the pieces are testable on their own. The library knows nothing of the agent: the binary
//! composes `herd serve --with-agent` by handing [`serve_with`] a [`Companion`].

pub mod access;
pub mod activity;
pub mod admission;
pub mod agent_options;
pub mod api;
pub mod app;
pub mod auth;
pub mod bootstrap;
pub mod cli;
pub mod connections;
pub mod console;
pub mod drain;
pub mod error;
pub mod extract;
pub mod files;
pub mod host_cache;
pub mod html;
pub mod metrics;
pub mod outbound;
pub mod paging;
pub mod rate_limit;
pub mod result_log;
pub mod secrets;
pub mod seen_times;
pub mod settings;
pub mod state;
pub mod tls;
pub mod webhooks;
pub mod wire;
pub mod workers;

use anyhow::{Context, Result};
use bootstrap::{AdminPassword, BootstrapOptions};
use cli::ServeArgs;
use herd_store::Store;
use state::{AppState, SharedState};
use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How long in-flight requests may take to finish after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

pub fn database_url(args: &ServeArgs) -> String {
    match &args.database_url {
        Some(url) => url.clone(),
        None => format!("sqlite://{}", args.data_dir.join("herd.db").display()),
    }
}

/// How long shutdown waits for a [`Companion`] to stop before abandoning it: shutdown never waits on a
/// companion's work (a script the local agent runs, say) beyond this.
const COMPANION_GRACE: Duration = Duration::from_secs(10);

/// What a [`Companion`] learns of the server it runs beside, before the server accepts its first request.
#[derive(Debug, Clone)]
pub struct Serving {
    /// The URL this server answers at on this machine.
    pub url: String,
    /// The (canonical) data directory.
    pub data_dir: PathBuf,
    /// The certificate the server presents, to pin; None when it serves plain HTTP.
    pub tls_cert: Option<PathBuf>,
    /// The file holding the global enroll secret; None when no global secret is left.
    pub enroll_secret_file: Option<PathBuf>,
}

/// A task the server runs beside itself for its whole life (the local agent of `herd serve --with-agent`).
pub type CompanionTask = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A future that completes when the server begins to shut down.
pub type ShutdownSignal = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Prepares a companion from what it learns of the server. It runs after the database, certificate and enroll
/// secret are ready and before the server serves: an `Err` stops the start, so a companion that cannot work
/// never leaves a half-started server. It returns a line for the start banner and the task to run.
pub type Companion = Box<dyn FnOnce(&Serving, ShutdownSignal) -> Result<(String, CompanionTask)> + Send>;

/// Runs the server until SIGTERM or Ctrl-C, then finishes in-flight requests and flushes batched state.
pub async fn serve(args: ServeArgs) -> Result<()> {
    serve_with(args, None).await
}

/// [`serve`], with a [`Companion`] running beside the server.
pub async fn serve_with(args: ServeArgs, companion: Option<Companion>) -> Result<()> {
    files::create_private_dir(&args.data_dir)?;
    let data_dir = std::fs::canonicalize(&args.data_dir).context("resolving the data directory")?;
    let store = Store::open(&database_url(&args)).await.context("opening the database")?;

    let listener =
        std::net::TcpListener::bind(&args.listen).with_context(|| format!("listening on {}", args.listen))?;
    let local = listener.local_addr()?;
    let scheme = if args.plain_http { "http" } else { "https" };
    let url_host = if local.ip().is_unspecified() { "localhost".to_string() } else { host_for_url(&local) };
    let url = format!("{scheme}://{url_host}:{}", local.port());
    let server_url = args.server_url.clone().unwrap_or_else(|| url.clone());

    let boot = bootstrap::run(
        &store,
        &data_dir,
        BootstrapOptions {
            admin_email: args.bootstrap_admin_email.clone(),
            admin_password: args.bootstrap_admin_password.clone(),
            enroll_secret: args.bootstrap_enroll_secret.clone(),
            server_url: server_url.clone(),
        },
    )
    .await?;

    let result_log_options = result_log::ResultLogOptions {
        max_size: args.result_log_max_size,
        keep: args.result_log_keep,
        host_budget: args.result_log_host_budget,
    };
    let result_log = result_log::ResultLog::open_with(&data_dir.join("osquery-results.log"), result_log_options)
        .context("opening the result log")?;
    let mut app_state = AppState::new(store.clone(), result_log);
    app_state.outbound = outbound::OutboundPolicy::new(args.webhook_allow_cidr.clone());
    app_state.enrollment_gate = admission::EnrollmentGate::new(args.enrollment_lag_limit.0);
    if let Some(path) = &args.webhook_ca_cert {
        // Read now, so a bad file stops the start rather than every delivery.
        crate::webhooks::http_client(&app_state.outbound, Some(path))
            .with_context(|| format!("--webhook-ca-cert {}", path.display()))?;
        app_state.webhook_ca_cert = Some(path.clone());
    }
    let state: SharedState = Arc::new(app_state);
    state.settings.reload(&store).await.context("loading settings")?;
    let warming = std::time::Instant::now();
    let warmed = host_cache::warm(&state).await.context("loading hosts into the cache")?;
    tracing::info!(hosts = warmed, ms = warming.elapsed().as_millis() as u64, "host cache warmed");
    let app = api::router(state.clone()).into_make_service_with_connect_info::<SocketAddr>();

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let mut workers = workers::spawn_all(&state, &shutdown_rx);
    workers.push(tokio::spawn(admission::run_probe(state.clone(), shutdown_rx.clone())));
    let handle = axum_server::Handle::new();
    let tls_files = if args.plain_http {
        None
    } else {
        Some(tls::ensure_files(&data_dir, args.tls_cert.as_deref(), args.tls_key.as_deref())?)
    };
    let secret_path = data_dir.join("enroll-secret");
    let serving = Serving {
        url: url.clone(),
        data_dir: data_dir.clone(),
        tls_cert: tls_files.as_ref().map(|tls| tls.cert.clone()),
        enroll_secret_file: boot.enroll_secret.as_ref().map(|_| secret_path),
    };
    let companion = match companion {
        Some(prepare) => {
            let mut stop = shutdown_rx.clone();
            let stopped: ShutdownSignal = Box::pin(async move {
                let _ = stop.changed().await;
            });
            Some(prepare(&serving, stopped)?)
        }
        None => None,
    };
    let companion_note = companion.as_ref().map(|(note, _)| note.as_str());
    print_banner(&args, &serving, &server_url, &store, &boot, tls_files.as_ref(), companion_note);

    let fd_limit = connections::raise_fd_limit();
    let limits = connections::Limits {
        header_read: args.header_read_timeout,
        idle: args.idle_timeout,
        body_read: args.request_body_timeout,
        max: connections::connection_limit(args.max_connections, fd_limit),
    };
    tracing::info!(max_connections = limits.max, fd_limit, "connection limit");
    let guard = connections::Guard::new(limits, state.connections.clone());
    let server = match &tls_files {
        Some(files) => {
            let config = axum_server::tls_rustls::RustlsConfig::from_config(tls::server_config(files)?);
            let handshake_timeout = args.tls_handshake_timeout;
            let server = axum_server::from_tcp_rustls(listener, config)?
                .map(|tls| tls.handshake_timeout(handshake_timeout).acceptor(guard))
                .handle(handle.clone());
            tokio::spawn(async move { server.serve(app).await })
        }
        None => {
            let server = axum_server::from_tcp(listener)?.acceptor(guard).handle(handle.clone());
            tokio::spawn(async move { server.serve(app).await })
        }
    };
    tracing::info!(%url, database = store.backend().name(), "herd started");

    let companion = companion.map(|(_, task)| tokio::spawn(task));

    shutdown_signal().await;
    tracing::info!("shutting down: finishing in-flight requests");
    // Workers and the companion stop first; the seen times they leave are flushed at the end.
    let _ = shutdown_tx.send(true);
    if let Some(mut companion) = companion
        && tokio::time::timeout(COMPANION_GRACE, &mut companion).await.is_err()
    {
        tracing::warn!(grace_s = COMPANION_GRACE.as_secs(), "the companion did not stop in time; abandoning it");
        companion.abort();
    }
    handle.graceful_shutdown(Some(SHUTDOWN_GRACE));
    server.await.context("server task")?.context("serving")?;
    for worker in workers {
        let _ = worker.await;
    }
    app::seen::flush(&state).await.context("flushing last-seen times")?;
    store.close().await;
    tracing::info!("herd stopped");
    Ok(())
}

fn host_for_url(addr: &SocketAddr) -> String {
    match addr {
        SocketAddr::V4(v4) => v4.ip().to_string(),
        SocketAddr::V6(v6) => format!("[{}]", v6.ip()),
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
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}

fn print_banner(
    args: &ServeArgs,
    serving: &Serving,
    server_url: &str,
    store: &Store,
    boot: &bootstrap::Bootstrapped,
    tls: Option<&tls::TlsFiles>,
    companion_note: Option<&str>,
) {
    let (data_dir, url) = (serving.data_dir.as_path(), serving.url.as_str());
    let mut out = String::new();
    let mut line = |text: String| {
        out.push_str(&text);
        out.push('\n');
    };
    line(format!("herd {} is listening on {url}", env!("CARGO_PKG_VERSION")));
    line(format!("  admin console:   {}/console", url.trim_end_matches('/')));
    line(format!(
        "  database:        {}",
        match store.backend() {
            herd_store::Backend::Sqlite => format!("sqlite ({})", data_dir.join("herd.db").display()),
            herd_store::Backend::Postgres => "postgres".to_string(),
        }
    ));
    line(format!("  admin login:     {}", boot.admin_email));
    line(format!(
        "  admin password:  {}",
        match &boot.admin_password {
            AdminPassword::Generated(password) => format!("{password}   (generated now and shown only this once)"),
            AdminPassword::FromEnvironment => "from HERD_BOOTSTRAP_ADMIN_PASSWORD".to_string(),
            AdminPassword::Unchanged => "unchanged (forgot it? run `herd reset-admin-password EMAIL`)".to_string(),
        }
    ));
    let secret_path = data_dir.join("enroll-secret");
    match &boot.enroll_secret {
        Some(secret) => line(format!("  enroll secret:   {secret}   (also in {})", secret_path.display())),
        None => line("  enroll secret:   none (add one with POST /api/v1/fleet/spec/enroll_secret)".to_string()),
    }
    if let Some(tls) = tls {
        let how = if tls.generated { ", self-signed, generated now" } else { "" };
        line(format!("  TLS certificate: {}{how}", tls.cert.display()));
    }
    line(String::new());
    let tls_hostname = server_url.split("://").nth(1).unwrap_or(server_url).trim_end_matches('/');
    line("Enroll a host running osquery:".to_string());
    let mut flags = vec![format!("--tls_hostname={tls_hostname}")];
    if let Some(tls) = tls {
        let cert = std::fs::canonicalize(&tls.cert).unwrap_or_else(|_| tls.cert.clone());
        flags.push(format!("--tls_server_certs={}", cert.display()));
    }
    flags.extend([
        format!("--enroll_secret_path={}", secret_path.display()),
        "--host_identifier=uuid".into(),
        "--enroll_tls_endpoint=/api/osquery/enroll".into(),
        "--config_plugin=tls".into(),
        "--config_tls_endpoint=/api/osquery/config".into(),
        "--config_refresh=60".into(),
        "--disable_distributed=false".into(),
        "--distributed_plugin=tls".into(),
        "--distributed_interval=10".into(),
        "--distributed_tls_max_attempts=3".into(),
        "--distributed_tls_read_endpoint=/api/osquery/distributed/read".into(),
        "--distributed_tls_write_endpoint=/api/osquery/distributed/write".into(),
        "--logger_plugin=tls".into(),
        "--logger_tls_endpoint=/api/osquery/log".into(),
        "--logger_tls_period=10".into(),
    ]);
    line(format!("  sudo osqueryd \\\n    {}", flags.join(" \\\n    ")));
    if let Some(note) = companion_note {
        line(format!("\n{note}"));
    }
    if args.plain_http {
        line("\nServing plain HTTP: put a TLS-terminating proxy in front (osquery only talks TLS).".to_string());
    }
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(out.as_bytes());
    let _ = stdout.flush();
}

/// `herd reset-admin-password EMAIL`: sets a new generated password for a user and prints it.
pub async fn reset_password(args: &ServeArgs, email: &str) -> Result<()> {
    let store = Store::open(&database_url(args)).await.context("opening the database")?;
    let mut user = store.user_by_email(email).await?.with_context(|| format!("no user with email {email}"))?;
    let password = secrets::generate_password();
    user.password_hash = secrets::hash_password(&password).map_err(|e| anyhow::anyhow!("hashing: {e}"))?;
    // Every session opened with the old password ends in the same transaction.
    store.update_user_ending_sessions(&user, herd_store::EndSessions::All, state::now_ms()).await?;
    println!("new password for {}: {password}", user.email);
    store.close().await;
    Ok(())
}
