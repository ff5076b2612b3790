//! `plugboard tenant create`: a tenant and an API key in the gateway's database.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use plugboard_gateway::TenantStore;

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Creates a tenant (if missing) and adds an API key for it; prints the key.
    Create(CreateArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Tenant id, for example "acme".
    #[arg(long)]
    id: String,
    /// Display name.
    #[arg(long)]
    name: String,
    /// The key to add; a new random one is generated when omitted.
    #[arg(long, env = "PLUGBOARD_TENANT_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// The gateway's database.
    #[arg(long, env = "PLUGBOARD_DATABASE_URL", hide_env_values = true)]
    database_url: String,
}

pub async fn run(command: TenantCommand) -> ExitCode {
    let TenantCommand::Create(args) = command;
    match create(args).await {
        Ok(api_key) => {
            println!("{api_key}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("plugboard tenant create: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn create(args: CreateArgs) -> anyhow::Result<String> {
    let store = TenantStore::open(&args.database_url).await?;
    store.ensure_tenant(&args.id, &args.name).await?;
    let api_key = args
        .api_key
        .unwrap_or_else(plugboard_gateway::tenants::generate_api_key);
    store.add_api_key(&args.id, &api_key, "cli").await?;
    Ok(api_key)
}
