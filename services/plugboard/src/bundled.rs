//! The manifest connectors compiled into this binary (see `build.rs`): every
//! `services/connector-*` folder with a `manifest.yaml`, served by the generic runtime.

use std::path::Path;

use plugboard_connector_runtime::manifest::{self, Loaded};
use plugboard_connector_runtime::{Config, Error};
use plugboard_runtime::config::{ConfigError, Env};
use plugboard_runtime::process::Shutdown;
use tokio::net::TcpListener;

/// One connector folder's texts.
pub struct Bundled {
    /// `connector-<name>`.
    pub folder: &'static str,
    pub manifest: &'static str,
    /// Mapping spec files: (file name, YAML).
    pub mappings: &'static [(&'static str, &'static str)],
}

include!(concat!(env!("OUT_DIR"), "/bundled.rs"));

/// The bundled folder `connector-<name>`.
pub fn find(folder: &str) -> Option<&'static Bundled> {
    BUNDLED.iter().find(|bundled| bundled.folder == folder)
}

impl Bundled {
    /// The folder, checked as serving checks it.
    pub fn load(&self) -> Result<Loaded, Error> {
        manifest::load_bundled(self.folder, self.manifest, self.mappings)
            .map_err(plugboard_connector_runtime::startup_problems)
    }
}

/// What `plugboard serve connector-<name>` serves: the folder `PLUGBOARD_CONNECTOR_DIR` names
/// when it is set (a newer manifest than the binary's), else the bundled one. Read and checked
/// with the configuration, so a broken folder stops the process before it binds.
pub fn config(env: &Env, bundled: &Bundled) -> Result<(Config, Loaded), ConfigError> {
    let invalid = |key: &str, value: String, error: Error| ConfigError::Invalid {
        key: key.to_owned(),
        value,
        reason: error.to_string(),
    };
    match env.get("PLUGBOARD_CONNECTOR_DIR") {
        Some(dir) => {
            let config = Config::from_env(env)?;
            let loaded = manifest::load_for_serving(Path::new(dir))
                .map_err(plugboard_connector_runtime::startup_problems)
                .map_err(|e| invalid("PLUGBOARD_CONNECTOR_DIR", dir.to_owned(), e))?;
            Ok((config, loaded))
        }
        None => {
            let config = Config::from_env_for(env, Some(Path::new(bundled.folder)))?;
            let loaded = bundled
                .load()
                .map_err(|e| invalid("PLUGBOARD_CONNECTOR_DIR", String::new(), e))?;
            Ok((config, loaded))
        }
    }
}

/// Serves a configured connector until `shutdown`.
pub async fn serve(
    (config, loaded): (Config, Loaded),
    listener: TcpListener,
    shutdown: Shutdown,
) -> Result<(), Error> {
    plugboard_connector_runtime::serve_loaded(config, loaded, listener, shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_manifest_folder_is_bundled_and_loads() {
        let services = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for entry in std::fs::read_dir(&services).expect("services") {
            let path = entry.expect("entry").path();
            let folder = path.file_name().map(|n| n.to_string_lossy().into_owned());
            let Some(folder) = folder.filter(|f| f.starts_with("connector-")) else {
                continue;
            };
            if path.join("manifest.yaml").exists() {
                let bundled = find(&folder).expect("bundled");
                let loaded = bundled.load().expect("loads");
                let on_disk = manifest::load_for_serving(&path).expect("loads from disk");
                assert_eq!(loaded.mappings, on_disk.mappings, "{folder}");
            }
        }
        assert!(find("connector-bullhorn").is_some());
    }
}
