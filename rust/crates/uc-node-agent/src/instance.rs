//! One task per instance: prepares its secrets, starts it, health-checks
//! it, restarts it with backoff when it exits, reports every change of its
//! status, and stops it (SIGTERM, then SIGKILL) when told to.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::Instrument;
use uc_types::{unix_seconds, HealthCheckType, InstancePhase, InstanceState, InstanceStatus};

use crate::logs;
use crate::plan::{InstancePlan, Probe};
use crate::runner::{record_path, Backend, LaunchError, Record, Running};

/// Backoff before the first restart; doubles per crash up to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// An instance that ran this long before exiting restarts after `FIRST_BACKOFF` again.
const STABLE_RUN: Duration = Duration::from_secs(30);
/// While starting, probe this often (failures count only after the grace).
const STARTING_PROBE: Duration = Duration::from_secs(1);

/// Why an instance could not be started (it is retried after a backoff).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create {}: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(transparent)]
    Launch(#[from] LaunchError),
}

/// Why a secret file could not be handed to an instance.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("secret {variable} points into the world-readable Nix store ({source_path}); provision it outside the store")]
    InStore {
        variable: String,
        source_path: String,
    },
    #[error("secret file {source_path} for {variable} cannot be read: {source}")]
    Read {
        variable: String,
        source_path: String,
        source: std::io::Error,
    },
    #[error("cannot create {}: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Why one health probe of an instance failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The command, connect or request failed; uc-probe says how.
    #[error("{0}")]
    Failed(#[source] uc_probe::ProbeError),
    #[error("probe task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// What instance tasks tell the agent.
#[derive(Debug)]
pub enum Update {
    Status(InstanceStatus),
    /// Stopped for good: drop its status.
    Gone {
        name: String,
    },
}

/// What every instance task shares.
pub struct Context {
    pub backend: Backend,
    pub state_dir: PathBuf,
    pub stop_timeout: Duration,
    pub updates: mpsc::UnboundedSender<Update>,
    /// The agent's span: each instance's task runs in an `instance` span
    /// below it.
    pub span: tracing::Span,
}

pub struct Handle {
    pub fingerprint: String,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Handle {
    /// Starts supervising `plan`; with `adopted`, the already running process.
    pub fn spawn(
        context: Arc<Context>,
        plan: InstancePlan,
        adopted: Option<(Running, u32)>,
    ) -> Handle {
        let (stop, stop_rx) = watch::channel(false);
        let fingerprint = plan.fingerprint();
        let span = tracing::info_span!(
            parent: &context.span,
            "instance",
            instance = %plan.name,
            service = %plan.service,
            id = %plan.id
        );
        let task = tokio::spawn(supervise(context, plan, adopted, stop_rx).instrument(span));
        Handle {
            fingerprint,
            stop,
            task,
        }
    }

    /// Tells the task to stop the instance; await `finished` for it to be gone.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }

    pub async fn finished(self) {
        let _ = self.task.await;
    }

    /// Leaves the instance running (agent shutdown): it is adopted on restart.
    pub fn detach(self) {
        self.task.abort();
    }
}

struct Reporter {
    updates: mpsc::UnboundedSender<Update>,
    status: InstanceStatus,
}

impl Reporter {
    fn set(
        &mut self,
        state: InstanceState,
        phase: InstancePhase,
        pid: Option<u32>,
        message: Option<String>,
    ) {
        let s = &mut self.status;
        if s.state != state {
            let _transition =
                tracing::info_span!("transition", from = ?s.state, to = ?state).entered();
            s.since = unix_seconds();
            tracing::info!(instance = %format!("{}-{}", s.service, s.id), ?state, ?phase, message = message.as_deref().unwrap_or(""), "instance state");
        }
        s.state = state;
        s.phase = phase;
        s.pid = pid;
        s.message = message;
        let _ = self.updates.send(Update::Status(s.clone()));
    }
}

async fn supervise(
    context: Arc<Context>,
    plan: InstancePlan,
    mut adopted: Option<(Running, u32)>,
    mut stop: watch::Receiver<bool>,
) {
    let backend = context.backend;
    let log = logs::log_path(&context.state_dir, &plan.name);
    let work_dir = context.state_dir.join("run").join(&plan.name);
    let mut reporter = Reporter {
        updates: context.updates.clone(),
        status: InstanceStatus {
            service: plan.service.clone(),
            id: plan.id.clone(),
            state: InstanceState::Starting,
            phase: InstancePhase::Running,
            pid: None,
            restarts: adopted.as_ref().map_or(0, |(_, restarts)| *restarts),
            address: plan.address,
            ports: plan.ports.clone(),
            since: unix_seconds(),
            message: None,
        },
    };
    let mut backoff = FIRST_BACKOFF;
    loop {
        let mut running = match adopted.take() {
            Some((running, _)) => {
                tracing::info!(instance = %plan.name, pid = running.pid, "adopted a running instance");
                running
            }
            None => match start(&context, &plan, &log, &work_dir, reporter.status.restarts)
                .instrument(tracing::info_span!(
                    "start",
                    restarts = reporter.status.restarts
                ))
                .await
            {
                Ok(running) => running,
                Err(why) => {
                    tracing::warn!(instance = %plan.name, %why, "cannot start");
                    reporter.set(
                        InstanceState::Unhealthy,
                        InstancePhase::Failed,
                        None,
                        Some(format!("{why}; retrying in {}s", backoff.as_secs())),
                    );
                    if wait_or_stop(&mut stop, backoff).await {
                        break;
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            },
        };
        let started = Instant::now();
        let pid = Some(running.pid);
        let initial = if plan.health.is_some() {
            InstanceState::Starting
        } else {
            InstanceState::Healthy
        };
        reporter.set(initial, InstancePhase::Running, pid, None);
        let mut failures = 0u32;
        let mut next_probe = Instant::now() + STARTING_PROBE;
        let exit = loop {
            enum Event {
                Exited(String),
                Stop,
                Probe,
            }
            let event = tokio::select! {
                how = backend.wait_exit(&mut running) => Event::Exited(how),
                _ = stop.changed() => Event::Stop,
                () = tokio::time::sleep_until(next_probe), if plan.health.is_some() => Event::Probe,
            };
            match event {
                Event::Exited(how) => break how,
                Event::Stop => {
                    let span = tracing::info_span!("stop", pid = running.pid);
                    async {
                        tracing::info!(instance = %plan.name, pid = running.pid, "stopping");
                        backend.stop(&mut running, context.stop_timeout).await;
                    }
                    .instrument(span)
                    .await;
                    remove_instance_files(&context.state_dir, &plan.name);
                    let _ = context.updates.send(Update::Gone {
                        name: plan.name.clone(),
                    });
                    return;
                }
                Event::Probe => {
                    let Some(check) = &plan.health else { continue };
                    let result = probe(check, &plan).await;
                    let state = reporter.status.state;
                    let interval = Duration::from_secs(check.interval_seconds.into());
                    match result {
                        Ok(()) => {
                            failures = 0;
                            if state != InstanceState::Healthy {
                                reporter.set(
                                    InstanceState::Healthy,
                                    InstancePhase::Running,
                                    pid,
                                    None,
                                );
                            }
                            next_probe = Instant::now() + interval;
                        }
                        Err(why) => {
                            failures += 1;
                            let grace = interval * check.failure_threshold;
                            let counted =
                                state != InstanceState::Starting || started.elapsed() >= grace;
                            if counted && failures >= check.failure_threshold {
                                if state != InstanceState::Unhealthy {
                                    tracing::warn!(instance = %plan.name, %why, failures, "health check failing");
                                }
                                reporter.set(
                                    InstanceState::Unhealthy,
                                    InstancePhase::Running,
                                    pid,
                                    Some(format!("health check: {why} ({failures} in a row)")),
                                );
                            }
                            next_probe = Instant::now()
                                + if state == InstanceState::Starting {
                                    STARTING_PROBE
                                } else {
                                    interval
                                };
                        }
                    }
                }
            }
        };
        if started.elapsed() >= STABLE_RUN {
            backoff = FIRST_BACKOFF;
        }
        reporter.status.restarts += 1;
        tracing::warn!(instance = %plan.name, how = %exit, restart = reporter.status.restarts, ?backoff, "instance exited; restarting after backoff");
        reporter.set(
            InstanceState::Unhealthy,
            InstancePhase::Backoff,
            None,
            Some(format!(
                "{exit}; restart {} in {}s",
                reporter.status.restarts,
                backoff.as_secs()
            )),
        );
        if wait_or_stop(&mut stop, backoff).await {
            break;
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
    remove_instance_files(&context.state_dir, &plan.name);
    let _ = context.updates.send(Update::Gone { name: plan.name });
}

/// Sleeps `duration`; true when told to stop meanwhile.
async fn wait_or_stop(stop: &mut watch::Receiver<bool>, duration: Duration) -> bool {
    if *stop.borrow() {
        return true;
    }
    tokio::select! {
        () = tokio::time::sleep(duration) => false,
        _ = stop.changed() => true,
    }
}

async fn start(
    context: &Context,
    plan: &InstancePlan,
    log: &Path,
    work_dir: &Path,
    restarts: u32,
) -> Result<Running, StartError> {
    std::fs::create_dir_all(work_dir).map_err(|source| StartError::CreateDir {
        path: work_dir.to_owned(),
        source,
    })?;
    let mut env = plan.env.clone();
    let secrets_dir = context.state_dir.join("secrets").join(&plan.name);
    for (variable, source) in &plan.secret_files {
        let copy = copy_secret(&secrets_dir, variable, source)?;
        env.insert(format!("{variable}_FILE"), copy.display().to_string());
    }
    let running = context.backend.start(plan, &env, log, work_dir).await?;
    let record = Record {
        plan: plan.clone(),
        pid: running.pid,
        start_ticks: running.start_ticks,
        unit: running.unit().map(str::to_owned),
        restarts,
    };
    if let Err(err) = write_atomically(
        &record_path(&context.state_dir, &plan.name),
        &serde_json::to_vec_pretty(&record).unwrap_or_default(),
        0o644,
    ) {
        // Without the record a restarted agent would start a duplicate.
        tracing::error!(instance = %plan.name, %err, "cannot record the instance; it will not be adopted after an agent restart");
    }
    tracing::info!(instance = %plan.name, pid = running.pid, argv = ?plan.argv, "started");
    Ok(running)
}

/// A private (0600) copy of a secret file, read fresh on every start.
fn copy_secret(dir: &Path, variable: &str, source: &str) -> Result<PathBuf, SecretError> {
    if source.starts_with("/nix/store/") {
        return Err(SecretError::InStore {
            variable: variable.to_owned(),
            source_path: source.to_owned(),
        });
    }
    let content = std::fs::read(source).map_err(|err| SecretError::Read {
        variable: variable.to_owned(),
        source_path: source.to_owned(),
        source: err,
    })?;
    std::fs::create_dir_all(dir).map_err(|source| SecretError::CreateDir {
        path: dir.to_owned(),
        source,
    })?;
    let copy = dir.join(variable);
    write_atomically(&copy, &content, 0o600).map_err(|source| SecretError::Write {
        path: copy.clone(),
        source,
    })?;
    Ok(copy)
}

pub fn write_atomically(path: &Path, content: &[u8], mode: u32) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)?;
    file.write_all(content)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

fn remove_instance_files(state_dir: &Path, name: &str) {
    let _ = std::fs::remove_file(record_path(state_dir, name));
    let _ = std::fs::remove_dir_all(state_dir.join("secrets").join(name));
}

async fn probe(check: &Probe, plan: &InstancePlan) -> Result<(), ProbeError> {
    let timeout = Duration::from_secs(check.timeout_seconds.into());
    let address = plan.address;
    let target = move |port: Option<u16>| match address {
        std::net::IpAddr::V6(ip) => format!("[{ip}]:{}", port.unwrap_or(0)),
        std::net::IpAddr::V4(ip) => format!("{ip}:{}", port.unwrap_or(0)),
    };
    let check = check.clone();
    let env: Vec<(String, String)> = plan.env.clone().into_iter().collect();
    let result = tokio::task::spawn_blocking(move || match check.kind {
        HealthCheckType::Exec => uc_probe::exec(&check.command, &env, timeout),
        HealthCheckType::Tcp => uc_probe::connect(&target(check.port), timeout).map(drop),
        HealthCheckType::Http => {
            let path = if check.path.starts_with('/') {
                check.path.clone()
            } else {
                format!("/{}", check.path)
            };
            uc_probe::http(&format!("http://{}{path}", target(check.port)), timeout)
        }
    })
    .await;
    result?.map_err(ProbeError::Failed)
}

/// The status of every instance, as the agent last heard.
pub type Statuses = BTreeMap<String, InstanceStatus>;
