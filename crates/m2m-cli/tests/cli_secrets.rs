//! Client secrets end to end: the real `m2m` binary with each secret method
//! (`client_secret_basic`, `client_secret_post`, `client_secret_jwt`) against the real
//! `m2m serve`; every wrong case with its status, `error` and logged reason; and no secret in the
//! server's TRACE log, in error text or in the token cache.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly on purpose

mod support;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use support::{Sandbox, ServerProcess, assert_fails, closed_port, stderr, stdout};

/// 32+ bytes with every character RFC 6749 §2.3.1's encoding exists for.
const ODD_SECRET: &str = "%:+/ =&-a-secret-with-odd-characters-0123";

fn wait_until_listening(port: u16) {
    for _ in 0..300 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("m2m serve did not start listening on {port}");
}

/// `m2m serve` (rfc, memory store) logging at TRACE into `serve.log`.
fn serve(sb: &Sandbox) -> (ServerProcess, u16, PathBuf) {
    let port = closed_port();
    let log = sb.path().join("serve.log");
    let child = sb
        .cmd()
        .args([
            "serve",
            "--clients",
            "clients.toml",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--replay-store",
            "memory",
            "--data-dir",
            "data",
        ])
        .env("RUST_LOG", "trace")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("spawn m2m serve");
    let server = ServerProcess(child);
    wait_until_listening(port);
    (server, port, log)
}

fn write_private(sb: &Sandbox, name: &str, text: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = sb.path().join(name);
    std::fs::write(&path, format!("{text}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// `m2m clients add` of a secret client; returns the secret (generated → stdout).
fn add_secret_client(sb: &Sandbox, id: &str, method: &str, secret_file: Option<&Path>) -> String {
    let mut args = vec![
        "clients",
        "add",
        "--clients",
        "clients.toml",
        "--id",
        id,
        "--auth-method",
        method,
    ];
    if let Some(f) = secret_file {
        args.extend(["--secret-file", f.to_str().unwrap()]);
    }
    let o = sb.run(&args);
    assert!(o.status.success(), "clients add: {}", stderr(&o));
    match secret_file {
        Some(f) => {
            assert!(o.stdout.is_empty(), "a supplied secret is not echoed");
            std::fs::read_to_string(f).unwrap().trim_end().to_owned()
        }
        None => {
            let secret = stdout(&o).trim_end().to_owned();
            assert_eq!(
                secret.len(),
                43,
                "a 256-bit base64url secret alone on stdout"
            );
            secret
        }
    }
}

/// One raw HTTP/1.1 POST with extra header lines: (status, head, body).
fn post(port: u16, path: &str, headers: &[&str], form: &str) -> (u16, String, String) {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut extra = String::new();
    for h in headers {
        extra.push_str(h);
        extra.push_str("\r\n");
    }
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{extra}\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
        form.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    (status, head.to_lowercase(), body.to_owned())
}

/// One GET: the body.
fn get(port: u16, path: &str) -> String {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response.split_once("\r\n\r\n").unwrap().1.to_owned()
}

fn basic(id: &str, secret: &str) -> String {
    use base64::Engine as _;
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!(
        "Authorization: Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", enc(id), enc(secret)))
    )
}

fn error_of(body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    v["error"].as_str().unwrap().to_owned()
}

/// Every cached file's text under the sandbox's cache dir.
fn cache_text(sb: &Sandbox) -> String {
    let mut out = String::new();
    let mut stack = vec![sb.path().join("cache")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push_str(&String::from_utf8_lossy(&std::fs::read(&p).unwrap()));
            }
        }
    }
    out
}

#[test]
fn every_secret_method_gets_a_token_from_m2m_serve_and_nothing_leaks() {
    let sb = Sandbox::new();
    let odd = write_private(&sb, "odd.secret", ODD_SECRET);
    let basic_secret = add_secret_client(&sb, "basic-svc", "client_secret_basic", Some(&odd));
    let post_secret = add_secret_client(&sb, "post-svc", "client_secret_post", None);
    let jwt_secret = add_secret_client(&sb, "jwt-svc", "client_secret_jwt", None);
    // Only verifiers in the registry; the jwt secret in the 0600 secrets file.
    let registry = std::fs::read_to_string(sb.path().join("clients.toml")).unwrap();
    for s in [&basic_secret, &post_secret, &jwt_secret] {
        assert!(!registry.contains(s.as_str()), "{registry}");
    }
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(sb.path().join("secrets.toml"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let o = sb.run(&["clients", "list", "--clients", "clients.toml"]);
    let list = stdout(&o);
    assert!(list.contains("basic-svc\tclient_secret_basic"), "{list}");
    assert!(list.contains("post-svc\tclient_secret_post"), "{list}");
    assert!(list.contains("jwt-svc\tclient_secret_jwt"), "{list}");

    let (server, port, log) = serve(&sb);
    let issuer = format!("http://127.0.0.1:{port}");
    let token_url = format!("{issuer}/oauth2/token");

    // Metadata lists the methods and the HMAC algorithm.
    let metadata = get(port, "/.well-known/oauth-authorization-server");
    let m: serde_json::Value = serde_json::from_str(&metadata).unwrap();
    let methods = m["token_endpoint_auth_methods_supported"].to_string();
    for name in [
        "client_secret_basic",
        "client_secret_post",
        "client_secret_jwt",
    ] {
        assert!(methods.contains(name), "{methods}");
    }
    assert!(
        m["token_endpoint_auth_signing_alg_values_supported"]
            .to_string()
            .contains("HS256")
    );
    assert!(
        m["introspection_endpoint_auth_methods_supported"]
            .to_string()
            .contains("client_secret_basic")
    );

    // Basic with the odd secret, from a file, through the file cache (twice: miss then hit).
    for _ in 0..2 {
        let o = sb.run(&[
            "token",
            "--token-url",
            &token_url,
            "--client-id",
            "basic-svc",
            "--client-secret-file",
            odd.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "basic: {}", stderr(&o));
    }
    // The client at TRACE, and a refused secret's error text: no secret in either.
    let wrong = write_private(
        &sb,
        "wrong.secret",
        "%:+/ =&-the-wrong-secret-but-long-enough",
    );
    for (file, expect_ok) in [(&odd, true), (&wrong, false)] {
        let o = sb
            .cmd()
            .args([
                "token",
                "--token-url",
                &token_url,
                "--client-id",
                "basic-svc",
                "--client-secret-file",
                file.to_str().unwrap(),
                "--no-cache",
                "--attempts",
                "1",
                "-vv",
            ])
            .env("RUST_LOG", "trace")
            .output()
            .unwrap();
        assert_eq!(o.status.success(), expect_ok, "{}", stderr(&o));
        let err = stderr(&o);
        assert!(!err.contains("odd-characters"), "secret in client output");
        assert!(!err.contains("the-wrong-secret"), "secret in client output");
        if !expect_ok {
            assert_eq!(o.status.code(), Some(5), "{err}");
            assert!(err.contains("invalid_client"), "{err}");
        }
    }
    // Post, from M2M_CLIENT_SECRET.
    let o = sb
        .cmd()
        .args([
            "token",
            "--token-url",
            &token_url,
            "--client-id",
            "post-svc",
            "--auth-method",
            "client_secret_post",
            "--no-cache",
        ])
        .env("M2M_CLIENT_SECRET", &post_secret)
        .output()
        .unwrap();
    assert!(o.status.success(), "post: {}", stderr(&o));
    // client_secret_jwt from stdin, aud = the issuer (discovery).
    let mut child = sb
        .cmd()
        .args([
            "token",
            "--issuer",
            &issuer,
            "--client-id",
            "jwt-svc",
            "--auth-method",
            "client_secret_jwt",
            "--client-secret-stdin",
            "--json",
            "--no-cache",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{jwt_secret}").unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "jwt: {}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let o = sb.run(&["decode", v["access_token"].as_str().unwrap()]);
    let decoded: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(decoded["claims"]["sub"], "jwt-svc");

    // Wrong cases, each with its status, error and logged reason.
    let (s, head, wrong) = post(
        port,
        "/oauth2/token",
        &[&basic("basic-svc", "wrong-secret")],
        "grant_type=client_credentials",
    );
    assert_eq!((s, error_of(&wrong).as_str()), (401, "invalid_client"));
    assert!(head.contains("www-authenticate: basic realm="), "{head}");
    let (s, head, unknown) = post(
        port,
        "/oauth2/token",
        &[&basic("nobody", "wrong-secret")],
        "grant_type=client_credentials",
    );
    assert_eq!(s, 401);
    assert!(head.contains("www-authenticate: basic"));
    assert_eq!(
        unknown, wrong,
        "unknown client and wrong secret look the same"
    );
    let (s, _, body) = post(
        port,
        "/oauth2/token",
        &[],
        &format!(
            "grant_type=client_credentials&client_id=basic-svc&client_secret={}",
            url::form_urlencoded::byte_serialize(ODD_SECRET.as_bytes()).collect::<String>()
        ),
    );
    assert_eq!(
        (s, error_of(&body).as_str()),
        (401, "invalid_client"),
        "{body}"
    );
    let (s, _, body) = post(
        port,
        "/oauth2/token",
        &[&basic("basic-svc", ODD_SECRET)],
        "grant_type=client_credentials&client_id=post-svc&client_secret=x",
    );
    assert_eq!(
        (s, error_of(&body).as_str()),
        (400, "invalid_request"),
        "{body}"
    );
    let (s, head, body) = post(
        port,
        "/oauth2/token",
        &["Authorization: Basic !!!not-base64"],
        "grant_type=client_credentials",
    );
    assert_eq!(
        (s, error_of(&body).as_str()),
        (401, "invalid_client"),
        "{body}"
    );
    assert!(head.contains("www-authenticate: basic"));
    let (s, _, body) = post(
        port,
        &format!("/oauth2/token?client_secret={post_secret}"),
        &[],
        "grant_type=client_credentials&client_id=post-svc",
    );
    assert_eq!(
        (s, error_of(&body).as_str()),
        (400, "invalid_request"),
        "{body}"
    );
    // Introspection accepts the secret methods too.
    let (s, _, body) = post(
        port,
        "/oauth2/introspect",
        &[&basic("basic-svc", ODD_SECRET)],
        "token=abc",
    );
    assert_eq!(s, 200, "{body}");

    drop(server);
    let log_text = std::fs::read_to_string(&log).unwrap();
    for reason in [
        "secret_mismatch",
        "unknown_client",
        "method_not_registered",
        "basic_malformed",
        "query_params",
    ] {
        assert!(log_text.contains(reason), "log lacks {reason}");
    }
    for secret in [&basic_secret, &post_secret, &jwt_secret] {
        assert!(
            !log_text.contains(secret.as_str()),
            "a secret in the server log"
        );
    }
    assert!(
        !log_text.contains("odd-characters"),
        "the odd secret in the log"
    );
    let cache = cache_text(&sb);
    assert!(!cache.is_empty(), "the basic token was cached");
    assert!(!cache.contains("odd-characters"), "a secret in the cache");
}

#[test]
fn secret_mistakes_are_refused_before_sending_with_the_reason() {
    let sb = Sandbox::new();
    // --client-secret takes no value: argv is visible to every local user.
    let o = sb.run(&[
        "token",
        "--token-url",
        "http://127.0.0.1:9/oauth2/token",
        "--client-id",
        "c",
        "--client-secret",
        "s3cr3t-on-argv",
    ]);
    let err = assert_fails(&o, 2, "visible to every local user");
    assert!(err.contains("--client-secret-file"));
    assert!(!err.contains("s3cr3t-on-argv"));
    // client_secret_jwt with a secret shorter than the hash output (RFC 7518 §3.2).
    let short = write_private(&sb, "short.secret", "only-twenty-bytes-ok");
    let o = sb.run(&[
        "token",
        "--token-url",
        "http://127.0.0.1:9/oauth2/token",
        "--client-id",
        "c",
        "--auth-method",
        "client_secret_jwt",
        "--client-secret-file",
        short.to_str().unwrap(),
    ]);
    let err = assert_fails(&o, 3, "32 bytes");
    assert!(!err.contains("only-twenty-bytes-ok"));
    // NHS takes a signed JWT only.
    let o = sb.run(&[
        "token",
        "--env",
        "int",
        "--client-id",
        "c",
        "--client-secret-file",
        short.to_str().unwrap(),
    ]);
    let err = stderr(&o);
    assert!(!o.status.success());
    assert!(err.contains("signed JWT only"), "{err}");
    // A supplied server secret must be at least 32 bytes.
    let o = sb.run(&[
        "clients",
        "add",
        "--clients",
        "clients.toml",
        "--id",
        "x",
        "--auth-method",
        "client_secret_basic",
        "--secret-file",
        short.to_str().unwrap(),
    ]);
    assert_fails(&o, 3, "at least 32");
}

#[test]
fn a_secrets_file_readable_by_others_stops_the_server() {
    use std::os::unix::fs::PermissionsExt;
    let sb = Sandbox::new();
    add_secret_client(&sb, "jwt-svc", "client_secret_jwt", None);
    let secrets = sb.path().join("secrets.toml");
    std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = sb.run(&[
        "serve",
        "--clients",
        "clients.toml",
        "--listen",
        &format!("127.0.0.1:{}", closed_port()),
        "--replay-store",
        "memory",
        "--data-dir",
        "data",
    ]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("chmod 600"), "{err}");
}

#[test]
fn rotation_keeps_both_secrets_until_retired() {
    let sb = Sandbox::new();
    let old = add_secret_client(&sb, "svc", "client_secret_post", None);
    let o = sb.run(&[
        "clients",
        "rotate-secret",
        "--clients",
        "clients.toml",
        "--id",
        "svc",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let new = stdout(&o).trim_end().to_owned();
    assert_ne!(old, new);
    let get = |port: u16, secret: &str| {
        post(
            port,
            "/oauth2/token",
            &[],
            &format!("grant_type=client_credentials&client_id=svc&client_secret={secret}"),
        )
        .0
    };
    {
        let (_server, port, _) = serve(&sb);
        assert_eq!(get(port, &old), 200);
        assert_eq!(get(port, &new), 200);
    }
    let o = sb.run(&[
        "clients",
        "retire-secret",
        "--clients",
        "clients.toml",
        "--id",
        "svc",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (_server, port, _) = serve(&sb);
    assert_eq!(get(port, &old), 401);
    assert_eq!(get(port, &new), 200);
}

#[test]
fn metadata_without_the_method_is_an_error_before_sending() {
    let sb = Sandbox::new();
    let (_, jwks) = sb.keygen("k1", &[]);
    sb.register("svc", &jwks);
    let secret = write_private(&sb, "s.secret", ODD_SECRET);
    let (_server, port, _log) = serve(&sb);
    let o = sb.run(&[
        "token",
        "--issuer",
        &format!("http://127.0.0.1:{port}"),
        "--client-id",
        "svc",
        "--client-secret-file",
        secret.to_str().unwrap(),
        "--no-cache",
    ]);
    let err = stderr(&o);
    assert!(!o.status.success());
    assert!(err.contains("does not list client_secret_basic"), "{err}");
    assert!(err.contains("nothing was sent"), "{err}");
}
