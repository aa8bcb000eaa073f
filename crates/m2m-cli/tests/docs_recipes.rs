//! The docs run as written: every fenced block in `README.md`, `CONTRIBUTING.md` and `docs/*.md`
//! is run, parsed or compiled here, so a recipe cannot drift from the `m2m` it documents.
//!
//! The convention (also in CONTRIBUTING.md, "Code blocks in the docs"):
//!
//! - ```` ```sh ```` — a recipe. All of a file's recipes run top to bottom as one bash script
//!   (`set -euo pipefail`) in a fresh directory, with the built `m2m` first on `PATH`, an isolated
//!   `HOME`/`XDG_*`, and `NHS_API_KEY` set to a placeholder. A line `m2m serve …` (not
//!   `--rotate-keys`/`--check`/`--help`) or `m2m gateway …` starts the server in the background
//!   and waits until it listens; it is stopped when the script ends. Loopback ports
//!   (`127.0.0.1:8080`) are mapped to free ports consistently across the file, so recipes never
//!   collide with anything running.
//! - ```` ```sh no-run ```` — a block that cannot run offline (NHS's real URLs, a Redis on another
//!   host, `cargo install`). It must follow an HTML comment `<!-- no-run: REASON -->`; each `m2m`
//!   command in it (also inside `$(…)`, and `cargo run … -- ARGS`) must parse: it is run as
//!   `m2m ARGS --help`, so clap checks the subcommand, the flags and their values.
//! - ```` ```toml ```` — must parse as TOML. ```` ```text ```` — shown as it is.
//! - ```` ```rust ```` (any attributes but `ignore`) — compiled as a doctest: the file must be
//!   included with `include_str!` by some crate's `lib.rs` under `cfg(doctest)`.
//! - Anything else (or no info string) is refused, so a new kind of block is a decision.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly on purpose

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A whole recipe file must finish in this time (keygens, a few servers, a few tokens).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(180);

/// The placeholder the runner gives for `$NHS_API_KEY` (README and docs/nhs.md use it).
const NHS_API_KEY_PLACEHOLDER: &str = "test-api-key";

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .unwrap()
        .to_path_buf()
}

/// `README.md`, `CONTRIBUTING.md` and every `docs/*.md`, relative to the workspace root.
fn doc_files() -> Vec<PathBuf> {
    let root = workspace_root();
    let mut files = vec![PathBuf::from("README.md"), PathBuf::from("CONTRIBUTING.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .map(|p| p.strip_prefix(&root).unwrap().to_path_buf())
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

#[derive(Debug, PartialEq, Eq)]
enum Kind {
    Sh,
    ShNoRun,
    Toml,
    Rust,
    Text,
    /// Must parse as JSON (a config file shown whole).
    Json,
    /// A snippet in another language (a Python, Java or Node caller, a systemd unit, a pod
    /// spec): shown as it is, as no toolchain for it is here.
    Foreign,
}

/// The info strings of [`Kind::Foreign`] blocks.
const FOREIGN: [&str; 7] = ["python", "java", "js", "ini", "yaml", "dockerfile", "nginx"];

#[derive(Debug)]
struct Block {
    /// `path:line` of the opening fence.
    at: String,
    kind: Kind,
    /// The no-run reason from the `<!-- no-run: … -->` comment before the block.
    reason: Option<String>,
    body: String,
}

/// The fenced blocks of one markdown file; an unknown info string is an error.
fn blocks(rel: &Path) -> Result<Vec<Block>, String> {
    let text = std::fs::read_to_string(workspace_root().join(rel)).unwrap();
    let mut out = Vec::new();
    let mut lines = text.lines().enumerate();
    let mut previous = "";
    while let Some((n, line)) = lines.next() {
        // Fences inside list items are indented: the body loses the same indentation.
        let indent = line.len() - line.trim_start().len();
        let Some(info) = line.trim_start().strip_prefix("```") else {
            if !line.trim().is_empty() {
                previous = line;
            }
            continue;
        };
        let at = format!("{}:{}", rel.display(), n + 1);
        let words: Vec<&str> = info.split([' ', ',']).filter(|w| !w.is_empty()).collect();
        let kind = match words.as_slice() {
            ["sh"] => Kind::Sh,
            ["sh", "no-run"] => Kind::ShNoRun,
            ["toml"] => Kind::Toml,
            ["text"] => Kind::Text,
            ["json"] => Kind::Json,
            [lang] if FOREIGN.contains(lang) => Kind::Foreign,
            ["rust", rest @ ..] if !rest.contains(&"ignore") => Kind::Rust,
            _ => {
                return Err(format!(
                    "{at}: code block ```{info}: use sh, sh no-run, toml, json, text, rust (not ignore) or one of {FOREIGN:?}; see CONTRIBUTING.md"
                ));
            }
        };
        let reason = previous
            .trim()
            .strip_prefix("<!-- no-run:")
            .and_then(|r| r.strip_suffix("-->"))
            .map(|r| r.trim().to_owned());
        let mut body = String::new();
        for (_, l) in lines.by_ref() {
            if l.trim_start().starts_with("```") {
                break;
            }
            let strip = l.len() - l.trim_start().len();
            body.push_str(&l[strip.min(indent)..]);
            body.push('\n');
        }
        previous = "";
        out.push(Block {
            at,
            kind,
            reason,
            body,
        });
    }
    Ok(out)
}

/// Logical lines: `\`-continued lines joined.
fn logical_lines(body: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in body.lines() {
        if let Some(head) = line.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
        } else {
            current.push_str(line);
            out.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// A `m2m serve` or `m2m gateway` line that runs a server (rather than rotating keys or checking
/// and exiting).
fn is_server_line(line: &str) -> bool {
    let t = line.trim_start();
    (t.starts_with("m2m serve ") || t.starts_with("m2m gateway "))
        && !["--rotate-keys", "--check", "--help"]
            .iter()
            .any(|f| t.contains(f))
}

/// The bash script for a file's runnable recipes; `logs` is where server output goes.
fn script(recipes: &[&Block], logs: &Path) -> String {
    let mut s = String::from(
        r#"set -euo pipefail
m2m_recipe_pids=()
trap 'for p in "${m2m_recipe_pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true' EXIT
m2m_recipe_wait() { # PID PORT LOG: wait until the server listens
  m2m_recipe_pids+=("$1")
  for _ in $(seq 1 400); do
    if ! kill -0 "$1" 2>/dev/null; then echo "the server exited early:" >&2; cat "$3" >&2; return 1; fi
    if (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "the server did not listen on port $2 within 20 s" >&2; cat "$3" >&2; return 1
}
"#,
    );
    let mut servers = 0;
    for block in recipes {
        s.push_str(&format!("echo '### {}' >&2\n", block.at));
        for line in logical_lines(&block.body) {
            if !is_server_line(&line) {
                s.push_str(&line);
                s.push('\n');
                continue;
            }
            servers += 1;
            // The command without its trailing comment, with the listen address explicit so the
            // port mapping below applies to it as to the URLs the other commands use.
            let command = line.split(" #").next().unwrap().trim_end().to_owned();
            let command = if command.contains("--listen") {
                command
            } else {
                format!("{command} --listen 127.0.0.1:8080")
            };
            let port = command
                .split("--listen")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|addr| addr.rsplit(':').next())
                .unwrap()
                .to_owned();
            let log = logs.join(format!("serve-{servers}.log"));
            s.push_str(&format!(
                "{command} >{log} 2>&1 &\nm2m_recipe_wait $! {port} {log}\n",
                log = log.display()
            ));
        }
    }
    map_ports(&s)
}

/// Replaces each loopback port (`127.0.0.1:N`, `localhost:N`, and the bare N after
/// `m2m_recipe_wait $!`) with a free one, the same N always with the same free port.
fn map_ports(script: &str) -> String {
    let mut map: BTreeMap<String, String> = BTreeMap::new();
    let mut out = String::new();
    let mut rest = script;
    let prefixes = ["127.0.0.1:", "localhost:", "m2m_recipe_wait $! "];
    loop {
        let next = prefixes
            .iter()
            .filter_map(|p| rest.find(p).map(|i| (i, *p)))
            .min_by_key(|(i, _)| *i);
        let Some((i, prefix)) = next else {
            out.push_str(rest);
            return out;
        };
        let after = &rest[i + prefix.len()..];
        let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
        out.push_str(&rest[..i + prefix.len()]);
        if !digits.is_empty() {
            if !map.contains_key(&digits) {
                // Two doc ports must not land on the same free port.
                let port = loop {
                    let p = m2m_testkit::net::free_port().to_string();
                    if !map.values().any(|v| *v == p) {
                        break p;
                    }
                };
                map.insert(digits.clone(), port);
            }
            out.push_str(&map[&digits]);
        }
        rest = &after[digits.len()..];
    }
}

/// Runs `script` in `dir` with the built `m2m` first on PATH; kills its whole process group on
/// timeout. Returns (success, combined output).
fn run_script(script: &str, dir: &Path) -> (bool, String) {
    use std::os::unix::process::CommandExt as _;
    let m2m = PathBuf::from(env!("CARGO_BIN_EXE_m2m"));
    let path = format!(
        "{}:{}",
        m2m.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".to_owned())
    );
    let work = dir.join("work");
    std::fs::create_dir_all(&work).unwrap();
    let script_path = dir.join("recipe.sh");
    std::fs::write(&script_path, script).unwrap();
    let output_path = dir.join("output.txt");
    let output = std::fs::File::create(&output_path).unwrap();
    let mut cmd = Command::new("bash");
    cmd.arg(&script_path)
        .env_clear()
        .env("PATH", path)
        .env("HOME", dir)
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .env("XDG_CACHE_HOME", dir.join("cache"))
        .env("LANG", "C.UTF-8")
        .env("NHS_API_KEY", NHS_API_KEY_PLACEHOLDER)
        .current_dir(&work)
        .stdin(Stdio::null())
        .stdout(output.try_clone().unwrap())
        .stderr(output)
        .process_group(0);
    let mut child = cmd.spawn().expect("run bash");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > SCRIPT_TIMEOUT {
            // The script and every server it started: its own process group, nothing else.
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let text = std::fs::read_to_string(&output_path).unwrap_or_default();
    match status {
        Some(s) => (s.success(), text),
        None => (
            false,
            format!("{text}\n(timed out after {SCRIPT_TIMEOUT:?})"),
        ),
    }
}

#[test]
fn every_code_block_has_a_known_kind() {
    let mut problems = Vec::new();
    for file in doc_files() {
        match blocks(&file) {
            Err(e) => problems.push(e),
            Ok(blocks) => {
                for b in blocks {
                    if b.kind == Kind::ShNoRun && b.reason.as_deref().is_none_or(str::is_empty) {
                        problems.push(format!(
                            "{}: a ```sh no-run block needs `<!-- no-run: REASON -->` on the line before",
                            b.at
                        ));
                    }
                    if b.kind != Kind::ShNoRun && b.reason.is_some() {
                        problems.push(format!(
                            "{}: a no-run comment before a block that is not ```sh no-run",
                            b.at
                        ));
                    }
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn json_blocks_parse() {
    let mut problems = Vec::new();
    for file in doc_files() {
        for b in blocks(&file).unwrap_or_default() {
            if b.kind == Kind::Json
                && let Err(e) = serde_json::from_str::<serde_json::Value>(&b.body)
            {
                problems.push(format!("{}: not JSON: {e}", b.at));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn toml_blocks_parse() {
    for file in doc_files() {
        for b in blocks(&file).unwrap_or_default() {
            if b.kind == Kind::Toml
                && let Err(e) = b.body.parse::<toml::Table>()
            {
                panic!("{}: not valid TOML: {e}", b.at);
            }
        }
    }
}

/// Every file with ```rust blocks is compiled as a doctest: some crate's source includes it.
#[test]
fn rust_blocks_are_compiled_as_doctests() {
    let root = workspace_root();
    let mut sources = String::new();
    for krate in std::fs::read_dir(root.join("crates")).unwrap() {
        let lib = krate.unwrap().path().join("src/lib.rs");
        if let Ok(text) = std::fs::read_to_string(lib) {
            sources.push_str(&text);
        }
    }
    for file in doc_files() {
        let has_rust = blocks(&file)
            .unwrap_or_default()
            .iter()
            .any(|b| b.kind == Kind::Rust);
        let included = format!("include_str!(\"../../../{}\")", file.display());
        assert!(
            !has_rust || sources.contains(&included),
            "{} has ```rust blocks but no crate compiles it: add `#[doc = {included}]` under \
             #[cfg(doctest)] to a lib.rs (see CONTRIBUTING.md)",
            file.display()
        );
    }
}

/// Shell words of a simple command line (quotes removed; `$VAR` and `$(…)` become `X`), and the
/// bodies of the `$(…)` substitutions it contains, for the parse check of no-run blocks.
fn shell_commands(line: &str) -> Vec<Vec<String>> {
    let mut commands = Vec::new();
    let mut substitutions = Vec::new();
    let mut words: Vec<String> = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let chars: Vec<char> = line.chars().collect();
    let mut i = 0;
    let finish = |words: &mut Vec<String>, commands: &mut Vec<Vec<String>>| {
        if !words.is_empty() {
            commands.push(std::mem::take(words));
        }
    };
    // Reads a `$(…)` starting at chars[i] == '$', returns its body and the index after it.
    let substitution = |i: usize| -> (String, usize) {
        let mut depth = 0;
        let mut j = i + 1;
        let start = i + 2;
        while j < chars.len() {
            match chars[j] {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        return (chars[start..j].iter().collect(), j + 1);
                    }
                }
                _ => {}
            }
            j += 1;
        }
        (chars[start..].iter().collect(), chars.len())
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            '#' if !in_word => break,
            ' ' | '\t' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
                i += 1;
            }
            '|' | ';' | '&' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
                finish(&mut words, &mut commands);
                i += 1;
            }
            '>' | '<' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
                // Skip the redirection target.
                i += 1;
                while i < chars.len() && chars[i] == ' ' {
                    i += 1;
                }
                while i < chars.len() && chars[i] != ' ' {
                    i += 1;
                }
            }
            '\'' => {
                in_word = true;
                i += 1;
                while i < chars.len() && chars[i] != '\'' {
                    word.push(chars[i]);
                    i += 1;
                }
                i += 1;
            }
            '"' => {
                in_word = true;
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    if chars[i] == '$' && chars.get(i + 1) == Some(&'(') {
                        let (body, next) = substitution(i);
                        substitutions.push(body);
                        word.push('X');
                        i = next;
                    } else {
                        word.push(chars[i]);
                        i += 1;
                    }
                }
                i += 1;
            }
            '$' if chars.get(i + 1) == Some(&'(') => {
                in_word = true;
                let (body, next) = substitution(i);
                substitutions.push(body);
                word.push('X');
                i = next;
            }
            _ => {
                in_word = true;
                word.push(c);
                i += 1;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    finish(&mut words, &mut commands);
    for body in substitutions {
        commands.extend(shell_commands(&body));
    }
    // `$VAR` words stand for some value.
    for command in &mut commands {
        for w in command.iter_mut() {
            if w.contains('$') {
                *w = "X".to_owned();
            }
        }
    }
    commands
}

/// The `m2m` arguments of a command, if it runs `m2m` (`m2m …` or `cargo run … -- …`).
fn m2m_args(command: &[String]) -> Option<Vec<String>> {
    let first = command.iter().position(|w| !w.contains('='))?; // skip VAR=value prefixes
    match command[first].as_str() {
        "m2m" => Some(command[first + 1..].to_vec()),
        "cargo" if command.get(first + 1).map(String::as_str) == Some("run") => {
            let dash = command.iter().position(|w| w == "--")?;
            Some(command[dash + 1..].to_vec())
        }
        _ => None,
    }
}

#[test]
fn shell_words_are_split_like_bash() {
    let cmds = shell_commands(
        r#"curl -H "$(m2m token --env int --header)" https://x/y | m2m decode - --lint nhs # c"#,
    );
    assert_eq!(
        cmds,
        vec![
            vec!["curl", "-H", "X", "https://x/y"],
            vec!["m2m", "decode", "-", "--lint", "nhs"],
            vec!["m2m", "token", "--env", "int", "--header"],
        ]
    );
    let cmds = shell_commands("m2m jwks a.pem b.jwks.json > jwks.json && echo 'a b'");
    assert_eq!(
        cmds,
        vec![
            vec!["m2m", "jwks", "a.pem", "b.jwks.json"],
            vec!["echo", "a b"]
        ]
    );
    assert_eq!(
        m2m_args(&shell_commands("cargo run --release -- demo")[0]),
        Some(vec!["demo".to_owned()])
    );
}

/// Each `m2m` command of a no-run block parses (`m2m ARGS --help` succeeds).
#[test]
fn no_run_blocks_parse_as_m2m_commands() {
    let mut problems = Vec::new();
    let mut checked = 0;
    for file in doc_files() {
        for b in blocks(&file).unwrap_or_default() {
            if b.kind != Kind::ShNoRun {
                continue;
            }
            for line in logical_lines(&b.body) {
                for command in shell_commands(&line) {
                    let Some(mut args) = m2m_args(&command) else {
                        continue;
                    };
                    args.push("--help".to_owned());
                    let o = Command::new(env!("CARGO_BIN_EXE_m2m"))
                        .args(&args)
                        .env_remove("M2M_PROFILE")
                        .output()
                        .unwrap();
                    checked += 1;
                    if !o.status.success() {
                        problems.push(format!(
                            "{}: `m2m {}` does not parse: {}",
                            b.at,
                            args.join(" "),
                            String::from_utf8_lossy(&o.stderr)
                        ));
                    }
                }
            }
        }
    }
    assert!(checked > 0, "no m2m command found in no-run blocks");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The recipes of every file run top to bottom against real `m2m serve` processes.
#[test]
fn recipes_run_as_written() {
    let mut failures = Vec::new();
    let mut ran = 0;
    for file in doc_files() {
        let all = blocks(&file).unwrap_or_default();
        let recipes: Vec<&Block> = all.iter().filter(|b| b.kind == Kind::Sh).collect();
        if recipes.is_empty() {
            continue;
        }
        ran += recipes.len();
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        std::fs::create_dir_all(&logs).unwrap();
        let text = script(&recipes, &logs);
        let (ok, output) = run_script(&text, dir.path());
        if !ok {
            failures.push(format!(
                "{}: its recipes failed.\n--- script ---\n{text}\n--- output ---\n{output}",
                file.display()
            ));
        }
    }
    assert!(ran > 0, "no runnable recipe found");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn ports_are_mapped_consistently() {
    let s = map_ports(
        "a 127.0.0.1:8080 b http://127.0.0.1:8080/x localhost:9000 m2m_recipe_wait $! 8080 log",
    );
    let words: Vec<&str> = s.split_whitespace().collect();
    let p = words[1].strip_prefix("127.0.0.1:").unwrap();
    assert_ne!(p, "8080");
    assert!(words[3].contains(&format!(":{p}/x")));
    assert!(!words[4].ends_with(":9000"));
    assert_eq!(words[7], p);
}

/// The crates a Rust snippet names at the root of a path (`tokio::main`, `use m2m_client::{…}`),
/// leaving out the inside of use-trees and `std`/`core`/`alloc`/`crate`/`self`/`super`.
fn crate_roots(code: &str) -> Vec<String> {
    let chars: Vec<char> = code.chars().collect();
    let mut roots = Vec::new();
    let mut use_tree_depth = 0usize;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '{' && i >= 2 && chars[i - 1] == ':' && chars[i - 2] == ':' {
            use_tree_depth += 1;
        } else if c == '}' && use_tree_depth > 0 {
            use_tree_depth -= 1;
        } else if (c.is_ascii_lowercase() || c == '_')
            && (i == 0 || !(chars[i - 1].is_alphanumeric() || matches!(chars[i - 1], '_' | ':')))
        {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let ident: String = chars[start..i].iter().collect();
            let is_path = chars.get(i) == Some(&':') && chars.get(i + 1) == Some(&':');
            if is_path
                && use_tree_depth == 0
                && !["std", "core", "alloc", "crate", "self", "super"].contains(&ident.as_str())
            {
                roots.push(ident);
            }
            continue;
        }
        i += 1;
    }
    roots
}

/// A guide whose page has a `[dependencies]` block names every crate its Rust snippets use (a
/// reader pasting them into a new crate needs nothing else).
#[test]
fn rust_snippets_use_only_named_dependencies() {
    assert_eq!(
        crate_roots(
            "use m2m_client::{a::B, c};\n#[tokio::main] fn f() { std::fs::read(x); reqwest::Client::new(); }"
        ),
        ["m2m_client", "tokio", "reqwest"]
    );
    for file in doc_files() {
        let all = blocks(&file).unwrap_or_default();
        let Some(deps) = all.iter().filter(|b| b.kind == Kind::Toml).find_map(|b| {
            b.body
                .parse::<toml::Table>()
                .ok()?
                .get("dependencies")
                .cloned()
        }) else {
            continue;
        };
        let names: Vec<String> = deps
            .as_table()
            .unwrap()
            .keys()
            .map(|k| k.replace('-', "_"))
            .collect();
        for b in all.iter().filter(|b| b.kind == Kind::Rust) {
            let code: String = b
                .body
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .map(|l| l.split(" //").next().unwrap_or_default())
                .collect::<Vec<_>>()
                .join("\n");
            for root in crate_roots(&code) {
                assert!(
                    names.contains(&root),
                    "{}: the snippet uses `{root}::`, which the page's [dependencies] block ({}) does not name",
                    b.at,
                    names.join(", ")
                );
            }
        }
    }
}
