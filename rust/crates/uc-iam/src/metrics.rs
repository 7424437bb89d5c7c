//! uc-iam's `/metrics`: logins by result, denials by reason, token
//! verifications by result, audit writes that failed.

use uc_daemon::metrics::{self, Counter, Family, Registry};

type Result1 = [(&'static str, &'static str); 1];

#[derive(Default)]
pub struct Metrics {
    pub logins: Family<Result1, Counter>,
    pub denials: Family<Result1, Counter>,
    pub verifications: Family<Result1, Counter>,
    pub audit_failures: Counter,
}

impl Metrics {
    pub fn registry(&self) -> Registry {
        let mut registry = metrics::registry("uc_iam");
        registry.register(
            "logins",
            "Logins by result (granted, or why denied)",
            self.logins.clone(),
        );
        registry.register(
            "denials",
            "Requests denied, by reason",
            self.denials.clone(),
        );
        registry.register(
            "token_verifications",
            "Tokens verified, by result (ok, or why refused)",
            self.verifications.clone(),
        );
        registry.register(
            "audit_write_failures",
            "Audit records the store did not take",
            self.audit_failures.clone(),
        );
        registry
    }

    pub fn login(&self, result: &'static str) {
        self.logins.get_or_create(&[("result", result)]).inc();
        if result != "granted" {
            self.deny(result);
        }
    }

    pub fn deny(&self, reason: &'static str) {
        self.denials.get_or_create(&[("reason", reason)]).inc();
    }

    pub fn verified(&self, result: &'static str) {
        self.verifications
            .get_or_create(&[("result", result)])
            .inc();
    }
}
