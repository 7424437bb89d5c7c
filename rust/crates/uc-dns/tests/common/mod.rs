//! Fixtures of uc-dns' integration tests: a real store (etcd, or
//! `UC_TEST_STORE`), the real uc-dns binary on loopback, and real `dig`,
//! whose output is parsed into sections.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use uc_testkit::{free_port, http, wait_for, Etcd, KillOnDrop};

/// uc-dns started from flags against `store`, killed on drop.
pub struct Dns {
    _process: KillOnDrop,
    pub port: u16,
    pub http_port: u16,
    pub log: PathBuf,
}

impl Dns {
    pub fn start(store: &Etcd, dir: &Path) -> Dns {
        let port = free_port();
        let http_port = free_port();
        let args = [
            "--store".to_owned(),
            store.endpoint.clone(),
            "--listen".to_owned(),
            format!("127.0.0.1:{port}"),
            "--http".to_owned(),
            format!("127.0.0.1:{http_port}"),
        ];
        Dns::spawn(dir, "uc-dns", &args, port, http_port)
    }

    /// uc-dns with `args`, answering on `port` (DNS) and `http_port`; its
    /// log in `<dir>/<name>.log`. Returns once /health says ok.
    pub fn spawn(dir: &Path, name: &str, args: &[String], port: u16, http_port: u16) -> Dns {
        let log = dir.join(format!("{name}.log"));
        let process = Command::new(env!("CARGO_BIN_EXE_uc-dns"))
            .args(args)
            .env("RUST_LOG", "info,hickory_server=warn")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start uc-dns");
        let dns = Dns {
            _process: KillOnDrop(process),
            port,
            http_port,
            log,
        };
        dns.wait_health("ok");
        dns
    }

    /// /health's (HTTP status, body).
    pub fn health(&self) -> (u16, String) {
        http(self.http_port, "GET", "/health", "")
    }

    pub fn wait_health(&self, status: &str) {
        let wanted = format!("\"status\":\"{status}\"");
        wait_for(
            &format!("/health {status}"),
            Duration::from_secs(15),
            || {
                let answered = std::net::TcpStream::connect(("127.0.0.1", self.http_port)).is_ok();
                (answered && self.health().1.contains(&wanted)).then_some(())
            },
        );
    }

    pub fn metrics(&self) -> String {
        http(self.http_port, "GET", "/metrics", "").1
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `dig @127.0.0.1 -p <port> +norecurse <args>`, parsed.
    pub fn dig(&self, args: &[&str]) -> Reply {
        let output = Command::new("dig")
            .args(["@127.0.0.1", "-p", &self.port.to_string()])
            .args(["+norecurse", "+time=2", "+tries=1"])
            .args(args)
            .output()
            .expect("run dig (install Debian's dnsutils)");
        Reply::parse(&String::from_utf8_lossy(&output.stdout))
    }

    /// Asks until `check` holds; returns when it did.
    pub fn dig_until(
        &self,
        args: &[&str],
        within: Duration,
        check: impl Fn(&Reply) -> bool,
    ) -> Duration {
        let started = Instant::now();
        loop {
            let reply = self.dig(args);
            if check(&reply) {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < within,
                "dig {args:?} did not change as expected within {within:?}; last:\n{}",
                reply.text
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// dig's answer: status, header flags and sections (one record a line,
/// fields joined by single spaces).
#[derive(Debug, Default)]
pub struct Reply {
    pub status: String,
    pub flags: Vec<String>,
    pub answer: Vec<String>,
    pub authority: Vec<String>,
    pub additional: Vec<String>,
    /// The OPT pseudo-section's EDNS line, if any.
    pub edns: Option<String>,
    pub text: String,
}

impl Reply {
    pub fn parse(text: &str) -> Reply {
        let mut reply = Reply {
            text: text.to_owned(),
            ..Reply::default()
        };
        let mut section: Option<&str> = None;
        for line in text.lines() {
            if let Some(rest) = line.split("status: ").nth(1) {
                reply.status = rest.split(',').next().unwrap_or_default().to_owned();
            }
            if let Some(rest) = line.strip_prefix(";; flags: ") {
                let flags = rest.split(';').next().unwrap_or_default();
                reply.flags = flags.split_whitespace().map(str::to_owned).collect();
            }
            if let Some(rest) = line.strip_prefix("; EDNS: ") {
                reply.edns = Some(rest.to_owned());
            }
            if line.starts_with(";; ") && line.ends_with(" SECTION:") {
                section = line.split_whitespace().nth(1);
                continue;
            }
            if line.trim().is_empty() || line.starts_with(';') {
                if line.trim().is_empty() {
                    section = None;
                }
                continue;
            }
            let record = line.split_whitespace().collect::<Vec<_>>().join(" ");
            match section {
                Some("ANSWER") => reply.answer.push(record),
                Some("AUTHORITY") => reply.authority.push(record),
                Some("ADDITIONAL") => reply.additional.push(record),
                _ => {}
            }
        }
        reply
    }

    pub fn has_flag(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }

    /// The data of the answer records (last field onwards after the type).
    pub fn answer_data(&self) -> Vec<String> {
        let mut data: Vec<String> = self
            .answer
            .iter()
            .map(|line| line.splitn(5, ' ').nth(4).unwrap_or_default().to_owned())
            .collect();
        data.sort();
        data
    }
}

/// A zone declaration as the deployer writes it (`uc_types::Zone` JSON):
/// `records` as `(name, type, values)`, TTL 300, SOA minimum 60.
pub fn zone_json(
    nameservers: &[&str],
    records: &[(&str, &str, &[&str])],
    ptr_patterns: &[(&str, &str)],
) -> String {
    let records: Vec<serde_json::Value> = records
        .iter()
        .map(|(name, kind, values)| {
            serde_json::json!({"name": name, "type": kind, "ttl": 300, "values": values, "service": null})
        })
        .collect();
    let patterns: Vec<serde_json::Value> = ptr_patterns
        .iter()
        .map(|(network, pattern)| serde_json::json!({"network": network, "pattern": pattern}))
        .collect();
    let zone = serde_json::json!({
        "ttl": 300,
        "soa": {"email": "hostmaster.example.test", "refresh": 3600, "retry": 600, "expire": 604800, "minimum": 60},
        "nameservers": nameservers,
        "records": records,
        "ptrPatterns": patterns,
    });
    // Through the contract type, so a fixture can never drift from it.
    let typed: uc_types::Zone = serde_json::from_value(zone).unwrap();
    serde_json::to_string(&typed).unwrap()
}

/// The zone file Knot loads for the same declaration as [`zone_json`]: SOA
/// (MNAME the first name server) and NS at the apex, then `records` as
/// `(name, type, values)`, TTL 300.
pub fn zone_file<N: AsRef<str>, V: AsRef<str>>(
    apex: &str,
    nameservers: &[&str],
    records: &[(N, &str, Vec<V>)],
) -> String {
    let mname = nameservers.first().copied().unwrap_or(apex);
    let mut text = format!(
        "$ORIGIN {apex}.\n@ 300 IN SOA {mname} hostmaster.example.test. 1 3600 600 604800 60\n"
    );
    for ns in nameservers {
        text.push_str(&format!("@ 300 IN NS {ns}\n"));
    }
    for (name, kind, values) in records {
        for value in values {
            text.push_str(&format!(
                "{} 300 IN {kind} {}\n",
                name.as_ref(),
                value.as_ref()
            ));
        }
    }
    text
}

pub fn put_zone(store: &Etcd, apex: &str, json: &str) {
    store.ctl(&["put", &uc_types::keys::dns_zone(apex), json]);
}

/// knotd with `config` (written to `dir`/knot.conf; its log to
/// `dir`/knot.log), killed on drop.
pub fn start_knotd(dir: &Path, config: &str) -> KillOnDrop {
    std::fs::write(dir.join("knot.conf"), config).unwrap();
    let process = Command::new("knotd")
        .args(["-c", &dir.join("knot.conf").display().to_string()])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("knot.log")).unwrap())
        .spawn()
        .expect("start knotd");
    KillOnDrop(process)
}
