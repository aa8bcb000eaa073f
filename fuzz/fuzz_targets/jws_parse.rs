//! Fuzzes compact JWS parsing (`UnverifiedJws::parse`, `claims()`) and verification of whatever
//! parses against every fixed key under every algorithm: no panic, and the parse is consistent
//! (the signing input is the token's first two parts; nothing forged verifies).
#![no_main]

use libfuzzer_sys::fuzz_target;
use m2m_core::alg::Algorithm;
use m2m_core::jws::UnverifiedJws;
use m2m_fuzz::{KEYS, signature_really_verifies};

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(jws) = UnverifiedJws::parse(token) else {
        return;
    };
    let (alg, _kid, _typ) = (jws.alg(), jws.kid(), jws.typ());
    let claims = jws.claims();
    if let Ok(claims) = &claims {
        // Claims came from the payload, so the payload is the serialised object's source.
        assert!(!jws.payload().is_empty() || claims.is_empty());
    }
    // Parse is exact: header.payload are the token's first two parts, verbatim.
    assert!(token.starts_with(jws.signing_input()));
    assert_eq!(jws.signing_input().matches('.').count(), 1);
    let _ = format!("{jws:?}");
    // Verification with every (key, alg) pair: may fail, must not panic, and an Ok must be real.
    for key in KEYS.iter() {
        for alg in Algorithm::ALL {
            if jws.verify(key.public(), alg).is_ok() {
                assert!(
                    signature_really_verifies(token, alg.name()),
                    "m2m-core accepted a signature aws-lc-rs refuses ({alg}, header alg {alg:?})"
                );
            }
        }
    }
    let _ = alg;
});
