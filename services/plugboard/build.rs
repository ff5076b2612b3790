//! Compiles every manifest connector folder (`services/connector-*/manifest.yaml` and its
//! `mappings/*.yaml`) into the binary, so `plugboard serve connector-<name>` and `plugboard dev`
//! serve them with no files beside the binary.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    // Read when the script runs, not baked in when it compiles (`env!`): a build cache shared
    // by clones at other paths reuses the compiled script, and would scan a clone since gone.
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let services = Path::new(&manifest_dir).join("..");
    // A directory is scanned whole: a new connector folder or an edited mapping rebuilds.
    println!("cargo:rerun-if-changed={}", services.display());
    let mut folders: Vec<PathBuf> = std::fs::read_dir(&services)
        .expect("the services folder is readable")
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| {
            path.join("manifest.yaml").is_file()
                && path
                    .file_name()
                    .is_some_and(|name| name.to_string_lossy().starts_with("connector-"))
        })
        .collect();
    folders.sort();
    let mut code = String::from("pub const BUNDLED: &[Bundled] = &[\n");
    for folder in folders {
        let name = folder
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let manifest = folder.join("manifest.yaml");
        let mut mappings: Vec<PathBuf> = std::fs::read_dir(folder.join("mappings"))
            .map(|entries| {
                entries
                    .filter_map(|entry| entry.ok().map(|entry| entry.path()))
                    .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
                    .collect()
            })
            .unwrap_or_default();
        mappings.sort();
        let _ = writeln!(
            code,
            "    Bundled {{\n        folder: {name:?},\n        manifest: include_str!({:?}),\n        mappings: &[",
            manifest.display().to_string()
        );
        for mapping in mappings {
            let file = mapping
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_default();
            let _ = writeln!(
                code,
                "            ({file:?}, include_str!({:?})),",
                mapping.display().to_string()
            );
        }
        code.push_str("        ],\n    },\n");
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::write(out.join("bundled.rs"), code).expect("OUT_DIR is writable");
}
