//! Keys: every private-key format the real `openssl` CLI writes loads, signs what openssl
//! verifies and verifies what openssl signs; each bad input fails with its own error; generated
//! keys export to PKCS#8 that openssl reads; RFC 7515 / 7638 / 8037 example keys give the
//! published signatures and thumbprints exactly.

mod support;

use std::sync::Arc;

use m2m_core::Error;
use m2m_core::alg::Algorithm;
use m2m_core::jwk::{Jwk, Jwks};
use m2m_core::key::{KeyKind, KeySpec, PrivateKey, PublicKey};
use m2m_core::signer::KeySigner;
use support::{PASS, fixture, openssl_public_pem, openssl_sign, openssl_verify};

const MSG: &[u8] = b"eyJhbGciOiJSUzUxMiJ9.eyJpc3MiOiJtMm0ifQ";
const RSA2048: KeyKind = KeyKind::Rsa { bits: 2048 };

fn load(name: &str, pass: Option<&str>) -> PrivateKey {
    PrivateKey::from_bytes(fixture(name), None, pass.map(str::as_bytes))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn load_err(bytes: &[u8], pass: Option<&str>) -> Error {
    match PrivateKey::from_bytes(bytes, None, pass.map(str::as_bytes)) {
        Ok(key) => panic!("expected an error, loaded {key:?}"),
        Err(e) => e,
    }
}

/// Loads `name`, checks its kind, checks our public key equals what `openssl pkey -pubout`
/// extracts (as a key and as a JWK), then for every algorithm the key fits: openssl verifies our
/// signature, and we verify openssl's (made with our own PKCS#8 export of the key).
fn check_openssl_format(name: &str, pass: Option<&str>, kind: KeyKind) {
    let key = load(name, pass);
    assert_eq!(key.kind(), kind, "{name}");
    assert_eq!(key.kid(), None);
    let public_pem = openssl_public_pem(fixture(name));
    let from_openssl = PublicKey::from_pem(&public_pem).expect("openssl public key");
    assert_eq!(
        &from_openssl,
        key.public_key(),
        "{name}: public key differs from openssl's"
    );
    assert_eq!(
        from_openssl.to_jwk(),
        key.public_key().to_jwk(),
        "{name}: JWK differs"
    );
    assert_eq!(from_openssl.thumbprint(), key.public_key().thumbprint());
    let exported = key.to_pkcs8_pem().expect("pkcs8 export");
    for alg in Algorithm::ALL.into_iter().filter(|a| kind.fits(*a)) {
        let sig = key.sign(alg, MSG).expect("sign");
        openssl_verify(&public_pem, alg, MSG, &sig)
            .unwrap_or_else(|e| panic!("{name} {alg}: openssl refused our signature: {e}"));
        key.public_key()
            .verify(alg, MSG, &sig)
            .expect("we verify our own");
        let theirs = openssl_sign(exported.as_bytes(), alg, MSG);
        key.public_key()
            .verify(alg, MSG, &theirs)
            .unwrap_or_else(|e| panic!("{name} {alg}: we refused openssl's signature: {e}"));
        assert!(matches!(
            key.public_key().verify(alg, b"other message", &theirs),
            Err(Error::BadSignature)
        ));
    }
}

#[test]
fn rsa_pkcs1_pem_from_genrsa_traditional() {
    assert!(fixture("rsa-pkcs1.pem").starts_with(b"-----BEGIN RSA PRIVATE KEY-----"));
    check_openssl_format("rsa-pkcs1.pem", None, RSA2048);
}

#[test]
fn rsa_pkcs8_pem_from_genpkey() {
    assert!(fixture("rsa-pkcs8.pem").starts_with(b"-----BEGIN PRIVATE KEY-----"));
    check_openssl_format("rsa-pkcs8.pem", None, RSA2048);
}

#[test]
fn rsa_4096_pkcs8_pem() {
    let key = load("rsa4096.pem", None);
    assert_eq!(key.kind(), KeyKind::Rsa { bits: 4096 });
    let public_pem = openssl_public_pem(fixture("rsa4096.pem"));
    let sig = key.sign(Algorithm::Rs512, MSG).expect("sign");
    assert_eq!(sig.len(), 512);
    openssl_verify(&public_pem, Algorithm::Rs512, MSG, &sig).expect("openssl verifies RS512");
    let theirs = openssl_sign(fixture("rsa4096.pem"), Algorithm::Rs512, MSG);
    key.public_key()
        .verify(Algorithm::Rs512, MSG, &theirs)
        .expect("we verify openssl's");
}

#[test]
fn ec_sec1_pem_with_ec_parameters_block_p256() {
    let pem = std::str::from_utf8(fixture("p256.pem")).expect("utf8");
    assert!(
        pem.starts_with("-----BEGIN EC PARAMETERS-----") && pem.contains("BEGIN EC PRIVATE KEY")
    );
    check_openssl_format("p256.pem", None, KeyKind::P256);
}

#[test]
fn ec_sec1_pem_p384() {
    check_openssl_format("p384.pem", None, KeyKind::P384);
}

#[test]
fn ec_sec1_pem_p521() {
    check_openssl_format("p521.pem", None, KeyKind::P521);
}

#[test]
fn ec_pkcs8_pem_p256() {
    check_openssl_format("p256-pkcs8.pem", None, KeyKind::P256);
}

#[test]
fn ed25519_pkcs8_pem() {
    check_openssl_format("ed25519.pem", None, KeyKind::Ed25519);
}

#[test]
fn encrypted_pkcs8_aes256_cbc() {
    assert!(fixture("rsa-aes256.pem").starts_with(b"-----BEGIN ENCRYPTED PRIVATE KEY-----"));
    check_openssl_format("rsa-aes256.pem", Some(PASS), RSA2048);
}

#[test]
fn encrypted_pkcs8_aes128_cbc() {
    check_openssl_format("p256-aes128.pem", Some(PASS), KeyKind::P256);
}

#[test]
fn encrypted_pkcs8_hmac_sha512_prf() {
    check_openssl_format("ed25519-sha512prf.pem", Some(PASS), KeyKind::Ed25519);
}

#[test]
fn der_forms() {
    check_openssl_format("rsa-pkcs1.der", None, RSA2048);
    check_openssl_format("rsa-pkcs8.der", None, RSA2048);
    check_openssl_format("p256-pkcs8.der", None, KeyKind::P256);
    check_openssl_format("p384-sec1.der", None, KeyKind::P384);
    check_openssl_format("ed25519.der", None, KeyKind::Ed25519);
    check_openssl_format("rsa-aes256.der", Some(PASS), RSA2048);
}

#[test]
fn same_key_in_every_container_is_the_same_key() {
    let pkcs1 = load("rsa-pkcs1.pem", None);
    assert_eq!(load("rsa-pkcs1.der", None).public_key(), pkcs1.public_key());
    let pkcs8 = load("rsa-pkcs8.pem", None);
    for other in ["rsa-pkcs8.der", "rsa-aes256.pem", "rsa-aes256.der"] {
        assert_eq!(
            load(other, Some(PASS)).public_key(),
            pkcs8.public_key(),
            "{other}"
        );
    }
    assert_eq!(
        load("p256-pkcs8.pem", None).public_key(),
        load("p256.pem", None).public_key()
    );
    assert_eq!(
        load("p384-sec1.der", None).public_key(),
        load("p384.pem", None).public_key()
    );
}

#[test]
fn public_key_pem_forms() {
    let key = load("rsa-pkcs8.pem", None);
    let spki = PublicKey::from_pem(fixture("rsa-pub.pem")).expect("SPKI");
    let pkcs1 = PublicKey::from_pem(fixture("rsa-pub-pkcs1.pem")).expect("RSA PUBLIC KEY");
    assert!(fixture("rsa-pub-pkcs1.pem").starts_with(b"-----BEGIN RSA PUBLIC KEY-----"));
    assert_eq!(&spki, key.public_key());
    assert_eq!(&pkcs1, key.public_key());
    assert_eq!(spki.kind(), RSA2048);
    assert!(matches!(
        PublicKey::from_pem(fixture("rsa1024-pub.pem")),
        Err(Error::RsaKeyTooSmall { bits: 1024 })
    ));
    assert!(matches!(
        PublicKey::from_pem(b""),
        Err(Error::InvalidKey(_))
    ));
    assert!(matches!(
        PublicKey::from_pem(b"\xff\xfe"),
        Err(Error::InvalidKey(_))
    ));
}

// ---------------------------------------------------------------------------------------------
// Bad input: each with its own error.
// ---------------------------------------------------------------------------------------------

#[test]
fn empty_and_garbage_files() {
    for empty in [&b""[..], b"   \n\t\n"] {
        let err = load_err(empty, None);
        assert!(
            matches!(&err, Error::InvalidKey(m) if m.contains("empty")),
            "{err}"
        );
    }
    let err = load_err(b"hello, I am not a key", None);
    assert!(
        matches!(&err, Error::InvalidKey(m) if m.contains("not a PEM, DER, JWK or JWKS")),
        "{err}"
    );
    let err = load_err(&[0xff, 0x00, 0x13, 0x37], None);
    assert!(matches!(err, Error::InvalidKey(_)), "{err}");
    // Starts like DER but is not a key.
    let err = load_err(&[0x30, 0x03, 0x02, 0x01, 0x00], None);
    assert!(matches!(err, Error::InvalidKey(_)), "{err}");
    // Malformed JSON.
    let err = load_err(b"{\"kty\":", None);
    assert!(matches!(err, Error::InvalidJwk(_)), "{err}");
}

#[test]
fn truncated_pem() {
    let pem = std::str::from_utf8(fixture("rsa-pkcs8.pem")).expect("utf8");
    // Cut in the middle of the body: no END line.
    let half = &pem[..pem.len() / 2];
    let err = load_err(half.as_bytes(), None);
    assert!(matches!(err, Error::InvalidKey(_)), "{err}");
    // BEGIN/END intact but body lines missing: the DER inside is truncated.
    let lines: Vec<&str> = pem.lines().collect();
    let mut cut = vec![lines[0]];
    cut.extend(&lines[1..lines.len() / 2]);
    cut.push(lines[lines.len() - 1]);
    let err = load_err(cut.join("\n").as_bytes(), None);
    assert!(
        matches!(&err, Error::InvalidKey(m) if m.contains("PKCS#8")),
        "{err}"
    );
    // Truncated DER.
    let der = fixture("rsa-pkcs8.der");
    let err = load_err(&der[..der.len() - 10], None);
    assert!(matches!(err, Error::InvalidKey(_)), "{err}");
}

#[test]
fn public_key_where_private_needed() {
    for name in ["rsa-pub.pem", "rsa-pub-pkcs1.pem"] {
        let err = load_err(fixture(name), None);
        assert!(matches!(err, Error::PublicKeyGiven), "{name}: {err}");
        assert!(err.to_string().contains("private key"));
    }
    let jwk = serde_json::to_vec(&load("p256.pem", None).public_key().to_jwk()).expect("json");
    assert!(matches!(load_err(&jwk, None), Error::PublicKeyGiven));
}

#[test]
fn encrypted_without_passphrase() {
    for name in ["rsa-aes256.pem", "p256-aes128.pem", "rsa-aes256.der"] {
        let err = load_err(fixture(name), None);
        assert!(matches!(err, Error::PassphraseRequired), "{name}: {err}");
    }
}

#[test]
fn wrong_passphrase() {
    for name in [
        "rsa-aes256.pem",
        "p256-aes128.pem",
        "ed25519-sha512prf.pem",
        "rsa-aes256.der",
    ] {
        for wrong in ["wrong", "", "correct horse battery stapl"] {
            let err = load_err(fixture(name), Some(wrong));
            assert!(
                matches!(err, Error::WrongPassphrase),
                "{name} / {wrong:?}: {err}"
            );
        }
    }
}

#[test]
fn rsa_1024_refused() {
    for name in ["rsa1024-pkcs1.pem", "rsa1024-pkcs8.pem"] {
        let err = load_err(fixture(name), None);
        assert!(
            matches!(err, Error::RsaKeyTooSmall { bits: 1024 }),
            "{name}: {err}"
        );
        assert!(err.to_string().contains("1024 bits"));
    }
}

#[test]
fn legacy_pem_encryption_refused() {
    let pem = std::str::from_utf8(fixture("rsa-legacy-enc.pem")).expect("utf8");
    assert!(pem.contains("Proc-Type: 4,ENCRYPTED"), "{pem}");
    let err = load_err(pem.as_bytes(), Some(PASS));
    assert!(
        matches!(&err, Error::UnsupportedKeyEncryption(m) if m.contains("Proc-Type")),
        "{err}"
    );
    assert!(err.to_string().contains("openssl pkcs8 -topk8"));
}

// ---------------------------------------------------------------------------------------------
// RFC example keys (the only way to get private JWKs whose results are published).
// ---------------------------------------------------------------------------------------------

/// RFC 7515 Appendix A.2: the RS256 example key.
const RFC7515_RSA: &str = r#"{"kty":"RSA",
 "n":"ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ",
 "e":"AQAB",
 "d":"Eq5xpGnNCivDflJsRQBXHx1hdR1k6Ulwe2JZD50LpXyWPEAeP88vLNO97IjlA7_GQ5sLKMgvfTeXZx9SE-7YwVol2NXOoAJe46sui395IW_GO-pWJ1O0BkTGoVEn2bKVRUCgu-GjBVaYLU6f3l9kJfFNS3E0QbVdxzubSu3Mkqzjkn439X0M_V51gfpRLI9JYanrC4D4qAdGcopV_0ZHHzQlBjudU2QvXt4ehNYTCBr6XCLQUShb1juUO1ZdiYoFaFQT5Tw8bGUl_x_jTj3ccPDVZFD9pIuhLhBOneufuBiB4cS98l2SR_RQyGWSeWjnczT0QU91p1DhOVRuOopznQ",
 "p":"4BzEEOtIpmVdVEZNCqS7baC4crd0pqnRH_5IB3jw3bcxGn6QLvnEtfdUdiYrqBdss1l58BQ3KhooKeQTa9AB0Hw_Py5PJdTJNPY8cQn7ouZ2KKDcmnPGBY5t7yLc1QlQ5xHdwW1VhvKn-nXqhJTBgIPgtldC-KDV5z-y2XDwGUc",
 "q":"uQPEfgmVtjL0Uyyx88GZFF1fOunH3-7cepKmtH4pxhtCoHqpWmT8YAmZxaewHgHAjLYsp1ZSe7zFYHj7C6ul7TjeLQeZD_YwD66t62wDmpe_HlB-TnBA-njbglfIsRLtXlnDzQkv5dTltRJ11BKBBypeeF6689rjcJIDEz9RWdc",
 "dp":"BwKfV3Akq5_MFZDFZCnW-wzl-CCo83WoZvnLQwCTeDv8uzluRSnm71I3QCLdhrqE2e9YkxvuxdBfpT_PI7Yz-FOKnu1R6HsJeDCjn12Sk3vmAktV2zb34MCdy7cpdTh_YVr7tss2u6vneTwrA86rZtu5Mbr1C1XsmvkxHQAdYo0",
 "dq":"h_96-mK1R_7glhsum81dZxjTnYynPbZpHziZjeeHcXYsXaaMwkOlODsWa7I9xXDoRwbKgB719rrmI2oKr6N3Do9U0ajaHF-NKJnwgjMd2w9cjz3_-kyNlxAr2v4IKhGNpmM5iIgOS1VZnOZ68m6_pbLBSp3nssTdlqvd0tIiTHU",
 "qi":"IYd7DHOhrWvxkwPQsRM2tOgrjbcrfvtQJipd-DlcxyVuuM9sQLdgjVk2oy26F0EmpScGLq2MowX7fhd_QJQ3ydy5cY7YIBi87w93IKLEdfnbJtoOPLUW0ITrJReOgo1cq9SbsxYawBgfp_gh6A5603k2-ZQwVK0JKSHuLFkuQ3U"}"#;

/// RFC 7515 A.2 / A.3 signing inputs and signatures.
const RFC7515_PAYLOAD: &str = "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ";
const RFC7515_RS256_SIG: &str = "cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw";

/// RFC 7515 Appendix A.3: the ES256 example key.
const RFC7515_EC: &str = r#"{"kty":"EC","crv":"P-256",
 "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
 "y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
 "d":"jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"}"#;
const RFC7515_ES256_SIG: &str =
    "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";

/// RFC 8037 Appendix A.1: the Ed25519 example key.
const RFC8037_ED: &str = r#"{"kty":"OKP","crv":"Ed25519",
 "d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A",
 "x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#;

fn b64(text: &str) -> Vec<u8> {
    m2m_core::jws::base64url_decode(text).expect("base64url")
}

fn jwk(text: &str) -> Jwk {
    Jwk::from_slice(text.as_bytes()).expect("jwk")
}

#[test]
fn rfc7515_a2_rs256_signature_reproduced_exactly() {
    let key = PrivateKey::from_jwk(&jwk(RFC7515_RSA)).expect("RFC 7515 A.2 key");
    assert_eq!(key.kind(), RSA2048);
    let input = format!("eyJhbGciOiJSUzI1NiJ9.{RFC7515_PAYLOAD}");
    // RSASSA-PKCS1-v1_5 is deterministic: our signature must be the RFC's, byte for byte.
    let sig = key.sign(Algorithm::Rs256, input.as_bytes()).expect("sign");
    assert_eq!(m2m_core::jws::base64url_encode(&sig), RFC7515_RS256_SIG);
    let public = PublicKey::from_jwk(&jwk(RFC7515_RSA).to_public()).expect("public");
    assert_eq!(&public, key.public_key());
    public
        .verify(Algorithm::Rs256, input.as_bytes(), &sig)
        .expect("verify");
    // Same key through from_bytes (JSON) as through from_jwk.
    let again = PrivateKey::from_bytes(RFC7515_RSA.as_bytes(), None, None).expect("from_bytes");
    assert_eq!(again.public_key(), key.public_key());
}

#[test]
fn rfc7515_a3_es256_example() {
    let key = PrivateKey::from_jwk(&jwk(RFC7515_EC)).expect("RFC 7515 A.3 key");
    assert_eq!(key.kind(), KeyKind::P256);
    let input = format!("eyJhbGciOiJFUzI1NiJ9.{RFC7515_PAYLOAD}");
    key.public_key()
        .verify(Algorithm::Es256, input.as_bytes(), &b64(RFC7515_ES256_SIG))
        .expect("the RFC's ES256 signature verifies");
    let ours = key.sign(Algorithm::Es256, input.as_bytes()).expect("sign");
    assert_eq!(ours.len(), 64);
    key.public_key()
        .verify(Algorithm::Es256, input.as_bytes(), &ours)
        .expect("ours verifies");
    let exported = key.public_key().to_jwk();
    assert_eq!(exported.x, jwk(RFC7515_EC).x);
    assert_eq!(exported.y, jwk(RFC7515_EC).y);
    assert_eq!(exported.crv.as_deref(), Some("P-256"));
}

#[test]
fn rfc8037_a4_ed25519_signature_and_a3_thumbprint() {
    let key = PrivateKey::from_jwk(&jwk(RFC8037_ED)).expect("RFC 8037 A.1 key");
    assert_eq!(key.kind(), KeyKind::Ed25519);
    let sig = key
        .sign(
            Algorithm::EdDsa,
            b"eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc",
        )
        .expect("sign");
    assert_eq!(
        m2m_core::jws::base64url_encode(&sig),
        "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
    );
    assert_eq!(
        key.public_key().thumbprint(),
        "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    );
}

#[test]
fn rfc7638_thumbprint_example() {
    let text = r#"{"kty":"RSA","e":"AQAB","alg":"RS256","kid":"2011-04-29",
      "n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"}"#;
    let key = PublicKey::from_jwk(&jwk(text)).expect("RFC 7638 key");
    assert_eq!(
        key.thumbprint(),
        "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    );
    assert_eq!(key.kind(), RSA2048);
}

#[test]
fn public_from_jwk_refuses_private_members() {
    for text in [RFC7515_RSA, RFC7515_EC, RFC8037_ED] {
        let private = jwk(text);
        assert!(private.has_private_members());
        let err = PublicKey::from_jwk(&private).expect_err("private JWK refused");
        assert!(
            matches!(&err, Error::PrivateMembersInPublicJwk { members, .. } if members.contains('d')),
            "{err}"
        );
        let public = private.to_public();
        assert!(!public.has_private_members());
        PublicKey::from_jwk(&public).expect("public half accepted");
    }
    let err = PublicKey::from_jwk(&jwk(RFC7515_RSA)).expect_err("refused");
    assert!(err.to_string().contains("d, p, q, dp, dq, qi"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// JWKS selection.
// ---------------------------------------------------------------------------------------------

fn with_kid(text: &str, kid: &str, alg: Option<&str>) -> serde_json::Value {
    let mut v: serde_json::Value = serde_json::from_str(text).expect("json");
    v["kid"] = kid.into();
    if let Some(alg) = alg {
        v["alg"] = alg.into();
    }
    v
}

fn two_key_jwks() -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({"keys": [
        with_kid(RFC7515_RSA, "rsa-1", Some("RS512")),
        with_kid(RFC7515_EC, "ec-1", None),
    ]}))
    .expect("json")
}

#[test]
fn jwks_with_two_keys_needs_a_kid() {
    let err = load_err(&two_key_jwks(), None);
    assert!(matches!(err, Error::KidRequired(2)), "{err}");
    assert!(err.to_string().contains("--kid"));
}

#[test]
fn jwks_kid_selects_and_missing_kid_lists_available() {
    let jwks = two_key_jwks();
    let rsa = PrivateKey::from_bytes(&jwks, Some("rsa-1"), None).expect("rsa-1");
    assert_eq!(rsa.kid(), Some("rsa-1"));
    assert_eq!(rsa.jwk_alg(), Some(Algorithm::Rs512));
    assert_eq!(rsa.kind(), RSA2048);
    let ec = PrivateKey::from_bytes(&jwks, Some("ec-1"), None).expect("ec-1");
    assert_eq!(
        (ec.kid(), ec.jwk_alg(), ec.kind()),
        (Some("ec-1"), None, KeyKind::P256)
    );
    match PrivateKey::from_bytes(&jwks, Some("nope"), None) {
        Err(Error::KidNotFound { kid, available }) => {
            assert_eq!(kid, "nope");
            assert_eq!(available, "rsa-1, ec-1");
        }
        other => panic!("expected KidNotFound, got {other:?}"),
    }
    // A single JWK with a different kid is also "not found".
    let single = serde_json::to_vec(&with_kid(RFC8037_ED, "ed-1", None)).expect("json");
    assert!(matches!(
        PrivateKey::from_bytes(&single, Some("other"), None),
        Err(Error::KidNotFound { .. })
    ));
    assert_eq!(
        PrivateKey::from_bytes(&single, Some("ed-1"), None)
            .expect("ed")
            .kid(),
        Some("ed-1")
    );
    let parsed = Jwks::from_slice(&jwks).expect("jwks");
    assert_eq!(
        parsed.find("ec-1").and_then(|k| k.crv.as_deref()),
        Some("P-256")
    );
    assert!(parsed.find("missing").is_none());
}

#[test]
fn jwk_alg_that_does_not_fit_the_key_is_refused() {
    let v = serde_json::to_vec(&with_kid(RFC7515_EC, "ec", Some("RS256"))).expect("json");
    assert!(matches!(
        PrivateKey::from_bytes(&v, None, None),
        Err(Error::AlgorithmMismatch {
            alg: Algorithm::Rs256,
            kind: KeyKind::P256,
            ..
        })
    ));
    let v = serde_json::to_vec(&with_kid(RFC7515_EC, "ec", Some("none"))).expect("json");
    assert!(matches!(
        PrivateKey::from_bytes(&v, None, None),
        Err(Error::UnsupportedAlgorithm(_))
    ));
}

// ---------------------------------------------------------------------------------------------
// Algorithm / key fit.
// ---------------------------------------------------------------------------------------------

#[test]
fn alg_that_does_not_fit_the_key() {
    let rsa = Arc::new(load("rsa-pkcs8.pem", None));
    match KeySigner::new(rsa.clone(), Algorithm::Es256, None) {
        Err(Error::AlgorithmMismatch {
            alg,
            kind,
            suggested,
        }) => {
            assert_eq!(
                (alg, kind, suggested),
                (Algorithm::Es256, RSA2048, Algorithm::Rs256)
            );
        }
        other => panic!("expected AlgorithmMismatch, got {other:?}"),
    }
    let p384 = Arc::new(load("p384.pem", None));
    match KeySigner::new(p384.clone(), Algorithm::Es256, None) {
        Err(e @ Error::AlgorithmMismatch { .. }) => {
            assert!(matches!(
                e,
                Error::AlgorithmMismatch {
                    suggested: Algorithm::Es384,
                    ..
                }
            ));
            assert!(e.to_string().contains("use ES384"), "{e}");
        }
        other => panic!("expected AlgorithmMismatch, got {other:?}"),
    }
    KeySigner::new(p384.clone(), Algorithm::Es384, None).expect("ES384 fits P-384");
    for alg in [Algorithm::Rs512, Algorithm::Ps256] {
        KeySigner::new(rsa.clone(), alg, None).expect("RSA algs fit");
    }
    assert!(matches!(
        rsa.sign(Algorithm::EdDsa, MSG),
        Err(Error::AlgorithmMismatch { .. })
    ));
    let sig = p384.sign(Algorithm::Es384, MSG).expect("sign");
    assert!(matches!(
        p384.public_key().verify(Algorithm::Es256, MSG, &sig),
        Err(Error::AlgorithmMismatch { .. })
    ));
    // Every (kind, alg) pair: fits() and sign() agree.
    let ed = load("ed25519.pem", None);
    for key in [&*rsa, &*p384, &ed] {
        for alg in Algorithm::ALL {
            assert_eq!(
                key.kind().fits(alg),
                key.sign(alg, MSG).is_ok(),
                "{:?} {alg}",
                key.kind()
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Generation and PKCS#8 export.
// ---------------------------------------------------------------------------------------------

fn check_generated(spec: KeySpec, kind: KeyKind) {
    let key = PrivateKey::generate(spec).expect("generate");
    assert_eq!(key.kind(), kind);
    let pem = key.to_pkcs8_pem().expect("export");
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{spec:?}");
    let again = PrivateKey::from_bytes(pem.as_bytes(), None, None).expect("re-import");
    assert_eq!(again.public_key(), key.public_key(), "{spec:?}: round trip");
    // openssl reads our export, and verifies our signature with the public key it extracted.
    let public_pem = openssl_public_pem(pem.as_bytes());
    assert_eq!(
        &PublicKey::from_pem(&public_pem).expect("pub"),
        key.public_key()
    );
    let alg = kind.default_alg();
    let sig = key.sign(alg, MSG).expect("sign");
    openssl_verify(&public_pem, alg, MSG, &sig).unwrap_or_else(|e| panic!("{spec:?}: {e}"));
    // A second generation gives a different key.
    let other = PrivateKey::generate(spec).expect("generate");
    assert_ne!(other.public_key(), key.public_key());
}

#[test]
fn generate_rsa_2048() {
    check_generated(KeySpec::Rsa { bits: 2048 }, RSA2048);
}

#[test]
fn generate_rsa_3072() {
    check_generated(KeySpec::Rsa { bits: 3072 }, KeyKind::Rsa { bits: 3072 });
}

#[test]
fn generate_rsa_4096_once() {
    let key = PrivateKey::generate(KeySpec::Rsa { bits: 4096 }).expect("generate");
    assert_eq!(key.kind(), KeyKind::Rsa { bits: 4096 });
    let pem = key.to_pkcs8_pem().expect("export");
    let public_pem = openssl_public_pem(pem.as_bytes());
    let sig = key.sign(Algorithm::Rs512, MSG).expect("sign");
    openssl_verify(&public_pem, Algorithm::Rs512, MSG, &sig).expect("openssl verifies");
    let again = PrivateKey::from_bytes(pem.as_bytes(), None, None).expect("re-import");
    assert_eq!(again.public_key(), key.public_key());
}

#[test]
fn generate_ec_and_ed25519() {
    check_generated(KeySpec::P256, KeyKind::P256);
    check_generated(KeySpec::P384, KeyKind::P384);
    check_generated(KeySpec::P521, KeyKind::P521);
    check_generated(KeySpec::Ed25519, KeyKind::Ed25519);
}

#[test]
fn generate_refuses_odd_rsa_sizes() {
    for bits in [1024, 2047, 8192] {
        assert!(matches!(
            PrivateKey::generate(KeySpec::Rsa { bits }),
            Err(Error::Config(m)) if m.contains("2048, 3072 or 4096")
        ));
    }
    assert_eq!(KeySpec::for_alg(Algorithm::Es512, 4096), KeySpec::P521);
    assert_eq!(
        KeySpec::for_alg(Algorithm::Ps384, 3072),
        KeySpec::Rsa { bits: 3072 }
    );
}

#[test]
fn public_jwk_export_round_trips() {
    for name in [
        "rsa-pkcs8.pem",
        "p256.pem",
        "p384.pem",
        "p521.pem",
        "ed25519.pem",
    ] {
        let key = load(name, None);
        let jwk = key.public_key().to_jwk();
        assert!(!jwk.has_private_members());
        assert_eq!(jwk.kid, None);
        let json = serde_json::to_vec(&jwk).expect("json");
        let back = PublicKey::from_jwk(&Jwk::from_slice(&json).expect("parse")).expect("import");
        assert_eq!(&back, key.public_key(), "{name}");
    }
    // RSA members are minimal big-endian: e = AQAB, n without a leading zero byte.
    let jwk = load("rsa-pkcs8.pem", None).public_key().to_jwk();
    assert_eq!(jwk.e.as_deref(), Some("AQAB"));
    assert_eq!(b64(jwk.n.as_deref().expect("n")).len(), 256);
    // P-521 coordinates are 66 bytes, left-padded.
    let jwk = load("p521.pem", None).public_key().to_jwk();
    assert_eq!(b64(jwk.x.as_deref().expect("x")).len(), 66);
    assert_eq!(b64(jwk.y.as_deref().expect("y")).len(), 66);
}

#[test]
fn jwk_or_jwks_reads_both_shapes() {
    use m2m_core::jwk::JwkShape;
    let jwk = PrivateKey::generate(KeySpec::P256)
        .expect("key")
        .public_key()
        .to_jwk();
    let one = serde_json::to_vec(&jwk).expect("json");
    let (set, shape) = Jwks::from_jwk_or_jwks(&one).expect("single");
    assert_eq!(shape, JwkShape::Single);
    assert_eq!(set.keys, vec![jwk.clone()]);
    let many = serde_json::to_vec(&Jwks {
        keys: vec![jwk.clone(), jwk],
    })
    .expect("json");
    let (set, shape) = Jwks::from_jwk_or_jwks(&many).expect("set");
    assert_eq!(shape, JwkShape::Set);
    assert_eq!(set.keys.len(), 2);
    assert!(Jwks::from_jwk_or_jwks(b"{not json").is_err());
}

/// `to_encrypted_pkcs8_pem` (what `m2m keygen --encrypt` writes) reads back with the passphrase,
/// for every key type, and only with it; an empty passphrase is refused.
#[test]
fn encrypted_pkcs8_written_reads_back() {
    for spec in [KeySpec::Rsa { bits: 2048 }, KeySpec::P256, KeySpec::Ed25519] {
        let key = PrivateKey::generate(spec).expect("generate");
        let pem = key.to_encrypted_pkcs8_pem(b"s3cret pass").expect("encrypt");
        assert!(
            pem.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"),
            "{pem}"
        );
        let back =
            PrivateKey::from_bytes(pem.as_bytes(), None, Some(b"s3cret pass")).expect("decrypt");
        assert_eq!(
            back.public_key().thumbprint(),
            key.public_key().thumbprint()
        );
        assert!(matches!(
            PrivateKey::from_bytes(pem.as_bytes(), None, Some(b"wrong")),
            Err(Error::WrongPassphrase)
        ));
        assert!(matches!(
            PrivateKey::from_bytes(pem.as_bytes(), None, None),
            Err(Error::PassphraseRequired)
        ));
    }
    let key = PrivateKey::generate(KeySpec::P256).expect("generate");
    assert!(key.to_encrypted_pkcs8_pem(b"").is_err());
}
