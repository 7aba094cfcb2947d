//! The helpdesk HTTP server: Rocket around [`helpdesk_core`].
//!
//! [`build`] assembles a `Rocket<Build>` from a figment, so tests construct servers with
//! their own temporary configuration and run them in parallel; `main.rs` only parses the
//! command line, installs logging and launches.
//!
//! * [`config`] — figment sources and [`config::AppConfig`].
//! * [`auth`] — bearer tokens, roles, request guards.
//! * [`error`] — [`error::ApiError`], the one JSON error shape, and the catchers.
//! * [`telemetry`] — Prometheus metrics (OpenTelemetry), JSON logs, request ids.
//! * [`api`] — the routes, one module per area, and the OpenAPI document.

pub mod api;
pub mod auth;
pub mod config;
pub mod error;
pub mod telemetry;

use std::sync::Arc;
use std::time::Instant;

use helpdesk_core::{Config, Helpdesk};
use rocket::fairing::AdHoc;
use rocket::figment::Figment;
use rocket::{Build, Rocket};
use utoipa::OpenApi;

use crate::auth::Tokens;
use crate::error::ApiError;
use crate::telemetry::{Metrics, RequestTelemetry};

/// Name of the sled database directory inside the data directory.
pub const DB_DIR: &str = "db";

/// Everything a request handler needs; one per Rocket instance.
pub struct AppState {
    /// The ticket engine.
    pub desk: Helpdesk,
    /// The configured bearer tokens.
    pub tokens: Tokens,
    /// Metric instruments and registry.
    pub metrics: Arc<Metrics>,
    /// When the server started (for uptime).
    pub started: Instant,
    /// The OpenAPI document, rendered once.
    pub openapi: String,
    /// The configuration in force.
    pub config: config::AppConfig,
}

/// Runs a blocking engine call off the async workers.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> helpdesk_core::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    rocket::tokio::task::spawn_blocking(f).await.map_err(ApiError::internal)?.map_err(ApiError::from)
}

async fn init_state(figment: &Figment) -> Result<AppState, String> {
    let (config, warnings) = config::extract(figment).map_err(|e| format!("configuration: {e}"))?;
    for w in warnings {
        tracing::warn!("{w}");
    }
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| format!("cannot create data_dir {}: {e}", config.data_dir.display()))?;
    let tokens = Tokens::load(config.tokens_file.as_deref(), &config.data_dir)?;
    let metrics = Arc::new(Metrics::new()?);
    let core = Config {
        durability: config.durability,
        sla: config.sla,
        cache_capacity: config.cache_capacity,
        flush_observer: Some(metrics.flush_observer()),
        ..Config::default()
    };
    let path = config.data_dir.join(DB_DIR);
    let desk = rocket::tokio::task::spawn_blocking(move || Helpdesk::open(&path, core))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("cannot open the database: {e}"))?;
    tracing::info!(data_dir = %config.data_dir.display(), schema_version = desk.schema_version(),
        durability = ?config.durability, "database open");
    metrics.observe_database(&desk);
    let openapi = api::openapi::ApiDoc::openapi().to_pretty_json().map_err(|e| e.to_string())?;
    Ok(AppState { desk, tokens, metrics, started: Instant::now(), openapi, config })
}

/// The error type of [`spawn`] and [`Running::stop`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A server launched on the current tokio runtime by [`spawn`].
pub struct Running {
    /// The address it listens on (the real port when port 0 was asked for).
    pub addr: std::net::SocketAddr,
    /// The data directory in force (holds the database and the bootstrap `admin.token`).
    pub data_dir: std::path::PathBuf,
    shutdown: rocket::Shutdown,
    task: rocket::tokio::task::JoinHandle<Result<Rocket<rocket::Ignite>, rocket::Error>>,
}

impl Running {
    /// `http://<addr>`, without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Graceful shutdown, as on SIGTERM: in-flight requests finish and the database is
    /// flushed and closed before this returns.
    pub async fn stop(self) -> Result<(), BoxError> {
        self.shutdown.notify();
        match self.task.await {
            Ok(result) => result.map(drop).map_err(Into::into),
            // The launch task panicked or was cancelled; nothing is left to stop.
            Err(_) => Ok(()),
        }
    }
}

/// Ignites and launches [`build`]`(figment)` in a background task and returns once the
/// server listens. For embedding the HTTP server in another program and for the
/// integration tests of the agents, which talk to a real server over loopback:
///
/// ```no_run
/// # async fn demo() -> Result<(), helpdesk_server::BoxError> {
/// let figment = helpdesk_server::config::figment()
///     .merge(("port", 0))
///     .merge(("data_dir", "/tmp/helpdesk-demo"));
/// let server = helpdesk_server::spawn(figment).await?;
/// println!("serving on {}", server.base_url());
/// server.stop().await?;
/// # Ok(()) }
/// ```
pub async fn spawn(figment: Figment) -> Result<Running, BoxError> {
    let (tx, rx) = rocket::tokio::sync::oneshot::channel();
    let tx = std::sync::Mutex::new(Some(tx));
    let rocket = build(figment)
        .attach(AdHoc::on_liftoff("report the address", move |rocket| {
            let c = rocket.config();
            let addr = std::net::SocketAddr::new(c.address, c.port);
            if let Some(tx) = tx.lock().ok().and_then(|mut tx| tx.take()) {
                let _ = tx.send(addr);
            }
            Box::pin(async {})
        }))
        .ignite()
        .await?;
    let data_dir = rocket.state::<AppState>().map(|s| s.config.data_dir.clone()).unwrap_or_default();
    let shutdown = rocket.shutdown();
    let task = rocket::tokio::spawn(rocket.launch());
    match rx.await {
        Ok(addr) => Ok(Running { addr, data_dir, shutdown, task }),
        // Launch failed before liftoff (e.g. the port is taken): report its error.
        Err(_) => match task.await {
            Ok(Err(e)) => Err(e.into()),
            Ok(Ok(_)) => Err("the server stopped before it listened".into()),
            Err(e) => Err(e.into()),
        },
    }
}

/// The server, ready to ignite: routes, catchers, state (opened on ignite) and fairings.
pub fn build(figment: Figment) -> Rocket<Build> {
    rocket::custom(figment)
        .attach(AdHoc::try_on_ignite("helpdesk state", |rocket| async move {
            match init_state(rocket.figment()).await {
                Ok(state) => {
                    let telemetry = RequestTelemetry(state.metrics.clone());
                    Ok(rocket.manage(state).attach(telemetry))
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot start");
                    eprintln!("helpdesk-server: {e}");
                    Err(rocket)
                }
            }
        }))
        .attach(AdHoc::on_liftoff("announce the address", |rocket| {
            Box::pin(async move {
                let c = rocket.config();
                // Tests and scripts that ask for port 0 read the real port from this line.
                tracing::info!(address = %c.address, port = c.port, "listening");
            })
        }))
        .attach(AdHoc::on_shutdown("flush the database", |rocket| {
            Box::pin(async move {
                if let Some(state) = rocket.state::<AppState>() {
                    let desk = state.desk.clone();
                    match rocket::tokio::task::spawn_blocking(move || desk.flush()).await {
                        Ok(Ok(())) => tracing::info!("shutdown: database flushed"),
                        Ok(Err(e)) => tracing::error!(error = %e, "shutdown: flush failed"),
                        Err(e) => tracing::error!(error = %e, "shutdown: flush task failed"),
                    }
                }
            })
        }))
        .mount("/", api::health::routes())
        .mount("/", api::tickets::routes())
        .mount("/", api::metrics::routes())
        .mount("/", api::admin::routes())
        .mount("/", api::openapi::routes())
        .register("/", error::catchers::all())
}
