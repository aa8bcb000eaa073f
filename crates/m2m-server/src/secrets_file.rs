//! The `client_secret_jwt` secrets file (`secrets.toml`): reading it (refused when group or others
//! can read it) and the edits behind `m2m clients add|rotate-secret|retire-secret`, written 0600.
//!
//! It exists because `client_secret_jwt` is the one method where the server must hold the secret
//! itself (an HMAC is checked with the key that made it); keeping it out of `clients.toml` keeps
//! the registry public configuration, as it is for every other method.
//!
//! ```toml
//! [[secret]]
//! client = "legacy-batch"
//! value = "…"
//! expires = 1767225600   # optional, Unix seconds
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use m2m_core::clock::UnixTime;
use m2m_core::secret::ClientSecret;
use serde::Deserialize;
use toml_edit::{ArrayOfTables, DocumentMut, Item, Table};
use zeroize::Zeroizing;

use crate::registry::{RegistryError, StoredSecret};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    secret: Vec<RawSecret>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecret {
    client: String,
    value: Zeroizing<String>,
    expires: Option<u64>,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> RegistryError + '_ {
    move |source| RegistryError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Refuses a secrets file that group or others may read (or write).
pub(crate) fn check_mode(path: &Path) -> Result<(), RegistryError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(io(path))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(RegistryError::Edit {
                path: path.to_path_buf(),
                message: format!(
                    "the secrets file is readable by group or others (mode {:o}); run chmod 600 on it",
                    mode & 0o777
                ),
            });
        }
    }
    Ok(())
}

/// Reads the secrets file: each client's secrets in file order (oldest first).
pub(crate) fn load(path: &Path) -> Result<HashMap<String, Vec<StoredSecret>>, RegistryError> {
    check_mode(path)?;
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(io(path))?);
    // toml's messages quote the offending line, which may hold a secret: say where, not what.
    let raw: RawFile = toml::from_str(&text).map_err(|e| RegistryError::Parse {
        path: path.to_path_buf(),
        message: format!(
            "not a valid secrets file{}",
            e.span()
                .map(|s| format!(" (at line {})", crate::registry::line_of(&text, s.start)))
                .unwrap_or_default()
        ),
    })?;
    let mut out: HashMap<String, Vec<StoredSecret>> = HashMap::new();
    for s in raw.secret {
        let secret =
            ClientSecret::new(s.value.as_bytes().to_vec()).map_err(|e| RegistryError::Edit {
                path: path.to_path_buf(),
                message: format!("client {:?}: {e}", s.client),
            })?;
        out.entry(s.client).or_default().push(StoredSecret {
            secret,
            expires: s.expires.map(UnixTime::from_secs),
        });
    }
    Ok(out)
}

/// Adds a secret for `client`. With `expire_others_at`, the client's existing secrets get that
/// expiry (a rotation with an end date); the file is created 0600 when absent.
pub fn add_jwt_secret(
    path: &Path,
    client: &str,
    secret: &ClientSecret,
    expire_others_at: Option<u64>,
) -> Result<(), RegistryError> {
    let mut doc = read_doc(path)?;
    let value = secret.expose_str().ok_or_else(|| RegistryError::Edit {
        path: path.to_path_buf(),
        message: "a client_secret_jwt secret must be UTF-8 text".to_owned(),
    })?;
    let array = secrets_array(&mut doc, path)?;
    if let Some(at) = expire_others_at {
        for t in array.iter_mut() {
            if t.get("client").and_then(Item::as_str) == Some(client) && t.get("expires").is_none()
            {
                t.insert(
                    "expires",
                    toml_edit::value(i64::try_from(at).unwrap_or(i64::MAX)),
                );
            }
        }
    }
    let mut table = Table::new();
    table.insert("client", toml_edit::value(client));
    table.insert("value", toml_edit::value(value));
    array.push(table);
    write_private(path, &doc.to_string())
}

/// Keeps only the newest secret of `client`; returns how many were removed.
pub fn retire_jwt_secrets(path: &Path, client: &str) -> Result<usize, RegistryError> {
    let mut doc = read_doc(path)?;
    let array = secrets_array(&mut doc, path)?;
    let mine = array
        .iter()
        .filter(|t| t.get("client").and_then(Item::as_str) == Some(client))
        .count();
    if mine <= 1 {
        return Ok(0);
    }
    let mut seen = 0;
    array.retain(|t| {
        if t.get("client").and_then(Item::as_str) != Some(client) {
            return true;
        }
        seen += 1;
        seen == mine
    });
    write_private(path, &doc.to_string())?;
    Ok(mine - 1)
}

/// Removes every secret of `client` (when the client is removed).
pub fn remove_jwt_secrets(path: &Path, client: &str) -> Result<(), RegistryError> {
    if !path.exists() {
        return Ok(());
    }
    let mut doc = read_doc(path)?;
    let array = secrets_array(&mut doc, path)?;
    array.retain(|t| t.get("client").and_then(Item::as_str) != Some(client));
    write_private(path, &doc.to_string())
}

fn read_doc(path: &Path) -> Result<DocumentMut, RegistryError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => {
            check_mode(path)?;
            Zeroizing::new(text)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Zeroizing::new(String::new()),
        Err(e) => return Err(io(path)(e)),
    };
    text.parse::<DocumentMut>()
        .map_err(|_| RegistryError::Parse {
            path: path.to_path_buf(),
            message: "not a valid secrets file".to_owned(),
        })
}

fn secrets_array<'d>(
    doc: &'d mut DocumentMut,
    path: &Path,
) -> Result<&'d mut ArrayOfTables, RegistryError> {
    if doc.get("secret").is_none() {
        doc.insert("secret", Item::ArrayOfTables(ArrayOfTables::new()));
    }
    doc.get_mut("secret")
        .and_then(Item::as_array_of_tables_mut)
        .ok_or_else(|| RegistryError::Edit {
            path: path.to_path_buf(),
            message: "`secret` is not an array of [[secret]] tables".to_owned(),
        })
}

/// Writes a sibling temp file created 0600, then renames it over `path`.
pub(crate) fn write_private(path: &Path, text: &str) -> Result<(), RegistryError> {
    use std::io::Write;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp).map_err(io(path))?;
    file.write_all(text.as_bytes()).map_err(io(path))?;
    file.sync_all().map_err(io(path))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(io(path))
}
