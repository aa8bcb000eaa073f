//! A loopback fake of the GitHub Actions ID-token service, for tests of the client's GitHub
//! Actions assertion source: `GET <path>?api-version=2.0&audience=AUD` with `Authorization:
//! bearer <request token>` answers `{"value": "<JWT>"}`, as the runner's service does.
//!
//! It checks what the real service checks and what the client must get right: the bearer token
//! (else `401`) and the `audience` query parameter, which must be present once and equal the
//! expected one (else `400`). Every request is recorded, so a test can show what was asked for.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

/// The path GitHub's request URL has (its shape, not its exact value).
pub const PATH: &str = "/_apis/pipelines/workflows/1/idtoken";

/// What one request carried.
#[derive(Clone, Debug)]
pub struct ActionsRequest {
    /// The `Authorization` header, verbatim.
    pub authorization: Option<String>,
    /// The `audience` query values, in order.
    pub audiences: Vec<String>,
    /// The status answered.
    pub status: u16,
}

#[derive(Debug)]
struct Shared {
    bearer: String,
    audience: String,
    token: Mutex<String>,
    seen: Mutex<Vec<ActionsRequest>>,
}

/// A running fake; it shuts down when dropped.
#[derive(Debug)]
pub struct ActionsTokenService {
    addr: SocketAddr,
    shared: Arc<Shared>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl ActionsTokenService {
    /// Starts the fake on its own thread: it wants `Authorization: bearer <bearer>` and
    /// `audience=<audience>`, and answers with `token` (see [`ActionsTokenService::set_token`]).
    pub fn start(bearer: &str, audience: &str, token: &str) -> ActionsTokenService {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let addr = listener.local_addr().expect("local address");
        let shared = Arc::new(Shared {
            bearer: bearer.to_owned(),
            audience: audience.to_owned(),
            token: Mutex::new(token.to_owned()),
            seen: Mutex::default(),
        });
        let app = Router::new()
            .route(PATH, get(answer))
            .with_state(Arc::clone(&shared));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the Actions token service");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = rx.await;
                    })
                    .await
                    .expect("serve the Actions token service");
            });
        });
        ActionsTokenService {
            addr,
            shared,
            _shutdown: tx,
        }
    }

    /// The value for `ACTIONS_ID_TOKEN_REQUEST_URL`: `http://127.0.0.1:PORT<PATH>?api-version=2.0`
    /// (the client appends `&audience=`).
    pub fn request_url(&self) -> String {
        format!("http://{}{PATH}?api-version=2.0", self.addr)
    }

    /// The JWT later answers carry.
    pub fn set_token(&self, token: &str) {
        *lock(&self.shared.token) = token.to_owned();
    }

    /// Every request received, in order.
    pub fn seen(&self) -> Vec<ActionsRequest> {
        lock(&self.shared.seen).clone()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn answer(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let authorization = headers
        .get("authorization")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let audiences: Vec<String> = url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .filter(|(k, _)| k == "audience")
        .map(|(_, v)| v.into_owned())
        .collect();
    let bearer_ok = authorization.as_deref().is_some_and(|a| {
        a.split_once(' ').is_some_and(|(scheme, token)| {
            scheme.eq_ignore_ascii_case("bearer") && token == shared.bearer
        })
    });
    let status = if !bearer_ok {
        StatusCode::UNAUTHORIZED
    } else if audiences != [shared.audience.clone()] {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    lock(&shared.seen).push(ActionsRequest {
        authorization,
        audiences,
        status: status.as_u16(),
    });
    if status != StatusCode::OK {
        return (status, json!({"message": "refused"}).to_string()).into_response();
    }
    let token = lock(&shared.token).clone();
    (
        [("content-type", "application/json")],
        json!({ "count": 1, "value": token }).to_string(),
    )
        .into_response()
}
