//! `m2m keygen`: a new key pair — the private key as PKCS#8 PEM created 0600 (never
//! overwriting), and the public JWKS to register with the token endpoint.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use m2m_core::jwk::Jwks;
use m2m_core::key::{KeySpec, PrivateKey};
use zeroize::Zeroizing;

use crate::cli::KeygenArgs;
use crate::exit::{CliError, CliResult};
use crate::keyfile;
use crate::spinner::with_spinner;

/// Runs `m2m keygen`.
pub(crate) fn run(args: &KeygenArgs) -> CliResult {
    let spec = KeySpec::for_alg(args.alg, args.bits);
    if let Some(kid) = &args.kid {
        check_kid(kid)?;
    }
    std::fs::create_dir_all(&args.out).map_err(|e| {
        CliError::local(format!(
            "cannot create directory {}: {e}",
            args.out.display()
        ))
    })?;
    // Refuse early (before seconds of RSA generation) when a kid is given and the files exist.
    if let Some(kid) = &args.kid {
        let (pem, jwks) = paths(&args.out, kid);
        refuse_existing(&pem)?;
        refuse_existing(&jwks)?;
    }
    // Ask before seconds of RSA generation, so a mistyped passphrase costs nothing.
    let passphrase = if args.encrypt {
        let shown = args
            .kid
            .as_ref()
            .map_or_else(|| args.out.join("KID.pem"), |kid| paths(&args.out, kid).0);
        Some(keyfile::new_passphrase(&shown)?)
    } else {
        None
    };
    let label = match spec {
        KeySpec::Rsa { bits } => format!("generating an RSA-{bits} key"),
        other => format!("generating a {other:?} key"),
    };
    let key = with_spinner(&label, || PrivateKey::generate(spec))?;
    let kid = args
        .kid
        .clone()
        .unwrap_or_else(|| key.public_key().thumbprint());
    let (pem_path, jwks_path) = paths(&args.out, &kid);

    let mut jwk = key.public_key().to_jwk();
    jwk.kid = Some(kid.clone());
    jwk.alg = Some(args.alg.name().to_owned());
    jwk.use_ = Some("sig".to_owned());
    let jwks = Jwks { keys: vec![jwk] };
    // Belt and braces: a public JWKS must never carry private members.
    jwks.ensure_public()?;
    let jwks_text = serde_json::to_string_pretty(&jwks)
        .map_err(|e| CliError::local(format!("cannot encode the JWKS: {e}")))?;

    let pem = match &passphrase {
        Some(pass) => Zeroizing::new(key.to_encrypted_pkcs8_pem(pass.as_bytes())?),
        None => key.to_pkcs8_pem()?,
    };
    write_new(&pem_path, pem.as_bytes(), true)?;
    if let Err(e) = write_new(&jwks_path, format!("{jwks_text}\n").as_bytes(), false) {
        // Do not leave a private key without its public half (and a kid that will collide).
        let _ = std::fs::remove_file(&pem_path);
        return Err(e);
    }
    eprintln!(
        "wrote {} (private key, {}{}, mode 0600: keep it secret)\nwrote {} (public JWKS, kid \"{kid}\", alg {})",
        pem_path.display(),
        key.kind(),
        if passphrase.is_some() {
            ", encrypted"
        } else {
            ""
        },
        jwks_path.display(),
        args.alg
    );
    eprintln!(
        "next: register {} with the token endpoint (NHS: upload it or host it for your app in the developer portal;\n      m2m serve: m2m clients add --clients clients.toml --id CLIENT_ID --jwks {}), then\n      m2m token --key {} --kid {kid} --client-id CLIENT_ID --token-url URL",
        jwks_path.display(),
        jwks_path.display(),
        pem_path.display()
    );
    Ok(())
}

fn paths(dir: &Path, kid: &str) -> (PathBuf, PathBuf) {
    (
        dir.join(format!("{kid}.pem")),
        dir.join(format!("{kid}.jwks.json")),
    )
}

/// A kid becomes a file name: keep it to a safe, portable character set.
fn check_kid(kid: &str) -> CliResult {
    let ok = !kid.is_empty()
        && kid.len() <= 128
        && !kid.starts_with('.')
        && kid
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(CliError::usage(format!(
            "kid {kid:?} cannot be used as a file name: use letters, digits, '-', '_' and '.' (not leading)"
        )))
    }
}

fn refuse_existing(path: &Path) -> CliResult {
    if path.exists() {
        return Err(CliError::local(format!(
            "{} already exists; refusing to overwrite it",
            path.display()
        ))
        .with_hint("choose another --kid or --out, or move the old file away"));
    }
    Ok(())
}

/// Creates `path` exclusively (`create_new`), 0600 for private keys from the first byte.
fn write_new(path: &Path, bytes: &[u8], private: bool) -> CliResult {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(if private { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            CliError::local(format!(
                "{} already exists; refusing to overwrite it",
                path.display()
            ))
            .with_hint("choose another --kid or --out, or move the old file away")
        } else {
            CliError::local(format!("cannot create {}: {e}", path.display()))
        }
    })?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| CliError::local(format!("cannot write {}: {e}", path.display())))
}
