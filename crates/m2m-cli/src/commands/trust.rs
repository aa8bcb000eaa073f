//! `m2m trust add|list|remove`: edits the `[[trust]]` entries of the server's registry file
//! (workload issuers whose tokens the server accepts as the jwt-bearer grant or a federated
//! client assertion) through m2m_server's editors, which re-validate every edit before writing.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use m2m_core::jwk::Jwks;
use m2m_server::{NewTrust, SubjectRule, TrustGrant, TrustKeySource, add_trust, list_trusts};

use crate::commands::{jwks, print_result};
use crate::exit::{CliError, CliResult};

/// `m2m trust`.
#[derive(Debug, Args)]
pub(crate) struct TrustArgs {
    #[command(subcommand)]
    pub(crate) command: TrustCommand,
}

/// `m2m trust` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum TrustCommand {
    /// Trust a workload issuer's tokens for a subject (keys by OIDC discovery unless --jwks or
    /// --jwks-uri).
    #[command(after_help = "Examples:
  m2m trust add --clients clients.toml \\
    --issuer https://token.actions.githubusercontent.com \\
    --subject repo:org/app:ref:refs/heads/main \\
    --claim repository=org/app --client-id deployer
  m2m trust add --clients clients.toml --issuer https://k8s.example \\
    --subject-prefix system:serviceaccount:prod: \\
    --claim kubernetes.io/namespace=prod --scope read
  m2m trust add --clients clients.toml --issuer https://spire.example \\
    --subject-prefix spiffe://example.org/ --scope read --allow-reuse")]
    Add(Box<TrustAddArgs>),
    /// List the trusted issuers' entries.
    #[command(after_help = "Examples:\n  m2m trust list --clients clients.toml")]
    List {
        /// Client registry (TOML).
        #[arg(long, env = "M2M_CLIENTS", value_name = "FILE")]
        clients: PathBuf,
    },
    /// Remove an issuer's entries (only the one for a subject or prefix with --subject).
    #[command(after_help = "Examples:
  m2m trust remove --clients clients.toml --issuer https://k8s.example")]
    Remove {
        /// Client registry (TOML).
        #[arg(long, env = "M2M_CLIENTS", value_name = "FILE")]
        clients: PathBuf,
        /// The issuer identifier.
        #[arg(long, value_name = "URL")]
        issuer: String,
        /// Only the entry with this `subject` or `subject_prefix`.
        #[arg(long, value_name = "S")]
        subject: Option<String>,
    },
}

/// `m2m trust add` (boxed in [`TrustCommand`]: far larger than the other variants).
#[derive(Debug, Args)]
pub(crate) struct TrustAddArgs {
    /// Client registry (TOML); created if missing.
    #[arg(long, env = "M2M_CLIENTS", value_name = "FILE")]
    pub(crate) clients: PathBuf,
    /// The issuer identifier (the tokens' exact `iss`).
    #[arg(long, value_name = "URL")]
    pub(crate) issuer: String,
    /// The issuer's public JWKS file, written into the registry (no fetching).
    #[arg(long, value_name = "FILE", conflicts_with = "jwks_uri")]
    pub(crate) jwks: Option<PathBuf>,
    /// The issuer's JWKS URL (skips discovery).
    #[arg(long, value_name = "URL")]
    pub(crate) jwks_uri: Option<String>,
    /// The exact `sub` admitted.
    #[arg(
        long,
        value_name = "S",
        conflicts_with = "subject_prefix",
        required_unless_present = "subject_prefix"
    )]
    pub(crate) subject: Option<String>,
    /// Admit every `sub` starting with this.
    #[arg(long, value_name = "P")]
    pub(crate) subject_prefix: Option<String>,
    /// A claim that must match too (repeatable); `a/b` reads nested objects.
    #[arg(long, value_name = "NAME=VALUE")]
    pub(crate) claim: Vec<String>,
    /// The registered client a matching token acts as.
    #[arg(
        long,
        value_name = "ID",
        conflicts_with = "scope",
        required_unless_present = "scope"
    )]
    pub(crate) client_id: Option<String>,
    /// Or: scopes granted to the token's subject (repeat or comma-separate).
    #[arg(long, value_delimiter = ',', value_name = "S")]
    pub(crate) scope: Vec<String>,
    /// An `aud` the workload's tokens may carry (repeatable; default: this server's issuer
    /// and token URL).
    #[arg(long, value_name = "URI")]
    pub(crate) audience: Vec<String>,
    /// With --scope: the access tokens' `aud` (default: the issuer).
    #[arg(long, value_name = "URI", requires = "scope")]
    pub(crate) token_audience: Option<String>,
    /// Longest accepted token lifetime (exp - iat), seconds; default 3600.
    #[arg(long, value_name = "SECONDS")]
    pub(crate) max_lifetime: Option<u64>,
    /// Accept the same token again until it expires (SPIRE reuses JWT-SVIDs); default:
    /// each token once, `jti` required.
    #[arg(long)]
    pub(crate) allow_reuse: bool,
}

/// Runs `m2m trust …`.
pub(crate) fn run(args: &TrustArgs) -> CliResult {
    match &args.command {
        TrustCommand::Add(add) => {
            let TrustAddArgs {
                clients,
                issuer,
                jwks: jwks_file,
                jwks_uri,
                subject,
                subject_prefix,
                claim,
                client_id,
                scope,
                audience,
                token_audience,
                max_lifetime,
                allow_reuse,
            } = &**add;
            let rule = match (subject, subject_prefix) {
                (Some(s), _) => SubjectRule::Exact(s.clone()),
                (None, Some(p)) => SubjectRule::Prefix(p.clone()),
                (None, None) => {
                    return Err(CliError::usage("pass --subject S or --subject-prefix P"));
                }
            };
            let mut trust = NewTrust::new(issuer.clone(), rule);
            if let Some(file) = jwks_file {
                trust.jwks = Some(Jwks {
                    keys: jwks::public_jwks_from_file(file)?,
                });
            }
            trust.jwks_uri.clone_from(jwks_uri);
            for c in claim {
                let Some((name, value)) = c.split_once('=') else {
                    return Err(CliError::usage(format!(
                        "--claim {c:?}: write NAME=VALUE (e.g. repository=org/app)"
                    )));
                };
                trust.claims.push((name.to_owned(), value.to_owned()));
            }
            trust.client_id.clone_from(client_id);
            trust.scopes = scope.iter().filter(|s| !s.is_empty()).cloned().collect();
            trust.audiences.clone_from(audience);
            trust.token_audience.clone_from(token_audience);
            trust.max_lifetime = *max_lifetime;
            trust.allow_reuse = *allow_reuse;
            add_trust(clients, &trust).map_err(|e| CliError::local(e.to_string()))?;
            eprintln!("trusted {issuer} in {}", clients.display());
            Ok(())
        }
        TrustCommand::List { clients } => {
            let list = list_trusts(clients).map_err(|e| CliError::local(e.to_string()))?;
            if list.is_empty() {
                eprintln!("no trusted issuers in {}", clients.display());
                return Ok(());
            }
            let lines: Vec<String> = list
                .iter()
                .map(|t| {
                    let subject = match &t.subject {
                        SubjectRule::Exact(s) => format!("subject={s}"),
                        SubjectRule::Prefix(p) => format!("subject_prefix={p}"),
                    };
                    let grant = match &t.grant {
                        TrustGrant::Client(id) => format!("client_id={id}"),
                        TrustGrant::Principal { scopes, .. } => {
                            format!("scopes={}", scopes.join(","))
                        }
                    };
                    let keys = match &t.keys {
                        TrustKeySource::Oidc => "oidc".to_owned(),
                        TrustKeySource::Rfc8414 => "rfc8414".to_owned(),
                        TrustKeySource::JwksUri(u) => u.to_string(),
                        TrustKeySource::Static(k) => format!("{} static key(s)", k.len()),
                    };
                    let mut line = format!(
                        "{}\t{subject}\t{grant}\tkeys={keys}\tmax_lifetime={}\treuse={}",
                        t.issuer,
                        t.max_lifetime.as_secs(),
                        t.reuse.name()
                    );
                    for (name, value) in &t.claims {
                        line.push_str(&format!("\t{name}={value}"));
                    }
                    line
                })
                .collect();
            print_result(&lines.join("\n"))
        }
        TrustCommand::Remove {
            clients,
            issuer,
            subject,
        } => {
            let removed = m2m_server::remove_trust(clients, issuer, subject.as_deref())
                .map_err(|e| CliError::local(e.to_string()))?;
            if removed == 0 {
                return Err(CliError::local(format!(
                    "no [[trust]] entry for {issuer} in {}",
                    clients.display()
                )));
            }
            eprintln!(
                "removed {removed} entry(ies) for {issuer} from {}",
                clients.display()
            );
            Ok(())
        }
    }
}
