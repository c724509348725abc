//! `rehearse seed`: fill any database from a seeds file.

use super::fail;
use crate::exit::Exit;
use crate::seed::{SeedArgs, SeedReport, run_cli};

pub(crate) async fn seed(args: SeedArgs, quiet: bool) -> Exit {
    let args = SeedArgs {
        quiet: args.quiet || quiet,
        ..args
    };
    match run_cli(&args).await {
        Ok(report) => {
            print_report(&report);
            Exit::Pass
        }
        Err(e) => fail(
            &e,
            if e.is_bad_input() {
                Exit::BadInput
            } else {
                Exit::Infrastructure
            },
        ),
    }
}

/// One line per table, then the total.
pub(crate) fn print_report(report: &SeedReport) {
    for table in &report.tables {
        println!(
            "{:<40} {:>10} rows {:>8} ms {:>12.0} rows/s",
            table.name, table.rows, table.duration_ms, table.rows_per_sec
        );
    }
    println!(
        "seeded {} rows in {} ms (seed {}, scale {}{})",
        report.total_rows,
        report.duration_ms,
        report.seed,
        report.scale,
        if report.hostile { ", hostile" } else { "" }
    );
}
