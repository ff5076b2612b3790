//! `plugboard keys connector <name>` as an operator runs it: the private key lands in a new
//! file only the owner can read, and the printed line is the entry credentials checks with.

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

use std::path::Path;
use std::process::{Command, Output};

use plugboard_runtime::connector_keys::{ConnectorKeys, ConnectorSigningKey};
use secrecy::SecretString;

fn plugboard(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_plugboard"))
        .args(args)
        .current_dir(cwd)
        .env_clear()
        .output()
        .unwrap()
}

#[test]
fn a_connector_key_pair_is_written_and_its_public_entry_printed() {
    let dir = std::env::temp_dir().join(format!("pb-keys-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();

    let made = plugboard(
        &[
            "keys",
            "connector",
            "bullhorn",
            "--private-key-file",
            "bh.key",
        ],
        &dir,
    );
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let entry = String::from_utf8(made.stdout).unwrap();
    let private = std::fs::read_to_string(dir.join("bh.key")).unwrap();
    assert!(
        !entry.contains(private.trim()),
        "the private key is not printed"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("bh.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "only the owner may read the key: {mode:o}");
    }
    let key = ConnectorSigningKey::parse(&SecretString::from(private)).unwrap();
    let keys = ConnectorKeys::parse(entry.trim()).unwrap();
    assert!(keys.verify("bullhorn", "token", &key.prove("token")));

    // An existing file is never overwritten, and a name that is not a connector's is refused.
    let again = plugboard(
        &[
            "keys",
            "connector",
            "bullhorn",
            "--private-key-file",
            "bh.key",
        ],
        &dir,
    );
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("must not exist"));
    let bad = plugboard(
        &[
            "keys",
            "connector",
            "Bull Horn",
            "--private-key-file",
            "x.key",
        ],
        &dir,
    );
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a connector name"));
    assert!(!dir.join("x.key").exists());
}
