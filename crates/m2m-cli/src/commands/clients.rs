//! `m2m clients add|list|remove`: edits the server's registry file through m2m_server's
//! comment-preserving editor (which re-validates every edit before writing).

use m2m_core::jwk::Jwks;
use m2m_server::{NewClient, NewClientKeys, add_client, list_clients, remove_client};

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
        } => {
            let keys = match (jwks_file, jwks_uri) {
                (Some(file), _) => NewClientKeys::Jwks(Jwks {
                    keys: jwks::public_jwks_from_file(file)?,
                }),
                (None, Some(uri)) => NewClientKeys::JwksUri(uri.clone()),
                (None, None) => return Err(CliError::usage("pass --jwks FILE or --jwks-uri URL")),
            };
            let mut client = NewClient::new(id.clone(), keys);
            client.algs.clone_from(alg);
            client.scopes = scope.iter().filter(|s| !s.is_empty()).cloned().collect();
            client.resources.clone_from(resource);
            add_client(clients, &client).map_err(|e| CliError::local(e.to_string()))?;
            eprintln!("added client \"{id}\" to {}", clients.display());
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
                    let mut line = format!("{}\t{}", c.id, c.keys);
                    if !c.algs.is_empty() {
                        line.push_str(&format!("\talgs={}", c.algs.join(",")));
                    }
                    if !c.scopes.is_empty() {
                        line.push_str(&format!("\tscopes={}", c.scopes.join(",")));
                    }
                    line
                })
                .collect();
            print_result(&lines.join("\n"))
        }
        ClientsCommand::Remove { clients, id } => {
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
