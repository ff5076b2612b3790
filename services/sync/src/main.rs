//! `plugboard-sync`: the sync service as its own process, configured by `PLUGBOARD_*` variables.

use std::process::ExitCode;

use plugboard_sync::{Config, run};

#[tokio::main]
async fn main() -> ExitCode {
    plugboard_runtime::process::serve_from_env(
        "sync",
        Config::from_env,
        |config| config.listen_addr,
        run,
    )
    .await
}
