//! `m2m gateway`: a verifying reverse proxy, so an API in any language accepts only callers with
//! a valid token for it. In front of the `forward` engine: m2m-resource's layer decides each
//! request (per-route scopes, public prefixes), the RFC 9728 document is served for the
//! upstream, and the engine's hook hands the verified identity to the upstream as `X-M2M-*`
//! headers (the caller's own copies always removed).
//!
//! With `--dpop allowed|required` the layer also takes DPoP-bound tokens with their proof
//! (m2m-resource's DPoP checks; `--external-url` for the proofs' `htu` behind a proxy,
//! `--dpop-redis` for a replay store shared by several gateways), and the RFC 9728 document says
//! `dpop_bound_access_tokens_required` in mode `required`.
//!
//! The path rules ([`Policy`]) are pure; everything else is wiring of the engine, the layer and
//! the metadata handler.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::Router;
use axum::http::Request as HttpRequest;
use axum::http::{Extensions, HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use hyper::body::Incoming;
use hyper_util::service::TowerToHyperService;
use m2m_resource::{
    Caller, DpopMode, DpopSettings, RedisProofStore, RequireBearerLayer, ResourceMetadata, Verifier,
};
use m2m_server::ConnectionLimits;
use url::Url;

use crate::authorize;
use crate::cli::{DpopModeArg, GatewayArgs};
use crate::commands::verify::trusted_issuer;
use crate::exit::{CliError, CliResult};
use crate::forward::{self, Forwarder, Hook, ListenAddr, Metrics, plain};

/// The identity headers the upstream reads. Whatever the caller sent under these names is
/// removed from every request, public routes included, so the upstream can trust them. A
/// `static`: a `const` array would be built and dropped again at every use.
static IDENTITY_HEADERS: [HeaderName; 3] = [
    HeaderName::from_static("x-m2m-client-id"),
    HeaderName::from_static("x-m2m-sub"),
    HeaderName::from_static("x-m2m-scope"),
];

/// Runs `m2m gateway` until SIGINT or SIGTERM.
pub(crate) fn run(args: &GatewayArgs) -> CliResult {
    // A gateway authenticates its callers, so any address is fine (unlike `m2m proxy`).
    let listen = ListenAddr::parse(&args.listen, true)
        .map_err(|e| CliError::usage(format!("--listen: {e}")))?;
    let admin = args
        .admin_listen
        .as_deref()
        .map(|a| ListenAddr::parse(a, true))
        .transpose()
        .map_err(|e| CliError::usage(format!("--admin-listen: {e}")))?;
    // Plain http to a remote upstream is the usual private-network set-up; it is refused only
    // when the caller's token would travel with the request (--keep-authorization).
    let upstream = authorize::api_url(&args.upstream, !args.keep_authorization)
        .map_err(|e| CliError::usage(format!("--upstream: {e}")))?;
    if upstream.query().is_some() {
        return Err(CliError::usage("--upstream: a base URL takes no ?query"));
    }
    let policy =
        Policy::new(&args.require_scopes, &args.routes, &args.public).map_err(CliError::usage)?;
    let dpop = dpop_settings(args)?;
    let metadata = ResourceMetadata::from_identifier(&args.audience, vec![args.issuer.clone()])
        .map_err(|e| CliError::usage(format!("--audience: {:?} is not a URL: {e}", args.audience)))?
        .scopes_supported(policy.scopes_supported())
        .dpop_bound_access_tokens_required(dpop.mode() == DpopMode::Required)
        .dpop_signing_alg_values_supported(if dpop.mode() == DpopMode::Bearer {
            Vec::new()
        } else {
            dpop.algorithms()
                .iter()
                .map(|a| a.name().to_owned())
                .collect()
        });
    let issuer = trusted_issuer(&args.issuer, args.jwks.as_deref())?;
    // Serves many callers at once: a worker per core.
    let rt = crate::commands::server_runtime()?;
    rt.block_on(async {
        let verifier = Verifier::builder(args.audience.clone())
            .issuer(issuer)
            .build()
            .map_err(|e| CliError::usage(e.to_string()))?;
        let setup = Setup {
            verifier,
            policy,
            metadata,
            dpop,
            keep_authorization: args.keep_authorization,
        };
        serve(setup, upstream, &listen, admin.as_ref()).await
    })
}

/// `--dpop`, `--external-url` and `--dpop-redis` as m2m-resource settings.
fn dpop_settings(args: &GatewayArgs) -> CliResult<DpopSettings> {
    let mode = match args.dpop {
        DpopModeArg::Bearer => DpopMode::Bearer,
        DpopModeArg::Allowed => DpopMode::Allowed,
        DpopModeArg::Required => DpopMode::Required,
    };
    if mode == DpopMode::Bearer && (args.external_url.is_some() || args.dpop_redis.is_some()) {
        return Err(CliError::usage(
            "--external-url and --dpop-redis are for DPoP proofs: add --dpop allowed or \
             --dpop required",
        ));
    }
    let mut settings = DpopSettings::new(mode);
    if let Some(external) = &args.external_url {
        let url = Url::parse(external)
            .map_err(|e| CliError::usage(format!("--external-url: {external:?}: {e}")))?;
        if !matches!(url.scheme(), "http" | "https")
            || url.host_str().is_none()
            || url.query().is_some()
            || url.fragment().is_some()
        {
            return Err(CliError::usage(format!(
                "--external-url: {external:?} is not an http(s) base URL without ?query or #fragment"
            )));
        }
        settings = settings.external_url(external);
    }
    if let Some(redis) = &args.dpop_redis {
        let store = RedisProofStore::open(redis)
            .map_err(|e| CliError::usage(format!("--dpop-redis: {e}")))?;
        settings = settings.replay_store(Arc::new(store));
    }
    Ok(settings)
}

/// What the gateway's router is made of.
struct Setup {
    verifier: Verifier,
    policy: Policy,
    metadata: ResourceMetadata,
    dpop: DpopSettings,
    keep_authorization: bool,
}

async fn serve(
    setup: Setup,
    upstream: Url,
    listen: &ListenAddr,
    admin: Option<&ListenAddr>,
) -> CliResult {
    let metrics = Arc::new(Metrics::gateway());
    let gateway = Gateway::new(setup, upstream.clone(), Arc::clone(&metrics))?;
    // The defaults of `m2m serve`, per-address cap included: a gateway faces many callers.
    forward::serve_until_signal(
        "m2m gateway",
        listen,
        admin,
        gateway,
        &metrics,
        ConnectionLimits::default(),
        &upstream,
    )
    .await
    .map_err(CliError::local)
}

/// The gateway as one hyper service: the RFC 9728 document's paths are answered by the gateway
/// itself (no token needed); every other request goes through [`check`], then the forwarder.
/// No router on the forwarded path: it would only add its own work per request
/// (docs/benchmarks.md).
#[derive(Clone)]
struct Gateway(Arc<GatewayInner>);

struct GatewayInner {
    gate: Gate,
    forwarder: Forwarder<IdentityHook>,
    /// Where the RFC 9728 document is served ([`ResourceMetadata::paths`]), and its router.
    metadata_paths: Vec<String>,
    metadata: TowerToHyperService<Router>,
}

impl Gateway {
    fn new(setup: Setup, upstream: Url, metrics: Arc<Metrics>) -> CliResult<Self> {
        let hook = IdentityHook {
            keep_authorization: setup.keep_authorization,
        };
        let forwarder =
            Forwarder::new(upstream, hook, Arc::clone(&metrics)).map_err(CliError::local)?;
        let layers = setup
            .policy
            .requirements
            .iter()
            .map(|scopes| {
                RequireBearerLayer::new(setup.verifier.clone())
                    .require_scopes(scopes.iter().cloned())
                    .dpop(setup.dpop.clone())
                    .challenge(setup.metadata.challenge())
            })
            .collect();
        let gate = Gate {
            policy: setup.policy,
            layers,
            metrics,
        };
        Ok(Gateway(Arc::new(GatewayInner {
            gate,
            forwarder,
            metadata_paths: setup.metadata.paths(),
            metadata: TowerToHyperService::new(setup.metadata.router()),
        })))
    }
}

impl hyper::service::Service<HttpRequest<Incoming>> for Gateway {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn call(&self, request: HttpRequest<Incoming>) -> Self::Future {
        if self
            .0
            .metadata_paths
            .iter()
            .any(|p| p == request.uri().path())
        {
            return Box::pin(self.0.metadata.call(request));
        }
        let inner = Arc::clone(&self.0);
        Box::pin(async move { Ok(check(&inner, request).await) })
    }
}

/// The per-request decision: the policy, and one layer per scope requirement (each answering
/// its refusals with the challenge naming the RFC 9728 document).
struct Gate {
    policy: Policy,
    /// `layers[i]` requires `policy.requirements[i]`.
    layers: Vec<RequireBearerLayer>,
    metrics: Arc<Metrics>,
}

/// Verifies the request (unless its path is public) and puts the [`Caller`] in its extensions
/// for the hook, then forwards it; a refusal is answered here with the RFC 6750 challenge,
/// nothing sent upstream.
async fn check(gw: &GatewayInner, mut request: HttpRequest<Incoming>) -> Response {
    let gate = &gw.gate;
    let path = request.uri().path();
    if has_dot_segment(path) {
        // The forwarder's URL join would resolve it, so the upstream would see another path than
        // the one the rules were applied to.
        gate.metrics.request();
        return plain(StatusCode::BAD_REQUEST, "bad request target\n");
    }
    let index = match gate.policy.decide(path) {
        Access::Public => {
            gate.metrics.public();
            return gw.forwarder.forward(request).await;
        }
        Access::Token(index) => index,
    };
    let Some(layer) = gate.layers.get(index) else {
        return plain(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n");
    };
    match layer.authorize(&request).await {
        Ok(caller) => {
            gate.metrics.verified();
            request.extensions_mut().insert(caller);
            gw.forwarder.forward(request).await
        }
        Err(refusal) => {
            gate.metrics.request();
            gate.metrics.refused();
            tracing::info!(
                status = refusal.status(),
                reason = refusal.reason_name(),
                "request refused"
            );
            layer.refusal_response(&request, &refusal)
        }
    }
}

/// The engine's hook: identity headers from the verified caller (the caller's copies removed
/// first), the caller's credentials removed unless `--keep-authorization`.
#[derive(Debug)]
struct IdentityHook {
    keep_authorization: bool,
}

impl Hook for IdentityHook {
    type Ticket = ();
    const MAY_RETRY: bool = false;

    async fn prepare(
        &self,
        _method: &Method,
        _url: &Url,
        extensions: &Extensions,
        headers: &mut HeaderMap,
    ) -> Result<(), Response> {
        set_identity(headers, extensions.get::<Caller>(), self.keep_authorization).map_err(|e| {
            tracing::warn!(error = %e, "cannot pass the caller's identity upstream");
            plain(
                StatusCode::FORBIDDEN,
                "m2m gateway: the token's identity cannot be passed on\n",
            )
        })
    }
}

/// Rewrites `headers` for the upstream: every incoming `X-M2M-*` identity header removed, then
/// set from `caller` (none on a public route); `Authorization` and `DPoP` removed unless `keep`.
fn set_identity(
    headers: &mut HeaderMap,
    caller: Option<&Caller>,
    keep_authorization: bool,
) -> Result<(), String> {
    for name in &IDENTITY_HEADERS {
        headers.remove(name);
    }
    if !keep_authorization {
        headers.remove(header::AUTHORIZATION);
        headers.remove("dpop");
    }
    let Some(caller) = caller else {
        return Ok(());
    };
    let scope = caller.scopes().join(" ");
    let [client_id, sub, scope_name] = &IDENTITY_HEADERS;
    for (name, value) in [
        (client_id, caller.client_id()),
        (sub, caller.sub()),
        (scope_name, scope.as_str()),
    ] {
        let value = HeaderValue::from_str(value)
            .map_err(|_| format!("{name}: the claim is not a valid header value"))?;
        headers.insert(name.clone(), value);
    }
    Ok(())
}

/// Whether `path` has a `.` or `..` segment, written plainly or percent-encoded (`%2e`).
fn has_dot_segment(path: &str) -> bool {
    path.split('/').any(|segment| {
        let decoded = segment.to_ascii_lowercase().replace("%2e", ".");
        decoded == "." || decoded == ".."
    })
}

/// What a request path needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// Nothing: forwarded without a token.
    Public,
    /// A token with the scopes of `requirements[i]`.
    Token(usize),
}

/// The path rules: `--require-scope` for every request, `--route PREFIX=SCOPE` adding scopes
/// under a prefix, `--public PREFIX` needing no token. The longest matching prefix decides; a
/// prefix matches whole segments (`/api` covers `/api` and `/api/x`, not `/apix`).
#[derive(Debug, PartialEq, Eq)]
struct Policy {
    /// Prefixes and what they need, longest first.
    prefixes: Vec<(String, Access)>,
    /// Scope sets; `[0]` is the default (`--require-scope` only).
    requirements: Vec<Vec<String>>,
}

impl Policy {
    fn new(required: &[String], routes: &[String], public: &[String]) -> Result<Policy, String> {
        let mut prefixes: Vec<(String, Access)> = Vec::new();
        let mut requirements = vec![required.to_vec()];
        let mut add = |prefix: &str, access: Access| -> Result<(), String> {
            if !prefix.starts_with('/') {
                return Err(format!("{prefix:?}: a path prefix starts with /"));
            }
            let prefix = prefix.trim_end_matches('/');
            if prefixes.iter().any(|(p, _)| p == prefix) {
                return Err(format!(
                    "{prefix:?} is given twice (--route and --public prefixes must differ)"
                ));
            }
            prefixes.push((prefix.to_owned(), access));
            Ok(())
        };
        for route in routes {
            let (prefix, scopes) = route
                .split_once('=')
                .ok_or_else(|| format!("--route {route:?}: expected PREFIX=SCOPE"))?;
            let extra: Vec<&str> = scopes.split(' ').filter(|s| !s.is_empty()).collect();
            if extra.is_empty() {
                return Err(format!("--route {route:?}: no scope after ="));
            }
            let mut set = required.to_vec();
            for s in extra {
                if !set.iter().any(|have| have == s) {
                    set.push(s.to_owned());
                }
            }
            requirements.push(set);
            add(prefix, Access::Token(requirements.len() - 1))
                .map_err(|e| format!("--route: {e}"))?;
        }
        for prefix in public {
            add(prefix, Access::Public).map_err(|e| format!("--public: {e}"))?;
        }
        prefixes.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        Ok(Policy {
            prefixes,
            requirements,
        })
    }

    /// What `path` needs. A public prefix never matches a path with an encoded `/` or `\`
    /// (`%2f`, `%5c`), which an upstream might decode into another path than the one matched.
    fn decide(&self, path: &str) -> Access {
        let lower = path.to_ascii_lowercase();
        let ambiguous = lower.contains("%2f") || lower.contains("%5c") || lower.contains('\\');
        for (prefix, access) in &self.prefixes {
            if *access == Access::Public && ambiguous {
                continue;
            }
            let covers = match path.strip_prefix(prefix.as_str()) {
                Some(rest) => rest.is_empty() || rest.starts_with('/') || prefix.is_empty(),
                None => false,
            };
            if covers {
                return *access;
            }
        }
        Access::Token(0)
    }

    /// Every scope any rule requires, for the RFC 9728 `scopes_supported`.
    fn scopes_supported(&self) -> Vec<String> {
        let mut all: Vec<String> = Vec::new();
        for s in self.requirements.iter().flatten() {
            if !all.contains(s) {
                all.push(s.clone());
            }
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn the_longest_prefix_decides_on_whole_segments() {
        let p = Policy::new(
            &strings(&["read"]),
            &strings(&["/admin=admin", "/admin/reports=reports audit"]),
            &strings(&["/health", "/admin/public/"]),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.requirements[0], ["read"]);
        let needs = |path: &str| match p.decide(path) {
            Access::Public => None,
            Access::Token(i) => Some(p.requirements[i].clone()),
        };
        assert_eq!(needs("/"), Some(strings(&["read"])));
        assert_eq!(needs("/health"), None);
        assert_eq!(needs("/health/live"), None);
        assert_eq!(
            needs("/healthz"),
            Some(strings(&["read"])),
            "whole segments"
        );
        assert_eq!(needs("/admin"), Some(strings(&["read", "admin"])));
        assert_eq!(needs("/admin/x"), Some(strings(&["read", "admin"])));
        assert_eq!(
            needs("/admin/reports/1"),
            Some(strings(&["read", "reports", "audit"]))
        );
        assert_eq!(needs("/admin/public/doc"), None);
        assert_eq!(
            needs("/health%2F..%2Fadmin"),
            Some(strings(&["read"])),
            "no public match through an encoded slash"
        );
        assert_eq!(
            p.scopes_supported(),
            strings(&["read", "admin", "reports", "audit"])
        );
    }

    #[test]
    fn bad_rules_are_refused() {
        for (routes, public) in [
            (vec!["/a"], vec![]),
            (vec!["/a="], vec![]),
            (vec!["a=s"], vec![]),
            (vec!["/a=s"], vec!["/a"]),
            (vec![], vec!["/p", "/p/"]),
        ] {
            assert!(
                Policy::new(&[], &strings(&routes), &strings(&public)).is_err(),
                "{routes:?} {public:?}"
            );
        }
    }

    #[test]
    fn dot_segments_are_found_plain_or_encoded() {
        for p in ["/a/../b", "/..", "/a/./b", "/a/%2e%2E/b", "/a/.%2e"] {
            assert!(has_dot_segment(p), "{p}");
        }
        for p in ["/a/b", "/a/.b", "/a..b/c", "/"] {
            assert!(!has_dot_segment(p), "{p}");
        }
    }

    #[test]
    fn identity_headers_come_only_from_the_verified_caller() {
        let mut h = HeaderMap::new();
        h.insert("x-m2m-client-id", HeaderValue::from_static("spoofed"));
        h.insert("X-M2M-Scope", HeaderValue::from_static("admin"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer t"));
        h.insert("dpop", HeaderValue::from_static("proof"));
        set_identity(&mut h, None, false).unwrap_or_else(|e| panic!("{e}"));
        assert!(h.is_empty(), "{h:?}");
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer t"));
        set_identity(&mut h, None, true).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(h.len(), 1, "kept with --keep-authorization");
    }
}
