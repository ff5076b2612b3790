//! `plugboard-mapping`: the mapping service as its own process, configured by `PLUGBOARD_*` variables.

use std::process::ExitCode;

use plugboard_mapping::{Config, run};

#[tokio::main]
async fn main() -> ExitCode {
    plugboard_runtime::process::serve_from_env(
        "mapping",
        Config::from_env,
        |config| config.listen_addr,
        run,
    )
    .await
}
