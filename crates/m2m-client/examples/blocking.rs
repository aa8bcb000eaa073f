//! A program without an async runtime of its own: `BlockingTokenSource` runs a small tokio
//! runtime on a background thread and hands out cached tokens synchronously.
//!
//! Configuration (environment variables): `ISSUER` (the server's issuer identifier: the
//! assertion's `aud`, and the token URL `ISSUER/oauth2/token` — what a default `m2m serve`
//! wants) or `TOKEN_URL` alone (`aud` = the token URL, as NHS wants), `CLIENT_ID`, `PRIVATE_KEY`
//! (path to a PEM or JWK), optional `KID`, `ALG` (default: the JWK's `alg`, else RS512 for an
//! RSA key — what `m2m keygen` makes — else the key type's).
//!
//! Run against a default `m2m serve` (`m2m serve --clients clients.toml`):
//! `ISSUER=http://127.0.0.1:8080 CLIENT_ID=my-service PRIVATE_KEY=keys/svc-1.pem KID=svc-1 cargo run -p m2m-client --example blocking --features blocking`.
#![allow(clippy::print_stdout)]

use std::sync::Arc;

use m2m_client::integrations::blocking::BlockingTokenSource;
use m2m_client::{Algorithm, KeySigner, PrivateKey, Profile, TokenClient};

fn env(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("set {name} (see the top of this example)"))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let kid = std::env::var("KID").ok();
    let key = PrivateKey::from_bytes(&std::fs::read(env("PRIVATE_KEY")?)?, kid.as_deref(), None)?;
    let alg = match std::env::var("ALG") {
        Ok(name) => name.parse::<Algorithm>()?,
        Err(_) => key
            .jwk_alg()
            .or_else(|| {
                key.kind()
                    .fits(Algorithm::Rs512)
                    .then_some(Algorithm::Rs512)
            })
            .unwrap_or_else(|| Profile::Generic.choose_algorithm(&key)),
    };
    let signer = KeySigner::new(Arc::new(key), alg, kid)?;
    let builder = TokenClient::builder()
        .client_id(env("CLIENT_ID")?)
        .signer(Arc::new(signer));
    let client = match std::env::var("ISSUER") {
        Ok(issuer) => builder
            .token_url(std::env::var("TOKEN_URL").unwrap_or(format!("{issuer}/oauth2/token")))
            .audience(issuer),
        Err(_) => builder.token_url(env("TOKEN_URL")?),
    }
    .build()?;
    let tokens = BlockingTokenSource::new(client)?;
    for i in 0..3 {
        let token = tokens.token()?; // fetched once, then from memory
        println!(
            "call {i}: Authorization: Bearer [{} bytes]",
            token.secret().len()
        );
    }
    Ok(())
}
