//! The client registry a running server answers from: a snapshot that a reload (SIGHUP,
//! [`crate::RunningServer::reload_clients`]) swaps whole, so a request sees either the old file
//! or the new one, never half of each — and a file that does not load leaves the old snapshot in
//! place.

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use crate::registry::{Client, Registry, RegistryError};

/// The current registry and the files it came from.
#[derive(Debug)]
pub(crate) struct LiveRegistry {
    path: PathBuf,
    /// The `client_secret_jwt` secrets file (`None`: the default beside the registry).
    secrets: Option<PathBuf>,
    current: RwLock<Arc<Registry>>,
}

/// What a reload did: the client counts before and after.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reloaded {
    /// Clients in the registry that was replaced.
    pub before: usize,
    /// Clients in the registry now answering.
    pub after: usize,
}

impl LiveRegistry {
    /// Starts with `registry`, loaded from `path` (and `secrets`, reloaded with it).
    pub(crate) fn new(path: &Path, secrets: Option<&Path>, registry: Registry) -> Self {
        LiveRegistry {
            path: path.to_path_buf(),
            secrets: secrets.map(Path::to_path_buf),
            current: RwLock::new(Arc::new(registry)),
        }
    }

    /// The snapshot answering now. Requests take one and use it throughout.
    pub(crate) fn current(&self) -> Arc<Registry> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// The client with this id in the current snapshot.
    pub(crate) fn get(&self, id: &str) -> Option<Arc<Client>> {
        self.current().get(id)
    }

    /// Number of clients in the current snapshot.
    pub(crate) fn len(&self) -> usize {
        self.current().len()
    }

    /// Loads the files again and, only if they load and validate, makes them current. On error
    /// the previous registry keeps answering.
    pub(crate) fn reload(&self) -> Result<Reloaded, RegistryError> {
        let fresh = Arc::new(Registry::load_with_secrets(
            &self.path,
            self.secrets.as_deref(),
        )?);
        let after = fresh.len();
        let mut slot = self.current.write().unwrap_or_else(PoisonError::into_inner);
        let before = slot.len();
        *slot = fresh;
        Ok(Reloaded { before, after })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const ONE_CLIENT: &str = r#"
[[client]]
id = "a"
jwks_uri = "https://a.example/jwks.json"
"#;

    #[test]
    fn a_bad_file_keeps_the_old_registry_and_a_good_one_replaces_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clients.toml");
        std::fs::write(&path, "").unwrap();
        let live = LiveRegistry::new(&path, None, Registry::load(&path).unwrap());
        assert_eq!(live.len(), 0);
        std::fs::write(&path, ONE_CLIENT).unwrap();
        assert_eq!(
            live.reload().unwrap(),
            Reloaded {
                before: 0,
                after: 1
            }
        );
        assert!(live.get("a").is_some());
        std::fs::write(&path, "[[client]]\nid = \n").unwrap();
        assert!(live.reload().is_err());
        assert!(live.get("a").is_some(), "the old registry keeps answering");
    }
}
