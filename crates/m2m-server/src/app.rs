//! Start-up and wiring: [`Server::start`] binds, loads the registry and keys, opens the replay
//! store, builds the router and serves until [`RunningServer::shutdown`] (or a signal, with
//! [`RunningServer::run_until_signal`]: SIGTERM/ctrl-c stop it, SIGHUP reloads the client
//! registry). [`Server::check`] loads and validates the same things without serving.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::middleware;
use axum::routing::{any, get};
use m2m_core::validate::{DpopValidator, NhsConfig, NhsValidator, RfcConfig, RfcValidator};
use m2m_discovery::{FetchPolicy, HttpClient, JwksFetcher};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use url::Url;

use crate::authorize;
use crate::config::{Profile, ServerConfig};
use crate::dpop::TokenEndpointDpop;
use crate::error::Error;
use crate::issuer::{AccessTokenIssuer, ServerKeys};
use crate::live_registry::{LiveRegistry, Reloaded};
use crate::metrics::Metrics;
use crate::paths::{AUTHORIZE_PATH, INTROSPECT_PATH, JWKS_PATH, METADATA_PATH, TOKEN_PATH};
use crate::ratelimit::RateLimiter;
use crate::registry::Registry;
use crate::replay;
use crate::request_id::request_id;
use crate::response::oauth_not_found;
use crate::state::AppState;
use crate::{health, introspect, metadata, metrics, token};

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
        let token_url = format!("{issuer}{TOKEN_PATH}");

        let registry =
            Registry::load_with_secrets(&config.clients_file, config.secrets_file.as_deref())?;
        warn_if_empty(&registry, &config);
        let registry = LiveRegistry::new(
            &config.clients_file,
            config.secrets_file.as_deref(),
            registry,
        );
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
        let http = HttpClient::with_user_agent(
            policy.timeout(),
            concat!("m2m-server/", env!("CARGO_PKG_VERSION")),
        )
        .map_err(|e| Error::Config(format!("cannot build the JWKS HTTP client: {e}")))?;
        let trust_keys = crate::trust::keys::TrustKeys::new(http.clone());
        let fetcher = JwksFetcher::with_http(http, policy, Arc::clone(&config.clock));

        let mut rfc_config = RfcConfig::new(issuer.clone(), token_url.clone());
        rfc_config.set_audience(config.audience);
        // Descriptions stay detailed inside: the log needs the precise reason; the HTTP layer
        // makes them opaque when configured (see `response`).
        let state = Arc::new(AppState {
            tokens: AccessTokenIssuer::new(keys, issuer.clone()),
            rfc: RfcValidator::new(rfc_config),
            nhs: NhsValidator::new(NhsConfig::new(token_url.clone())),
            dpop: TokenEndpointDpop {
                validator: DpopValidator::default(),
                nonces: config
                    .dpop_nonce
                    .then(crate::dpop_nonce::NonceSource::generate)
                    .transpose()?,
            },
            issuer: issuer.clone(),
            token_url,
            registry,
            fetcher,
            trust_keys,
            replay,
            limiter: RateLimiter::new(),
            refusal_log: crate::log_limit::LogLimiter::new(
                crate::log_limit::REFUSAL_LOG_LINES_PER_SECOND,
            ),
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
        let task = tokio::spawn(crate::serve::serve_with_limits(
            listener,
            app,
            limits,
            async {
                let _ = rx.await;
            },
        ));
        Ok(RunningServer {
            local_addr,
            issuer,
            state,
            shutdown: Some(tx),
            task,
        })
    }

    /// Loads and validates everything [`Server::start`] would — settings, issuer, client
    /// registry, signing keys, replay-store spec — and returns a summary, without binding,
    /// serving, or writing anything (missing signing keys are reported as "would be
    /// generated"). For CI and a service manager's pre-start check (`m2m serve --check`).
    pub fn check(config: &ServerConfig) -> Result<CheckReport, Error> {
        config.check()?;
        let issuer = normalise_issuer(config.issuer.as_deref(), config.listen)?;
        let registry =
            Registry::load_with_secrets(&config.clients_file, config.secrets_file.as_deref())?;
        let signing_kid = ServerKeys::check(&config.data_dir)?;
        replay::check(&config.replay_store, &config.data_dir)?;
        Ok(CheckReport {
            issuer,
            clients: registry.len(),
            signing_kid,
        })
    }
}

/// What [`Server::check`] found.
#[non_exhaustive]
#[derive(Clone, Debug)]
pub struct CheckReport {
    /// The issuer identifier the server would use.
    pub issuer: String,
    /// Clients in the registry.
    pub clients: usize,
    /// The current signing key's `kid`; `None` when the server would generate one on start.
    pub signing_kid: Option<String>,
}

/// A server with no clients can only refuse: almost always a wrong `--clients` path or a file not
/// yet filled, so say so rather than start silently.
fn warn_if_empty(registry: &Registry, config: &ServerConfig) {
    if registry.is_empty() {
        tracing::warn!(
            clients_file = %config.clients_file.display(),
            "the client registry is empty: every token request will be refused; add clients with `m2m clients add` and reload (SIGHUP)"
        );
    }
}

/// A server running in the background of the current Tokio runtime.
#[derive(Debug)]
pub struct RunningServer {
    local_addr: SocketAddr,
    issuer: String,
    state: Arc<AppState>,
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
        format!("{}{TOKEN_PATH}", self.issuer)
    }

    /// Number of clients in the registry answering now.
    pub fn client_count(&self) -> usize {
        self.state.registry.len()
    }

    /// Reloads the client registry file. Atomic: requests see the old registry or the new one,
    /// never a mix; a file that does not load or validate keeps the old registry answering (the
    /// error says why).
    pub fn reload_clients(&self) -> Result<Reloaded, Error> {
        let reloaded = self.state.registry.reload()?;
        if reloaded.after == 0 {
            warn_if_empty(&self.state.registry.current(), &self.state.config);
        }
        Ok(reloaded)
    }

    /// Serves until SIGTERM or ctrl-c, then shuts down gracefully. SIGHUP reloads the client
    /// registry ([`RunningServer::reload_clients`]) and logs what happened; a bad file is logged
    /// and the old registry keeps answering.
    ///
    /// The signal handlers are installed when this is called (inside the runtime), not when the
    /// future is first polled: a caller that announces the server between the two has it already
    /// immune to a SIGHUP sent in reaction to the announcement.
    pub fn run_until_signal(self) -> impl Future<Output = Result<(), Error>> + Send {
        let mut signals = Signals::install();
        async move {
            loop {
                match signals.next().await {
                    Signal::Stop => break,
                    Signal::Reload => match self.reload_clients() {
                        Ok(r) => tracing::info!(
                            clients = r.after,
                            before = r.before,
                            "SIGHUP: client registry reloaded"
                        ),
                        Err(e) => tracing::error!(
                            error = %e,
                            clients = self.client_count(),
                            "SIGHUP: client registry NOT reloaded; the previous one stays in use"
                        ),
                    },
                }
            }
            tracing::info!("signal received: shutting down gracefully");
            self.shutdown().await
        }
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

/// Starts the server and runs it until SIGTERM or ctrl-c (SIGHUP reloads the client registry),
/// then shuts down gracefully.
pub async fn run_until_signal(config: ServerConfig) -> Result<(), Error> {
    Server::start(config).await?.run_until_signal().await
}

/// What a signal asks of the server.
enum Signal {
    /// SIGTERM or ctrl-c.
    Stop,
    /// SIGHUP.
    Reload,
}

/// The signal streams the server listens to, installed once: tokio keeps a handler installed
/// for the life of the process, so a SIGHUP never falls back to the default (terminate).
struct Signals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    hup: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn install() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Signals {
                term: signal(SignalKind::terminate()).ok(),
                hup: signal(SignalKind::hangup()).ok(),
            }
        }
        #[cfg(not(unix))]
        Signals {}
    }

    async fn next(&mut self) -> Signal {
        let ctrl_c = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        #[cfg(unix)]
        {
            async fn recv(s: Option<&mut tokio::signal::unix::Signal>) {
                // A stream that ended (never on a live runtime) must not fire forever.
                let delivered = match s {
                    Some(s) => s.recv().await.is_some(),
                    None => false,
                };
                if !delivered {
                    std::future::pending::<()>().await;
                }
            }
            tokio::select! {
                () = ctrl_c => Signal::Stop,
                () = recv(self.term.as_mut()) => Signal::Stop,
                () = recv(self.hup.as_mut()) => Signal::Reload,
            }
        }
        #[cfg(not(unix))]
        {
            ctrl_c.await;
            Signal::Stop
        }
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
        .route(TOKEN_PATH, any(token::handle))
        .route(INTROSPECT_PATH, any(introspect::handle))
        .route(AUTHORIZE_PATH, any(authorize::refuse))
        .route("/oauth2/{*rest}", any(oauth_not_found))
        .route(METADATA_PATH, get(metadata::authorization_server))
        .route(
            &format!("{METADATA_PATH}/{{*issuer_path}}"),
            get(metadata::authorization_server_path_inserted),
        )
        .route(JWKS_PATH, get(metadata::jwks))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::handle))
        .fallback(|| async { StatusCode::NOT_FOUND })
        .layer(middleware::from_fn(request_id))
        .with_state(state)
}
