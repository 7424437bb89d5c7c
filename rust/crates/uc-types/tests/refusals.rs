//! Bad input is refused with an error that says what is wrong.

use uc_types::*;

fn golden() -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../hosts/single-node/manifest.json"
    );
    std::fs::read_to_string(path).expect("single-node golden")
}

fn edit(f: impl FnOnce(&mut serde_json::Value)) -> String {
    let mut value: serde_json::Value = serde_json::from_str(&golden()).expect("json");
    f(&mut value);
    value.to_string()
}

fn refusal(text: &str) -> String {
    Manifest::from_json("test manifest", text)
        .expect_err("must be refused")
        .to_string()
}

#[test]
fn newer_schema_version_is_refused_before_fields_are_read() {
    let text = edit(|v| {
        v["schemaVersion"] = 2.into();
        v["someFutureField"] = true.into();
    });
    let err = refusal(&text);
    assert!(
        err.contains("has schemaVersion 2, but this build reads schemaVersion 1"),
        "{err}"
    );
}

#[test]
fn missing_schema_version_is_refused() {
    let text = edit(|v| {
        v.as_object_mut().expect("object").remove("schemaVersion");
    });
    assert!(refusal(&text).contains("has no schemaVersion"));
}

#[test]
fn unknown_field_is_named() {
    let text = edit(|v| v["nodes"]["node01"]["rack"] = "a".into());
    let err = refusal(&text);
    assert!(err.contains("unknown field `rack`"), "{err}");
}

#[test]
fn wrong_type_is_refused() {
    let text = edit(|v| v["nodes"]["node01"]["addresses"] = serde_json::json!(["not-an-ip"]));
    let err = refusal(&text);
    assert!(
        err.contains("does not match the manifest contract"),
        "{err}"
    );
    assert!(err.contains("invalid IP address syntax"), "{err}");
}

#[test]
fn dangling_references_are_listed() {
    let text = edit(|v| {
        v["lb"]["listeners"]["hello"]["backends"]["service"] = "nope".into();
        v["rollout"]["waves"] = serde_json::json!([]);
        v["nodes"]["node01"]["daemons"]["dns"]["node"] = "node02".into();
    });
    let err = refusal(&text);
    assert!(
        err.contains("lb.listeners.hello.backends.service: names service \"nope\""),
        "{err}"
    );
    assert!(
        err.contains("rollout.waves: never switches node \"node01\""),
        "{err}"
    );
    assert!(
        err.contains("nodes.node01.daemons.dns: is for node \"node02\""),
        "{err}"
    );
}

#[test]
fn daemon_config_errors_name_the_file() {
    let dir = std::env::temp_dir().join(format!("uc-types-refusals-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("store.json");
    std::fs::write(&path, r#"{"schemaVersion": 1, "cluster": "x"}"#).expect("write");
    let err = StoreConfig::load(&path)
        .expect_err("incomplete")
        .to_string();
    assert!(
        err.contains("store.json") && err.contains("missing field"),
        "{err}"
    );

    let missing = dir.join("absent.json");
    let err = NodeAgentConfig::load(&missing)
        .expect_err("absent")
        .to_string();
    assert!(
        err.starts_with("cannot read") && err.contains("absent.json"),
        "{err}"
    );
    assert_eq!(
        DnsConfig::default_path(),
        std::path::Path::new("/etc/ultracloud/dns.json")
    );
}
