//! The registry file: loading errors name file and line; refusals (private members, unknown
//! fields, plain http); comment-preserving add/remove/list.
#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use m2m_core::alg::Algorithm;
use m2m_server::{AuthMethod, ClientKeySource, Registry, RegistryError};
use m2m_server::{NewClient, NewClientKeys, add_client, list_clients, remove_client};
use support::*;

fn load(text: &str) -> Result<Registry, RegistryError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clients.toml");
    std::fs::write(&path, text).unwrap();
    Registry::load(&path)
}

#[test]
fn unknown_fields_are_refused_with_a_line() {
    let err = load("[[client]]\nid = \"a\"\nscope = [\"x\"]\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("clients.toml") && err.contains("unknown field") && err.contains("line 3"),
        "{err}"
    );
}

#[test]
fn private_members_are_refused() {
    let text = "\n[[client]]\nid = \"leaky\"\n[client.jwks]\nkeys = [{ kty = \"EC\", crv = \"P-256\", x = \"AA\", y = \"AA\", d = \"AA\" }]\n";
    let err = load(text).unwrap_err().to_string();
    assert!(
        err.contains(":2:") && err.contains("leaky") && err.contains("private"),
        "{err}"
    );
}

#[test]
fn other_refusals() {
    let cases = [
        (
            "[[client]]\nid = \"a\"\njwks_uri = \"http://example.com/jwks\"\n",
            "loopback",
        ),
        ("[[client]]\nid = \"a\"\nalgs = [\"HS256\"]\n", "HS256"),
        (
            "[[client]]\nid = \"a\"\n\n[[client]]\nid = \"a\"\n",
            "duplicate",
        ),
        (
            "[[client]]\nid = \"a\"\njwks_file = \"missing.json\"\n",
            "missing.json",
        ),
        ("[[client]]\nid = \"a\"\nscopes = [\"a b\"]\n", "scope"),
    ];
    for (text, needle) in cases {
        let err = load(text).unwrap_err().to_string();
        assert!(err.contains(needle), "{needle}: {err}");
    }
    assert!(load("").unwrap().is_empty());
    let r = load("[[client]]\nid = \"a\"\njwks_uri = \"http://127.0.0.1:1/jwks.json\"\n").unwrap();
    assert!(matches!(
        r.get("a").unwrap().keys,
        ClientKeySource::Remote(_)
    ));
    assert_eq!(r.get("a").unwrap().algs, vec![Algorithm::Rs512]);
}

#[test]
fn add_remove_list_preserve_comments() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clients.toml");
    std::fs::write(
        &path,
        "# Our clients — keep this comment\n\n[[client]]\nid = \"first\" # inline note\n",
    )
    .unwrap();

    let mut inline = NewClient::new("inline", NewClientKeys::Jwks(jwks(&[(&key_a(), "k1")])));
    inline.algs = vec![Algorithm::Rs512];
    inline.scopes = vec!["read".into()];
    inline.token_lifetime = Some(300);
    add_client(&path, &inline).unwrap();
    let mut remote = NewClient::new(
        "remote",
        NewClientKeys::JwksUri("https://svc.example/jwks.json".into()),
    );
    remote.rate_limit = Some(10);
    add_client(&path, &remote).unwrap();
    assert!(
        add_client(&path, &remote)
            .unwrap_err()
            .to_string()
            .contains("already exists")
    );

    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("# Our clients — keep this comment") && text.contains("# inline note"),
        "{text}"
    );
    let registry = Registry::load(&path).unwrap();
    let c = registry.get("inline").unwrap();
    assert_eq!(c.algs, vec![Algorithm::Rs512]);
    assert!(
        matches!(&c.keys, ClientKeySource::Static(k) if k.len() == 1 && k.as_slice()[0].kid.as_deref() == Some("k1"))
    );
    assert_eq!(registry.get("remote").unwrap().rate_limit, Some(10));

    let listed = list_clients(&path).unwrap();
    let ids: Vec<&str> = listed.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["first", "inline", "remote"]);
    assert_eq!(listed[1].keys, "inline JWKS (1 keys)");
    assert_eq!(listed[2].keys, "jwks_uri https://svc.example/jwks.json");

    assert!(remove_client(&path, "inline").unwrap());
    assert!(!remove_client(&path, "inline").unwrap());
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("# Our clients — keep this comment") && !text.contains("\"inline\""),
        "{text}"
    );
    assert_eq!(Registry::load(&path).unwrap().len(), 2);

    // A JWKS with private members is never written.
    let mut leaky = jwks(&[(&key_a(), "k1")]);
    leaky.keys[0].d = Some(zeroize::Zeroizing::new("AA".to_owned()));
    let err = add_client(&path, &NewClient::new("leaky", NewClientKeys::Jwks(leaky))).unwrap_err();
    assert!(err.to_string().contains("private"), "{err}");
}

#[test]
fn auth_method_defaults_to_private_key_jwt_and_refuses_others() {
    let r = load(
        "[[client]]\nid = \"a\"\n\n[[client]]\nid = \"b\"\nauth_method = \"private_key_jwt\"\n",
    )
    .unwrap();
    assert_eq!(r.get("a").unwrap().auth_method, AuthMethod::PrivateKeyJwt);
    assert_eq!(r.get("b").unwrap().auth_method, AuthMethod::PrivateKeyJwt);

    let err = load("[[client]]\nid = \"a\"\nauth_method = \"tls_client_auth\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(":1:")
            && err.contains("auth_method")
            && err.contains("not supported")
            && err.contains("private_key_jwt"),
        "{err}"
    );
    // A secret method without a stored verifier could never authenticate: refused, with the fix.
    let err = load("[[client]]\nid = \"a\"\nauth_method = \"client_secret_basic\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(":1:") && err.contains("secret_verifiers"),
        "{err}"
    );
    let err = load("[[client]]\nid = \"a\"\nauth_method = \"private-key-jwt\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("unknown method") && err.contains("private_key_jwt"),
        "{err}"
    );
}

#[test]
fn duplicate_scopes_are_dropped_keeping_the_first() {
    let r = load("[[client]]\nid = \"a\"\nscopes = [\"a\", \"b\", \"a\", \"c\", \"b\"]\n").unwrap();
    assert_eq!(r.get("a").unwrap().scopes, ["a", "b", "c"]);
}

/// The `jwks_uri` transport rule (https, loopback http) is checked at load, so a slip is an
/// error at start-up rather than a failed fetch on the first token request. A URL without a path
/// loads (the nhs profile answers it at request time, as NHS does) and the fetcher refuses it
/// (`m2m_discovery::FetchPolicy`'s URL policy requires a path; `server_nhs.rs` row "40 no path").
/// Replaces the unit test of the server's former fetcher.
#[test]
fn jwks_uri_needs_https_at_load() {
    for bad in ["http://example.com/jwks", "ftp://x/y"] {
        let err = load(&format!(
            "[[client]]\nid = \"a\"\njwks_uri = \"{bad}\"\nalgs = [\"RS256\"]\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("jwks_uri") && err.contains(":1:"),
            "{bad}: {err}"
        );
    }
    for good in [
        "https://example.com/jwks.json",
        "http://127.0.0.1:9/jwks",
        "http://localhost/x",
        "https://example.com",
    ] {
        let r = load(&format!("[[client]]\nid = \"a\"\njwks_uri = \"{good}\"\n")).unwrap();
        assert!(
            matches!(&r.get("a").unwrap().keys, ClientKeySource::Remote(u) if u.as_str() == url::Url::parse(good).unwrap().as_str()),
            "{good}"
        );
    }
    assert!(
        m2m_discovery::FetchPolicy::default()
            .url_policy()
            .parse("https://example.com/")
            .is_err()
    );
}

/// I6: an inline JWKS with two keys under one kid is refused at load (which key verifies must
/// not depend on document order).
#[test]
fn duplicate_kids_in_a_registered_jwks_are_refused() {
    let set = jwks(&[(&key_a(), "same"), (&key_b(), "same")]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keys.json");
    std::fs::write(&file, serde_json::to_string(&set).unwrap()).unwrap();
    let path = dir.path().join("clients.toml");
    std::fs::write(&path, "[[client]]\nid = \"a\"\njwks_file = \"keys.json\"\n").unwrap();
    let err = Registry::load(&path).unwrap_err().to_string();
    assert!(err.contains("kid \"same\""), "{err}");
}

#[test]
fn secret_clients_store_verifiers_and_refuse_keys_and_signature_algs() {
    let v = m2m_core::secret::SecretVerifier::of(b"0123456789abcdef0123456789abcdef");
    let text = format!(
        "[[client]]\nid = \"a\"\nauth_method = \"client_secret_post\"\nsecret_verifiers = [{{ sha256 = \"{}\" }}]\n",
        v.to_hex()
    );
    let r = load(&text).unwrap();
    let a = r.get("a").unwrap();
    assert_eq!(a.auth_method, AuthMethod::ClientSecretPost);
    assert_eq!(a.secret_verifiers.len(), 1);
    assert!(
        a.secret_verifiers[0]
            .verifier
            .matches(b"0123456789abcdef0123456789abcdef")
    );
    let err = load(&format!("{text}algs = [\"RS256\"]\n"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("drop `algs`"), "{err}");
    let err = load(&format!("{text}jwks_uri = \"https://a.example/jwks\"\n"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("has no keys"), "{err}");
    let err =
        load("[[client]]\nid = \"a\"\nauth_method = \"client_secret_jwt\"\nalgs = [\"RS256\"]\n")
            .unwrap_err()
            .to_string();
    assert!(err.contains("HS256"), "{err}");
}
