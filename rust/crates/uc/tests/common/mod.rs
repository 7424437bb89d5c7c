//! Shared by the CLI tests: run the built `uc` binary.

use std::process::Command;

/// Runs `uc` with `args`: (success, stdout, stderr).
pub fn uc(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_uc"))
        .args(args)
        .output()
        .expect("run uc");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
