//! `rehearse run` with stderr piped, as in a CI log: no progress bars, but
//! one plain line per stage and per seeded table, with its rate.

mod cli_support;

use cli_support::{local_binaries_or_skip, rehearse};

#[test]
fn piped_stderr_gets_stage_and_seed_lines() {
    if !local_binaries_or_skip() {
        return;
    }
    // The ecommerce example at a hundredth of its volume, with a seed of
    // its own so no cached template from an earlier run skips the seeding.
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
        % 1_000_000_007;
    let dir = tempfile::tempdir().unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let migrations = dir.path().join("migrations");
    std::fs::create_dir(&migrations).unwrap();
    for entry in std::fs::read_dir(root.join("scenarios/ecommerce/migrations")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), migrations.join(entry.file_name())).unwrap();
    }
    std::fs::write(
        dir.path().join("scenario.toml"),
        format!(
            "name = \"piped progress\"\n\
             [migrations]\ndir = \"migrations\"\nlayout = \"sqlx\"\nbaseline = \"0001\"\n\
             [seed]\nspec = \"{}\"\nseed = {seed}\nscale = 0.01\n\
             [replicas]\ncount = 1\nrunner = \"naive\"\n\
             [expect]\nallow = [\"missing-lock-timeout\", \"lock-lint\"]\n",
            root.join("seeds/ecommerce.toml").display()
        ),
    )
    .unwrap();
    let scenario = dir.path().join("scenario.toml");
    let (code, stdout, stderr) =
        rehearse(&["run", scenario.to_str().unwrap(), "--backend", "local"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    // No bar drawing: no carriage returns or cursor movement.
    assert!(!stderr.contains('\r'), "{stderr:?}");
    assert!(!stderr.contains('\u{1b}'), "{stderr:?}");
    let lines: Vec<&str> = stderr.lines().collect();
    let has = |prefix: &str, suffix: &str| {
        lines
            .iter()
            .any(|l| l.starts_with(prefix) && l.ends_with(suffix))
    };
    assert!(
        has("rehearse: piped progress: baseline and seed", "..."),
        "{stderr}"
    );
    assert!(
        has("rehearse: piped progress: baseline done in ", ")"),
        "{stderr}"
    );
    assert!(
        has("rehearse: piped progress: findings done in ", ""),
        "{stderr}"
    );
    // One line per seeded table: 20,000 customers at scale 1, 200 here.
    let customers = lines
        .iter()
        .find(|l| {
            l.starts_with("rehearse: seed: public.customers ")
                || l.starts_with("rehearse: seed: customers ")
        })
        .unwrap_or_else(|| panic!("no seed line for customers: {stderr}"));
    assert!(customers.contains(" 200 rows in "), "{customers}");
    assert!(customers.ends_with(" rows/s)"), "{customers}");
}
