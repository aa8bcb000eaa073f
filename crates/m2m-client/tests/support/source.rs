//! The TokenSource tests' endpoint: the shared verifying token endpoint (P-256 key, ES256 with
//! kid) answering as the test tells it to (200 with a given `expires_in` or access token, an
//! error status with `Retry-After`, slowly, held), and a client and source aimed at it.

use std::sync::Arc;
use std::time::Duration;

use m2m_client::source::TokenSource;
use m2m_client::{RetryPolicy, TokenClient};
use m2m_core::alg::Algorithm;
use m2m_core::clock::{ManualClock, UnixTime};
use m2m_core::key::{KeySpec, PrivateKey};
use m2m_core::signer::KeySigner;
use m2m_testkit::token_endpoint::{Reply, TokenEndpoint};
use serde_json::{Value, json};

pub const CLIENT_ID: &str = "test-client";
pub const KID: &str = "test-key-1";
/// Where the manual clocks of these tests start.
pub const T0: UnixTime = UnixTime::from_secs(1_700_000_000);

/// How the endpoint answers the next requests.
#[derive(Clone, Debug)]
pub struct Behaviour {
    /// HTTP status; 200 issues a token.
    pub status: u16,
    /// `expires_in` of a 200 answer (None: left out).
    pub expires_in: Option<u64>,
    /// A fixed access token instead of `token-<n>`.
    pub access_token: Option<String>,
    /// `Retry-After` of an error answer.
    pub retry_after: Option<u64>,
    /// Delay before answering.
    pub delay: Duration,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            status: 200,
            expires_in: Some(600),
            access_token: None,
            retry_after: None,
            delay: Duration::ZERO,
        }
    }
}

/// A running token endpoint plus the key its client signs with.
pub struct TokenServer {
    pub token_url: String,
    pub endpoint: TokenEndpoint,
    pub key: Arc<PrivateKey>,
}

impl TokenServer {
    /// Starts an endpoint on a free loopback port, on the current tokio runtime.
    pub async fn start() -> TokenServer {
        let key = m2m_testkit::keys::p256();
        let endpoint = TokenEndpoint::builder(CLIENT_ID)
            .key(KID, key.public_key().clone())
            .replies([reply(&Behaviour::default())])
            .start()
            .await;
        TokenServer {
            token_url: endpoint.url().to_owned(),
            endpoint,
            key,
        }
    }

    pub fn set(&self, behaviour: Behaviour) {
        self.endpoint.set(reply(&behaviour));
    }

    /// Holds every token answer until [`TokenServer::release`]: makes "the refresh is still in
    /// flight" a fact rather than a race.
    pub fn hold(&self) {
        self.endpoint.hold();
    }

    /// Lets held and future answers through.
    pub fn release(&self) {
        self.endpoint.release();
    }

    pub fn requests(&self) -> usize {
        self.endpoint.requests()
    }

    pub fn verified(&self) -> usize {
        self.endpoint.verified()
    }

    /// A client for this endpoint that sends exactly one request per fetch.
    pub fn client(&self) -> TokenClient {
        self.client_with(RetryPolicy::never())
    }

    pub fn client_with(&self, retry: RetryPolicy) -> TokenClient {
        let signer =
            KeySigner::new(Arc::clone(&self.key), Algorithm::Es256, Some(KID.into())).unwrap();
        TokenClient::builder()
            .token_url(&self.token_url)
            .client_id(CLIENT_ID)
            .signer(Arc::new(signer))
            .retry_policy(retry)
            // Paused-time tests must not see a request timeout fire while real I/O is pending.
            .timeout(None)
            .connect_timeout(None)
            .build()
            .unwrap()
    }

    /// A source on this endpoint with a manual clock starting at [`T0`].
    pub fn source(&self) -> (TokenSource, ManualClock) {
        let clock = ManualClock::new(T0);
        let source = TokenSource::builder(Arc::new(self.client()))
            .clock(Arc::new(clock.clone()))
            .build();
        (source, clock)
    }
}

/// The endpoint's answer for `b`: a token (`token-<n>` unless fixed, `expires_in` as a string
/// as NHS sends it) on 200, else `{"error":"temporarily_unavailable"}` with `Retry-After`.
fn reply(b: &Behaviour) -> Reply {
    let reply = if b.status == 200 {
        let reply = Reply::token().expires_in(b.expires_in.map(|e| Value::String(e.to_string())));
        match &b.access_token {
            Some(token) => reply.access_token(token.clone()),
            None => reply,
        }
    } else {
        let reply = Reply::error(b.status, "temporarily_unavailable");
        match b.retry_after {
            Some(secs) => reply.retry_after(secs),
            None => reply,
        }
    };
    reply.delay(b.delay)
}

/// A JWT access token (signed by a throwaway key) expiring at `exp`.
pub fn jwt_access_token(exp: UnixTime) -> String {
    let key = Arc::new(PrivateKey::generate(KeySpec::P256).unwrap());
    let signer = KeySigner::new(key, Algorithm::Es256, None).unwrap();
    let mut claims = serde_json::Map::new();
    claims.insert("sub".into(), json!("svc"));
    claims.insert("exp".into(), json!(exp.as_secs()));
    m2m_core::jws::sign_compact(&serde_json::Map::new(), &claims, &signer).unwrap()
}

pub fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}
