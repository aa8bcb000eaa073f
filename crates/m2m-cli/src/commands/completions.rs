//! `m2m completions SHELL` and `m2m man`: generated from the clap definitions, so they never
//! drift from the real command line.

use std::path::Path;

use clap::CommandFactory as _;
use clap_mangen::roff::{Roff, roman};

use crate::cli::{Cli, CompletionsArgs, ManArgs};
use crate::exit::{CliError, CliResult};

/// Prints the completion script for the shell.
pub(crate) fn completions(args: &CompletionsArgs) -> CliResult {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "m2m", &mut out);
    write_stdout(&out)
}

/// Prints the man page (roff) for `m2m`, or with `--all DIR` writes `m2m.1` and one page per
/// subcommand (`m2m-token.1`, `m2m-jwks-check.1`, …): every `m2m-X(1)` a page names exists.
pub(crate) fn man(args: &ManArgs) -> CliResult {
    // No `help` subcommand in the pages: `m2m-help(1)` would name a page nobody needs.
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let Some(dir) = &args.all else {
        return write_stdout(&page(&cmd)?);
    };
    std::fs::create_dir_all(dir)
        .map_err(|e| CliError::local(format!("cannot create {}: {e}", dir.display())))?;
    let mut written = 0;
    write_pages(&cmd, dir, &mut written)?;
    eprintln!("wrote {written} man pages to {}", dir.display());
    Ok(())
}

fn write_pages(cmd: &clap::Command, dir: &Path, written: &mut usize) -> CliResult {
    let name = cmd.get_display_name().unwrap_or_else(|| cmd.get_name());
    let path = dir.join(format!("{name}.1"));
    std::fs::write(&path, page(cmd)?)
        .map_err(|e| CliError::local(format!("cannot write {}: {e}", path.display())))?;
    *written += 1;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub, dir, written)?;
    }
    Ok(())
}

/// One page: clap_mangen's sections, then the `--help` text after the options (examples and
/// notes) as an EXAMPLES section in no-fill mode, so that every example keeps its lines (roff
/// would otherwise refill them into one run-on paragraph).
fn page(cmd: &clap::Command) -> CliResult<Vec<u8>> {
    let failed = |e: std::io::Error| CliError::local(format!("cannot render the man page: {e}"));
    let after = cmd.get_after_help().map(ToString::to_string);
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd.clone().after_help(None::<&'static str>))
        .render(&mut out)
        .map_err(failed)?;
    if let Some(after) = after {
        let mut roff = Roff::default();
        roff.control("SH", ["EXAMPLES"]);
        roff.control("nf", []);
        for line in after.lines().filter(|l| *l != "Examples:") {
            roff.text([roman(line)]);
        }
        roff.control("fi", []);
        roff.to_writer(&mut out).map_err(failed)?;
    }
    Ok(out)
}

fn write_stdout(bytes: &[u8]) -> CliResult {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(CliError::local(format!("cannot write to stdout: {e}")))
        }
        _ => Ok(()),
    }
}
