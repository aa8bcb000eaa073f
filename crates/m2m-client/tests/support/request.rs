//! The request tests' endpoint: the shared verifying token endpoint on `/token`, with the RSA
//! test key registered, answering from a per-test script and recording every request, including
//! invalid ones (`answer_invalid`, so a test can show the endpoint noticed a bad assertion).

use std::sync::Arc;
use std::time::Duration;

use m2m_client::{RetryPolicy, TokenClient, TokenClientBuilder};
use m2m_core::alg::Algorithm;
use m2m_core::key::PrivateKey;
use m2m_core::signer::{KeySigner, Signer};
pub use m2m_testkit::net::free_port;
pub use m2m_testkit::token_endpoint::{Reply, TokenEndpoint};

pub const CLIENT_ID: &str = "test-api-key";
pub const KID: &str = "test-1";

/// The RSA-2048 test key (generated once per test binary).
pub fn key() -> Arc<PrivateKey> {
    m2m_testkit::keys::rsa2048()
}

pub fn signer(alg: Algorithm) -> Arc<dyn Signer> {
    Arc::new(KeySigner::new(key(), alg, Some(KID.to_owned())).unwrap())
}

/// NHS's success shape with a fixed access token.
pub fn nhs_ok() -> Reply {
    Reply::nhs_token().access_token("nhs-access-token-1")
}

/// Starts an endpoint answering `/token` from `script` (the last reply repeats); `aud` is the
/// token URL unless the test says otherwise. `/elsewhere` (a redirect target) answers too, so a
/// test can show it was never asked.
pub async fn start(script: Vec<Reply>) -> TokenEndpoint {
    let endpoint = TokenEndpoint::builder(CLIENT_ID)
        .key(KID, key().public_key().clone())
        .path("/token")
        .answer_invalid()
        .replies(script)
        .start()
        .await;
    endpoint.serve("/elsewhere", nhs_ok());
    endpoint
}

/// A client builder aimed at an endpoint.
pub trait ClientFor {
    /// RS512 with kid, fast retries.
    fn client(&self) -> TokenClientBuilder;
}

impl ClientFor for TokenEndpoint {
    fn client(&self) -> TokenClientBuilder {
        TokenClient::builder()
            .token_url(self.url())
            .client_id(CLIENT_ID)
            .signer(signer(Algorithm::Rs512))
            .retry_policy(RetryPolicy::default().base_delay(Duration::from_millis(5)))
    }
}

/// A loopback token URL with nothing listening.
pub fn dead_port_url() -> String {
    format!("http://127.0.0.1:{}/token", free_port())
}
