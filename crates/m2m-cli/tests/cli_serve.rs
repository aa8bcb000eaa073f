//! `m2m clients` and `m2m serve` end to end: register a client from its keygen JWKS, start the
//! real server binary, get a token from it with `m2m token` (discovery and NHS profile).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly on purpose

mod support;

use std::process::Stdio;
use std::time::Duration;

use support::{Sandbox, ServerProcess, assert_fails, closed_port, http, stderr, stdout};

/// Like `assert_fails`, for commands that may say a `note:` or `warning:` (how the alg or the
/// aud was chosen) before their `error:` line: the exit code, an `error:` line mentioning
/// `needle`, nothing on stdout. Returns stderr.
#[track_caller]
fn fails_after_notes(o: &std::process::Output, code: i32, needle: &str) -> String {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "exit code; stderr: {err}");
    let error_line = err
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error: line in {err}"));
    assert!(
        error_line.to_lowercase().contains(&needle.to_lowercase()),
        "the error should mention {needle:?}: {err}"
    );
    for line in err.lines().take_while(|l| !l.starts_with("error: ")) {
        assert!(
            line.starts_with("note: ") || line.starts_with("warning: "),
            "only notes and warnings before the error: {err}"
        );
    }
    assert!(
        o.stdout.is_empty(),
        "stdout must stay empty on error: {}",
        stdout(o)
    );
    err
}

#[test]
fn clients_add_dpop_is_written_and_listed() {
    let sb = Sandbox::new();
    let (_, jwks) = sb.keygen("k1", &[]);
    let add = |id: &str, dpop: Option<&str>| {
        let mut args = vec![
            "clients",
            "add",
            "--clients",
            "clients.toml",
            "--id",
            id,
            "--jwks",
            jwks.to_str().unwrap(),
        ];
        if let Some(policy) = dpop {
            args.extend(["--dpop", policy]);
        }
        sb.run(&args)
    };
    assert!(add("must", Some("required")).status.success());
    assert!(add("may", None).status.success());
    // clap refuses anything else before the registry is touched.
    let o = add("bad", Some("always"));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = sb.run(&["clients", "list", "--clients", "clients.toml"]);
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("must\t") && lines[0].ends_with("\tdpop=required"),
        "{out}"
    );
    assert!(
        lines[1].starts_with("may\t") && lines[1].ends_with("\tdpop=allowed"),
        "{out}"
    );
    assert_eq!(lines.len(), 2, "{out}");
}

fn wait_until_listening(port: u16) {
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("m2m serve did not start listening on {port}");
}

#[test]
fn clients_add_list_remove() {
    let sb = Sandbox::new();
    let (_, jwks) = sb.keygen("k1", &[]);
    let add = |id: &str| {
        sb.run(&[
            "clients",
            "add",
            "--clients",
            "clients.toml",
            "--id",
            id,
            "--jwks",
            jwks.to_str().unwrap(),
            "--scope",
            "read,write",
        ])
    };
    let o = add("svc");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_fails(&add("svc"), 3, "already exists");
    let o = sb.run(&["clients", "list", "--clients", "clients.toml"]);
    assert!(
        stdout(&o).starts_with("svc\tprivate_key_jwt\tinline JWKS (1 keys)"),
        "{}",
        stdout(&o)
    );
    assert!(stdout(&o).contains("scopes=read,write"));
    let o = sb.run(&[
        "clients",
        "remove",
        "--clients",
        "clients.toml",
        "--id",
        "svc",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_fails(
        &sb.run(&[
            "clients",
            "remove",
            "--clients",
            "clients.toml",
            "--id",
            "svc",
        ]),
        3,
        "no client \"svc\"",
    );
}

fn serve(sb: &Sandbox, profile: &str) -> (ServerProcess, u16) {
    serve_with(sb, profile, &[])
}

fn serve_with(sb: &Sandbox, profile: &str, extra: &[&str]) -> (ServerProcess, u16) {
    let port = closed_port();
    let child = sb
        .cmd()
        .args([
            "serve",
            "--clients",
            "clients.toml",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--profile",
            profile,
        ])
        .args(["--replay-store", "memory", "--data-dir", "data"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn m2m serve");
    let server = ServerProcess(child);
    wait_until_listening(port);
    (server, port)
}

#[test]
fn token_from_m2m_serve_by_discovery() {
    let sb = Sandbox::new();
    let (pem, jwks) = sb.keygen("k1", &[]);
    sb.register("svc", &jwks);
    let (_server, port) = serve(&sb, "rfc");
    let issuer = format!("http://127.0.0.1:{port}");
    let o = sb.run(&[
        "token",
        "--issuer",
        &issuer,
        "--client-id",
        "svc",
        "--key",
        pem.to_str().unwrap(),
        "--kid",
        "k1",
        "--json",
        "--no-cache",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let token = v["access_token"].as_str().unwrap();
    let o = sb.run(&["decode", token]);
    let decoded: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(decoded["header"]["typ"], "at+jwt");
    assert_eq!(decoded["claims"]["sub"], "svc");
    // --token-url alone: the metadata at its origin names it, so aud = the issuer, said on
    // stderr; the default (strict) server accepts it.
    let o = sb.run(&[
        "token",
        "--token-url",
        &format!("{issuer}/oauth2/token"),
        "--client-id",
        "svc",
        "--key",
        pem.to_str().unwrap(),
        "--kid",
        "k1",
        "--no-cache",
        "--attempts",
        "1",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("aud = issuer {issuer}")),
        "{}",
        stderr(&o)
    );
    // An explicit aud = token URL is still refused by the strict server: exit 5, and the hint
    // says what to send and how.
    let o = sb.run(&[
        "token",
        "--token-url",
        &format!("{issuer}/oauth2/token"),
        "--aud",
        &format!("{issuer}/oauth2/token"),
        "--client-id",
        "svc",
        "--key",
        pem.to_str().unwrap(),
        "--kid",
        "k1",
        "--no-cache",
        "--attempts",
        "1",
    ]);
    let err = fails_after_notes(&o, 5, "aud");
    assert!(err.contains(&format!("--issuer {issuer}")), "{err}");
}

/// server.md's setup: the server's issuer is its public URL, the client reaches it on loopback.
/// Discovery at the origin cannot vouch for the token URL (the issuer differs), so aud stays the
/// token URL, the server refuses it, and the hint names the flag and the value that work.
#[test]
fn token_url_with_a_public_issuer_fails_with_the_issuer_hint_and_the_hint_works() {
    let sb = Sandbox::new();
    let (pem, jwks) = sb.keygen("k1", &[]);
    sb.register("svc", &jwks);
    let (_server, port) = serve_with(&sb, "rfc", &["--issuer", "https://auth.example.org"]);
    let token_url = format!("http://127.0.0.1:{port}/oauth2/token");
    let token = |extra: &[&str]| {
        let mut args = vec![
            "token",
            "--token-url",
            &token_url,
            "--client-id",
            "svc",
            "--key",
            pem.to_str().unwrap(),
            "--kid",
            "k1",
            "--no-cache",
            "--attempts",
            "1",
        ];
        args.extend(extra);
        sb.run(&args)
    };
    let o = token(&[]);
    let err = assert_fails(&o, 5, "aud");
    assert!(
        err.contains("got \"http://127.0.0.1:"),
        "expected and received: {err}"
    );
    let hint = err.split("\nhint: ").nth(1).unwrap_or_default();
    assert!(hint.contains("aud was the token URL"), "{err}");
    assert!(hint.contains("--issuer https://auth.example.org"), "{err}");
    let o = token(&["--issuer", "https://auth.example.org"]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn token_from_m2m_serve_in_nhs_profile() {
    let sb = Sandbox::new();
    let (pem, jwks) = sb.keygen("k1", &[]);
    sb.register("svc", &jwks);
    let (_server, port) = serve(&sb, "nhs");
    let url = format!("http://127.0.0.1:{port}/oauth2/token");
    // RS512 because the JWKS from keygen says so; NHS-style "expires_in": "599" parsed.
    let o = sb.run(&[
        "token",
        "--token-url",
        &url,
        "--client-id",
        "svc",
        "--key",
        pem.to_str().unwrap(),
        "--kid",
        "k1",
        "--alg",
        "RS512",
        "--json",
        "--no-cache",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["expires_in"], 599);
    // RS256 is refused with NHS's message and our hint.
    let o = sb.run(&[
        "token",
        "--token-url",
        &url,
        "--client-id",
        "svc",
        "--key",
        pem.to_str().unwrap(),
        "--kid",
        "k1",
        "--alg",
        "RS256",
        "--no-cache",
        "--attempts",
        "1",
    ]);
    let err = fails_after_notes(&o, 5, "RS512");
    assert!(err.contains("\nhint: "), "{err}");
}

#[test]
fn legacy_token_url_audience_only_under_the_dangerous_switch() {
    let sb = Sandbox::new();
    let (pem, jwks) = sb.keygen("k1", &[]);
    sb.register("svc", &jwks);
    let (_server, port) = serve_with(&sb, "rfc", &["--audience", "dangerous-legacy-token-url"]);
    let url = format!("http://127.0.0.1:{port}/oauth2/token");
    let o = sb.run(&[
        "token",
        "--token-url",
        &url,
        // Explicit: without it the client would find the issuer by discovery and send that.
        "--aud",
        &url,
        "--client-id",
        "svc",
        "--key",
        pem.to_str().unwrap(),
        "--kid",
        "k1",
        "--no-cache",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn rotate_keys_keeps_the_previous_key_published() {
    let sb = Sandbox::new();
    let rotate = || {
        sb.run(&[
            "serve",
            "--clients",
            "clients.toml",
            "--data-dir",
            "data",
            "--rotate-keys",
        ])
    };
    let o = rotate();
    assert!(o.status.success(), "{}", stderr(&o));
    let first = std::fs::read(sb.path().join("data/keys/current.pem")).unwrap();
    let o = rotate();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        std::fs::read(sb.path().join("data/keys/previous.pem")).unwrap(),
        first
    );
    assert_ne!(
        std::fs::read(sb.path().join("data/keys/current.pem")).unwrap(),
        first
    );
    sb.register("svc", &sb.keygen("k1", &[]).1);
    let (_server, port) = serve(&sb, "rfc");
    let (status, body) = http(port, "GET", "/.well-known/jwks.json", "");
    assert_eq!(status, 200, "{body}");
    let jwks: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2, "{body}");
}

/// Starts `m2m serve` with `configure` applied, waits for its banner and returns everything it
/// wrote to stderr by the time it was killed.
fn serve_stderr(sb: &Sandbox, configure: impl FnOnce(&mut std::process::Command)) -> String {
    use std::io::BufRead;
    let port = closed_port();
    let mut cmd = sb.cmd();
    cmd.args([
        "serve",
        "--clients",
        "clients.toml",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--data-dir",
        "data",
    ]);
    configure(&mut cmd);
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn m2m serve");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    let server = ServerProcess(child);
    let mut seen = String::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(20)) {
        seen.push_str(&line);
        seen.push('\n');
        if line.contains("listening on") {
            break;
        }
    }
    drop(server);
    reader.join().unwrap();
    seen.extend(rx.try_iter().map(|l| l + "\n"));
    seen
}

#[test]
fn banner_never_prints_the_redis_password() {
    let sb = Sandbox::new();
    std::fs::write(sb.path().join("clients.toml"), "").unwrap();
    // Nothing listens on the port: the banner comes first either way.
    let url = format!("redis://:pw-2641c9dffec7@127.0.0.1:{}/0", closed_port());
    let from_flag = serve_stderr(&sb, |cmd| {
        cmd.args(["--replay-store", &url]);
    });
    let from_env = serve_stderr(&sb, |cmd| {
        cmd.env("M2M_REPLAY_STORE", &url);
    });
    for seen in [from_flag, from_env] {
        assert!(seen.contains("listening on"), "no banner: {seen}");
        assert!(
            seen.contains("replay store redis://***@127.0.0.1:"),
            "{seen}"
        );
        assert!(
            !seen.contains("pw-2641c9dffec7"),
            "password on stderr: {seen}"
        );
    }
}

#[test]
fn token_lifetime_is_bounded_like_the_registry() {
    let sb = Sandbox::new();
    std::fs::write(sb.path().join("clients.toml"), "").unwrap();
    for bad in ["0", "86401", "18446744073709551615"] {
        let o = sb.run(&[
            "serve",
            "--clients",
            "clients.toml",
            "--data-dir",
            "data",
            "--listen",
            "127.0.0.1:0",
            "--token-lifetime",
            bad,
        ]);
        assert_fails(&o, 2, "1..=86400");
    }
}

/// A `m2m serve` child whose stderr lines arrive on a channel as it writes them.
struct LiveServe {
    server: ServerProcess,
    lines: std::sync::mpsc::Receiver<String>,
    seen: String,
}

impl LiveServe {
    fn spawn(sb: &Sandbox, args: &[&str]) -> LiveServe {
        use std::io::BufRead;
        let mut child = sb
            .cmd()
            .arg("serve")
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn m2m serve");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        LiveServe {
            server: ServerProcess(child),
            lines,
            seen: String::new(),
        }
    }

    /// Reads stderr until a line contains `needle`; everything read so far is in `seen`.
    fn wait_for(&mut self, needle: &str) {
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(20)) {
            self.seen.push_str(&line);
            self.seen.push('\n');
            if line.contains(needle) {
                return;
            }
        }
        panic!(
            "m2m serve never wrote {needle:?}; stderr so far:\n{}",
            self.seen
        );
    }

    /// Waits (at most 30 s, then kills it and fails) for the process to end; its exit code and
    /// all of stderr.
    fn finish(mut self) -> (Option<i32>, String) {
        let mut waited = Duration::ZERO;
        let status = loop {
            if let Some(status) = self.server.0.try_wait().unwrap() {
                break status;
            }
            if waited > Duration::from_secs(30) {
                let _ = self.server.0.kill();
                panic!("m2m serve did not exit; stderr so far:\n{}", self.seen);
            }
            std::thread::sleep(Duration::from_millis(50));
            waited += Duration::from_millis(50);
        };
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push_str(&line);
            self.seen.push('\n');
        }
        (status.code(), self.seen.clone())
    }

    fn signal(&self, name: &str) {
        let pid = self.server.0.id().to_string();
        let o = std::process::Command::new("kill")
            .args([&format!("-{name}"), &pid])
            .output()
            .unwrap();
        assert!(o.status.success(), "kill -{name} {pid}: {}", stderr(&o));
    }

    fn is_running(&mut self) -> bool {
        self.server.0.try_wait().unwrap().is_none()
    }
}

#[test]
fn listening_is_announced_only_after_binding_and_loading() {
    let sb = Sandbox::new();
    std::fs::write(sb.path().join("clients.toml"), "").unwrap();
    // A busy port: the error names it, and no "listening" comes before it.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let args = ["--clients", "clients.toml", "--data-dir", "data"];
    let (code, err) = LiveServe::spawn(&sb, &[&args[..], &["--listen", &addr]].concat()).finish();
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");
    assert!(
        !err.contains("listening"),
        "announced before binding: {err}"
    );
    // A registry that does not load: file:line, and no "listening" either.
    std::fs::write(
        sb.path().join("clients.toml"),
        "[[client]]\nid = \"a\"\nscope = [\"x\"]\n",
    )
    .unwrap();
    let port = closed_port().to_string();
    let listen = format!("127.0.0.1:{port}");
    let (code, err) = LiveServe::spawn(&sb, &[&args[..], &["--listen", &listen]].concat()).finish();
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("clients.toml:"), "{err}");
    assert!(
        !err.contains("listening"),
        "announced before loading: {err}"
    );
}

#[test]
fn sighup_reloads_the_registry_and_a_bad_file_keeps_the_old_one() {
    let sb = Sandbox::new();
    let (pem, jwks) = sb.keygen("k1", &[]);
    std::fs::write(sb.path().join("clients.toml"), "").unwrap();
    let port = closed_port();
    let listen = format!("127.0.0.1:{port}");
    let mut serve = LiveServe::spawn(
        &sb,
        &[
            "--clients",
            "clients.toml",
            "--listen",
            &listen,
            "--data-dir",
            "data",
            "--replay-store",
            "memory",
        ],
    );
    serve.wait_for("listening on");
    assert!(serve.seen.contains("registry is empty"), "{}", serve.seen);
    let issuer = format!("http://{listen}");
    let token = || {
        sb.run(&[
            "token",
            "--issuer",
            &issuer,
            "--client-id",
            "svc",
            "--key",
            pem.to_str().unwrap(),
            "--kid",
            "k1",
            "--no-cache",
            "--attempts",
            "1",
        ])
    };
    assert_fails(&token(), 5, "unknown client");

    // A new client, then SIGHUP: accepted without a restart.
    sb.register("svc", &jwks);
    serve.signal("HUP");
    serve.wait_for("client registry reloaded");
    let o = token();
    assert!(o.status.success(), "{}", stderr(&o));

    // A broken file: logged, the process lives, the old registry still answers.
    std::fs::write(sb.path().join("clients.toml"), "[[client]\nid = \"svc\"\n").unwrap();
    serve.signal("HUP");
    serve.wait_for("NOT reloaded");
    assert!(serve.seen.contains("clients.toml"), "{}", serve.seen);
    assert!(serve.is_running(), "SIGHUP must not stop the server");
    let o = token();
    assert!(o.status.success(), "{}", stderr(&o));
    serve.signal("TERM");
    let (code, err) = serve.finish();
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn rotate_keys_needs_no_registry() {
    let sb = Sandbox::new();
    let o = sb.run(&["serve", "--data-dir", "data", "--rotate-keys"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(sb.path().join("data/keys/current.pem").exists());
    // Serving still needs one.
    let o = sb.run(&["serve", "--data-dir", "data"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--clients"), "{}", stderr(&o));
}

#[test]
fn check_validates_everything_and_writes_nothing() {
    let sb = Sandbox::new();
    sb.register("svc", &sb.keygen("k1", &[]).1);
    let check = |extra: &[&str]| {
        let mut args = vec![
            "serve",
            "--clients",
            "clients.toml",
            "--data-dir",
            "data",
            "--check",
        ];
        args.extend(extra);
        sb.run(&args)
    };
    let o = check(&["--issuer", "https://auth.example.org"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("ok: issuer https://auth.example.org"), "{err}");
    assert!(err.contains("1 client(s)"), "{err}");
    assert!(err.contains("no signing key yet"), "{err}");
    assert!(
        !sb.path().join("data").exists(),
        "--check wrote the data dir"
    );
    // Each thing it loads is checked.
    assert_fails(&check(&["--issuer", "ftp://x"]), 3, "issuer");
    assert_fails(
        &check(&["--replay-store", "postgres://x"]),
        3,
        "replay store",
    );
    std::fs::write(
        sb.path().join("clients.toml"),
        "[[client]]\nid = \"a\"\njwks_uri = \"http://partner.example/jwks.json\"\n",
    )
    .unwrap();
    assert_fails(&check(&[]), 3, "clients.toml:1");
}

/// A wrong `--kid` (or a key moved away from its JWKS) used to switch the alg to RS256 silently,
/// and the server's answer then talked about the alg. Now the CLI says so before sending, and
/// the refusal's hint names --alg and the kid.
#[test]
fn a_wrong_kid_is_a_warning_naming_it_and_the_alg_refusal_hint_names_alg_and_kid() {
    let sb = Sandbox::new();
    let (pem, jwks) = sb.keygen("k1", &[]);
    sb.register("svc", &jwks);
    let (_server, port) = serve(&sb, "rfc");
    let issuer = format!("http://127.0.0.1:{port}");
    let token = |key: &str, kid: &str| {
        sb.run(&[
            "token",
            "--issuer",
            &issuer,
            "--client-id",
            "svc",
            "--key",
            key,
            "--kid",
            kid,
            "--no-cache",
            "--attempts",
            "1",
        ])
    };
    let err = fails_after_notes(&token(pem.to_str().unwrap(), "k9"), 5, "alg");
    assert!(err.contains("warning: --kid \"k9\""), "{err}");
    assert!(err.contains("k1.jwks.json"), "{err}");
    assert!(err.contains("RS256, a guess"), "{err}");
    let hint = err.split("\nhint: ").nth(1).unwrap_or_default();
    assert!(hint.contains("--alg") && hint.contains("k9"), "{err}");

    // The key moved away from its JWKS: the same warning, naming the kid and the key.
    let moved = sb.path().join("elsewhere");
    std::fs::create_dir_all(&moved).unwrap();
    std::fs::copy(&pem, moved.join("k1.pem")).unwrap();
    let moved_pem = moved.join("k1.pem");
    let err = fails_after_notes(&token(moved_pem.to_str().unwrap(), "k1"), 5, "alg");
    assert!(err.contains("warning: --kid \"k1\""), "{err}");
    assert!(err.contains("elsewhere"), "{err}");

    // With the JWKS beside it, nothing is guessed and nothing is said.
    let o = token(pem.to_str().unwrap(), "k1");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("warning"), "{}", stderr(&o));
}

/// The NHS emulation must answer an `aud` refusal with NHS's fixed string; its log says what it
/// expected and what came, so the operator can see which rule the client followed.
#[test]
fn the_nhs_emulation_logs_expected_and_received_aud() {
    let sb = Sandbox::new();
    let (pem, jwks) = sb.keygen("k1", &[]);
    sb.register("svc", &jwks);
    let listen = format!("127.0.0.1:{}", closed_port());
    let mut serve = LiveServe::spawn(
        &sb,
        &[
            "--profile",
            "nhs",
            "--clients",
            "clients.toml",
            "--listen",
            &listen,
            "--data-dir",
            "data",
            "--replay-store",
            "memory",
        ],
    );
    serve.wait_for("listening on");
    let token_url = format!("http://{listen}/oauth2/token");
    let o = sb.run(&[
        "token",
        "--token-url",
        &token_url,
        "--aud",
        "https://elsewhere.example/token",
        "--client-id",
        "svc",
        "--key",
        pem.to_str().unwrap(),
        "--kid",
        "k1",
        "--no-cache",
        "--attempts",
        "1",
    ]);
    assert_fails(&o, 5, "Missing or invalid 'aud' claim");
    serve.wait_for("assertion 'aud' is not the token URL");
    let line = serve.seen.lines().last().unwrap_or_default().to_owned();
    assert!(line.contains(&format!("expected={token_url}")), "{line}");
    assert!(line.contains("https://elsewhere.example/token"), "{line}");
}
