//! The contract test: the manifests Nix rendered from hosts/ (checked in as
//! hosts/<name>/manifest.json and re-rendered by checks/schema/run) parse into
//! uc-types, are consistent, and serialise back to the same JSON. A field Nix
//! renders that Rust does not know, or the reverse, fails here.

use std::path::PathBuf;

use serde_json::Value;
use uc_types::*;

fn goldens() -> Vec<(String, String)> {
    let hosts = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../hosts");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&hosts).expect("hosts/ exists") {
        let path = entry
            .expect("readable hosts/ entry")
            .path()
            .join("manifest.json");
        if path.exists() {
            let text = std::fs::read_to_string(&path).expect("readable golden");
            found.push((path.display().to_string(), text));
        }
    }
    found.sort();
    assert!(
        found.len() >= 2,
        "expected the single-node and ha goldens, found {found:?}"
    );
    found
}

#[test]
fn goldens_parse_and_round_trip() {
    for (what, text) in goldens() {
        let manifest = Manifest::from_json(&what, &text).unwrap_or_else(|e| panic!("{e}"));
        let original: Value = serde_json::from_str(&text).expect("json");
        let again = serde_json::to_value(&manifest).expect("serialise");
        assert_eq!(
            original, again,
            "{what} does not round-trip through uc-types"
        );
    }
}

#[test]
fn every_daemon_config_loads_as_its_daemon_would() {
    fn check<T: DaemonConfig + PartialEq + std::fmt::Debug>(
        what: &str,
        config: &Option<T>,
    ) -> usize {
        let Some(config) = config else { return 0 };
        let text = serde_json::to_string_pretty(config).expect("serialise");
        let dir = std::env::temp_dir().join(format!("uc-types-golden-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join(format!("{}.json", T::DAEMON));
        std::fs::write(&path, text).expect("write config");
        let loaded = T::load(&path).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(&loaded, config, "{what}");
        1
    }
    let mut seen = 0;
    for (what, text) in goldens() {
        let manifest = Manifest::from_json(&what, &text).expect("golden parses");
        for (name, node) in &manifest.nodes {
            let d = &node.daemons;
            let what = format!("{what}: nodes.{name}.daemons");
            seen += check(&what, &d.store)
                + check(&what, &d.deployer)
                + check(&what, &d.scheduler)
                + check(&what, &d.nix_agent)
                + check(&what, &d.node_agent)
                + check(&what, &d.dns)
                + check(&what, &d.lb);
        }
    }
    assert!(
        seen >= 20,
        "expected configs for every daemon across the goldens, saw {seen}"
    );
}

#[test]
fn ha_golden_has_the_declared_shape() {
    let (what, text) = goldens()
        .into_iter()
        .find(|(what, _)| what.contains("/ha/"))
        .expect("ha golden");
    let m = Manifest::from_json(&what, &text).expect("parses");
    assert_eq!(m.cluster.name, "ha");
    let roles = |role: Role| m.nodes.values().filter(|n| n.roles.contains(&role)).count();
    assert_eq!(
        (
            roles(Role::ControlPlane),
            roles(Role::Worker),
            roles(Role::Edge)
        ),
        (3, 2, 1)
    );
    assert_eq!(m.store.members.len(), 3);
    let web = &m.services["web"];
    assert_eq!(web.replicas, 2);
    assert_eq!(web.listeners, ["www"]);
    assert_eq!(
        m.lb.listeners["www"].backends.service.as_deref(),
        Some("web")
    );
    assert!(m.dns.zones["ha.test"]
        .records
        .iter()
        .any(|r| r.service.as_deref() == Some("web")));
    // Store members are switched one at a time, after everything else.
    assert_eq!(
        m.rollout.waves.first().map(Vec::as_slice),
        Some(&["worker1".to_owned()][..])
    );
    assert_eq!(
        m.rollout.waves[m.rollout.waves.len() - 3..],
        [["cp1"], ["cp2"], ["cp3"]]
    );
    // Every node runs the agents; only control-plane nodes run the store.
    for (name, node) in &m.nodes {
        assert!(
            node.daemons.nix_agent.is_some() && node.daemons.node_agent.is_some(),
            "{name}"
        );
        assert_eq!(
            node.daemons.store.is_some(),
            name.starts_with("cp"),
            "{name}"
        );
    }
    let store = m.nodes["cp2"]
        .daemons
        .store
        .as_ref()
        .expect("cp2 runs the store");
    assert_eq!(store.initial_cluster.len(), 3);
    assert_eq!(store.listen_client_urls, ["http://10.1.0.12:2379"]);
}
