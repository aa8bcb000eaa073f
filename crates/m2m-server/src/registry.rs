//! The client registry: a human-edited TOML file of `[[client]]` tables, loaded once at start-up
//! into [`Registry`], with errors that name the file and line.
//!
//! ```toml
//! [[client]]
//! id = "billing-service"
//! auth_method = "private_key_jwt"   # how it authenticates; the default and the only one today
//! jwks_uri = "https://billing.example/.well-known/jwks.json"  # or jwks_file = "…" or [client.jwks]
//! algs = ["RS512"]
//! scopes = ["invoices:read"]
//! audience = "https://api.example"   # access-token `aud`; default: the issuer
//! resources = ["https://api.example/mcp"]  # RFC 8707 `resource` values it may ask for (→ `aud`)
//! token_lifetime = 600               # seconds
//! rate_limit = 300                   # token requests per minute; 0 = unlimited
//! ```
//!
//! Unknown fields are refused (a typo such as `scope =` must not silently grant nothing), and so
//! are JWKS holding private members: a registry is public configuration and a private key there
//! means it has leaked.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use m2m_core::alg::Algorithm;
use m2m_core::ids::{KeyEntry, KeySet};
use m2m_discovery::{UrlPolicy, parse_jwks};
use serde::Deserialize;
use url::Url;

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
}

impl AuthMethod {
    /// Every method this server supports, in the order metadata lists them.
    pub const ALL: [AuthMethod; 1] = [AuthMethod::PrivateKeyJwt];

    /// The RFC 7591 name, as written in the registry and in metadata.
    pub fn name(self) -> &'static str {
        match self {
            AuthMethod::PrivateKeyJwt => "private_key_jwt",
        }
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
            "client_secret_basic"
            | "client_secret_post"
            | "client_secret_jwt"
            | "tls_client_auth"
            | "self_signed_tls_client_auth" => {
                format!("{s:?} is not supported by this server yet (supported: {supported})")
            }
            _ => format!("unknown method {s:?} (supported: {supported})"),
        })
    }
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
    /// 1-based line of its `[[client]]` table, for messages.
    pub line: usize,
}

/// All registered clients, by id.
#[derive(Clone, Debug, Default)]
pub struct Registry {
    clients: HashMap<String, Arc<Client>>,
}

impl Registry {
    /// Loads and validates the registry file. A missing file is an error (a server with no
    /// clients is almost certainly misconfigured); an empty file is a valid, empty registry.
    pub fn load(path: &Path) -> Result<Registry, RegistryError> {
        let text = std::fs::read_to_string(path).map_err(|source| RegistryError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Registry::parse(&text, path)
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
        Ok(Registry { clients })
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
        let algs = match &self.algs {
            Some(names) => {
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
            None => implied_algs,
        };
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
            line,
        })
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
