//! The server's own signing keys (on disk, generated on first start, current + previous for
//! rotation) and the RFC 9068 JWT access tokens it signs with them.
//!
//! Layout of `{data_dir}/keys/`: `current.pem` signs; `previous.pem`, when present, is still
//! published in the JWKS so tokens signed before a rotation stay verifiable until they expire.
//! Both are PKCS#8 PEM, mode 0600, in a 0700 directory.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use m2m_core::alg::Algorithm;
use m2m_core::clock::UnixTime;
use m2m_core::ids::{KeyEntry, KeySet};
use m2m_core::jwk::{Jwk, Jwks};
use m2m_core::jws::EncodedHeader;
use m2m_core::key::{KeySpec, PrivateKey, PublicKey};
use m2m_core::signer::KeySigner;
use m2m_core::validate::{AccessTokenConfig, AccessTokenValidator, Presentation};
use m2m_core::wire::ACCESS_TOKEN_TYP;
use serde_json::{Map, Value, json};

use crate::error::Error;

/// Sub-directory of the data dir holding the keys.
pub(crate) const KEYS_DIR: &str = "keys";
/// The signing key's file name.
pub(crate) const CURRENT_KEY_FILE: &str = "current.pem";
/// The retired key's file name (published, not used to sign).
pub(crate) const PREVIOUS_KEY_FILE: &str = "previous.pem";

/// One server key: the private key, its `kid` (RFC 7638 thumbprint) and the alg it signs with.
#[derive(Debug)]
struct ServerKey {
    signer: KeySigner,
    /// The access-token header (`typ`, `alg`, `kid`), encoded once.
    header: EncodedHeader,
    public: PublicKey,
    kid: String,
    alg: Algorithm,
}

impl ServerKey {
    fn new(key: PrivateKey) -> Result<ServerKey, Error> {
        let public = key.public_key().clone();
        let kid = public.thumbprint();
        let alg = key.jwk_alg().unwrap_or_else(|| key.kind().default_alg());
        let signer = KeySigner::new(Arc::new(key), alg, Some(kid.clone()))?;
        let mut header = Map::new();
        header.insert("typ".to_owned(), json!(ACCESS_TOKEN_TYP));
        let header = EncodedHeader::new(&header, &signer)?;
        Ok(ServerKey {
            signer,
            header,
            public,
            kid,
            alg,
        })
    }

    fn jwk(&self) -> Jwk {
        let mut jwk = self.public.to_jwk();
        jwk.kid = Some(self.kid.clone());
        jwk.alg = Some(self.alg.name().to_owned());
        jwk.use_ = Some("sig".to_owned());
        jwk
    }
}

/// The keys the server signs access tokens with.
#[derive(Debug)]
pub struct ServerKeys {
    current: ServerKey,
    previous: Option<ServerKey>,
}

impl ServerKeys {
    /// Loads `{data_dir}/keys/current.pem` (and `previous.pem`), generating a P-256 (ES256)
    /// current key when there is none.
    pub fn load_or_generate(data_dir: &Path) -> Result<ServerKeys, Error> {
        let dir = data_dir.join(KEYS_DIR);
        create_private_dir(&dir)?;
        let current_path = dir.join(CURRENT_KEY_FILE);
        let current = match read_key(&current_path)? {
            Some(key) => key,
            None => {
                let key = PrivateKey::generate(KeySpec::P256)?;
                write_private_key(&current_path, &key)?;
                tracing::info!(path = %current_path.display(), "generated a new server signing key (ES256)");
                key
            }
        };
        let previous = read_key(&dir.join(PREVIOUS_KEY_FILE))?
            .map(ServerKey::new)
            .transpose()?;
        Ok(ServerKeys {
            current: ServerKey::new(current)?,
            previous,
        })
    }

    /// Reads and validates the keys in `{data_dir}/keys/` without writing anything: the current
    /// key's `kid`, or `None` when there is none yet (the server would generate it on start).
    pub fn check(data_dir: &Path) -> Result<Option<String>, Error> {
        let dir = data_dir.join(KEYS_DIR);
        let current = read_key(&dir.join(CURRENT_KEY_FILE))?
            .map(ServerKey::new)
            .transpose()?;
        if let Some(previous) = read_key(&dir.join(PREVIOUS_KEY_FILE))? {
            ServerKey::new(previous)?;
        }
        Ok(current.map(|key| key.kid))
    }

    /// Rotation: `current.pem` becomes `previous.pem` (replacing an older one) and a new
    /// current key is generated. Restart the server to use it.
    pub fn rotate(data_dir: &Path) -> Result<(), Error> {
        let dir = data_dir.join(KEYS_DIR);
        create_private_dir(&dir)?;
        let current = dir.join(CURRENT_KEY_FILE);
        if current.exists() {
            std::fs::rename(&current, dir.join(PREVIOUS_KEY_FILE))
                .map_err(|e| keys_err(&current, e))?;
        }
        let key = PrivateKey::generate(KeySpec::P256)?;
        write_private_key(&current, &key)
    }

    /// The `kid` of the signing key.
    pub fn current_kid(&self) -> &str {
        &self.current.kid
    }

    /// The public JWKS: current key first, then the previous one.
    pub fn jwks(&self) -> Jwks {
        let mut keys = vec![self.current.jwk()];
        if let Some(prev) = &self.previous {
            keys.push(prev.jwk());
        }
        Jwks { keys }
    }

    /// Algorithms of the published keys.
    pub(crate) fn algorithms(&self) -> Vec<Algorithm> {
        let mut algs = vec![self.current.alg];
        if let Some(prev) = self.previous.as_ref().filter(|p| p.alg != self.current.alg) {
            algs.push(prev.alg);
        }
        algs
    }

    /// The published keys as a verification key set (what introspection verifies against).
    pub(crate) fn key_set(&self) -> KeySet {
        std::iter::once(&self.current)
            .chain(self.previous.as_ref())
            .map(|k| KeyEntry::new(Some(k.kid.as_str().into()), k.public.clone()))
            .collect::<Vec<_>>()
            .into()
    }
}

/// What a token is issued for.
#[derive(Clone, Debug)]
pub(crate) struct TokenRequest<'a> {
    /// `sub` and `client_id`.
    pub client_id: &'a str,
    /// `aud`.
    pub audience: &'a str,
    /// The granted scopes, space-separated (`None`: no `scope` claim).
    pub scope: Option<&'a str>,
    /// Lifetime.
    pub lifetime: Duration,
    /// The DPoP key thumbprint the token is bound to (`cnf.jkt`, RFC 9449 §6.1); `None`: a
    /// Bearer token.
    pub jkt: Option<&'a str>,
}

/// A signed access token. `Debug` does not show it.
pub(crate) struct IssuedToken {
    /// The compact JWS.
    pub token: String,
    /// Its `jti`.
    pub jti: String,
    /// Lifetime in seconds (`exp - iat`).
    pub expires_in: u64,
}

impl std::fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedToken")
            .field("jti", &self.jti)
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

/// The claims of an access token (RFC 9068 §2.2), in this order. A struct rather than a JSON map:
/// it is serialized once per token, on the token endpoint's hot path.
#[derive(serde::Serialize)]
struct AccessTokenClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    client_id: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
    jti: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cnf: Option<Confirmation<'a>>,
}

/// The `cnf` claim of a DPoP-bound token (RFC 9449 §6.1): the proof key's thumbprint.
#[derive(serde::Serialize)]
struct Confirmation<'a> {
    jkt: &'a str,
}

/// Signs and verifies RFC 9068 access tokens.
#[derive(Debug)]
pub(crate) struct AccessTokenIssuer {
    keys: ServerKeys,
    issuer: String,
    /// The server's own keys, for `verify`.
    key_set: KeySet,
    /// Core's access-token validator, configured for introspection of our own tokens.
    validator: AccessTokenValidator,
}

impl AccessTokenIssuer {
    /// An issuer for the `iss` identifier.
    pub(crate) fn new(keys: ServerKeys, issuer: impl Into<String>) -> Self {
        let issuer = issuer.into();
        // Introspection answers for every token we issued, whatever its audience (the caller's
        // visibility rule comes after), only with our keys' algorithms, and with no leeway: our
        // own clock signed `exp`, so a token is inactive the second it expires.
        let mut config = AccessTokenConfig::any_audience_for_introspection(issuer.as_str());
        config.set_algorithms(&keys.algorithms());
        // Zero is within range: `set_leeway` cannot refuse it.
        let _ = config.set_leeway(Duration::ZERO);
        AccessTokenIssuer {
            key_set: keys.key_set(),
            keys,
            issuer,
            validator: AccessTokenValidator::new(config),
        }
    }

    /// The server keys.
    pub(crate) fn keys(&self) -> &ServerKeys {
        &self.keys
    }

    /// Signs a token: header `typ: at+jwt`; claims `iss, sub, client_id, aud, iat, exp, jti`,
    /// `scope` when scopes were granted (RFC 9068 §2.2) and `cnf` when DPoP-bound.
    pub(crate) fn issue(
        &self,
        request: &TokenRequest<'_>,
        now: UnixTime,
    ) -> Result<IssuedToken, Error> {
        let iat = now.as_secs();
        let expires_in = request.lifetime.as_secs().max(1);
        // Checked: a wrapped sum would issue a token that is already expired while `expires_in`
        // promises years. `ServerConfig::check` bounds the lifetime; this guards library users.
        let exp = iat.checked_add(expires_in).ok_or_else(|| {
            Error::Config(format!(
                "access-token lifetime {expires_in} s overflows the expiry time"
            ))
        })?;
        let jti = m2m_core::assertion::new_jti();
        let claims = AccessTokenClaims {
            iss: &self.issuer,
            sub: request.client_id,
            client_id: request.client_id,
            aud: request.audience,
            iat,
            exp,
            jti: &jti,
            scope: request.scope,
            cnf: request.jkt.map(|jkt| Confirmation { jkt }),
        };
        let current = &self.keys.current;
        let token = current.header.sign(&claims, &current.signer)?;
        Ok(IssuedToken {
            token,
            jti,
            expires_in,
        })
    }

    /// The claims of a token this server issued and that is still valid at `now`; `Err` says
    /// why not (for the log only — introspection answers just `active: false`). A thin call to
    /// core's RFC 9068 validator with our own key set.
    pub(crate) fn verify(
        &self,
        token: &str,
        now: UnixTime,
    ) -> Result<Map<String, Value>, &'static str> {
        self.validator
            .validate(token, &self.key_set, Presentation::Introspection, &[], now)
            .map(|verified| verified.claims)
            .map_err(|rejection| rejection.reason.as_str())
    }
}

fn keys_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Keys {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

fn read_key(path: &Path) -> Result<Option<PrivateKey>, Error> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let bytes = zeroize::Zeroizing::new(bytes);
            PrivateKey::from_bytes(&bytes, None, None)
                .map(Some)
                .map_err(|e| keys_err(path, e))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(keys_err(path, e)),
    }
}

fn create_private_dir(dir: &Path) -> Result<(), Error> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|e| keys_err(dir, e))
}

/// Writes a new key file, 0600, refusing to overwrite (two servers starting at once on one data
/// dir must not replace each other's key).
fn write_private_key(path: &Path, key: &PrivateKey) -> Result<(), Error> {
    use std::io::Write;
    let pem = key.to_pkcs8_pem()?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(|e| keys_err(path, e))?;
    file.write_all(pem.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| keys_err(path, e))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn request(lifetime: Duration) -> TokenRequest<'static> {
        TokenRequest {
            client_id: "svc",
            audience: "https://rs.example",
            scope: None,
            lifetime,
            jkt: None,
        }
    }

    #[test]
    fn an_expiry_that_would_overflow_is_an_error_not_a_wrapped_exp() {
        let dir = tempfile::tempdir().unwrap();
        let issuer = AccessTokenIssuer::new(
            ServerKeys::load_or_generate(dir.path()).unwrap(),
            "https://issuer.example",
        );
        let now = UnixTime::from_secs(1_796_198_689);
        let err = issuer
            .issue(&request(Duration::from_secs(u64::MAX)), now)
            .err()
            .unwrap();
        assert!(err.to_string().contains("overflows"), "{err}");
        let issued = issuer
            .issue(&request(Duration::from_secs(86_400)), now)
            .unwrap();
        assert_eq!(issued.expires_in, 86_400);
        let claims = issuer.verify(&issued.token, now).unwrap();
        assert_eq!(claims["exp"], 1_796_198_689 + 86_400);
        assert!(claims.get("cnf").is_none(), "a Bearer token has no cnf");
    }

    #[test]
    fn a_bound_token_carries_cnf_jkt_and_introspection_sees_it() {
        let dir = tempfile::tempdir().unwrap();
        let issuer = AccessTokenIssuer::new(
            ServerKeys::load_or_generate(dir.path()).unwrap(),
            "https://issuer.example",
        );
        let now = UnixTime::from_secs(1_796_198_689);
        let mut bound = request(Duration::from_secs(60));
        bound.jkt = Some("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I");
        let issued = issuer.issue(&bound, now).unwrap();
        let claims = issuer.verify(&issued.token, now).unwrap();
        assert_eq!(
            claims["cnf"],
            json!({"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"})
        );
    }
}
