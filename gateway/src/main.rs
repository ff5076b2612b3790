//! The gateway as its own process.

use std::process::ExitCode;

use plugboard_gateway::{Config, run};
use plugboard_runtime::config::Env;
use plugboard_runtime::server::shutdown_signal;
use plugboard_runtime::telemetry;

/// EX_CONFIG from sysexits.h: the configuration is wrong.
const EXIT_CONFIG: u8 = 78;

#[tokio::main]
async fn main() -> ExitCode {
    let env = match Env::from_process() {
        Ok(env) => env,
        Err(e) => {
            eprintln!("gateway: configuration error: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let _telemetry = match telemetry::init("gateway", &env) {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("gateway: configuration error: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let config = match Config::from_env(&env) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("gateway: configuration error: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let listener = match tokio::net::TcpListener::bind(config.listen_addr).await {
        Ok(listener) => listener,
        Err(e) => {
            tracing::error!(addr = %config.listen_addr, error = %e, "cannot listen");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(addr = %config.listen_addr, "listening");
    match run(config, listener, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "gateway failed");
            ExitCode::FAILURE
        }
    }
}
