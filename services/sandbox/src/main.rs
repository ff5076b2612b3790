//! `plugboard-sandbox`: the simulated Bullhorn API as a standalone process.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use plugboard_runtime::config::Env;
use plugboard_runtime::server::shutdown_signal;
use plugboard_runtime::telemetry;
use plugboard_sandbox::SandboxOptions;
use tracing::info;

/// Simulated Bullhorn REST API for Plugboard's dev mode and tests.
#[derive(Debug, Parser)]
#[command(name = "plugboard-sandbox", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9101")]
    addr: SocketAddr,
    /// Seed for the generated records; the same seed gives the same records.
    #[arg(long, default_value_t = SandboxOptions::default().seed)]
    seed: u64,
    /// Requests per second allowed on entity endpoints before 429; 0 disables the limit.
    #[arg(long, default_value_t = 25)]
    requests_per_second: u32,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let env = match Env::from_process() {
        Ok(env) => env,
        Err(error) => {
            eprintln!("plugboard-sandbox: configuration error: {error}");
            return ExitCode::from(78);
        }
    };
    let _telemetry = match telemetry::init("plugboard-sandbox", &env) {
        Ok(guard) => guard,
        Err(error) => {
            eprintln!("plugboard-sandbox: cannot start telemetry: {error}");
            return ExitCode::from(78);
        }
    };
    let options = SandboxOptions {
        seed: args.seed,
        requests_per_second: (args.requests_per_second > 0).then_some(args.requests_per_second),
        ..SandboxOptions::default()
    };
    let listener = match tokio::net::TcpListener::bind(args.addr).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("plugboard-sandbox: cannot bind {}: {error}", args.addr);
            return ExitCode::FAILURE;
        }
    };
    info!(addr = %args.addr, "listening");
    match plugboard_sandbox::serve(listener, options, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("plugboard-sandbox: {error}");
            ExitCode::FAILURE
        }
    }
}
