//! Server profiles: the conventions a token endpoint expects beyond RFC 7523 (docs/protocol.md,
//! "Client assertion").
//!
//! Only NHS needs one today: RS512 and nothing else, a `kid`, `typ: JWT`, and `aud` equal to the
//! exact token URL. A token URL on `api.service.nhs.uk` selects it by itself.

use std::fmt;

use m2m_core::alg::Algorithm;
use m2m_core::key::PrivateKey;
use m2m_core::nhs::NHS_ALG;
use m2m_core::signer::Signer;

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

    /// The signing algorithm for `key` (docs/protocol.md, "Client assertion"): the key's own JWK
    /// `alg`, else the profile's, else the key type's default (RSA→RS256, P-256→ES256, …).
    pub fn choose_algorithm(self, key: &PrivateKey) -> Algorithm {
        key.jwk_alg()
            .or_else(|| self.default_algorithm().filter(|alg| key.kind().fits(*alg)))
            .unwrap_or_else(|| key.kind().default_alg())
    }

    /// What keeps a signer's assertions from being accepted by this profile's server: nothing
    /// when it fits. The token client refuses to build on the first finding (so a doomed request
    /// is never sent); `m2m assertion` prints them as warnings and signs anyway.
    pub fn check_signer(self, signer: &dyn Signer) -> Vec<SignerFinding> {
        let mut findings = Vec::new();
        if self != Profile::Nhs {
            return findings;
        }
        let alg = signer.algorithm();
        if alg != NHS_ALG {
            findings.push(SignerFinding::Algorithm {
                required: NHS_ALG,
                actual: alg,
            });
        }
        if signer.key_id().is_none_or(str::is_empty) {
            findings.push(SignerFinding::MissingKid);
        }
        findings
    }
}

/// One reason a signer does not fit a [`Profile`] (see [`Profile::check_signer`]). `Display` says
/// what to do about it.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignerFinding {
    /// The server accepts only `required`, and the signer uses `actual`.
    Algorithm {
        /// The one algorithm the server accepts.
        required: Algorithm,
        /// The signer's algorithm.
        actual: Algorithm,
    },
    /// The server requires a `kid` header, and the signer has no key id.
    MissingKid,
}

impl fmt::Display for SignerFinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignerFinding::Algorithm { required, actual } => write!(
                f,
                "the NHS token endpoint accepts only {required}, but the signer uses {actual}: sign \
                 with an RSA key and {required} (drop a different `alg` from the key's JWK)"
            ),
            SignerFinding::MissingKid => f.write_str(
                "the NHS token endpoint requires a kid naming the key in the JWKS registered for \
                 this app: set the key id",
            ),
        }
    }
}
