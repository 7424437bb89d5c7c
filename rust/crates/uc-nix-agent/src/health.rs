//! The node's health checks after a switch: commands, TCP connects, HTTP GETs.

use std::time::{Duration, Instant};

use uc_types::{HealthCheckType, SystemHealthCheck};

/// Runs one attempt of a check; Err says why it failed.
pub fn probe(check: &SystemHealthCheck) -> Result<(), String> {
    let timeout = Duration::from_secs(check.timeout_seconds.max(1));
    match check.kind {
        HealthCheckType::Exec => uc_probe::exec(&check.command, &[], timeout),
        HealthCheckType::Tcp => {
            let address = check.address.as_deref().ok_or("no address")?;
            uc_probe::connect(address, timeout).map(drop)
        }
        HealthCheckType::Http => uc_probe::http(check.url.as_deref().ok_or("no url")?, timeout),
    }
}

/// Probes every check until all pass at once, or `gate` runs out; Err lists
/// the checks still failing.
pub fn wait_healthy(checks: &[SystemHealthCheck], gate: Duration) -> Result<(), String> {
    let deadline = Instant::now() + gate;
    loop {
        let failing: Vec<String> = checks
            .iter()
            .filter_map(|c| probe(c).err().map(|why| format!("{}: {why}", c.name)))
            .collect();
        if failing.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "health checks still failing after {gate:?}: {}",
                failing.join("; ")
            ));
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
        let err = wait_healthy(&[c], Duration::from_millis(300)).unwrap_err();
        assert!(err.contains("never: false exited with"), "{err}");
    }
}
