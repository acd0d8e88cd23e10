//! The vila2 web portal and JSON API: accounts, teams, datasets and plugins on SQLite or
//! PostgreSQL, artifacts in an object store.
//!
//! [`serve`] runs it; [`router`] builds the axum app around an [`AppState`] (what the tests
//! drive in-process).

pub mod accounts;
pub mod auth;
pub mod datasets;
pub mod demo;
pub mod entities;
pub mod error;
pub mod judging;
pub mod metrics;
pub mod models_registry;
pub mod plugins;
pub mod quotas;
pub mod routes;
pub mod runs;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use sea_orm::sqlx::sqlite::SqliteJournalMode;
use sea_orm::{ConnectOptions, Database, DatabaseConnection};
use vila2_host::plugin::{PluginRuntime, RuntimeConfig};
use vila2_migrations::{Migrator, MigratorTrait};

pub use error::{ApiError, StartError};
pub use routes::router;

use auth::{LoginLimiter, SessionKeys};

/// Everything a handler may use. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub db: DatabaseConnection,
    /// Uploaded artifacts (plugin components, dataset shards).
    pub store: Arc<dyn ObjectStore>,
    pub plugins: PluginRuntime,
    pub sessions: Arc<SessionKeys>,
    pub login_limiter: Arc<LoginLimiter>,
    /// Whether cookies get the `Secure` attribute (behind HTTPS).
    pub secure_cookies: bool,
    /// Where uploads are spooled while they arrive and are validated (`<data_dir>/tmp`).
    pub tmp_dir: PathBuf,
    /// Prometheus metrics (`/metrics`).
    pub metrics: Arc<metrics::Metrics>,
    /// Where and from which preset augmentation runs are executed.
    pub runs: Arc<runs::RunSettings>,
    /// Live updates of running runs (Server-Sent Events listen here).
    pub live: runs::events::Live,
}

/// Where the portal keeps its state and where it listens.
#[derive(Debug, Clone)]
pub struct Options {
    /// `sqlite://…` or `postgres://…`; default: `<data_dir>/vila2.db`.
    pub database_url: Option<String>,
    pub bind: SocketAddr,
    pub data_dir: PathBuf,
    /// Mark cookies `Secure` (serve behind HTTPS).
    pub secure_cookies: bool,
    /// Database connections in the pool (None: [`DEFAULT_DB_CONNECTIONS`]).
    pub db_connections: Option<u32>,
}

/// Default size of the database connection pool. Requests run their queries on their own
/// connection, so a pool of one would queue every request's queries behind the others'.
pub const DEFAULT_DB_CONNECTIONS: u32 = 8;

impl Options {
    /// Size of the database connection pool.
    pub fn db_connections(&self) -> u32 {
        self.db_connections.unwrap_or(DEFAULT_DB_CONNECTIONS)
    }

    /// The database URL: the given one, else a SQLite file in the data directory (created if
    /// missing).
    pub fn database_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("vila2.db").display()
            )
        })
    }
}

/// Opens the database at `url` with a pool of `connections` (at least 1) and applies pending
/// migrations. A SQLite file is switched to write-ahead logging, so that readers neither wait
/// for nor block the writer (an in-memory SQLite database keeps one connection: each
/// connection would open its own).
pub async fn connect(url: &str, connections: u32) -> Result<DatabaseConnection, StartError> {
    let mut options = ConnectOptions::new(url.to_string());
    options.sqlx_logging(false);
    let memory = url.contains(":memory:") || url.contains("mode=memory");
    if url.starts_with("sqlite:") && !memory {
        options
            .max_connections(connections.max(1))
            .map_sqlx_sqlite_opts(|o| o.journal_mode(SqliteJournalMode::Wal));
    } else if !url.starts_with("sqlite:") {
        options.max_connections(connections.max(1));
    }
    let db = Database::connect(options)
        .await
        .map_err(|source| StartError::Database {
            url: redact(url),
            source,
        })?;
    Migrator::up(&db, None).await.map_err(StartError::Migrate)?;
    Ok(db)
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

/// The HS256 secret: `VILA2_JWT_SECRET` if set, else `<data_dir>/jwt-secret`, generated with
/// 0600 permissions on first start.
pub fn jwt_secret(data_dir: &Path) -> Result<Vec<u8>, StartError> {
    if let Ok(secret) = std::env::var("VILA2_JWT_SECRET") {
        if secret.len() < 32 {
            return Err(StartError::WeakSecret);
        }
        return Ok(secret.into_bytes());
    }
    let path = data_dir.join("jwt-secret");
    let err = |source| StartError::Secret {
        path: path.display().to_string(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(secret) if secret.trim().len() >= 32 => return Ok(secret.trim().as_bytes().to_vec()),
        Ok(_) => {
            return Err(err(std::io::Error::other(
                "shorter than 32 characters; delete it to generate a new one",
            )));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    let secret = auth::random_hex(32);
    write_private(&path, secret.as_bytes()).map_err(err)?;
    tracing::info!(path = %path.display(), "generated a new JWT secret");
    Ok(secret.into_bytes())
}

fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(contents)
}

/// Builds the state: database (migrated), object store under `<data_dir>/objects`, plugin
/// runtime, session keys from `secret`.
pub async fn build_state(options: &Options, secret: &[u8]) -> Result<AppState, StartError> {
    std::fs::create_dir_all(options.data_dir.join("objects")).map_err(|source| {
        StartError::DataDir {
            path: options.data_dir.display().to_string(),
            source,
        }
    })?;
    // Spooled uploads left by a crash are garbage: start with an empty folder.
    let tmp_dir = options.data_dir.join("tmp");
    let _ = std::fs::remove_dir_all(&tmp_dir);
    std::fs::create_dir_all(&tmp_dir).map_err(|source| StartError::DataDir {
        path: tmp_dir.display().to_string(),
        source,
    })?;
    let db = connect(&options.database_url(), options.db_connections()).await?;
    let pruned = auth::prune_revoked(&db).await.map_err(StartError::Prune)?;
    tracing::debug!(pruned, "expired logout blocklist rows removed");
    let requeued = runs::recover(&db).await.map_err(StartError::Recover)?;
    if requeued > 0 {
        tracing::info!(
            requeued,
            "runs left running by the last process queued again"
        );
    }
    quotas::storage::recompute(&db)
        .await
        .map_err(StartError::StorageCharge)?;
    let store = LocalFileSystem::new_with_prefix(options.data_dir.join("objects"))?;
    let runtime = PluginRuntime::new(RuntimeConfig {
        cache_dir: Some(options.data_dir.join("component-cache")),
        ..RuntimeConfig::default()
    })
    .map_err(|e| StartError::Plugins(e.to_string()))?;
    Ok(AppState {
        db,
        store: Arc::new(store),
        plugins: runtime,
        sessions: Arc::new(SessionKeys::new(secret, Duration::from_secs(12 * 3600))),
        login_limiter: Arc::new(LoginLimiter::new(10, Duration::from_secs(300))),
        secure_cookies: options.secure_cookies,
        tmp_dir,
        metrics: Arc::new(metrics::Metrics::new()),
        runs: Arc::new(runs::RunSettings {
            runs_dir: options.data_dir.join("runs"),
            components_dir: std::env::var_os("VILA2_COMPONENTS").map(PathBuf::from),
            preset: runs::RunPreset::from_env(),
            threads: None,
        }),
        live: runs::events::Live::default(),
    })
}

/// Runs the portal and its run worker until Ctrl-C.
pub async fn serve(options: Options) -> Result<(), StartError> {
    std::fs::create_dir_all(&options.data_dir).map_err(|source| StartError::DataDir {
        path: options.data_dir.display().to_string(),
        source,
    })?;
    let secret = jwt_secret(&options.data_dir)?;
    let state = build_state(&options, &secret).await?;
    let listener = tokio::net::TcpListener::bind(options.bind)
        .await
        .map_err(|source| StartError::Bind {
            addr: options.bind.to_string(),
            source,
        })?;
    tracing::info!(addr = %options.bind, data_dir = %options.data_dir.display(), "portal listening");
    let worker = runs::worker::spawn(state.clone());
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
    .map_err(StartError::Serve)?;
    worker.abort();
    Ok(())
}

/// Applies pending migrations to the database of `options`.
pub async fn migrate(options: &Options) -> Result<(), StartError> {
    std::fs::create_dir_all(&options.data_dir).map_err(|source| StartError::DataDir {
        path: options.data_dir.display().to_string(),
        source,
    })?;
    connect(&options.database_url(), options.db_connections())
        .await
        .map(|_| ())
}

/// Creates a user in the database of `options` (migrating it first).
pub async fn create_user(
    options: &Options,
    email: &str,
    password: &str,
    is_admin: bool,
) -> Result<entities::user::Model, StartError> {
    migrate(options).await?;
    let db = connect(&options.database_url(), options.db_connections()).await?;
    accounts::create_user(&db, email, password, is_admin)
        .await
        .map_err(|e| StartError::User(e.to_string()))
}

/// The user with `email` in the database of `options` (migrating it first), if any.
pub async fn find_user(
    options: &Options,
    email: &str,
) -> Result<Option<entities::user::Model>, StartError> {
    migrate(options).await?;
    let db = connect(&options.database_url(), options.db_connections()).await?;
    accounts::find_user_by_email(&db, email)
        .await
        .map_err(|e| StartError::User(e.to_string()))
}
