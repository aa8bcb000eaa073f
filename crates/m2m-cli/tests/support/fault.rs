//! Helpers for the process-level fault tests: a real `m2m serve` child (its stderr drained
//! from a pipe, killed with SIGKILL on drop), an ES256 client registered in its registry, fresh
//! signed assertions, and a token request that reports status, `error` and whether a token came
//! back.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use m2m_core::alg::Algorithm;
use m2m_core::assertion::{AssertionBuilder, Audience};
use m2m_core::clock::{Clock, SystemClock};
use m2m_core::key::{KeySpec, PrivateKey};
use m2m_core::signer::KeySigner;

/// The issuer every fault-test server is started with, so assertions stay valid across a restart
/// on another port.
pub const ISSUER: &str = "https://fault.m2m.test";
pub const CLIENT: &str = "svc";
use m2m_core::wire::CLIENT_ASSERTION_TYPE as ASSERTION_TYPE;

/// A data dir, a registry with client `svc` (P-256, kid `k1`) and the signer for it.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub builder: AssertionBuilder,
}

impl Fixture {
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let key = Arc::new(PrivateKey::generate(KeySpec::P256).unwrap());
        let mut jwk = key.public_key().to_jwk();
        jwk.kid = Some("k1".to_owned());
        let jwks = m2m_core::jwk::Jwks { keys: vec![jwk] };
        std::fs::write(
            dir.path().join("svc.jwks.json"),
            serde_json::to_vec(&jwks).unwrap(),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("clients.toml"),
            "[[client]]\nid = \"svc\"\njwks_file = \"svc.jwks.json\"\nalgs = [\"ES256\"]\n",
        )
        .unwrap();
        let signer = KeySigner::new(key, Algorithm::Es256, Some("k1".to_owned())).unwrap();
        let builder =
            AssertionBuilder::new(Arc::new(signer), CLIENT, Audience::Issuer(ISSUER.into()));
        Fixture { dir, builder }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A fresh assertion (new jti, 60 s lifetime).
    pub fn assertion(&self) -> String {
        self.builder.build(SystemClock.now()).unwrap().into_string()
    }

    /// `m2m serve` on a free port with this registry and data dir and `store`, no rate limit.
    /// `wrap` runs it under `sh -c '<wrap>; exec "$0" "$@"'` when given (e.g. to ignore a signal).
    pub fn serve(&self, store: &str, wrap: Option<&str>) -> ServeProcess {
        let port = free_port();
        let bin = env!("CARGO_BIN_EXE_m2m");
        let mut cmd = match wrap {
            Some(prefix) => {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(format!("{prefix}; exec \"$0\" \"$@\""))
                    .arg(bin);
                c
            }
            None => Command::new(bin),
        };
        cmd.env_remove("RUST_LOG")
            .current_dir(self.path())
            .args(["serve", "--clients", "clients.toml", "--issuer", ISSUER])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--replay-store", store, "--rate-limit", "0", "-v"])
            .arg("--data-dir")
            .arg(self.data_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            // A pipe, not a file: the disk-full test limits file sizes for this process.
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn m2m serve");
        let log = Arc::new(Mutex::new(String::new()));
        let mut stderr = child.stderr.take().unwrap();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let server = ServeProcess {
            child,
            port,
            log,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
        };
        server.wait_until_listening();
        server
    }
}

pub use m2m_testkit::net::free_port;

/// A running `m2m serve` child, SIGKILLed on drop (only the process this test started).
pub struct ServeProcess {
    pub child: Child,
    pub port: u16,
    pub log: Arc<Mutex<String>>,
    pub http: reqwest::Client,
}

/// What a token request got back.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// `None`: no HTTP response (connection refused or reset).
    pub status: Option<u16>,
    pub error: String,
    pub has_token: bool,
}

impl ServeProcess {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn wait_until_listening(&self) {
        // A start-up deadline, not a speed assertion.
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "m2m serve did not listen on {}; log:\n{}",
            self.port,
            self.log()
        );
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// `POST /oauth2/token` with this assertion.
    pub async fn token(&self, assertion: &str) -> Outcome {
        let form = [
            ("grant_type", "client_credentials"),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", assertion),
        ];
        let body = form
            .iter()
            .map(|(k, v)| format!("{k}={}", v.replace(':', "%3A")))
            .collect::<Vec<_>>()
            .join("&");
        let sent = self
            .http
            .post(format!("{}/oauth2/token", self.base()))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await;
        let Ok(response) = sent else {
            return Outcome {
                status: None,
                error: String::new(),
                has_token: false,
            };
        };
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        Outcome {
            status: Some(status),
            error: json["error"].as_str().unwrap_or_default().to_owned(),
            has_token: json.get("access_token").is_some() || text.contains("access_token"),
        }
    }

    /// `GET /readyz` status (`None` when nothing answers).
    pub async fn readyz(&self) -> Option<u16> {
        let r = self
            .http
            .get(format!("{}/readyz", self.base()))
            .send()
            .await
            .ok()?;
        Some(r.status().as_u16())
    }

    /// SIGKILL (a crash: no graceful shutdown, nothing flushed by the process) and reap it.
    pub fn sigkill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        self.sigkill();
    }
}

/// Polls `f` every 20 ms until it returns true or `deadline` passes; returns the time it took.
pub async fn poll_until<F, Fut>(deadline: Duration, mut f: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < deadline {
        if f().await {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}
