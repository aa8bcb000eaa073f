//! What users expect and would otherwise not find: `m2m introspect` against a real `m2m serve`,
//! `--json` for `decode --lint` and `jwks check`, `m2m keygen --encrypt`, and `m2m man --all`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly on purpose

mod support;

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use support::{Sandbox, ServerProcess, assert_fails, closed_port, stderr, stdout};

/// `m2m serve` (rfc profile, memory store) on a free port, registry `clients.toml`.
fn serve(sb: &Sandbox) -> (ServerProcess, String) {
    let port = closed_port();
    let child = sb
        .cmd()
        .args(["serve", "--clients", "clients.toml", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .args(["--replay-store", "memory", "--data-dir", "data"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn m2m serve");
    let server = ServerProcess(child);
    for _ in 0..400 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return (server, format!("http://127.0.0.1:{port}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("m2m serve did not listen on {port}");
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[test]
fn introspect_against_m2m_serve() {
    let sb = Sandbox::new();
    let (pem, jwks) = sb.keygen("k1", &[]);
    sb.register("svc", &jwks);
    let (_server, issuer) = serve(&sb);
    let pem = pem.to_str().unwrap();
    let auth = [
        "--issuer",
        issuer.as_str(),
        "--client-id",
        "svc",
        "--key",
        pem,
        "--kid",
        "k1",
    ];
    let o = sb.run(&[&["token", "--no-cache"][..], &auth].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    let token = stdout(&o).trim().to_owned();

    // The token as an argument: active, with the RFC 7662 members.
    let o = sb.run(&[&["introspect"][..], &auth, &[token.as_str()]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    let v = json(&stdout(&o));
    assert_eq!(v["active"], true, "{v}");
    assert_eq!(v["client_id"], "svc");
    assert!(v["exp"].is_u64() && v["iat"].is_u64(), "{v}");

    // From stdin (`-`), twice: a fresh assertion per request, so no replay refusal.
    for _ in 0..2 {
        let mut child = sb
            .cmd()
            .args([&["introspect"][..], &auth, &["-"]].concat())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write as _;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(token.as_bytes())
            .unwrap();
        let o = child.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(json(&stdout(&o))["active"], true);
    }

    // Garbage is inactive, not an error.
    let o = sb.run(&[&["introspect"][..], &auth, &["not-a-token"]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(json(&stdout(&o)), serde_json::json!({"active": false}));

    // A caller the server does not know is refused: exit 5, the server's reason.
    let o = sb.run(&[
        "introspect",
        "--issuer",
        &issuer,
        "--client-id",
        "nobody",
        "--key",
        pem,
        "--kid",
        "k1",
        &token,
    ]);
    assert_fails(&o, 5, "invalid_client");

    // With an explicit endpoint and a token URL, the aud must still be the issuer.
    let o = sb.run(&[
        "introspect",
        "--token-url",
        &format!("{issuer}/oauth2/token"),
        "--issuer",
        &issuer,
        "--introspection-url",
        &format!("{issuer}/oauth2/introspect"),
        "--client-id",
        "svc",
        "--key",
        pem,
        "--kid",
        "k1",
        &token,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(json(&stdout(&o))["active"], true);

    // A token URL alone: the RFC 8414 metadata at its origin names it, so the introspection
    // endpoint comes from there too.
    let o = sb.run(&[
        "introspect",
        "--token-url",
        &format!("{issuer}/oauth2/token"),
        "--client-id",
        "svc",
        "--key",
        pem,
        "--kid",
        "k1",
        &token,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(json(&stdout(&o))["active"], true);

    // A token URL with an explicit --aud is not looked up: it names no introspection endpoint, a
    // usage error that says what to pass.
    let o = sb.run(&[
        "introspect",
        "--token-url",
        &format!("{issuer}/oauth2/token"),
        "--aud",
        &issuer,
        "--client-id",
        "svc",
        "--key",
        pem,
        "--kid",
        "k1",
        &token,
    ]);
    let err = assert_fails(&o, 2, "no introspection endpoint");
    assert!(err.contains("--introspection-url"), "{err}");
}

#[test]
fn decode_lint_json_has_the_documented_fields() {
    let sb = Sandbox::new();
    let (pem, _) = sb.keygen("int-1", &[]);
    let o = sb.run(&[
        "assertion",
        "--env",
        "int",
        "--client-id",
        "key",
        "--key",
        pem.to_str().unwrap(),
        "--kid",
        "int-1",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let jwt = stdout(&o).trim().to_owned();

    let o = sb.run(&["decode", "--lint", "nhs", "--env", "int", "--json", &jwt]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v = json(&stdout(&o));
    assert_eq!(v["header"]["alg"], "RS512");
    assert_eq!(v["claims"]["iss"], "key");
    assert!(v["_times"]["exp"].is_string());
    assert_eq!(v["lint"]["profile"], "nhs");
    assert_eq!(v["lint"]["ok"], true);
    assert_eq!(v["lint"]["findings"], serde_json::json!([]));

    // Linted for prod: exit 1, stdout still one JSON document, the finding names prod's URL.
    let o = sb.run(&["decode", "--lint", "nhs", "--env", "prod", "--json", &jwt]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let v = json(&stdout(&o));
    assert_eq!(v["lint"]["ok"], false);
    let findings = v["lint"]["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{v}");
    assert_eq!(findings[0]["rule"], "aud_invalid");
    let message = findings[0]["message"].as_str().unwrap();
    assert!(
        message.contains("https://api.service.nhs.uk/oauth2/token") && message.contains("prod"),
        "{message}"
    );

    // --json without --lint is a usage error (plain decode is JSON already).
    assert_eq!(sb.run(&["decode", "--json", &jwt]).status.code(), Some(2));
}

#[test]
fn jwks_check_json_has_the_documented_fields() {
    let sb = Sandbox::new();
    let (_, jwks) = sb.keygen("k1", &[]);
    sb.register("svc", &jwks);
    let (_server, issuer) = serve(&sb);
    // The server's own JWKS: fine (its ES256 key), exit 0.
    let url = format!("{issuer}/.well-known/jwks.json");
    let o = sb.run(&["jwks", "check", "--json", &url]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v = json(&stdout(&o));
    assert_eq!(v["url"], url.as_str());
    assert_eq!(v["ok"], true);
    assert_eq!(v["errors"], 0);
    assert!(v["warnings"].is_u64());
    assert!(v["summary"].is_string());
    let findings = v["findings"].as_array().unwrap();
    assert!(!findings.is_empty());
    for f in findings {
        assert!(
            ["ok", "warning", "error"].contains(&f["level"].as_str().unwrap()),
            "{f}"
        );
        assert!(f["message"].is_string());
    }
    // No JWKS there: exit 1, the JSON says why.
    let o = sb.run(&["jwks", "check", "--json", &format!("{issuer}/healthz")]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let v = json(&stdout(&o));
    assert_eq!(v["ok"], false);
    assert!(v["errors"].as_u64().unwrap() >= 1, "{v}");
}

#[test]
fn keygen_encrypt_round_trip() {
    let sb = Sandbox::new();
    let keys = sb.path().join("keys");
    let o = sb
        .cmd()
        .args([
            "keygen",
            "--kid",
            "enc-1",
            "--bits",
            "2048",
            "--encrypt",
            "--out",
        ])
        .arg(&keys)
        .env("M2M_KEY_PASSPHRASE", "correct horse")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("encrypted"), "{}", stderr(&o));
    let pem = keys.join("enc-1.pem");
    let text = std::fs::read_to_string(&pem).unwrap();
    assert!(
        text.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"),
        "{text}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&pem).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // OpenSSL reads it with the passphrase too (a standard PKCS#8 / PBES2 file).
    if let Ok(o) = std::process::Command::new("openssl")
        .args(["pkey", "-noout", "-passin", "pass:correct horse", "-in"])
        .arg(&pem)
        .output()
    {
        assert!(o.status.success(), "openssl: {}", stderr(&o));
    }

    sb.register("svc", &keys.join("enc-1.jwks.json"));
    let (_server, issuer) = serve(&sb);
    let token = |passphrase: Option<&str>| {
        let mut cmd = sb.cmd();
        cmd.args([
            "token",
            "--no-cache",
            "--issuer",
            &issuer,
            "--client-id",
            "svc",
        ])
        .args(["--kid", "enc-1", "--key"])
        .arg(&pem)
        .stdin(Stdio::null());
        if let Some(p) = passphrase {
            cmd.env("M2M_KEY_PASSPHRASE", p);
        }
        cmd.output().unwrap()
    };
    let o = token(Some("correct horse"));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).trim().starts_with("ey"));
    // Without a passphrase (and no terminal): a clear local error naming the variable.
    let err = assert_fails(&token(None), 3, "passphrase");
    assert!(err.contains("M2M_KEY_PASSPHRASE"), "{err}");
    // A wrong one: refused, nothing sent.
    assert_fails(&token(Some("wrong")), 3, "passphrase");

    // --encrypt with no passphrase source writes nothing.
    let o = sb
        .cmd()
        .args([
            "keygen",
            "--kid",
            "enc-2",
            "--bits",
            "2048",
            "--encrypt",
            "--out",
        ])
        .arg(&keys)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = assert_fails(&o, 3, "passphrase");
    assert!(err.contains("M2M_KEY_PASSPHRASE"), "{err}");
    assert!(!keys.join("enc-2.pem").exists());
}

#[test]
fn man_all_writes_one_page_per_subcommand() {
    let sb = Sandbox::new();
    let dir = sb.path().join("man1");
    let o = sb.run(&["man", "--all", dir.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut pages: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    pages.sort();
    for expected in [
        "m2m.1",
        "m2m-token.1",
        "m2m-introspect.1",
        "m2m-jwks.1",
        "m2m-jwks-check.1",
        "m2m-clients-add.1",
        "m2m-cache-clear.1",
        "m2m-serve.1",
        "m2m-man.1",
    ] {
        assert!(
            pages.contains(&expected.to_owned()),
            "{expected} in {pages:?}"
        );
    }
    assert!(!pages.iter().any(|p| p.contains("help")), "{pages:?}");
    // Every page a page refers to (`m2m\-token(1)` in roff) exists.
    for page in &pages {
        let text = std::fs::read_to_string(dir.join(page)).unwrap();
        for (i, _) in text.match_indices("(1)") {
            let start = text[..i]
                .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '\\'))
                .map_or(0, |s| s + 1);
            let name = text[start..i].replace("\\-", "-");
            if name.starts_with("m2m") {
                assert!(
                    pages.contains(&format!("{name}.1")),
                    "{page} refers to {name}(1), which was not written"
                );
            }
        }
    }
    // Examples keep their lines: no-fill mode, the curl example's continuation on its own line.
    let token = std::fs::read_to_string(dir.join("m2m-token.1")).unwrap();
    assert!(token.contains(".SH EXAMPLES\n.nf\n"), "{token}");
    assert!(
        token.lines().any(|l| l
            .trim_start()
            .starts_with("https://int.api.service.nhs.uk/hello")),
        "{token}"
    );
    // NAME is "m2m - Machine-to-machine …", not "m2m - m2m: …".
    let top = std::fs::read_to_string(dir.join("m2m.1")).unwrap();
    assert!(!top.contains("m2m \\- m2m:"), "{top}");
    // Plain `m2m man` still prints the top page.
    let o = sb.run(&["man"]);
    assert!(o.status.success() && stdout(&o).contains(".TH m2m"));
}
