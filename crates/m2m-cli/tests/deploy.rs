//! `deploy/`: the Dockerfile and the systemd unit run `m2m serve` with command lines and
//! settings that must keep working as the CLI changes. Each one is run here, as written (only
//! the binary and the /etc, /var paths pointed into a sandbox), through `m2m serve --check`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly on purpose

mod support;

use std::path::Path;

use support::{Sandbox, stderr};

fn deploy_file(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A sandbox with a registry at `etc/m2m/clients.toml` and an empty `var/lib/m2m`.
fn sandbox() -> Sandbox {
    let sb = Sandbox::new();
    let (_, jwks) = sb.keygen("k1", &[]);
    std::fs::create_dir_all(sb.path().join("etc/m2m")).unwrap();
    std::fs::create_dir_all(sb.path().join("var/lib/m2m")).unwrap();
    let o = sb.run(&[
        "clients",
        "add",
        "--clients",
        "etc/m2m/clients.toml",
        "--id",
        "svc",
        "--jwks",
        jwks.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    sb
}

/// The deploy files' absolute paths, moved into the sandbox.
fn sandboxed(value: &str, sb: &Sandbox) -> String {
    let root = sb.path().display().to_string();
    value
        .replace("/etc/m2m", &format!("{root}/etc/m2m"))
        .replace("/var/lib/m2m", &format!("{root}/var/lib/m2m"))
}

/// Runs `argv` (its program is the installed `m2m`) with `env`, adding `--check` if the line
/// lacks it, and asserts that the check passes for the issuer the file sets.
fn check(sb: &Sandbox, what: &str, argv: &[String], env: &[(String, String)]) {
    assert!(
        argv.first().is_some_and(|p| p.ends_with("/m2m")),
        "{what}: runs {argv:?}, not m2m"
    );
    let mut args: Vec<String> = argv[1..].iter().map(|a| sandboxed(a, sb)).collect();
    assert_eq!(args.first().map(String::as_str), Some("serve"), "{what}");
    if !args.iter().any(|a| a == "--check") {
        args.push("--check".to_owned());
    }
    let mut cmd = sb.cmd();
    cmd.args(&args);
    for (k, v) in env {
        cmd.env(k, sandboxed(v, sb));
    }
    let o = cmd.output().unwrap();
    let err = stderr(&o);
    assert!(o.status.success(), "{what}: {args:?} failed:\n{err}");
    assert!(
        err.contains("ok: issuer https://auth.example.org") && err.contains("1 client(s)"),
        "{what}: {err}"
    );
    assert!(
        !sb.path().join("var/lib/m2m/keys").exists(),
        "{what}: --check wrote keys"
    );
}

#[test]
fn the_systemd_unit_checks_and_runs_a_valid_configuration() {
    let unit = deploy_file("m2m-serve.service");
    let value = |key: &str| -> Vec<String> {
        unit.lines()
            .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .map(str::to_owned)
            .collect()
    };
    let env: Vec<(String, String)> = value("Environment")
        .iter()
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.to_owned(), v.to_owned())
        })
        .collect();
    let sb = sandbox();
    let pre = value("ExecStartPre");
    let start = value("ExecStart");
    assert_eq!((pre.len(), start.len()), (1, 1), "{unit}");
    assert!(
        pre[0].contains("--check"),
        "ExecStartPre checks: {}",
        pre[0]
    );
    for (what, line) in [("ExecStartPre", &pre[0]), ("ExecStart", &start[0])] {
        let argv: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
        check(&sb, what, &argv, &env);
    }
    // Reload is SIGHUP (the registry reload), and the service runs unprivileged and confined.
    assert_eq!(value("ExecReload"), ["/bin/kill -HUP $MAINPID"]);
    for directive in [
        "DynamicUser=yes",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "CapabilityBoundingSet=",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "SystemCallFilter=@system-service",
        "StateDirectoryMode=0700",
    ] {
        assert!(unit.lines().any(|l| l == directive), "missing {directive}");
    }
}

#[test]
fn the_dockerfile_is_multi_stage_non_root_and_its_command_checks() {
    let file = deploy_file("Dockerfile");
    let lines: Vec<&str> = file.lines().filter(|l| !l.starts_with('#')).collect();
    let froms: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].starts_with("FROM "))
        .collect();
    assert!(froms.len() >= 2, "multi-stage: {file}");
    assert!(file.contains("COPY --from=build"), "{file}");
    let last_stage = &lines[*froms.last().unwrap()..];
    let user = last_stage
        .iter()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("the run stage sets USER");
    let uid = user.split(':').next().unwrap();
    assert!(uid != "0" && uid != "root", "runs as root: USER {user}");
    let env: Vec<(String, String)> = last_stage
        .iter()
        .filter_map(|l| l.strip_prefix("ENV "))
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.to_owned(), v.to_owned())
        })
        .collect();
    let exec_form = |key: &str| -> Vec<String> {
        let json = last_stage
            .iter()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key}in the run stage"));
        serde_json::from_str(json).unwrap()
    };
    let mut argv = exec_form("ENTRYPOINT ");
    argv.extend(exec_form("CMD "));
    let sb = sandbox();
    check(&sb, "Dockerfile ENTRYPOINT + CMD", &argv, &env);
    // The container listens on all interfaces, so its issuer must not be the default
    // http://0.0.0.0:… — the file sets one.
    assert!(env.iter().any(|(k, _)| k == "M2M_ISSUER"), "{file}");
}
