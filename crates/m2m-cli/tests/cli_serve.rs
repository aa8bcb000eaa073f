//! `m2m clients` and `m2m serve` end to end: register a client from its keygen JWKS, start the
//! real server binary, get a token from it with `m2m token` (discovery and NHS profile).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly on purpose

mod support;

use std::process::Stdio;
use std::time::Duration;

use support::{Sandbox, ServerProcess, assert_fails, closed_port, http, stderr, stdout};

fn wait_until_listening(port: u16) {
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("m2m serve did not start listening on {port}");
}

#[test]
fn clients_add_list_remove() {
    let sb = Sandbox::new();
    let (_, jwks) = sb.keygen("k1", &[]);
    let add = |id: &str| {
        sb.run(&[
            "clients",
            "add",
            "--clients",
            "clients.toml",
            "--id",
            id,
            "--jwks",
            jwks.to_str().unwrap(),
            "--scope",
            "read,write",
        ])
    };
    let o = add("svc");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_fails(&add("svc"), 3, "already exists");
    let o = sb.run(&["clients", "list", "--clients", "clients.toml"]);
    assert!(
        stdout(&o).starts_with("svc\tprivate_key_jwt\tinline JWKS (1 keys)"),
        "{}",
        stdout(&o)
    );
    assert!(stdout(&o).contains("scopes=read,write"));
    let o = sb.run(&[
        "clients",
        "remove",
        "--clients",
        "clients.toml",
        "--id",
        "svc",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_fails(
        &sb.run(&[
            "clients",
            "remove",
            "--clients",
            "clients.toml",
            "--id",
            "svc",
        ]),
        3,
        "no client \"svc\"",
    );
}

fn serve(sb: &Sandbox, profile: &str) -> (ServerProcess, u16) {
    serve_with(sb, profile, &[])
}

fn serve_with(sb: &Sandbox, profile: &str, extra: &[&str]) -> (ServerProcess, u16) {
    let port = closed_port();
    let child = sb
        .cmd()
        .args([
            "serve",
            "--clients",
            "clients.toml",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--profile",
            profile,
        ])
        .args(["--replay-store", "memory", "--data-dir", "data"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn m2m serve");
    let server = ServerProcess(child);
    wait_until_listening(port);
    (server, port)
}

#[test]
fn token_from_m2m_serve_by_discovery() {
    let sb = Sandbox::new();
    let (pem, jwks) = sb.keygen("k1", &[]);
    sb.register("svc", &jwks);
    let (_server, port) = serve(&sb, "rfc");
    let issuer = format!("http://127.0.0.1:{port}");
    let o = sb.run(&[
        "token",
        "--issuer",
        &issuer,
        "--client-id",
        "svc",
        "--key",
        pem.to_str().unwrap(),
        "--kid",
        "k1",
        "--json",
        "--no-cache",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let token = v["access_token"].as_str().unwrap();
    let o = sb.run(&["decode", token]);
    let decoded: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(decoded["header"]["typ"], "at+jwt");
    assert_eq!(decoded["claims"]["sub"], "svc");
    // Default rfc profile refuses aud = token URL: a server rejection, exit 5.
    let o = sb.run(&[
        "token",
        "--token-url",
        &format!("{issuer}/oauth2/token"),
        "--client-id",
        "svc",
        "--key",
        pem.to_str().unwrap(),
        "--kid",
        "k1",
        "--no-cache",
        "--attempts",
        "1",
    ]);
    assert_fails(&o, 5, "aud");
}

#[test]
fn token_from_m2m_serve_in_nhs_profile() {
    let sb = Sandbox::new();
    let (pem, jwks) = sb.keygen("k1", &[]);
    sb.register("svc", &jwks);
    let (_server, port) = serve(&sb, "nhs");
    let url = format!("http://127.0.0.1:{port}/oauth2/token");
    // RS512 because the JWKS from keygen says so; NHS-style "expires_in": "599" parsed.
    let o = sb.run(&[
        "token",
        "--token-url",
        &url,
        "--client-id",
        "svc",
        "--key",
        pem.to_str().unwrap(),
        "--kid",
        "k1",
        "--alg",
        "RS512",
        "--json",
        "--no-cache",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["expires_in"], 599);
    // RS256 is refused with NHS's message and our hint.
    let o = sb.run(&[
        "token",
        "--token-url",
        &url,
        "--client-id",
        "svc",
        "--key",
        pem.to_str().unwrap(),
        "--kid",
        "k1",
        "--alg",
        "RS256",
        "--no-cache",
        "--attempts",
        "1",
    ]);
    let err = assert_fails(&o, 5, "RS512");
    assert!(err.contains("\nhint: "), "{err}");
}

#[test]
fn legacy_token_url_audience_only_under_the_dangerous_switch() {
    let sb = Sandbox::new();
    let (pem, jwks) = sb.keygen("k1", &[]);
    sb.register("svc", &jwks);
    let (_server, port) = serve_with(&sb, "rfc", &["--audience", "dangerous-legacy-token-url"]);
    let o = sb.run(&[
        "token",
        "--token-url",
        &format!("http://127.0.0.1:{port}/oauth2/token"),
        "--client-id",
        "svc",
        "--key",
        pem.to_str().unwrap(),
        "--kid",
        "k1",
        "--no-cache",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn rotate_keys_keeps_the_previous_key_published() {
    let sb = Sandbox::new();
    let rotate = || {
        sb.run(&[
            "serve",
            "--clients",
            "clients.toml",
            "--data-dir",
            "data",
            "--rotate-keys",
        ])
    };
    let o = rotate();
    assert!(o.status.success(), "{}", stderr(&o));
    let first = std::fs::read(sb.path().join("data/keys/current.pem")).unwrap();
    let o = rotate();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        std::fs::read(sb.path().join("data/keys/previous.pem")).unwrap(),
        first
    );
    assert_ne!(
        std::fs::read(sb.path().join("data/keys/current.pem")).unwrap(),
        first
    );
    sb.register("svc", &sb.keygen("k1", &[]).1);
    let (_server, port) = serve(&sb, "rfc");
    let (status, body) = http(port, "GET", "/.well-known/jwks.json", "");
    assert_eq!(status, 200, "{body}");
    let jwks: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2, "{body}");
}

/// Starts `m2m serve` with `configure` applied, waits for its banner and returns everything it
/// wrote to stderr by the time it was killed.
fn serve_stderr(sb: &Sandbox, configure: impl FnOnce(&mut std::process::Command)) -> String {
    use std::io::BufRead;
    let port = closed_port();
    let mut cmd = sb.cmd();
    cmd.args([
        "serve",
        "--clients",
        "clients.toml",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--data-dir",
        "data",
    ]);
    configure(&mut cmd);
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn m2m serve");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    let server = ServerProcess(child);
    let mut seen = String::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(20)) {
        seen.push_str(&line);
        seen.push('\n');
        if line.contains("listening on") {
            break;
        }
    }
    drop(server);
    reader.join().unwrap();
    seen.extend(rx.try_iter().map(|l| l + "\n"));
    seen
}

#[test]
fn banner_never_prints_the_redis_password() {
    let sb = Sandbox::new();
    std::fs::write(sb.path().join("clients.toml"), "").unwrap();
    // Nothing listens on the port: the banner comes first either way.
    let url = format!("redis://:pw-2641c9dffec7@127.0.0.1:{}/0", closed_port());
    let from_flag = serve_stderr(&sb, |cmd| {
        cmd.args(["--replay-store", &url]);
    });
    let from_env = serve_stderr(&sb, |cmd| {
        cmd.env("M2M_REPLAY_STORE", &url);
    });
    for seen in [from_flag, from_env] {
        assert!(seen.contains("listening on"), "no banner: {seen}");
        assert!(
            seen.contains("replay store redis://***@127.0.0.1:"),
            "{seen}"
        );
        assert!(
            !seen.contains("pw-2641c9dffec7"),
            "password on stderr: {seen}"
        );
    }
}

#[test]
fn token_lifetime_is_bounded_like_the_registry() {
    let sb = Sandbox::new();
    std::fs::write(sb.path().join("clients.toml"), "").unwrap();
    for bad in ["0", "86401", "18446744073709551615"] {
        let o = sb.run(&[
            "serve",
            "--clients",
            "clients.toml",
            "--data-dir",
            "data",
            "--listen",
            "127.0.0.1:0",
            "--token-lifetime",
            bad,
        ]);
        assert_fails(&o, 2, "1..=86400");
    }
}
