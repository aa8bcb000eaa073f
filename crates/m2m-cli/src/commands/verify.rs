//! `m2m verify`: checks an access token exactly as an API protected by m2m-resource would, and
//! prints the verified claims as JSON (or the reason it was refused, exit 1).

use m2m_core::jwk::Jwks;
use m2m_discovery::parse_jwks;
use m2m_resource::{Refusal, TrustedIssuer, Verifier};

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
    let result = runtime()?.block_on(verifier.verify(&token, &scopes));
    match result {
        Ok(caller) => {
            let claims = serde_json::Value::Object(caller.claims().clone());
            let text = serde_json::to_string_pretty(&claims)
                .map_err(|e| CliError::local(format!("cannot print the claims: {e}")))?;
            print_result(&text)
        }
        Err(Refusal::Unavailable(why)) => Err(CliError::new(
            Exit::Transport,
            format!("cannot verify: the issuer's keys are unavailable: {why}"),
        )),
        Err(refusal) => {
            let reason = refusal.reason().map_or("request", |r| r.as_str());
            Err(CliError::findings(format!(
                "token refused ({reason}): {}",
                refusal.description()
            )))
        }
    }
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
