//! Where a forwarder listens: `HOST:PORT` (loopback unless dangerously allowed) or `unix:PATH`
//! (a socket only its owner can reach, mode 0600), served with `m2m serve`'s accept loop and
//! time limits until [`Shutdown`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use m2m_server::{ConnService, ConnectionLimits, Listener};
use tokio::sync::watch;

/// A parsed `--listen` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ListenAddr {
    /// A TCP address.
    Tcp(SocketAddr),
    /// A Unix socket path (`unix:PATH`).
    Unix(PathBuf),
}

impl ListenAddr {
    /// Parses `HOST:PORT` or `unix:PATH`. A TCP address that is not loopback is refused unless
    /// `dangerous_any`: whoever reaches the listener borrows the client's authority.
    pub(crate) fn parse(value: &str, dangerous_any: bool) -> Result<ListenAddr, String> {
        if let Some(path) = value.strip_prefix("unix:") {
            if path.is_empty() {
                return Err("unix: needs a path (unix:/run/m2m/proxy.sock)".to_owned());
            }
            return Ok(ListenAddr::Unix(PathBuf::from(path)));
        }
        let addr: SocketAddr = value
            .parse()
            .map_err(|_| format!("{value:?} is neither HOST:PORT (an IP address) nor unix:PATH"))?;
        if !addr.ip().is_loopback() && !dangerous_any {
            return Err(format!(
                "{addr} is not a loopback address: anyone who can reach it could use this client's tokens"
            ));
        }
        Ok(ListenAddr::Tcp(addr))
    }
}

/// Tells every listener to stop accepting and drain; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Shutdown {
    tx: std::sync::Arc<watch::Sender<bool>>,
}

impl Shutdown {
    pub(crate) fn new() -> Self {
        Shutdown {
            tx: std::sync::Arc::new(watch::channel(false).0),
        }
    }

    /// Starts the shutdown.
    pub(crate) fn trigger(&self) {
        let _ = self.tx.send(true);
    }

    /// Completes once [`Shutdown::trigger`] was called.
    pub(crate) fn wait(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.tx.subscribe();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    }
}

/// A bound listener (bound before anything else starts, so address errors come first).
#[derive(Debug)]
pub(crate) struct Bound {
    listener: Listener,
    /// The socket file to remove after shutdown.
    unix_path: Option<PathBuf>,
    /// What was bound, for the start-up log line.
    pub(crate) shown: String,
}

/// Binds `addr`. A Unix socket is created under a temporary name, made 0600, then renamed into
/// place, so there is no moment at which the final path accepts anyone but the owner; an
/// existing file at the path is refused rather than replaced.
pub(crate) async fn bind(addr: &ListenAddr) -> Result<Bound, String> {
    match addr {
        ListenAddr::Tcp(a) => {
            let l = tokio::net::TcpListener::bind(a)
                .await
                .map_err(|e| format!("cannot listen on {a}: {e}"))?;
            let shown = l
                .local_addr()
                .map_or_else(|_| a.to_string(), |a| a.to_string());
            Ok(Bound {
                listener: l.into(),
                unix_path: None,
                shown,
            })
        }
        #[cfg(unix)]
        ListenAddr::Unix(path) => bind_unix(path),
        #[cfg(not(unix))]
        ListenAddr::Unix(_) => Err("unix sockets need a Unix system".to_owned()),
    }
}

#[cfg(unix)]
fn bind_unix(path: &Path) -> Result<Bound, String> {
    use std::os::unix::fs::PermissionsExt as _;
    if path.symlink_metadata().is_ok() {
        return Err(format!(
            "{} already exists: another proxy may be using it; remove it first",
            path.display()
        ));
    }
    let name = path
        .file_name()
        .ok_or_else(|| format!("{} is not a file path", path.display()))?;
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(name);
    temp_name.push(format!(".{}.tmp", std::process::id()));
    let temp = path.with_file_name(temp_name);
    let _ = std::fs::remove_file(&temp);
    let listener = tokio::net::UnixListener::bind(&temp)
        .map_err(|e| format!("cannot listen on {}: {e}", path.display()))?;
    let placed = std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(0o600))
        .and_then(|()| std::fs::rename(&temp, path));
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&temp);
        return Err(format!(
            "cannot create {} with mode 0600: {e}",
            path.display()
        ));
    }
    Ok(Bound {
        listener: listener.into(),
        unix_path: Some(path.to_owned()),
        shown: format!("unix:{}", path.display()),
    })
}

/// Serves `app` on `bound` until `shutdown`, then removes the socket file, if any.
async fn serve(
    bound: Bound,
    app: impl ConnService,
    limits: ConnectionLimits,
    shutdown: Shutdown,
) -> std::io::Result<()> {
    let result =
        m2m_server::serve_service_with_limits(bound.listener, app, limits, shutdown.wait()).await;
    if let Some(path) = bound.unix_path {
        let _ = std::fs::remove_file(path);
    }
    result
}

/// Serves `app` on `listen` (and the admin routes on `admin`) until SIGINT or SIGTERM, then
/// shuts down gracefully: what `m2m proxy` and `m2m gateway` run. `what` names the command in
/// the log line that announces the listener.
pub(crate) async fn serve_until_signal(
    what: &str,
    listen: &ListenAddr,
    admin: Option<&ListenAddr>,
    app: impl ConnService,
    metrics: &std::sync::Arc<super::Metrics>,
    limits: ConnectionLimits,
    upstream: &url::Url,
) -> Result<(), String> {
    let bound = bind(listen).await?;
    let admin_bound = match admin {
        Some(a) => Some(bind(a).await?),
        None => None,
    };
    let shutdown = Shutdown::new();
    tracing::info!(listen = %bound.shown, %upstream, admin = admin_bound.as_ref().map(|b| b.shown.as_str()), "{what} listening");
    let main = tokio::spawn(serve(bound, app, limits, shutdown.clone()));
    let admin_task = admin_bound.map(|b| {
        tokio::spawn(serve(
            b,
            hyper_util::service::TowerToHyperService::new(super::admin_router(
                std::sync::Arc::clone(metrics),
            )),
            limits,
            shutdown.clone(),
        ))
    });
    signal().await;
    tracing::info!("signal received: shutting down gracefully");
    shutdown.trigger();
    let joined = main.await;
    if let Some(admin) = admin_task {
        let _ = admin.await;
    }
    match joined {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("the listener failed: {e}")),
        Err(e) => Err(format!("the listener task failed: {e}")),
    }
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM (systemd, docker stop).
async fn signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_unix_only_unless_dangerous() {
        assert_eq!(
            ListenAddr::parse("127.0.0.1:8080", false),
            Ok(ListenAddr::Tcp(
                "127.0.0.1:8080".parse().unwrap_or_else(|_| unreachable!())
            ))
        );
        assert!(ListenAddr::parse("[::1]:8080", false).is_ok());
        assert_eq!(
            ListenAddr::parse("unix:/run/p.sock", false),
            Ok(ListenAddr::Unix(PathBuf::from("/run/p.sock")))
        );
        for refused in ["0.0.0.0:8080", "192.168.1.2:80", "[::]:80"] {
            assert!(ListenAddr::parse(refused, false).is_err(), "{refused}");
            assert!(ListenAddr::parse(refused, true).is_ok(), "{refused}");
        }
        for bad in ["localhost:80", "unix:", "8080"] {
            assert!(ListenAddr::parse(bad, true).is_err(), "{bad}");
        }
    }
}
