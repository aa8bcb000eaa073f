//! One trusted issuer's keys on the request path: where they come from ([`TrustedIssuer`]:
//! discovery, a `jwks_uri` or a static set) and the snapshot requests read without waiting.
//!
//! Why a snapshot in front of [`JwksFetcher`]: the fetcher's single flight is a per-URL async
//! mutex held during the download, so every caller that reached it would wait for a slow issuer.
//! Requests whose `kid` is in the snapshot never reach it (the snapshot is behind a std lock held
//! only to clone an `Arc`); a background task rechecks the fetcher every
//! [`RECHECK_INTERVAL`] (the fetcher itself decides whether that means HTTP, by its
//! `Cache-Control` clamps and stale-if-error window). Only a `kid` the snapshot lacks, or no
//! snapshot at all, waits for the fetcher — which then makes one request for all such callers.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError, RwLock};
use std::time::Duration;

use m2m_core::clock::UnixTime;
use m2m_core::ids::{Issuer, KeySet};
use m2m_discovery::metadata::{MetadataSources, discover_auth_server};
use m2m_discovery::{HttpClient, UrlPolicy};
use url::Url;

/// How often a request that finds an old snapshot asks the fetcher (in the background) whether
/// the issuer's keys changed. Short, because asking costs nothing while the fetcher's cache is
/// fresh; the fetcher's own floor (one fetch per minute) bounds the HTTP traffic.
pub const RECHECK_INTERVAL: Duration = Duration::from_secs(30);

/// Oldest snapshot a request uses without asking the fetcher itself: a recheck is due every
/// [`RECHECK_INTERVAL`] while there is traffic, so only a quiet issuer's first request waits.
pub const SNAPSHOT_MAX_AGE: Duration = Duration::from_secs(60);

/// Where an issuer's keys come from.
#[derive(Clone, Debug)]
enum Source {
    /// RFC 8414, then OpenID Connect discovery, then the metadata's `jwks_uri`.
    Discover,
    /// This `jwks_uri`.
    JwksUri(Url),
    /// These keys, never refetched.
    Static(KeySet),
}

/// An issuer whose tokens are accepted: its identifier (compared with `iss` as an exact string)
/// and where its keys come from.
#[derive(Clone, Debug)]
pub struct TrustedIssuer {
    issuer: Issuer,
    source: Source,
}

impl TrustedIssuer {
    /// Keys found by discovery: RFC 8414 metadata (OpenID Connect discovery as a fallback, for
    /// Keycloak, Entra ID, Auth0), whose `issuer` must equal `issuer` exactly, then its
    /// `jwks_uri`.
    pub fn discover(issuer: impl Into<Issuer>) -> Self {
        TrustedIssuer {
            issuer: issuer.into(),
            source: Source::Discover,
        }
    }
    /// Keys from this `jwks_uri` (no discovery).
    pub fn with_jwks_uri(issuer: impl Into<Issuer>, jwks_uri: Url) -> Self {
        TrustedIssuer {
            issuer: issuer.into(),
            source: Source::JwksUri(jwks_uri),
        }
    }
    /// These keys, fixed (a JWKS file; tests).
    pub fn with_keys(issuer: impl Into<Issuer>, keys: KeySet) -> Self {
        TrustedIssuer {
            issuer: issuer.into(),
            source: Source::Static(keys),
        }
    }
    /// The issuer identifier.
    pub fn issuer(&self) -> &Issuer {
        &self.issuer
    }
}

/// What requests read: the keys and when the fetcher was last asked.
#[derive(Clone, Debug)]
pub(crate) struct Snapshot {
    pub(crate) keys: KeySet,
    pub(crate) checked_at: UnixTime,
}

/// The request-path state of one trusted issuer.
#[derive(Debug)]
pub(crate) struct IssuerKeys {
    pub(crate) trusted: TrustedIssuer,
    /// The JWKS URL once known (discovery done). A std mutex held only to read or set it.
    jwks_uri: Mutex<Option<Url>>,
    /// Serialises discovery so a burst of first requests makes one metadata request.
    discovery: tokio::sync::Mutex<()>,
    /// The keys requests use; std lock, held only to clone or replace (never across an await).
    snapshot: RwLock<Option<Snapshot>>,
    /// Whether a background recheck is running (at most one per issuer).
    pub(crate) rechecking: AtomicBool,
}

impl IssuerKeys {
    pub(crate) fn new(trusted: TrustedIssuer) -> Self {
        let jwks_uri = match &trusted.source {
            Source::JwksUri(u) => Some(u.clone()),
            _ => None,
        };
        IssuerKeys {
            trusted,
            jwks_uri: Mutex::new(jwks_uri),
            discovery: tokio::sync::Mutex::new(()),
            snapshot: RwLock::new(None),
            rechecking: AtomicBool::new(false),
        }
    }

    /// The fixed keys, for a static issuer.
    pub(crate) fn static_keys(&self) -> Option<&KeySet> {
        match &self.trusted.source {
            Source::Static(keys) => Some(keys),
            _ => None,
        }
    }

    pub(crate) fn snapshot(&self) -> Option<Snapshot> {
        self.snapshot
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the snapshot; returns whether the key set changed (the caller then drops cached
    /// tokens whose key left).
    pub(crate) fn store(&self, keys: Option<KeySet>, now: UnixTime) -> bool {
        let mut slot = self
            .snapshot
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let changed = slot.as_ref().map(|s| &s.keys) != keys.as_ref();
        *slot = keys.map(|keys| Snapshot {
            keys,
            checked_at: now,
        });
        changed
    }

    /// The JWKS URL, discovering it on first use (one discovery at a time; a failure is not
    /// remembered, so the next request tries again).
    pub(crate) async fn jwks_uri(
        &self,
        http: &HttpClient,
        policy: UrlPolicy,
    ) -> Result<Url, m2m_discovery::Error> {
        if let Some(u) = self.known_jwks_uri() {
            return Ok(u);
        }
        let _one_at_a_time = self.discovery.lock().await;
        if let Some(u) = self.known_jwks_uri() {
            return Ok(u);
        }
        let discovery_policy = if policy.allows_insecure_http() {
            UrlPolicy::new().dangerous_allow_insecure_http()
        } else {
            UrlPolicy::new()
        };
        let meta = discover_auth_server(
            http,
            self.trusted.issuer.as_str(),
            MetadataSources::OAuthThenOpenId,
            &discovery_policy,
        )
        .await?;
        let uri = meta
            .jwks_uri()
            .ok_or_else(|| m2m_discovery::Error::InvalidMetadata {
                url: self.trusted.issuer.to_string(),
                reason: "the metadata has no jwks_uri".to_owned(),
            })?;
        let uri = policy.parse(uri)?;
        *self.jwks_uri.lock().unwrap_or_else(PoisonError::into_inner) = Some(uri.clone());
        Ok(uri)
    }

    fn known_jwks_uri(&self) -> Option<Url> {
        self.jwks_uri
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Marks a recheck as started; false if one is already running.
    pub(crate) fn start_recheck(&self) -> bool {
        !self.rechecking.swap(true, Ordering::AcqRel)
    }
    pub(crate) fn end_recheck(&self) {
        self.rechecking.store(false, Ordering::Release);
    }
}
