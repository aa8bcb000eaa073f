//! The client registry: a human-edited TOML file of `[[client]]` tables, loaded once at start-up
//! into [`Registry`], with errors that name the file and line.
//!
//! ```toml
//! [[client]]
//! id = "billing-service"
//! auth_method = "private_key_jwt"   # or client_secret_basic, client_secret_post, client_secret_jwt
//! jwks_uri = "https://billing.example/.well-known/jwks.json"  # or jwks_file = "…" or [client.jwks]
//! algs = ["RS512"]
//! scopes = ["invoices:read"]
//! audience = "https://api.example"   # access-token `aud`; default: the issuer
//! resources = ["https://api.example/mcp"]  # RFC 8707 `resource` values it may ask for (→ `aud`)
//! token_lifetime = 600               # seconds
//! rate_limit = 300                   # token requests per minute; 0 = unlimited
//! dpop = "required"                  # DPoP-bound tokens only (RFC 9449); default "allowed"
//! ```
//!
//! A `client_secret_basic`/`client_secret_post` client stores only SHA-256 verifiers of its
//! secrets (two during a rotation; `expires` in Unix seconds ends the old one), never a secret:
//!
//! ```toml
//! [[client]]
//! id = "reports"
//! auth_method = "client_secret_basic"
//! secret_verifiers = [{ sha256 = "9f86d0…", expires = 1767225600 }, { sha256 = "2c26b4…" }]
//! ```
//!
//! A `client_secret_jwt` client needs the secret itself to check the HMAC, so its secrets live
//! in a separate secrets file (`secrets.toml` beside the registry unless configured; mode 0600,
//! refused when group or others can read it), and its `algs` are HS256/HS384/HS512:
//!
//! ```toml
//! [[secret]]
//! client = "legacy-batch"
//! value = "…at least 32 bytes for HS256…"
//! expires = 1767225600   # optional
//! ```
//!
//! The same file holds the `[[trust]]` entries of trusted workload issuers (Kubernetes, SPIFFE,
//! GitHub Actions), parsed by `trust/config.rs` and checked here against the clients they map to
//! (docs/server.md, `## Trusted workload issuers`).
//!
//! Unknown fields are refused (a typo such as `scope =` must not silently grant nothing), and so
//! are JWKS holding private members: a registry is public configuration and a private key there
//! means it has leaked.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use m2m_core::alg::Algorithm;
use m2m_core::clock::UnixTime;
use m2m_core::hmac::HmacAlg;
use m2m_core::ids::{KeyEntry, KeySet};
use m2m_core::secret::{ClientSecret, SecretVerifier};
use m2m_discovery::{UrlPolicy, parse_jwks};
use serde::Deserialize;
use url::Url;

use crate::dpop::DpopPolicy;

/// Longest `token_lifetime` accepted: a day. Access tokens are bearer credentials; longer ones
/// are a configuration mistake.
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// Algorithms pinned for a client whose keys are not known at load time (`jwks_uri`) and that
/// lists no `algs`: RS512, the NHS default that `m2m keygen` produces.
pub const DEFAULT_REMOTE_ALGS: [Algorithm; 1] = [Algorithm::Rs512];

/// Why the registry could not be loaded or edited. Messages name the file and, when known, the
/// line of the offending client.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown/mistyped fields (the message carries line and
    /// column).
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// toml's message, with line and column.
        message: String,
    },
    /// A client entry is inconsistent.
    #[error("{path}:{line}: client {client:?}: {message}")]
    Invalid {
        /// The registry file.
        path: PathBuf,
        /// 1-based line of the client's `[[client]]` table (0 when unknown).
        line: usize,
        /// The client id.
        client: String,
        /// What is wrong.
        message: String,
    },
    /// A `[[trust]]` entry is inconsistent.
    #[error("{path}:{line}: trust {issuer:?}: {message}")]
    InvalidTrust {
        /// The registry file.
        path: PathBuf,
        /// 1-based line of the entry's `[[trust]]` table.
        line: usize,
        /// The issuer as written.
        issuer: String,
        /// What is wrong.
        message: String,
    },
    /// An edit was refused (duplicate id, unknown id).
    #[error("{path}: {message}")]
    Edit {
        /// The registry file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// How a client authenticates at the token and introspection endpoints: the registry's
/// `auth_method` (RFC 7591 `token_endpoint_auth_method`). The server checks a request against the
/// method its client is registered for, never one the request picks.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum AuthMethod {
    /// A JWT signed with the client's private key (RFC 7523 §2.2, RFC 7591 `private_key_jwt`).
    #[default]
    PrivateKeyJwt,
    /// The secret in an `Authorization: Basic` header (RFC 6749 §2.3.1).
    ClientSecretBasic,
    /// The secret as the `client_secret` form field (RFC 6749 §2.3.1).
    ClientSecretPost,
    /// A JWT MACed with the secret (OIDC Core §9, HS256/384/512).
    ClientSecretJwt,
}

impl AuthMethod {
    /// Every method this server supports, in the order metadata lists them.
    pub const ALL: [AuthMethod; 4] = [
        AuthMethod::PrivateKeyJwt,
        AuthMethod::ClientSecretBasic,
        AuthMethod::ClientSecretPost,
        AuthMethod::ClientSecretJwt,
    ];

    /// The RFC 7591 name, as written in the registry and in metadata.
    pub fn name(self) -> &'static str {
        match self {
            AuthMethod::PrivateKeyJwt => "private_key_jwt",
            AuthMethod::ClientSecretBasic => "client_secret_basic",
            AuthMethod::ClientSecretPost => "client_secret_post",
            AuthMethod::ClientSecretJwt => "client_secret_jwt",
        }
    }

    /// Whether the server stores a verifier (not the secret) for this method.
    pub fn uses_verifier(self) -> bool {
        matches!(
            self,
            AuthMethod::ClientSecretBasic | AuthMethod::ClientSecretPost
        )
    }
}

impl std::fmt::Display for AuthMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for AuthMethod {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(method) = AuthMethod::ALL.into_iter().find(|m| m.name() == s) {
            return Ok(method);
        }
        let supported = AuthMethod::ALL.map(AuthMethod::name).join(", ");
        Err(match s {
            "tls_client_auth" | "self_signed_tls_client_auth" => {
                format!("{s:?} is not supported by this server yet (supported: {supported})")
            }
            _ => format!("unknown method {s:?} (supported: {supported})"),
        })
    }
}

/// One stored secret verifier (`client_secret_basic`/`client_secret_post`).
#[derive(Clone, Debug)]
pub struct StoredVerifier {
    /// SHA-256 of the secret.
    pub verifier: SecretVerifier,
    /// When it stops being accepted (set by a rotation with an expiry); `None`: until retired.
    pub expires: Option<UnixTime>,
}

/// One stored `client_secret_jwt` secret, from the secrets file.
#[derive(Clone, Debug)]
pub struct StoredSecret {
    /// The secret (redacted in `Debug`).
    pub secret: ClientSecret,
    /// When it stops being accepted; `None`: until retired.
    pub expires: Option<UnixTime>,
}

/// Whether a stored credential with this expiry is still valid at `now`.
pub(crate) fn live(expires: Option<UnixTime>, now: UnixTime) -> bool {
    expires.is_none_or(|e| now < e)
}

/// Where a client's verification keys come from.
#[derive(Clone, Debug)]
pub enum ClientKeySource {
    /// Keys known at load time (inline `jwks` or `jwks_file`), each with its `kid`.
    Static(KeySet),
    /// Keys fetched from the client's `jwks_uri`, cached.
    Remote(Url),
    /// No keys registered: every assertion fails (NHS: 403 "register a public key").
    Unregistered,
}

/// One registered client, validated.
#[derive(Clone, Debug)]
pub struct Client {
    /// The client id (`iss` = `sub` of its assertions).
    pub id: String,
    /// How it authenticates.
    pub auth_method: AuthMethod,
    /// Its verification keys.
    pub keys: ClientKeySource,
    /// The `alg` values its assertions may use (pinned: docs/protocol.md, rfc check 16).
    pub algs: Vec<Algorithm>,
    /// The scopes it may be granted; a request without `scope` gets all of them.
    pub scopes: Vec<String>,
    /// `aud` of its access tokens; `None`: the issuer.
    pub audience: Option<String>,
    /// RFC 8707 resource indicators it may ask for; a token asked for one has it as `aud`.
    pub resources: Vec<String>,
    /// Its access-token lifetime; `None`: the server default.
    pub token_lifetime: Option<Duration>,
    /// Its rate limit per minute; `None`: the server default; `Some(0)`: unlimited.
    pub rate_limit: Option<u32>,
    /// Verifiers of its secrets (`client_secret_basic`/`client_secret_post`; two during a
    /// rotation).
    pub secret_verifiers: Vec<StoredVerifier>,
    /// Its `client_secret_jwt` secrets, from the secrets file.
    pub hmac_secrets: Vec<StoredSecret>,
    /// The HMAC algorithms its `client_secret_jwt` assertions may use.
    pub hmac_algs: Vec<HmacAlg>,
    /// 1-based line of its `[[client]]` table, for messages.
    pub line: usize,
    /// Whether its tokens must be DPoP-bound (`dpop`, or `dpop_bound_access_tokens = true`).
    pub dpop: DpopPolicy,
}

/// All registered clients, by id.
#[derive(Clone, Debug, Default)]
pub struct Registry {
    clients: HashMap<String, Arc<Client>>,
    /// The `[[trust]]` entries, in file order (the first matching entry of an issuer wins).
    trusts: Vec<Arc<crate::trust::Trust>>,
}

impl Registry {
    /// Loads and validates the registry file. A missing file is an error (a server with no
    /// clients is almost certainly misconfigured); an empty file is a valid, empty registry.
    /// `client_secret_jwt` secrets come from `secrets.toml` beside it ([`Registry::load_with_secrets`]).
    pub fn load(path: &Path) -> Result<Registry, RegistryError> {
        Registry::load_with_secrets(path, None)
    }

    /// [`load`](Self::load) with the `client_secret_jwt` secrets file given (`None`:
    /// `secrets.toml` beside the registry). The secrets file is read only when a client uses
    /// `client_secret_jwt`; it must not be readable by group or others.
    pub fn load_with_secrets(
        path: &Path,
        secrets: Option<&Path>,
    ) -> Result<Registry, RegistryError> {
        let text = std::fs::read_to_string(path).map_err(|source| RegistryError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut registry = Registry::parse(&text, path)?;
        if registry
            .clients
            .values()
            .any(|c| c.auth_method == AuthMethod::ClientSecretJwt)
        {
            let secrets_path = secrets
                .map(Path::to_path_buf)
                .unwrap_or_else(|| default_secrets_path(path));
            let mut by_client = crate::secrets_file::load(&secrets_path)?;
            for client in registry.clients.values_mut() {
                if client.auth_method != AuthMethod::ClientSecretJwt {
                    continue;
                }
                let stored = by_client.remove(&client.id).unwrap_or_default();
                let invalid = |message: String| RegistryError::Invalid {
                    path: path.to_path_buf(),
                    line: client.line,
                    client: client.id.clone(),
                    message,
                };
                if stored.is_empty() {
                    return Err(invalid(format!(
                        "client_secret_jwt needs its secret in {} (none found for this client)",
                        secrets_path.display()
                    )));
                }
                for s in &stored {
                    for alg in &client.hmac_algs {
                        alg.check_secret(&s.secret).map_err(|e| {
                            invalid(format!("secret in {}: {e}", secrets_path.display()))
                        })?;
                    }
                }
                Arc::make_mut(client).hmac_secrets = stored;
            }
        }
        Ok(registry)
    }

    /// Parses registry text; `path` is used for messages and to resolve relative `jwks_file`s.
    pub fn parse(text: &str, path: &Path) -> Result<Registry, RegistryError> {
        let raw: RawFile = toml::from_str(text).map_err(|e| RegistryError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        let base = path.parent().unwrap_or_else(|| Path::new("."));
        let mut clients = HashMap::new();
        for spanned in raw.client {
            let line = line_of(text, spanned.span().start);
            let raw_client = spanned.into_inner();
            let client =
                raw_client
                    .validate(base, line)
                    .map_err(|message| RegistryError::Invalid {
                        path: path.to_path_buf(),
                        line,
                        client: raw_client_id(text, line),
                        message,
                    })?;
            if let Some(previous) = clients.get(&client.id) {
                let previous: &Arc<Client> = previous;
                return Err(RegistryError::Invalid {
                    path: path.to_path_buf(),
                    line,
                    client: client.id.clone(),
                    message: format!("duplicate id (first defined at line {})", previous.line),
                });
            }
            clients.insert(client.id.clone(), Arc::new(client));
        }
        let trusts = parse_trusts(text, path, raw.trust, &clients)?;
        Ok(Registry { clients, trusts })
    }

    /// The `[[trust]]` entries, in file order.
    pub fn trusts(&self) -> &[Arc<crate::trust::Trust>] {
        &self.trusts
    }

    /// The `[[trust]]` entries of this issuer (exact string), in file order.
    pub(crate) fn trusts_of(&self, issuer: &str) -> Vec<Arc<crate::trust::Trust>> {
        self.trusts
            .iter()
            .filter(|t| t.issuer == issuer)
            .cloned()
            .collect()
    }

    /// The client with this id.
    pub fn get(&self, id: &str) -> Option<Arc<Client>> {
        self.clients.get(id).cloned()
    }

    /// Number of clients.
    pub fn len(&self) -> usize {
        self.clients.len()
    }

    /// Whether there are no clients.
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    /// Every client, sorted by id.
    pub fn clients(&self) -> Vec<Arc<Client>> {
        let mut all: Vec<_> = self.clients.values().cloned().collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    }
}

/// Validates the `[[trust]]` tables (`trust/config.rs`) against the clients they map to.
fn parse_trusts(
    text: &str,
    path: &Path,
    raw: Vec<toml::Spanned<crate::trust::config::RawTrust>>,
    clients: &HashMap<String, Arc<Client>>,
) -> Result<Vec<Arc<crate::trust::Trust>>, RegistryError> {
    let base = path.parent().unwrap_or_else(|| Path::new("."));
    let invalid = |line, issuer: &str, message| RegistryError::InvalidTrust {
        path: path.to_path_buf(),
        line,
        issuer: issuer.to_owned(),
        message,
    };
    let mut trusts = Vec::new();
    for spanned in raw {
        let line = line_of(text, spanned.span().start);
        let raw = spanned.into_inner();
        let trust = raw
            .validate(base, line)
            .map_err(|m| invalid(line, raw.issuer(), m))?;
        if let crate::trust::TrustGrant::Client(id) = &trust.grant
            && !clients.contains_key(id)
        {
            return Err(invalid(
                line,
                raw.issuer(),
                format!("`client_id` {id:?} is not a registered client"),
            ));
        }
        trusts.push(trust);
    }
    crate::trust::config::check_same_keys(&trusts)
        .map_err(|(line, issuer, m)| invalid(line, &issuer, m))?;
    Ok(trusts.into_iter().map(Arc::new).collect())
}

/// Where `client_secret_jwt` secrets live unless configured: `secrets.toml` beside the registry.
pub fn default_secrets_path(clients_file: &Path) -> PathBuf {
    clients_file
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .join("secrets.toml")
}

/// The id as written, for messages about a client whose entry failed validation.
fn raw_client_id(text: &str, line: usize) -> String {
    text.lines()
        .skip(line.saturating_sub(1))
        .take(40)
        .find_map(|l| {
            let l = l.trim();
            let rest = l.strip_prefix("id")?.trim_start().strip_prefix('=')?.trim();
            Some(rest.trim_matches('"').to_owned())
        })
        .unwrap_or_default()
}

/// 1-based line containing byte `offset`.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    client: Vec<toml::Spanned<RawClient>>,
    #[serde(default)]
    trust: Vec<toml::Spanned<crate::trust::config::RawTrust>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClient {
    id: String,
    auth_method: Option<String>,
    jwks: Option<toml::Value>,
    jwks_file: Option<String>,
    jwks_uri: Option<String>,
    algs: Option<Vec<String>>,
    scopes: Option<Vec<String>>,
    audience: Option<String>,
    resources: Option<Vec<String>>,
    token_lifetime: Option<u64>,
    rate_limit: Option<u32>,
    secret_verifiers: Option<Vec<RawVerifier>>,
    dpop: Option<String>,
    dpop_bound_access_tokens: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVerifier {
    sha256: String,
    expires: Option<u64>,
}

impl RawClient {
    fn validate(&self, base: &Path, line: usize) -> Result<Client, String> {
        if self.id.is_empty() || self.id.chars().any(char::is_control) {
            return Err("`id` must be a non-empty string without control characters".to_owned());
        }
        let auth_method = match &self.auth_method {
            None => AuthMethod::default(),
            Some(name) => name
                .parse::<AuthMethod>()
                .map_err(|e| format!("`auth_method`: {e}"))?,
        };
        let sources = [
            self.jwks.is_some(),
            self.jwks_file.is_some(),
            self.jwks_uri.is_some(),
        ];
        if sources.iter().filter(|s| **s).count() > 1 {
            return Err("give only one of `jwks`, `jwks_file` and `jwks_uri`".to_owned());
        }
        let mut implied_algs = DEFAULT_REMOTE_ALGS.to_vec();
        let keys = if let Some(value) = &self.jwks {
            let json = serde_json::to_vec(value).map_err(|e| format!("`jwks`: {e}"))?;
            let parsed = parse_jwks(&json).map_err(|e| format!("`jwks`: {e}"))?;
            implied_algs = parsed.implied_algs;
            ClientKeySource::Static(parsed.keys)
        } else if let Some(file) = &self.jwks_file {
            let full = base.join(file);
            let bytes =
                std::fs::read(&full).map_err(|e| format!("`jwks_file` {}: {e}", full.display()))?;
            let parsed =
                parse_jwks(&bytes).map_err(|e| format!("`jwks_file` {}: {e}", full.display()))?;
            implied_algs = parsed.implied_algs;
            ClientKeySource::Static(parsed.keys)
        } else if let Some(uri) = &self.jwks_uri {
            ClientKeySource::Remote(
                JWKS_URI_POLICY
                    .parse(uri)
                    .map_err(|e| format!("`jwks_uri`: {e}"))?,
            )
        } else {
            ClientKeySource::Unregistered
        };
        let secret_method = auth_method != AuthMethod::PrivateKeyJwt;
        if secret_method && sources.iter().any(|s| *s) {
            return Err(format!(
                "a {auth_method} client has no keys: drop `jwks`, `jwks_file` and `jwks_uri`"
            ));
        }
        let mut hmac_algs = Vec::new();
        let algs = match (&self.algs, auth_method) {
            (_, AuthMethod::ClientSecretBasic | AuthMethod::ClientSecretPost) => {
                if self.algs.is_some() {
                    return Err(format!("a {auth_method} client signs nothing: drop `algs`"));
                }
                Vec::new()
            }
            (names, AuthMethod::ClientSecretJwt) => {
                hmac_algs = match names {
                    None => vec![HmacAlg::Hs256],
                    Some(names) if names.is_empty() => {
                        return Err("`algs` is empty: no assertion could ever be accepted".to_owned());
                    }
                    Some(names) => names
                        .iter()
                        .map(|n| {
                            HmacAlg::from_name(n).ok_or_else(|| {
                                format!("`algs`: a client_secret_jwt client takes HS256, HS384 or HS512, not {n:?}")
                            })
                        })
                        .collect::<Result<Vec<_>, _>>()?,
                };
                Vec::new()
            }
            (Some(names), _) => {
                if names.is_empty() {
                    return Err("`algs` is empty: no assertion could ever be accepted".to_owned());
                }
                names
                    .iter()
                    .map(|n| {
                        Algorithm::from_name(n).ok_or_else(|| {
                            format!("`algs`: unknown or refused algorithm {n:?} (HMAC and `none` are never allowed)")
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?
            }
            (None, _) => implied_algs,
        };
        let mut secret_verifiers = Vec::new();
        for raw in self.secret_verifiers.iter().flatten() {
            secret_verifiers.push(StoredVerifier {
                verifier: SecretVerifier::from_hex(&raw.sha256)
                    .map_err(|e| format!("`secret_verifiers`: {e}"))?,
                expires: raw.expires.map(UnixTime::from_secs),
            });
        }
        if auth_method.uses_verifier() && secret_verifiers.is_empty() {
            return Err(format!(
                "a {auth_method} client needs `secret_verifiers` (add it with `m2m clients add --auth-method {auth_method}`)"
            ));
        }
        if !auth_method.uses_verifier() && !secret_verifiers.is_empty() {
            return Err(format!(
                "`secret_verifiers` is only for client_secret_basic and client_secret_post, not {auth_method}"
            ));
        }
        if let ClientKeySource::Static(keys) = &keys {
            for alg in &algs {
                if !keys
                    .iter()
                    .any(|e: &KeyEntry| e.key.kind().fits(*alg) && e.allows(*alg))
                {
                    return Err(format!(
                        "`algs` lists {alg} but no registered key can verify it"
                    ));
                }
            }
        }
        let mut scopes = self.scopes.clone().unwrap_or_default();
        if let Some(bad) = scopes.iter().find(|s| !is_scope_token(s)) {
            return Err(format!(
                "`scopes`: {bad:?} is not a valid scope token (RFC 6749 §3.3)"
            ));
        }
        // Duplicates dropped, first occurrence kept: the order is the operator's (and the order
        // of the `scope` a request without one is granted).
        let mut seen = HashSet::new();
        scopes.retain(|s| seen.insert(s.clone()));
        let token_lifetime = match self.token_lifetime {
            None => None,
            Some(0) => return Err("`token_lifetime` must be at least 1 second".to_owned()),
            Some(s) if Duration::from_secs(s) > MAX_TOKEN_LIFETIME => {
                return Err(format!("`token_lifetime` {s} s is longer than a day"));
            }
            Some(s) => Some(Duration::from_secs(s)),
        };
        if self.audience.as_deref().is_some_and(str::is_empty) {
            return Err("`audience` is empty".to_owned());
        }
        let resources = self.resources.clone().unwrap_or_default();
        for r in &resources {
            // RFC 8707 §2: an absolute URI without a fragment.
            match Url::parse(r) {
                Ok(u) if u.fragment().is_none() => {}
                _ => {
                    return Err(format!(
                        "`resources`: {r:?} is not an absolute URI without a fragment"
                    ));
                }
            }
        }
        let dpop = self.dpop_policy()?;
        Ok(Client {
            id: self.id.clone(),
            auth_method,
            keys,
            algs,
            scopes,
            audience: self.audience.clone(),
            resources,
            token_lifetime,
            rate_limit: self.rate_limit,
            secret_verifiers,
            hmac_secrets: Vec::new(),
            hmac_algs,
            line,
            dpop,
        })
    }

    /// `dpop` and RFC 9449 §5.2 `dpop_bound_access_tokens` (`true` = `required`); both given,
    /// they must agree.
    fn dpop_policy(&self) -> Result<DpopPolicy, String> {
        let named = self
            .dpop
            .as_deref()
            .map(str::parse::<DpopPolicy>)
            .transpose()
            .map_err(|e| format!("`dpop`: {e}"))?;
        let flagged = self.dpop_bound_access_tokens.map(|bound| {
            if bound {
                DpopPolicy::Required
            } else {
                DpopPolicy::Allowed
            }
        });
        match (named, flagged) {
            (Some(n), Some(f)) if n != f => Err(format!(
                "`dpop = \"{n}\"` contradicts `dpop_bound_access_tokens = {}`; keep one of them",
                f == DpopPolicy::Required
            )),
            (n, f) => Ok(n.or(f).unwrap_or_default()),
        }
    }
}

/// The rule for a registry `jwks_uri` at load: https (plain http only to loopback, for
/// development). A URL without a path is accepted here and refused by the fetcher on each
/// request, because the nhs profile must answer it the way NHS does (403, docs/server.md).
const JWKS_URI_POLICY: UrlPolicy = UrlPolicy::new();

/// RFC 6749 §3.3 scope-token: printable ASCII except space, `"` and `\`.
pub(crate) fn is_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}
