//! `plugboard keys connector <name>`: a connector's own Ed25519 key pair.
//!
//! The private key goes to the connector alone (`PLUGBOARD_CONNECTOR_SIGNING_KEY_FILE`); the
//! printed `name=public-key` line goes into credentials' `PLUGBOARD_CONNECTOR_PUBLIC_KEYS`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use plugboard_runtime::connector_keys::ConnectorSigningKey;
use secrecy::ExposeSecret;

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Makes a connector's key pair: writes the private key to a file (mode 0600) and prints
    /// the `name=public-key` entry for credentials' PLUGBOARD_CONNECTOR_PUBLIC_KEYS.
    Connector(ConnectorArgs),
}

#[derive(Debug, Args)]
pub struct ConnectorArgs {
    /// The connector's name as its manifest gives it, for example "bullhorn".
    name: String,
    /// Where to write the private key; the file must not exist yet.
    #[arg(long)]
    private_key_file: PathBuf,
}

pub fn run(command: KeysCommand) -> ExitCode {
    let KeysCommand::Connector(args) = command;
    match connector(&args) {
        Ok(entry) => {
            println!("{entry}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("plugboard keys connector: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn connector(args: &ConnectorArgs) -> anyhow::Result<String> {
    let valid = !args.name.is_empty()
        && args
            .name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    anyhow::ensure!(
        valid,
        "`{}` is not a connector name: use the manifest's name (lowercase letters, digits, - and _)",
        args.name
    );
    let (key, private) = ConnectorSigningKey::generate();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&args.private_key_file).with_context(|| {
        format!(
            "cannot create {} (it must not exist yet)",
            args.private_key_file.display()
        )
    })?;
    writeln!(file, "{}", private.expose_secret())
        .with_context(|| format!("cannot write {}", args.private_key_file.display()))?;
    Ok(format!("{}={}", args.name, key.public_key()))
}
