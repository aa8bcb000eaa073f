//! Replay protection across two `m2m serve` processes sharing one real `redis-server`: 50
//! concurrent requests with the same assertion, spread over both processes, get exactly one token.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly on purpose

mod support;

use std::process::Stdio;
use std::time::Duration;

use support::{Sandbox, ServerProcess, closed_port, http, stderr, stdout};

fn wait_until_ready(port: u16) {
    for _ in 0..400 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            && http(port, "GET", "/readyz", "").0 == 200
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("m2m serve on {port} did not become ready");
}

fn serve(sb: &Sandbox, issuer: &str, port: u16, redis: &str, data: &str) -> ServerProcess {
    let child = sb
        .cmd()
        .args(["serve", "--clients", "clients.toml", "--issuer", issuer])
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--replay-store",
            redis,
        ])
        .args(["--data-dir", data, "--rate-limit", "0"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn m2m serve");
    let server = ServerProcess(child);
    wait_until_ready(port);
    server
}

#[test]
fn one_token_per_assertion_across_two_servers_sharing_redis() {
    let Some(redis) = m2m_testkit::redis::RedisServer::start() else {
        return;
    };
    let sb = Sandbox::new();
    let (pem, jwks) = sb.keygen("k1", &[]);
    sb.register("svc", &jwks);
    // Both instances answer for the same issuer, as behind one load balancer.
    let issuer = "https://auth.example.test";
    let (p1, p2) = (closed_port(), closed_port());
    let _a = serve(&sb, issuer, p1, &redis.url(), "data-a");
    let _b = serve(&sb, issuer, p2, &redis.url(), "data-b");

    let o = sb.run(&[
        "assertion",
        "--issuer",
        issuer,
        "--token-url",
        &format!("{issuer}/oauth2/token"),
        "--aud",
        issuer,
        "--client-id",
        "svc",
        "--key",
        pem.to_str().unwrap(),
        "--kid",
        "k1",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let assertion = stdout(&o).trim().to_owned();
    let form = format!(
        "grant_type=client_credentials&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={assertion}"
    );
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..50)
            .map(|i| {
                let form = form.clone();
                let port = if i % 2 == 0 { p1 } else { p2 };
                s.spawn(move || http(port, "POST", "/oauth2/token", &form).0)
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        49,
        "{statuses:?}"
    );
}
