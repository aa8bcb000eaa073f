//! The seam between the token cache and whatever gets tokens: [`FetchToken`], implemented for
//! [`TokenClient`] and for anything a test or a custom flow wants to plug in.

use std::fmt;

use crate::client::TokenClient;
use crate::dpop::DpopKey;
use crate::error::Error;
use crate::response::TokenResponse;
use crate::transport::BoxFuture;

/// Gets one fresh token response (with whatever retries the implementation does itself).
///
/// A trait object rather than a generic parameter so that [`crate::source::TokenSource`] has a
/// single concrete type that is easy to store in application state.
pub trait FetchToken: Send + Sync + fmt::Debug {
    /// Requests a token.
    fn fetch(&self) -> BoxFuture<'_, Result<TokenResponse, Error>>;

    /// The DPoP key the token requests carry proofs of, if any: a token the endpoint issues as
    /// `token_type: DPoP` is bound to it, and API requests with it need its proofs. A fetcher
    /// that wraps a [`TokenClient`] must pass this on.
    fn dpop_key(&self) -> Option<DpopKey> {
        None
    }
}

impl FetchToken for TokenClient {
    fn fetch(&self) -> BoxFuture<'_, Result<TokenResponse, Error>> {
        Box::pin(TokenClient::fetch(self))
    }

    fn dpop_key(&self) -> Option<DpopKey> {
        TokenClient::dpop_key(self).cloned()
    }
}
