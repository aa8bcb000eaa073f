//! Calls the NHS "Hello World" application-restricted endpoint with a reqwest-middleware client
//! that gets its tokens from a `TokenSource` (signed JWT, NHS rules: RS512 + kid).
//!
//! Configuration (environment variables):
//! - `NHS_API_KEY`: the application's API key (client id);
//! - `NHS_PRIVATE_KEY`: path to the RSA private key (PEM) registered for the app;
//! - `NHS_KID`: the key id in the app's JWKS;
//! - `NHS_ENV`: `sandbox`, `dev`, `int` (default) or `prod`;
//! - `NHS_HELLO_URL`: the endpoint (default: the sandbox Hello World application URL).
//!
//! Run: `cargo run -p m2m-client --example nhs_hello_world --features reqwest-middleware`.
//! Needs the internet; CI only compiles it.
#![allow(clippy::print_stdout)]

use std::sync::Arc;

use m2m_client::integrations::middleware::BearerMiddleware;
use m2m_client::source::TokenSource;
use m2m_client::{Algorithm, Environment, KeySigner, PrivateKey, TokenClient};

const HELLO: &str = "https://sandbox.api.service.nhs.uk/hello-world/hello/application";

fn env(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("set {name} (see the top of this example)"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let environment: Environment = std::env::var("NHS_ENV")
        .unwrap_or_else(|_| "int".to_owned())
        .parse()?;
    let key = PrivateKey::from_bytes(&std::fs::read(env("NHS_PRIVATE_KEY")?)?, None, None)?;
    let signer = KeySigner::new(Arc::new(key), Algorithm::Rs512, Some(env("NHS_KID")?))?;
    let client = TokenClient::builder()
        .nhs(environment)
        .client_id(env("NHS_API_KEY")?)
        .signer(Arc::new(signer))
        .build()?;
    // One source for the whole process: every request reuses the cached token, and one
    // background refresh replaces it before it expires.
    let tokens = TokenSource::new(client);
    let api = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(BearerMiddleware::new(tokens))
        .build();
    let url = std::env::var("NHS_HELLO_URL").unwrap_or_else(|_| HELLO.to_owned());
    for _ in 0..3 {
        let response = api.get(&url).send().await?;
        println!("{} {}", response.status(), response.text().await?);
    }
    Ok(())
}
