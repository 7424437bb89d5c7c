//! The binary cache against the real Nix: a stock `nix copy` fetches a closure
//! from the running uc-deployer, verifying our signatures with the trusted
//! key, and refuses it under another key.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use uc_testkit::{free_port, wait_for_port, KillOnDrop, TestDir};

fn run(program: &str, args: &[&str], cache_home: &Path) -> Output {
    Command::new(program)
        .args(args)
        .env("XDG_CACHE_HOME", cache_home)
        .env("NIX_CONFIG", "experimental-features = nix-command")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} (install nix-bin): {e}"))
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Builds fixtures with builtins.derivation and /bin/sh (no nixpkgs needed):
/// `top` refers to `dep`, so its closure is both; `outside` is unrelated.
fn build_fixtures(home: &Path) -> (String, String, String) {
    let expr = r#"
      let
        fixture = name: script: derivation {
          inherit name;
          system = builtins.currentSystem;
          builder = "/bin/sh";
          args = [ "-c" script ];
        };
        dep = fixture "uc-cache-fixture-dep" "echo dependency > $out";
      in [
        (fixture "uc-cache-fixture-top" "echo ${dep} > $out")
        dep
        (fixture "uc-cache-fixture-outside" "echo not served > $out")
      ]"#;
    let paths = ok(run(
        "nix-build",
        &["--no-out-link", "--option", "substituters", "", "-E", expr],
        home,
    ));
    let paths: Vec<&str> = paths.lines().collect();
    assert_eq!(paths.len(), 3, "{paths:?}");
    (
        paths[0].to_owned(),
        paths[1].to_owned(),
        paths[2].to_owned(),
    )
}

fn http_get(port: u16, path: &str) -> (u16, String) {
    uc_testkit::http(port, "GET", path, "")
}

#[test]
fn nix_copies_a_signed_closure_and_refuses_a_wrong_key() {
    let dir = TestDir::new("uc-deployer-cache");
    let home = dir.join("cache-home");
    let (top, dep, outside) = build_fixtures(&home);

    let key = |name: &str| {
        let (sec, public) = (
            dir.join(format!("{name}.sec")),
            dir.join(format!("{name}.pub")),
        );
        ok(run(
            "nix-store",
            &[
                "--generate-binary-cache-key",
                name,
                sec.to_str().expect("utf-8"),
                public.to_str().expect("utf-8"),
            ],
            &home,
        ));
        (sec, std::fs::read_to_string(public).expect("public key"))
    };
    let (secret, public) = key("uc-test-1");
    let (_, other_public) = key("uc-other-1");

    let port = free_port();
    let config = dir.join("deployer.json");
    let json = serde_json::json!({
        "schemaVersion": 1, "cluster": "test", "node": "cp1",
        "httpListen": format!("127.0.0.1:{port}"),
        "storeEndpoints": ["http://127.0.0.1:2379"],
        "dataDir": dir.join("data"),
        "enrollmentTokenFile": dir.join("token"),
        "cache": {"signingKeyFile": secret, "publicKeys": [public]},
    });
    std::fs::write(&config, json.to_string()).expect("config");
    let mut deployer = KillOnDrop::spawn(
        Command::new(env!("CARGO_BIN_EXE_uc-deployer"))
            .arg("--config")
            .arg(&config)
            .args(["--cache-root", &top]),
    );
    wait_for_port("uc-deployer", port);

    let (status, health) = http_get(port, "/health");
    assert_eq!(
        (status, health.as_str()),
        (200, r#"{"servedPaths":2,"status":"ok"}"#)
    );
    let (status, info) = http_get(port, "/nix-cache-info");
    assert_eq!(status, 200);
    assert!(info.contains("StoreDir: /nix/store"), "{info}");

    // The narinfo carries the same signature Nix itself makes with this key.
    let hash_part = |p: &str| p["/nix/store/".len().."/nix/store/".len() + 32].to_owned();
    let (status, narinfo) = http_get(port, &format!("/{}.narinfo", hash_part(&top)));
    assert_eq!(status, 200, "{narinfo}");
    assert!(
        narinfo.contains(&format!("StorePath: {top}\n")),
        "{narinfo}"
    );
    assert!(
        narinfo.contains(&format!("References: {}\n", &dep["/nix/store/".len()..])),
        "{narinfo}"
    );
    let ours = narinfo
        .lines()
        .find_map(|l| l.strip_prefix("Sig: "))
        .expect("signed")
        .to_owned();
    ok(run(
        "nix",
        &[
            "store",
            "sign",
            "--key-file",
            secret.to_str().expect("utf-8"),
            &top,
        ],
        &home,
    ));
    let theirs = ok(run("nix", &["path-info", "--json", &top], &home));
    assert!(
        theirs.contains(&ours),
        "our signature {ours} is not Nix's: {theirs}"
    );

    let (status, _) = http_get(port, &format!("/{}.narinfo", hash_part(&outside)));
    assert_eq!(
        status, 404,
        "a path outside the served closures must not be served"
    );

    // A stock nix trusting the key fetches and verifies the whole closure.
    let url = format!("http://127.0.0.1:{port}");
    let good = dir.join("good");
    let copy = |to: &Path, trusted: &str| {
        run(
            "nix",
            &[
                "copy",
                "--from",
                &url,
                "--to",
                to.to_str().expect("utf-8"),
                &top,
                "--option",
                "trusted-public-keys",
                trusted,
            ],
            &home,
        )
    };
    ok(copy(&good, public.trim()));
    let copied = |root: &Path, p: &str| std::fs::read_to_string(root.join(&p[1..])).ok();
    assert_eq!(
        copied(&good, &top).as_deref(),
        Some(format!("{dep}\n").as_str())
    );
    assert_eq!(copied(&good, &dep).as_deref(), Some("dependency\n"));

    // Under a key it does not trust, nix refuses the same cache.
    let bad = dir.join("bad");
    let refused = copy(&bad, other_public.trim());
    assert!(
        !refused.status.success(),
        "nix accepted a cache signed by an untrusted key"
    );
    let stderr = String::from_utf8_lossy(&refused.stderr);
    // Nix 2.8 says "lacks a valid signature", later releases "lacks a signature by a trusted key".
    assert!(
        stderr.contains("lacks a valid signature")
            || stderr.contains("lacks a signature by a trusted key"),
        "{stderr}"
    );
    assert_eq!(copied(&bad, &top), None);

    let (_, metrics) = http_get(port, "/metrics");
    let bytes: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("uc_deployer_cache_nar_bytes_total "))
        .and_then(|v| v.parse().ok())
        .expect("nar bytes metric");
    assert!(bytes > 0, "{metrics}");

    // SIGTERM stops it cleanly.
    let status = deployer.terminate(Duration::from_secs(10));
    assert!(status.success(), "exit after SIGTERM: {status}");
}

#[test]
fn bad_config_and_key_are_reported() {
    let dir = TestDir::new("uc-deployer-badconfig");
    let run_with = |config: &Path| {
        Command::new(env!("CARGO_BIN_EXE_uc-deployer"))
            .arg("--config")
            .arg(config)
            .output()
            .expect("run uc-deployer")
    };
    let missing = run_with(&dir.join("absent.json"));
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("cannot read"),
        "{missing:?}"
    );

    let config = dir.join("deployer.json");
    let key = dir.join("public-not-secret.key");
    std::fs::write(
        &key,
        "uc-test-1:QD7toq2VetDyRMe+LloHIPAQY9XsEDniPTZ2Y7TsiPA=",
    )
    .expect("key");
    let json = serde_json::json!({
        "schemaVersion": 1, "cluster": "test", "node": "cp1", "httpListen": "127.0.0.1:1",
        "storeEndpoints": [], "dataDir": "/tmp", "enrollmentTokenFile": "/tmp/t",
        "cache": {"signingKeyFile": key, "publicKeys": []},
    });
    std::fs::write(&config, json.to_string()).expect("config");
    let out = run_with(&config);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is this the public key?"), "{stderr}");
}
