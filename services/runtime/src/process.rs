//! The whole `main` of a service process, the same for every service.
//!
//! Configuration is read and validated before any port is bound: a bad value stops the process
//! with exit code 78 (sysexits' EX_CONFIG) and a message naming the variable. Then the service
//! listens and runs until SIGTERM or Ctrl-C.

use std::fmt::Display;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::process::ExitCode;

use tokio::net::TcpListener;

use crate::config::{ConfigError, Env};
use crate::server::shutdown_signal;
use crate::telemetry;

/// Exit code for configuration errors: retrying will not help.
pub const EXIT_CONFIG: u8 = 78;

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
    E: Display,
{
    let env = match Env::from_process() {
        Ok(env) => env,
        Err(error) => return config_error(name, &error),
    };
    let _telemetry = match telemetry::init(name, &env) {
        Ok(guard) => guard,
        Err(error) => return config_error(name, &error),
    };
    let config = match from_env(&env) {
        Ok(config) => config,
        Err(error) => return config_error(name, &error),
    };
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
    match run(config, listener, Box::pin(shutdown_signal())).await {
        Ok(()) => {
            tracing::info!(service = name, "stopped");
            ExitCode::SUCCESS
        }
        Err(error) => {
            tracing::error!(service = name, error = %error, "stopped with an error");
            eprintln!("{name}: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Prints a configuration error and returns the configuration exit code.
pub fn config_error(name: &str, error: &dyn Display) -> ExitCode {
    eprintln!("{name}: configuration error: {error}");
    ExitCode::from(EXIT_CONFIG)
}
