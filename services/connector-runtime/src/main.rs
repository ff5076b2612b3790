//! `plugboard-connector`: one manifest connector as its own process. The folder comes from
//! `PLUGBOARD_CONNECTOR_DIR`; the rest is configured like every service.

use std::process::ExitCode;

use plugboard_connector_runtime::{Config, run};
use plugboard_runtime::config::Env;
use plugboard_runtime::server::shutdown_signal;
use plugboard_runtime::telemetry;
use tracing::info;

const NAME: &str = "connector";

#[tokio::main]
async fn main() -> ExitCode {
    let env = match Env::from_process() {
        Ok(env) => env,
        Err(error) => {
            eprintln!("{NAME}: configuration error: {error}");
            return ExitCode::from(78);
        }
    };
    let _telemetry = match telemetry::init(NAME, &env) {
        Ok(guard) => guard,
        Err(error) => {
            eprintln!("{NAME}: configuration error: {error}");
            return ExitCode::from(78);
        }
    };
    let config = match Config::from_env(&env) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("{NAME}: configuration error: {error}");
            return ExitCode::from(78);
        }
    };
    let listener = match tokio::net::TcpListener::bind(config.listen_addr).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("{NAME}: cannot bind {}: {error}", config.listen_addr);
            return ExitCode::FAILURE;
        }
    };
    info!(addr = %config.listen_addr, "listening");
    match run(config, listener, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{NAME}: {error}");
            ExitCode::FAILURE
        }
    }
}
