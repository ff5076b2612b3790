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
        Service::ConnectorBullhorn => serve_bundled("connector-bullhorn").await,
        Service::SandboxBullhorn => {
            serve_from_env(
                "sandbox-bullhorn",
                |env| {
                    let addr = env.listen_addr(SocketAddr::from(([127, 0, 0, 1], 9101)))?;
                    Ok((addr, sandbox_options(env)?))
                },
                |(addr, _)| *addr,
                |(_, options), listener, shutdown| {
                    plugboard_sandbox::serve(listener, options, shutdown)
                },
            )
            .await
        }
    }
}

/// A manifest connector compiled into the binary, served by the generic runtime.
async fn serve_bundled(folder: &'static str) -> ExitCode {
    let Some(bundled) = crate::bundled::find(folder) else {
        eprintln!("{folder}: not compiled into this binary");
        return ExitCode::FAILURE;
    };
    plugboard_runtime::process::serve_from_env(
        folder,
        |env| crate::bundled::config(env, bundled),
        |(config, _)| config.listen_addr,
        crate::bundled::serve,
    )
    .await
}

/// The sandbox's size and rate limit, for benchmarks and load tests: record counts from
/// `PLUGBOARD_SANDBOX_{CANDIDATES,JOB_ORDERS,SUBMISSIONS,PLACEMENTS}` and entity requests per
/// second from `PLUGBOARD_SANDBOX_REQUESTS_PER_SECOND` (0 disables the limit); unset variables
/// keep the defaults.
fn sandbox_options(
    env: &plugboard_runtime::config::Env,
) -> Result<plugboard_sandbox::SandboxOptions, plugboard_runtime::config::ConfigError> {
    use plugboard_sandbox::SandboxOptions;
    use plugboard_sandbox::bullhorn::SeedCounts;

    let defaults = SandboxOptions::default();
    let counts = SeedCounts {
        candidates: env.parse_or("PLUGBOARD_SANDBOX_CANDIDATES", defaults.counts.candidates)?,
        job_orders: env.parse_or("PLUGBOARD_SANDBOX_JOB_ORDERS", defaults.counts.job_orders)?,
        submissions: env.parse_or("PLUGBOARD_SANDBOX_SUBMISSIONS", defaults.counts.submissions)?,
        placements: env.parse_or("PLUGBOARD_SANDBOX_PLACEMENTS", defaults.counts.placements)?,
    };
    let requests_per_second: u32 = env.parse_or(
        "PLUGBOARD_SANDBOX_REQUESTS_PER_SECOND",
        defaults.requests_per_second.unwrap_or(0),
    )?;
    Ok(SandboxOptions {
        counts,
        requests_per_second: (requests_per_second > 0).then_some(requests_per_second),
        ..defaults
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugboard_runtime::config::Env;

    #[test]
    fn sandbox_options_default_when_unset() {
        let options = sandbox_options(&Env::from_pairs::<&str, &str>([])).unwrap();
        let defaults = plugboard_sandbox::SandboxOptions::default();
        assert_eq!(options.counts, defaults.counts);
        assert_eq!(options.requests_per_second, defaults.requests_per_second);
    }

    #[test]
    fn sandbox_options_read_counts_and_unlimited_rate() {
        let env = Env::from_pairs([
            ("PLUGBOARD_SANDBOX_CANDIDATES", "100000"),
            ("PLUGBOARD_SANDBOX_JOB_ORDERS", "3"),
            ("PLUGBOARD_SANDBOX_SUBMISSIONS", "4"),
            ("PLUGBOARD_SANDBOX_PLACEMENTS", "2"),
            ("PLUGBOARD_SANDBOX_REQUESTS_PER_SECOND", "0"),
        ]);
        let options = sandbox_options(&env).unwrap();
        assert_eq!(options.counts.candidates, 100_000);
        assert_eq!(options.counts.job_orders, 3);
        assert_eq!(options.counts.submissions, 4);
        assert_eq!(options.counts.placements, 2);
        assert_eq!(options.requests_per_second, None);
    }

    #[test]
    fn sandbox_options_reject_bad_numbers() {
        let env = Env::from_pairs([("PLUGBOARD_SANDBOX_CANDIDATES", "many")]);
        let error = sandbox_options(&env).unwrap_err().to_string();
        assert!(error.contains("PLUGBOARD_SANDBOX_CANDIDATES"), "{error}");
    }
}
