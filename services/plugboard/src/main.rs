//! `plugboard`: one command for every way of running Plugboard.
//!
//! - `plugboard dev`: every service, the gateway, the Bullhorn sandbox and a seeded demo tenant
//!   in one process on SQLite; what a newcomer runs first.
//! - `plugboard serve <service>`: one service in its own process, configured by `PLUGBOARD_*`
//!   environment variables (or `PLUGBOARD_CONFIG_FILE`); what split mode and `deploy/` run.
//! - `plugboard tenant create`: adds a tenant and an API key to the gateway's database;
//!   `plugboard tenant revoke-key` revokes one and ends its dashboard sessions.
//! - `plugboard connector check | new | stats | serve`: the connector kit's tooling.

mod bundled;
mod connector;
mod dev;
mod keys;
mod serve;
mod tenant;
mod token;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc rather than glibc's malloc: a sync moves pages of thousands of short-lived strings
/// and messages between threads, where glibc's arenas spent about a quarter of mapping's and
/// sync's CPU (the full-sync benchmark, `tests/benches/RESULTS.md`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "plugboard",
    version,
    about = "Integration framework for staffing platforms"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Everything in one process on SQLite, with the Bullhorn sandbox and a demo tenant.
    Dev(dev::DevArgs),
    /// One service in its own process, configured from PLUGBOARD_* environment variables.
    Serve(serve::ServeArgs),
    /// Tenants of the gateway.
    #[command(subcommand)]
    Tenant(tenant::TenantCommand),
    /// Connector kit: check, scaffold, count and serve manifest connectors.
    #[command(subcommand)]
    Connector(connector::ConnectorCommand),
    /// Key material: a connector's own identity key.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// A service token for calling the gRPC APIs by hand (buf curl, grpcurl).
    Token(token::TokenArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("plugboard: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        match cli.command {
            Command::Dev(args) => dev::run(args).await,
            Command::Serve(args) => serve::run(args).await,
            Command::Tenant(command) => tenant::run(command).await,
            Command::Connector(command) => connector::run_command(command).await,
            Command::Keys(command) => keys::run(command),
            Command::Token(args) => token::run(args),
        }
    })
}
