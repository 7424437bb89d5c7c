//! The bootstrap admin: user `admin`, role `admin` (`*:*:*`) bound in the
//! cluster scope, created once when the store has no user `admin`. Its
//! password is read from a file (never the Nix store); if the file is
//! absent a password is generated, written there (0600) and logged once.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use etcd_client::Client;
use uc_types::iam::{Permission, Role, RoleBinding, Scope, Subject, User};
use uc_types::keys;

use crate::credentials::{hash_password, random_secret, CredentialError};
use crate::store::{self, StoreError};

pub const ADMIN: &str = "admin";

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("cannot read the bootstrap admin secret {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write the generated bootstrap admin secret to {}: {source} (set --bootstrap-secret-file to a writable path)", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the bootstrap admin secret {} is empty", path.display())]
    Empty { path: PathBuf },
    #[error(transparent)]
    Credential(#[from] CredentialError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The admin's password: the file's first line, or a new one written there.
fn secret(path: &Path) -> Result<String, BootstrapError> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let secret = text.lines().next().unwrap_or_default().trim().to_owned();
            if secret.is_empty() {
                return Err(BootstrapError::Empty {
                    path: path.to_owned(),
                });
            }
            Ok(secret)
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            let secret = random_secret()?;
            let error = |source| BootstrapError::Write {
                path: path.to_owned(),
                source,
            };
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(error)?;
            writeln!(file, "{secret}").map_err(error)?;
            // Shown once: the operator's only copy besides the file.
            tracing::warn!(user = ADMIN, password = %secret, path = %path.display(),
                "bootstrap admin password generated (shown once; also in the file)");
            Ok(secret)
        }
        Err(source) => Err(BootstrapError::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Creates the admin, its role and binding unless user `admin` exists.
pub async fn ensure_admin(client: &mut Client, secret_file: &Path) -> Result<(), BootstrapError> {
    let user_key = keys::iam_object("users", ADMIN);
    if store::get::<User>(client, &user_key).await?.is_some() {
        return Ok(());
    }
    let secret = secret(secret_file)?;
    let hash = tokio::task::block_in_place(|| hash_password(&secret))?;
    let all = Permission::parse("*:*:*").expect("*:*:* is a permission");
    let role = Role {
        name: ADMIN.into(),
        permissions: vec![all],
    };
    store::put_if_absent(client, &keys::iam_object("roles", ADMIN), &role).await?;
    let binding = RoleBinding {
        name: "admin-cluster".into(),
        subject: Subject::User(ADMIN.into()),
        role: ADMIN.into(),
        scope: Scope::Cluster,
    };
    store::put_if_absent(
        client,
        &keys::iam_object("bindings", &binding.name),
        &binding,
    )
    .await?;
    let user = User {
        name: ADMIN.into(),
        password_hash: Some(hash),
        ..User::default()
    };
    if store::put_if_absent(client, &user_key, &user).await? {
        tracing::info!(user = ADMIN, "bootstrap admin created");
    }
    Ok(())
}
