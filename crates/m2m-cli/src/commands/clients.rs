//! `m2m clients add|list|remove|rotate-secret|retire-secret`: edits the server's registry file
//! (and the `client_secret_jwt` secrets file) through m2m_server's editors, which re-validate
//! every edit before writing. A generated secret is printed once, alone on stdout.

use std::path::{Path, PathBuf};

use m2m_core::jwk::Jwks;
use m2m_core::secret::{ClientSecret, MIN_SUPPLIED_SECRET_LEN};
use m2m_server::{
    AuthMethod, DpopPolicy, NewClient, NewClientKeys, add_client, add_jwt_secret,
    add_secret_verifier, default_secrets_path, list_clients, remove_client, retire_jwt_secrets,
    retire_secret_verifiers,
};

use crate::cli::{ClientsArgs, ClientsCommand};
use crate::commands::{jwks, print_result};
use crate::exit::{CliError, CliResult};

/// Runs `m2m clients …`.
pub(crate) fn run(args: &ClientsArgs) -> CliResult {
    match &args.command {
        ClientsCommand::Add {
            clients,
            id,
            jwks: jwks_file,
            jwks_uri,
            alg,
            scope,
            resource,
            auth_method,
            secret_file,
            hmac_alg,
            secrets,
            dpop,
        } => {
            let method: AuthMethod = auth_method.parse().map_err(CliError::usage)?;
            let dpop = dpop
                .as_deref()
                .map(str::parse::<DpopPolicy>)
                .transpose()
                .map_err(CliError::usage)?;
            if method == AuthMethod::PrivateKeyJwt {
                let keys = match (jwks_file, jwks_uri) {
                    (Some(file), _) => NewClientKeys::Jwks(Jwks {
                        keys: jwks::public_jwks_from_file(file)?,
                    }),
                    (None, Some(uri)) => NewClientKeys::JwksUri(uri.clone()),
                    (None, None) => {
                        return Err(CliError::usage("pass --jwks FILE or --jwks-uri URL"));
                    }
                };
                let mut client = NewClient::new(id.clone(), keys);
                client.algs.clone_from(alg);
                client.scopes = scope.iter().filter(|s| !s.is_empty()).cloned().collect();
                client.resources.clone_from(resource);
                client.dpop = dpop;
                add_client(clients, &client).map_err(local)?;
                eprintln!("added client \"{id}\" to {}", clients.display());
                return Ok(());
            }
            if jwks_file.is_some() || jwks_uri.is_some() || !alg.is_empty() {
                return Err(CliError::usage(format!(
                    "a {method} client has no keys: drop --jwks, --jwks-uri and --alg"
                )));
            }
            let secret = new_secret(secret_file.as_deref())?;
            let mut client = NewClient::new(id.clone(), NewClientKeys::None);
            client.auth_method = method;
            client.dpop = dpop;
            client.scopes = scope.iter().filter(|s| !s.is_empty()).cloned().collect();
            client.resources.clone_from(resource);
            if method == AuthMethod::ClientSecretJwt {
                for a in hmac_alg {
                    let a = m2m_core::hmac::HmacAlg::from_name(a).ok_or_else(|| {
                        CliError::usage(format!("--hmac-alg {a}: choose HS256, HS384 or HS512"))
                    })?;
                    a.check_secret(&secret)?;
                }
                // The secret first (0600), then the client that needs it: a crash in between
                // leaves an unused secret, never a client the server cannot load.
                let path = secrets_path(clients, secrets.as_deref());
                add_jwt_secret(&path, id, &secret, None).map_err(local)?;
                add_client_with_algs(clients, &client, hmac_alg)?;
            } else {
                client.secret_verifier = Some(secret.verifier());
                add_client(clients, &client).map_err(local)?;
            }
            eprintln!(
                "added client \"{id}\" ({method}) to {}; its secret is on stdout and is not shown again",
                clients.display()
            );
            print_secret(secret_file.is_none(), &secret)
        }
        ClientsCommand::RotateSecret {
            clients,
            id,
            secret_file,
            expires_in,
            secrets,
        } => {
            let method = method_of(clients, id)?;
            let secret = new_secret(secret_file.as_deref())?;
            let expire_at = expires_in.map(|s| now_secs().saturating_add(s));
            match method {
                AuthMethod::ClientSecretJwt => {
                    let path = secrets_path(clients, secrets.as_deref());
                    add_jwt_secret(&path, id, &secret, expire_at).map_err(local)?;
                }
                m if m.uses_verifier() => {
                    add_secret_verifier(clients, id, &secret.verifier(), expire_at)
                        .map_err(local)?;
                }
                m => {
                    return Err(CliError::usage(format!(
                        "client \"{id}\" uses {m}, which has no secret"
                    )));
                }
            }
            eprintln!(
                "added a second secret for \"{id}\"; the old one works until {}",
                match expires_in {
                    Some(s) => format!("{s} s from now"),
                    None => "`m2m clients retire-secret`".to_owned(),
                }
            );
            print_secret(secret_file.is_none(), &secret)
        }
        ClientsCommand::RetireSecret {
            clients,
            id,
            secrets,
        } => {
            let removed = match method_of(clients, id)? {
                AuthMethod::ClientSecretJwt => {
                    retire_jwt_secrets(&secrets_path(clients, secrets.as_deref()), id)
                        .map_err(local)?
                }
                m if m.uses_verifier() => retire_secret_verifiers(clients, id).map_err(local)?,
                m => {
                    return Err(CliError::usage(format!(
                        "client \"{id}\" uses {m}, which has no secret"
                    )));
                }
            };
            eprintln!("retired {removed} old secret(s) of \"{id}\"; the newest stays valid");
            Ok(())
        }
        ClientsCommand::List { clients } => {
            let list = list_clients(clients).map_err(|e| CliError::local(e.to_string()))?;
            if list.is_empty() {
                eprintln!("no clients in {}", clients.display());
                return Ok(());
            }
            let lines: Vec<String> = list
                .iter()
                .map(|c| {
                    let mut line = format!("{}\t{}\t{}", c.id, c.auth_method, c.keys);
                    if !c.algs.is_empty() {
                        line.push_str(&format!("\talgs={}", c.algs.join(",")));
                    }
                    if !c.scopes.is_empty() {
                        line.push_str(&format!("\tscopes={}", c.scopes.join(",")));
                    }
                    line.push_str(&format!("\tdpop={}", c.dpop));
                    line
                })
                .collect();
            print_result(&lines.join("\n"))
        }
        ClientsCommand::Remove { clients, id } => {
            if method_of(clients, id).ok() == Some(AuthMethod::ClientSecretJwt) {
                m2m_server::remove_jwt_secrets(&default_secrets_path(clients), id)
                    .map_err(local)?;
            }
            let removed = remove_client(clients, id).map_err(|e| CliError::local(e.to_string()))?;
            if removed {
                eprintln!("removed client \"{id}\" from {}", clients.display());
                Ok(())
            } else {
                Err(CliError::local(format!(
                    "no client \"{id}\" in {}",
                    clients.display()
                )))
            }
        }
    }
}

fn local(e: m2m_server::RegistryError) -> CliError {
    CliError::local(e.to_string())
}

/// The registered method of `id`, read from the registry file.
fn method_of(clients: &Path, id: &str) -> CliResult<AuthMethod> {
    let list = list_clients(clients).map_err(local)?;
    let c = list
        .iter()
        .find(|c| c.id == id)
        .ok_or_else(|| CliError::local(format!("no client \"{id}\" in {}", clients.display())))?;
    c.auth_method.parse().map_err(CliError::local)
}

fn secrets_path(clients: &Path, secrets: Option<&Path>) -> PathBuf {
    secrets
        .map(Path::to_path_buf)
        .unwrap_or_else(|| default_secrets_path(clients))
}

/// A generated 256-bit secret, or the first line of `file` (at least 32 bytes).
fn new_secret(file: Option<&Path>) -> CliResult<ClientSecret> {
    let Some(file) = file else {
        return Ok(ClientSecret::generate()?);
    };
    let bytes = zeroize::Zeroizing::new(crate::keyfile::read_file(file, "secret file")?);
    let secret = ClientSecret::from_first_line(&bytes)
        .map_err(|e| CliError::local(format!("{}: {e}", file.display())))?;
    if secret.len() < MIN_SUPPLIED_SECRET_LEN {
        return Err(CliError::local(format!(
            "{}: the secret is {} bytes; at least {MIN_SUPPLIED_SECRET_LEN} are required",
            file.display(),
            secret.len()
        ))
        .with_hint("drop --secret-file to have a 256-bit secret generated"));
    }
    Ok(secret)
}

/// Prints a generated secret alone on stdout (a supplied one is not echoed).
fn print_secret(generated: bool, secret: &ClientSecret) -> CliResult {
    if !generated {
        return Ok(());
    }
    let text = secret
        .expose_str()
        .ok_or_else(|| CliError::local("the generated secret is not text"))?;
    print_result(text)
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Adds a `client_secret_jwt` client, writing `algs` when HMAC algorithms were given.
fn add_client_with_algs(clients: &Path, client: &NewClient, hmac_algs: &[String]) -> CliResult {
    add_client(clients, client).map_err(local)?;
    if hmac_algs.is_empty() {
        return Ok(());
    }
    // `NewClient::algs` holds signature algorithms only; HMAC names are set by a second,
    // re-validated edit of the just-added entry.
    m2m_server::set_client_algs(clients, &client.id, hmac_algs).map_err(local)
}
