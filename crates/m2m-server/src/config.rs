//! [`ServerConfig`]: every setting of the authorization server, with its defaults (the checks they
//! govern are in docs/protocol.md).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use m2m_core::clock::{Clock, SystemClock};
use m2m_core::validate::AudienceMode;

use crate::error::Error;
use crate::registry::MAX_TOKEN_LIFETIME;

/// Which token-endpoint behaviour the server emulates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Profile {
    /// RFC 6749 / 7523 / 10070, strict (docs/protocol.md, "Client assertion checks (rfc profile)").
    #[default]
    Rfc,
    /// The NHS England API platform: its check order, status codes and exact strings.
    Nhs,
}

impl std::str::FromStr for Profile {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "rfc" => Ok(Profile::Rfc),
            "nhs" => Ok(Profile::Nhs),
            other => Err(format!(
                "unknown profile {other:?} (expected `rfc` or `nhs`)"
            )),
        }
    }
}

/// Default request body cap: a token request is three short fields and an assertion of at most
/// 8 KiB, so 16 KiB is generous and keeps memory per request bounded.
pub const DEFAULT_MAX_BODY_BYTES: usize = 16 * 1024;

/// Default per-client limit: NHS's quota for its identity service (300 token requests/min/app).
pub const DEFAULT_RATE_LIMIT_PER_MINUTE: u32 = 300;

/// Default access-token lifetime: 10 minutes, like NHS (which reports `expires_in` "599").
pub const DEFAULT_ACCESS_TOKEN_LIFETIME: Duration = Duration::from_secs(600);

/// Default time a client has to send a request's headers, and the longest a keep-alive connection
/// may sit idle between requests: a client that holds connections open by trickling bytes
/// (slowloris) costs the server a task and a file descriptor each, so they are closed after it.
/// A token request's headers are a few hundred bytes; 10 s is generous on any link.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Default time a client has to send a request's body once its headers are in (408 after it), for
/// the same reason: at most 16 KiB is expected.
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Default longest a response write may make no progress (the client reads nothing, its TCP
/// window stays shut) before the connection is dropped. hyper's timers do not run while it
/// writes, so without this a client that pipelines requests and never reads holds its connection
/// forever. A token response is a few KiB: 10 s of zero progress is no slow link.
pub const DEFAULT_WRITE_STALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Default longest life of one connection; then it takes no new request and closes once the
/// current one is answered (clients reconnect transparently). Bounds what any one connection can
/// hold however it behaves, and spreads long-lived clients across restarted instances.
pub const DEFAULT_MAX_CONNECTION_LIFETIME: Duration = Duration::from_secs(300);

/// Default time a graceful shutdown waits for open connections before dropping them: a restart
/// (the key-rotation procedure) must not hang on one client that stopped reading. In-flight token
/// requests take milliseconds.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// Default most connections one peer IP address may hold at once. Each costs a file descriptor;
/// without a cap one address can use up the process's descriptors. 256 is far above what one
/// service's connection pool opens, yet far below the usual descriptor limit.
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 256;

/// Everything [`crate::Server::start`] needs. Build with [`ServerConfig::new`] and change fields.
#[non_exhaustive]
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Where to listen; `127.0.0.1:0` picks a free port (tests, `m2m demo`).
    pub listen: SocketAddr,
    /// The external base URL (RFC 8414 issuer identifier). The token endpoint is
    /// `{issuer}/oauth2/token`. `None`: `http://{bound address}`, for local use.
    pub issuer: Option<String>,
    /// The client registry (TOML).
    pub clients_file: PathBuf,
    /// The `client_secret_jwt` secrets file; `None`: `secrets.toml` beside `clients_file`.
    pub secrets_file: Option<PathBuf>,
    /// Replay store spec: `sqlite` (default, in `data_dir`), `sqlite:PATH`, `memory`, `redis://…`.
    pub replay_store: String,
    /// rfc or nhs.
    pub profile: Profile,
    /// Where the server keeps its keys and the SQLite replay file.
    pub data_dir: PathBuf,
    /// Server-wide per-client limit (token requests per minute); `0` turns limiting off.
    /// A client's own `rate_limit` in the registry overrides it.
    pub rate_limit_per_minute: u32,
    /// Access-token lifetime unless the client sets `token_lifetime`.
    pub access_token_lifetime: Duration,
    /// Which `aud` values client assertions may carry (rfc profile).
    pub audience: AudienceMode,
    /// Send generic `error_description`s (the precise reason is still logged).
    pub opaque_errors: bool,
    /// Requests with a larger body get 413.
    pub max_body_bytes: usize,
    /// How long a client may take to send a request's headers, and how long an idle keep-alive
    /// connection stays open; then the connection is closed.
    pub header_read_timeout: Duration,
    /// How long a client may take to send the body of a token or introspection request once its
    /// headers are in; then 408.
    pub body_read_timeout: Duration,
    /// How long a response write may make no progress (the client does not read) before the
    /// connection is dropped.
    pub write_stall_timeout: Duration,
    /// How long one connection may live; then it answers the request in flight and closes.
    pub max_connection_lifetime: Duration,
    /// How long a graceful shutdown waits for open connections; then they are dropped.
    pub shutdown_timeout: Duration,
    /// Most connections one peer IP address may hold at once; more are closed unanswered. `0`
    /// turns the cap off (behind a proxy every client has the proxy's address).
    pub max_connections_per_ip: usize,
    /// The clock for every time decision (tests inject a `ManualClock`).
    pub clock: Arc<dyn Clock>,
    /// Require a server nonce in DPoP proofs at the token endpoint (RFC 9449 §8; rfc profile):
    /// stateless, rotating, the current and the previous window accepted.
    pub dpop_nonce: bool,
}

impl ServerConfig {
    /// A configuration with the defaults: rfc profile on `127.0.0.1:8080`, SQLite replay store in
    /// `./m2m-data`, 300 requests/min per client, 600 s tokens, issuer-only `aud`.
    pub fn new(clients_file: impl Into<PathBuf>) -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            issuer: None,
            clients_file: clients_file.into(),
            secrets_file: None,
            replay_store: "sqlite".to_owned(),
            profile: Profile::Rfc,
            data_dir: PathBuf::from("./m2m-data"),
            rate_limit_per_minute: DEFAULT_RATE_LIMIT_PER_MINUTE,
            access_token_lifetime: DEFAULT_ACCESS_TOKEN_LIFETIME,
            audience: AudienceMode::Issuer,
            opaque_errors: false,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            body_read_timeout: DEFAULT_BODY_READ_TIMEOUT,
            write_stall_timeout: DEFAULT_WRITE_STALL_TIMEOUT,
            max_connection_lifetime: DEFAULT_MAX_CONNECTION_LIFETIME,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            max_connections_per_ip: DEFAULT_MAX_CONNECTIONS_PER_IP,
            clock: Arc::new(SystemClock),
            dpop_nonce: false,
        }
    }

    /// Refuses settings the server cannot honour, before it binds: an access-token lifetime
    /// outside `1..=`[`MAX_TOKEN_LIFETIME`] (the registry's bound for a client's own lifetime).
    pub(crate) fn check(&self) -> Result<(), Error> {
        let lifetime = self.access_token_lifetime;
        if lifetime < Duration::from_secs(1) || lifetime > MAX_TOKEN_LIFETIME {
            return Err(Error::Config(format!(
                "access-token lifetime {} s is outside 1..={} s",
                lifetime.as_secs(),
                MAX_TOKEN_LIFETIME.as_secs()
            )));
        }
        if self.dpop_nonce && self.profile == Profile::Nhs {
            return Err(Error::Config(
                "DPoP nonces are for the rfc profile: the nhs profile has no DPoP, like NHS"
                    .to_owned(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_token_lifetime_is_bounded_like_the_registry() {
        let mut config = ServerConfig::new("clients.toml");
        assert!(config.check().is_ok());
        for secs in [0, MAX_TOKEN_LIFETIME.as_secs() + 1, u64::MAX] {
            config.access_token_lifetime = Duration::from_secs(secs);
            let err = config.check().expect_err("out of range");
            assert!(err.to_string().contains("1..=86400"), "{err}");
        }
        config.access_token_lifetime = MAX_TOKEN_LIFETIME;
        assert!(config.check().is_ok());
    }
}
