//! Comment-preserving edits of the registry file, behind `m2m clients
//! add|remove|list|rotate-secret|retire-secret`.
//!
//! Edits go through `toml_edit` so an operator's comments and layout survive, and every edited
//! text is re-validated with [`Registry::parse`] before it is written (atomically, by rename), so
//! the command can never leave a file the server would refuse to start with.

use std::path::{Path, PathBuf};

use m2m_core::alg::Algorithm;
use m2m_core::jwk::Jwks;
use serde_json::Value;
use toml_edit::{Array, ArrayOfTables, DocumentMut, InlineTable, Item, Table};

use m2m_core::secret::SecretVerifier;

use crate::dpop::DpopPolicy;
use crate::registry::{AuthMethod, Registry, RegistryError};

/// Where a new client's keys come from.
#[derive(Clone, Debug)]
pub enum NewClientKeys {
    /// Written inline as a `[client.jwks]` table (public members only).
    Jwks(Jwks),
    /// A JWKS file, relative to the registry file's directory or absolute.
    JwksFile(PathBuf),
    /// A hosted JWKS.
    JwksUri(String),
    /// No keys yet.
    None,
}

/// A client to add with [`add_client`].
#[derive(Clone, Debug)]
pub struct NewClient {
    /// Its id (`iss` = `sub` of its assertions).
    pub id: String,
    /// How it authenticates (`private_key_jwt` unless set).
    pub auth_method: AuthMethod,
    /// For `client_secret_basic`/`client_secret_post`: the verifier of its secret (the secret
    /// itself is never written here).
    pub secret_verifier: Option<SecretVerifier>,
    /// Its keys.
    pub keys: NewClientKeys,
    /// Pinned algorithms; empty: derived from the keys when the registry is loaded.
    pub algs: Vec<Algorithm>,
    /// Scopes it may be granted.
    pub scopes: Vec<String>,
    /// Access-token `aud`.
    pub audience: Option<String>,
    /// RFC 8707 resource indicators it may ask for.
    pub resources: Vec<String>,
    /// Access-token lifetime in seconds.
    pub token_lifetime: Option<u64>,
    /// Rate limit per minute.
    pub rate_limit: Option<u32>,
    /// `dpop = "required" | "allowed"`; `None`: not written (allowed).
    pub dpop: Option<DpopPolicy>,
}

impl NewClient {
    /// A client with only an id and keys; set the other fields as needed.
    pub fn new(id: impl Into<String>, keys: NewClientKeys) -> Self {
        NewClient {
            id: id.into(),
            auth_method: AuthMethod::default(),
            secret_verifier: None,
            keys,
            algs: Vec::new(),
            scopes: Vec::new(),
            audience: None,
            resources: Vec::new(),
            token_lifetime: None,
            rate_limit: None,
            dpop: None,
        }
    }
}

/// What `m2m clients list` shows for one client, read without fetching or parsing keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientSummary {
    /// The id.
    pub id: String,
    /// `auth_method` as written (`private_key_jwt` when absent).
    pub auth_method: String,
    /// `inline JWKS (N keys)`, `jwks_file PATH`, `jwks_uri URL` or `no keys`.
    pub keys: String,
    /// Pinned algorithms as written (empty: derived).
    pub algs: Vec<String>,
    /// Scopes as written.
    pub scopes: Vec<String>,
    /// The DPoP policy (`allowed` when absent; `dpop_bound_access_tokens = true` is `required`).
    pub dpop: String,
}

/// Adds a client to the registry file (created if absent). Refuses a duplicate id, a JWKS with
/// private members, and anything the server would refuse to load.
pub fn add_client(path: &Path, client: &NewClient) -> Result<(), RegistryError> {
    let text = read_or_empty(path)?;
    let edited = add_client_to_str(&text, client, path)?;
    write_atomically(path, &edited)
}

/// Removes the client with this id; `Ok(false)` if there was none.
pub fn remove_client(path: &Path, id: &str) -> Result<bool, RegistryError> {
    let text = read_or_empty(path)?;
    match remove_client_from_str(&text, id, path)? {
        Some(edited) => {
            write_atomically(path, &edited)?;
            Ok(true)
        }
        None => Ok(false),
    }
}

/// Lists the clients in file order.
pub fn list_clients(path: &Path) -> Result<Vec<ClientSummary>, RegistryError> {
    let text = std::fs::read_to_string(path).map_err(|source| RegistryError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    list_clients_in_str(&text, path)
}

/// [`add_client`] on text: returns the edited text. `path` resolves relative `jwks_file`s and
/// names the file in errors.
pub(crate) fn add_client_to_str(
    text: &str,
    client: &NewClient,
    path: &Path,
) -> Result<String, RegistryError> {
    let mut doc = parse_doc(text, path)?;
    let edit_err = |message: String| RegistryError::Edit {
        path: path.to_path_buf(),
        message,
    };
    if client_ids(&doc).iter().any(|id| id == &client.id) {
        return Err(edit_err(format!(
            "a client with id {:?} already exists",
            client.id
        )));
    }
    let mut table = Table::new();
    table.insert("id", toml_edit::value(client.id.as_str()));
    if client.auth_method != AuthMethod::default() {
        table.insert("auth_method", toml_edit::value(client.auth_method.name()));
    }
    if let Some(verifier) = &client.secret_verifier {
        let mut entry = InlineTable::new();
        entry.insert("sha256", verifier.to_hex().into());
        let mut array = Array::new();
        array.push(toml_edit::Value::InlineTable(entry));
        table.insert("secret_verifiers", toml_edit::value(array));
    }
    match &client.keys {
        NewClientKeys::Jwks(jwks) => {
            jwks.ensure_public()
                .map_err(|e| edit_err(format!("refusing to register that JWKS: {e}")))?;
            table.insert("jwks", jwks_item(jwks).map_err(edit_err)?);
        }
        NewClientKeys::JwksFile(file) => {
            let file = file
                .to_str()
                .ok_or_else(|| edit_err("the jwks_file path is not UTF-8".to_owned()))?;
            table.insert("jwks_file", toml_edit::value(file));
        }
        NewClientKeys::JwksUri(uri) => {
            table.insert("jwks_uri", toml_edit::value(uri.as_str()));
        }
        NewClientKeys::None => {}
    }
    if !client.algs.is_empty() {
        table.insert(
            "algs",
            toml_edit::value(client.algs.iter().map(|a| a.name()).collect::<Array>()),
        );
    }
    if !client.scopes.is_empty() {
        table.insert(
            "scopes",
            toml_edit::value(client.scopes.iter().map(String::as_str).collect::<Array>()),
        );
    }
    if let Some(aud) = &client.audience {
        table.insert("audience", toml_edit::value(aud.as_str()));
    }
    if !client.resources.is_empty() {
        table.insert(
            "resources",
            toml_edit::value(
                client
                    .resources
                    .iter()
                    .map(String::as_str)
                    .collect::<Array>(),
            ),
        );
    }
    if let Some(lifetime) = client.token_lifetime {
        table.insert(
            "token_lifetime",
            toml_edit::value(i64::try_from(lifetime).unwrap_or(i64::MAX)),
        );
    }
    if let Some(limit) = client.rate_limit {
        table.insert("rate_limit", toml_edit::value(i64::from(limit)));
    }
    if let Some(dpop) = client.dpop {
        table.insert("dpop", toml_edit::value(dpop.name()));
    }
    match doc.get_mut("client") {
        Some(item) => item
            .as_array_of_tables_mut()
            .ok_or_else(|| edit_err("`client` is not an array of [[client]] tables".to_owned()))?
            .push(table),
        None => {
            let mut array = ArrayOfTables::new();
            array.push(table);
            doc.insert("client", Item::ArrayOfTables(array));
        }
    }
    let edited = doc.to_string();
    Registry::parse(&edited, path)?;
    Ok(edited)
}

/// [`remove_client`] on text: `Some(edited)` if the client was there.
pub(crate) fn remove_client_from_str(
    text: &str,
    id: &str,
    path: &Path,
) -> Result<Option<String>, RegistryError> {
    let mut doc = parse_doc(text, path)?;
    let Some(array) = doc.get_mut("client").and_then(Item::as_array_of_tables_mut) else {
        return Ok(None);
    };
    let before = array.len();
    array.retain(|t| t.get("id").and_then(Item::as_str) != Some(id));
    if array.len() == before {
        return Ok(None);
    }
    Ok(Some(doc.to_string()))
}

/// [`list_clients`] on text.
pub(crate) fn list_clients_in_str(
    text: &str,
    path: &Path,
) -> Result<Vec<ClientSummary>, RegistryError> {
    let doc = parse_doc(text, path)?;
    let Some(array) = doc.get("client").and_then(Item::as_array_of_tables) else {
        return Ok(Vec::new());
    };
    let strings = |t: &Table, key: &str| -> Vec<String> {
        t.get(key)
            .and_then(Item::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    Ok(array
        .iter()
        .map(|t| {
            let keys = if let Some(jwks) = t.get("jwks") {
                let n = jwks.get("keys").map_or(0, |k| {
                    k.as_array_of_tables()
                        .map(|a| a.len())
                        .or_else(|| k.as_array().map(|a| a.len()))
                        .unwrap_or(0)
                });
                format!("inline JWKS ({n} keys)")
            } else if let Some(file) = t.get("jwks_file").and_then(Item::as_str) {
                format!("jwks_file {file}")
            } else if let Some(uri) = t.get("jwks_uri").and_then(Item::as_str) {
                format!("jwks_uri {uri}")
            } else if let Some(n) = t.get("secret_verifiers").and_then(Item::as_array) {
                format!("secret verifiers ({} stored)", n.len())
            } else {
                "no keys".to_owned()
            };
            ClientSummary {
                id: t
                    .get("id")
                    .and_then(Item::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                auth_method: t
                    .get("auth_method")
                    .and_then(Item::as_str)
                    .unwrap_or(AuthMethod::default().name())
                    .to_owned(),
                keys,
                algs: strings(t, "algs"),
                scopes: strings(t, "scopes"),
                dpop: dpop_of(t),
            }
        })
        .collect())
}

/// A client table's DPoP policy as `m2m clients list` shows it.
fn dpop_of(t: &Table) -> String {
    match (
        t.get("dpop").and_then(Item::as_str),
        t.get("dpop_bound_access_tokens").and_then(Item::as_bool),
    ) {
        (Some(name), _) => name.to_owned(),
        (None, Some(true)) => DpopPolicy::Required.name().to_owned(),
        (None, _) => DpopPolicy::Allowed.name().to_owned(),
    }
}

/// Adds a verifier to a `client_secret_basic`/`client_secret_post` client (rotation: both the
/// old and the new secret work). With `expire_others_at` (Unix seconds), the verifiers it
/// already had stop being accepted then.
pub fn add_secret_verifier(
    path: &Path,
    id: &str,
    verifier: &SecretVerifier,
    expire_others_at: Option<u64>,
) -> Result<(), RegistryError> {
    edit_verifiers(path, id, |array| {
        if let Some(at) = expire_others_at {
            for v in array.iter_mut() {
                if let Some(t) = v.as_inline_table_mut()
                    && !t.contains_key("expires")
                {
                    t.insert("expires", i64::try_from(at).unwrap_or(i64::MAX).into());
                }
            }
        }
        let mut entry = InlineTable::new();
        entry.insert("sha256", verifier.to_hex().into());
        array.push(toml_edit::Value::InlineTable(entry));
    })
}

/// Keeps only the newest verifier of a client (ends a rotation); returns how many were removed.
pub fn retire_secret_verifiers(path: &Path, id: &str) -> Result<usize, RegistryError> {
    let mut removed = 0;
    edit_verifiers(path, id, |array| {
        while array.len() > 1 {
            array.remove(0);
            removed += 1;
        }
    })?;
    Ok(removed)
}

/// Sets `algs` of an existing client to these names as written (e.g. `HS384` for a
/// `client_secret_jwt` client); re-validated before writing.
pub fn set_client_algs(path: &Path, id: &str, algs: &[String]) -> Result<(), RegistryError> {
    let text = std::fs::read_to_string(path).map_err(|source| RegistryError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut doc = parse_doc(&text, path)?;
    let table = doc
        .get_mut("client")
        .and_then(Item::as_array_of_tables_mut)
        .and_then(|a| {
            a.iter_mut()
                .find(|t| t.get("id").and_then(Item::as_str) == Some(id))
        })
        .ok_or_else(|| RegistryError::Edit {
            path: path.to_path_buf(),
            message: format!("no client with id {id:?}"),
        })?;
    table.insert(
        "algs",
        toml_edit::value(algs.iter().map(String::as_str).collect::<Array>()),
    );
    let edited = doc.to_string();
    Registry::parse(&edited, path)?;
    write_atomically(path, &edited)
}

fn edit_verifiers(
    path: &Path,
    id: &str,
    edit: impl FnOnce(&mut Array),
) -> Result<(), RegistryError> {
    let text = std::fs::read_to_string(path).map_err(|source| RegistryError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut doc = parse_doc(&text, path)?;
    let edit_err = |message: String| RegistryError::Edit {
        path: path.to_path_buf(),
        message,
    };
    let table = doc
        .get_mut("client")
        .and_then(Item::as_array_of_tables_mut)
        .and_then(|a| {
            a.iter_mut()
                .find(|t| t.get("id").and_then(Item::as_str) == Some(id))
        })
        .ok_or_else(|| edit_err(format!("no client with id {id:?}")))?;
    let array = table
        .get_mut("secret_verifiers")
        .and_then(Item::as_array_mut)
        .ok_or_else(|| {
            edit_err(format!(
                "client {id:?} has no `secret_verifiers` (it does not use client_secret_basic or client_secret_post)"
            ))
        })?;
    edit(array);
    let edited = doc.to_string();
    Registry::parse(&edited, path)?;
    write_atomically(path, &edited)
}

pub(crate) fn parse_doc(text: &str, path: &Path) -> Result<DocumentMut, RegistryError> {
    text.parse::<DocumentMut>()
        .map_err(|e| RegistryError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_owned(),
        })
}

fn client_ids(doc: &DocumentMut) -> Vec<String> {
    doc.get("client")
        .and_then(Item::as_array_of_tables)
        .map(|a| {
            a.iter()
                .filter_map(|t| t.get("id").and_then(Item::as_str).map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// `[client.jwks]` with one `[[client.jwks.keys]]` table per key, members as plain key = value
/// lines (an RSA-4096 modulus does not fit an inline table a human could read).
pub(crate) fn jwks_item(jwks: &Jwks) -> Result<Item, String> {
    let mut keys = ArrayOfTables::new();
    for jwk in &jwks.keys {
        let json = serde_json::to_value(jwk.to_public())
            .map_err(|e| format!("cannot serialise JWK: {e}"))?;
        let Value::Object(members) = json else {
            return Err("a JWK is not a JSON object".to_owned());
        };
        let mut table = Table::new();
        for (name, value) in members {
            if let Some(v) = json_to_toml(&value) {
                table.insert(&name, Item::Value(v));
            }
        }
        keys.push(table);
    }
    let mut jwks_table = Table::new();
    jwks_table.insert("keys", Item::ArrayOfTables(keys));
    Ok(Item::Table(jwks_table))
}

fn json_to_toml(value: &Value) -> Option<toml_edit::Value> {
    Some(match value {
        Value::Null => return None,
        Value::Bool(b) => (*b).into(),
        Value::Number(n) => match n.as_i64() {
            Some(i) => i.into(),
            None => n.as_f64()?.into(),
        },
        Value::String(s) => s.as_str().into(),
        Value::Array(items) => {
            toml_edit::Value::Array(items.iter().filter_map(json_to_toml).collect())
        }
        Value::Object(map) => {
            let mut inline = InlineTable::new();
            for (k, v) in map {
                if let Some(v) = json_to_toml(v) {
                    inline.insert(k, v);
                }
            }
            toml_edit::Value::InlineTable(inline)
        }
    })
}

pub(crate) fn read_or_empty(path: &Path) -> Result<String, RegistryError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(source) => Err(RegistryError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Writes to a sibling temp file then renames, so a crash never leaves half a registry.
pub(crate) fn write_atomically(path: &Path, text: &str) -> Result<(), RegistryError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let io = |source| RegistryError::Io {
        path: path.to_path_buf(),
        source,
    };
    std::fs::write(&tmp, text).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}
