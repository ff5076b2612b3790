//! `plugboard serve <service>`: one service per process, as split mode and `deploy/` run them.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{Args, ValueEnum};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Service {
    Credentials,
    Mapping,
    Sync,
    Health,
    Registry,
    Gateway,
    ConnectorBullhorn,
    SandboxBullhorn,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The service to run.
    service: Service,
}

pub async fn run(args: ServeArgs) -> ExitCode {
    use plugboard_runtime::process::serve_from_env;

    match args.service {
        Service::Credentials => {
            serve_from_env(
                "credentials",
                plugboard_credentials::Config::from_env,
                |config| config.listen_addr,
                plugboard_credentials::run,
            )
            .await
        }
        Service::Mapping => {
            serve_from_env(
                "mapping",
                plugboard_mapping::Config::from_env,
                |config| config.listen_addr,
                plugboard_mapping::run,
            )
            .await
        }
        Service::Sync => {
            serve_from_env(
                "sync",
                plugboard_sync::Config::from_env,
                |config| config.listen_addr,
                plugboard_sync::run,
            )
            .await
        }
        Service::Health => {
            serve_from_env(
                "health",
                plugboard_health::Config::from_env,
                |config| config.listen_addr,
                plugboard_health::run,
            )
            .await
        }
        Service::Registry => {
            serve_from_env(
                "registry",
                plugboard_registry::Config::from_env,
                |config| config.listen_addr,
                plugboard_registry::run,
            )
            .await
        }
        Service::Gateway => {
            serve_from_env(
                "gateway",
                plugboard_gateway::Config::from_env,
                |config| config.listen_addr,
                plugboard_gateway::run,
            )
            .await
        }
        Service::ConnectorBullhorn => {
            serve_from_env(
                "connector-bullhorn",
                plugboard_connector_bullhorn::Config::from_env,
                |config| config.listen_addr,
                plugboard_connector_bullhorn::run,
            )
            .await
        }
        Service::SandboxBullhorn => {
            serve_from_env(
                "sandbox-bullhorn",
                |env| {
                    env.parse_or(
                        "PLUGBOARD_LISTEN_ADDR",
                        SocketAddr::from(([127, 0, 0, 1], 9101)),
                    )
                },
                |addr| *addr,
                |_, listener, shutdown| {
                    plugboard_sandbox::serve(
                        listener,
                        plugboard_sandbox::SandboxOptions::default(),
                        shutdown,
                    )
                },
            )
            .await
        }
    }
}
