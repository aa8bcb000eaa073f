//! The DPoP key of `m2m token|call|proxy --dpop [--dpop-key FILE]`: a P-256 key made for this
//! run (ES256), or a key file, which is refused when group or others can read it: whoever reads
//! it can use every token bound to it, as long as those tokens live.

use std::path::Path;
use std::sync::Arc;

use m2m_client::DpopKey;

use crate::exit::{CliError, CliResult};
use crate::keyfile;
use crate::settings::Settings;

/// The key the settings ask for, if any.
pub(crate) fn load(s: &Settings) -> CliResult<Option<DpopKey>> {
    let Some(choice) = &s.dpop else {
        return Ok(None);
    };
    let key = match &choice.key_file {
        None => DpopKey::ephemeral()?,
        Some(path) => from_file(path)?,
    };
    tracing::debug!(
        jkt = key.thumbprint(),
        alg = key.algorithm().name(),
        persistent = key.is_persistent(),
        "DPoP key"
    );
    Ok(Some(key))
}

/// A persistent key from `path` (any format `--key` takes, encrypted ones too).
fn from_file(path: &Path) -> CliResult<DpopKey> {
    refuse_if_shared(path)?;
    let key = keyfile::load_private_key(path, None)?;
    Ok(DpopKey::from_key(Arc::new(key))?)
}

/// Refuses a key file group or others may read or write.
fn refuse_if_shared(path: &Path) -> CliResult {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path).map_err(|e| {
            CliError::local(format!("cannot read the DPoP key {}: {e}", path.display()))
        })?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(CliError::local(format!(
                "the DPoP key {} is open to group or others (mode {mode:o}): whoever reads it can use every token bound to it",
                path.display()
            ))
            .with_hint(format!("chmod 600 {}", path.display())));
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}
