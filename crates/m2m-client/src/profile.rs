//! Server profiles: the conventions a token endpoint expects beyond RFC 7523 (SPEC §1).
//!
//! Only NHS needs one today: RS512 and nothing else, a `kid`, `typ: JWT`, and `aud` equal to the
//! exact token URL. A token URL on `api.service.nhs.uk` selects it by itself.

use m2m_core::alg::Algorithm;
use m2m_core::key::PrivateKey;
use m2m_core::nhs::NHS_ALG;
use m2m_core::signer::Signer;

use crate::error::ConfigError;
use crate::token_url::TokenUrl;

/// Which server conventions apply to the client assertion.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Profile {
    /// Plain RFC 7523 / RFC 10070: any supported algorithm, `kid` optional.
    Generic,
    /// NHS England API platform: RS512 only, `kid` required, `aud` = exact token URL.
    Nhs,
}

impl Profile {
    /// The profile a token URL implies: NHS for `api.service.nhs.uk` hosts, else generic.
    pub fn for_token_url(url: &TokenUrl) -> Profile {
        if url.is_nhs() {
            Profile::Nhs
        } else {
            Profile::Generic
        }
    }

    /// The algorithm the profile prefers when the key does not name one (NHS: RS512).
    pub fn default_algorithm(self) -> Option<Algorithm> {
        match self {
            Profile::Nhs => Some(NHS_ALG),
            Profile::Generic => None,
        }
    }

    /// The signing algorithm for `key` (SPEC §1): the key's own JWK `alg`, else the profile's,
    /// else the key type's default (RSA→RS256, P-256→ES256, …).
    pub fn choose_algorithm(self, key: &PrivateKey) -> Algorithm {
        key.jwk_alg()
            .or_else(|| self.default_algorithm().filter(|alg| key.kind().fits(*alg)))
            .unwrap_or_else(|| key.kind().default_alg())
    }

    /// Checks that a signer can produce assertions this profile's server accepts, so a doomed
    /// request is never sent.
    pub fn check_signer(self, signer: &dyn Signer) -> Result<(), ConfigError> {
        if self != Profile::Nhs {
            return Ok(());
        }
        let alg = signer.algorithm();
        if alg != NHS_ALG {
            return Err(ConfigError::Profile(format!(
                "the NHS token endpoint accepts only RS512, but the signer uses {alg}: sign with an \
                 RSA key and RS512 (drop a different `alg` from the key's JWK)"
            )));
        }
        if signer.key_id().is_none_or(str::is_empty) {
            return Err(ConfigError::Profile(
                "the NHS token endpoint requires a kid naming the key in the JWKS registered for \
                 this app: set the key id"
                    .to_owned(),
            ));
        }
        Ok(())
    }
}
