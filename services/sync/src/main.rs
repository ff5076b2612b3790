//! `plugboard-sync`: the sync service as its own process.

use std::process::ExitCode;

use plugboard_runtime::config::Env;
use plugboard_runtime::server::shutdown_signal;
use plugboard_runtime::telemetry;

/// sysexits' EX_CONFIG: the configuration is wrong and retrying will not help.
const EXIT_CONFIG: u8 = 78;

#[tokio::main]
async fn main() -> ExitCode {
    let env = match Env::from_process() {
        Ok(env) => env,
        Err(error) => return config_error(&error),
    };
    let _telemetry = match telemetry::init("sync", &env) {
        Ok(guard) => guard,
        Err(error) => return config_error(&error),
    };
    let config = match plugboard_sync::Config::from_env(&env) {
        Ok(config) => config,
        Err(error) => return config_error(&error),
    };
    let listener = match tokio::net::TcpListener::bind(config.listen_addr).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("sync: cannot listen on {}: {error}", config.listen_addr);
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(addr = %config.listen_addr, "sync listening");
    match plugboard_sync::run(config, listener, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = %error, "sync stopped");
            ExitCode::FAILURE
        }
    }
}

fn config_error(error: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("sync: configuration error: {error}");
    ExitCode::from(EXIT_CONFIG)
}
