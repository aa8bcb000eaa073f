//! `m2m assertion`: prints one signed client assertion (docs/protocol.md, "Client assertion") on stdout, and nothing else.

use std::sync::Arc;

use m2m_client::Profile;
use m2m_core::assertion::AssertionBuilder;
use m2m_core::clock::{Clock as _, SystemClock};

use crate::cli::AssertionArgs;
use crate::commands::print_result;
use crate::exit::CliResult;
use crate::settings;

/// Runs `m2m assertion`.
pub(crate) fn run(args: &AssertionArgs) -> CliResult {
    let s = settings::resolve(&args.client, None)?;
    if s.federation.source.is_some() {
        return Err(crate::exit::CliError::usage(
            "m2m assertion signs a client assertion with --key; a federated JWT (--assertion-*) is sent as its source gives it: read the file or run the command to see it",
        ));
    }
    let audience = s.audience()?;
    let client_id = s.require_client_id()?.to_owned();
    let profile = s
        .endpoint
        .as_ref()
        .map_or(Profile::Generic, settings::Target::implied_profile);
    let signer = s.signer(profile)?;
    // Still print it (it is a debugging tool), but say why the server would refuse it.
    for finding in profile.check_signer(&signer) {
        eprintln!("warning: {finding}");
    }
    let mut builder = AssertionBuilder::new(Arc::new(signer), client_id, audience);
    if let Some(lifetime) = s.lifetime {
        builder = builder.lifetime(lifetime)?;
    }
    let assertion = builder.build(SystemClock.now())?;
    print_result(assertion.as_str())
}
