//! uc-dns reports what it serves under `/uc/v1/dns/status/<node>` (on its
//! lease): the key appears with each zone's SOA serial as dig sees it,
//! follows a zone change, and is gone once uc-dns stops on SIGTERM. A
//! uc-dns without --node writes nothing and says so.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::Dns;
use serde_json::Value;
use uc_testkit::{free_port, wait_for, Etcd, KillOnDrop, TestDir};
use uc_types::{keys, DnsServerStatus};

fn zone() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../hosts/ha/manifest.json"
    );
    let manifest: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    manifest["dns"]["zones"]["ha.test"].clone()
}

fn soa_serial(port: u16) -> u32 {
    let output = Command::new("dig")
        .args([
            "@127.0.0.1",
            "-p",
            &port.to_string(),
            "+short",
            "ha.test",
            "SOA",
        ])
        .output()
        .expect("run dig (install Debian's dnsutils)");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let serial = text
        .split(' ')
        .nth(2)
        .unwrap_or_else(|| panic!("an SOA: {text:?}"));
    serial.parse().unwrap()
}

/// The status, once it satisfies `check`.
fn status_until(
    etcd: &Etcd,
    what: &str,
    check: impl Fn(&DnsServerStatus) -> bool,
) -> DnsServerStatus {
    wait_for(what, Duration::from_secs(10), || {
        let value = etcd.get(&keys::dns_server_status("ns1"))?;
        let status: DnsServerStatus = serde_json::from_str(&value).expect("a DnsServerStatus");
        check(&status).then_some(status)
    })
}

#[test]
fn the_status_key_follows_the_served_serial_and_goes_on_sigterm() {
    let dir = TestDir::new("uc-dns-report");
    let etcd = Etcd::start(&dir.join("store"));
    let mut declared = zone();
    etcd.ctl(&["put", &keys::dns_zone("ha.test"), &declared.to_string()]);

    let port = free_port();
    let http_port = free_port();
    let log = dir.join("uc-dns.log");
    let mut dns = KillOnDrop::spawn(
        Command::new(env!("CARGO_BIN_EXE_uc-dns"))
            .args(["--store", &etcd.endpoint, "--node", "ns1"])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--http", &format!("127.0.0.1:{http_port}")])
            .env("RUST_LOG", "info,hickory_server=warn")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap()),
    );
    let status = status_until(&etcd, "the status with ha.test", |s| {
        s.health == "ok" && s.zones.contains_key("ha.test")
    });
    let first = status.zones["ha.test"];
    assert_eq!(status.node, "ns1");
    assert_eq!(first.serial, soa_serial(port));
    assert!(!first.signed);
    assert!(first.records > 0, "{status:?}");

    // A record more: a new serial, reported as dig sees it.
    declared["records"].as_array_mut().unwrap().push(
        serde_json::json!({"name": "api", "service": null, "ttl": 300,
            "type": "A", "values": ["10.1.0.32"]}),
    );
    etcd.ctl(&["put", &keys::dns_zone("ha.test"), &declared.to_string()]);
    let status = status_until(&etcd, "a new serial", |s| {
        s.zones
            .get("ha.test")
            .is_some_and(|z| z.serial != first.serial)
    });
    let second = status.zones["ha.test"];
    assert!(second.serial > first.serial, "{first:?} then {second:?}");
    assert_eq!(second.records, first.records + 1);
    assert_eq!(second.serial, soa_serial(port));

    // A uc-dns without --node writes nothing, and says so.
    let other = Dns::start(&etcd, &dir);
    wait_for("the no --node line", Duration::from_secs(5), || {
        other.log_text().contains("no --node").then_some(())
    });
    let prefix = etcd.ctl(&["get", "--prefix", "--keys-only", &keys::dns_status_prefix()]);
    let reported: Vec<&str> = prefix.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(reported, [keys::dns_server_status("ns1")]);

    // Stopped as systemd stops it: the key goes at once, not at lease expiry.
    assert!(dns.terminate(Duration::from_secs(10)).success());
    assert_eq!(etcd.get(&keys::dns_server_status("ns1")), None);
}
