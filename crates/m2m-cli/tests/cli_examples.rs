//! The m2m-client examples run against a default `m2m serve`, as their doc comments say (issue
//! 13: every documented client command and example works against the server as written).
//!
//! `cargo test` builds the examples beside the test binaries (`target/debug/examples/`); this
//! test runs them there. Run alone (`cargo test -p m2m-cli --test cli_examples`) they may be
//! missing: then the test says so and passes, except under `CI=true`, where it fails.

// The skip notice goes to the test's stderr, as the Redis tests' do.
#![allow(clippy::print_stderr)]

mod support;

use std::path::PathBuf;
use std::process::Command;

use support::{Stack, stderr, stdout};

/// `target/debug/examples/NAME`, next to this test's `target/debug/deps/`.
fn example(name: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let path = exe.parent()?.parent()?.join("examples").join(name);
    if path.exists() {
        return Some(path);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "example {name} not built at {}: run the whole workspace's tests (`cargo test --workspace --all-features`)",
        path.display()
    );
    eprintln!("skipped: example {name} not built (run the workspace's tests to build it)");
    None
}

#[test]
fn client_examples_get_tokens_from_a_default_m2m_serve() {
    let stack = Stack::start();
    let issuer = format!("http://127.0.0.1:{}", stack.server_port);
    for (name, expect) in [
        (
            "tokio_token_source",
            "100 tasks served by one token request",
        ),
        ("blocking", "call 2: Authorization: Bearer ["),
    ] {
        let Some(path) = example(name) else { continue };
        // Exactly the variables the example's doc comment names, with a key from `m2m keygen`
        // (RS512 by default) and no algorithm given.
        let o = Command::new(&path)
            .env("ISSUER", &issuer)
            .env("CLIENT_ID", "svc")
            .env("PRIVATE_KEY", &stack.pem)
            .env("KID", "k1")
            .env_remove("TOKEN_URL")
            .env_remove("ALG")
            .output()
            .expect("run the example");
        assert!(o.status.success(), "{name}: {}\n{}", stdout(&o), stderr(&o));
        assert!(stdout(&o).contains(expect), "{name}: {}", stdout(&o));
    }
}
