//! The file cache (used by `m2m token`) against a real local token endpoint and a real directory: 0600 files,
//! no key material, one request for two loads, clear(), corrupt files, concurrent writers.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;

use m2m_client::file_cache::{CacheKey, Fetched, FileCache};
use m2m_client::{AccessToken, TokenResponse};
use m2m_core::clock::{Clock, ManualClock};
use support::source::{Behaviour, CLIENT_ID, KID, T0, TokenServer, secs};

fn key(server: &TokenServer) -> CacheKey {
    CacheKey::new(
        &server.token_url,
        CLIENT_ID,
        "private_key_jwt",
        Some(KID),
        None,
    )
}

#[tokio::test]
async fn two_loads_one_request_private_file_no_key_material_and_clear() {
    let dir = tempfile::tempdir().unwrap();
    let server = TokenServer::start().await;
    let cache = FileCache::new(dir.path().join("m2m"));
    let client = server.client();
    let clock = ManualClock::new(T0);
    let key = key(&server);

    let first = cache.get_or_fetch(&key, &client, &clock).await.unwrap();
    assert_eq!(first.fetched, Fetched::FromServer);
    let second = cache.get_or_fetch(&key, &client, &clock).await.unwrap();
    assert_eq!(second.fetched, Fetched::FromCache);
    assert_eq!(first.entry.access_token, second.entry.access_token);
    assert_eq!(
        first.response.access_token(),
        second.response.access_token()
    );
    assert_eq!(server.requests(), 1);

    let path = cache.path(&key);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "file mode {mode:o}");
        let dir_mode = std::fs::metadata(cache.dir()).unwrap().permissions().mode();
        assert_eq!(dir_mode & 0o777, 0o700, "dir mode {dir_mode:o}");
    }
    let text = std::fs::read_to_string(&path).unwrap();
    let pem = server.key.to_pkcs8_pem().unwrap();
    let pem_body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    assert!(!text.contains("PRIVATE KEY"));
    assert!(!text.contains(&pem_body[..40]));
    let jwk = server.key.public_key().to_jwk();
    assert!(!text.contains(jwk.x.as_deref().unwrap()));
    assert!(
        text.contains("token-1"),
        "the file holds the token response"
    );
    // The file name is the key hash, nothing readable.
    assert_eq!(
        path.file_name().unwrap().to_str().unwrap(),
        format!("{}.json", key.as_str())
    );

    // Near expiry (600 s token, 30 s margin) it is not used any more.
    clock.set(T0.add(secs(571)));
    let got = cache.get_or_fetch(&key, &client, &clock).await.unwrap();
    assert_eq!(got.fetched, Fetched::FromServer);
    assert_eq!(server.requests(), 2);

    assert_eq!(cache.clear().unwrap(), 1);
    assert!(!path.exists());
    let got = cache.get_or_fetch(&key, &client, &clock).await.unwrap();
    assert_eq!(got.fetched, Fetched::FromServer);
    assert_eq!(server.requests(), 3);
}

#[tokio::test]
async fn different_scope_or_kid_is_a_different_entry() {
    let dir = tempfile::tempdir().unwrap();
    let server = TokenServer::start().await;
    let cache = FileCache::new(dir.path());
    let client = server.client();
    let clock = ManualClock::new(T0);
    let a = CacheKey::new(
        &server.token_url,
        CLIENT_ID,
        "private_key_jwt",
        Some(KID),
        None,
    );
    let b = CacheKey::new(
        &server.token_url,
        CLIENT_ID,
        "private_key_jwt",
        Some(KID),
        Some("other"),
    );
    let c = CacheKey::new(
        &server.token_url,
        CLIENT_ID,
        "private_key_jwt",
        Some("kid-2"),
        None,
    );
    for k in [&a, &b, &c, &a, &b, &c] {
        cache.get_or_fetch(k, &client, &clock).await.unwrap();
    }
    assert_eq!(server.requests(), 3);
}

#[tokio::test]
async fn corrupt_file_is_ignored_and_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let server = TokenServer::start().await;
    let cache = FileCache::new(dir.path());
    let client = server.client();
    let clock = ManualClock::new(T0);
    let key = key(&server);
    for garbage in [
        &b"{not json"[..],
        b"",
        br#"{"version":99,"access_token":"x"}"#,
    ] {
        std::fs::write(cache.path(&key), garbage).unwrap();
        assert!(cache.load(&key, clock.now()).is_none());
        let got = cache.get_or_fetch(&key, &client, &clock).await.unwrap();
        assert_eq!(got.fetched, Fetched::FromServer);
        assert!(cache.load(&key, clock.now()).is_some());
    }
    assert_eq!(server.requests(), 3);
}

#[test]
fn concurrent_writers_never_leave_a_corrupt_file() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Arc::new(FileCache::new(dir.path()));
    let key = CacheKey::new(
        "https://example.test/token",
        "c",
        "private_key_jwt",
        None,
        None,
    );
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let cache = Arc::clone(&cache);
            let key = key.clone();
            std::thread::spawn(move || {
                for j in 0..50 {
                    let token = format!("token-{i}-{j}-{}", "x".repeat(2000));
                    let response = TokenResponse::new(
                        AccessToken::new(token),
                        Some("Bearer".into()),
                        Some(secs(600)),
                    );
                    cache.store(&key, &response, T0).unwrap();
                    let loaded = cache.load(&key, T0).expect("always a whole file");
                    assert!(loaded.access_token.secret().starts_with("token-"));
                    assert!(loaded.access_token.secret().len() > 2000);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    // Only the one entry is left: no temporary files.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
}

#[tokio::test]
async fn lifetime_from_jwt_when_expires_in_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let server = TokenServer::start().await;
    server.set(Behaviour {
        expires_in: None,
        access_token: Some(support::source::jwt_access_token(T0.add(secs(900)))),
        ..Behaviour::default()
    });
    let cache = FileCache::new(dir.path());
    let clock = ManualClock::new(T0);
    let key = key(&server);
    let got = cache
        .get_or_fetch(&key, &server.client(), &clock)
        .await
        .unwrap();
    let token = got.entry;
    assert_eq!(token.expires_at, T0.add(secs(900)));
    assert_eq!(
        token.to_response(T0.add(secs(100))).expires_in(),
        Some(secs(800))
    );
}
