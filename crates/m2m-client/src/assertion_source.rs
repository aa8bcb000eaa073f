//! Federated workload credentials on the client side: an [`AssertionSource`] yields, for every
//! token request, a JWT that someone else issued (a Kubernetes projected service-account token, a
//! SPIFFE JWT-SVID, a GitHub Actions OIDC token), which the client presents either as its client
//! assertion or as the RFC 7523 §2.1 jwt-bearer grant (see [`crate::ClientAuth`]).
//!
//! The sources: [`FileSource`] (re-read for every request, as those files rotate),
//! [`CommandSource`] (`sh -c CMD` per request, killed at a timeout), [`EnvSource`] and
//! [`GithubActionsSource`]. Each is asked again for every attempt, retries included.
//!
//! # What the client looks at
//!
//! Only the shape: surrounding whitespace is trimmed, and the text must be three non-empty
//! base64url parts separated by dots (a compact JWS), so that an empty file or an error page is
//! refused here with a clear message instead of by the server. The client never decodes the
//! claims: the platform's token is opaque to it.
//!
//! Caching follows from that. The access token's own `expires_in` governs how long it is used
//! (the token source and the file cache treat it like any other access token); the platform
//! token's `exp` does not shorten it, because the access token was validly issued and a rotated
//! file does not revoke it. A cache is keyed by the source's [`AssertionSource::identity`] (the
//! file path, a hash of the command, the variable name, the GitHub audience), never by the
//! assertion itself, and the source is read again whenever a new access token is needed.
//!
//! # Secrets
//!
//! An assertion is a bearer credential for as long as it lives (up to an hour for these
//! platforms). [`FederatedAssertion`] and every source print `[redacted]` in `Debug`; no error
//! carries the assertion, a command's stdout, or the GitHub request token. A command's stderr is
//! shown (its first line, shortened), with anything shaped like a JWT in it replaced.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use m2m_discovery::UrlPolicy;
use tokio::io::AsyncReadExt as _;
use url::Url;
use zeroize::Zeroizing;

use crate::transport::BoxFuture;

/// Default limit for [`CommandSource`]: a helper that has not answered in this time (a stuck
/// SPIRE agent socket, a hung login) is killed and the request fails instead of hanging.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// Limit for the GitHub Actions token request (connect and answer): the service is local to the
/// runner's network and answers in milliseconds.
const GITHUB_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest assertion or command output read: platform tokens are a few kilobytes, and an endless
/// stream must not exhaust memory.
const MAX_ASSERTION: u64 = 64 * 1024;

/// Longest stderr line shown in an error, in characters.
const MAX_STDERR_LINE: usize = 200;

/// The variable holding the GitHub Actions ID-token request URL (set when the job has
/// `permissions: id-token: write`).
pub const ACTIONS_ID_TOKEN_REQUEST_URL: &str = "ACTIONS_ID_TOKEN_REQUEST_URL";

/// The variable holding the bearer token for [`ACTIONS_ID_TOKEN_REQUEST_URL`].
pub const ACTIONS_ID_TOKEN_REQUEST_TOKEN: &str = "ACTIONS_ID_TOKEN_REQUEST_TOKEN";

/// Where federated assertions come from: asked once per token request attempt.
pub trait AssertionSource: Send + Sync + fmt::Debug {
    /// The assertion for one request (read, run or fetched now).
    fn assertion(&self) -> BoxFuture<'_, Result<FederatedAssertion, AssertionSourceError>>;

    /// What identifies this source for a token cache, without any secret in it: e.g.
    /// `file:/var/run/secrets/tokens/m2m`, `command:sha256:<hex>`, `env:VAR`,
    /// `github-actions:<audience>`.
    fn identity(&self) -> String;
}

/// A JWT from an [`AssertionSource`], trimmed and checked to be three base64url parts. `Debug`
/// prints `[redacted]`; the text is wiped when dropped.
#[derive(Clone)]
pub struct FederatedAssertion(Zeroizing<String>);

impl FederatedAssertion {
    /// Trims `text` and checks its shape; `origin` names the source in the error (e.g. `file
    /// /run/token`).
    pub fn parse(text: &str, origin: &str) -> Result<Self, AssertionSourceError> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(AssertionSourceError::Empty {
                origin: origin.to_owned(),
            });
        }
        if !is_compact_jws(trimmed) {
            return Err(AssertionSourceError::NotAJwt {
                origin: origin.to_owned(),
                parts: trimmed.split('.').count(),
            });
        }
        Ok(FederatedAssertion(Zeroizing::new(trimmed.to_owned())))
    }

    /// The JWT, exactly as it is sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for FederatedAssertion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FederatedAssertion([redacted])")
    }
}

/// Three non-empty parts of base64url characters (no padding) separated by dots.
fn is_compact_jws(text: &str) -> bool {
    let parts: Vec<&str> = text.split('.').collect();
    parts.len() == 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// Why a source gave no assertion. No message contains the assertion, a command's stdout or the
/// GitHub request token.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssertionSourceError {
    /// The assertion file could not be read.
    #[error("cannot read the assertion file {}: {reason}", path.display())]
    FileRead {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        reason: String,
    },
    /// The source gave nothing but whitespace.
    #[error("the assertion from {origin} is empty")]
    Empty {
        /// Which source (e.g. `file /run/token`).
        origin: String,
    },
    /// The source gave something that is not a compact JWT.
    #[error(
        "the assertion from {origin} is not a JWT (expected three base64url parts separated by \
         dots, found {parts} part(s) or characters outside base64url)"
    )]
    NotAJwt {
        /// Which source.
        origin: String,
        /// How many dot-separated parts it had.
        parts: usize,
    },
    /// The source gave more than [`MAX_ASSERTION`] bytes, or bytes that are not UTF-8.
    #[error("the assertion from {origin} is {what}")]
    Unreadable {
        /// Which source.
        origin: String,
        /// What is wrong ("not UTF-8 text", "larger than 65536 bytes").
        what: String,
    },
    /// The assertion command could not be started.
    #[error("cannot run the assertion command: {reason}")]
    CommandSpawn {
        /// The operating system's reason.
        reason: String,
    },
    /// The assertion command did not finish in time and was killed.
    #[error("the assertion command did not finish within {} s and was killed", timeout.as_secs_f64())]
    CommandTimeout {
        /// The limit.
        timeout: Duration,
    },
    /// The assertion command failed (its stdout is never shown).
    #[error(
        "the assertion command failed ({status}){}",
        stderr.as_deref().map(|s| format!(": {s}")).unwrap_or_default()
    )]
    CommandFailed {
        /// The exit status, e.g. `exit status: 1`.
        status: String,
        /// The first line of its stderr (shortened, JWT-shaped words replaced), if any.
        stderr: Option<String>,
    },
    /// The environment variable is not set (or not Unicode).
    #[error("the environment variable {var} holding the assertion is {what}")]
    EnvMissing {
        /// The variable.
        var: String,
        /// "not set", "not Unicode".
        what: &'static str,
    },
    /// A GitHub Actions variable is missing: the job lacks `permissions: id-token: write`, or
    /// this is not a GitHub Actions run.
    #[error(
        "{var} is not set: the GitHub Actions job needs `permissions: id-token: write` (or this \
         is not a GitHub Actions run)"
    )]
    GithubNotConfigured {
        /// The missing variable.
        var: &'static str,
    },
    /// The GitHub Actions request URL is unusable (not https, not a URL).
    #[error("{ACTIONS_ID_TOKEN_REQUEST_URL} is unusable: {reason}")]
    GithubUrl {
        /// Why.
        reason: String,
    },
    /// The GitHub Actions token service did not answer usably.
    #[error("the GitHub Actions ID-token request failed: {reason}")]
    GithubRequest {
        /// Why (status, transport failure, body without `value`); never the token.
        reason: String,
    },
}

/// A file holding the JWT, read again for every request: Kubernetes rewrites projected
/// service-account tokens and the SPIRE helper rewrites JWT-SVID files before they expire.
#[derive(Clone)]
pub struct FileSource {
    path: PathBuf,
}

impl FileSource {
    /// The file at `path` (not read until a request needs it).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileSource { path: path.into() }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl fmt::Debug for FileSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileSource")
            .field("path", &self.path)
            .finish()
    }
}

impl AssertionSource for FileSource {
    fn assertion(&self) -> BoxFuture<'_, Result<FederatedAssertion, AssertionSourceError>> {
        Box::pin(async move {
            let origin = format!("file {}", self.path.display());
            let file = tokio::fs::File::open(&self.path).await.map_err(|e| {
                AssertionSourceError::FileRead {
                    path: self.path.clone(),
                    reason: e.to_string(),
                }
            })?;
            let mut bytes = Zeroizing::new(Vec::new());
            file.take(MAX_ASSERTION + 1)
                .read_to_end(&mut bytes)
                .await
                .map_err(|e| AssertionSourceError::FileRead {
                    path: self.path.clone(),
                    reason: e.to_string(),
                })?;
            parse_bytes(&bytes, &origin)
        })
    }

    fn identity(&self) -> String {
        format!("file:{}", self.path.display())
    }
}

/// Checks size and encoding, then the shape.
fn parse_bytes(bytes: &[u8], origin: &str) -> Result<FederatedAssertion, AssertionSourceError> {
    if bytes.len() as u64 > MAX_ASSERTION {
        return Err(AssertionSourceError::Unreadable {
            origin: origin.to_owned(),
            what: format!("larger than {MAX_ASSERTION} bytes"),
        });
    }
    let text = std::str::from_utf8(bytes).map_err(|_| AssertionSourceError::Unreadable {
        origin: origin.to_owned(),
        what: "not UTF-8 text".to_owned(),
    })?;
    FederatedAssertion::parse(text, origin)
}

/// A shell command (`sh -c CMD`) whose stdout is the JWT, run for every request, e.g. the SPIRE
/// agent's `spire-agent api fetch jwt … -output json | jq -r …`. Killed at the timeout.
#[derive(Clone)]
pub struct CommandSource {
    command: String,
    timeout: Duration,
}

impl CommandSource {
    /// `command` run by `sh -c`, with the [`DEFAULT_COMMAND_TIMEOUT`].
    pub fn new(command: impl Into<String>) -> Self {
        CommandSource {
            command: command.into(),
            timeout: DEFAULT_COMMAND_TIMEOUT,
        }
    }

    /// Another time limit (the command is killed when it is reached).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

impl fmt::Debug for CommandSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The command line may carry a secret of its own (a token in an argument): hash only.
        f.debug_struct("CommandSource")
            .field("command", &self.identity())
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl AssertionSource for CommandSource {
    fn assertion(&self) -> BoxFuture<'_, Result<FederatedAssertion, AssertionSourceError>> {
        Box::pin(run_command(&self.command, self.timeout))
    }

    fn identity(&self) -> String {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, self.command.as_bytes());
        format!("command:sha256:{}", hex::encode(digest.as_ref()))
    }
}

async fn run_command(
    command: &str,
    timeout: Duration,
) -> Result<FederatedAssertion, AssertionSourceError> {
    let mut cmd = tokio::process::Command::new("sh");
    cmd.arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // Its own process group, so that at the timeout the whole pipeline (`spire-agent … | jq`)
    // is killed, not only the shell: its children would otherwise live on as orphans.
    #[cfg(unix)]
    cmd.process_group(0);
    let mut child = cmd
        .spawn()
        .map_err(|e| AssertionSourceError::CommandSpawn {
            reason: e.to_string(),
        })?;
    let pid = child.id();
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let mut out = Zeroizing::new(Vec::new());
    let mut err = Vec::new();
    let run = async {
        let (read_out, read_err, status) = tokio::join!(
            read_limited(stdout.as_mut(), &mut out),
            read_limited(stderr.as_mut(), &mut err),
            child.wait()
        );
        read_out?;
        read_err?;
        status
    };
    let status = match tokio::time::timeout(timeout, run).await {
        Ok(Ok(status)) => status,
        Ok(Err(e)) => {
            return Err(AssertionSourceError::CommandSpawn {
                reason: e.to_string(),
            });
        }
        Err(_) => {
            kill_group(pid);
            let _ = child.start_kill();
            return Err(AssertionSourceError::CommandTimeout { timeout });
        }
    };
    if !status.success() {
        return Err(AssertionSourceError::CommandFailed {
            status: status.to_string(),
            stderr: first_line(&err),
        });
    }
    parse_bytes(&out, "the assertion command")
}

/// Reads a pipe to its end, keeping at most one byte over [`MAX_ASSERTION`] (the rest is
/// drained, so the command never blocks on a full pipe).
async fn read_limited(
    pipe: Option<&mut (impl tokio::io::AsyncRead + Unpin)>,
    into: &mut Vec<u8>,
) -> std::io::Result<()> {
    let Some(pipe) = pipe else {
        return Ok(());
    };
    let mut buf = [0u8; 8192];
    loop {
        let n = pipe.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        let room = usize::try_from(MAX_ASSERTION + 1)
            .unwrap_or(usize::MAX)
            .saturating_sub(into.len());
        into.extend_from_slice(buf.get(..n.min(room)).unwrap_or_default());
    }
}

/// Kills the command's process group (see `run_command`) with the system's `kill`: the crate
/// forbids the unsafe `kill(2)` call and takes no new dependency for it. Best effort: the shell
/// itself is killed through its handle in any case.
fn kill_group(pid: Option<u32>) {
    #[cfg(unix)]
    if let Some(pid) = pid {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{pid}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    #[cfg(not(unix))]
    let _ = pid;
}

/// The first non-empty stderr line, shortened, with JWT-shaped words replaced: a helper that
/// echoes its token on stderr must not put it in our error.
fn first_line(stderr: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(stderr);
    let line = text.lines().map(str::trim).find(|l| !l.is_empty())?;
    let cleaned: Vec<&str> = line
        .split_whitespace()
        .map(|w| {
            if w.split('.').count() == 3 && w.len() > 20 {
                "[redacted]"
            } else {
                w
            }
        })
        .collect();
    let mut line = cleaned.join(" ");
    if line.chars().count() > MAX_STDERR_LINE {
        line = line.chars().take(MAX_STDERR_LINE).collect::<String>() + "…";
    }
    Some(line)
}

/// An environment variable holding the JWT, read for every request (a supervisor may update the
/// process environment only at start, but a library user may set it between requests).
#[derive(Clone, Debug)]
pub struct EnvSource {
    var: String,
}

impl EnvSource {
    /// The variable `var`.
    pub fn new(var: impl Into<String>) -> Self {
        EnvSource { var: var.into() }
    }
}

impl AssertionSource for EnvSource {
    fn assertion(&self) -> BoxFuture<'_, Result<FederatedAssertion, AssertionSourceError>> {
        Box::pin(async move {
            let value = match std::env::var(&self.var) {
                Ok(v) => Zeroizing::new(v),
                Err(std::env::VarError::NotPresent) => {
                    return Err(AssertionSourceError::EnvMissing {
                        var: self.var.clone(),
                        what: "not set",
                    });
                }
                Err(std::env::VarError::NotUnicode(_)) => {
                    return Err(AssertionSourceError::EnvMissing {
                        var: self.var.clone(),
                        what: "not Unicode",
                    });
                }
            };
            FederatedAssertion::parse(&value, &format!("environment variable {}", self.var))
        })
    }

    fn identity(&self) -> String {
        format!("env:{}", self.var)
    }
}

/// A GitHub Actions OIDC token: `GET $ACTIONS_ID_TOKEN_REQUEST_URL&audience=AUD` with
/// `Authorization: bearer $ACTIONS_ID_TOKEN_REQUEST_TOKEN`, answer `{"value": "<JWT>"}`. A new
/// token is asked for on every request (they live minutes).
///
/// The request URL must be https (plain http only to loopback, for tests, or through
/// [`GithubActionsSource::dangerous_allow_insecure_http`]); redirects are not followed, as they
/// would carry the request token elsewhere.
#[derive(Clone)]
pub struct GithubActionsSource {
    request_url: Url,
    request_token: Zeroizing<String>,
    audience: String,
    policy: UrlPolicy,
}

impl fmt::Debug for GithubActionsSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GithubActionsSource")
            .field(
                "request_url",
                &self.request_url.origin().ascii_serialization(),
            )
            .field("request_token", &"[redacted]")
            .field("audience", &self.audience)
            .finish()
    }
}

impl GithubActionsSource {
    /// From [`ACTIONS_ID_TOKEN_REQUEST_URL`] and [`ACTIONS_ID_TOKEN_REQUEST_TOKEN`], asking for
    /// tokens with `aud` = `audience` (the authorization server's issuer or token URL, whatever
    /// its trust of GitHub expects).
    pub fn from_env(audience: impl Into<String>) -> Result<Self, AssertionSourceError> {
        let var = |name: &'static str| {
            std::env::var(name)
                .ok()
                .filter(|v| !v.is_empty())
                .ok_or(AssertionSourceError::GithubNotConfigured { var: name })
        };
        let url = var(ACTIONS_ID_TOKEN_REQUEST_URL)?;
        let token = Zeroizing::new(var(ACTIONS_ID_TOKEN_REQUEST_TOKEN)?);
        GithubActionsSource::new(&url, &token, audience)
    }

    /// From the request URL and token given explicitly.
    pub fn new(
        request_url: &str,
        request_token: &str,
        audience: impl Into<String>,
    ) -> Result<Self, AssertionSourceError> {
        let request_url = Url::parse(request_url).map_err(|e| AssertionSourceError::GithubUrl {
            reason: e.to_string(),
        })?;
        let source = GithubActionsSource {
            request_url,
            request_token: Zeroizing::new(request_token.to_owned()),
            audience: audience.into(),
            policy: UrlPolicy::default(),
        };
        source.check_url()?;
        Ok(source)
    }

    /// Allows plain http to a non-loopback request URL: the request token and the issued token
    /// then travel in clear text. Closed test networks only.
    pub fn dangerous_allow_insecure_http(mut self) -> Self {
        self.policy = self.policy.dangerous_allow_insecure_http();
        self
    }

    /// The audience asked for.
    pub fn audience(&self) -> &str {
        &self.audience
    }

    fn check_url(&self) -> Result<(), AssertionSourceError> {
        self.policy
            .check(&self.request_url)
            .map_err(|e| AssertionSourceError::GithubUrl {
                reason: e.to_string(),
            })
    }

    /// The request URL with `audience=` added to its query (GitHub's URL already has one).
    fn url_with_audience(&self) -> Url {
        let mut url = self.request_url.clone();
        url.query_pairs_mut()
            .append_pair("audience", &self.audience);
        url
    }

    async fn fetch(&self) -> Result<FederatedAssertion, AssertionSourceError> {
        self.check_url()?;
        let failed = |reason: String| AssertionSourceError::GithubRequest { reason };
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(GITHUB_TIMEOUT)
            .user_agent(concat!("m2m-client/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| failed(format!("cannot build the HTTP client: {e}")))?;
        let response = client
            .get(self.url_with_audience())
            .header(
                reqwest::header::AUTHORIZATION,
                format!("bearer {}", self.request_token.as_str()),
            )
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| failed(crate::reqwest_transport::error_chain(&e)))?;
        let status = response.status();
        if !status.is_success() {
            return Err(failed(format!("HTTP {}", status.as_u16())));
        }
        let body = Zeroizing::new(
            response
                .bytes()
                .await
                .map_err(|e| failed(crate::reqwest_transport::error_chain(&e)))?
                .to_vec(),
        );
        if body.len() as u64 > MAX_ASSERTION {
            return Err(failed(format!("answer larger than {MAX_ASSERTION} bytes")));
        }
        #[derive(serde::Deserialize)]
        struct Answer {
            value: Option<String>,
        }
        let answer: Answer = serde_json::from_slice(&body)
            .map_err(|_| failed("the answer is not JSON with a \"value\" member".to_owned()))?;
        let value = Zeroizing::new(
            answer
                .value
                .ok_or_else(|| failed("the answer has no \"value\" member".to_owned()))?,
        );
        FederatedAssertion::parse(&value, "GitHub Actions")
    }
}

impl AssertionSource for GithubActionsSource {
    fn assertion(&self) -> BoxFuture<'_, Result<FederatedAssertion, AssertionSourceError>> {
        Box::pin(self.fetch())
    }

    fn identity(&self) -> String {
        format!("github-actions:{}", self.audience)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JWT: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl";

    #[test]
    fn shape_is_checked_and_whitespace_trimmed() {
        let a = FederatedAssertion::parse(&format!("\n {JWT}\n\n"), "t").unwrap();
        assert_eq!(a.as_str(), JWT);
        assert!(matches!(
            FederatedAssertion::parse(" \n", "t"),
            Err(AssertionSourceError::Empty { .. })
        ));
        for bad in ["a.b", "a.b.c.d", "a..c", "a.b.c d", "a.b=.c", "<html>"] {
            let e = FederatedAssertion::parse(bad, "t").unwrap_err();
            assert!(
                matches!(e, AssertionSourceError::NotAJwt { .. }),
                "{bad}: {e}"
            );
            assert!(!e.to_string().contains(bad), "{e}");
        }
    }

    #[test]
    fn debug_is_redacted() {
        let a = FederatedAssertion::parse(JWT, "t").unwrap();
        assert!(!format!("{a:?}").contains("eyJ"));
        let g =
            GithubActionsSource::new("http://127.0.0.1:1/t?x=1", "secret-bearer", "aud").unwrap();
        let debug = format!("{g:?}");
        assert!(!debug.contains("secret-bearer"), "{debug}");
        let c = CommandSource::new("echo sekrit-arg");
        assert!(!format!("{c:?}").contains("sekrit"));
    }

    #[test]
    fn stderr_line_is_first_shortened_and_jwt_free() {
        let stderr = format!("\n  boom: got {JWT} back\nsecond line\n");
        let line = first_line(stderr.as_bytes()).unwrap();
        assert_eq!(line, "boom: got [redacted] back");
        let long = "x".repeat(500);
        assert_eq!(
            first_line(long.as_bytes()).unwrap().chars().count(),
            MAX_STDERR_LINE + 1
        );
        assert_eq!(first_line(b"  \n"), None);
    }

    #[test]
    fn github_url_must_be_https_except_loopback() {
        let e = GithubActionsSource::new("http://actions.example/t", "x", "aud").unwrap_err();
        assert!(matches!(e, AssertionSourceError::GithubUrl { .. }), "{e}");
        GithubActionsSource::new("http://127.0.0.1:9/t", "x", "aud").unwrap();
        GithubActionsSource::new("https://actions.example/t?api-version=2.0", "x", "aud").unwrap();
        let g = GithubActionsSource::new("https://a.example/t?api-version=2.0", "x", "api://m2m")
            .unwrap();
        assert_eq!(
            g.url_with_audience().as_str(),
            "https://a.example/t?api-version=2.0&audience=api%3A%2F%2Fm2m"
        );
    }

    #[test]
    fn identities_name_the_source_not_its_content() {
        assert_eq!(FileSource::new("/run/t").identity(), "file:/run/t");
        assert_eq!(EnvSource::new("TOK").identity(), "env:TOK");
        let a = CommandSource::new("cat /a").identity();
        assert!(a.starts_with("command:sha256:") && !a.contains("cat"));
        assert_ne!(a, CommandSource::new("cat /b").identity());
    }

    #[tokio::test]
    async fn command_timeout_kills_and_failure_keeps_stdout_out() {
        let start = std::time::Instant::now();
        let e = CommandSource::new("sleep 30")
            .timeout(Duration::from_millis(200))
            .assertion()
            .await
            .unwrap_err();
        assert!(matches!(e, AssertionSourceError::CommandTimeout { .. }));
        assert!(start.elapsed() < Duration::from_secs(5));
        // The whole process group dies at the timeout, not only the shell: the pipeline's
        // later step never runs.
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("still-running");
        let e = CommandSource::new(format!("sleep 1 && touch '{}'", marker.display()))
            .timeout(Duration::from_millis(200))
            .assertion()
            .await
            .unwrap_err();
        assert!(matches!(e, AssertionSourceError::CommandTimeout { .. }));
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(
            !marker.exists(),
            "a child of the command outlived the timeout"
        );
        let e = CommandSource::new(format!("echo {JWT}; echo 'no agent' >&2; exit 1"))
            .assertion()
            .await
            .unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("exit status: 1") && text.contains("no agent"),
            "{text}"
        );
        assert!(!text.contains("eyJ"), "{text}");
        let ok = CommandSource::new(format!("printf '{JWT}\\n'"))
            .assertion()
            .await
            .unwrap();
        assert_eq!(ok.as_str(), JWT);
    }
}
