//! The whole `main` of a service process, the same for every service.
//!
//! Configuration is read and validated before any port is bound: a bad value stops the process
//! with exit code 78 (sysexits' EX_CONFIG) and a message naming the variable. Then the service
//! listens and runs until SIGTERM or Ctrl-C, after which it has
//! `PLUGBOARD_SHUTDOWN_GRACE_SECONDS` (25 by default, inside Kubernetes' usual 30) to drain
//! in-flight calls and release what it holds; a call still going then is abandoned, so a
//! stream that never ends cannot keep the process alive until it is killed.

use std::fmt::Display;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::process::ExitCode;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::config::{ConfigError, Env};
use crate::server::shutdown_signal;
use crate::telemetry;

/// Exit code for configuration errors: retrying will not help.
pub const EXIT_CONFIG: u8 = 78;
/// How long a stopping service may drain when `PLUGBOARD_SHUTDOWN_GRACE_SECONDS` is not set.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(25);

/// An error that ends a service's run. One that is the operator's configuration (a master key
/// that opens none of the stored keys, a database URL with a malformed option) exits 78 like
/// the configuration errors found before the port is bound: restarting with the same settings
/// cannot help, and an orchestrator should say so instead of retrying for ever.
pub trait RunError: Display {
    fn is_configuration(&self) -> bool {
        false
    }
}

impl RunError for std::io::Error {}

/// Completes when the process is asked to stop.
pub type Shutdown = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Runs one service: `from_env` builds its config, `listen_addr` says where to bind, and `run`
/// serves until the shutdown future completes.
pub async fn serve_from_env<C, Fut, E>(
    name: &str,
    from_env: impl FnOnce(&Env) -> Result<C, ConfigError>,
    listen_addr: impl FnOnce(&C) -> SocketAddr,
    run: impl FnOnce(C, TcpListener, Shutdown) -> Fut,
) -> ExitCode
where
    Fut: Future<Output = Result<(), E>>,
    E: RunError,
{
    let env = match Env::from_process() {
        Ok(env) => env,
        Err(error) => return config_error(name, &error),
    };
    let _telemetry = match telemetry::init(name, &env) {
        Ok(guard) => guard,
        Err(error) => return config_error(name, &error),
    };
    let config = match from_env(&env).and_then(|config| {
        check_storage_urls(&env)?;
        Ok(config)
    }) {
        Ok(config) => config,
        Err(error) => return config_error(name, &error),
    };
    let grace = match env.parse_or(
        "PLUGBOARD_SHUTDOWN_GRACE_SECONDS",
        DEFAULT_SHUTDOWN_GRACE.as_secs(),
    ) {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(error) => return config_error(name, &error),
    };
    for (set, meant) in env.misspelt() {
        tracing::warn!(
            variable = %set,
            probably = %meant,
            "{set} is set but {name} never reads it; is it a misspelling of {meant}?"
        );
    }
    let addr = listen_addr(&config);
    let listener = match TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("{name}: cannot listen on {addr}: {error}");
            return ExitCode::FAILURE;
        }
    };
    let bound = listener.local_addr().unwrap_or(addr);
    tracing::info!(service = name, addr = %bound, "listening");
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let service_shutdown = async move {
        let mut stopping = stopping;
        // An error means the sender is gone, which only happens once we are stopping anyway.
        let _ = stopping.wait_for(|stopping| *stopping).await;
    };
    let signal = async move {
        shutdown_signal().await;
        stop.send_replace(true);
    };
    let running = run(config, listener, Box::pin(service_shutdown));
    match run_with_grace(running, signal, grace).await {
        Stopped::Finished(Ok(())) => {
            tracing::info!(service = name, "stopped");
            ExitCode::SUCCESS
        }
        Stopped::Finished(Err(error)) => {
            let configuration = error.is_configuration();
            tracing::error!(service = name, error = %error, configuration, "stopped with an error");
            eprintln!("{name}: {error}");
            if configuration {
                ExitCode::from(EXIT_CONFIG)
            } else {
                ExitCode::FAILURE
            }
        }
        Stopped::GraceExceeded => {
            tracing::warn!(
                service = name,
                grace_seconds = grace.as_secs(),
                "in-flight calls did not finish within the shutdown grace; abandoning them"
            );
            eprintln!(
                "{name}: stopped after {} s of draining with calls still in flight",
                grace.as_secs()
            );
            ExitCode::FAILURE
        }
    }
}

/// How a service's run ended.
#[derive(Debug)]
enum Stopped<T> {
    Finished(T),
    /// The stop signal came and the run was still going `grace` later.
    GraceExceeded,
}

/// Drives `running` to its end, but gives up `grace` after `signal` completes. `signal` is
/// expected to make `running` wind down (it shares the service's shutdown future).
async fn run_with_grace<T>(
    running: impl Future<Output = T>,
    signal: impl Future<Output = ()>,
    grace: Duration,
) -> Stopped<T> {
    let deadline = async {
        signal.await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        result = running => Stopped::Finished(result),
        () = deadline => Stopped::GraceExceeded,
    }
}

/// The storage URLs every service shares are checked for their form before the port is bound,
/// so a typo stops the process as a configuration error rather than after it starts serving.
/// (Whether the server answers is known only when the service connects.)
fn check_storage_urls(env: &Env) -> Result<(), ConfigError> {
    if let Some(url) = env.get(DATABASE_URL_VAR) {
        crate::storage::Backend::of_url(url).map_err(|error| ConfigError::Invalid {
            key: DATABASE_URL_VAR.to_owned(),
            value: redact_password(url),
            reason: error.to_string(),
        })?;
    }
    if let Some(url) = env.get(REDIS_URL_VAR) {
        let known = ["redis://", "rediss://", "redis+unix://", "unix://"];
        if !known.iter().any(|scheme| url.starts_with(scheme)) {
            return Err(ConfigError::Invalid {
                key: REDIS_URL_VAR.to_owned(),
                value: redact_password(url),
                reason: "expected redis://host:port (or rediss://, unix://)".to_owned(),
            });
        }
    }
    Ok(())
}

const DATABASE_URL_VAR: &str = "PLUGBOARD_DATABASE_URL";
const REDIS_URL_VAR: &str = crate::config::REDIS_URL;

/// A URL as it may be shown in an error: a password in it is replaced.
pub(crate) fn redact_password(text: &str) -> String {
    match url::Url::parse(text) {
        Ok(mut parsed) if parsed.password().is_some() => {
            // Only fails for URLs that cannot have a password, which this one has.
            let _ = parsed.set_password(Some("redacted"));
            parsed.to_string()
        }
        Ok(_) => text.to_owned(),
        // Unparseable: show nothing that could be a credential.
        Err(_) if text.contains('@') => "[redacted]".to_owned(),
        Err(_) => text.to_owned(),
    }
}

/// Prints a configuration error and returns the configuration exit code.
pub fn config_error(name: &str, error: &dyn Display) -> ExitCode {
    eprintln!("{name}: configuration error: {error}");
    ExitCode::from(EXIT_CONFIG)
}

#[cfg(test)]
mod tests {
    #[test]
    fn storage_urls_are_checked_and_passwords_never_shown() {
        use super::{Env, check_storage_urls};
        let ok = Env::from_pairs([
            ("PLUGBOARD_DATABASE_URL", "postgres://u:pw@db/x"),
            ("PLUGBOARD_REDIS_URL", "redis://127.0.0.1:6379"),
        ]);
        assert!(check_storage_urls(&ok).is_ok());
        let mysql = Env::from_pairs([("PLUGBOARD_DATABASE_URL", "mysql://u:hunter2@db/x")]);
        let error = check_storage_urls(&mysql).unwrap_err().to_string();
        assert!(error.starts_with("PLUGBOARD_DATABASE_URL="), "{error}");
        assert!(!error.contains("hunter2"), "{error}");
        let redis = Env::from_pairs([("PLUGBOARD_REDIS_URL", "http://nope")]);
        let error = check_storage_urls(&redis).unwrap_err().to_string();
        assert!(error.starts_with("PLUGBOARD_REDIS_URL="), "{error}");
    }

    use std::time::Duration;

    use super::{Stopped, run_with_grace};

    #[tokio::test(start_paused = true)]
    async fn a_run_that_drains_in_time_finishes() {
        let (stop, mut stopping) = tokio::sync::watch::channel(false);
        let running = async move {
            let _ = stopping.wait_for(|s| *s).await;
            // Draining takes a while, but less than the grace.
            tokio::time::sleep(Duration::from_secs(5)).await;
            "drained"
        };
        let signal = async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            stop.send_replace(true);
        };
        let stopped = run_with_grace(running, signal, Duration::from_secs(25)).await;
        assert!(
            matches!(stopped, Stopped::Finished("drained")),
            "{stopped:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_run_still_going_after_the_grace_is_abandoned() {
        let started = tokio::time::Instant::now();
        let never_ends = std::future::pending::<()>();
        let signal = tokio::time::sleep(Duration::from_secs(1));
        let stopped = run_with_grace(never_ends, signal, Duration::from_secs(25)).await;
        assert!(matches!(stopped, Stopped::GraceExceeded));
        assert_eq!(started.elapsed(), Duration::from_secs(26));
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_signal_a_run_goes_on() {
        let running = async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            "done"
        };
        let stopped = run_with_grace(running, std::future::pending(), Duration::from_secs(1)).await;
        assert!(matches!(stopped, Stopped::Finished("done")));
    }
}
