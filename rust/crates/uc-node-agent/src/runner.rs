//! Starting, watching and stopping an instance's processes: as a transient
//! systemd unit (`systemd-run`) when systemd runs the machine, otherwise as
//! a child in its own process group. Either outlives the agent, which adopts
//! it after a restart from the record it keeps in its state dir.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use rustix::process::{kill_process_group, Pid, Signal};
use serde::{Deserialize, Serialize};
use tokio::process::{Child, Command};

use crate::plan::InstancePlan;

/// Why a backend could not start an instance's process.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("cannot open the log {}: {source}", path.display())]
    OpenLog {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot share the log {} between stdout and stderr: {source}", path.display())]
    ShareLog {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("empty command")]
    EmptyCommand,
    #[error("cannot run {program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("it exited at once")]
    ExitedAtOnce,
    #[error("cannot run systemd-run: {0}")]
    SystemdRun(std::io::Error),
    #[error("systemd-run {unit}: {stderr}")]
    SystemdRunFailed { unit: String, stderr: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Children in their own process groups; the agent restarts them.
    Process,
    /// Transient units `uc-<instance>.service`; the agent restarts them too,
    /// so both behave the same.
    Systemd,
}

impl Backend {
    /// systemd when it is PID 1 (the test sd_booted() makes).
    pub fn detect() -> Backend {
        if Path::new("/run/systemd/system").is_dir() {
            Backend::Systemd
        } else {
            Backend::Process
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::Process => "process",
            Backend::Systemd => "systemd",
        }
    }
}

/// Kept in `<stateDir>/instances/<instance>.json` while the instance runs:
/// enough to recognise its process after an agent restart and to go on
/// supervising it under the same plan. Unknown fields are ignored, so
/// records written by older agents (with a `fingerprint`) still load.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    pub plan: InstancePlan,
    pub pid: u32,
    /// /proc start time of `pid`: a recycled pid is not our process.
    pub start_ticks: u64,
    pub unit: Option<String>,
    pub restarts: u32,
}

/// A started or adopted instance.
#[derive(Debug)]
pub struct Running {
    pub pid: u32,
    pub start_ticks: u64,
    child: Option<Child>,
    unit: Option<String>,
}

impl Running {
    pub fn unit(&self) -> Option<&str> {
        self.unit.as_deref()
    }
}

pub fn unit_name(instance: &str) -> String {
    format!("uc-{instance}.service")
}

impl Backend {
    /// Starts `plan.argv` with `env`, stdout and stderr appended to `log`,
    /// in `work_dir`.
    pub async fn start(
        self,
        plan: &InstancePlan,
        env: &BTreeMap<String, String>,
        log: &Path,
        work_dir: &Path,
    ) -> Result<Running, LaunchError> {
        match self {
            Backend::Process => start_process(plan, env, log, work_dir),
            Backend::Systemd => start_unit(plan, env, log, work_dir).await,
        }
    }

    /// Resolves when the instance has exited, saying how.
    pub async fn wait_exit(self, running: &mut Running) -> String {
        if let Some(child) = running.child.as_mut() {
            let how = match child.wait().await {
                Ok(status) => format!("exited with {status}"),
                Err(err) => format!("cannot wait for it: {err}"),
            };
            running.child = None;
            // Whatever it left behind in its group goes too.
            signal_group(running.pid, Signal::KILL);
            return how;
        }
        loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            if !self.alive(running).await {
                signal_group(running.pid, Signal::KILL);
                return "exited (adopted after an agent restart: its status is unknown)".into();
            }
        }
    }

    async fn alive(self, running: &Running) -> bool {
        match (&running.unit, self) {
            (Some(unit), Backend::Systemd) => matches!(
                unit_property(unit, "ActiveState").await.as_deref(),
                Some("active" | "activating" | "reloading")
            ),
            _ => start_ticks(running.pid) == Some(running.start_ticks),
        }
    }

    /// SIGTERM to the whole instance, SIGKILL after `timeout`.
    pub async fn stop(self, running: &mut Running, timeout: Duration) {
        if let (Some(unit), Backend::Systemd) = (running.unit.clone(), self) {
            let _ = Command::new("systemctl")
                .args(["stop", &unit])
                .status()
                .await;
            return;
        }
        signal_group(running.pid, Signal::TERM);
        let exited = tokio::time::timeout(timeout, self.wait_exit(running)).await;
        if exited.is_err() {
            tracing::warn!(
                pid = running.pid,
                ?timeout,
                "still running after SIGTERM: SIGKILL"
            );
            signal_group(running.pid, Signal::KILL);
            let _ = tokio::time::timeout(Duration::from_secs(5), self.wait_exit(running)).await;
        }
    }

    /// The recorded instance, if it still runs.
    pub async fn adopt(self, record: &Record) -> Option<Running> {
        let running = Running {
            pid: record.pid,
            start_ticks: record.start_ticks,
            child: None,
            unit: record.unit.clone(),
        };
        self.alive(&running).await.then_some(running)
    }
}

fn start_process(
    plan: &InstancePlan,
    env: &BTreeMap<String, String>,
    log: &Path,
    work_dir: &Path,
) -> Result<Running, LaunchError> {
    let out = crate::logs::open_append(log).map_err(|source| LaunchError::OpenLog {
        path: log.to_owned(),
        source,
    })?;
    let err = out.try_clone().map_err(|source| LaunchError::ShareLog {
        path: log.to_owned(),
        source,
    })?;
    let (program, args) = plan.argv.split_first().ok_or(LaunchError::EmptyCommand)?;
    let child = Command::new(program)
        .args(args)
        .env_clear()
        .env("PATH", inherited_path())
        .envs(env)
        .current_dir(work_dir)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .kill_on_drop(false)
        .spawn()
        .map_err(|source| LaunchError::Spawn {
            program: program.clone(),
            source,
        })?;
    let pid = child.id().ok_or(LaunchError::ExitedAtOnce)?;
    let start_ticks = start_ticks(pid).unwrap_or(0);
    Ok(Running {
        pid,
        start_ticks,
        child: Some(child),
        unit: None,
    })
}

fn inherited_path() -> String {
    std::env::var("PATH").unwrap_or_else(|_| "/run/current-system/sw/bin:/usr/bin:/bin".into())
}

/// The `systemd-run` command line for an instance.
pub fn systemd_run_args(
    plan: &InstancePlan,
    env: &BTreeMap<String, String>,
    log: &Path,
    work_dir: &Path,
) -> Vec<String> {
    let mut args = vec![
        format!("--unit={}", unit_name(&plan.name)),
        "--collect".into(),
        "--quiet".into(),
        "--service-type=exec".into(),
        format!("--working-directory={}", work_dir.display()),
        "--property=KillMode=control-group".into(),
        format!("--property=StandardOutput=append:{}", log.display()),
        format!("--property=StandardError=append:{}", log.display()),
        format!("--setenv=PATH={}", inherited_path()),
    ];
    args.extend(env.iter().map(|(k, v)| format!("--setenv={k}={v}")));
    args.push("--".into());
    args.extend(plan.argv.iter().cloned());
    args
}

async fn start_unit(
    plan: &InstancePlan,
    env: &BTreeMap<String, String>,
    log: &Path,
    work_dir: &Path,
) -> Result<Running, LaunchError> {
    let unit = unit_name(&plan.name);
    // A failed unit of the same name would block the new one.
    let _ = Command::new("systemctl")
        .args(["reset-failed", &unit])
        .stderr(Stdio::null())
        .status()
        .await;
    let output = Command::new("systemd-run")
        .args(systemd_run_args(plan, env, log, work_dir))
        .output()
        .await
        .map_err(LaunchError::SystemdRun)?;
    if !output.status.success() {
        return Err(LaunchError::SystemdRunFailed {
            unit,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    let pid = unit_property(&unit, "MainPID")
        .await
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    Ok(Running {
        pid,
        start_ticks: start_ticks(pid).unwrap_or(0),
        child: None,
        unit: Some(unit),
    })
}

async fn unit_property(unit: &str, property: &str) -> Option<String> {
    let output = Command::new("systemctl")
        .args(["show", "--value", "-p", property, unit])
        .output()
        .await
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

fn signal_group(pid: u32, signal: Signal) {
    let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        return;
    };
    // ESRCH: the group is gone already.
    let _ = kill_process_group(pid, signal);
}

/// The start time (field 22 of /proc/<pid>/stat) of a live, non-zombie process.
pub fn start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: parse after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); field 22 is at index 19.
    if matches!(fields.first(), Some(&"Z" | &"X")) {
        return None;
    }
    fields.get(19)?.parse().ok()
}

/// Where an instance's record lives.
pub fn record_path(state_dir: &Path, instance: &str) -> PathBuf {
    state_dir.join("instances").join(format!("{instance}.json"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn own_start_time_is_read_and_stable() {
        let me = std::process::id();
        let ticks = start_ticks(me).unwrap();
        assert_eq!(start_ticks(me), Some(ticks));
        assert_eq!(start_ticks(u32::MAX), None);
    }

    #[test]
    fn systemd_run_line_names_the_unit_logs_and_environment() {
        let manifest = include_str!("../../../../hosts/ha/manifest.json");
        let m: serde_json::Value = serde_json::from_str(manifest).unwrap();
        let spec: uc_types::Service = serde_json::from_value(m["services"]["web"].clone()).unwrap();
        let assignment = uc_types::Assignment {
            node: "w1".into(),
            ports: BTreeMap::from([("http".to_owned(), 8080)]),
        };
        let plan = InstancePlan::new(
            "w1",
            "10.0.0.5".parse().unwrap(),
            "web",
            "0",
            &spec,
            &assignment,
        )
        .unwrap();
        let args = systemd_run_args(&plan, &plan.env, Path::new("/l/web-0.log"), Path::new("/w"));
        assert_eq!(args[0], "--unit=uc-web-0.service");
        assert!(args.contains(&"--property=StandardOutput=append:/l/web-0.log".to_owned()));
        assert!(args.contains(&"--setenv=UC_PORT_HTTP=8080".to_owned()));
        let dashdash = args.iter().position(|a| a == "--").unwrap();
        assert_eq!(args[dashdash + 1..], plan.argv[..]);
    }

    #[test]
    fn records_of_older_agents_still_load() {
        let record: Record = serde_json::from_value(serde_json::json!({
            "plan": {
                "name": "t-0", "service": "t", "id": "0", "argv": ["true"],
                "env": {}, "secretFiles": {}, "address": "127.0.0.1",
                "ports": {}, "health": null
            },
            "fingerprint": "written by agents before 2026-12",
            "pid": 7, "startTicks": 9, "unit": null, "restarts": 2
        }))
        .unwrap();
        assert_eq!((record.pid, record.restarts), (7, 2));
    }

    #[tokio::test]
    async fn a_process_group_is_started_adopted_and_stopped() {
        let dir = std::env::temp_dir().join(format!("uc-node-agent-runner-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut plan: InstancePlan = serde_json::from_value(serde_json::json!({
            "name": "t-0", "service": "t", "id": "0",
            "argv": ["sh", "-c", "echo started $UC_TEST; sleep 1000 & wait"],
            "env": {"UC_TEST": "yes"}, "secretFiles": {}, "address": "127.0.0.1",
            "ports": {}, "health": null
        }))
        .unwrap();
        let log = dir.join("t-0.log");
        let backend = Backend::Process;
        let mut running = backend.start(&plan, &plan.env, &log, &dir).await.unwrap();
        let record = Record {
            plan: plan.clone(),
            pid: running.pid,
            start_ticks: running.start_ticks,
            unit: None,
            restarts: 0,
        };
        // Stop only once it runs its script (it is slow to start under load).
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::fs::read_to_string(&log).unwrap_or_default().is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "the instance never wrote its log"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut adopted = backend
            .adopt(&record)
            .await
            .expect("adopts a live instance");
        backend.stop(&mut adopted, Duration::from_secs(5)).await;
        // The whole group is gone, including the backgrounded sleep.
        assert_eq!(start_ticks(running.pid), None);
        let how = backend.wait_exit(&mut running).await;
        assert!(how.contains("signal"), "{how}");
        assert!(backend.adopt(&record).await.is_none());
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "started yes\n");
        plan.argv = vec!["/nonexistent/program".into()];
        let err = backend
            .start(&plan, &plan.env, &log, &dir)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot run /nonexistent/program"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
