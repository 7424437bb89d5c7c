//! The node's health checks after a switch: commands, TCP connects, HTTP GETs.

use std::time::{Duration, Instant};

use uc_types::{HealthCheckType, SystemHealthCheck};

/// Why one attempt of a check failed.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// A tcp check without `address`.
    #[error("no address")]
    NoAddress,
    /// An http check without `url`.
    #[error("no url")]
    NoUrl,
    /// The command, connect or request failed; uc-probe says how.
    #[error("{0}")]
    Probe(#[source] uc_probe::ProbeError),
}

/// The health gate ran out with checks still failing.
#[derive(Debug, thiserror::Error)]
#[error("health checks still failing after {gate:?}: {}", list(failing))]
pub struct GateError {
    pub gate: Duration,
    /// Each failing check's name and why it failed at the last attempt.
    pub failing: Vec<(String, CheckError)>,
}

fn list(failing: &[(String, CheckError)]) -> String {
    let failing: Vec<String> = failing
        .iter()
        .map(|(name, why)| format!("{name}: {why}"))
        .collect();
    failing.join("; ")
}

/// Runs one attempt of a check; Err says why it failed.
pub fn probe(check: &SystemHealthCheck) -> Result<(), CheckError> {
    let timeout = Duration::from_secs(check.timeout_seconds.max(1));
    match check.kind {
        HealthCheckType::Exec => uc_probe::exec(&check.command, &[], timeout),
        HealthCheckType::Tcp => {
            let address = check.address.as_deref().ok_or(CheckError::NoAddress)?;
            uc_probe::connect(address, timeout).map(drop)
        }
        HealthCheckType::Http => {
            uc_probe::http(check.url.as_deref().ok_or(CheckError::NoUrl)?, timeout)
        }
    }
    .map_err(CheckError::Probe)
}

/// Probes every check until all pass at once, or `gate` runs out; Err lists
/// the checks still failing.
pub fn wait_healthy(checks: &[SystemHealthCheck], gate: Duration) -> Result<(), GateError> {
    let deadline = Instant::now() + gate;
    loop {
        let failing: Vec<(String, CheckError)> = checks
            .iter()
            .filter_map(|c| probe(c).err().map(|why| (c.name.clone(), why)))
            .collect();
        if failing.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(GateError { gate, failing });
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(kind: HealthCheckType) -> SystemHealthCheck {
        SystemHealthCheck {
            name: "t".into(),
            kind,
            command: vec![],
            address: None,
            url: None,
            timeout_seconds: 1,
        }
    }

    #[test]
    fn wait_healthy_reports_the_failing_checks() {
        let mut c = check(HealthCheckType::Exec);
        c.name = "never".into();
        c.command = vec!["false".into()];
        let err = wait_healthy(&[c], Duration::from_millis(300))
            .unwrap_err()
            .to_string();
        assert!(err.contains("never: false exited with"), "{err}");
    }
}
