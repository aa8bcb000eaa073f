//! `m2m token|call|proxy --dpop` end to end: the real binary against the shared verifying token
//! endpoint in DPoP mode (every token request must carry a valid proof) and a loopback API that
//! verifies each API request's proof with m2m-core's validator (htm, htu = the URL as the client
//! addressed it, ath, single-use jti) and asks for a nonce with `401 use_dpop_nonce`. Also: the
//! file cache keeps DPoP-bound tokens only with a persistent key (keyed by its thumbprint), a
//! key file open to others is refused, and neither token nor proof reaches the output.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly on purpose

mod support;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::sync::{Arc, Mutex};

use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use m2m_core::clock::{Clock, SystemClock};
use m2m_core::jwk::Jwks;
use m2m_core::validate::{DpopReason, DpopRequest, DpopValidator};
use support::{
    Reply, Sandbox, ServerProcess, TokenEndpoint, closed_port, http, stderr, stdout,
    wait_until_listening,
};

/// The access token the endpoint issues: distinctive, so a leak into the output is found.
const ACCESS_TOKEN: &str = "dpop-bound-access-token-5f1e";
/// The nonce the API demands.
const API_NONCE: &str = "api-nonce-7";

/// What the API saw of one request.
#[derive(Clone, Debug)]
struct Seen {
    status: u16,
    jti: Option<String>,
    jkt: Option<String>,
    htu: String,
    body: String,
}

#[derive(Default)]
struct ApiState {
    seen: Mutex<Vec<Seen>>,
    jtis: Mutex<HashSet<String>>,
    /// Every proof that arrived (none may show up in the CLI's output).
    proofs: Mutex<Vec<String>>,
}

/// The DPoP-verifying API on its own runtime thread.
struct Api {
    addr: SocketAddr,
    state: Arc<ApiState>,
    _runtime: tokio::runtime::Runtime,
}

impl Api {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }
}

fn refuse(error: &str) -> Response {
    let mut r = StatusCode::UNAUTHORIZED.into_response();
    r.headers_mut().insert(
        "www-authenticate",
        HeaderValue::from_str(&format!(r#"DPoP algs="ES256", error="{error}""#)).unwrap(),
    );
    r
}

async fn verify(
    State((state, base)): State<(Arc<ApiState>, String)>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: String,
) -> Response {
    // The URL as the client addressed it (the proxy's upstream URL + path), query dropped.
    let htu = format!("{base}{}", uri.path());
    let record = |status: u16, jti: Option<String>, jkt: Option<String>| {
        state.seen.lock().unwrap().push(Seen {
            status,
            jti,
            jkt,
            htu: htu.clone(),
            body: body.clone(),
        });
    };
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let proofs: Vec<_> = headers.get_all("dpop").iter().collect();
    let (Some(token), [proof]) = (auth.strip_prefix("DPoP "), proofs.as_slice()) else {
        record(401, None, None);
        return refuse("invalid_token");
    };
    let proof = proof.to_str().unwrap();
    state.proofs.lock().unwrap().push(proof.to_owned());
    let request = DpopRequest::new(method.as_str(), &htu)
        .access_token(token)
        .nonces(&[API_NONCE]);
    match DpopValidator::default().validate(proof, &request, SystemClock.now()) {
        Ok(v) if token == ACCESS_TOKEN && state.jtis.lock().unwrap().insert(v.jti.clone()) => {
            record(200, Some(v.jti), Some(v.jkt));
            (StatusCode::OK, format!("ok {method} {body}")).into_response()
        }
        Ok(v) => {
            record(401, Some(v.jti), Some(v.jkt));
            refuse("invalid_token")
        }
        Err(e)
            if matches!(
                e.reason,
                DpopReason::NonceMissing | DpopReason::NonceMismatch
            ) =>
        {
            record(401, None, None);
            let mut r = refuse("use_dpop_nonce");
            r.headers_mut()
                .insert("dpop-nonce", HeaderValue::from_static(API_NONCE));
            r
        }
        Err(e) => {
            record(400, None, None);
            (StatusCode::UNAUTHORIZED, e.reason.as_str().to_owned()).into_response()
        }
    }
}

fn start_api() -> Api {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let state = Arc::new(ApiState::default());
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .fallback(any(verify))
        .with_state((Arc::clone(&state), format!("http://{addr}")));
    runtime.spawn(async move { axum::serve(listener, app).await.unwrap() });
    Api {
        addr,
        state,
        _runtime: runtime,
    }
}

/// A sandbox with client `svc` (ES256 key `c1`) and the DPoP token endpoint trusting it.
struct Setup {
    sb: Sandbox,
    pem: PathBuf,
    endpoint: TokenEndpoint,
}

impl Setup {
    fn start() -> Setup {
        let sb = Sandbox::new();
        let (pem, jwks) = sb.keygen("c1", &["--alg", "ES256"]);
        let jwks = Jwks::from_slice(&std::fs::read(jwks).unwrap()).unwrap();
        let endpoint = TokenEndpoint::builder("svc")
            .jwks(&jwks)
            .replies([Reply::token().access_token(ACCESS_TOKEN)])
            .dpop()
            .start_in_background();
        Setup { sb, pem, endpoint }
    }

    fn token_flags(&self) -> Vec<String> {
        [
            "--token-url",
            self.endpoint.url(),
            "--client-id",
            "svc",
            "--key",
            self.pem.to_str().unwrap(),
            "--kid",
            "c1",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
    }

    fn run(&self, args: &[&str]) -> Output {
        self.sb
            .cmd()
            .args(args)
            .args(self.token_flags())
            .output()
            .unwrap()
    }

    /// A DPoP key made by `m2m keygen --alg ES256` (0600).
    fn dpop_key(&self, kid: &str) -> PathBuf {
        self.sb.keygen(kid, &["--alg", "ES256"]).0
    }

    /// The thumbprint of every token request's proof key, in order.
    fn jkts(&self) -> Vec<Option<String>> {
        self.endpoint
            .seen()
            .iter()
            .map(|s| s.dpop_jkt.clone())
            .collect()
    }
}

/// Neither the token nor any proof the API received appears in the output.
fn assert_no_secrets(o: &Output, api: Option<&Api>) {
    let all = format!("{}{}", stdout(o), stderr(o));
    assert!(!all.contains(ACCESS_TOKEN), "token in output: {all}");
    if let Some(api) = api {
        for proof in api.state.proofs.lock().unwrap().iter() {
            assert!(!all.contains(proof.as_str()), "proof in output: {all}");
        }
    }
}

#[test]
fn token_dpop_prints_a_bound_token_and_an_ephemeral_key_skips_the_cache() {
    let setup = Setup::start();
    let o = setup.run(&["token", "--dpop", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let json: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(json["token_type"], "DPoP");
    assert_eq!(json["access_token"], ACCESS_TOKEN);
    assert!(stderr(&o).contains("not cached"), "{}", stderr(&o));
    let o = setup.run(&["token", "--dpop"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), ACCESS_TOKEN);
    // Two runs, two keys, two token requests: nothing was cached.
    let jkts = setup.jkts();
    assert_eq!(jkts.len(), 2);
    assert!(jkts[0].is_some() && jkts[0] != jkts[1]);
    setup.endpoint.assert_all_valid();
}

#[test]
fn token_dpop_key_caches_by_thumbprint_flag_or_profile() {
    let setup = Setup::start();
    let d1 = setup.dpop_key("d1");
    let d2 = setup.dpop_key("d2");
    for _ in 0..2 {
        let o = setup.run(&["token", "--dpop-key", d1.to_str().unwrap(), "--json"]);
        assert!(o.status.success(), "{}", stderr(&o));
        let json: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        assert_eq!(json["token_type"], "DPoP");
    }
    assert_eq!(setup.jkts().len(), 1, "the second run is a cache hit");
    // Another key: another cache entry, another token request.
    let o = setup.run(&["token", "--dpop-key", d2.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let jkts = setup.jkts();
    assert_eq!(jkts.len(), 2);
    assert_ne!(jkts[0], jkts[1]);
    // The profile's dpop_key is the same key: a hit.
    let config = setup.sb.path().join("config/m2m");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(
        config.join("config.toml"),
        format!(
            "[profiles.api]\ndpop = true\ndpop_key = \"{}\"\n",
            d1.display()
        ),
    )
    .unwrap();
    let o = setup.run(&["token", "--profile", "api"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(setup.jkts().len(), 2);
    setup.endpoint.assert_all_valid();
}

#[cfg(unix)]
#[test]
fn a_dpop_key_open_to_others_is_refused() {
    use std::os::unix::fs::PermissionsExt;

    let setup = Setup::start();
    let key = setup.dpop_key("open");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = setup.run(&["token", "--dpop-key", key.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("open to group or others"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("chmod 600"), "{}", stderr(&o));
    assert_eq!(setup.endpoint.requests(), 0);
}

#[test]
fn call_dpop_sends_a_fresh_proof_and_retries_once_for_a_nonce() {
    let setup = Setup::start();
    let api = start_api();
    let key = setup.dpop_key("d1");
    let url = api.url("/v1/items?page=2");
    for _ in 0..2 {
        let o = setup.run(&[
            "call",
            "-v",
            "--dpop-key",
            key.to_str().unwrap(),
            &url,
            "--data",
            "payload",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(stdout(&o), "ok POST payload");
        assert_no_secrets(&o, Some(&api));
    }
    let seen = api.seen();
    // Each call: refused for want of the nonce, then accepted with it.
    let statuses: Vec<u16> = seen.iter().map(|s| s.status).collect();
    assert_eq!(statuses, [401, 200, 401, 200], "{seen:?}");
    let ok: Vec<&Seen> = seen.iter().filter(|s| s.status == 200).collect();
    assert_ne!(ok[0].jti, ok[1].jti);
    assert!(ok.iter().all(|s| s.htu == api.url("/v1/items")));
    assert!(ok.iter().all(|s| s.body == "payload"));
    // Bound to the key the token was issued for, and fetched once (cached with --dpop-key).
    let jkts = setup.jkts();
    assert_eq!(jkts.len(), 1);
    assert_eq!(ok[0].jkt, jkts[0]);

    // An ephemeral key works too (not cached: a new token, bound to the new key).
    let o = setup.run(&["call", "--dpop", &url]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "ok GET ");
    let jkts = setup.jkts();
    assert_eq!(jkts.len(), 2);
    assert_eq!(api.seen().last().unwrap().jkt, jkts[1]);
}

/// A running `m2m proxy --dpop`.
fn start_proxy(setup: &Setup, upstream: &str, extra: &[&str]) -> (ServerProcess, u16) {
    let port = closed_port();
    let child = setup
        .sb
        .cmd()
        .args(["proxy", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--upstream", upstream])
        .args(extra)
        .args(setup.token_flags())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn m2m proxy");
    let child = ServerProcess(child);
    wait_until_listening(port);
    (child, port)
}

#[test]
fn proxy_dpop_proves_each_request_and_remembers_the_nonce() {
    let setup = Setup::start();
    let api = start_api();
    let (_proxy, port) = start_proxy(&setup, &api.url("/base"), &["--dpop"]);
    let (status, body) = http(port, "POST", "/things?x=1", "a=1");
    assert_eq!((status, body.as_str()), (200, "ok POST a=1"));
    for _ in 0..2 {
        let (status, _) = http(port, "GET", "/things", "");
        assert_eq!(status, 200);
    }
    let seen = api.seen();
    let statuses: Vec<u16> = seen.iter().map(|s| s.status).collect();
    // One nonce round for the first request; the nonce is remembered after that.
    assert_eq!(statuses, [401, 200, 200, 200], "{seen:?}");
    let jtis: HashSet<_> = seen.iter().filter_map(|s| s.jti.clone()).collect();
    assert_eq!(jtis.len(), 3);
    assert!(seen.iter().all(|s| s.htu == api.url("/base/things")));
    let jkts = setup.jkts();
    assert_eq!(jkts.len(), 1);
    assert!(seen[1..].iter().all(|s| s.jkt == jkts[0]));
}

#[test]
fn proxy_strips_a_callers_dpop_header_and_adds_its_own() {
    use std::io::{Read, Write};

    let setup = Setup::start();
    let api = start_api();
    let (_proxy, port) = start_proxy(&setup, &api.url(""), &["--dpop"]);
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
         Authorization: DPoP spoofed\r\nDPoP: junk.junk.junk\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        !api.state
            .proofs
            .lock()
            .unwrap()
            .iter()
            .any(|p| p.contains("junk"))
    );
}
