//! `rehearse forecast` as users run it: production rows from the scenario's
//! `[forecast]` section, a statement's lock hold forecast at that size, the
//! JSON report, and a budget the forecast exceeds failing the run.

use std::path::Path;

use pg_rehearse::forecast::{ForecastReport, StatementKind};

mod cli_support;

use cli_support::{local_binaries_or_skip, rehearse};

fn write_scenario(dir: &Path, forecast: &str) {
    std::fs::create_dir_all(dir.join("migrations")).unwrap();
    std::fs::write(
        dir.join("scenario.toml"),
        format!(
            "name = \"forecast: an index build\"\n\
             [migrations]\ndir = \"migrations\"\nlayout = \"sqlx\"\nbaseline = \"0001\"\n\
             [seed]\nspec = \"seeds.toml\"\nseed = 7\n\
             {forecast}"
        ),
    )
    .unwrap();
    std::fs::write(dir.join("seeds.toml"), "[tables.orders]\nrows = 5000\n").unwrap();
    std::fs::write(
        dir.join("migrations/0001_orders.sql"),
        "CREATE TABLE orders (id bigint PRIMARY KEY, total int8 NOT NULL);\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("migrations/0002_orders_total.sql"),
        "CREATE INDEX orders_total ON orders (total);\n",
    )
    .unwrap();
}

#[test]
fn forecast_reads_production_rows_from_the_scenario_and_judges_the_budget() {
    if !local_binaries_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    write_scenario(
        dir.path(),
        "[forecast]\nrows = { orders = 48_000_000 }\nfractions = [1, 2, 4]\n",
    );
    let json = dir.path().join("forecast.json");
    let scenario = dir.path().display().to_string();
    let json_arg = json.display().to_string();
    let markdown = dir.path().join("forecast.md");
    let markdown_arg = markdown.display().to_string();
    let (code, stdout, stderr) = rehearse(&[
        "forecast",
        &scenario,
        "--backend",
        "local",
        "--budget-ms",
        "1",
        "--report-file",
        &json_arg,
        "--markdown",
        &markdown_arg,
    ]);
    assert_eq!(code, 1, "over the 1 ms budget: {stdout}{stderr}");
    assert!(
        stdout.contains("CREATE INDEX on orders: SHARE held about"),
        "{stdout}"
    );
    assert!(stdout.contains("at 48.0M rows, blocks writes"), "{stdout}");
    assert!(stdout.contains("OVER BUDGET (forecast, 1 ms)"), "{stdout}");
    let md = std::fs::read_to_string(&markdown).unwrap();
    assert!(
        md.contains("| 0002 | `CREATE INDEX orders_total ON orders (total)` | SHARE | 48.0M |"),
        "{md}"
    );
    let report: ForecastReport =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let index = &report.statements[0];
    assert_eq!(index.kind, StatementKind::IndexBuild);
    let rows: Vec<f64> = index.samples.iter().map(|s| s.rows).collect();
    assert_eq!(rows, vec![5000.0, 10000.0, 20000.0], "seeded sizes");
    let hold = index.hold.unwrap();
    // Far beyond the measured sizes: longer than any of them.
    let measured = index
        .samples
        .iter()
        .map(|s| s.duration_us)
        .fold(0.0, f64::max);
    assert!(hold.point_us > measured, "{hold:?} vs {measured}");
    assert!(hold.low_us <= hold.point_us && hold.point_us <= hold.high_us);
}

#[test]
fn a_bad_forecast_key_is_an_error_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    write_scenario(dir.path(), "[forecast]\nrows = { orders = -5 }\n");
    let scenario = dir.path().display().to_string();
    let (code, _, stderr) = rehearse(&["forecast", &scenario, "--backend", "local"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("scenario.toml:10:"), "{stderr}");
    assert!(stderr.contains("forecast.rows.orders"), "{stderr}");
}

#[test]
fn a_seed_stats_file_that_is_not_a_snapshot_is_an_error_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    write_scenario(dir.path(), "");
    let path = dir.path().join("scenario.toml");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("seed = 7\n", "seed = 7\nstats = \"seeds.toml\"\n");
    std::fs::write(&path, text).unwrap();
    let scenario = dir.path().display().to_string();
    let (code, _, stderr) = rehearse(&["forecast", &scenario, "--backend", "local"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("scenario.toml:9:"), "{stderr}");
    assert!(stderr.contains("`seed.stats`"), "{stderr}");
    assert!(stderr.contains("not a statistics snapshot"), "{stderr}");
}
