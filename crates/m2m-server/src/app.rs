//! Start-up and wiring: [`Server::start`] binds, loads the registry and keys, opens the replay
//! store, builds the router and serves until [`RunningServer::shutdown`] (or a signal, with
//! [`run_until_signal`]).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use m2m_core::validate::{NhsConfig, NhsValidator, RfcConfig, RfcValidator};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::Instrument;
use url::Url;

use crate::config::{Profile, ServerConfig};
use crate::error::Error;
use crate::issuer::{AccessTokenIssuer, ServerKeys};
use crate::jwks_fetch::{FetchPolicy, JwksFetcher};
use crate::metrics::Metrics;
use crate::ratelimit::RateLimiter;
use crate::registry::Registry;
use crate::replay::{self, ReplayStore};
use crate::response::{RequestId, ordered};
use crate::{health, introspect, metadata, token};

/// Everything a request handler needs, shared by all requests.
#[derive(Debug)]
pub(crate) struct AppState {
    pub(crate) config: ServerConfig,
    /// The issuer identifier (no trailing slash).
    pub(crate) issuer: String,
    pub(crate) token_url: String,
    pub(crate) registry: Registry,
    pub(crate) fetcher: JwksFetcher,
    pub(crate) tokens: AccessTokenIssuer,
    pub(crate) replay: Arc<dyn ReplayStore>,
    pub(crate) limiter: RateLimiter,
    pub(crate) metrics: Metrics,
    pub(crate) rfc: RfcValidator,
    pub(crate) nhs: NhsValidator,
}

/// The authorization server.
#[derive(Debug)]
pub struct Server;

impl Server {
    /// Binds `config.listen`, loads everything and starts serving in the background.
    pub async fn start(config: ServerConfig) -> Result<RunningServer, Error> {
        config.check()?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| Error::Io {
                context: format!("cannot listen on {}", config.listen),
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| Error::Io {
            context: "cannot read the bound address".to_owned(),
            source,
        })?;
        let issuer = normalise_issuer(config.issuer.as_deref(), local_addr)?;
        let token_url = format!("{issuer}/oauth2/token");

        let registry = Registry::load(&config.clients_file)?;
        std::fs::create_dir_all(&config.data_dir).map_err(|source| Error::Io {
            context: format!("cannot create data dir {}", config.data_dir.display()),
            source,
        })?;
        let keys = ServerKeys::load_or_generate(&config.data_dir)?;
        let replay = replay::open(&config.replay_store, &config.data_dir)?;
        let policy = match config.profile {
            Profile::Rfc => FetchPolicy::default(),
            Profile::Nhs => FetchPolicy::nhs(),
        };
        let fetcher = JwksFetcher::new(policy, Arc::clone(&config.clock))
            .map_err(|e| Error::Config(format!("cannot build the JWKS HTTP client: {e}")))?;

        let mut rfc_config = RfcConfig::new(issuer.clone(), token_url.clone());
        rfc_config.audience = config.audience;
        // Descriptions stay detailed inside: the log needs the precise reason; the HTTP layer
        // makes them opaque when configured (see `response`).
        rfc_config.opaque_errors = false;
        let state = Arc::new(AppState {
            tokens: AccessTokenIssuer::new(keys, issuer.clone()),
            rfc: RfcValidator::new(rfc_config),
            nhs: NhsValidator::new(NhsConfig::new(token_url.clone())),
            issuer: issuer.clone(),
            token_url,
            registry,
            fetcher,
            replay,
            limiter: RateLimiter::new(),
            metrics: Metrics::new(),
            config,
        });
        tracing::info!(
            %local_addr, issuer = %state.issuer, profile = ?state.config.profile, clients = state.registry.len(),
            replay_store = state.replay.kind(), signing_kid = state.tokens.keys().current_kid(),
            "m2m authorization server listening"
        );

        let app = router(Arc::clone(&state));
        let (tx, rx) = oneshot::channel::<()>();
        let limits = crate::serve::ConnectionLimits::from_config(&state.config);
        let task = tokio::spawn(crate::serve::serve(listener, app, limits, rx));
        Ok(RunningServer {
            local_addr,
            issuer,
            shutdown: Some(tx),
            task,
        })
    }
}

/// A server running in the background of the current Tokio runtime.
#[derive(Debug)]
pub struct RunningServer {
    local_addr: SocketAddr,
    issuer: String,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl RunningServer {
    /// The bound address (the real port when `listen` had port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The issuer identifier.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The token endpoint URL (the `aud` NHS-profile clients sign for).
    pub fn token_url(&self) -> String {
        format!("{}/oauth2/token", self.issuer)
    }

    /// Stops accepting connections, lets in-flight requests finish, and waits for that — at most
    /// `shutdown_timeout`, then the connections still open are dropped.
    pub async fn shutdown(mut self) -> Result<(), Error> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.join().await
    }

    /// Waits until the server stops (after [`RunningServer::shutdown`] from elsewhere or an I/O
    /// failure). Dropping this handle does not stop the server; shutting down does.
    pub async fn wait(mut self) -> Result<(), Error> {
        self.join().await
    }

    /// A sender that triggers graceful shutdown, for callers that keep `wait`ing on the handle.
    pub fn shutdown_handle(&mut self) -> Option<oneshot::Sender<()>> {
        self.shutdown.take()
    }

    async fn join(&mut self) -> Result<(), Error> {
        match (&mut self.task).await {
            Ok(result) => result.map_err(|source| Error::Io {
                context: "server failed".to_owned(),
                source,
            }),
            Err(join) => Err(Error::Io {
                context: "server task failed".to_owned(),
                source: std::io::Error::other(join),
            }),
        }
    }
}

/// Starts the server and runs it until SIGTERM or ctrl-c, then shuts down gracefully.
pub async fn run_until_signal(config: ServerConfig) -> Result<(), Error> {
    let server = Server::start(config).await?;
    shutdown_signal().await;
    tracing::info!("signal received: shutting down gracefully");
    server.shutdown().await
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

/// The issuer identifier: given (http(s), no query or fragment, trailing `/` removed) or
/// `http://{bound address}`.
fn normalise_issuer(issuer: Option<&str>, local_addr: SocketAddr) -> Result<String, Error> {
    let Some(issuer) = issuer else {
        return Ok(format!("http://{local_addr}"));
    };
    let url = Url::parse(issuer)
        .map_err(|e| Error::Config(format!("issuer {issuer:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(Error::Config(format!(
            "issuer {issuer:?} must be an https URL"
        )));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(Error::Config(format!(
            "issuer {issuer:?} must not have a query or fragment (RFC 8414 §2)"
        )));
    }
    Ok(issuer.trim_end_matches('/').to_owned())
}

fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/oauth2/token", any(token::handle))
        .route("/oauth2/introspect", any(introspect::handle))
        .route("/oauth2/{*rest}", any(oauth_not_found))
        .route(
            "/.well-known/oauth-authorization-server",
            get(metadata::authorization_server),
        )
        .route("/.well-known/jwks.json", get(metadata::jwks))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics))
        .fallback(|| async { StatusCode::NOT_FOUND })
        .layer(middleware::from_fn(request_id))
        .with_state(state)
}

/// Request ids: a random per-process prefix and a counter. Unique across restarts and instances
/// (the prefix), and cheap: a CSPRNG UUID per request cost ~0.6% of the token endpoint's CPU
/// under load. They correlate log lines; they authorize nothing, so predictability is harmless.
fn next_request_id() -> String {
    static PREFIX: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| m2m_core::assertion::new_jti()[..8].to_owned());
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{prefix}-{n:012}")
}

/// Gives every request an id, records it on a tracing span (so every log line of the request
/// carries it) and returns it in `X-Request-Id`.
async fn request_id(mut request: Request, next: Next) -> Response {
    let id = next_request_id();
    let header = HeaderValue::from_str(&id).ok();
    // Only the id: the span is live at info (m2m serve's default) and the fmt subscriber formats
    // its fields on every request; method and path are on the refusal lines that need them.
    let span = tracing::info_span!("request", request_id = %id);
    request.extensions_mut().insert(RequestId(id));
    let mut response = next.run(request).instrument(span).await;
    if let Some(v) = header {
        response.headers_mut().insert("x-request-id", v);
    }
    response
}

/// Unknown paths under `/oauth2/`: NHS's 404 body (reference row 45) in the nhs profile.
async fn oauth_not_found(
    State(state): State<Arc<AppState>>,
    axum::Extension(id): axum::Extension<RequestId>,
) -> Response {
    match state.config.profile {
        Profile::Nhs => crate::response::json_response(
            StatusCode::NOT_FOUND,
            &ordered(&[
                ("error", "invalid_request".into()),
                ("error_description", "Not Found".into()),
                ("message_id", format!("rrt-{}", id.0).into()),
            ]),
        ),
        Profile::Rfc => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let body = state.metrics.render(state.fetcher.fetch_count());
    (
        [(
            http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}
