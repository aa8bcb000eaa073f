//! The server's own error type: what can stop it from starting or from editing its files.
//!
//! Request-level refusals are not errors here; they are `m2m_core::validate::Rejection`s turned
//! into HTTP responses by [`crate::response`].

use std::path::PathBuf;

use crate::registry::RegistryError;

/// Why the server could not start, stop cleanly, or manage its key files.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is inconsistent (e.g. the issuer is not an http(s) URL).
    #[error("invalid server configuration: {0}")]
    Config(String),
    /// The client registry could not be loaded or edited.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The replay store could not be opened.
    #[error("replay store: {0}")]
    Store(#[from] crate::replay::StoreError),
    /// The server's signing keys could not be read, generated or written.
    #[error("server key {path}: {reason}")]
    Keys {
        /// The file or directory concerned.
        path: PathBuf,
        /// What went wrong (never key material).
        reason: String,
    },
    /// Binding the listener or serving failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A core operation (key generation, signing) failed.
    #[error(transparent)]
    Core(#[from] m2m_core::Error),
}
