//! uc-deployer: imports rendered manifests into the store as desired state,
//! serves node closures as a signed Nix binary cache, drives rollouts and
//! answers the installer's phone-home.
//!
//! The binary cache (`cache`), importing deployments as desired state
//! (`deploy`), rollouts in waves (`rollout`), phone-home (`phone_home`), the
//! HTTP API (`api`, `http`) and the web dashboard (`dashboard`), all served
//! by one router, [`app`]; the store helpers they share are in `store`.
//!
//! `api`, `dashboard`, `http` and `rollout` are public only for
//! uc-nix-agent's tests, which still wire their routers by hand.

pub mod api;
pub mod cache;
pub mod dashboard;
pub mod deploy;
pub mod http;
mod phone_home;
pub mod rollout;
mod store;

use std::path::PathBuf;
use std::sync::Arc;

use axum::middleware;

pub use cache::Cache;
pub use store::Store;

/// What the deployer's HTTP server answers from.
pub struct App {
    /// The store connection (answers 503 until it is set).
    pub store: Store,
    pub cache: Arc<Cache>,
    /// The enrollment token phone-home requires; read at every request, so
    /// a rotated token takes effect at once.
    pub enrollment_token_file: PathBuf,
    /// Keys an install plan tells the installer to trust
    /// (cluster.deployer.cache.publicKeys).
    pub trusted_public_keys: Vec<String>,
}

/// Every route of the deployer: the binary cache, `/health`, `/metrics`,
/// the API, the dashboard and phone-home; each request in a span.
pub fn app(app: App) -> axum::Router {
    let phone_home = phone_home::PhoneHome {
        store: app.store.clone(),
        token_file: app.enrollment_token_file,
        public_keys: app.trusted_public_keys,
    };
    http::router(app.cache)
        .merge(api::router(app.store.clone()))
        .merge(dashboard::router(app.store))
        .merge(phone_home::router(phone_home))
        .layer(middleware::from_fn(uc_daemon::http::request_span))
}
