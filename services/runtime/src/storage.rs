//! Each service's own database, on SQLite (dev) or PostgreSQL (split mode), through one code path.
//!
//! Queries use portable SQL through sqlx's `Any` driver: `$N` placeholders (statements with
//! many parameters write theirs with [`crate::placeholders`]), times as RFC 3339 UTC text, flags
//! as integers and JSON as text (the `Any` driver cannot read SQLite booleans or PostgreSQL
//! `timestamptz`). On PostgreSQL every service lives in its own schema of one database; on
//! SQLite every service has its own file, and a service's hot write path may keep a writer
//! connection of its own ([`open_sqlite_writer`]).

use std::str::FromStr;
use std::sync::Once;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, AssertSqlSafe, ConnectOptions, Executor};

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("database url must start with sqlite: or postgres:, got {scheme:?}")]
    UnsupportedUrl { scheme: String },
    #[error(
        "schema name {0:?} must be a lowercase letter followed by lowercase letters, digits or underscores"
    )]
    BadSchema(String),
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot connect to the database (PLUGBOARD_DATABASE_URL): {0}")]
    Connect(#[source] sqlx::Error),
    #[error("migrations failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl StorageError {
    /// True when the database settings themselves are wrong (an unsupported URL, a bad schema
    /// name, an option the driver does not understand), not the server unreachable or failing.
    pub fn is_configuration(&self) -> bool {
        match self {
            StorageError::UnsupportedUrl { .. } | StorageError::BadSchema(_) => true,
            StorageError::Connect(error) => matches!(error, sqlx::Error::Configuration(_)),
            StorageError::DataDir { .. } | StorageError::Migrate(_) => false,
        }
    }
}

/// Which server a pool talks to, for the few statements that differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn of_url(url: &str) -> Result<Backend, StorageError> {
        let scheme = url.split(':').next().unwrap_or_default();
        match scheme {
            "sqlite" => Ok(Backend::Sqlite),
            "postgres" | "postgresql" => Ok(Backend::Postgres),
            _ => Err(StorageError::UnsupportedUrl {
                scheme: scheme.to_owned(),
            }),
        }
    }
}

static INSTALL_DRIVERS: Once = Once::new();

/// How long a PostgreSQL session may sit idle inside a transaction before the server ends it.
/// No service waits on anything remote inside a transaction, so only a stalled process does.
pub const IDLE_IN_TRANSACTION_LIMIT: Duration = Duration::from_secs(15);

/// Opens a pool for one service and runs its migrations.
///
/// `schema` is the service's name (`credentials`, `sync`, ...): its PostgreSQL schema, created if
/// missing. For SQLite the url names the file, created with its directory if missing.
pub async fn open(
    database_url: &str,
    schema: &str,
    migrator: &Migrator,
) -> Result<AnyPool, StorageError> {
    INSTALL_DRIVERS.call_once(sqlx::any::install_default_drivers);
    let valid_schema = schema.starts_with(|c: char| c.is_ascii_lowercase())
        && schema
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !valid_schema {
        return Err(StorageError::BadSchema(schema.to_owned()));
    }
    let backend = Backend::of_url(database_url)?;
    if backend == Backend::Sqlite {
        create_sqlite_dir(database_url)?;
    }
    let options = connect_options(database_url)?;

    if backend == Backend::Postgres {
        // The schema must exist before any pooled connection points its search_path at it.
        let mut connection = options.connect().await.map_err(StorageError::Connect)?;
        let create_schema = format!("CREATE SCHEMA IF NOT EXISTS {schema}");
        let created = connection
            .execute(sqlx::raw_sql(AssertSqlSafe(create_schema)))
            .await;
        // IF NOT EXISTS is not safe against a race: two replicas starting together can both
        // try to create it, and the loser sees a unique violation. The schema exists either way.
        match created {
            Ok(_) => {}
            Err(error) if is_unique_violation(&error) => {
                tracing::debug!(schema, "schema created concurrently by another replica");
            }
            Err(error) => return Err(StorageError::Connect(error)),
        }
    }

    let pool = AnyPoolOptions::new()
        .max_connections(match backend {
            Backend::Postgres => 10,
            Backend::Sqlite => 4,
        })
        .acquire_timeout(Duration::from_secs(10))
        .after_connect(session_setup(backend, schema, None))
        .connect_with(options)
        .await
        .map_err(StorageError::Connect)?;
    migrator.run(&pool).await?;
    Ok(pool)
}

/// A pool of ONE connection for a service's hot write path on SQLite (a sync run's page
/// commits, identity's page linking), with a page cache of `cache_kib`; `None` on PostgreSQL,
/// where the service's main pool serves. Open it after [`open`], which runs the migrations.
///
/// Why one connection: in WAL mode SQLite drops a connection's whole page cache when another
/// connection has written since its last transaction, and the main pool hands its connections
/// out in turn, so every page commit started cold and read its index pages again (`pread` and
/// page allocation were a large part of mapping's and sync's CPU in the full-sync profile).
/// The writer's cache stays warm across commits; writers on SQLite take turns anyway. An
/// in-memory url (`sqlite::memory:`) opens a database per connection, here as in the main pool's
/// four, so services need a file.
pub async fn open_sqlite_writer(
    database_url: &str,
    cache_kib: u32,
) -> Result<Option<AnyPool>, StorageError> {
    if Backend::of_url(database_url)? != Backend::Sqlite {
        return Ok(None);
    }
    INSTALL_DRIVERS.call_once(sqlx::any::install_default_drivers);
    let options = connect_options(database_url)?;
    let pool = AnyPoolOptions::new()
        .max_connections(1)
        // A writer waits its turn behind the page commit in hand, as it would for SQLite's lock.
        .acquire_timeout(Duration::from_secs(30))
        .after_connect(session_setup(Backend::Sqlite, "", Some(cache_kib)))
        .connect_with(options)
        .await
        .map_err(StorageError::Connect)?;
    Ok(Some(pool))
}

fn connect_options(database_url: &str) -> Result<AnyConnectOptions, StorageError> {
    Ok(AnyConnectOptions::from_str(database_url)
        .map_err(StorageError::Connect)?
        .log_statements(tracing::log::LevelFilter::Trace)
        .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_secs(1)))
}

type SetupFuture<'c> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), sqlx::Error>> + Send + 'c>>;

/// What every new connection runs first; `cache_kib` sets SQLite's page cache (its default is
/// 2,000 KiB).
fn session_setup(
    backend: Backend,
    schema: &str,
    cache_kib: Option<u32>,
) -> impl Fn(&mut sqlx::AnyConnection, sqlx::pool::PoolConnectionMetadata) -> SetupFuture<'_>
+ Send
+ Sync
+ 'static {
    let statements = match backend {
        // A replica that stalls inside a transaction (a frozen VM, a stopped process) would
        // hold its row locks for ever, and every other replica waiting on them with it: after
        // this long idle in a transaction the server ends that session, releasing its locks,
        // and the stalled replica's commit fails when it wakes.
        //
        // Every statement is planned for its own parameters (`force_custom_plan`): after five
        // runs PostgreSQL would otherwise settle on a generic plan, and for the batched
        // `external_id IN (...)` lookups a generic plan made while a first sync fills the table
        // scans the connection's whole index range instead of the keys. Measured with the
        // full-sync benchmark, 30,000 records: 617 records/s generic, 3,578 custom.
        Backend::Postgres => format!(
            "SET search_path TO {schema}; \
             SET idle_in_transaction_session_timeout = '{}s'; \
             SET plan_cache_mode = force_custom_plan",
            IDLE_IN_TRANSACTION_LIMIT.as_secs()
        ),
        // WAL lets readers run beside the one writer; the busy timeout queues writers instead of
        // failing them.
        Backend::Sqlite => {
            let mut statements =
                "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000; PRAGMA synchronous = NORMAL"
                    .to_owned();
            if let Some(kib) = cache_kib {
                // Negative: a size in KiB rather than in pages.
                statements.push_str(&format!("; PRAGMA cache_size = -{kib}"));
                // A writer's page-sized upserts each keep a statement journal (to undo the
                // statement alone if a row fails), and past 64 KiB SQLite spills it to a temp
                // file: pwrite calls on every statement, 5% of mapping's CPU in the full-sync
                // profile. In memory it is one page-sized buffer, freed when the statement ends.
                statements.push_str("; PRAGMA temp_store = MEMORY");
            }
            statements
        }
    };
    move |connection, _meta| {
        let statements = statements.clone();
        Box::pin(async move {
            // The schema name was checked by `open`; the rest is constant text and a number.
            connection
                .execute(sqlx::raw_sql(AssertSqlSafe(statements)))
                .await?;
            Ok(())
        })
    }
}

/// The SQLite url for one service's file in a data directory, created on first open.
pub fn sqlite_url(data_dir: &std::path::Path, service: &str) -> String {
    format!(
        "sqlite://{}?mode=rwc",
        data_dir.join(format!("{service}.db")).display()
    )
}

/// The file a `sqlite:` url names; `None` for an in-memory database (or another backend).
pub fn sqlite_path(database_url: &str) -> Option<std::path::PathBuf> {
    let rest = database_url.strip_prefix("sqlite:")?;
    let (path, options) = rest
        .trim_start_matches("//")
        .split_once('?')
        .unwrap_or((rest.trim_start_matches("//"), ""));
    let in_memory = options.split('&').any(|option| option == "mode=memory");
    if path.is_empty() || path == ":memory:" || in_memory {
        return None;
    }
    Some(std::path::PathBuf::from(path))
}

fn create_sqlite_dir(database_url: &str) -> Result<(), StorageError> {
    let Some(path) = sqlite_path(database_url) else {
        return Ok(());
    };
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent).map_err(|source| StorageError::DataDir {
            path: parent.display().to_string(),
            source,
        })?;
    }
    Ok(())
}

/// True when a database error is a unique-constraint violation, on either backend.
pub fn is_unique_violation(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(database_error) => database_error.is_unique_violation(),
        _ => false,
    }
}

/// The current time as RFC 3339 UTC text with millisecond precision, the storage format.
/// Lexical order of such strings is time order.
pub fn now_text() -> String {
    format_time(chrono::Utc::now())
}

/// A time in the storage format.
pub fn format_time(time: chrono::DateTime<chrono::Utc>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::sqlite_path;

    #[test]
    fn sqlite_path_names_the_file_of_every_url_form_and_none_in_memory() {
        let file = Some(PathBuf::from("/data/credentials.db"));
        assert_eq!(sqlite_path("sqlite:///data/credentials.db?mode=rwc"), file);
        assert_eq!(sqlite_path("sqlite:/data/credentials.db"), file);
        assert_eq!(
            sqlite_path("sqlite:.plugboard/gateway.db"),
            Some(PathBuf::from(".plugboard/gateway.db"))
        );
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(
            sqlite_path("sqlite://shared?mode=memory&cache=shared"),
            None
        );
        assert_eq!(sqlite_path("postgres://localhost/db"), None);
    }
}
