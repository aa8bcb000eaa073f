//! Comment-preserving edits of the registry's `[[trust]]` tables, behind `m2m trust
//! add|list|remove`. Like `m2m clients`, every edited text is re-validated with
//! [`Registry::parse`] before it is written (atomically), so the command cannot leave a file the
//! server would refuse.

use std::path::Path;

use m2m_core::jwk::Jwks;

use toml_edit::{Array, InlineTable, Item, Table};

use super::{SubjectRule, Trust};
use crate::registry::{Registry, RegistryError};
use crate::registry_edit::{jwks_item, parse_doc, read_or_empty, write_atomically};

/// A `[[trust]]` entry to add with [`add_trust`].
#[derive(Clone, Debug)]
pub struct NewTrust {
    /// The issuer identifier.
    pub issuer: String,
    /// The issuer's public keys, written inline as a `[trust.jwks]` table; `None` with no
    /// `jwks_uri` either: OIDC discovery.
    pub jwks: Option<Jwks>,
    /// The issuer's JWKS URL.
    pub jwks_uri: Option<String>,
    /// Which subjects match.
    pub subject: SubjectRule,
    /// Claims that must match too (`NAME`, `VALUE`).
    pub claims: Vec<(String, String)>,
    /// The registered client a match acts as; `None`: a principal with `scopes`.
    pub client_id: Option<String>,
    /// The principal's scopes (without `client_id`).
    pub scopes: Vec<String>,
    /// Accepted `aud` values of the workload's tokens; empty: this server's issuer and token URL.
    pub audiences: Vec<String>,
    /// The principal's access-token audience.
    pub token_audience: Option<String>,
    /// Longest accepted token lifetime in seconds; `None`: 3600.
    pub max_lifetime: Option<u64>,
    /// `reuse = "allow-within-lifetime"` (SPIRE) instead of single use.
    pub allow_reuse: bool,
}

impl NewTrust {
    /// An entry for `issuer` and `subject`, mapping to nothing yet (set `client_id` or
    /// `scopes`), keys by OIDC discovery.
    pub fn new(issuer: impl Into<String>, subject: SubjectRule) -> Self {
        NewTrust {
            issuer: issuer.into(),
            jwks: None,
            jwks_uri: None,
            subject,
            claims: Vec::new(),
            client_id: None,
            scopes: Vec::new(),
            audiences: Vec::new(),
            token_audience: None,
            max_lifetime: None,
            allow_reuse: false,
        }
    }
}

/// Appends a `[[trust]]` entry (validated with the rest of the file first).
pub fn add_trust(path: &Path, trust: &NewTrust) -> Result<(), RegistryError> {
    let text = read_or_empty(path)?;
    let edited = add_trust_to_str(&text, trust, path)?;
    write_atomically(path, &edited)
}

fn add_trust_to_str(text: &str, trust: &NewTrust, path: &Path) -> Result<String, RegistryError> {
    let mut doc = parse_doc(text, path)?;
    let mut table = Table::new();
    table.insert("issuer", toml_edit::value(trust.issuer.as_str()));
    if let Some(jwks) = &trust.jwks {
        let edit_err = |message: String| RegistryError::Edit {
            path: path.to_path_buf(),
            message,
        };
        jwks.ensure_public()
            .map_err(|e| edit_err(format!("refusing to register that JWKS: {e}")))?;
        table.insert("jwks", jwks_item(jwks).map_err(edit_err)?);
    }
    if let Some(uri) = &trust.jwks_uri {
        table.insert("jwks_uri", toml_edit::value(uri.as_str()));
    }
    if !trust.audiences.is_empty() {
        table.insert("audiences", toml_edit::value(strings(&trust.audiences)));
    }
    match &trust.subject {
        SubjectRule::Exact(s) => table.insert("subject", toml_edit::value(s.as_str())),
        SubjectRule::Prefix(p) => table.insert("subject_prefix", toml_edit::value(p.as_str())),
    };
    if !trust.claims.is_empty() {
        let mut claims = InlineTable::new();
        for (name, value) in &trust.claims {
            claims.insert(name, value.as_str().into());
        }
        table.insert("claims", toml_edit::value(claims));
    }
    if let Some(id) = &trust.client_id {
        table.insert("client_id", toml_edit::value(id.as_str()));
    }
    if !trust.scopes.is_empty() {
        table.insert("scopes", toml_edit::value(strings(&trust.scopes)));
    }
    if let Some(aud) = &trust.token_audience {
        table.insert("token_audience", toml_edit::value(aud.as_str()));
    }
    if let Some(secs) = trust.max_lifetime {
        let secs = i64::try_from(secs).unwrap_or(i64::MAX);
        table.insert("max_lifetime", toml_edit::value(secs));
    }
    if trust.allow_reuse {
        table.insert("reuse", toml_edit::value("allow-within-lifetime"));
    }
    let entries = doc
        .entry("trust")
        .or_insert(Item::ArrayOfTables(Default::default()));
    let Some(entries) = entries.as_array_of_tables_mut() else {
        return Err(RegistryError::Edit {
            path: path.to_path_buf(),
            message: "`trust` is not an array of tables".to_owned(),
        });
    };
    entries.push(table);
    let edited = doc.to_string();
    Registry::parse(&edited, path)?;
    Ok(edited)
}

fn strings(items: &[String]) -> Array {
    items.iter().map(String::as_str).collect()
}

/// The file's `[[trust]]` entries, validated, in file order.
pub fn list_trusts(path: &Path) -> Result<Vec<Trust>, RegistryError> {
    let text = std::fs::read_to_string(path).map_err(|source| RegistryError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let registry = Registry::parse(&text, path)?;
    Ok(registry.trusts().iter().map(|t| (**t).clone()).collect())
}

/// Removes the entries of `issuer` — only those whose `subject` or `subject_prefix` equals
/// `subject` when given. Returns how many were removed.
pub fn remove_trust(
    path: &Path,
    issuer: &str,
    subject: Option<&str>,
) -> Result<usize, RegistryError> {
    let text = read_or_empty(path)?;
    let mut doc = parse_doc(&text, path)?;
    let Some(entries) = doc.get_mut("trust").and_then(Item::as_array_of_tables_mut) else {
        return Ok(0);
    };
    let before = entries.len();
    entries.retain(|t| {
        let field = |name: &str| t.get(name).and_then(Item::as_str);
        let same_issuer = field("issuer") == Some(issuer);
        let same_subject = subject
            .is_none_or(|s| field("subject") == Some(s) || field("subject_prefix") == Some(s));
        !(same_issuer && same_subject)
    });
    let removed = before - entries.len();
    if removed > 0 {
        let edited = doc.to_string();
        Registry::parse(&edited, path)?;
        write_atomically(path, &edited)?;
    }
    Ok(removed)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn add_list_remove_keep_comments() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clients.toml");
        std::fs::write(&path, "# my clients\n[[client]]\nid = \"deployer\"\n").unwrap();
        let mut t = NewTrust::new(
            "https://token.actions.githubusercontent.com",
            SubjectRule::Exact("repo:org/repo:ref:refs/heads/main".into()),
        );
        t.claims.push(("repository".into(), "org/repo".into()));
        t.client_id = Some("deployer".into());
        add_trust(&path, &t).unwrap();
        let mut spire = NewTrust::new(
            "https://spire.example",
            SubjectRule::Prefix("spiffe://example.org/".into()),
        );
        spire.scopes = vec!["read".into()];
        spire.allow_reuse = true;
        add_trust(&path, &spire).unwrap();
        let listed = list_trusts(&path).unwrap();
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[1].reuse, super::super::Reuse::AllowWithinLifetime);
        assert!(
            std::fs::read_to_string(&path)
                .unwrap()
                .starts_with("# my clients")
        );
        let mut bad = t.clone();
        bad.client_id = Some("nobody".into());
        assert!(
            add_trust(&path, &bad).is_err(),
            "an unknown client is refused"
        );
        assert_eq!(
            remove_trust(&path, "https://spire.example", Some("x")).unwrap(),
            0
        );
        assert_eq!(
            remove_trust(&path, "https://spire.example", None).unwrap(),
            1
        );
        assert_eq!(list_trusts(&path).unwrap().len(), 1);
    }
}
