//! `ENCRYPTED PRIVATE KEY` (PKCS#8 with PBES2: PBKDF2 + AES-CBC, what OpenSSL 3 writes):
//! decrypting it, and writing it for `m2m keygen --encrypt`, with aws-lc-rs, so m2m needs no
//! second crypto library.

use aws_lc_rs::cipher::{
    AES_128, AES_192, AES_256, DecryptionContext, EncryptionContext, PaddedBlockDecryptingKey,
    PaddedBlockEncryptingKey, UnboundCipherKey,
};
use aws_lc_rs::iv::FixedLength;
use aws_lc_rs::pbkdf2;
use pkcs8::der::{Decode as _, Encode as _};
use pkcs8::pkcs5::pbes2::{EncryptionScheme, Kdf, Pbkdf2Prf};
use zeroize::Zeroizing;

use crate::error::Error;

/// Above this PBKDF2 iteration count we refuse rather than hang on a hostile file.
const MAX_ITERATIONS: u32 = 10_000_000;

/// PBKDF2-HMAC-SHA256 iterations for keys m2m encrypts: OWASP's 2023 figure for this PRF
/// (a fraction of a second per load), far under the [`MAX_ITERATIONS`] the reader accepts.
const WRITE_ITERATIONS: u32 = 600_000;

/// Encrypts PKCS#8 DER into an `EncryptedPrivateKeyInfo` (PBES2: PBKDF2-HMAC-SHA256 with a
/// random 16-byte salt, AES-256-CBC with a random IV), as `openssl pkcs8 -topk8 -v2 aes-256-cbc`
/// writes it; [`decrypt_pkcs8`] and OpenSSL both read it back.
pub(super) fn encrypt_pkcs8(der: &[u8], passphrase: &[u8]) -> Result<Vec<u8>, Error> {
    let failed = || Error::InvalidKey("could not encrypt the key".to_owned());
    if passphrase.is_empty() {
        return Err(Error::InvalidKey(
            "an empty passphrase does not protect the key".to_owned(),
        ));
    }
    let mut salt = [0u8; 16];
    let mut iv = [0u8; 16];
    aws_lc_rs::rand::fill(&mut salt).map_err(|_| failed())?;
    aws_lc_rs::rand::fill(&mut iv).map_err(|_| failed())?;
    let mut key = Zeroizing::new([0u8; 32]);
    let iterations = std::num::NonZeroU32::new(WRITE_ITERATIONS).ok_or_else(failed)?;
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        iterations,
        &salt,
        passphrase,
        key.as_mut(),
    );
    let unbound = UnboundCipherKey::new(&AES_256, key.as_ref()).map_err(|_| failed())?;
    let encrypting = PaddedBlockEncryptingKey::cbc_pkcs7(unbound).map_err(|_| failed())?;
    // Room for the padding up front: no reallocation leaves a plaintext copy behind.
    let mut data = Vec::with_capacity(der.len() + 16);
    data.extend_from_slice(der);
    encrypting
        .less_safe_encrypt(&mut data, EncryptionContext::Iv128(FixedLength::from(iv)))
        .map_err(|_| failed())?;
    let params =
        pkcs8::pkcs5::pbes2::Parameters::pbkdf2_sha256_aes256cbc(WRITE_ITERATIONS, &salt, &iv)
            .map_err(|_| failed())?;
    let info = pkcs8::EncryptedPrivateKeyInfo {
        encryption_algorithm: params.into(),
        encrypted_data: &data,
    };
    info.to_der().map_err(|_| failed())
}

/// Decrypts an `EncryptedPrivateKeyInfo` into the inner PKCS#8 DER.
pub(super) fn decrypt_pkcs8(der: &[u8], passphrase: &[u8]) -> Result<Zeroizing<Vec<u8>>, Error> {
    let info = pkcs8::EncryptedPrivateKeyInfo::from_der(der)
        .map_err(|_| Error::InvalidKey("malformed ENCRYPTED PRIVATE KEY structure".to_owned()))?;
    let params = match &info.encryption_algorithm {
        pkcs8::pkcs5::EncryptionScheme::Pbes2(p) => p,
        pkcs8::pkcs5::EncryptionScheme::Pbes1(_) => {
            return Err(Error::UnsupportedKeyEncryption(
                "PBES1 (legacy DES/RC2)".to_owned(),
            ));
        }
        _ => return Err(Error::UnsupportedKeyEncryption("unknown scheme".to_owned())),
    };
    let pbkdf = match &params.kdf {
        Kdf::Pbkdf2(p) => p,
        Kdf::Scrypt(_) => {
            return Err(Error::UnsupportedKeyEncryption(
                "scrypt key derivation".to_owned(),
            ));
        }
        _ => {
            return Err(Error::UnsupportedKeyEncryption(
                "unknown key derivation".to_owned(),
            ));
        }
    };
    if pbkdf.iteration_count == 0 || pbkdf.iteration_count > MAX_ITERATIONS {
        return Err(Error::UnsupportedKeyEncryption(format!(
            "PBKDF2 iteration count {}",
            pbkdf.iteration_count
        )));
    }
    let prf = match pbkdf.prf {
        Pbkdf2Prf::HmacWithSha1 => pbkdf2::PBKDF2_HMAC_SHA1,
        Pbkdf2Prf::HmacWithSha256 => pbkdf2::PBKDF2_HMAC_SHA256,
        Pbkdf2Prf::HmacWithSha384 => pbkdf2::PBKDF2_HMAC_SHA384,
        Pbkdf2Prf::HmacWithSha512 => pbkdf2::PBKDF2_HMAC_SHA512,
        _ => {
            return Err(Error::UnsupportedKeyEncryption(
                "PBKDF2 PRF other than HMAC-SHA1/256/384/512".to_owned(),
            ));
        }
    };
    let (cipher, key_len, iv) = match params.encryption {
        EncryptionScheme::Aes128Cbc { iv } => (&AES_128, 16, iv),
        EncryptionScheme::Aes192Cbc { iv } => (&AES_192, 24, iv),
        EncryptionScheme::Aes256Cbc { iv } => (&AES_256, 32, iv),
        _ => {
            return Err(Error::UnsupportedKeyEncryption(
                "cipher other than AES-CBC".to_owned(),
            ));
        }
    };
    if let Some(declared) = pbkdf.key_length
        && usize::from(declared) != key_len
    {
        return Err(Error::InvalidKey(
            "PBKDF2 key length does not match the cipher".to_owned(),
        ));
    }
    let mut key = Zeroizing::new(vec![0u8; key_len]);
    let iterations =
        std::num::NonZeroU32::new(pbkdf.iteration_count).ok_or(Error::WrongPassphrase)?;
    pbkdf2::derive(prf, iterations, pbkdf.salt, passphrase, &mut key);
    let unbound = UnboundCipherKey::new(cipher, &key).map_err(|_| Error::WrongPassphrase)?;
    let decrypting =
        PaddedBlockDecryptingKey::cbc_pkcs7(unbound).map_err(|_| Error::WrongPassphrase)?;
    let mut buf = Zeroizing::new(info.encrypted_data.to_vec());
    let plain = decrypting
        .decrypt(&mut buf, DecryptionContext::Iv128(FixedLength::from(*iv)))
        .map_err(|_| Error::WrongPassphrase)?;
    let out = Zeroizing::new(plain.to_vec());
    // A wrong passphrase can still unpad correctly by chance (1/256): check the structure too.
    if pkcs8::PrivateKeyInfo::from_der(&out).is_err() {
        return Err(Error::WrongPassphrase);
    }
    Ok(out)
}
