//! `plugboard tenant create | revoke-key`: a tenant and an API key in the gateway's database,
//! and revoking a key (which ends the dashboard sessions opened with it).

use std::process::ExitCode;

use clap::{Args, Subcommand};
use plugboard_gateway::TenantStore;

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Creates a tenant (if missing) and adds an API key for it; prints the key.
    Create(CreateArgs),
    /// Revokes an API key: it stops authenticating and its dashboard sessions end at once.
    RevokeKey(RevokeArgs),
}

#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// The key to revoke.
    #[arg(long, env = "PLUGBOARD_TENANT_API_KEY", hide_env_values = true)]
    api_key: String,
    /// The gateway's database.
    #[arg(long, env = "PLUGBOARD_DATABASE_URL", hide_env_values = true)]
    database_url: String,
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
    let args = match command {
        TenantCommand::Create(args) => args,
        TenantCommand::RevokeKey(args) => return revoke(args).await,
    };
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

async fn revoke(args: RevokeArgs) -> ExitCode {
    let revoked = match TenantStore::open(&args.database_url).await {
        Ok(store) => store.revoke_api_key(args.api_key.trim()).await,
        Err(error) => Err(error),
    };
    match revoked {
        Ok(true) => {
            println!("revoked");
            ExitCode::SUCCESS
        }
        Ok(false) => {
            eprintln!("plugboard tenant revoke-key: no such API key");
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("plugboard tenant revoke-key: {error:#}");
            ExitCode::FAILURE
        }
    }
}
