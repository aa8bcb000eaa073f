//! `m2m trust add|list|remove` on the real binary: entries written into the registry (which
//! `m2m serve --check` then loads), listed, removed, and refused with a clear message when they
//! are inconsistent.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly on purpose

mod support;

use support::{Sandbox, assert_fails, stderr, stdout};

#[test]
fn trust_add_list_remove() {
    let sb = Sandbox::new();
    let (_, jwks) = sb.keygen("spire-1", &["--alg", "ES256"]);
    sb.register("deployer", &jwks);
    let add = |args: &[&str]| {
        let mut all = vec!["trust", "add", "--clients", "clients.toml"];
        all.extend(args);
        sb.run(&all)
    };
    let o = add(&[
        "--issuer",
        "https://token.actions.githubusercontent.com",
        "--subject",
        "repo:org/app:ref:refs/heads/main",
        "--claim",
        "repository=org/app",
        "--client-id",
        "deployer",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = add(&[
        "--issuer",
        "https://spire.example",
        "--jwks",
        jwks.to_str().unwrap(),
        "--subject-prefix",
        "spiffe://example.org/",
        "--scope",
        "metrics:write",
        "--token-audience",
        "https://metrics.example",
        "--max-lifetime",
        "600",
        "--allow-reuse",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(sb.path().join("clients.toml")).unwrap();
    assert!(text.contains("[[trust]]") && text.contains("reuse = \"allow-within-lifetime\""));

    let o = sb.run(&["trust", "list", "--clients", "clients.toml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("https://token.actions.githubusercontent.com\tsubject=repo:org/app:ref:refs/heads/main\tclient_id=deployer\tkeys=oidc\tmax_lifetime=3600\treuse=single-use\trepository=org/app"),
        "{out}"
    );
    assert!(
        out.contains("https://spire.example\tsubject_prefix=spiffe://example.org/\tscopes=metrics:write\tkeys=1 static key(s)\tmax_lifetime=600\treuse=allow-within-lifetime"),
        "{out}"
    );

    // Inconsistent entries are refused before anything is written.
    let o = add(&[
        "--issuer",
        "https://k8s.example",
        "--subject",
        "system:serviceaccount:prod:x",
        "--client-id",
        "nobody",
    ]);
    assert_fails(&o, 3, "not a registered client");
    let o = add(&[
        "--issuer",
        "https://k8s.example",
        "--subject",
        "s",
        "--claim",
        "no-equals-sign",
        "--scope",
        "a",
    ]);
    assert_fails(&o, 2, "NAME=VALUE");
    let o = add(&["--issuer", "https://k8s.example", "--scope", "a"]);
    assert!(!o.status.success(), "a subject rule is required");

    let o = sb.run(&[
        "trust",
        "remove",
        "--clients",
        "clients.toml",
        "--issuer",
        "https://spire.example",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = sb.run(&[
        "trust",
        "remove",
        "--clients",
        "clients.toml",
        "--issuer",
        "https://spire.example",
    ]);
    assert_fails(&o, 3, "no [[trust]] entry");
    let o = sb.run(&["trust", "list", "--clients", "clients.toml"]);
    assert_eq!(stdout(&o).lines().count(), 1);
}
