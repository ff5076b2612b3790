//! Plugboard processes started by a test, killed when the test ends.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The `plugboard` binary next to the test executable (`target/debug/plugboard`).
pub fn plugboard_bin() -> PathBuf {
    let test_exe = std::env::current_exe().expect("a test knows its own path");
    // target/debug/deps/<test> -> target/debug/plugboard
    let bin = test_exe
        .parent()
        .and_then(Path::parent)
        .map(|dir| dir.join("plugboard"))
        .expect("test executables live in target/<profile>/deps");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p plugboard` first (tests/run.sh does)",
        bin.display()
    );
    bin
}

/// A child process whose output goes to a log file, killed on drop.
pub struct Process {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Process {
    pub fn start(name: &str, args: &[&str], env: &[(String, String)], log_dir: &Path) -> Process {
        std::fs::create_dir_all(log_dir).expect("log directory");
        let log = log_dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).expect("log file");
        let mut command = Command::new(plugboard_bin());
        command
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("PLUGBOARD_LOG", "info")
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file handle"))
            .stderr(file);
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command.spawn().expect("the plugboard binary starts");
        Process {
            name: name.to_owned(),
            child,
            log,
        }
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The log so far, for assertions and failure messages.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `plugboard <args>` to completion and returns its stdout.
pub fn run_to_end(args: &[&str], env: &[(String, String)]) -> anyhow::Result<String> {
    let mut command = Command::new(plugboard_bin());
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output()?;
    anyhow::ensure!(
        output.status.success(),
        "plugboard {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
