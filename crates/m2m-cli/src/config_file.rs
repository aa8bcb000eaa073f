//! Named profiles from `config.toml` and how they fill in settings the command line and the
//! `M2M_*` environment left unset (precedence: flag > env > profile > built-in default).
//!
//! ```toml
//! default_profile = "int"          # optional: used when --profile / M2M_PROFILE is absent
//!
//! [profiles.int]
//! env = "int"                      # or token_url = "https://…/oauth2/token"
//! client_id = "your-api-key"
//! key = "~/.config/m2m/int-1.pem"
//! kid = "int-1"
//! scope = "…"
//! dpop = true                      # optional: DPoP-bound tokens (m2m token|call|proxy)
//! dpop_key = "~/.config/m2m/dpop.pem"  # optional: a persistent DPoP key (implies dpop)
//! ```
//!
//! The file lives at `$M2M_CONFIG`, else `$XDG_CONFIG_HOME/m2m/config.toml`, else
//! `~/.config/m2m/config.toml`. A missing file is only an error when a profile is asked for.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::exit::{CliError, CliResult};

/// One `[profiles.NAME]` table. Unknown keys are refused so a typo does not silently do nothing.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConfigProfile {
    pub(crate) token_url: Option<String>,
    pub(crate) issuer: Option<String>,
    pub(crate) env: Option<String>,
    pub(crate) client_id: Option<String>,
    pub(crate) key: Option<String>,
    pub(crate) kid: Option<String>,
    pub(crate) alg: Option<String>,
    pub(crate) aud: Option<String>,
    pub(crate) scope: Option<String>,
    pub(crate) lifetime: Option<u64>,
    /// File whose first line is the client secret (never the secret itself).
    pub(crate) client_secret_file: Option<String>,
    /// `private_key_jwt`, `client_secret_basic`, `client_secret_post` or `client_secret_jwt`.
    pub(crate) auth_method: Option<String>,
    /// DPoP-bound tokens (`m2m token|call|proxy`), with an ephemeral key unless `dpop_key`.
    pub(crate) dpop: Option<bool>,
    /// The DPoP key file (implies `dpop = true`).
    pub(crate) dpop_key: Option<String>,
    /// Federated assertion sources and grant (docs/federation.md): one source at most.
    pub(crate) assertion_file: Option<String>,
    pub(crate) assertion_cmd: Option<String>,
    pub(crate) assertion_timeout: Option<u64>,
    pub(crate) assertion_env: Option<String>,
    pub(crate) assertion_github: Option<bool>,
    pub(crate) assertion_audience: Option<String>,
    /// `client_credentials` (default) or `jwt-bearer`.
    pub(crate) grant: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    default_profile: Option<String>,
    #[serde(default)]
    profiles: BTreeMap<String, ConfigProfile>,
}

/// Where the config file is looked for.
pub(crate) fn config_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("M2M_CONFIG").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| dirs::home_dir().map(|h| h.join(".config")))?;
    Some(base.join("m2m").join("config.toml"))
}

/// Loads the profile named by `--profile`/`M2M_PROFILE`, else the file's `default_profile`, else
/// an empty one.
pub(crate) fn load_profile(name: Option<&str>) -> CliResult<ConfigProfile> {
    let Some(path) = config_path() else {
        return match name {
            Some(n) => Err(CliError::local(format!(
                "profile \"{n}\" requested but no config file location is known (set M2M_CONFIG or HOME)"
            ))),
            None => Ok(ConfigProfile::default()),
        };
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && name.is_none() => {
            return Ok(ConfigProfile::default());
        }
        Err(e) => {
            return Err(CliError::local(format!(
                "cannot read config file {}: {e}",
                path.display()
            ))
            .with_hint("create it with a [profiles.NAME] table, or drop --profile"));
        }
    };
    select(&text, &path, name)
}

/// Parses the file text and picks the profile (pure, for tests).
fn select(text: &str, path: &Path, name: Option<&str>) -> CliResult<ConfigProfile> {
    let file: ConfigFile = toml::from_str(text).map_err(|e| {
        // file:line, as the server's registry errors give it, so an editor can jump there.
        let at = e.span().map_or_else(String::new, |span| {
            let line = text.get(..span.start).unwrap_or(text).matches('\n').count() + 1;
            format!(":{line}")
        });
        CliError::local(format!(
            "invalid config file {}{at}: {}",
            path.display(),
            e.message()
        ))
    })?;
    let wanted = name.map(str::to_owned).or(file.default_profile);
    let Some(wanted) = wanted else {
        return Ok(ConfigProfile::default());
    };
    file.profiles.get(&wanted).cloned().ok_or_else(|| {
        let known: Vec<&str> = file.profiles.keys().map(String::as_str).collect();
        CliError::local(format!(
            "no profile \"{wanted}\" in {} (profiles: {})",
            path.display(),
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            }
        ))
    })
}

/// Expands a leading `~/` in a path from a config file (shells do this for flags, not TOML).
pub(crate) fn expand_tilde(path: &str) -> PathBuf {
    match path.strip_prefix("~/") {
        Some(rest) => dirs::home_dir().map_or_else(|| PathBuf::from(path), |h| h.join(rest)),
        None => PathBuf::from(path),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const FILE: &str = r#"
default_profile = "int"
[profiles.int]
env = "int"
client_id = "abc"
key = "~/k.pem"
kid = "int-1"
[profiles.local]
token_url = "http://127.0.0.1:8080/oauth2/token"
"#;

    #[test]
    fn picks_named_then_default() {
        let p = Path::new("c.toml");
        assert_eq!(
            select(FILE, p, Some("local")).unwrap().token_url.as_deref(),
            Some("http://127.0.0.1:8080/oauth2/token")
        );
        assert_eq!(
            select(FILE, p, None).unwrap().client_id.as_deref(),
            Some("abc")
        );
        let err = select(FILE, p, Some("prod")).unwrap_err();
        assert!(
            err.message.contains("profiles: int, local"),
            "{}",
            err.message
        );
    }

    #[test]
    fn typos_are_refused() {
        let err = select(
            "[profiles.a]\nclient_di = \"x\"\n",
            Path::new("c.toml"),
            Some("a"),
        )
        .unwrap_err();
        assert!(err.message.contains("client_di"), "{}", err.message);
        assert!(err.message.contains("c.toml:2:"), "{}", err.message);
    }
}
