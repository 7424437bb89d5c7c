//! `uc-nixfmt [--check] FILE...`: the flake's formatter (alejandra) for machines
//! without nixpkgs, built from the same alejandra release as a library.

use std::process::ExitCode;

use alejandra::format::{in_memory, Status};

const USAGE: &str = "usage: uc-nixfmt [--check] FILE...\n\
  Formats Nix files in place with alejandra.\n\
  --check  change nothing; list files that are not formatted and exit 1";

fn main() -> ExitCode {
    let mut check = false;
    let mut files = Vec::new();
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--check" => check = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            flag if flag.starts_with('-') => {
                eprintln!("uc-nixfmt: unknown flag {flag}\n{USAGE}");
                return ExitCode::from(2);
            }
            _ => files.push(arg),
        }
    }
    if files.is_empty() {
        eprintln!("uc-nixfmt: no files given\n{USAGE}");
        return ExitCode::from(2);
    }

    let mut failed = false;
    for file in files {
        let before = match std::fs::read_to_string(&file) {
            Ok(text) => text,
            Err(err) => {
                eprintln!("uc-nixfmt: cannot read {file}: {err}");
                failed = true;
                continue;
            }
        };
        match in_memory(file.clone(), before) {
            (Status::Error(err), _) => {
                eprintln!("uc-nixfmt: {file}: not valid Nix: {err}");
                failed = true;
            }
            (Status::Changed(false), _) => {}
            (Status::Changed(true), _) if check => {
                println!("not formatted: {file} (run: uc-nixfmt {file})");
                failed = true;
            }
            (Status::Changed(true), after) => {
                if let Err(err) = std::fs::write(&file, after) {
                    eprintln!("uc-nixfmt: cannot write {file}: {err}");
                    failed = true;
                } else {
                    println!("formatted: {file}");
                }
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
