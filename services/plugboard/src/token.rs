//! `plugboard token`: a service token for calling the gRPC APIs by hand (`buf curl`,
//! `grpcurl`), signed with the mesh key as a service of the mesh would sign it.
//!
//! The token acts for one tenant, is good for five minutes, and can never carry a connector
//! identity (that takes the connector's own key), so it cannot lease secrets.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use plugboard_runtime::config::Env;
use plugboard_runtime::identity::{Caller, MeshKey};
use secrecy::SecretString;

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The tenant the calls act for, for example "demo".
    #[arg(long)]
    tenant: String,
    /// Who the calls are from, as the services' logs and audit will name them.
    #[arg(long, default_value = "cli")]
    subject: String,
    /// Read the mesh key from this file; otherwise PLUGBOARD_MESH_KEY or
    /// PLUGBOARD_MESH_KEY_FILE, and then the key `plugboard dev` keeps in .plugboard/keys.
    #[arg(long)]
    mesh_key_file: Option<PathBuf>,
}

pub fn run(args: TokenArgs) -> ExitCode {
    match token(&args) {
        Ok(token) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("plugboard token: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn token(args: &TokenArgs) -> anyhow::Result<String> {
    anyhow::ensure!(
        !args.tenant.trim().is_empty(),
        "--tenant must name a tenant"
    );
    let secret = mesh_secret(args)?;
    let key = MeshKey::new(&secret).context("the mesh key")?;
    let caller = Caller {
        subject: args.subject.clone(),
        tenant: Some(args.tenant.clone()),
        connector: None,
    };
    Ok(key.sign(&caller)?)
}

fn mesh_secret(args: &TokenArgs) -> anyhow::Result<SecretString> {
    let read = |path: &PathBuf| -> anyhow::Result<SecretString> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the mesh key file {}", path.display()))?;
        Ok(SecretString::from(text.trim().to_owned()))
    };
    if let Some(path) = &args.mesh_key_file {
        return read(path);
    }
    let env = Env::from_process()?;
    let set =
        env.get("PLUGBOARD_MESH_KEY").is_some() || env.get("PLUGBOARD_MESH_KEY_FILE").is_some();
    if set {
        return Ok(env.secret("PLUGBOARD_MESH_KEY", "the mesh key")?);
    }
    let dev = PathBuf::from(".plugboard/keys/mesh.key");
    if dev.exists() {
        return read(&dev);
    }
    anyhow::bail!(
        "no mesh key: pass --mesh-key-file, set PLUGBOARD_MESH_KEY(_FILE), or run this where \
         `plugboard dev` keeps its data (.plugboard)"
    )
}
