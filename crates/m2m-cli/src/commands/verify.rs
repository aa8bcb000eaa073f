//! `m2m verify`: checks an access token exactly as an API protected by m2m-resource would, and
//! prints the verified claims as JSON (or the reason it was refused, exit 1). With
//! `--dpop-proof` the token is checked as a DPoP-bound token sent with that proof, for the request
//! `--method` `--url`, by the same m2m-resource code as `m2m gateway --dpop`.

use m2m_core::jwk::Jwks;
use m2m_discovery::parse_jwks;
use m2m_resource::{Caller, DpopMode, DpopSettings, Refusal, TrustedIssuer, Verifier};

use crate::cli::VerifyArgs;
use crate::commands::decode::read_token;
use crate::commands::{print_result, runtime};
use crate::exit::{CliError, CliResult, Exit};
use crate::keyfile;

/// Runs `m2m verify`.
pub(crate) fn run(args: &VerifyArgs) -> CliResult {
    let token = read_token(&args.token)?;
    let issuer = trusted_issuer(&args.issuer, args.jwks.as_deref())?;
    let mut builder = Verifier::builder(args.audience.clone()).issuer(issuer);
    if args.dangerous_accept_jwt_typ {
        builder = builder.dangerous_accept_jwt_typ();
    }
    let verifier = builder
        .build()
        .map_err(|e| CliError::local(e.to_string()))?;
    let scopes: Vec<&str> = args.scopes.iter().map(String::as_str).collect();
    let result = runtime()?.block_on(check(&verifier, &token, &scopes, args));
    match result {
        Ok(caller) => {
            let mut claims = serde_json::Value::Object(caller.claims().clone());
            if let Some(jkt) = caller.dpop_jkt() {
                claims["_dpop"] = serde_json::json!({ "jkt": jkt });
            }
            let text = serde_json::to_string_pretty(&claims)
                .map_err(|e| CliError::local(format!("cannot print the claims: {e}")))?;
            print_result(&text)
        }
        Err(Refusal::Unavailable(why)) => Err(CliError::new(
            Exit::Transport,
            format!("cannot verify: the issuer's keys are unavailable: {why}"),
        )),
        Err(refusal) => {
            let reason = refusal.reason_name().unwrap_or("request");
            let what = if refusal.dpop_reason().is_some() {
                "DPoP proof"
            } else {
                "token"
            };
            Err(CliError::findings(format!(
                "{what} refused ({reason}): {}",
                refusal.description()
            )))
        }
    }
}

/// The token as a Bearer token, or with `--dpop-proof` as a DPoP-bound one: token checks, the
/// proof (for `--method` `--url`), then the scopes — the layer's order.
async fn check(
    verifier: &Verifier,
    token: &str,
    scopes: &[&str],
    args: &VerifyArgs,
) -> Result<Caller, Refusal> {
    let (Some(proof), Some(method), Some(url)) = (&args.dpop_proof, &args.method, &args.url) else {
        return verifier.verify(token, scopes).await;
    };
    DpopSettings::new(DpopMode::Required)
        .verify_request(verifier, token, proof.trim(), method, url, scopes)
        .await
}

/// The issuer to trust with its keys: by discovery, or from `--jwks` (a file, or a jwks_uri URL).
/// Shared with `m2m gateway`.
pub(super) fn trusted_issuer(issuer: &str, jwks: Option<&str>) -> CliResult<TrustedIssuer> {
    let Some(jwks) = jwks else {
        return Ok(TrustedIssuer::discover(issuer));
    };
    if jwks.starts_with("https://") || jwks.starts_with("http://") {
        let url = m2m_discovery::UrlPolicy::new()
            .parse(jwks)
            .map_err(|e| CliError::usage(format!("--jwks: {e}")))?;
        return Ok(TrustedIssuer::with_jwks_uri(issuer, url));
    }
    let bytes = keyfile::read_file(std::path::Path::new(jwks), "JWKS file")?;
    // A single JWK is accepted too, as `m2m jwks` does.
    let (set, _) =
        Jwks::from_jwk_or_jwks(&bytes).map_err(|e| CliError::usage(format!("{jwks}: {e}")))?;
    let doc = serde_json::to_vec(&set).map_err(|e| CliError::local(e.to_string()))?;
    let parsed = parse_jwks(&doc).map_err(|e| CliError::usage(format!("{jwks}: {e}")))?;
    Ok(TrustedIssuer::with_keys(issuer, parsed.keys))
}
