//! Test keys, each generated on first use and then shared by every test of the binary: RSA key
//! generation takes up to seconds (4096 bits), and a binary with dozens of tests would otherwise
//! spend most of its time there.
//!
//! Keys are returned as `Arc<PrivateKey>` because that is what `KeySigner` takes; `&*key` gives a
//! `&PrivateKey`.

use std::sync::{Arc, OnceLock};

use m2m_core::key::{KeySpec, PrivateKey};

fn once(cell: &'static OnceLock<Arc<PrivateKey>>, spec: KeySpec) -> Arc<PrivateKey> {
    Arc::clone(
        cell.get_or_init(|| Arc::new(PrivateKey::generate(spec).expect("generate a test key"))),
    )
}

/// An RSA-2048 key (RS256/RS512/PS*): the usual test key.
pub fn rsa2048() -> Arc<PrivateKey> {
    static KEY: OnceLock<Arc<PrivateKey>> = OnceLock::new();
    once(&KEY, KeySpec::Rsa { bits: 2048 })
}

/// A second, different RSA-2048 key: the "wrong key" and key-rotation cases.
pub fn rsa2048_other() -> Arc<PrivateKey> {
    static KEY: OnceLock<Arc<PrivateKey>> = OnceLock::new();
    once(&KEY, KeySpec::Rsa { bits: 2048 })
}

/// An RSA-4096 key (the size NHS requires, RS512).
pub fn rsa4096() -> Arc<PrivateKey> {
    static KEY: OnceLock<Arc<PrivateKey>> = OnceLock::new();
    once(&KEY, KeySpec::Rsa { bits: 4096 })
}

/// A P-256 key (ES256).
pub fn p256() -> Arc<PrivateKey> {
    static KEY: OnceLock<Arc<PrivateKey>> = OnceLock::new();
    once(&KEY, KeySpec::P256)
}

/// A P-384 key (ES384).
pub fn p384() -> Arc<PrivateKey> {
    static KEY: OnceLock<Arc<PrivateKey>> = OnceLock::new();
    once(&KEY, KeySpec::P384)
}

/// An Ed25519 key (EdDSA).
pub fn ed25519() -> Arc<PrivateKey> {
    static KEY: OnceLock<Arc<PrivateKey>> = OnceLock::new();
    once(&KEY, KeySpec::Ed25519)
}

/// A P-521 key (ES512).
pub fn p521() -> Arc<PrivateKey> {
    static KEY: OnceLock<Arc<PrivateKey>> = OnceLock::new();
    once(&KEY, KeySpec::P521)
}
