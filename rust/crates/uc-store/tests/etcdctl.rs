//! The real etcdctl 3.4 runs one script against a 3-member uc-store and
//! against a 3-member real etcd 3.4; every command must give the same
//! output (ids, addresses and remaining TTLs masked), exit code included.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Cluster, Kind};

/// One etcdctl step: args (`{lease}` is replaced by the last granted lease
/// id), optional stdin.
struct Step {
    args: &'static str,
    stdin: Option<&'static str>,
}

const fn step(args: &'static str) -> Step {
    Step { args, stdin: None }
}

const SCRIPT: &[Step] = &[
    step("put k1 v1"),
    step("get k1"),
    step("get k1 -w json"),
    step("put k1 v2 --prev-kv"),
    step("put k2 v2"),
    step("put k3 v3"),
    step("get k --prefix"),
    step("get k --prefix --keys-only"),
    step("get k --prefix --limit 2 -w json"),
    step("get k1 k3"),
    step("get k --prefix --sort-by=MODIFY --order=DESCEND"),
    step("get k1 --rev=2"),
    step("get --from-key k2"),
    step("del k2"),
    step("del k9"),
    step("del k --prefix --prev-kv"),
    step("put t 1"),
    Step {
        args: "txn",
        stdin: Some("value(\"t\") = \"1\"\n\nput t 2\nget t\n\nput t 9\n\n"),
    },
    Step {
        args: "txn",
        stdin: Some("mod(\"t\") < \"3\"\n\nput t 3\n\nget t\n\n"),
    },
    Step {
        args: "txn -w json",
        stdin: Some("version(\"t\") = \"2\"\n\ndel t\n\nput u 1\n\n"),
    },
    step("get t"),
    step("put \"\" empty"),
    step("compaction 5"),
    step("get t --rev=3"),
    step("get t --rev=999"),
    step("lease grant 60"),
    step("put lk lv --lease={lease}"),
    step("lease timetolive {lease} --keys"),
    step("lease list"),
    step("lease keep-alive --once {lease}"),
    step("lease revoke {lease}"),
    step("get lk"),
    step("lease list"),
    step("lease timetolive 1234"),
    step("put bad x --lease=1234"),
    step("member list"),
    step("alarm list"),
    step("endpoint health --cluster"),
];

fn mask(text: &str, kind: Kind, cluster: &Cluster) -> String {
    let mut out = text.to_string();
    for (i, member) in cluster.members.iter().enumerate() {
        out = out.replace(&member.ip, &format!("IP{i}"));
    }
    // 16-hex-digit ids (members, leases, clusters) and decimal ones in JSON.
    let mut masked = String::new();
    let mut rest = out.as_str();
    while let Some((word, tail)) = next_token(rest) {
        masked.push_str(&word);
        rest = tail;
    }
    out = masked;
    for field in ["cluster_id", "member_id", "raft_term", "ID", "lease"] {
        out = mask_json_number(&out, field);
    }
    out = mask_between(&out, "remaining(", "s)");
    out = mask_between(&out, "took = ", "\n");
    out = mask_between(&out, "TTL(", "s)");
    let _ = kind;
    out
}

/// Replaces runs of 15-16 hex digits (ids) with `ID`.
fn next_token(text: &str) -> Option<(String, &str)> {
    let mut chars = text.char_indices();
    let (start, c) = chars.next()?;
    debug_assert_eq!(start, 0);
    if c.is_ascii_hexdigit() {
        let end = text
            .char_indices()
            .find(|(_, c)| !c.is_ascii_hexdigit())
            .map_or(text.len(), |(i, _)| i);
        let word = &text[..end];
        let is_id =
            (12..=16).contains(&word.len()) && word.chars().any(|c| c.is_ascii_alphabetic());
        return Some((
            if is_id { "ID".into() } else { word.to_string() },
            &text[end..],
        ));
    }
    Some((c.to_string(), &text[c.len_utf8()..]))
}

fn mask_json_number(text: &str, field: &str) -> String {
    let pattern = format!("\"{field}\":");
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find(&pattern) {
        out.push_str(&rest[..at + pattern.len()]);
        rest = &rest[at + pattern.len()..];
        let end = rest
            .find(|c: char| !c.is_ascii_digit() && c != '-')
            .unwrap_or(rest.len());
        if end > 0 {
            out.push('N');
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

fn mask_between(text: &str, open: &str, close: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find(open) {
        out.push_str(&rest[..at + open.len()]);
        rest = &rest[at + open.len()..];
        match rest.find(close) {
            Some(end) => {
                out.push('N');
                rest = &rest[end..];
            }
            None => break,
        }
    }
    out.push_str(rest);
    out
}

/// Runs the script; one normalised transcript entry per step.
fn run_script(cluster: &Cluster) -> Vec<String> {
    let mut lease = String::from("0");
    let mut transcript = Vec::new();
    for step in SCRIPT {
        let args_text = step.args.replace("{lease}", &lease);
        let args = split_args(&args_text);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let output = cluster.ctl(&args, step.stdin);
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        if step.args == "lease grant 60" {
            lease = stdout.split_whitespace().nth(1).unwrap_or("0").to_string();
        }
        // etcdctl's last stderr line is the error it prints; retries before
        // it are logged with timestamps and differ run to run.
        let error = stderr
            .lines()
            .filter(|l| l.starts_with("Error:"))
            .collect::<Vec<_>>()
            .join("\n");
        let mut stdout = mask(&stdout, cluster.kind, cluster);
        if step.args == "member list" {
            // Listed in id order, and ids differ between the two stores.
            let mut lines: Vec<&str> = stdout.lines().collect();
            lines.sort_unstable();
            stdout = lines.join("\n");
        }
        transcript.push(format!(
            "$ etcdctl {}\nexit {}\n{}{}",
            step.args,
            output.status.code().unwrap_or(-1),
            stdout,
            error
        ));
    }
    transcript
}

fn split_args(text: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in text.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            ' ' if !quoted => {
                if any {
                    args.push(std::mem::take(&mut current));
                    any = false;
                }
            }
            c => {
                current.push(c);
                any = true;
            }
        }
    }
    if any {
        args.push(current);
    }
    args
}

#[test]
fn etcdctl_script_gives_the_same_results_as_etcd() {
    let uc = Cluster::start(Kind::UcStore, 3, "etcdctl-uc", &[]);
    let etcd = Cluster::start(Kind::Etcd, 3, "etcdctl-etcd", &[]);
    let ours = run_script(&uc);
    let theirs = run_script(&etcd);
    if std::env::var_os("UC_SHOW_TRANSCRIPT").is_some() {
        println!("{}", ours.join("\n"));
    }
    // The comparison means something only if the commands did their work.
    let at = |args: &str| {
        let i = SCRIPT.iter().position(|s| s.args == args).unwrap();
        ours[i].clone()
    };
    assert!(
        at("get k1").ends_with("exit 0\nk1\nv1\n"),
        "{}",
        at("get k1")
    );
    assert!(at("get t --rev=3").contains("required revision has been compacted"));
    assert!(at("put bad x --lease=1234").contains("requested lease not found"));
    assert!(at("lease timetolive {lease} --keys").contains("attached keys([lk])"));
    let mut differences = Vec::new();
    for (a, b) in ours.iter().zip(&theirs) {
        if a != b {
            differences.push(format!("uc-store:\n{a}\netcd:\n{b}\n"));
        }
    }
    assert!(
        differences.is_empty(),
        "{} of {} steps differ:\n{}",
        differences.len(),
        SCRIPT.len(),
        differences.join("\n")
    );
}

/// A watch sees the same events, history replay included.
#[test]
fn etcdctl_watch_gives_the_same_events_as_etcd() {
    let uc = Cluster::start(Kind::UcStore, 3, "watch-uc", &[]);
    let etcd = Cluster::start(Kind::Etcd, 3, "watch-etcd", &[]);
    let transcript = |cluster: &Cluster| {
        cluster.ctl(&["put", "w/a", "1"], None);
        let endpoints = cluster.endpoints();
        let watch = |args: &[&str]| {
            Command::new("etcdctl")
                .env("ETCDCTL_API", "3")
                .args(["--endpoints", &endpoints, "watch"])
                .args(args)
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        };
        let live = watch(&["w/", "--prefix", "--prev-kv"]);
        let history = watch(&["w/a", "--rev=1"]);
        std::thread::sleep(Duration::from_millis(800));
        cluster.ctl(&["put", "w/a", "2"], None);
        cluster.ctl(&["put", "w/b", "3"], None);
        cluster.ctl(&["del", "w/", "--prefix"], None);
        std::thread::sleep(Duration::from_millis(800));
        let mut outputs = Vec::new();
        for mut child in [live, history] {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            outputs.push(String::from_utf8_lossy(&output.stdout).into_owned());
        }
        outputs
    };
    let ours = transcript(&uc);
    let theirs = transcript(&etcd);
    assert_eq!(ours, theirs, "uc-store's watch output differs from etcd's");
    assert!(
        ours[0].contains("PUT\nw/a\n1\nw/a\n2"),
        "live watch: {}",
        ours[0]
    );
    assert!(
        ours[1].starts_with("PUT\nw/a\n1\nPUT\nw/a\n2"),
        "replay: {}",
        ours[1]
    );
}

/// Status, hashkv, snapshot and defragment address one endpoint each, and
/// etcdctl puts the endpoint as given (with `http://`) into the HTTP/2
/// :authority; uc-store must take that as etcd does, and the form without
/// the scheme too.
#[test]
fn etcdctl_maintenance_commands_work_with_either_endpoint_form() {
    let uc = Cluster::start(Kind::UcStore, 3, "maint-uc", &[]);
    let etcd = Cluster::start(Kind::Etcd, 3, "maint-etcd", &[]);
    let dir = uc_testkit::TestDir::new("maint-snapshot");
    for (name, cluster) in [("uc-store", &uc), ("etcd", &etcd)] {
        let forms: [fn(&common::Member) -> String; 2] = [|m| m.client_url(), |m| m.client_addr()];
        for form in forms {
            let endpoints: Vec<String> = cluster.members.iter().map(form).collect();
            let endpoints = endpoints.join(",");
            let status = common::ctl(&endpoints, &["endpoint", "status", "-w", "json"], None);
            let text = String::from_utf8_lossy(&status.stdout);
            assert!(status.status.success(), "{name} {endpoints}: {text}");
            assert_eq!(text.matches("\"leader\"").count(), 3, "{name}: {text}");
            let hashkv = common::ctl(&endpoints, &["endpoint", "hashkv"], None);
            assert!(hashkv.status.success(), "{name} {endpoints}: hashkv");
            assert_eq!(String::from_utf8_lossy(&hashkv.stdout).lines().count(), 3);
            let first = form(&cluster.members[0]);
            let file = dir.join(format!("{name}-{}.db", first.len()));
            let saved = common::ctl(&first, &["snapshot", "save", file.to_str().unwrap()], None);
            assert!(
                saved.status.success(),
                "{name} {first}: {}",
                String::from_utf8_lossy(&saved.stderr)
            );
            assert!(std::fs::metadata(&file).unwrap().len() > 32);
            let defrag = common::ctl(&first, &["defrag"], None);
            assert!(defrag.status.success(), "{name} {first}: defrag");
        }
    }

    // NOSPACE raised on one member (through the API, as etcd's own tests
    // do), listed, disarmed: etcdctl prints the same for both.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut printed = Vec::new();
    for (kind, cluster) in [(Kind::UcStore, &uc), (Kind::Etcd, &etcd)] {
        runtime.block_on(async {
            let mut client = etcd_client::Client::connect([cluster.members[0].client_url()], None)
                .await
                .unwrap();
            let member = client.status().await.unwrap().header().unwrap().member_id();
            let mut options = etcd_client::AlarmOptions::new();
            options.with_member(member);
            client
                .alarm(
                    etcd_client::AlarmAction::Activate,
                    etcd_client::AlarmType::Nospace,
                    Some(options),
                )
                .await
                .unwrap();
        });
        let mut out = String::new();
        for args in [["alarm", "list"], ["alarm", "disarm"], ["alarm", "list"]] {
            let run = cluster.ctl(&args, None);
            out += &format!(
                "$ {}\n{}",
                args.join(" "),
                String::from_utf8_lossy(&run.stdout)
            );
        }
        // `alarm` prints member ids in decimal.
        let masked: Vec<String> = mask(&out, kind, cluster)
            .split("memberID:")
            .enumerate()
            .map(|(i, part)| {
                if i == 0 {
                    part.to_owned()
                } else {
                    format!(
                        "memberID:ID{}",
                        part.trim_start_matches(|c: char| c.is_ascii_digit())
                    )
                }
            })
            .collect();
        printed.push(masked.concat());
    }
    assert!(printed[0].contains("alarm:NOSPACE"), "{}", printed[0]);
    assert_eq!(printed[0], printed[1], "uc-store vs etcd");
}

/// `etcdctl make-mirror` moves a prefix from etcd to uc-store and back,
/// live changes included: the way to migrate between the two.
#[test]
fn etcdctl_make_mirror_copies_between_etcd_and_uc_store() {
    let uc = Cluster::start(Kind::UcStore, 1, "mirror-uc", &[]);
    let etcd = Cluster::start(Kind::Etcd, 1, "mirror-etcd", &[]);
    let listing = |cluster: &Cluster, prefix: &str| {
        let out = cluster.ctl(&["get", prefix, "--prefix"], None);
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let settle = |from: &Cluster, to: &Cluster, prefix: &str| {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            let (want, got) = (listing(from, prefix), listing(to, prefix));
            if want == got {
                return want;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "mirror of {prefix} did not converge:\nsource:\n{want}\ndestination:\n{got}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let mirror = |from: &Cluster, to: &Cluster, prefix: &str| {
        Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .args([
                "--endpoints",
                &from.endpoints(),
                "make-mirror",
                "--prefix",
                prefix,
            ])
            .arg(to.members[0].client_url())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };

    for (from, to, prefix) in [(&etcd, &uc, "m/"), (&uc, &etcd, "n/")] {
        for i in 0..20 {
            assert!(from
                .ctl(&["put", &format!("{prefix}{i:02}"), &format!("v{i}")], None)
                .status
                .success());
        }
        let outside = format!("outside-{prefix}");
        from.ctl(&["put", &outside, "x"], None);
        let mut child = mirror(from, to, prefix);
        let copied = settle(from, to, prefix);
        assert_eq!(copied.lines().count(), 40, "{copied}");
        // Changes made while it runs follow.
        from.ctl(&["put", &format!("{prefix}new"), "n"], None);
        from.ctl(&["put", &format!("{prefix}05"), "changed"], None);
        from.ctl(&["del", &format!("{prefix}07")], None);
        let followed = settle(from, to, prefix);
        assert!(followed.contains("changed") && !followed.contains(&format!("{prefix}07\n")));
        assert_eq!(followed.lines().count(), 40, "{followed}");
        assert!(
            listing(to, &outside).is_empty(),
            "only the prefix is mirrored"
        );
        let _ = child.kill();
        let _ = child.wait();
    }
}
