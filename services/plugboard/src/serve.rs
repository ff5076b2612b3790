//! `plugboard serve <service>`: one service per process, as split mode and `deploy/` run them.

use std::fmt::Display;
use std::future::Future;
use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use plugboard_runtime::config::{ConfigError, Env};
use plugboard_runtime::server::shutdown_signal;
use tokio::net::TcpListener;

/// sysexits' EX_CONFIG: the configuration is wrong and retrying will not help.
const EXIT_CONFIG: u8 = 78;

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
    let env = match Env::from_process() {
        Ok(env) => env,
        Err(error) => return config_error("plugboard", &error),
    };
    let name = args
        .service
        .to_possible_value()
        .map(|value| value.get_name().to_owned())
        .unwrap_or_default();
    let _telemetry = match plugboard_runtime::telemetry::init(&name, &env) {
        Ok(guard) => guard,
        Err(error) => return config_error(&name, &error),
    };
    match args.service {
        Service::Credentials => {
            serve(
                &name,
                plugboard_credentials::Config::from_env(&env),
                |config| {
                    (config.listen_addr, |listener| {
                        plugboard_credentials::run(config, listener, shutdown_signal())
                    })
                },
            )
            .await
        }
        Service::Mapping => {
            serve(&name, plugboard_mapping::Config::from_env(&env), |config| {
                (config.listen_addr, |listener| {
                    plugboard_mapping::run(config, listener, shutdown_signal())
                })
            })
            .await
        }
        Service::Sync => {
            serve(&name, plugboard_sync::Config::from_env(&env), |config| {
                (config.listen_addr, |listener| {
                    plugboard_sync::run(config, listener, shutdown_signal())
                })
            })
            .await
        }
        Service::Health => {
            serve(&name, plugboard_health::Config::from_env(&env), |config| {
                (config.listen_addr, |listener| {
                    plugboard_health::run(config, listener, shutdown_signal())
                })
            })
            .await
        }
        Service::Registry => {
            serve(
                &name,
                plugboard_registry::Config::from_env(&env),
                |config| {
                    (config.listen_addr, |listener| {
                        plugboard_registry::run(config, listener, shutdown_signal())
                    })
                },
            )
            .await
        }
        Service::Gateway => {
            serve(&name, plugboard_gateway::Config::from_env(&env), |config| {
                (config.listen_addr, |listener| {
                    plugboard_gateway::run(config, listener, shutdown_signal())
                })
            })
            .await
        }
        Service::ConnectorBullhorn => {
            serve(
                &name,
                plugboard_connector_bullhorn::Config::from_env(&env),
                |config| {
                    (config.listen_addr, |listener| {
                        plugboard_connector_bullhorn::run(config, listener, shutdown_signal())
                    })
                },
            )
            .await
        }
        Service::SandboxBullhorn => {
            let addr = match env.parse_or(
                "PLUGBOARD_LISTEN_ADDR",
                SocketAddr::from(([127, 0, 0, 1], 9101)),
            ) {
                Ok(addr) => addr,
                Err(error) => return config_error(&name, &error),
            };
            let options = plugboard_sandbox::SandboxOptions::default();
            serve(&name, Ok::<_, ConfigError>(()), |()| {
                (addr, |listener| {
                    plugboard_sandbox::serve(listener, options, shutdown_signal())
                })
            })
            .await
        }
    }
}

/// Validates config, binds, then serves: bad configuration stops the process before any port
/// is bound, with exit code 78 and a message naming the variable.
async fn serve<C, R, Fut, E>(
    name: &str,
    config: Result<C, ConfigError>,
    prepare: impl FnOnce(C) -> (SocketAddr, R),
) -> ExitCode
where
    R: FnOnce(TcpListener) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Display,
{
    let config = match config {
        Ok(config) => config,
        Err(error) => return config_error(name, &error),
    };
    let (addr, run) = prepare(config);
    let listener = match TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("{name}: cannot listen on {addr}: {error}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(service = name, %addr, "listening");
    match run(listener).await {
        Ok(()) => {
            tracing::info!(service = name, "stopped");
            ExitCode::SUCCESS
        }
        Err(error) => {
            tracing::error!(service = name, error = %error, "stopped with an error");
            eprintln!("{name}: {error}");
            ExitCode::FAILURE
        }
    }
}

fn config_error(name: &str, error: &dyn Display) -> ExitCode {
    eprintln!("{name}: configuration error: {error}");
    ExitCode::from(EXIT_CONFIG)
}
