//! `plugboard-connector`: one manifest connector as its own process. The folder comes from
//! `PLUGBOARD_CONNECTOR_DIR`; the rest is configured like every service.

use std::process::ExitCode;

use plugboard_connector_runtime::{Config, run};

#[tokio::main]
async fn main() -> ExitCode {
    plugboard_runtime::process::serve_from_env(
        "connector",
        Config::from_env,
        |config| config.listen_addr,
        run,
    )
    .await
}
