//! `plugboard-credentials`: the credentials service as its own process.

use std::process::ExitCode;

use plugboard_credentials::{Config, run};
use plugboard_runtime::config::Env;
use plugboard_runtime::server::shutdown_signal;
use plugboard_runtime::telemetry;

/// sysexits' EX_CONFIG: the configuration is wrong, a restart will not help.
const EXIT_CONFIG: u8 = 78;

#[tokio::main]
async fn main() -> ExitCode {
    let env = match Env::from_process() {
        Ok(env) => env,
        Err(error) => {
            eprintln!("credentials: configuration error: {error}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let _telemetry = match telemetry::init("credentials", &env) {
        Ok(guard) => guard,
        Err(error) => {
            eprintln!("credentials: configuration error: {error}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let config = match Config::from_env(&env) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("credentials: configuration error: {error}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let listener = match tokio::net::TcpListener::bind(config.listen_addr).await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(addr = %config.listen_addr, error = %error, "cannot bind");
            return ExitCode::FAILURE;
        }
    };
    // With port 0 the kernel picks the port; log the one actually bound.
    let addr = listener.local_addr().unwrap_or(config.listen_addr);
    tracing::info!(addr = %addr, "listening");
    match run(config, listener, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = %error, "credentials service failed");
            ExitCode::FAILURE
        }
    }
}
