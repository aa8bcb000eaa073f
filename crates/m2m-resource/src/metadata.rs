//! This API's RFC 9728 protected-resource metadata: the document, where it is served (the
//! well-known path derived from the resource identifier, RFC 9728 §3.1, and the root well-known
//! path) and an axum router serving it. Clients (the MCP flow, `m2m token --for`) read it to learn
//! which authorization server issues tokens for this resource and which `resource` to ask for.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use m2m_discovery::metadata::{OAUTH_PROTECTED_RESOURCE, protected_resource_metadata_url};
use serde_json::{Value, json};
use url::Url;

use crate::challenge::Challenge;

/// An RFC 9728 §2 document for one resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceMetadata {
    /// As configured, compared by clients as an exact string (so never re-serialised through
    /// `Url`, which would add a trailing `/` to a bare origin).
    resource: String,
    resource_url: Url,
    authorization_servers: Vec<String>,
    scopes_supported: Vec<String>,
    dpop_bound_access_tokens_required: bool,
    dpop_signing_alg_values_supported: Vec<String>,
}

impl ResourceMetadata {
    /// The metadata of `resource` (the audience tokens carry), issued for by
    /// `authorization_servers` (issuer identifiers).
    pub fn new(resource: Url, authorization_servers: Vec<String>) -> Self {
        ResourceMetadata::with_identifier(
            resource.as_str().to_owned(),
            resource,
            authorization_servers,
        )
    }

    /// As [`ResourceMetadata::new`], keeping `identifier` exactly as written (e.g.
    /// `https://api.example` without the `/` a parsed URL gets); it must parse as a URL.
    pub fn from_identifier(
        identifier: &str,
        authorization_servers: Vec<String>,
    ) -> Result<Self, url::ParseError> {
        let url = Url::parse(identifier)?;
        Ok(ResourceMetadata::with_identifier(
            identifier.to_owned(),
            url,
            authorization_servers,
        ))
    }

    fn with_identifier(
        resource: String,
        resource_url: Url,
        authorization_servers: Vec<String>,
    ) -> Self {
        ResourceMetadata {
            resource,
            resource_url,
            authorization_servers,
            scopes_supported: Vec::new(),
            dpop_bound_access_tokens_required: false,
            dpop_signing_alg_values_supported: Vec::new(),
        }
    }
    /// `scopes_supported`.
    pub fn scopes_supported(mut self, scopes: Vec<String>) -> Self {
        self.scopes_supported = scopes;
        self
    }
    /// `dpop_bound_access_tokens_required`: set in DPoP mode `required` (docs/dpop.md).
    pub fn dpop_bound_access_tokens_required(mut self, required: bool) -> Self {
        self.dpop_bound_access_tokens_required = required;
        self
    }
    /// `dpop_signing_alg_values_supported` (RFC 9728 §2): the proof algorithms a resource that
    /// accepts DPoP takes, so a client can pick one before its first request is refused. Empty
    /// (the default, and DPoP mode `bearer`) leaves the member out.
    pub fn dpop_signing_alg_values_supported(mut self, algs: Vec<String>) -> Self {
        self.dpop_signing_alg_values_supported = algs;
        self
    }
    /// The resource identifier.
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// The document.
    pub fn document(&self) -> Value {
        let mut doc = json!({
            "resource": self.resource,
            "authorization_servers": self.authorization_servers,
            "bearer_methods_supported": ["header"],
        });
        if !self.scopes_supported.is_empty() {
            doc["scopes_supported"] = json!(self.scopes_supported);
        }
        if self.dpop_bound_access_tokens_required {
            doc["dpop_bound_access_tokens_required"] = json!(true);
        }
        if !self.dpop_signing_alg_values_supported.is_empty() {
            doc["dpop_signing_alg_values_supported"] =
                json!(self.dpop_signing_alg_values_supported);
        }
        doc
    }

    /// Where the document lives (RFC 9728 §3.1): the value of `resource_metadata` in challenges.
    pub fn url(&self) -> Url {
        protected_resource_metadata_url(&self.resource_url)
    }

    /// The challenge parameters pointing at this document.
    pub fn challenge(&self) -> Challenge {
        Challenge::new().resource_metadata(self.url().as_str())
    }

    /// The paths [`ResourceMetadata::router`] serves the document at: the root well-known path
    /// (for clients that only try the root), then its RFC 9728 path when that is another one.
    pub fn paths(&self) -> Vec<String> {
        let root = format!("/{OAUTH_PROTECTED_RESOURCE}");
        let derived = self.url().path().to_owned();
        if derived == root {
            vec![root]
        } else {
            vec![root, derived]
        }
    }

    /// A router serving the document at its [`paths`](ResourceMetadata::paths). Merge it into
    /// the API's router, outside the layer.
    pub fn router<S: Clone + Send + Sync + 'static>(&self) -> Router<S> {
        let body = self.document().to_string();
        let handler = move || {
            let body = body.clone();
            async move { document_response(body) }
        };
        self.paths().iter().fold(Router::new(), |router, path| {
            router.route(path, get(handler.clone()))
        })
    }
}

fn document_response(body: String) -> Response {
    let mut response = body.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    response
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn document_and_url() {
        let m = ResourceMetadata::new(
            Url::parse("https://api.example/mcp").unwrap(),
            vec!["https://as.example".to_owned()],
        )
        .scopes_supported(vec!["read".to_owned()]);
        assert_eq!(
            m.url().as_str(),
            "https://api.example/.well-known/oauth-protected-resource/mcp"
        );
        let d = m.document();
        assert_eq!(d["resource"], "https://api.example/mcp");
        assert_eq!(d["authorization_servers"][0], "https://as.example");
        assert_eq!(d["bearer_methods_supported"][0], "header");
        assert_eq!(d["scopes_supported"][0], "read");
        assert!(d.get("dpop_bound_access_tokens_required").is_none());
        assert!(d.get("dpop_signing_alg_values_supported").is_none());
        let d = m
            .dpop_bound_access_tokens_required(true)
            .dpop_signing_alg_values_supported(vec!["ES256".to_owned()])
            .document();
        assert_eq!(d["dpop_bound_access_tokens_required"], true);
        assert_eq!(d["dpop_signing_alg_values_supported"][0], "ES256");
    }
}
