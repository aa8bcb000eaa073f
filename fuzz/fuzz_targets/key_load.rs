//! Fuzzes key loading: `PrivateKey::from_bytes` (PEM in every flavour, DER, encrypted PKCS#8,
//! JWK/JWKS) with and without a passphrase and a kid, and `PublicKey::from_pem`. No panic; a
//! loaded private key signs with its default algorithm and its own public key verifies that
//! signature; its PKCS#8 export loads back to the same key; `Debug` never shows key material.
//!
//! Input: byte 0 = flags (bit 0: passphrase, bit 1: kid); then, when flagged, a passphrase line
//! and a kid line (newline-terminated); the rest is the key file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use m2m_core::key::{PrivateKey, PublicKey};
use m2m_fuzz::split_lines;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let (lines, file) = split_lines(rest, usize::from(flags & 1) + usize::from(flags >> 1 & 1));
    let mut lines = lines.into_iter();
    let passphrase = if flags & 1 == 1 {
        lines.next().flatten()
    } else {
        None
    };
    let kid = if flags & 2 == 2 {
        lines.next().flatten()
    } else {
        None
    };

    let _ = PublicKey::from_pem(file);
    // The same bytes with and without the passphrase: both paths must be total.
    let attempts = [
        PrivateKey::from_bytes(
            file,
            kid.as_deref(),
            passphrase.as_deref().map(str::as_bytes),
        ),
        PrivateKey::from_bytes(file, kid.as_deref(), None),
    ];
    for key in attempts {
        let key = match key {
            Ok(key) => key,
            Err(e) => {
                let _ = e.to_string();
                continue;
            }
        };
        let _ = format!("{key:?}");
        let (kind, _, _) = (key.kind(), key.kid(), key.jwk_alg());
        let alg = kind.default_alg();
        let sig = key
            .sign(alg, b"m2m fuzz")
            .expect("a loaded key signs with its default alg");
        key.public_key()
            .verify(alg, b"m2m fuzz", &sig)
            .expect("a key's own signature verifies");
        let pem = key.to_pkcs8_pem().expect("a loaded key exports as PKCS#8");
        let again = PrivateKey::from_bytes(pem.as_bytes(), None, None).expect("export reloads");
        assert!(
            again.public_key() == key.public_key(),
            "PKCS#8 round-trip changed the key"
        );
    }
});
