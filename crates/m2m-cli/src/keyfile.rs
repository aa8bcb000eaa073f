//! Reading private key files for signing: precise messages for the ways a key file goes wrong,
//! and the passphrase of an encrypted key from `M2M_KEY_PASSPHRASE` or a prompt on a terminal.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use m2m_core::key::PrivateKey;
use zeroize::Zeroizing;

use crate::exit::{CliError, CliResult};

/// Environment variable holding the passphrase of an encrypted PKCS#8 key.
pub(crate) const PASSPHRASE_ENV: &str = "M2M_KEY_PASSPHRASE";

/// Reads a file, turning I/O errors into messages that name the file and the fix.
pub(crate) fn read_file(path: &Path, what: &str) -> CliResult<Vec<u8>> {
    std::fs::read(path).map_err(|e| {
        let err = CliError::local(format!(
            "cannot read {what} {}: {}",
            path.display(),
            io_reason(&e)
        ));
        match e.kind() {
            std::io::ErrorKind::NotFound if what == "key file" => {
                err.with_hint("create one with `m2m keygen --kid KID --out DIR`, or fix --key")
            }
            std::io::ErrorKind::PermissionDenied => err.with_hint(
                "check the file's owner and mode (a private key should be 0600 and yours)",
            ),
            _ => err,
        }
    })
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".to_owned(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        std::io::ErrorKind::IsADirectory => "it is a directory, not a file".to_owned(),
        _ => e.to_string(),
    }
}

/// The passphrase for a key being written (`m2m keygen --encrypt`): `M2M_KEY_PASSPHRASE`, else
/// asked twice on the terminal (they must match); never empty.
pub(crate) fn new_passphrase(path: &Path) -> CliResult<Zeroizing<String>> {
    if let Ok(pass) = std::env::var(PASSPHRASE_ENV) {
        let pass = Zeroizing::new(pass);
        if pass.is_empty() {
            return Err(CliError::local(format!("{PASSPHRASE_ENV} is empty")));
        }
        return Ok(pass);
    }
    if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        return Err(CliError::local(
            "--encrypt needs a passphrase and there is no terminal to ask",
        )
        .with_hint(format!("export {PASSPHRASE_ENV}=… (or run in a terminal)")));
    }
    let ask = |prompt: String| {
        rpassword::prompt_password(prompt)
            .map(Zeroizing::new)
            .map_err(|e| CliError::local(format!("cannot read the passphrase: {e}")))
    };
    let first = ask(format!("new passphrase for {}: ", path.display()))?;
    if first.is_empty() {
        return Err(CliError::local(
            "an empty passphrase does not protect the key",
        ));
    }
    let again = ask("the same passphrase again: ".to_owned())?;
    if *first != *again {
        return Err(CliError::local(
            "the passphrases differ; nothing was written",
        ));
    }
    Ok(first)
}

/// Loads the private key at `path` (`kid` chooses a key in a JWKS file), asking for a passphrase
/// only when the key turns out to be encrypted.
pub(crate) fn load_private_key(path: &Path, kid: Option<&str>) -> CliResult<PrivateKey> {
    let bytes = Zeroizing::new(read_file(path, "key file")?);
    let from_env = std::env::var(PASSPHRASE_ENV).ok().map(Zeroizing::new);
    let first = PrivateKey::from_bytes(&bytes, kid, from_env.as_ref().map(|p| p.as_bytes()));
    let result = match first {
        Err(m2m_core::Error::PassphraseRequired)
            if from_env.is_none()
                && std::io::stdin().is_terminal()
                && std::io::stderr().is_terminal() =>
        {
            let prompt = format!("passphrase for {}: ", path.display());
            let pass = rpassword::prompt_password(prompt)
                .map(Zeroizing::new)
                .map_err(|e| CliError::local(format!("cannot read the passphrase: {e}")))?;
            PrivateKey::from_bytes(&bytes, kid, Some(pass.as_bytes()))
        }
        other => other,
    };
    result.map_err(|e| {
        let hint = match &e {
            m2m_core::Error::PassphraseRequired => Some(format!(
                "export {PASSPHRASE_ENV}=… (or run in a terminal to be prompted)"
            )),
            m2m_core::Error::PublicKeyGiven => Some(
                "pass the private .pem written by `m2m keygen`, not the .jwks.json or a public key"
                    .to_owned(),
            ),
            m2m_core::Error::RsaKeyTooSmall { .. } => {
                Some("generate a new key: m2m keygen --kid KID --out DIR (RSA-4096)".to_owned())
            }
            m2m_core::Error::KidRequired(_) | m2m_core::Error::KidNotFound { .. } => {
                Some("pass --kid with one of the kids in the file".to_owned())
            }
            _ => None,
        };
        let err = CliError::local(format!("key file {}: {e}", path.display()));
        match hint {
            Some(h) => err.with_hint(h),
            None => err,
        }
    })
}

/// What the public JWKS `m2m keygen` writes beside a key (`DIR/KID.pem` → `DIR/KID.jwks.json`)
/// says about it: a PEM cannot say which algorithm it was made for, but the registered JWKS
/// does, and a server pins that algorithm.
#[derive(Debug)]
pub(crate) enum Sibling {
    /// The key file is not a `.pem`, or is a JWK that names its own alg: nothing to look for.
    NotApplicable,
    /// No readable JWKS at `path`.
    Absent {
        /// Where it was looked for.
        path: PathBuf,
    },
    /// The JWKS at `path` has no key with the kid (`--kid`, else the file stem).
    KidMissing {
        /// The JWKS file.
        path: PathBuf,
        /// The kids it has.
        kids: Vec<String>,
    },
    /// The JWKS at `path` has the kid; its `alg`, when it names a known one.
    Found {
        /// The JWKS file.
        path: PathBuf,
        /// Its `alg` for the kid.
        alg: Option<m2m_core::alg::Algorithm>,
    },
}

/// Looks for the JWKS beside `key_path` and the key `kid` (default: the file stem) in it.
pub(crate) fn sibling_jwks(key_path: &Path, kid: Option<&str>) -> Sibling {
    let Some(stem) = key_path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".pem"))
    else {
        return Sibling::NotApplicable;
    };
    let path = key_path.with_file_name(format!("{stem}.jwks.json"));
    let Some(jwks) = std::fs::read(&path)
        .ok()
        .and_then(|bytes| m2m_core::jwk::Jwks::from_slice(&bytes).ok())
    else {
        return Sibling::Absent { path };
    };
    match jwks.find(kid.unwrap_or(stem)) {
        Some(jwk) => Sibling::Found {
            alg: jwk
                .alg
                .as_deref()
                .and_then(m2m_core::alg::Algorithm::from_name),
            path,
        },
        None => Sibling::KidMissing {
            kids: jwks.keys.iter().filter_map(|k| k.kid.clone()).collect(),
            path,
        },
    }
}
