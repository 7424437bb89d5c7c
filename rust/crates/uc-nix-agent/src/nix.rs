//! The Nix operations a switch needs, through the real `nix` commands. With
//! `store_root` set they act on a chroot store (`--store <root>`), so tests and
//! the demo can run several agents on one machine.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

#[derive(Debug, thiserror::Error)]
pub enum NixError {
    #[error("cannot run {program}: {source} (is Nix installed and on PATH?)")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("{what} failed: {detail}")]
    Failed { what: String, detail: String },
}

/// Attempts at fetching a closure when a download fails (1, 2, 4 s apart):
/// a cache that restarts mid-transfer, e.g. the deployer's during a
/// rollout, cuts downloads short ("Transferred a partial file"), and a
/// wave should not fail for it. Other failures (no such path, a signature
/// the node does not trust) fail at once.
const FETCH_ATTEMPTS: u32 = 4;

#[derive(Debug, Clone)]
pub struct NixSystem {
    /// The system profile (`/nix/var/nix/profiles/system` on NixOS).
    pub profile: PathBuf,
    /// A chroot store's root, or None for the machine's own store.
    pub store_root: Option<PathBuf>,
    pub cache_urls: Vec<String>,
    pub trusted_public_keys: Vec<String>,
}

fn last_lines(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(5)..].join("\n")
}

impl NixSystem {
    fn nix_command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        if let Some(root) = &self.store_root {
            command.arg("--store").arg(root);
        }
        command
    }

    fn run(&self, what: &str, mut command: Command) -> Result<Output, NixError> {
        let program = command.get_program().to_string_lossy().into_owned();
        let output = command
            .output()
            .map_err(|source| NixError::Spawn { program, source })?;
        if output.status.success() {
            Ok(output)
        } else {
            Err(NixError::Failed {
                what: what.to_owned(),
                detail: format!("{} ({})", last_lines(&output.stderr), output.status),
            })
        }
    }

    fn cache_options(&self, command: &mut Command) {
        command
            .args(["--option", "substituters", &self.cache_urls.join(" ")])
            .args([
                "--option",
                "trusted-public-keys",
                &self.trusted_public_keys.join(" "),
            ])
            .args(["--option", "require-sigs", "true"]);
    }

    /// Where a store path's files are on this machine.
    pub fn real_path(&self, store_path: &str) -> PathBuf {
        match &self.store_root {
            Some(root) => root.join(store_path.trim_start_matches('/')),
            None => PathBuf::from(store_path),
        }
    }

    /// Fetches the closure of `store_path` from the cache (signatures checked
    /// by Nix), then verifies that a trusted key signed the path itself, which
    /// also covers a path that was already present.
    pub fn realise_trusted(&self, store_path: &str) -> Result<(), NixError> {
        let what = format!("fetching {store_path} from {}", self.cache_urls.join(", "));
        for attempt in 1..=FETCH_ATTEMPTS {
            let mut realise = self.nix_command("nix-store");
            realise.args(["--realise", store_path]);
            self.cache_options(&mut realise);
            match self.run(&what, realise) {
                Ok(_) => break,
                Err(NixError::Failed { detail, .. })
                    if attempt < FETCH_ATTEMPTS && detail.contains("unable to download") =>
                {
                    let wait = std::time::Duration::from_secs(1 << (attempt - 1));
                    tracing::warn!(
                        store_path,
                        attempt,
                        retry_in_s = wait.as_secs(),
                        %detail,
                        "a download from the cache failed; retrying"
                    );
                    std::thread::sleep(wait);
                }
                Err(err) => return Err(err),
            }
        }

        let mut verify = self.nix_command("nix");
        verify
            .args([
                "--extra-experimental-features",
                "nix-command",
                "store",
                "verify",
            ])
            .args(["--no-contents", "--sigs-needed", "1", store_path])
            .args([
                "--option",
                "trusted-public-keys",
                &self.trusted_public_keys.join(" "),
            ]);
        self.run(
            &format!("checking that a trusted key signed {store_path}"),
            verify,
        )
        .map(drop)
    }

    /// The store path the profile points at now, if any.
    pub fn current(&self) -> Option<String> {
        let mut link = self.profile.clone();
        // profile -> system-N-link -> /nix/store/...; follow links by hand, as
        // the store path may only exist under a chroot store's root.
        for _ in 0..8 {
            let target = std::fs::read_link(&link).ok()?;
            let target = if target.is_absolute() {
                target
            } else {
                link.parent().unwrap_or(Path::new("/")).join(target)
            };
            let shown = target.to_string_lossy();
            if shown.starts_with("/nix/store/") {
                return Some(shown.into_owned());
            }
            link = target;
        }
        None
    }

    pub fn set_profile(&self, store_path: &str) -> Result<(), NixError> {
        if let Some(dir) = self.profile.parent() {
            std::fs::create_dir_all(dir).map_err(|e| NixError::Failed {
                what: format!("creating {}", dir.display()),
                detail: e.to_string(),
            })?;
        }
        let mut command = self.nix_command("nix-env");
        command
            .arg("-p")
            .arg(&self.profile)
            .args(["--set", store_path]);
        self.run(
            &format!("setting {} to {store_path}", self.profile.display()),
            command,
        )
        .map(drop)
    }

    /// Points the profile back at `store_path`: at the newest generation
    /// that holds it (not merely the previous number, which may be another
    /// failed system), or at a new generation if none does.
    pub fn set_profile_back(&self, store_path: &str) -> Result<(), NixError> {
        let Some(generation) = self.newest_generation_of(store_path) else {
            return self.set_profile(store_path);
        };
        let mut command = self.nix_command("nix-env");
        command
            .arg("-p")
            .arg(&self.profile)
            .args(["--switch-generation", &generation.to_string()]);
        self.run(
            &format!(
                "switching {} back to generation {generation}",
                self.profile.display()
            ),
            command,
        )
        .map(drop)
    }

    fn newest_generation_of(&self, store_path: &str) -> Option<u64> {
        let dir = self.profile.parent()?;
        let prefix = format!("{}-", self.profile.file_name()?.to_string_lossy());
        std::fs::read_dir(dir)
            .ok()?
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let name = entry.file_name().to_string_lossy().into_owned();
                let number = name
                    .strip_prefix(&prefix)?
                    .strip_suffix("-link")?
                    .parse::<u64>()
                    .ok()?;
                let target = std::fs::read_link(entry.path()).ok()?;
                (target.to_string_lossy() == store_path).then_some(number)
            })
            .max()
    }

    /// `<system>/bin/switch-to-configuration <action>`, under `flock` on
    /// `lock`: the activation holds the lock while it runs, even if this
    /// agent is killed, so a restarted agent waits for an orphaned
    /// activation to end instead of running a second one beside it.
    pub fn activate(&self, store_path: &str, action: &str, lock: &Path) -> Result<(), NixError> {
        let script = self
            .real_path(store_path)
            .join("bin/switch-to-configuration");
        if let Some(dir) = lock.parent() {
            std::fs::create_dir_all(dir).map_err(|e| NixError::Failed {
                what: format!("creating {}", dir.display()),
                detail: e.to_string(),
            })?;
        }
        let mut command = Command::new("flock");
        command
            .arg("--exclusive")
            .arg(lock)
            .arg(&script)
            .arg(action);
        self.run(&format!("{} {action}", script.display()), command)
            .map(drop)
    }
}
