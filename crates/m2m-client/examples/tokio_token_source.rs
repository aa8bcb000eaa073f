//! A plain tokio program sharing one `TokenSource` between many tasks: one token request,
//! however many tasks ask at once.
//!
//! Configuration (environment variables): `TOKEN_URL`, `CLIENT_ID`, `PRIVATE_KEY` (path to a
//! PEM or JWK), optional `KID` and `SCOPE`.
//!
//! Run: `cargo run -p m2m-client --example tokio_token_source` (against e.g. `m2m serve`).
#![allow(clippy::print_stdout)]

use std::sync::Arc;

use m2m_client::source::TokenSource;
use m2m_client::{KeySigner, PrivateKey, Profile, TokenClient};

fn env(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("set {name} (see the top of this example)"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let kid = std::env::var("KID").ok();
    let key = PrivateKey::from_bytes(&std::fs::read(env("PRIVATE_KEY")?)?, kid.as_deref(), None)?;
    let alg = Profile::Generic.choose_algorithm(&key);
    let signer = KeySigner::new(Arc::new(key), alg, kid)?;
    let mut builder = TokenClient::builder()
        .token_url(env("TOKEN_URL")?)
        .client_id(env("CLIENT_ID")?)
        .signer(Arc::new(signer));
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
