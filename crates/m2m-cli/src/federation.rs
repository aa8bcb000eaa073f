//! Federated workload credentials in the CLI: which assertion source the flags, `M2M_*`
//! variables or the profile name (a flag's source wins over the profile's, never mixed with it),
//! which grant, and the `m2m_client` source built from them. docs/federation.md is the guide.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use m2m_client::AssertionSource;
use m2m_client::assertion_source::{CommandSource, EnvSource, FileSource, GithubActionsSource};

use crate::cli::FederationArgs;
use crate::config_file::{ConfigProfile, expand_tilde};
use crate::exit::{CliError, CliResult};

/// Where the workload's JWT comes from, after resolution.
#[derive(Clone, Debug)]
pub(crate) enum SourceSpec {
    /// A file, re-read for every request.
    File(PathBuf),
    /// `sh -c CMD`, killed after `timeout`.
    Command { command: String, timeout: Duration },
    /// An environment variable.
    Env(String),
    /// GitHub Actions, for `audience` (`None`: the token endpoint's aud rule).
    Github { audience: Option<String> },
}

/// The federation settings: a source (if any) and whether it is the jwt-bearer grant.
#[derive(Clone, Debug, Default)]
pub(crate) struct Federation {
    pub(crate) source: Option<SourceSpec>,
    pub(crate) grant_jwt_bearer: bool,
}

/// Flags (and `M2M_*`, merged by clap) over the profile: any source given by flag replaces the
/// profile's source as a whole, so a profile's `assertion_file` never joins a `--assertion-cmd`.
pub(crate) fn resolve(args: &FederationArgs, p: &ConfigProfile) -> CliResult<Federation> {
    let from_flags = source(
        args.assertion_file.clone(),
        args.assertion_cmd.clone(),
        args.assertion_timeout,
        args.assertion_env.clone(),
        args.assertion_github,
        args.assertion_audience.clone(),
    )?;
    let source = match from_flags {
        Some(s) => Some(s),
        None => source(
            p.assertion_file.as_deref().map(expand_tilde),
            p.assertion_cmd.clone(),
            p.assertion_timeout,
            p.assertion_env.clone(),
            p.assertion_github.unwrap_or(false),
            p.assertion_audience.clone(),
        )
        .map_err(|e| CliError::local(format!("profile: {}", e.message)))?,
    };
    let grant = args.grant.clone().or_else(|| p.grant.clone());
    let grant_jwt_bearer = match grant.as_deref() {
        None | Some("client_credentials") => false,
        Some("jwt-bearer") => true,
        Some(other) => {
            return Err(CliError::local(format!(
                "profile setting grant = {other:?}: expected \"client_credentials\" or \"jwt-bearer\""
            )));
        }
    };
    if grant_jwt_bearer && source.is_none() {
        return Err(CliError::usage(
            "--grant jwt-bearer needs the workload's JWT: pass --assertion-file FILE, --assertion-cmd CMD, --assertion-env VAR or --assertion-github",
        ));
    }
    Ok(Federation {
        source,
        grant_jwt_bearer,
    })
}

/// One level's source: at most one of the four (clap refuses two flags; a profile is checked
/// here).
fn source(
    file: Option<PathBuf>,
    command: Option<String>,
    timeout: Option<u64>,
    env: Option<String>,
    github: bool,
    audience: Option<String>,
) -> CliResult<Option<SourceSpec>> {
    let count = usize::from(file.is_some())
        + usize::from(command.is_some())
        + usize::from(env.is_some())
        + usize::from(github);
    if count > 1 {
        return Err(CliError::usage(
            "more than one assertion source: choose one of --assertion-file, --assertion-cmd, --assertion-env, --assertion-github (profile: assertion_file, …)",
        ));
    }
    if timeout.is_some() && command.is_none() {
        return Err(CliError::usage(
            "--assertion-timeout (profile: assertion_timeout) applies to --assertion-cmd only",
        ));
    }
    if audience.is_some() && !github {
        return Err(CliError::usage(
            "--assertion-audience (profile: assertion_audience) applies to --assertion-github only",
        ));
    }
    Ok(if let Some(path) = file {
        Some(SourceSpec::File(path))
    } else if let Some(command) = command {
        let timeout = timeout.map_or(
            m2m_client::assertion_source::DEFAULT_COMMAND_TIMEOUT,
            Duration::from_secs,
        );
        Some(SourceSpec::Command { command, timeout })
    } else if let Some(var) = env {
        Some(SourceSpec::Env(var))
    } else if github {
        Some(SourceSpec::Github { audience })
    } else {
        None
    })
}

impl SourceSpec {
    /// The `m2m_client` source. `default_audience` gives the token endpoint's aud rule (for
    /// GitHub Actions without `--assertion-audience`); it is only asked for that source.
    pub(crate) fn build(
        &self,
        default_audience: impl FnOnce() -> CliResult<String>,
        allow_insecure_http: bool,
    ) -> CliResult<Arc<dyn AssertionSource>> {
        Ok(match self {
            SourceSpec::File(path) => Arc::new(FileSource::new(path)),
            SourceSpec::Command { command, timeout } => {
                Arc::new(CommandSource::new(command.clone()).timeout(*timeout))
            }
            SourceSpec::Env(var) => Arc::new(EnvSource::new(var.clone())),
            SourceSpec::Github { audience } => {
                let audience = match audience {
                    Some(a) => a.clone(),
                    None => default_audience()?,
                };
                let mut source = GithubActionsSource::from_env(audience)
                    .map_err(|e| CliError::local(e.to_string()))?;
                if allow_insecure_http {
                    source = source.dangerous_allow_insecure_http();
                }
                Arc::new(source)
            }
        })
    }

    /// Whether the token endpoint's aud rule matters for this source (GitHub Actions asks for an
    /// audience; the other sources' JWTs are what they are).
    pub(crate) fn uses_audience(&self) -> bool {
        matches!(self, SourceSpec::Github { audience: None })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn flag_source_replaces_the_profile_source() {
        let profile = ConfigProfile {
            assertion_file: Some("/run/profile-token".into()),
            grant: Some("jwt-bearer".into()),
            ..ConfigProfile::default()
        };
        let f = resolve(&FederationArgs::default(), &profile).unwrap();
        assert!(
            matches!(f.source, Some(SourceSpec::File(ref p)) if p == &PathBuf::from("/run/profile-token"))
        );
        assert!(f.grant_jwt_bearer);
        let args = FederationArgs {
            assertion_env: Some("TOKEN".into()),
            ..FederationArgs::default()
        };
        let f = resolve(&args, &profile).unwrap();
        assert!(matches!(f.source, Some(SourceSpec::Env(ref v)) if v == "TOKEN"));
    }

    #[test]
    fn profile_mistakes_are_refused() {
        let two = ConfigProfile {
            assertion_file: Some("/a".into()),
            assertion_env: Some("B".into()),
            ..ConfigProfile::default()
        };
        assert!(resolve(&FederationArgs::default(), &two).is_err());
        let bad_grant = ConfigProfile {
            assertion_file: Some("/a".into()),
            grant: Some("password".into()),
            ..ConfigProfile::default()
        };
        assert!(resolve(&FederationArgs::default(), &bad_grant).is_err());
        let grant_alone = ConfigProfile {
            grant: Some("jwt-bearer".into()),
            ..ConfigProfile::default()
        };
        let e = resolve(&FederationArgs::default(), &grant_alone).unwrap_err();
        assert!(e.message.contains("--assertion-file"), "{}", e.message);
    }
}
