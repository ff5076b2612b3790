//! `plugboard-connector-bullhorn`: the connector-bullhorn service as its own process, configured by `PLUGBOARD_*` variables.

use std::process::ExitCode;

use plugboard_connector_bullhorn::{Config, run};

#[tokio::main]
async fn main() -> ExitCode {
    plugboard_runtime::process::serve_from_env(
        "connector-bullhorn",
        Config::from_env,
        |config| config.listen_addr,
        run,
    )
    .await
}
