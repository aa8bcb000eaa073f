//! A token cache on disk (used by `m2m token`): one small JSON file per (token URL, client id, kid, scope, and
//! for federated credentials the assertion source and grant) in
//! `$XDG_CACHE_HOME/m2m`, so scripts that run `m2m token` in a loop do not hit the token
//! endpoint's rate limit (NHS: 300 token requests a minute per application).
//!
//! # What is stored, and how
//!
//! Each file holds one token response: the access token, its type, scope and expiry. **The access
//! token is a bearer credential at rest**: anyone who can read the file can call the API as the
//! application until the token expires (NHS: 10 minutes). Files are therefore created with mode
//! 0600 in a 0700 directory, and never contain key material: the file name is the SHA-256 of
//! the length-prefixed key fields, and the private key is never an input to it.
//!
//! Writes go to a fresh temporary file in the same directory (created 0600) which is then renamed
//! over the target: a reader sees the old file or the new one, never a mix, however many
//! `m2m token` processes run at once. An unreadable or corrupt file is ignored (with a warning)
//! and overwritten by the next store.
//!
//! A directory or file owned by another user (root aside), or writable by group or others, is
//! not trusted: someone else could have planted a token there (say `XDG_CACHE_HOME` points at a
//! shared directory). It is ignored with a warning, and nothing is written into such a directory.
//!
//! # When a cached token is used
//!
//! Until `expires_at − margin'`, with `margin' = min(margin, lifetime/2)` and `margin` 30 s by
//! default: a CLI cannot refresh in the background, so it uses the token until the point where a
//! service would refresh it at the latest. The lifetime is computed as in
//! [`crate::source::RefreshPolicy`] (`expires_in`, else a JWT's `exp`, else 60 s).

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use m2m_core::clock::{Clock, UnixTime};
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::response::{AccessToken, TokenResponse};
use crate::source::{FetchToken, RefreshPolicy};

/// File format version, so a future layout can ignore today's files instead of misreading them.
const FORMAT_VERSION: u32 = 1;

/// Domain separation for the key hash, so it cannot collide with any other SHA-256 use.
const KEY_DOMAIN: &[u8] = b"m2m token cache key v1";

/// Which token a cache file holds: a hash of what decides the token's identity and rights.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CacheKey(String);

impl CacheKey {
    /// The key for tokens of `client_id` (authenticating with `auth_method`, the RFC 7591 name
    /// from [`crate::ClientAuth::method_name`], signing with key `kid`) from `token_url` with
    /// `scope`. The method is part of the key so that a token got one way is never reused for a
    /// client configured another way; files written before it was added simply miss.
    ///
    /// Fields are length-prefixed before hashing, so `("ab", "c")` and `("a", "bc")` differ.
    pub fn new(
        token_url: &str,
        client_id: &str,
        auth_method: &str,
        kid: Option<&str>,
        scope: Option<&str>,
    ) -> Self {
        let mut input = Vec::with_capacity(128);
        input.extend_from_slice(KEY_DOMAIN);
        let mut field = |present: bool, value: &str| {
            input.push(u8::from(present));
            input.extend_from_slice(&(value.len() as u64).to_be_bytes());
            input.extend_from_slice(value.as_bytes());
        };
        field(true, token_url);
        field(true, client_id);
        field(true, auth_method);
        field(kid.is_some(), kid.unwrap_or_default());
        field(scope.is_some(), scope.unwrap_or_default());
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &input);
        CacheKey(hex::encode(digest.as_ref()))
    }

    /// The same key for tokens asked for one RFC 8707 `resource` (`m2m token --for`): a token
    /// whose `aud` is one API is never handed out for another. Keys without a resource are
    /// unchanged, so existing cache files still hit.
    pub fn for_resource(self, resource: &str) -> Self {
        let mut input = Vec::with_capacity(128);
        input.extend_from_slice(KEY_DOMAIN);
        input.extend_from_slice(b" resource");
        for value in [self.0.as_str(), resource] {
            input.extend_from_slice(&(value.len() as u64).to_be_bytes());
            input.extend_from_slice(value.as_bytes());
        }
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &input);
        CacheKey(hex::encode(digest.as_ref()))
    }

    /// The same key for tokens bound to the DPoP key whose RFC 7638 thumbprint is `jkt`: a
    /// DPoP-bound token is useless with another key, so it is never handed out for one. Only a
    /// persistent key's tokens belong on disk (an ephemeral key dies with the process). Keys
    /// without DPoP are unchanged.
    pub fn for_dpop_key(self, jkt: &str) -> Self {
        let mut input = Vec::with_capacity(128);
        input.extend_from_slice(KEY_DOMAIN);
        input.extend_from_slice(b" dpop jkt");
        for value in [self.0.as_str(), jkt] {
            input.extend_from_slice(&(value.len() as u64).to_be_bytes());
            input.extend_from_slice(value.as_bytes());
        }
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &input);
        CacheKey(hex::encode(digest.as_ref()))
    }

    /// The same key for tokens got with a federated assertion
    /// ([`crate::AssertionSource::identity`]: the file path, the command's hash, the variable
    /// name, the GitHub audience) presented with `grant_type`: two workloads on one machine, or
    /// one workload's client assertion and its jwt-bearer grant, never share a token. The
    /// assertion itself is not part of the key (it rotates while the access token stays valid;
    /// see the `assertion_source` module docs).
    pub fn for_assertion_source(self, identity: &str, grant_type: &str) -> Self {
        let mut input = Vec::with_capacity(160);
        input.extend_from_slice(KEY_DOMAIN);
        input.extend_from_slice(b" assertion source");
        for value in [self.0.as_str(), identity, grant_type] {
            input.extend_from_slice(&(value.len() as u64).to_be_bytes());
            input.extend_from_slice(value.as_bytes());
        }
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &input);
        CacheKey(hex::encode(digest.as_ref()))
    }

    /// The hex digest (also the file name stem).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A token read from the cache. `Debug` redacts the token.
#[derive(Clone, Debug)]
pub struct CachedToken {
    /// The access token.
    pub access_token: AccessToken,
    /// `token_type` as the server sent it.
    pub token_type: Option<String>,
    /// `scope` as the server sent it.
    pub scope: Option<String>,
    /// When the response was received.
    pub received_at: UnixTime,
    /// When the token expires (received_at + lifetime).
    pub expires_at: UnixTime,
}

impl CachedToken {
    /// The time left before expiry at `now`.
    pub fn expires_in(&self, now: UnixTime) -> Duration {
        self.expires_at.since(now)
    }

    /// As a token response with `expires_in` counted from `now` (for printing as JSON).
    pub fn to_response(&self, now: UnixTime) -> TokenResponse {
        TokenResponse::new(
            self.access_token.clone(),
            self.token_type.clone(),
            Some(self.expires_in(now)),
        )
    }
}

/// What a cache file contains.
#[derive(Serialize, Deserialize)]
struct FileEntry {
    version: u32,
    access_token: String,
    token_type: Option<String>,
    scope: Option<String>,
    received_at_ms: u64,
    expires_at_ms: u64,
}

/// A directory of cached tokens.
#[derive(Clone, Debug)]
pub struct FileCache {
    dir: PathBuf,
    margin: Duration,
    policy: RefreshPolicy,
}

impl FileCache {
    /// A cache in `dir` (created on first store, mode 0700).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        FileCache {
            dir: dir.into(),
            margin: Duration::from_secs(30),
            policy: RefreshPolicy::default(),
        }
    }

    /// The user's cache: `$XDG_CACHE_HOME/m2m` (`~/.cache/m2m`; `~/Library/Caches/m2m` on macOS),
    /// or `None` if the platform has no cache directory.
    pub fn user_default() -> Option<Self> {
        dirs::cache_dir().map(|d| FileCache::new(d.join("m2m")))
    }

    /// Stop using a cached token this long before it expires (default 30 s, at most half its
    /// lifetime).
    pub fn margin(mut self, margin: Duration) -> Self {
        self.margin = margin;
        self
    }

    /// Where the files are.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file for `key`.
    pub fn path(&self, key: &CacheKey) -> PathBuf {
        self.dir.join(format!("{}.json", key.as_str()))
    }

    /// The cached token for `key` if there is one still usable at `now`. Missing, corrupt and
    /// too-old files all give `None` (corrupt ones with a warning).
    pub fn load(&self, key: &CacheKey, now: UnixTime) -> Option<CachedToken> {
        if let Ok(meta) = fs::metadata(&self.dir)
            && let Some(why) = distrust(&meta)
        {
            tracing::warn!(dir = %self.dir.display(), "token cache directory is {why}; ignoring it");
            return None;
        }
        let path = self.path(key);
        let read = fs::File::open(&path).and_then(|mut file| {
            // The checked metadata and the bytes come from one open file: no swap in between.
            let meta = file.metadata()?;
            let mut bytes = Vec::new();
            io::Read::read_to_end(&mut file, &mut bytes)?;
            Ok((meta, bytes))
        });
        let bytes = match read {
            Ok((meta, b)) => match distrust(&meta) {
                Some(why) => {
                    tracing::warn!(path = %path.display(), "cached token file is {why}; ignoring it");
                    return None;
                }
                None => b,
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read cached token; ignoring it");
                return None;
            }
        };
        let entry = match serde_json::from_slice::<FileEntry>(&bytes) {
            Ok(e) if e.version == FORMAT_VERSION && !e.access_token.is_empty() => e,
            Ok(_) | Err(_) => {
                // No detail from the parser: its message could quote part of the token.
                tracing::warn!(path = %path.display(), "cached token file is corrupt or from another version; ignoring it");
                return None;
            }
        };
        let received_at = UnixTime::from_millis(entry.received_at_ms);
        let expires_at = UnixTime::from_millis(entry.expires_at_ms);
        let margin = self.margin.min(expires_at.since(received_at) / 2);
        if now >= expires_at.saturating_sub(margin) || now < received_at {
            return None;
        }
        Some(CachedToken {
            access_token: AccessToken::new(entry.access_token),
            token_type: entry.token_type,
            scope: entry.scope,
            received_at,
            expires_at,
        })
    }

    /// Stores `response`, received at `received_at`, under `key`, atomically, mode 0600.
    pub fn store(
        &self,
        key: &CacheKey,
        response: &TokenResponse,
        received_at: UnixTime,
    ) -> io::Result<CachedToken> {
        let cached = self.entry(response, received_at);
        let entry = FileEntry {
            version: FORMAT_VERSION,
            access_token: response.access_token().secret().to_owned(),
            token_type: cached.token_type.clone(),
            scope: cached.scope.clone(),
            received_at_ms: received_at.as_millis(),
            expires_at_ms: cached.expires_at.as_millis(),
        };
        let json = serde_json::to_vec(&entry).map_err(io::Error::other)?;
        self.create_dir()?;
        if let Some(why) = distrust(&fs::metadata(&self.dir)?) {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "token cache directory {} is {why}; not writing a token into it",
                    self.dir.display()
                ),
            ));
        }
        let target = self.path(key);
        let tmp = self.dir.join(format!(
            ".{}.{}.{:016x}.tmp",
            key.as_str(),
            std::process::id(),
            rand::random::<u64>()
        ));
        let written = write_private(&tmp, &json).and_then(|()| fs::rename(&tmp, &target));
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        written.map(|()| cached)
    }

    /// The cached token for `key`, or a fresh one from `fetcher` (then stored). A failed store
    /// only warns: the token is still returned.
    pub async fn get_or_fetch(
        &self,
        key: &CacheKey,
        fetcher: &dyn FetchToken,
        clock: &dyn Clock,
    ) -> Result<Obtained, Error> {
        let now = clock.now();
        if let Some(entry) = self.load(key, now) {
            tracing::info!(path = %self.path(key).display(), "token from the cache");
            return Ok(Obtained {
                response: entry.to_response(now),
                entry,
                fetched: Fetched::FromCache,
            });
        }
        let response = fetcher.fetch().await?;
        let now = clock.now();
        let entry = match self.store(key, &response, now) {
            Ok(entry) => entry,
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), error = %e, "cannot write the token cache");
                self.entry(&response, now)
            }
        };
        Ok(Obtained {
            response,
            entry,
            fetched: Fetched::FromServer,
        })
    }

    /// What the cache records for `response` received at `received_at`: the lifetime as
    /// [`RefreshPolicy`] computes it (`expires_in`, else a JWT's `exp`, else the default).
    fn entry(&self, response: &TokenResponse, received_at: UnixTime) -> CachedToken {
        let lifetime = self.policy.lifetime(
            response.expires_in(),
            response.access_token().secret(),
            received_at,
        );
        CachedToken {
            access_token: response.access_token().clone(),
            token_type: response.token_type().map(str::to_owned),
            scope: response.scope().map(str::to_owned),
            received_at,
            expires_at: received_at.add(lifetime),
        }
    }

    /// Removes the cached token for `key`, if any.
    pub fn remove(&self, key: &CacheKey) -> io::Result<()> {
        match fs::remove_file(self.path(key)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Removes every cached token (for `m2m cache clear`); returns how many files were removed.
    /// Only this cache's own files (`*.json` and leftover `*.tmp`) are touched.
    pub fn clear(&self) -> io::Result<usize> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        let mut removed = 0;
        for entry in entries {
            let path = entry?.path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            let ours = (name.ends_with(".json") && name.len() == 64 + 5)
                || (name.starts_with('.') && name.ends_with(".tmp"));
            if ours {
                match fs::remove_file(&path) {
                    Ok(()) => removed += 1,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(removed)
    }

    fn create_dir(&self) -> io::Result<()> {
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(&self.dir)
    }
}

/// What [`FileCache::get_or_fetch`] returns.
#[derive(Clone, Debug)]
pub struct Obtained {
    /// The token response to use: the server's, in full, when fetched; rebuilt from the file
    /// (`expires_in` counted from now) when cached.
    pub response: TokenResponse,
    /// The cache's entry: the token and its computed expiry (from `expires_in` or the JWT's
    /// `exp`).
    pub entry: CachedToken,
    /// Where the token came from.
    pub fetched: Fetched,
}

/// Where [`FileCache::get_or_fetch`] got the token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fetched {
    /// From the cache file: no request was sent.
    FromCache,
    /// From the token endpoint.
    FromServer,
}

/// Why a cache directory or file must not be used: `Some` when it is writable by group or others
/// or owned by another user than this process's (or root). Either lets someone else plant a token.
#[cfg(unix)]
fn distrust(meta: &fs::Metadata) -> Option<&'static str> {
    use std::os::unix::fs::MetadataExt;
    if meta.mode() & 0o022 != 0 {
        return Some("writable by group or others");
    }
    // The process's effective uid, without libc: Linux gives `/proc/self` to it. Elsewhere (no
    // procfs) only the mode is checked.
    let me = fs::metadata("/proc/self").map(|m| m.uid()).ok();
    if me.is_some_and(|me| meta.uid() != me && meta.uid() != 0) {
        return Some("owned by another user");
    }
    None
}

#[cfg(not(unix))]
fn distrust(_: &fs::Metadata) -> Option<&'static str> {
    None
}

/// Writes a new file readable and writable by its owner only, flushed to disk.
fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dpop_keys_get_their_own_entries() {
        let base = CacheKey::new("https://x/token", "c", "private_key_jwt", Some("k"), None);
        let one = base.clone().for_dpop_key("jkt-1");
        let two = base.clone().for_dpop_key("jkt-2");
        assert_ne!(one, base);
        assert_ne!(one, two);
        assert_eq!(one, base.clone().for_dpop_key("jkt-1"));
        assert_ne!(one, base.for_resource("jkt-1"));
    }

    #[test]
    fn key_is_length_prefixed_hex_sha256() {
        let a = CacheKey::new("https://x/token", "ab", "private_key_jwt", Some("c"), None);
        let b = CacheKey::new("https://x/token", "a", "private_key_jwt", Some("bc"), None);
        let c = CacheKey::new(
            "https://x/token",
            "ab",
            "private_key_jwt",
            Some("c"),
            Some(""),
        );
        let d = CacheKey::new(
            "https://x/token",
            "ab",
            "client_secret_basic",
            Some("c"),
            None,
        );
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
        assert_eq!(a.as_str().len(), 64);
        assert!(a.as_str().bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(
            a,
            CacheKey::new("https://x/token", "ab", "private_key_jwt", Some("c"), None)
        );
    }

    #[test]
    fn key_names_the_assertion_source_and_grant() {
        let base = || CacheKey::new("https://x/token", "", "none", None, None);
        let grant = "urn:ietf:params:oauth:grant-type:jwt-bearer";
        let file_a = base().for_assertion_source("file:/run/a", grant);
        let file_b = base().for_assertion_source("file:/run/b", grant);
        let as_client = base().for_assertion_source("file:/run/a", "client_credentials");
        assert_ne!(file_a, file_b);
        assert_ne!(file_a, as_client);
        assert_ne!(file_a, base());
        assert_ne!(file_a, base().for_resource("file:/run/a"));
        assert_eq!(file_a, base().for_assertion_source("file:/run/a", grant));
    }

    /// A key built directly, so these tests do not depend on `CacheKey::new`'s inputs.
    #[cfg(unix)]
    fn some_key() -> CacheKey {
        CacheKey("ab".repeat(32))
    }

    #[cfg(unix)]
    fn chmod(path: &Path, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    #[cfg(unix)]
    fn stored(cache: &FileCache, now: UnixTime) -> CachedToken {
        let response = TokenResponse::new(
            AccessToken::new("cached-token"),
            Some("Bearer".to_owned()),
            Some(Duration::from_secs(600)),
        );
        cache.store(&some_key(), &response, now).unwrap()
    }

    #[cfg(unix)]
    #[test]
    fn a_world_writable_cache_directory_is_neither_read_nor_written() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = FileCache::new(tmp.path().join("m2m"));
        let now = UnixTime::from_secs(1_800_000_000);
        stored(&cache, now);
        assert!(cache.load(&some_key(), now).is_some());
        chmod(cache.dir(), 0o777);
        assert!(cache.load(&some_key(), now).is_none(), "planted token used");
        let before = fs::read(cache.path(&some_key())).unwrap();
        let response = TokenResponse::new(AccessToken::new("other-token"), None, None);
        let err = cache.store(&some_key(), &response, now).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
        assert!(
            err.to_string().contains("writable by group or others"),
            "{err}"
        );
        assert!(!err.to_string().contains("other-token"));
        assert_eq!(
            fs::read(cache.path(&some_key())).unwrap(),
            before,
            "written to"
        );
        chmod(cache.dir(), 0o700);
        assert!(cache.load(&some_key(), now).is_some());
    }

    #[cfg(unix)]
    #[test]
    fn a_group_or_world_writable_cache_file_is_ignored() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = FileCache::new(tmp.path().join("m2m"));
        let now = UnixTime::from_secs(1_800_000_000);
        stored(&cache, now);
        for mode in [0o666, 0o620, 0o602] {
            chmod(&cache.path(&some_key()), mode);
            assert!(cache.load(&some_key(), now).is_none(), "mode {mode:o}");
        }
        chmod(&cache.path(&some_key()), 0o600);
        assert!(cache.load(&some_key(), now).is_some());
    }
}
