//! The example scenarios' migration directories load in their layouts.

use std::path::Path;

use pg_rehearse::migrate::{Layout, MigrationSet};

#[test]
fn scenario_migration_directories_are_detected_as_sqlx() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut seen = 0;
    for entry in std::fs::read_dir(&root).unwrap() {
        let dir = entry.unwrap().path().join("migrations");
        if !dir.is_dir() {
            continue;
        }
        let set = MigrationSet::load(&dir, Layout::Auto).unwrap();
        assert_eq!(set.layout, Layout::Sqlx, "{}", dir.display());
        assert!(!set.migrations.is_empty(), "{}", dir.display());
        seen += 1;
    }
    assert!(seen >= 4);
}

#[test]
fn cic_scenario_runs_outside_a_transaction() {
    let dir =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/cic-waiting-replicas/migrations");
    let set = MigrationSet::load(&dir, Layout::Sqlx).unwrap();
    let idx = &set.migrations[1];
    assert!(!idx.transactional);
    assert_eq!(idx.statements.len(), 2);
    assert!(
        idx.statements[1]
            .sql
            .starts_with("CREATE INDEX CONCURRENTLY")
    );
    assert_eq!(idx.statements[1].line, 8);
}
