//! Shared fixtures for the fuzz targets: the fixed test-only keys, the fixed validator setup
//! (client, issuer, clock), input splitting, and an oracle that re-checks a signature with
//! aws-lc-rs directly so a validator `Ok` can be proven genuine rather than trusted.
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used)] // fixtures: a broken fixture must abort loudly

use std::sync::{Arc, LazyLock};

use aws_lc_rs::signature::{
    self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair, UnparsedPublicKey,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use m2m_core::alg::Algorithm;
use m2m_core::clock::UnixTime;
use m2m_core::key::{PrivateKey, PublicKey};
use m2m_core::signer::KeySigner;

/// TEST-ONLY Ed25519 PKCS#8 DER (hex). Generated with openssl for the fuzzers; it guards nothing.
pub const TEST_ONLY_FUZZ_KEY_ED25519: &str = concat!(
    "302e020100300506032b6570042204203358d9e5a5b3b794ad156bd2ec0a2e74538180ebd9487e1644fcbed3401fd4d1",
);
/// TEST-ONLY P-256 PKCS#8 DER (hex). Generated with openssl for the fuzzers; it guards nothing.
pub const TEST_ONLY_FUZZ_KEY_P256: &str = concat!(
    "308187020100301306072a8648ce3d020106082a8648ce3d030107046d306b0201010420f59bb7b0e020b5481ff2e563",
    "177a1906c4d10557163bd59f099b3284be696ba0a14403420004f4624abdf07aa5c4a72d4e0ca9c70ab2e6cbf5b50e94",
    "0c7b0171c16b57f832f11eeac20d0272f5f88e52637ae876a19650d63a74c57cfd04fd2f68a4c4d2306b",
);
/// TEST-ONLY RSA-2048 PKCS#8 DER (hex). Generated with openssl for the fuzzers; it guards nothing.
pub const TEST_ONLY_FUZZ_KEY_RSA: &str = concat!(
    "308204bc020100300d06092a864886f70d0101010500048204a6308204a202010002820101008e747878ce861422e6d4",
    "5f8e22f6a7bcf2aac8b7c5da7b4e6317cd9855a51760661efac5b15790157e8bc5cd737efc1247173406fc5b890e5475",
    "4350c2cab3aeab8ca41da20c0751e2b0733e40a5eea753fa073322eefac290fdabd3c93cd2334a636de2638caa9fcdc0",
    "2336aae2aca6b75a035911291bc0618df7483921441bac2840ca2e2d40fb6af315cf99b7d2b0e4328eaae49867820016",
    "9f779d250a58eb1b4fb4c36cf64234ca0c850739b6014a192c7e2b800d38b6d797e46d2d791de8988512a1754836b42b",
    "bc2d523cde9c940dad5b009f98bd355536a5f8432bd617a4df8080b15e9bf4de437bcbbb95d556c5865aea96a7f874b2",
    "b0e0cf8aca07020301000102820100216ca08bafe173be10ad09d29ecf82e1e98a3ad82bbb2cad62c0c603952ccc4459",
    "11b1c34aee01a7996e9035b980b50250ddd7de3fbdf6757f499846cdbda3d53af91fd4b81ddc65d12b978ea6ba883988",
    "91a4b8d1dc82c7be1f56feb53be91211c52c962ec7658d63484ebad7f3a190e87a5d48bba70a94e40edc537cdc1a4f8e",
    "42b986c7b5977a4ffc2016a74d1e65acb5466fc52f3eda58b6f3a46d5e758b4376db286fcd3733158ddec44e6054ef4e",
    "161ee1f7f7f244cb401152a1e95c33a436bd4db593ce794ae3a0e281311ab875cad6d6d146796f85381a513aea78020c",
    "02b427df29a881eeb359fd69f4e4807c730ace6048a958cd5fd5b4b7d5d7b102818100bfae55899862ef1f3fc31764c8",
    "51d92acdd7f7b44d0605333b84d5cdcbabdd18ed0be354fecdee4042c0cc55f69a0573f8c31b99a3b2b803e745306dcf",
    "af71499f442e3fb91153767a8ec77bdd7f0bed2bc8c487573d7841016e8abbebaca1538853a92d9beebdf4996b8af5a2",
    "e679ba19021bb79f49987bae8272ac949f826902818100be418d32ae0ea85daaec115998e1a04f2dfec5b1b0fa0d4efd",
    "d15c871f85ae5854fed08eeee59a6840c43482afc978b849568418d77b62e0fa7183aba2cd9fba4eeabb1274c284682a",
    "9d46a234781a0374aac94477ddd843e332587379fd1871beab4280302b0038b161b1de6121b7a505ddccbd2e3fcc4991",
    "9e8d8a536a7aef02818009d60557a9353276150c8acfc623c514183a03e101aed4677b9f666548154aa433cdcf5d9631",
    "b50f211dc99e83a805ad9ccf4e44450d2fba2b8cf65e3c31118c289b14107b0bb38fb9dc47ca486473953910f55cc892",
    "43f07a0555232d85cf457d1265f50c326516ff24709e083cf1742642606fbcc1c70c59b921ef4f351c390281806daeb0",
    "ce24d6426e2d9986af169a0ca75926e5a5f9174f10d8f717d6b66f85015b8ec381836c4ec60780959d39e67678179f8e",
    "ec1b5e00b51eecce31e6db9058022304d23109eaf77a89cd2cb9fefb503eb42ef010028f292413e4363e7f90d6124bfd",
    "3c958854ca5a48ae183bfb0a3a52d579b11eb69cf954c0096d5385b1750281804bc659f09e4ba70769f850c08f563692",
    "7812c044d39b229920cd6cfc90fd322687d28875d32359be45ad6c18233ba1dec39bd6f5dec21bd1014965843c77c23f",
    "7dc22e3bd173ba10f73967580b0a18c84421331729ba32d8a9f7bd7ce062ab931f83717a2c55321134ae9c54ecbd5f19",
    "f916aae932ca4774c9062a9822b191ed",
);

/// The client the validator target registers (`iss` = `sub` = this).
pub const CLIENT_ID: &str = "fuzz-client";
/// The rfc profile's issuer identifier (the `aud` it accepts).
pub const ISSUER: &str = "https://auth.example.test";
/// The token endpoint URL (the NHS profile's `aud`).
pub const TOKEN_URL: &str = "https://auth.example.test/oauth2/token";
/// The fixed "now" every target judges time claims against: 2023-11-14T22:13:20Z.
pub const NOW_SECS: u64 = 1_700_000_000;
/// Key ids of the three fixed keys.
pub const KID_ED25519: &str = "fuzz-ed25519";
/// Key id of the P-256 key.
pub const KID_P256: &str = "fuzz-p256";
/// Key id of the RSA key.
pub const KID_RSA: &str = "fuzz-rsa";

/// [`NOW_SECS`] as a [`UnixTime`].
pub fn now() -> UnixTime {
    UnixTime::from_secs(NOW_SECS)
}

/// One fixed key: m2m-core's view of it and the raw public key for the independent oracle.
pub struct FixedKey {
    /// The key id it is registered under.
    pub kid: &'static str,
    /// The m2m-core private key.
    pub private: Arc<PrivateKey>,
    /// Raw public key bytes as aws-lc-rs' `UnparsedPublicKey` wants them.
    pub raw_public: Vec<u8>,
}

impl FixedKey {
    /// The m2m-core public key.
    pub fn public(&self) -> &PublicKey {
        self.private.public_key()
    }

    /// A signer for `alg` under this key's kid (None when the alg does not fit the key).
    pub fn signer(&self, alg: Algorithm) -> Option<KeySigner> {
        KeySigner::new(self.private.clone(), alg, Some(self.kid.to_owned())).ok()
    }
}

fn load(kid: &'static str, hex_der: &str) -> FixedKey {
    let der = hex::decode(hex_der).expect("fixture hex");
    let private = Arc::new(PrivateKey::from_bytes(&der, None, None).expect("fixture key loads"));
    let raw_public = match kid {
        KID_ED25519 => Ed25519KeyPair::from_pkcs8(&der)
            .expect("ed25519 fixture")
            .public_key()
            .as_ref()
            .to_vec(),
        KID_P256 => EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &der)
            .expect("p256 fixture")
            .public_key()
            .as_ref()
            .to_vec(),
        _ => RsaKeyPair::from_pkcs8(&der)
            .expect("rsa fixture")
            .public_key()
            .as_ref()
            .to_vec(),
    };
    FixedKey {
        kid,
        private,
        raw_public,
    }
}

/// The three fixed keys, loaded once per process.
pub static KEYS: LazyLock<[FixedKey; 3]> = LazyLock::new(|| {
    [
        load(KID_ED25519, TEST_ONLY_FUZZ_KEY_ED25519),
        load(KID_P256, TEST_ONLY_FUZZ_KEY_P256),
        load(KID_RSA, TEST_ONLY_FUZZ_KEY_RSA),
    ]
});

/// `(kid, public key)` pairs as the validators take them.
pub static REGISTERED: LazyLock<Vec<(Option<String>, PublicKey)>> = LazyLock::new(|| {
    KEYS.iter()
        .map(|k| (Some(k.kid.to_owned()), k.public().clone()))
        .collect()
});

/// The algorithms the fixed client is pinned to (others must be refused).
pub const ALLOWED_ALGS: [Algorithm; 5] = [
    Algorithm::EdDsa,
    Algorithm::Es256,
    Algorithm::Rs512,
    Algorithm::Ps256,
    Algorithm::Rs256,
];

/// The aws-lc-rs verification algorithm for a JOSE alg, chosen here independently of m2m-core.
fn oracle_alg(alg: &str) -> Option<&'static dyn signature::VerificationAlgorithm> {
    Some(match alg {
        "EdDSA" => &signature::ED25519,
        "ES256" => &signature::ECDSA_P256_SHA256_FIXED,
        "RS256" => &signature::RSA_PKCS1_2048_8192_SHA256,
        "RS384" => &signature::RSA_PKCS1_2048_8192_SHA384,
        "RS512" => &signature::RSA_PKCS1_2048_8192_SHA512,
        "PS256" => &signature::RSA_PSS_2048_8192_SHA256,
        "PS384" => &signature::RSA_PSS_2048_8192_SHA384,
        "PS512" => &signature::RSA_PSS_2048_8192_SHA512,
        _ => return None,
    })
}

/// The independent oracle: does `token` carry a signature that one of the fixed keys really made,
/// under `alg_name`? Splits and decodes the compact JWS itself (base64 crate) and verifies with
/// aws-lc-rs directly, sharing no code with m2m-core's JWS or key layers.
pub fn signature_really_verifies(token: &str, alg_name: &str) -> bool {
    let Some(alg) = oracle_alg(alg_name) else {
        return false;
    };
    let parts: Vec<&str> = token.split('.').collect();
    let [h, p, s] = parts.as_slice() else {
        return false;
    };
    let Ok(sig) = URL_SAFE_NO_PAD.decode(s) else {
        return false;
    };
    let msg = format!("{h}.{p}");
    KEYS.iter().any(|k| {
        UnparsedPublicKey::new(alg, &k.raw_public)
            .verify(msg.as_bytes(), &sig)
            .is_ok()
    })
}

/// Splits `data` at the first `n` newlines: `n` lines (without the newline, lossily UTF-8) and
/// the rest as bytes. Missing lines are `None`, so short inputs still exercise the callee.
pub fn split_lines(data: &[u8], n: usize) -> (Vec<Option<String>>, &[u8]) {
    let mut lines = Vec::with_capacity(n);
    let mut rest = data;
    for _ in 0..n {
        match rest.iter().position(|&b| b == b'\n') {
            Some(i) => {
                lines.push(Some(String::from_utf8_lossy(&rest[..i]).into_owned()));
                rest = &rest[i + 1..];
            }
            None => lines.push(None),
        }
    }
    (lines, rest)
}

/// Panics if a secret of at least 16 bytes that occurs nowhere in `public` shows up in `shown`
/// (a Debug/Display/error text): the secret-hygiene invariant every target checks.
pub fn assert_not_leaked(secret: &str, public: &[&str], shown: &str, what: &str) {
    if secret.len() < 16 || public.iter().any(|p| p.contains(secret)) {
        return;
    }
    assert!(!shown.contains(secret), "{what} leaks a secret");
}
