//! Turns flags, `M2M_*` variables and a config profile into one set of client settings
//! (flag > env > profile), and from them the signer and audience every client command uses.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use m2m_client::{Endpoint, Profile, TokenUrl, UrlPolicy};
use m2m_core::alg::Algorithm;
use m2m_core::assertion::Audience;
use m2m_core::hmac::HmacAlg;
use m2m_core::nhs::Environment;
use m2m_core::secret::ClientSecret;
use m2m_core::signer::KeySigner;

use crate::cli::{AlgArg, ClientArgs, DpopArgs};
use crate::config_file::{ConfigProfile, expand_tilde, load_profile};
use crate::exit::{CliError, CliResult};
use crate::keyfile;

/// Where assertions go, after resolution: a client [`Endpoint`] (which implies the audience and
/// the profile), or only an issuer whose metadata `m2m token` discovers.
#[derive(Clone, Debug)]
pub(crate) enum Target {
    /// A token endpoint; `issuer`, when given, is the `aud` instead of the endpoint's.
    Endpoint {
        endpoint: Endpoint,
        issuer: Option<String>,
    },
    /// Only an issuer: `aud` = issuer; `m2m token` discovers the token URL.
    Issuer(String),
}

impl Target {
    /// The profile the target implies (NHS: RS512 by default, kid required).
    pub(crate) fn implied_profile(&self) -> Profile {
        match self {
            Target::Endpoint { endpoint, .. } => endpoint.implied_profile(),
            Target::Issuer(_) => Profile::Generic,
        }
    }
}

/// Client settings after flag > env > profile resolution.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) endpoint: Option<Target>,
    pub(crate) client_id: Option<String>,
    pub(crate) key: Option<PathBuf>,
    pub(crate) kid: Option<String>,
    pub(crate) alg: Option<Algorithm>,
    pub(crate) hmac_alg: Option<HmacAlg>,
    pub(crate) auth_method: Option<String>,
    pub(crate) client_secret_file: Option<PathBuf>,
    pub(crate) client_secret_stdin: bool,
    pub(crate) aud: Option<String>,
    pub(crate) lifetime: Option<Duration>,
    pub(crate) scope: Option<String>,
    pub(crate) allow_insecure_http: bool,
    /// A federated assertion source and grant (docs/federation.md), instead of a key or secret.
    pub(crate) federation: crate::federation::Federation,
    /// DPoP as the profile asks (`dpop`, `dpop_key`); the commands that use it apply their
    /// flags over it ([`Settings::apply_dpop_flags`]).
    pub(crate) dpop: Option<DpopChoice>,
}

/// A DPoP key to bind tokens to: from a file, or (`None`) made for this run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DpopChoice {
    pub(crate) key_file: Option<PathBuf>,
}

/// The endpoint-related values of one precedence level.
struct EndpointInput<'a> {
    token_url: Option<&'a str>,
    env: Option<&'a str>,
    issuer: Option<&'a str>,
}

impl EndpointInput<'_> {
    fn is_empty(&self) -> bool {
        self.token_url.is_none() && self.env.is_none() && self.issuer.is_none()
    }
}

/// Resolves `args` (flags and env, already merged by clap) over the config profile.
pub(crate) fn resolve(args: &ClientArgs, scope: Option<&str>) -> CliResult<Settings> {
    let profile = load_profile(args.profile.as_deref())?;
    resolve_with(args, scope, &profile)
}

fn resolve_with(args: &ClientArgs, scope: Option<&str>, p: &ConfigProfile) -> CliResult<Settings> {
    let allow_insecure_http = args.dangerous_allow_insecure_http;
    // The endpoint is resolved as a unit: `--token-url` on the command line must not be mixed
    // with `env = "prod"` from a profile.
    let cli = EndpointInput {
        token_url: args.token_url.as_deref(),
        env: args.env.as_deref(),
        issuer: args.issuer.as_deref(),
    };
    let from_profile = EndpointInput {
        token_url: p.token_url.as_deref(),
        env: p.env.as_deref(),
        issuer: p.issuer.as_deref(),
    };
    let endpoint = if cli.is_empty() {
        endpoint(&from_profile, allow_insecure_http)?
    } else {
        endpoint(&cli, allow_insecure_http)?
    };
    if args.client_secret.is_some() {
        return Err(CliError::usage(
            "--client-secret is refused: a secret on the command line is visible to every local user (ps, /proc/PID/cmdline, shell history)",
        )
        .with_hint("use --client-secret-file FILE (first line, mode 0600), --client-secret-stdin, or the M2M_CLIENT_SECRET variable"));
    }
    let alg_arg = match (args.alg, p.alg.as_deref()) {
        (Some(a), _) => Some(a),
        (None, Some(name)) => Some(match HmacAlg::from_name(name) {
            Some(h) => AlgArg::Hmac(h),
            None => AlgArg::Sig(
                name.parse::<Algorithm>()
                    .map_err(|e| CliError::local(format!("profile setting alg: {e}")))?,
            ),
        }),
        (None, None) => None,
    };
    let (alg, hmac_alg) = match alg_arg {
        Some(AlgArg::Sig(a)) => (Some(a), None),
        Some(AlgArg::Hmac(h)) => (None, Some(h)),
        None => (None, None),
    };
    let lifetime = args.lifetime.or(p.lifetime).map(Duration::from_secs);
    Ok(Settings {
        endpoint,
        client_id: args.client_id.clone().or_else(|| p.client_id.clone()),
        key: args
            .key
            .clone()
            .or_else(|| p.key.as_deref().map(expand_tilde)),
        kid: args.kid.clone().or_else(|| p.kid.clone()),
        alg,
        hmac_alg,
        auth_method: args.auth_method.clone().or_else(|| p.auth_method.clone()),
        client_secret_file: args
            .client_secret_file
            .clone()
            .or_else(|| p.client_secret_file.as_deref().map(expand_tilde)),
        client_secret_stdin: args.client_secret_stdin,
        aud: args.aud.clone().or_else(|| p.aud.clone()),
        lifetime,
        scope: scope.map(str::to_owned).or_else(|| p.scope.clone()),
        allow_insecure_http,
        federation: crate::federation::resolve(&args.federation, p)?,
        dpop: match (p.dpop, p.dpop_key.as_deref()) {
            (Some(false), _) | (None, None) => None,
            (_, key) => Some(DpopChoice {
                key_file: key.map(expand_tilde),
            }),
        },
    })
}

fn endpoint(input: &EndpointInput<'_>, allow_insecure_http: bool) -> CliResult<Option<Target>> {
    let env = input
        .env
        .map(|e| e.parse::<Environment>().map_err(CliError::from))
        .transpose()?;
    let policy = if allow_insecure_http {
        UrlPolicy::default().dangerous_allow_insecure_http()
    } else {
        UrlPolicy::default()
    };
    let url = input
        .token_url
        .map(|u| TokenUrl::parse_with(u, policy).map_err(url_error))
        .transpose()?;
    let issuer = input.issuer.map(str::to_owned);
    Ok(match (env, url, issuer) {
        (Some(env), Some(url), _) if url.as_str() != env.token_url() => {
            return Err(CliError::usage(format!(
                "both --env {env} and --token-url {url} are set and disagree; choose one"
            )));
        }
        (Some(env), _, _) => Some(Target::Endpoint {
            endpoint: Endpoint::Nhs(env),
            issuer: None,
        }),
        (None, Some(url), issuer) => Some(Target::Endpoint {
            endpoint: Endpoint::Url(url),
            issuer,
        }),
        (None, None, Some(issuer)) => {
            check_issuer(&issuer, allow_insecure_http)?;
            Some(Target::Issuer(issuer))
        }
        (None, None, None) => None,
    })
}

/// Warns (stderr) when a secret file can be read by group or others.
fn warn_if_readable_by_others(path: &std::path::Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            eprintln!(
                "warning: {} is readable by group or others (mode {:o}); chmod 600 it",
                path.display(),
                meta.permissions().mode() & 0o777
            );
        }
    }
}

fn url_error(e: m2m_client::ConfigError) -> CliError {
    let err = CliError::local(e.to_string());
    match e {
        m2m_client::ConfigError::InsecureHttp { .. } => err.with_hint(
            "use https; for a closed test network only, pass --dangerous-allow-insecure-http",
        ),
        _ => err,
    }
}

fn check_issuer(issuer: &str, allow_insecure_http: bool) -> CliResult {
    let policy = if allow_insecure_http {
        UrlPolicy::default().dangerous_allow_insecure_http()
    } else {
        UrlPolicy::default()
    };
    // The issuer follows the token URL's transport rule: it is where discovery goes.
    TokenUrl::parse_with(issuer, policy)
        .map(|_| ())
        .map_err(|e| CliError::local(format!("issuer: {e}")))
}

/// Environment variable holding the client secret itself.
pub(crate) const CLIENT_SECRET_ENV: &str = "M2M_CLIENT_SECRET";

impl Settings {
    /// `--dpop` / `--dpop-key` (and their `M2M_*` variables) over the profile's DPoP setting:
    /// a key file given on the command line wins; `--dpop` alone keeps the profile's key file.
    pub(crate) fn apply_dpop_flags(&mut self, flags: &DpopArgs) {
        if let Some(file) = &flags.dpop_key {
            self.dpop = Some(DpopChoice {
                key_file: Some(file.clone()),
            });
        } else if flags.dpop && self.dpop.is_none() {
            self.dpop = Some(DpopChoice { key_file: None });
        }
    }

    /// The client secret, if one is given: `--client-secret-file` (or the profile's), else
    /// `--client-secret-stdin`, else `M2M_CLIENT_SECRET`. A file readable by group or others
    /// gets a warning.
    pub(crate) fn client_secret(&self) -> CliResult<Option<ClientSecret>> {
        if let Some(path) = &self.client_secret_file {
            let bytes = zeroize::Zeroizing::new(keyfile::read_file(path, "client secret file")?);
            warn_if_readable_by_others(path);
            return ClientSecret::from_first_line(&bytes)
                .map(Some)
                .map_err(|e| CliError::local(format!("{}: {e}", path.display())));
        }
        if self.client_secret_stdin {
            use std::io::Read as _;
            let mut bytes = zeroize::Zeroizing::new(Vec::new());
            std::io::stdin()
                .read_to_end(&mut bytes)
                .map_err(|e| CliError::local(format!("cannot read the secret from stdin: {e}")))?;
            return ClientSecret::from_first_line(&bytes)
                .map(Some)
                .map_err(|e| CliError::local(format!("standard input: {e}")));
        }
        match std::env::var(CLIENT_SECRET_ENV) {
            Ok(value) if !value.is_empty() => {
                let value = zeroize::Zeroizing::new(value);
                Ok(Some(ClientSecret::new(value.as_bytes().to_vec())?))
            }
            _ => Ok(None),
        }
    }

    /// The endpoint, or a usage error naming the ways to give one.
    pub(crate) fn require_endpoint(&self) -> CliResult<&Target> {
        self.endpoint.as_ref().ok_or_else(|| {
            CliError::usage("no token endpoint: pass --token-url URL, --env sandbox|dev|int|prod or --issuer URL")
                .with_hint("or set M2M_TOKEN_URL, or token_url/env in a --profile")
        })
    }

    /// The client id, or a usage error. With a federated assertion it is optional (the JWT names
    /// the workload): empty when not given.
    pub(crate) fn require_client_id(&self) -> CliResult<&str> {
        if self.federation.source.is_some() {
            return Ok(self.client_id.as_deref().unwrap_or_default());
        }
        self.client_id
            .as_deref()
            .filter(|c| !c.is_empty())
            .ok_or_else(|| {
                CliError::usage(
                    "no client id: pass --client-id ID (for NHS: the application's API key)",
                )
                .with_hint("or set M2M_CLIENT_ID, or client_id in a --profile")
            })
    }

    /// Loads the key and builds the signer, choosing the algorithm as docs/protocol.md ("Client
    /// assertion") says: `--alg`, else the JWK's `alg` (of the key file, or of the public
    /// `KID.jwks.json` that `m2m keygen` wrote next to a `KID.pem`, so the key signs with what was
    /// registered), else the profile's (NHS: RS512), else the key type's default.
    /// An algorithm that does not fit the key fails here, before anything is sent. A guess (the
    /// key type's default) and a `--kid` the JWKS beside the key does not name are said on stderr.
    pub(crate) fn signer(&self, profile: Profile) -> CliResult<KeySigner> {
        self.signer_explained(profile).map(|(signer, _)| signer)
    }

    /// [`Settings::signer`], and where its algorithm came from (for hints on a server's refusal).
    pub(crate) fn signer_explained(&self, profile: Profile) -> CliResult<(KeySigner, AlgChoice)> {
        if let Some(hmac) = self.hmac_alg {
            return Err(CliError::usage(format!(
                "unsupported algorithm \"{hmac}\" for a private key: HS256/384/512 are only for --auth-method client_secret_jwt"
            )));
        }
        let path = self.key.as_ref().ok_or_else(|| {
            CliError::usage("no key: pass --key FILE (the private key, e.g. from `m2m keygen`)")
                .with_hint("or set M2M_KEY, or key in a --profile")
        })?;
        let key = keyfile::load_private_key(path, self.kid.as_deref())?;
        let beside = if key.jwk_alg().is_none() {
            keyfile::sibling_jwks(path, self.kid.as_deref())
        } else {
            keyfile::Sibling::NotApplicable
        };
        let (alg, source) = if let Some(alg) = self.alg {
            (alg, AlgSource::Flag)
        } else if let Some(alg) = key.jwk_alg() {
            (alg, AlgSource::KeyFile)
        } else if let keyfile::Sibling::Found { path: jwks, alg } = &beside
            && let Some(alg) = alg.filter(|a| key.kind().fits(*a))
        {
            (alg, AlgSource::SideFile(jwks.clone()))
        } else if let Some(alg) = profile.default_algorithm().filter(|a| key.kind().fits(*a)) {
            (alg, AlgSource::Profile)
        } else {
            (profile.choose_algorithm(&key), AlgSource::KeyType)
        };
        key.kind().check(alg).map_err(|e| {
            CliError::from(e).with_hint(format!(
                "drop --alg to use the key's default, or use a key made for {alg} (m2m keygen --alg {alg})"
            ))
        })?;
        let kid = self.kid.clone().or_else(|| key.kid().map(str::to_owned));
        let choice = AlgChoice {
            alg,
            source,
            kid: kid.clone(),
        };
        explain(&choice, &beside, path, self.kid.as_deref(), key.kind());
        Ok((KeySigner::new(Arc::new(key), alg, kid)?, choice))
    }

    /// The assertion's audience: `--aud`, else the issuer, else what the endpoint implies
    /// ([`Endpoint::audience`]: the token URL).
    pub(crate) fn audience(&self) -> CliResult<Audience> {
        if let Some(aud) = &self.aud {
            return Ok(Audience::Explicit(aud.clone()));
        }
        Ok(match self.require_endpoint()? {
            Target::Endpoint {
                issuer: Some(issuer),
                ..
            }
            | Target::Issuer(issuer) => Audience::Issuer(issuer.clone()),
            Target::Endpoint {
                endpoint,
                issuer: None,
            } => endpoint.audience(),
        })
    }
}

/// Where the signing algorithm came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum AlgSource {
    /// `--alg`, `M2M_ALG` or a profile's `alg`.
    Flag,
    /// The `alg` of the JWK the key was read from.
    KeyFile,
    /// The `alg` of the public JWKS `m2m keygen` wrote beside the key.
    SideFile(PathBuf),
    /// The NHS profile's RS512.
    Profile,
    /// The key type's default: a guess.
    KeyType,
}

/// The algorithm chosen, why, and the kid sent with it.
#[derive(Clone, Debug)]
pub(crate) struct AlgChoice {
    pub(crate) alg: Algorithm,
    pub(crate) source: AlgSource,
    pub(crate) kid: Option<String>,
}

impl AlgChoice {
    /// "RS256, the RSA key's default" — how the algorithm was chosen, for messages.
    pub(crate) fn describe(&self) -> String {
        let alg = self.alg;
        match &self.source {
            AlgSource::Flag => format!("{alg} from --alg"),
            AlgSource::KeyFile => format!("{alg} from the key file's JWK"),
            AlgSource::SideFile(path) => format!("{alg} from {}", path.display()),
            AlgSource::Profile => format!("{alg}, the NHS profile's"),
            AlgSource::KeyType => format!("{alg}, a guess from the key type"),
        }
    }
}

/// Says on stderr what the user would otherwise not see: a `--kid` that the JWKS beside the key
/// does not name (the key was moved, or the kid is wrong — and the alg then falls back), and an
/// algorithm guessed from the key type. A choice made by `--alg`, the key's JWK or the JWKS
/// beside it is logged at `-v` only.
fn explain(
    choice: &AlgChoice,
    beside: &keyfile::Sibling,
    key_path: &std::path::Path,
    kid: Option<&str>,
    kind: m2m_core::key::KeyKind,
) {
    let guessed = choice.source == AlgSource::KeyType;
    match (beside, kid) {
        (keyfile::Sibling::KidMissing { path, kids }, Some(kid)) => eprintln!(
            "warning: --kid {kid:?} is not in {} beside the key {} (it has {}): is the kid right?",
            path.display(),
            key_path.display(),
            if kids.is_empty() {
                "no kids".to_owned()
            } else {
                format!("kid {}", kids.join(", "))
            }
        ),
        (keyfile::Sibling::Absent { path }, Some(kid)) if guessed => eprintln!(
            "warning: --kid {kid:?}: no JWKS beside the key {} names it (looked for {}), so its registered alg is unknown",
            key_path.display(),
            path.display()
        ),
        _ => {}
    }
    if guessed {
        eprintln!(
            "note: signing with {} (no --alg, and no alg recorded for this {kind} key); pass --alg with the algorithm the server registered for this client",
            choice.describe()
        );
    } else {
        tracing::info!(alg = %choice.alg, "signing algorithm: {}", choice.describe());
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn args() -> ClientArgs {
        ClientArgs::default()
    }

    #[test]
    fn flag_beats_profile_and_endpoint_is_a_unit() {
        let profile = ConfigProfile {
            env: Some("prod".into()),
            client_id: Some("from-profile".into()),
            kid: Some("p-kid".into()),
            ..ConfigProfile::default()
        };
        let mut a = args();
        a.token_url = Some("http://127.0.0.1:9/oauth2/token".into());
        a.client_id = Some("from-flag".into());
        let s = resolve_with(&a, None, &profile).unwrap();
        assert!(matches!(
            s.endpoint,
            Some(Target::Endpoint {
                endpoint: Endpoint::Url(_),
                ..
            })
        ));
        assert_eq!(s.client_id.as_deref(), Some("from-flag"));
        assert_eq!(s.kid.as_deref(), Some("p-kid"));
        let s = resolve_with(&args(), None, &profile).unwrap();
        assert!(matches!(
            s.endpoint,
            Some(Target::Endpoint {
                endpoint: Endpoint::Nhs(Environment::Prod),
                ..
            })
        ));
    }

    #[test]
    fn dpop_flags_over_the_profile() {
        let resolve = |p: &ConfigProfile, flags: DpopArgs| {
            let mut s = resolve_with(&args(), None, p).unwrap();
            s.apply_dpop_flags(&flags);
            s.dpop.map(|c| c.key_file)
        };
        let none = ConfigProfile::default();
        let key = |f: &str| Some(Some(PathBuf::from(f)));
        assert_eq!(resolve(&none, DpopArgs::default()), None);
        let dpop = DpopArgs {
            dpop: true,
            dpop_key: None,
        };
        assert_eq!(resolve(&none, dpop.clone()), Some(None));
        let with_key = ConfigProfile {
            dpop_key: Some("/p/dpop.pem".into()),
            ..ConfigProfile::default()
        };
        assert_eq!(resolve(&with_key, DpopArgs::default()), key("/p/dpop.pem"));
        assert_eq!(resolve(&with_key, dpop), key("/p/dpop.pem"));
        let flag_key = DpopArgs {
            dpop: false,
            dpop_key: Some("/f/dpop.pem".into()),
        };
        assert_eq!(resolve(&with_key, flag_key), key("/f/dpop.pem"));
        let off = ConfigProfile {
            dpop: Some(false),
            dpop_key: Some("/p/dpop.pem".into()),
            ..ConfigProfile::default()
        };
        assert_eq!(resolve(&off, DpopArgs::default()), None);
        let on = ConfigProfile {
            dpop: Some(true),
            ..ConfigProfile::default()
        };
        assert_eq!(resolve(&on, DpopArgs::default()), Some(None));
    }

    #[test]
    fn env_and_url_must_agree() {
        let mut a = args();
        a.env = Some("int".into());
        a.token_url = Some("https://example.org/token".into());
        assert!(resolve_with(&a, None, &ConfigProfile::default()).is_err());
        a.token_url = Some("https://int.api.service.nhs.uk/oauth2/token".into());
        assert!(resolve_with(&a, None, &ConfigProfile::default()).is_ok());
    }
}
