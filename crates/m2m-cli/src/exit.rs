//! Exit codes and the CLI's error type: every failure maps to one documented exit code, so
//! scripts can tell "fix your command" from "fix your key" from "the network" from "the server
//! said no" without parsing messages.

use std::fmt;

/// The exit codes of `m2m`, documented in `m2m --help` (`cli.rs`) and the README.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Exit {
    /// 1: the command ran, and found problems (`decode --lint`, `jwks check`).
    Findings = 1,
    /// 2: the command line or its input is wrong (clap's own errors use 2 as well).
    Usage = 2,
    /// 3: a local key, file or configuration problem; nothing was sent.
    Local = 3,
    /// 4: no usable answer from the server: connection, TLS, timeout, or a non-OAuth response.
    Transport = 4,
    /// 5: the server answered with an OAuth error (it rejected the request).
    Rejected = 5,
    /// 6: `m2m call` got an HTTP status other than 2xx from the API.
    HttpStatus = 6,
}

/// A failure, printed as `error: <message>` and, when there is one, `hint: <hint>`.
#[derive(Debug)]
pub(crate) struct CliError {
    pub(crate) exit: Exit,
    pub(crate) message: String,
    pub(crate) hint: Option<String>,
}

impl CliError {
    pub(crate) fn new(exit: Exit, message: impl Into<String>) -> Self {
        CliError {
            exit,
            message: message.into(),
            hint: None,
        }
    }

    pub(crate) fn usage(message: impl Into<String>) -> Self {
        CliError::new(Exit::Usage, message)
    }

    pub(crate) fn local(message: impl Into<String>) -> Self {
        CliError::new(Exit::Local, message)
    }

    pub(crate) fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// A problem already reported (e.g. lint findings printed one per line): exit code only.
    pub(crate) fn findings(message: impl Into<String>) -> Self {
        CliError::new(Exit::Findings, message)
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error: {}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\nhint: {hint}")?;
        }
        Ok(())
    }
}

impl From<m2m_core::Error> for CliError {
    fn from(e: m2m_core::Error) -> Self {
        let hint = match &e {
            m2m_core::Error::RsaKeyTooSmall { .. } => {
                Some("generate a new key: m2m keygen --kid KID --out DIR")
            }
            m2m_core::Error::PublicKeyGiven => Some("pass the .pem written by `m2m keygen`"),
            _ => None,
        };
        let err = CliError::local(e.to_string());
        match hint {
            Some(h) => err.with_hint(h),
            None => err,
        }
    }
}

impl From<m2m_client::Error> for CliError {
    fn from(e: m2m_client::Error) -> Self {
        use m2m_client::Error as E;
        let exit = match &e {
            E::ServerRejected(_) => Exit::Rejected,
            E::Config(_) | E::Assertion(_) | E::AssertionSource(_) => Exit::Local,
            _ => Exit::Transport,
        };
        // The message is the error's own one-line Display (for a rejection: the server's fields,
        // control characters escaped); the hint goes on our `hint:` line.
        let mut err = CliError::new(exit, e.to_string());
        if let Some(h) = e.hint() {
            err.hint = Some(h.to_string());
        } else if let E::Transport {
            kind: m2m_client::TransportKind::Timeout,
            ..
        } = &e
        {
            err.hint = Some("raise the limit with --timeout SECS, or check the network".to_owned());
        } else if let E::AssertionSource(m2m_client::AssertionSourceError::CommandTimeout {
            ..
        }) = &e
        {
            err.hint = Some(
                "raise the limit with --assertion-timeout SECS, or check the command".to_owned(),
            );
        } else if let E::Config(m2m_client::ConfigError::InsecureHttp { .. }) = &e {
            err.hint = Some(
                "use https; for a closed test network only, pass --dangerous-allow-insecure-http"
                    .to_owned(),
            );
        }
        err
    }
}

/// Result type of every command.
pub(crate) type CliResult<T = ()> = Result<T, CliError>;
