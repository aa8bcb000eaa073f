//! Fuzzes JWK and JWKS parsing (`Jwk::from_slice`, `Jwks::from_slice`) and key import
//! (`PublicKey::from_jwk`, `PrivateKey::from_jwk`) on each key: no panic; a JWK with private
//! members is never accepted as a public key; an imported public key round-trips through
//! `to_jwk`; private members never reach `Debug`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use m2m_core::jwk::{Jwk, Jwks};
use m2m_core::key::{PrivateKey, PublicKey};
use m2m_fuzz::assert_not_leaked;

fn check(jwk: &Jwk) {
    let shown = format!("{jwk:?}");
    if let Some(d) = jwk.d.as_deref() {
        let public = [
            jwk.kty.as_str(),
            jwk.kid.as_deref().unwrap_or(""),
            jwk.alg.as_deref().unwrap_or(""),
            jwk.crv.as_deref().unwrap_or(""),
        ];
        assert_not_leaked(d, &public, &shown, "Jwk Debug");
    }
    let private = jwk.has_private_members();
    let _ = jwk.private_members();
    match PublicKey::from_jwk(jwk) {
        Ok(key) => {
            assert!(
                !private,
                "a JWK with private members was accepted as a public key"
            );
            let _ = key.kind();
            let _ = key.thumbprint();
            let again = PublicKey::from_jwk(&key.to_jwk()).expect("to_jwk round-trips");
            assert!(again == key, "to_jwk round-trip changed the key");
            assert_eq!(again.thumbprint(), key.thumbprint());
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    let public = jwk.to_public();
    assert!(!public.has_private_members());
    let _ = PublicKey::from_jwk(&public);
    if private {
        if let Ok(key) = PrivateKey::from_jwk(jwk) {
            let _ = format!("{key:?}");
            let _ = key.public_key().thumbprint();
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(jwk) = Jwk::from_slice(data) {
        check(&jwk);
    }
    if let Ok(jwks) = Jwks::from_slice(data) {
        let _ = jwks.kids();
        let _ = jwks.ensure_public();
        for jwk in &jwks.keys {
            check(jwk);
            if let Some(kid) = jwk.kid.as_deref() {
                assert!(jwks.find(kid).is_some());
            }
        }
    }
});
