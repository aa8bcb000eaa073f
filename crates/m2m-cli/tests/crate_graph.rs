//! The workspace's crate graph stays the one CONTRIBUTING.md draws: arrows point down only, the
//! client and the server never depend on each other, the resource crate never depends on the
//! server, and the test kit is only ever a dev-dependency.
//!
//! It reads every member's `Cargo.toml` (normal, dev and build dependencies), so an edge added
//! anywhere fails here, in CI, before it can shape the code.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Which workspace crates each crate may depend on (normal and build dependencies).
const ALLOWED: &[(&str, &[&str])] = &[
    ("m2m-core", &[]),
    ("m2m-discovery", &["m2m-core"]),
    ("m2m-client", &["m2m-core", "m2m-discovery"]),
    ("m2m-server", &["m2m-core", "m2m-discovery"]),
    // The resource crate uses the client only for introspection's own client authentication.
    ("m2m-resource", &["m2m-core", "m2m-discovery", "m2m-client"]),
    (
        "m2m-cli",
        &[
            "m2m-core",
            "m2m-discovery",
            "m2m-client",
            "m2m-server",
            "m2m-resource",
        ],
    ),
    ("m2m-testkit", &["m2m-core"]),
];

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

fn read_toml(path: &Path) -> toml::Table {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.parse::<toml::Table>()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every workspace member's name → its manifest.
fn members() -> BTreeMap<String, toml::Table> {
    let root = workspace_root();
    let manifest = read_toml(&root.join("Cargo.toml"));
    let members = manifest["workspace"]["members"]
        .as_array()
        .expect("workspace.members");
    members
        .iter()
        .map(|m| {
            let dir = root.join(m.as_str().expect("member path"));
            let table = read_toml(&dir.join("Cargo.toml"));
            let name = table["package"]["name"]
                .as_str()
                .expect("package.name")
                .to_owned();
            (name, table)
        })
        .collect()
}

/// The workspace crates named in one dependency section (`dependencies`, `dev-dependencies`, …).
fn m2m_deps(table: &toml::Table, section: &str) -> Vec<String> {
    table
        .get(section)
        .and_then(toml::Value::as_table)
        .map(|deps| {
            deps.keys()
                .filter(|k| k.starts_with("m2m-"))
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn every_member_is_in_the_allowed_table() {
    for name in members().keys() {
        assert!(
            ALLOWED.iter().any(|(crate_name, _)| crate_name == name),
            "{name} is a workspace member but has no row in the crate-graph table \
             (crates/m2m-cli/tests/crate_graph.rs and CONTRIBUTING.md): add its allowed arrows"
        );
    }
}

#[test]
fn arrows_point_down_only() {
    for (name, table) in members() {
        let allowed = ALLOWED
            .iter()
            .find(|(crate_name, _)| *crate_name == name)
            .map(|(_, deps)| *deps)
            .unwrap_or(&[]);
        for section in ["dependencies", "build-dependencies"] {
            for dep in m2m_deps(&table, section) {
                assert!(
                    allowed.contains(&dep.as_str()),
                    "{name} [{section}] depends on {dep}, which the crate graph forbids \
                     (allowed: {allowed:?})"
                );
            }
        }
        // Tests may use the kit and anything below the crate, never a sibling across the line.
        for dep in m2m_deps(&table, "dev-dependencies") {
            assert!(
                dep == "m2m-testkit" || allowed.contains(&dep.as_str()),
                "{name} [dev-dependencies] depends on {dep}, which the crate graph forbids \
                 (allowed: m2m-testkit and {allowed:?})"
            );
        }
    }
}

#[test]
fn client_and_server_never_depend_on_each_other() {
    let members = members();
    for (from, to) in [
        ("m2m-client", "m2m-server"),
        ("m2m-server", "m2m-client"),
        ("m2m-resource", "m2m-server"),
    ] {
        if let Some(table) = members.get(from) {
            for section in ["dependencies", "dev-dependencies", "build-dependencies"] {
                assert!(
                    !m2m_deps(table, section).iter().any(|d| d == to),
                    "{from} [{section}] depends on {to}"
                );
            }
        }
    }
}

#[test]
fn the_test_kit_is_only_a_dev_dependency() {
    for (name, table) in members() {
        for section in ["dependencies", "build-dependencies"] {
            assert!(
                !m2m_deps(&table, section).iter().any(|d| d == "m2m-testkit"),
                "{name} [{section}] depends on m2m-testkit, which is publish = false and for tests only"
            );
        }
    }
}

#[test]
fn the_resource_crate_is_a_member_below_the_cli() {
    let members = members();
    let resource = members
        .get("m2m-resource")
        .expect("m2m-resource is a workspace member (its row above is not dead)");
    let deps = m2m_deps(resource, "dependencies");
    assert!(deps.iter().any(|d| d == "m2m-core") && deps.iter().any(|d| d == "m2m-discovery"));
    let cli = &members["m2m-cli"];
    assert!(
        m2m_deps(cli, "dependencies")
            .iter()
            .any(|d| d == "m2m-resource"),
        "`m2m verify` and `m2m demo` use m2m-resource"
    );
}
