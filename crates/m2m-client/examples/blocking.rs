//! A program without an async runtime of its own: `BlockingTokenSource` runs a small tokio
//! runtime on a background thread and hands out cached tokens synchronously.
//!
//! Configuration (environment variables): `TOKEN_URL`, `CLIENT_ID`, `PRIVATE_KEY` (path to a
//! PEM or JWK), optional `KID`.
//!
//! Run: `cargo run -p m2m-client --example blocking --features blocking`.
#![allow(clippy::print_stdout)]

use std::sync::Arc;

use m2m_client::integrations::blocking::BlockingTokenSource;
use m2m_client::{KeySigner, PrivateKey, Profile, TokenClient};

fn env(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("set {name} (see the top of this example)"))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let kid = std::env::var("KID").ok();
    let key = PrivateKey::from_bytes(&std::fs::read(env("PRIVATE_KEY")?)?, kid.as_deref(), None)?;
    let alg = Profile::Generic.choose_algorithm(&key);
    let signer = KeySigner::new(Arc::new(key), alg, kid)?;
    let client = TokenClient::builder()
        .token_url(env("TOKEN_URL")?)
        .client_id(env("CLIENT_ID")?)
        .signer(Arc::new(signer))
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
