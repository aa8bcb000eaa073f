//! A plain tokio program sharing one `TokenSource` between many tasks: one token request,
//! however many tasks ask at once.
//!
//! Configuration (environment variables): `ISSUER` (the server's issuer identifier: the
//! assertion's `aud`, and the token URL `ISSUER/oauth2/token` — what a default `m2m serve`
//! wants) or `TOKEN_URL` alone (`aud` = the token URL, as NHS wants), `CLIENT_ID`, `PRIVATE_KEY`
//! (path to a PEM or JWK), optional `KID`, `ALG` (default: the JWK's `alg`, else RS512 for an
//! RSA key — what `m2m keygen` makes — else the key type's) and `SCOPE`.
//!
//! Run against a default `m2m serve` (`m2m serve --clients clients.toml`):
//! `ISSUER=http://127.0.0.1:8080 CLIENT_ID=my-service PRIVATE_KEY=keys/svc-1.pem KID=svc-1 cargo run -p m2m-client --example tokio_token_source`.
#![allow(clippy::print_stdout)]

use std::sync::Arc;

use m2m_client::source::TokenSource;
use m2m_client::{Algorithm, KeySigner, PrivateKey, Profile, TokenClient};

fn env(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("set {name} (see the top of this example)"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
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
    let mut builder = TokenClient::builder()
        .client_id(env("CLIENT_ID")?)
        .signer(Arc::new(signer));
    builder = match std::env::var("ISSUER") {
        Ok(issuer) => builder
            .token_url(std::env::var("TOKEN_URL").unwrap_or(format!("{issuer}/oauth2/token")))
            .audience(issuer),
        Err(_) => builder.token_url(env("TOKEN_URL")?),
    };
    if let Ok(scope) = std::env::var("SCOPE") {
        builder = builder.scope(scope);
    }
    let tokens = TokenSource::new(builder.build()?);

    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let tokens = tokens.clone();
            tokio::spawn(async move { tokens.token().await })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    let token = tokens.token().await?;
    // The token itself is never printed: Debug shows [redacted].
    println!("100 tasks served by one token request: {token:?}");
    Ok(())
}
