//! Key buffers wiped on drop, checked by type (reading freed memory would need `unsafe`, which
//! the workspace forbids): the private members of a parsed JWK and the PKCS#8 PEM export are
//! `Zeroizing`, so they are overwritten when dropped. What this cannot show — aws-lc's own key
//! structures (freed with its `OPENSSL_cleanse`), intermediate copies inside the `pem` and
//! `serde_json` parsers, and the caller's own file buffer — is listed in docs/security.md.
#![allow(clippy::unwrap_used, missing_docs)]

use m2m_core::jwk::Jwk;
use m2m_core::key::{KeySpec, PrivateKey};
use zeroize::{Zeroize, Zeroizing};

/// Compiles only for a `Zeroizing` value.
fn wiped_on_drop<T: Zeroize>(_: &Zeroizing<T>) {}

#[test]
fn private_jwk_members_and_pem_export_are_zeroizing() {
    let jwk: Jwk = serde_json::from_str(
        r#"{"kty":"EC","crv":"P-256","kid":"a",
 "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
 "y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
 "d":"jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"}"#,
    )
    .unwrap();
    wiped_on_drop(jwk.d.as_ref().unwrap());
    for member in [&jwk.p, &jwk.q, &jwk.dp, &jwk.dq, &jwk.qi]
        .into_iter()
        .flatten()
    {
        wiped_on_drop(member);
    }
    // Debug output of a private JWK never shows `d`.
    assert!(!format!("{jwk:?}").contains("jpsQnnGQ"));
    let key = PrivateKey::from_jwk(&jwk).unwrap();
    wiped_on_drop(&key.to_pkcs8_pem().unwrap());
    let generated = PrivateKey::generate(KeySpec::P256).unwrap();
    let pem = generated.to_pkcs8_pem().unwrap();
    wiped_on_drop(&pem);
    assert!(!format!("{generated:?}").contains(pem.lines().nth(1).unwrap()));
}
