//! The agent as a daemon: watches this node's desired system in the store
//! (uc-store, or any etcd v3 API), switches, and writes the observed state
//! back. Serves /health and /metrics.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use axum::middleware;
use axum::routing::get;
use axum::Router;
use etcd_client::{Client, EventType, WatchOptions};
use tracing::Instrument;
use uc_daemon::http::{json_response, metrics_response};
use uc_daemon::metrics::{self, Counter, Family, Registry};
use uc_types::{keys, unix_seconds, DesiredSystem, NixAgentConfig, ObservedSystem, SystemState};

use crate::switch::Switcher;

struct Status {
    observed: Mutex<Option<ObservedSystem>>,
    /// `switches` by `outcome`: healthy, rolled-back, failed.
    switches: Family<[(&'static str, &'static str); 1], Counter>,
    registry: Registry,
}

impl Status {
    fn new() -> Status {
        let switches = Family::<[(&'static str, &'static str); 1], Counter>::default();
        for outcome in ["healthy", "rolled-back", "failed"] {
            // Every outcome is shown, at 0 until it happens.
            drop(switches.get_or_create(&[("outcome", outcome)]));
        }
        let mut registry = metrics::registry("uc_nix_agent");
        registry.register(
            "switches",
            "Switches finished, by outcome",
            switches.clone(),
        );
        Status {
            observed: Mutex::new(None),
            switches,
            registry,
        }
    }

    fn record(&self, observed: &ObservedSystem) {
        let outcome = match observed.state {
            SystemState::Healthy => "healthy",
            SystemState::RolledBack => "rolled-back",
            SystemState::Failed => "failed",
            SystemState::Switching => return,
        };
        self.switches.get_or_create(&[("outcome", outcome)]).inc();
    }

    fn observed(&self) -> Option<ObservedSystem> {
        match self.observed.lock() {
            Ok(o) => o.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn set(&self, observed: ObservedSystem) {
        match self.observed.lock() {
            Ok(mut o) => *o = Some(observed),
            Err(poisoned) => *poisoned.into_inner() = Some(observed),
        }
    }
}

/// Why the daemon could not run (once running, it only stops on shutdown).
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The HTTP endpoint's address could not be bound; uc-daemon says why.
    #[error(transparent)]
    Listen(#[from] uc_daemon::BindError),
}

pub async fn run(
    config: NixAgentConfig,
    switcher: Switcher,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), DaemonError> {
    let status = Arc::new(Status::new());
    let listener = uc_daemon::bind_http(config.http_listen).await?;
    let app = router(status.clone());
    uc_daemon::http::spawn_serve(listener, app);

    let agent = Agent {
        desired_key: keys::desired_system(&config.node),
        observed_key: keys::observed_system(&config.node),
        switcher: Arc::new(switcher),
        status,
        last: None,
    };
    tracing::info!(node = %config.node, endpoints = ?config.store_endpoints, http = %config.http_listen, "uc-nix-agent running");
    let span = tracing::info_span!("nix-agent", node = %config.node);
    let watch = agent
        .watch_forever(config.store_endpoints.clone())
        .instrument(span);
    tokio::select! {
        () = watch => Ok(()),
        () = shutdown => {
            tracing::info!("shutting down");
            Ok(())
        }
    }
}

fn router(status: Arc<Status>) -> Router {
    let health = {
        let status = status.clone();
        move || async move {
            let body = serde_json::json!({"status": "ok", "observed": status.observed()});
            json_response(StatusCode::OK, &body)
        }
    };
    let metrics = move || {
        let body = metrics::render(&status.registry);
        async move { metrics_response(body) }
    };
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .layer(middleware::from_fn(uc_daemon::http::request_span))
}

struct Agent {
    desired_key: String,
    observed_key: String,
    switcher: Arc<Switcher>,
    status: Arc<Status>,
    /// The last desired value acted on, so a repeated event does not switch twice.
    last: Option<DesiredSystem>,
}

impl Agent {
    /// Watches until the daemon stops, reconnecting with backoff.
    async fn watch_forever(mut self, endpoints: Vec<String>) {
        let mut recovered = false;
        let mut backoff = Duration::from_millis(200);
        loop {
            match self.watch(&endpoints, &mut recovered).await {
                Ok(()) => tracing::warn!("watch ended; reconnecting"),
                Err(err) => tracing::warn!(%err, retry_in = ?backoff, "store unavailable"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    async fn watch(
        &mut self,
        endpoints: &[String],
        recovered: &mut bool,
    ) -> Result<(), etcd_client::Error> {
        let mut client = Client::connect(endpoints, None).await?;
        if !*recovered {
            let switcher = self.switcher.clone();
            let span = tracing::Span::current();
            if let Ok(Some(observed)) =
                tokio::task::spawn_blocking(move || span.in_scope(|| switcher.recover())).await
            {
                self.report(&mut client, observed).await?;
            }
            *recovered = true;
        }
        let current = client.get(self.desired_key.as_str(), None).await?;
        let revision = current.header().map_or(0, |h| h.revision());
        if let Some(kv) = current.kvs().first() {
            self.apply(&mut client, kv.value()).await?;
        }
        let options = WatchOptions::new().with_start_revision(revision + 1);
        let mut stream = client
            .watch(self.desired_key.as_str(), Some(options))
            .await?;
        while let Some(response) = stream.message().await? {
            for event in response.events() {
                match (event.event_type(), event.kv()) {
                    (EventType::Put, Some(kv)) => self.apply(&mut client, kv.value()).await?,
                    (EventType::Delete, _) => {
                        tracing::info!(key = %self.desired_key, "desired system deleted; keeping the current system")
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    async fn apply(&mut self, client: &mut Client, value: &[u8]) -> Result<(), etcd_client::Error> {
        let desired: DesiredSystem = match serde_json::from_slice(value) {
            Ok(desired) => desired,
            Err(err) => {
                let error = format!(
                    "{} is not a desired system ({{storePath, generation, rollout}}): {err}",
                    self.desired_key
                );
                tracing::error!("{error}");
                let observed = ObservedSystem {
                    store_path: self.switcher.nix.current(),
                    state: SystemState::Failed,
                    generation: self.last.as_ref().map_or(0, |d| d.generation),
                    since: unix_seconds(),
                    error: Some(error),
                };
                return self.report(client, observed).await;
            }
        };
        if self.last.as_ref() == Some(&desired) {
            return Ok(());
        }
        self.last = Some(desired.clone());
        if self.switcher.nix.current().as_deref() != Some(desired.store_path.as_str()) {
            let switching = ObservedSystem {
                store_path: Some(desired.store_path.clone()),
                state: SystemState::Switching,
                generation: desired.generation,
                since: unix_seconds(),
                error: None,
            };
            self.report(client, switching).await?;
        }
        let switcher = self.switcher.clone();
        let span = tracing::Span::current();
        // The switch blocks on nix; a shutdown waits for it rather than leaving it half done.
        let observed =
            tokio::task::spawn_blocking(move || span.in_scope(|| switcher.switch(&desired)))
                .await
                .map_err(|e| etcd_client::Error::IoError(std::io::Error::other(e.to_string())))?;
        self.status.record(&observed);
        self.report(client, observed).await
    }

    async fn report(
        &self,
        client: &mut Client,
        observed: ObservedSystem,
    ) -> Result<(), etcd_client::Error> {
        tracing::info!(state = ?observed.state, store_path = ?observed.store_path, generation = observed.generation, error = ?observed.error, "observed");
        let value = serde_json::to_vec(&observed).unwrap_or_default();
        self.status.set(observed);
        client
            .put(self.observed_key.as_str(), value, None)
            .await
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_keep_their_names() {
        let status = Status::new();
        status.record(&ObservedSystem {
            store_path: None,
            state: SystemState::RolledBack,
            generation: 1,
            since: 0,
            error: None,
        });
        let text = metrics::render(&status.registry);
        uc_testkit::assert_metrics(
            &text,
            &[
                "# TYPE uc_nix_agent_switches counter\n",
                "uc_nix_agent_switches_total{outcome=\"healthy\"} 0\n",
                "uc_nix_agent_switches_total{outcome=\"rolled-back\"} 1\n",
                "uc_nix_agent_switches_total{outcome=\"failed\"} 0\n",
            ],
        );
    }
}
