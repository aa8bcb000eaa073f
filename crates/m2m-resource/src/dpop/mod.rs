//! DPoP at the resource server (RFC 9449 §7): a DPoP-bound token comes with `Authorization: DPoP
//! <token>` and one `DPoP` proof made for this very request. [`DpopSettings`] holds the mode, the
//! proof validator (m2m-core's, in RFC 9449 §4.3 order), where the API is addressed from outside
//! and the replay store; [`DpopSettings::check_proof`] runs the checks for a verified token.
//!
//! Checks of a DPoP request, after the token passed its own (signature, `exp`, `aud`, …): the
//! token is bound (`cnf.jkt`) → the proof in core's order: syntax, `typ`, `alg`, `jwk`,
//! signature, `htm` = the method, `htu` = the URL as the client addressed it, `iat` window, `ath`
//! = the token's hash, the proof key's thumbprint = `cnf.jkt` → the proof's `(jkt, jti)` not seen
//! before (then recorded) → scopes. Resource nonces are not used.
//!
//! # Layout
//!
//! - [`scheme`]: the pure header reading and mode decision ([`DpopMode`], [`read_credentials`]).
//! - [`target`]: the pure request URL (`htu`) reconstruction ([`Addressed`]).
//! - [`replay`]: [`ProofReplayStore`] and the in-memory [`MemoryProofStore`].
//! - [`redis`]: [`RedisProofStore`], shared by several instances.

pub mod redis;
pub mod replay;
pub mod scheme;
pub mod target;

use std::sync::Arc;

use m2m_core::alg::Algorithm;
use m2m_core::clock::{Clock, SystemClock};
use m2m_core::validate::{
    DpopConfig, DpopReason, DpopRejection, DpopRequest, DpopValidator, Presentation,
};

pub use self::redis::RedisProofStore;
pub use self::replay::{MemoryProofStore, ProofReplayStore, ReplayError};
pub use self::scheme::{DpopMode, Presented, Scheme, read_credentials, used_scheme};
pub use self::target::Addressed;

use crate::error::Refusal;
use crate::identity::Caller;
use crate::verifier::Verifier;

/// How a resource treats DPoP. Cheap to clone.
#[derive(Clone, Debug)]
pub struct DpopSettings {
    mode: DpopMode,
    validator: DpopValidator,
    addressed: Addressed,
    replay: Arc<dyn ProofReplayStore>,
    clock: Arc<dyn Clock>,
}

impl DpopSettings {
    /// Settings for `mode`: core's default proof checks (every asymmetric algorithm, `iat` from
    /// 5 min back to 60 s ahead), requests addressed directly over `http` (see
    /// [`DpopSettings::external_url`]), an in-memory replay store of the default capacity.
    pub fn new(mode: DpopMode) -> Self {
        DpopSettings {
            mode,
            validator: DpopValidator::default(),
            addressed: Addressed::Direct { scheme: "http" },
            replay: Arc::new(MemoryProofStore::default()),
            clock: Arc::new(SystemClock),
        }
    }
    /// The proof validator's configuration (algorithms, `iat` window).
    pub fn config(mut self, config: DpopConfig) -> Self {
        self.validator = DpopValidator::new(config);
        self
    }
    /// The API's base URL as clients address it, behind a reverse proxy or TLS terminator
    /// (e.g. `https://api.example.com` or `https://example.com/api`): proofs' `htu` must be this
    /// plus the request's path.
    pub fn external_url(mut self, base: &str) -> Self {
        self.addressed = Addressed::external(base);
        self
    }
    /// Without an external URL: the scheme clients use (`https` when this process terminates
    /// TLS itself); the host comes from the request.
    pub fn https(mut self, https: bool) -> Self {
        self.addressed = Addressed::Direct {
            scheme: if https { "https" } else { "http" },
        };
        self
    }
    /// Where used proofs are recorded (a shared [`RedisProofStore`] for several instances).
    pub fn replay_store(mut self, store: Arc<dyn ProofReplayStore>) -> Self {
        self.replay = store;
        self
    }
    /// The clock (tests).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The mode.
    pub fn mode(&self) -> DpopMode {
        self.mode
    }
    /// The accepted proof algorithms (the challenge's `algs`).
    pub fn algorithms(&self) -> &[Algorithm] {
        self.validator.config().algorithms()
    }
    /// Where the API is addressed from.
    pub fn addressed(&self) -> &Addressed {
        &self.addressed
    }
    /// The replay store.
    pub fn replay(&self) -> &Arc<dyn ProofReplayStore> {
        &self.replay
    }

    /// A whole DPoP request: `token` verified by `verifier` as presented with a proof, then
    /// `proof` for `method` `url` ([`DpopSettings::check_proof`]), then `required_scopes` — the
    /// access-token check order with the proof in its sender-constraint step. The caller carries
    /// the proof key's thumbprint ([`Caller::dpop_jkt`]).
    pub async fn verify_request(
        &self,
        verifier: &Verifier,
        token: &str,
        proof: &str,
        method: &str,
        url: &str,
        required_scopes: &[&str],
    ) -> Result<Caller, Refusal> {
        let caller = verifier
            .verify_presented(token, Presentation::DpopProof, &[])
            .await?;
        let jkt = self.check_proof(&caller, token, proof, method, url).await?;
        caller
            .access_token_claims()
            .require_scopes(required_scopes)?;
        Ok(caller.with_dpop_jkt(&jkt))
    }

    /// Checks `proof` for a request with `method` to `url` (as the client addressed it) carrying
    /// `token`, whose verified identity is `caller`; records the proof as used. Returns the
    /// proof key's thumbprint (= the token's `cnf.jkt`).
    pub async fn check_proof(
        &self,
        caller: &Caller,
        token: &str,
        proof: &str,
        method: &str,
        url: &str,
    ) -> Result<String, Refusal> {
        let Some(jkt) = caller.access_token_claims().cnf_jkt.as_deref() else {
            return Err(Refusal::Proof(DpopRejection {
                reason: DpopReason::KeyNotBound,
                description: "the access token is not bound to a DPoP key (no cnf.jkt); send it \
                              as a Bearer token"
                    .into(),
            }));
        };
        let now = self.clock.now();
        let request = DpopRequest::new(method, url)
            .access_token(token)
            .bound_to(jkt);
        let verified = self
            .validator
            .validate(proof, &request, now)
            .map_err(Refusal::Proof)?;
        // Recorded only once every check passed, so a refused proof costs no entry.
        let fresh = self
            .replay
            .insert_if_absent(&verified.jkt, &verified.jti, verified.replay_until, now)
            .await
            .map_err(|e| {
                tracing::warn!(store = self.replay.kind(), error = %e, "DPoP replay store unavailable");
                Refusal::ReplayUnavailable(e.to_string())
            })?;
        if !fresh {
            return Err(Refusal::Proof(DpopRejection {
                reason: DpopReason::JtiInvalid,
                description: "DPoP proof 'jti' was already used: make a fresh proof for every \
                              request"
                    .into(),
            }));
        }
        Ok(verified.jkt)
    }
}
