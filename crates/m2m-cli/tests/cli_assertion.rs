//! `m2m assertion`: the output contract, algorithm choice, and every bad input with its own
//! message and exit code.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly on purpose

mod support;

use std::process::Command;

use support::{Sandbox, assert_fails, stderr, stdout, verify_with_jwks};

const NHS_INT: &str = "https://int.api.service.nhs.uk/oauth2/token";
const LOCAL: &str = "http://127.0.0.1:9/oauth2/token";

fn assertion(sb: &Sandbox, key: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["assertion", "--client-id", "client-1", "--key", key];
    args.extend(extra);
    sb.run(&args)
}

#[test]
fn prints_exactly_one_verifiable_jwt_and_a_newline() {
    let sb = Sandbox::new();
    let (pem, jwks) = sb.keygen("k1", &[]);
    let o = assertion(
        &sb,
        pem.to_str().unwrap(),
        &["--kid", "k1", "--token-url", LOCAL],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.ends_with('\n') && !out.ends_with("\n\n"),
        "one trailing newline"
    );
    let jwt = out.trim_end_matches('\n');
    assert_eq!(jwt.lines().count(), 1);
    assert_eq!(jwt.split('.').count(), 3);
    assert!(o.stderr.is_empty(), "nothing on stderr: {}", stderr(&o));
    let claims = verify_with_jwks(jwt, &jwks);
    assert_eq!(claims["iss"], "client-1");
    assert_eq!(claims["sub"], "client-1");
    assert_eq!(claims["aud"], LOCAL);
    let (iat, exp) = (
        claims["iat"].as_u64().unwrap(),
        claims["exp"].as_u64().unwrap(),
    );
    assert_eq!(exp - iat, 60, "default lifetime");
    // Not NHS: the alg recorded in the JWKS keygen wrote beside the key (RS512)...
    let header: serde_json::Value = decode_header(jwt);
    assert_eq!(header["alg"], "RS512");
    // ...and without it, the key type's default.
    std::fs::remove_file(&jwks).unwrap();
    let o = assertion(
        &sb,
        pem.to_str().unwrap(),
        &["--kid", "k1", "--token-url", LOCAL],
    );
    assert_eq!(decode_header(stdout(&o).trim())["alg"], "RS256");
    assert_eq!(header["kid"], "k1");
}

fn decode_header(jwt: &str) -> serde_json::Value {
    let part = jwt.split('.').next().unwrap();
    serde_json::from_slice(&m2m_core::jws::base64url_decode(part).unwrap()).unwrap()
}

#[test]
fn nhs_token_url_selects_rs512_by_itself() {
    let sb = Sandbox::new();
    let (pem, jwks) = sb.keygen("int-1", &[]);
    for endpoint in [["--token-url", NHS_INT], ["--env", "int"]] {
        let o = assertion(
            &sb,
            pem.to_str().unwrap(),
            &[&["--kid", "int-1"][..], &endpoint[..]].concat(),
        );
        assert!(o.status.success(), "{}", stderr(&o));
        let jwt = stdout(&o);
        let jwt = jwt.trim();
        let header = decode_header(jwt);
        assert_eq!(header["alg"], "RS512");
        assert_eq!(header["typ"], "JWT");
        let claims = verify_with_jwks(jwt, &jwks);
        assert_eq!(claims["aud"], NHS_INT, "aud is the exact token URL");
    }
}

#[test]
fn settings_from_env_and_profile_with_precedence() {
    let sb = Sandbox::new();
    let (pem, _) = sb.keygen("k1", &[]);
    std::fs::create_dir_all(sb.path().join("config/m2m")).unwrap();
    std::fs::write(
        sb.path().join("config/m2m/config.toml"),
        format!(
            "[profiles.dev]\ntoken_url = \"{LOCAL}\"\nclient_id = \"from-profile\"\nkey = \"{}\"\nkid = \"k1\"\nlifetime = 30\n",
            pem.display()
        ),
    )
    .unwrap();
    let run = |cmd: &mut Command| {
        let o = cmd.output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        let jwt = stdout(&o);
        let parts: Vec<&str> = jwt.trim().split('.').collect();
        let claims: serde_json::Value =
            serde_json::from_slice(&m2m_core::jws::base64url_decode(parts[1]).unwrap()).unwrap();
        claims
    };
    let c = run(sb.cmd().args(["assertion", "--profile", "dev"]));
    assert_eq!(c["iss"], "from-profile");
    assert_eq!(c["exp"].as_u64().unwrap() - c["iat"].as_u64().unwrap(), 30);
    let c = run(sb
        .cmd()
        .args(["assertion", "--profile", "dev"])
        .env("M2M_CLIENT_ID", "from-env"));
    assert_eq!(c["iss"], "from-env", "env beats profile");
    let c = run(sb
        .cmd()
        .args(["assertion", "--client-id", "from-flag"])
        .env("M2M_PROFILE", "dev")
        .env("M2M_CLIENT_ID", "from-env"));
    assert_eq!(c["iss"], "from-flag", "flag beats env");
    assert_fails(
        &sb.run(&["assertion", "--profile", "nope"]),
        3,
        "no profile \"nope\"",
    );
}

#[test]
fn missing_key_file() {
    let sb = Sandbox::new();
    let o = assertion(&sb, "does-not-exist.pem", &["--token-url", LOCAL]);
    let err = assert_fails(&o, 3, "does-not-exist.pem: no such file");
    assert!(err.contains("hint: "), "{err}");
}

#[test]
fn unreadable_key_file() {
    let sb = Sandbox::new();
    std::fs::create_dir(sb.path().join("dir.pem")).unwrap();
    assert_fails(
        &assertion(&sb, "dir.pem", &["--token-url", LOCAL]),
        3,
        "cannot read key file",
    );
}

#[test]
fn public_key_where_private_is_needed() {
    let sb = Sandbox::new();
    let (pem, jwks) = sb.keygen("k1", &[]);
    assert_fails(
        &assertion(
            &sb,
            jwks.to_str().unwrap(),
            &["--token-url", LOCAL, "--kid", "k1"],
        ),
        3,
        "public key",
    );
    let public_pem = sb.path().join("pub.pem");
    let ok = Command::new("openssl")
        .args([
            "pkey",
            "-in",
            pem.to_str().unwrap(),
            "-pubout",
            "-out",
            public_pem.to_str().unwrap(),
        ])
        .status()
        .expect("openssl");
    assert!(ok.success());
    assert_fails(
        &assertion(&sb, public_pem.to_str().unwrap(), &["--token-url", LOCAL]),
        3,
        "public key",
    );
}

#[test]
fn encrypted_key_needs_a_passphrase() {
    let sb = Sandbox::new();
    let (pem, jwks) = sb.keygen("k1", &[]);
    let enc = sb.path().join("enc.pem");
    let ok = Command::new("openssl")
        .args([
            "pkcs8",
            "-topk8",
            "-v2",
            "aes-256-cbc",
            "-passout",
            "pass:s3cret",
        ])
        .args(["-in", pem.to_str().unwrap(), "-out", enc.to_str().unwrap()])
        .status()
        .expect("openssl");
    assert!(ok.success());
    // No passphrase and no terminal (stdin is not a TTY under the test harness).
    let o = sb
        .cmd()
        .args([
            "assertion",
            "--client-id",
            "c",
            "--key",
            enc.to_str().unwrap(),
            "--token-url",
            LOCAL,
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let err = assert_fails(&o, 3, "encrypted");
    assert!(err.contains("M2M_KEY_PASSPHRASE"), "{err}");
    let o = sb
        .cmd()
        .args([
            "assertion",
            "--client-id",
            "c",
            "--key",
            enc.to_str().unwrap(),
            "--token-url",
            LOCAL,
            "--kid",
            "k1",
        ])
        .env("M2M_KEY_PASSPHRASE", "wrong")
        .output()
        .unwrap();
    assert_fails(&o, 3, "passphrase");
    let o = sb
        .cmd()
        .args([
            "assertion",
            "--client-id",
            "c",
            "--key",
            enc.to_str().unwrap(),
            "--token-url",
            LOCAL,
            "--kid",
            "k1",
        ])
        .env("M2M_KEY_PASSPHRASE", "s3cret")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    verify_with_jwks(stdout(&o).trim(), &jwks);
}

#[test]
fn rsa_1024_is_refused() {
    let sb = Sandbox::new();
    let small = sb.path().join("small.pem");
    let ok = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:1024",
            "-out",
            small.to_str().unwrap(),
        ])
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl");
    assert!(ok.success());
    assert_fails(
        &assertion(&sb, small.to_str().unwrap(), &["--token-url", LOCAL]),
        3,
        "1024 bits",
    );
}

#[test]
fn alg_that_does_not_fit_the_key() {
    let sb = Sandbox::new();
    let (pem, _) = sb.keygen("k1", &[]);
    let o = assertion(
        &sb,
        pem.to_str().unwrap(),
        &["--token-url", LOCAL, "--alg", "ES256"],
    );
    assert_fails(&o, 3, "ES256 does not fit a RSA-2048 key");
    let (ec, _) = sb.keygen("ec1", &["--alg", "ES384"]);
    assert_fails(
        &assertion(
            &sb,
            ec.to_str().unwrap(),
            &["--token-url", LOCAL, "--alg", "RS512"],
        ),
        3,
        "does not fit",
    );
    // An unknown name is a usage error from the parser.
    let o = assertion(
        &sb,
        pem.to_str().unwrap(),
        &["--token-url", LOCAL, "--alg", "HS256"],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("unsupported algorithm"));
}

#[test]
fn kid_missing_from_a_jwks() {
    let sb = Sandbox::new();
    let jwks = sb.path().join("private.jwks.json");
    std::fs::write(
        &jwks,
        r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"a",
 "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
 "y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
 "d":"jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"}]}"#,
    )
    .unwrap();
    let err = assert_fails(
        &assertion(
            &sb,
            jwks.to_str().unwrap(),
            &["--token-url", LOCAL, "--kid", "b"],
        ),
        3,
        "no key with kid \"b\"",
    );
    assert!(err.contains("it has: a"), "{err}");
    let o = assertion(
        &sb,
        jwks.to_str().unwrap(),
        &["--token-url", LOCAL, "--kid", "a"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(decode_header(stdout(&o).trim())["alg"], "ES256");
}

#[test]
fn malformed_url_and_plain_http() {
    let sb = Sandbox::new();
    let (pem, _) = sb.keygen("k1", &[]);
    let key = pem.to_str().unwrap();
    assert_fails(
        &assertion(&sb, key, &["--token-url", "not a url"]),
        3,
        "not a valid URL",
    );
    let err = assert_fails(
        &assertion(&sb, key, &["--token-url", "http://auth.example.org/token"]),
        3,
        "plain http",
    );
    assert!(err.contains("hint: use https"), "{err}");
    let o = assertion(
        &sb,
        key,
        &[
            "--token-url",
            "http://auth.example.org/token",
            "--dangerous-allow-insecure-http",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn missing_settings_are_usage_errors() {
    let sb = Sandbox::new();
    let (pem, _) = sb.keygen("k1", &[]);
    assert_fails(
        &sb.run(&[
            "assertion",
            "--client-id",
            "c",
            "--key",
            pem.to_str().unwrap(),
        ]),
        2,
        "no token endpoint",
    );
    assert_fails(
        &sb.run(&[
            "assertion",
            "--token-url",
            LOCAL,
            "--key",
            pem.to_str().unwrap(),
        ]),
        2,
        "no client id",
    );
    assert_fails(
        &sb.run(&["assertion", "--token-url", LOCAL, "--client-id", "c"]),
        2,
        "no key",
    );
    let o = assertion(
        &sb,
        pem.to_str().unwrap(),
        &["--token-url", LOCAL, "--lifetime", "301"],
    );
    assert_fails(&o, 3, "300");
}
