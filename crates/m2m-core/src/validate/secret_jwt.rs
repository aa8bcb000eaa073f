//! The `client_secret_jwt` checks of the rfc profile: the same order as `private_key_jwt`
//! (docs/protocol.md, `## Client assertion checks (rfc profile)`) with an HMAC under the client's
//! secret in place of the signature, and HMAC accepted in the header only on this path.

use std::fmt;

use serde_json::Value;

use super::Verified;
use super::form::TokenForm;
use super::rejection::{Reason, Rejection};
use super::rfc::RfcValidator;
use super::rules::Parsed;
use crate::hmac::HmacAlg;
use crate::secret::ClientSecret;

/// Whether the request's `client_assertion` is HMAC-signed (`alg` HS256/384/512), i.e. presents
/// `client_secret_jwt` rather than `private_key_jwt`. Looks at the header only; anything that
/// does not parse is left to the `private_key_jwt` checks, which refuse it with their reasons.
pub fn assertion_is_hmac(form: &TokenForm) -> bool {
    let Some(assertion) = form.client_assertion.as_deref() else {
        return false;
    };
    let Some(header) = assertion.split('.').next() else {
        return false;
    };
    // A header is small; a long first part is not worth decoding here.
    if header.len() > 1024 {
        return false;
    }
    let Some(bytes) = crate::b64::decode(header) else {
        return false;
    };
    serde_json::from_slice::<serde_json::Map<String, Value>>(&bytes)
        .ok()
        .and_then(|h| h.get("alg").and_then(Value::as_str).map(HmacAlg::from_name))
        .is_some_and(|alg| alg.is_some())
}

/// A `client_secret_jwt` assertion that passed [`RfcValidator::precheck_secret_jwt`]: well
/// formed, HMAC-signed, naming a client. Nothing in it is authenticated yet.
pub struct SecretJwtPending {
    parsed: Parsed,
    alg: HmacAlg,
    sub: String,
    scope: Option<String>,
}

impl SecretJwtPending {
    /// The `sub` claim, to look the client up by.
    pub fn subject(&self) -> &str {
        &self.sub
    }
    /// The `alg` header.
    pub fn alg(&self) -> HmacAlg {
        self.alg
    }
}

impl fmt::Debug for SecretJwtPending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretJwtPending")
            .field("sub", &self.sub)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// What the server knows about a `client_secret_jwt` client.
#[derive(Clone, Copy, Debug)]
pub struct ClientSecrets<'a> {
    /// The registered client id.
    pub client_id: &'a str,
    /// The HMAC algorithms allowed for it.
    pub allowed_algs: &'a [HmacAlg],
    /// Its valid secrets (two during a rotation).
    pub secrets: &'a [ClientSecret],
}

impl RfcValidator {
    /// The pre-I/O half of `client_secret_jwt`: client_assertion_type → size/shape → header
    /// (`alg` HS256/384/512; `crit` refused) → `sub` present → `client_id` equals `sub`.
    pub fn precheck_secret_jwt(&self, form: &TokenForm) -> Result<SecretJwtPending, Rejection> {
        self.rule_assertion_type(form.client_assertion_type.as_deref())?;
        let parsed = self.rule_shape(form.client_assertion.as_deref())?;
        let alg = parsed
            .header_str("alg")
            .and_then(HmacAlg::from_name)
            .ok_or_else(|| {
                Rejection::invalid_client(
                    Reason::AlgRefused,
                    "client_secret_jwt assertions must use HS256, HS384 or HS512",
                )
            })?;
        self.rule_crit(parsed.header())?;
        let sub = self.rule_sub(&parsed.claims)?.to_owned();
        self.rule_client_id(form.client_id.as_deref(), &sub)?;
        Ok(SecretJwtPending {
            parsed,
            alg,
            sub,
            scope: form.scope.clone(),
        })
    }

    /// After the client is found: alg allowed → typ → HMAC under one of its secrets →
    /// iss=sub=client → aud → exp → iat/nbf → jti shape. The caller records the `jti`.
    pub fn verify_secret_jwt(
        &self,
        pending: &SecretJwtPending,
        client: &ClientSecrets<'_>,
        now: crate::clock::UnixTime,
    ) -> Result<Verified, Rejection> {
        let parsed = &pending.parsed;
        if !client.allowed_algs.contains(&pending.alg) {
            let names: Vec<&str> = client.allowed_algs.iter().map(|a| a.name()).collect();
            return Err(Rejection::invalid_client(
                Reason::AlgNotAllowed,
                format!(
                    "assertion 'alg' {} is not allowed for this client (allowed: {})",
                    pending.alg,
                    names.join(", ")
                ),
            ));
        }
        self.rule_typ(parsed.header())?;
        let input = parsed.jws.signing_input().as_bytes();
        let tag = parsed.jws.signature();
        // Every secret is tried (no early exit), so the time does not say which one matched.
        let mut ok = false;
        for secret in client.secrets {
            ok |= pending.alg.verify(secret, input, tag);
        }
        if !ok {
            return Err(Rejection::invalid_client(
                Reason::BadSignature,
                "assertion HMAC verification failed: it is not signed with the client's secret",
            ));
        }
        self.rule_claims(&parsed.claims, client.client_id, &pending.scope, now)
    }
}
