//! `plugboard-mapping`: the mapping service as its own process.

use plugboard_mapping::{Config, run};
use plugboard_runtime::config::Env;
use plugboard_runtime::server::shutdown_signal;
use plugboard_runtime::telemetry;
use tracing::info;

/// sysexits EX_CONFIG: the configuration is wrong, retrying will not help.
const EXIT_CONFIG: i32 = 78;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let env = match Env::from_process() {
        Ok(env) => env,
        Err(error) => {
            eprintln!("mapping: configuration error: {error}");
            std::process::exit(EXIT_CONFIG);
        }
    };
    let _telemetry = telemetry::init("mapping", &env)?;
    let config = match Config::from_env(&env) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("mapping: configuration error: {error}");
            std::process::exit(EXIT_CONFIG);
        }
    };
    let listener = tokio::net::TcpListener::bind(config.listen_addr).await?;
    info!(addr = %listener.local_addr()?, registry = %config.registry_addr, "listening");
    run(config, listener, shutdown_signal()).await?;
    Ok(())
}
