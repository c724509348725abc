//! `rehearse doctor`: which backends work here, with versions, and why not.

use clap::Args;

use super::BackendArgs;
use crate::exit::Exit;
use crate::provision::{Backend, doctor::BackendStatus, doctor::check_all};

#[derive(Debug, Args)]
pub(crate) struct DoctorArgs {
    #[command(flatten)]
    backend: BackendArgs,
}

pub(crate) async fn doctor(args: DoctorArgs) -> Exit {
    let options = args.backend.options(Some(Backend::Auto));
    let statuses = check_all(&options).await;
    for BackendStatus {
        backend,
        ok,
        detail,
    } in &statuses
    {
        println!(
            "{:<7} {:<4} {detail}",
            backend.name(),
            if *ok { "ok" } else { "no" }
        );
    }
    if statuses.iter().any(|s| s.ok) {
        Exit::Pass
    } else {
        eprintln!(
            "rehearse: error: no backend works here; see the lines above for what each needs"
        );
        Exit::Infrastructure
    }
}
