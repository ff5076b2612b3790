//! `plugboard connector …`: the connector kit's tooling.
//!
//! - `check <path>…`: validates manifests and mappings offline, one `file:line: problem` each;
//! - `new <name>`: scaffolds `services/connector-<name>` (manifest, mapping, conformance.yaml)
//!   and its sandbox stub `services/sandbox/src/<name>.rs`;
//! - `stats`: per connector, its category, streams, writes, webhooks and lines of manifest,
//!   mapping and Rust;
//! - `serve <dir>`: serves a connector folder with the generic runtime, configured like every
//!   service by `PLUGBOARD_*` variables.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use plugboard_connector_runtime::{Config, run, tooling};

#[derive(Debug, Subcommand)]
pub enum ConnectorCommand {
    /// Validates connector folders (or their manifest.yaml) offline.
    Check {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Scaffolds services/connector-<name>.
    New {
        name: String,
        /// The services folder to create it in.
        #[arg(long, default_value = "services")]
        services: PathBuf,
    },
    /// Lines of manifest, mapping and Rust per connector.
    Stats {
        #[arg(long, default_value = "services")]
        services: PathBuf,
    },
    /// Serves a connector folder with the generic runtime.
    Serve { dir: PathBuf },
}

pub async fn run_command(command: ConnectorCommand) -> ExitCode {
    match command {
        ConnectorCommand::Check { paths } => {
            let mut failed = false;
            for path in paths {
                match tooling::check(&path) {
                    Ok(loaded) => println!(
                        "ok  {} ({} streams, {} mapping specs)",
                        path.display(),
                        loaded.manifest.streams.len(),
                        loaded.mappings.len()
                    ),
                    Err(problems) => {
                        failed = true;
                        for problem in problems {
                            eprintln!("{problem}");
                        }
                    }
                }
            }
            if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        ConnectorCommand::New { name, services } => match tooling::scaffold(&services, &name) {
            Ok(dir) => {
                let module = name.replace('-', "_");
                println!(
                    "created {} and its sandbox stub {}/sandbox/src/{module}.rs",
                    dir.display(),
                    services.display()
                );
                println!("next:");
                println!("  plugboard connector check {}", dir.display());
                println!(
                    "  add `pub mod {module};` to services/sandbox/src/lib.rs, and the stub's router to"
                );
                println!(
                    "  sandbox() in services/connector-runtime/tests/conformance.rs, which then runs the kit"
                );
                ExitCode::SUCCESS
            }
            Err(message) => {
                eprintln!("plugboard connector new: {message}");
                ExitCode::FAILURE
            }
        },
        ConnectorCommand::Stats { services } => match tooling::stats(&services) {
            Ok(rows) => {
                print!("{}", tooling::render_stats(&rows));
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("plugboard connector stats: {}: {error}", services.display());
                ExitCode::FAILURE
            }
        },
        ConnectorCommand::Serve { dir } => {
            plugboard_runtime::process::serve_from_env(
                "connector",
                |env| {
                    // A folder with problems is bad configuration: refused (exit 78, each
                    // problem at its line) before the port is bound or the registry is told.
                    let config = Config::from_env_for(env, Some(&dir))?;
                    if let Err(problems) = tooling::check(&dir) {
                        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
                        return Err(plugboard_runtime::config::ConfigError::Invalid {
                            key: "the connector folder".to_owned(),
                            value: dir.display().to_string(),
                            reason: format!("it has problems:\n{}", text.join("\n")),
                        });
                    }
                    Ok(config)
                },
                |config| config.listen_addr,
                run,
            )
            .await
        }
    }
}
