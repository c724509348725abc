//! The per-statement trace against a real Postgres: the lock mode the
//! manual documents for each DDL form ("Explicit Locking" and the ALTER
//! TABLE / CREATE INDEX / CREATE TRIGGER / TRUNCATE pages), and whether the
//! table was rewritten; multi-migration chains traced one transaction per
//! migration; CONCURRENTLY watched from a second connection; the unindexed
//! foreign keys the lint reports checked against the catalog.

mod cli_support;

use std::time::Duration;

use pg_rehearse::locks::{
    Confirmation, LockMode, LockReport, RuleId, TraceOptions, TraceOutcome, adhoc_migration,
    trace_database,
};
use pg_rehearse::migrate::Migration;

/// A no-transaction migration (sqlx `-- no-transaction`).
fn no_transaction(version: &str, statements: &[&str]) -> Migration {
    Migration {
        transactional: false,
        ..adhoc_migration(version, statements)
    }
}

/// Empties the public schema and loads SETUP: each case starts alike.
const RESET: &str = "DROP SCHEMA public CASCADE; CREATE SCHEMA public;";

const SETUP: &str = "
CREATE TABLE users (id int PRIMARY KEY);
INSERT INTO users SELECT g FROM generate_series(1, 100) g;
CREATE TABLE t (id int PRIMARY KEY, i int, v varchar(50), user_id int, note text);
INSERT INTO t SELECT g, g, 'v' || g, 1 + g % 100, 'n' FROM generate_series(1, 2000) g;
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
";

struct Case {
    what: &'static str,
    /// Statements run first in the same transaction (not asserted).
    before: &'static [&'static str],
    sql: &'static str,
    /// (relation, strongest mode this statement took on it)
    locks: &'static [(&'static str, LockMode)],
    rewrite: bool,
}

const CASES: &[Case] = &[
    Case {
        what: "ADD COLUMN nullable",
        before: &[],
        sql: "ALTER TABLE t ADD COLUMN n int",
        locks: &[("public.t", LockMode::AccessExclusive)],
        rewrite: false,
    },
    Case {
        what: "ADD COLUMN with a volatile default",
        before: &[],
        sql: "ALTER TABLE t ADD COLUMN r float8 DEFAULT random()",
        locks: &[("public.t", LockMode::AccessExclusive)],
        rewrite: true,
    },
    Case {
        what: "ADD COLUMN with a constant default (metadata only since PG 11)",
        before: &[],
        sql: "ALTER TABLE t ADD COLUMN k int NOT NULL DEFAULT 7",
        locks: &[("public.t", LockMode::AccessExclusive)],
        rewrite: false,
    },
    Case {
        what: "ALTER TYPE int -> bigint",
        before: &[],
        sql: "ALTER TABLE t ALTER COLUMN i TYPE bigint",
        locks: &[("public.t", LockMode::AccessExclusive)],
        rewrite: true,
    },
    Case {
        what: "ALTER TYPE varchar widened (binary-coercible)",
        before: &[],
        sql: "ALTER TABLE t ALTER COLUMN v TYPE varchar(200)",
        locks: &[("public.t", LockMode::AccessExclusive)],
        rewrite: false,
    },
    Case {
        what: "SET NOT NULL",
        before: &[],
        sql: "ALTER TABLE t ALTER COLUMN user_id SET NOT NULL",
        locks: &[("public.t", LockMode::AccessExclusive)],
        rewrite: false,
    },
    Case {
        what: "ADD FOREIGN KEY (both tables)",
        before: &[],
        sql: "ALTER TABLE t ADD CONSTRAINT t_user_fk FOREIGN KEY (user_id) REFERENCES users (id)",
        locks: &[
            ("public.t", LockMode::ShareRowExclusive),
            ("public.users", LockMode::ShareRowExclusive),
        ],
        rewrite: false,
    },
    Case {
        what: "ADD FOREIGN KEY NOT VALID",
        before: &[],
        sql: "ALTER TABLE t ADD CONSTRAINT t_user_fk FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID",
        locks: &[
            ("public.t", LockMode::ShareRowExclusive),
            ("public.users", LockMode::ShareRowExclusive),
        ],
        rewrite: false,
    },
    Case {
        what: "VALIDATE CONSTRAINT",
        before: &[
            "ALTER TABLE t ADD CONSTRAINT t_user_fk FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID",
        ],
        sql: "ALTER TABLE t VALIDATE CONSTRAINT t_user_fk",
        locks: &[("public.t", LockMode::ShareUpdateExclusive)],
        rewrite: false,
    },
    Case {
        what: "CREATE INDEX",
        before: &[],
        sql: "CREATE INDEX t_i_idx ON t (i)",
        locks: &[("public.t", LockMode::Share)],
        rewrite: false,
    },
    Case {
        what: "DROP COLUMN",
        before: &[],
        sql: "ALTER TABLE t DROP COLUMN note",
        locks: &[("public.t", LockMode::AccessExclusive)],
        rewrite: false,
    },
    Case {
        what: "RENAME COLUMN",
        before: &[],
        sql: "ALTER TABLE t RENAME COLUMN note TO comment",
        locks: &[("public.t", LockMode::AccessExclusive)],
        rewrite: false,
    },
    Case {
        what: "CREATE TRIGGER",
        before: &[],
        sql: "CREATE TRIGGER t_touch BEFORE UPDATE ON t FOR EACH ROW EXECUTE FUNCTION touch()",
        locks: &[("public.t", LockMode::ShareRowExclusive)],
        rewrite: false,
    },
    Case {
        what: "TRUNCATE (new storage)",
        before: &[],
        sql: "TRUNCATE t",
        locks: &[("public.t", LockMode::AccessExclusive)],
        rewrite: true,
    },
];

#[tokio::test]
async fn each_ddl_form_takes_the_documented_lock_and_rewrites_only_when_documented() {
    let Some(db) = pg_rehearse::testing::fresh_database().await else {
        return;
    };
    let client = db.connect().await;
    let options = TraceOptions::default();
    let mut wrong = Vec::new();
    for case in CASES {
        // Each migration is committed: start every case from SETUP.
        client.batch_execute(RESET).await.unwrap();
        client.batch_execute(SETUP).await.unwrap();
        let mut sqls: Vec<&str> = case.before.to_vec();
        sqls.push(case.sql);
        let trace = trace_database(db.conn(), &[adhoc_migration("1", &sqls)], &options)
            .await
            .unwrap();
        let traced = trace.statements.last().unwrap();
        assert_eq!(
            traced.outcome,
            TraceOutcome::Ran,
            "{}: {traced:?}",
            case.what
        );
        for (relation, mode) in case.locks {
            let seen = traced.strongest_on(relation);
            if seen != Some(*mode) {
                wrong.push(format!(
                    "{}: {relation} expected {mode}, saw {seen:?}",
                    case.what
                ));
            }
        }
        let rewritten = traced.rewritten.contains(&"public.t".to_string());
        if rewritten != case.rewrite {
            wrong.push(format!(
                "{}: rewrite expected {}, saw {rewritten}",
                case.what, case.rewrite
            ));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[tokio::test]
async fn failures_do_not_stop_the_trace_and_the_sqlstate_is_kept_apart() {
    let Some(db) = pg_rehearse::testing::fresh_database().await else {
        return;
    };
    db.connect().await.batch_execute(SETUP).await.unwrap();
    let migration = adhoc_migration(
        "2",
        &[
            "ALTER TABLE missing ADD COLUMN x int",
            "ALTER TABLE t ADD COLUMN x int",
        ],
    );
    let trace = trace_database(db.conn(), &[migration], &TraceOptions::default())
        .await
        .unwrap();
    let s = &trace.statements;
    match &s[0].outcome {
        TraceOutcome::Failed { sqlstate, message } => {
            assert_eq!(
                sqlstate.as_ref().map(|c| c.code().to_string()).as_deref(),
                Some("42P01")
            );
            assert!(!message.contains("42P01"), "{message}");
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    assert_eq!(trace.failures(), 1);
    assert_eq!(
        s[1].strongest_on("public.t"),
        Some(LockMode::AccessExclusive)
    );
}

/// Production applies each migration in its own transaction: a table
/// altered in migrations 2 and 3 is locked by both, a second ALTER of it
/// in one migration still needs ACCESS EXCLUSIVE (already held), an enum
/// value added in one migration is usable in the next (55P04 in one
/// transaction), and relations a migration creates block nobody.
#[tokio::test]
async fn a_chain_is_traced_one_transaction_per_migration() {
    let Some(db) = pg_rehearse::testing::fresh_database().await else {
        return;
    };
    db.connect().await.batch_execute(SETUP).await.unwrap();
    let pending = [
        adhoc_migration(
            "1",
            &[
                "CREATE TYPE mood AS ENUM ('calm')",
                "CREATE TABLE fresh (id serial PRIMARY KEY, body text)",
                "CREATE INDEX fresh_body_idx ON fresh (body)",
                "INSERT INTO fresh (body) SELECT 'b' FROM generate_series(1, 3)",
            ],
        ),
        adhoc_migration(
            "2",
            &[
                "ALTER TABLE t ADD COLUMN x int",
                "ALTER TABLE t ALTER COLUMN user_id SET NOT NULL",
                "ALTER TYPE mood ADD VALUE 'angry'",
                "UPDATE t SET x = 1 WHERE id <= 10",
            ],
        ),
        adhoc_migration(
            "3",
            &[
                "ALTER TABLE t DROP COLUMN x",
                "ALTER TABLE fresh ADD COLUMN m mood NOT NULL DEFAULT 'angry'",
            ],
        ),
    ];
    let trace = trace_database(db.conn(), &pending, &TraceOptions::default())
        .await
        .unwrap();
    let s = &trace.statements;
    assert_eq!(trace.failures(), 0, "{s:#?}");
    // Migration 1: everything it touches is its own.
    for traced in &s[1..4] {
        assert!(
            traced
                .acquired
                .iter()
                .all(|l| l.relation.as_deref() != Some("public.fresh")),
            "{traced:#?}"
        );
    }
    assert!(
        s[1].created.contains(&"public.fresh".to_string()),
        "{:?}",
        s[1]
    );
    assert_eq!(s[3].rows, Some(3));
    // Migration 2: both ALTERs need ACCESS EXCLUSIVE; the second held it.
    assert_eq!(
        s[4].strongest_on("public.t"),
        Some(LockMode::AccessExclusive)
    );
    assert!(s[4].already_held.is_empty());
    assert_eq!(
        s[5].strongest_on("public.t"),
        Some(LockMode::AccessExclusive)
    );
    assert_eq!(s[5].already_held, vec!["public.t".to_string()]);
    assert_eq!(s[7].rows, Some(10));
    // Migration 3 locks t afresh, and fresh is now an existing table.
    assert_eq!(
        s[8].strongest_on("public.t"),
        Some(LockMode::AccessExclusive)
    );
    assert!(s[8].already_held.is_empty());
    assert_eq!(
        s[9].strongest_on("public.fresh"),
        Some(LockMode::AccessExclusive)
    );
    // Toast tables and indexes are folded into their table; no OID shows.
    let json = serde_json::to_string(&trace).unwrap();
    assert!(!json.contains("pg_toast"), "{json}");
    for traced in s {
        for l in &traced.acquired {
            let name = l.relation.as_deref().or(l.object.as_deref()).unwrap_or("");
            assert!(
                !name.ends_with("_pkey") && !name.chars().any(|c| c.is_ascii_digit()),
                "index locks are folded and nothing is an OID: {traced:#?}"
            );
        }
    }
    // A lint finding on an already-held table is confirmed, not contradicted.
    let report = LockReport::new(&pending, Some(trace), None);
    let not_null = report
        .lint
        .iter()
        .find(|f| f.rule == RuleId::SetNotNull)
        .unwrap();
    assert_eq!(not_null.confirmation, Confirmation::Confirmed);
    // Only the index on the migration's own new table is contradicted: it
    // locks nothing anybody else can see.
    let contradicted: Vec<_> = report
        .lint
        .iter()
        .filter(|f| f.confirmation == Confirmation::Contradicted)
        .map(|f| (f.rule, f.version.as_str(), f.index))
        .collect();
    assert_eq!(
        contradicted,
        vec![(RuleId::CreateIndexNotConcurrently, "1", 2)],
        "{:#?}",
        report.lint
    );
}

/// CREATE INDEX CONCURRENTLY runs outside a transaction and is watched
/// from a second connection: SHARE UPDATE EXCLUSIVE on the table (manual,
/// CREATE INDEX "Building Indexes Concurrently"); the index then exists
/// for ADD CONSTRAINT ... USING INDEX.
#[tokio::test]
async fn concurrently_is_watched_from_a_second_connection() {
    let Some(db) = pg_rehearse::testing::fresh_database().await else {
        return;
    };
    db.connect()
        .await
        .batch_execute(
            "CREATE TABLE big (id int NOT NULL, v int);
             INSERT INTO big SELECT g, g FROM generate_series(1, 200000) g;",
        )
        .await
        .unwrap();
    let pending = [
        no_transaction(
            "1",
            &["CREATE UNIQUE INDEX CONCURRENTLY big_id_idx ON big (id)"],
        ),
        adhoc_migration(
            "2",
            &["ALTER TABLE big ADD CONSTRAINT big_pk PRIMARY KEY USING INDEX big_id_idx"],
        ),
        adhoc_migration("3", &["DROP INDEX CONCURRENTLY IF EXISTS nothing_idx"]),
    ];
    let trace = trace_database(db.conn(), &pending, &TraceOptions::default())
        .await
        .unwrap();
    let s = &trace.statements;
    assert_eq!(trace.failures(), 0, "{s:#?}");
    assert!(!s[0].in_transaction);
    assert_eq!(
        s[0].strongest_on("public.big"),
        Some(LockMode::ShareUpdateExclusive),
        "{:#?}",
        s[0]
    );
    assert_eq!(
        s[1].strongest_on("public.big"),
        Some(LockMode::AccessExclusive)
    );
    // A CONCURRENTLY statement in a transactional migration is run the
    // only way it can run: outside a transaction.
    assert!(!s[2].in_transaction);
}

/// A statement past the bound fails with 57014 after about the bound, not
/// after the default 600 s.
#[tokio::test]
async fn the_timeout_bounds_a_statement() {
    let Some(db) = pg_rehearse::testing::fresh_database().await else {
        return;
    };
    let started = std::time::Instant::now();
    let trace = trace_database(
        db.conn(),
        &[adhoc_migration(
            "1",
            &["SELECT pg_sleep(100000)", "SELECT 1"],
        )],
        &TraceOptions::bounded(Duration::from_secs(1)),
    )
    .await
    .unwrap();
    assert!(started.elapsed() < Duration::from_secs(60));
    match &trace.statements[0].outcome {
        TraceOutcome::Failed { sqlstate, .. } => assert_eq!(
            sqlstate.as_ref().map(|c| c.code().to_string()).as_deref(),
            Some("57014")
        ),
        other => panic!("expected 57014, got {other:?}"),
    }
    assert!(trace.timed_out || trace.failures() >= 1);
}

/// `rehearse trace` as users run it: JSON output, exit 1 on a failed
/// statement, the file named by itself, a password never printed.
#[test]
fn the_cli_prints_json_and_exits_1_when_a_statement_fails() {
    if !cli_support::local_binaries_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("add_column.sql");
    std::fs::write(
        &file,
        "CREATE TABLE a (id int);\nCREATE ROLE trace_canary LOGIN PASSWORD 'hunter2-canary';\nALTER TABLE missing ADD COLUMN b int;\n",
    )
    .unwrap();
    let path = file.to_str().unwrap();
    let (code, stdout, stderr) = cli_support::rehearse(&[
        "trace",
        path,
        "--backend",
        "local",
        "--format",
        "json",
        "--timeout",
        "60",
    ]);
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).expect(&stdout);
    assert_eq!(json["failures"], 1);
    assert_eq!(json["migrations"][0]["path"], path);
    let failed = &json["migrations"][0]["statements"][2];
    assert_eq!(failed["sqlstate"], "42P01", "{failed}");
    assert!(!stdout.contains("hunter2-canary") && !stderr.contains("hunter2-canary"));
    let (code, text, _) =
        cli_support::rehearse(&["trace", path, "--backend", "local", "--timeout", "60"]);
    assert_eq!(code, 1);
    assert!(text.starts_with(path), "{text}");
    assert_eq!(text.matches("42P01").count(), 1, "{text}");
}

#[tokio::test]
async fn lint_findings_are_confirmed_or_contradicted_by_the_trace() {
    let Some(db) = pg_rehearse::testing::fresh_database().await else {
        return;
    };
    db.connect().await.batch_execute(SETUP).await.unwrap();
    let pending = [adhoc_migration(
        "3",
        &[
            "ALTER TABLE t ALTER COLUMN i TYPE bigint",
            "ALTER TABLE t ALTER COLUMN v TYPE varchar(200)",
            "CREATE INDEX t_note_idx ON t (note)",
            "UPDATE t SET i = i + 1 WHERE id > 100",
            "UPDATE t SET i = i + 1 WHERE id <= 10",
        ],
    )];
    let trace = trace_database(db.conn(), &pending, &TraceOptions::default())
        .await
        .unwrap();
    let report = LockReport::new(&pending, Some(trace), None);
    let mark = |rule: RuleId, index: usize| {
        report
            .lint
            .iter()
            .find(|f| f.rule == rule && f.index == index)
            .map(|f| f.confirmation)
    };
    assert_eq!(
        mark(RuleId::AlterColumnType, 0),
        Some(Confirmation::Confirmed)
    );
    // varchar widening is binary-coercible: no rewrite, the lint was wrong.
    assert_eq!(
        mark(RuleId::AlterColumnType, 1),
        Some(Confirmation::Contradicted)
    );
    assert_eq!(
        mark(RuleId::CreateIndexNotConcurrently, 2),
        Some(Confirmation::Confirmed),
        "{:#?}",
        report.trace.as_ref().map(|t| &t.statements[2])
    );
    // 1,900 of 2,000 rows despite the WHERE: a backfill in one transaction.
    assert_eq!(
        mark(RuleId::BackfillMostRows, 3),
        Some(Confirmation::Confirmed)
    );
    assert_eq!(
        report.trace.as_ref().unwrap().statements[3].table_rows,
        Some(2000)
    );
    // 10 rows: not reported at all.
    assert_eq!(mark(RuleId::BackfillMostRows, 4), None);
    assert_eq!(
        mark(RuleId::MissingLockTimeout, 0),
        Some(Confirmation::Confirmed),
        "{:#?}",
        report.trace
    );
}

/// A real history: crates.io's 285 diesel migrations (vendored with their
/// license, see tests/fixtures/crates-io/SOURCE.md) trace with no failure
/// (the project applies them all in order), each migration locking afresh,
/// CONCURRENTLY builds seen, and a report linear in statements.
#[tokio::test]
async fn the_crates_io_history_traces_cleanly() {
    let Some(db) = pg_rehearse::testing::fresh_database().await else {
        return;
    };
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/crates-io/migrations");
    let set = pg_rehearse::migrate::MigrationSet::load(&dir, pg_rehearse::migrate::Layout::Diesel)
        .unwrap();
    assert_eq!(set.migrations.len(), 285);
    let trace = trace_database(db.conn(), &set.migrations, &TraceOptions::default())
        .await
        .unwrap();
    let failed: Vec<_> = trace.statements.iter().filter(|s| s.failed()).collect();
    assert!(failed.is_empty(), "{failed:#?}");
    assert!(!trace.timed_out);
    let concurrent: Vec<_> = trace
        .statements
        .iter()
        .filter(|s| s.sql.to_lowercase().contains("index concurrently"))
        .collect();
    assert!(concurrent.len() >= 5);
    for s in &concurrent {
        assert!(!s.in_transaction);
        assert_eq!(
            s.strongest_table_lock().map(|(_, m)| m),
            Some(LockMode::ShareUpdateExclusive),
            "{s:#?}"
        );
    }
    // Tables altered again by a later migration are locked again there.
    let alters = trace
        .statements
        .iter()
        .filter(|s| s.sql.trim_start().to_uppercase().starts_with("ALTER TABLE"))
        .filter(|s| s.strongest_table_lock().is_none())
        .count();
    assert_eq!(
        alters, 0,
        "every ALTER TABLE of an existing table shows its lock"
    );
    let json = serde_json::to_vec(&trace).unwrap();
    assert!(
        json.len() < 2_000 * trace.statements.len(),
        "{} bytes for {} statements",
        json.len(),
        trace.statements.len()
    );
}

/// `foreign-key-without-index` against the catalog of a real Postgres: the
/// example schemas applied, then every foreign key no valid (non-partial)
/// index leads, read from pg_constraint / pg_index, is exactly what the
/// text-only lint reports.
#[tokio::test]
async fn unindexed_foreign_keys_match_the_catalog() {
    const UNINDEXED: &str = "
        SELECT c.conrelid::regclass::text,
               (SELECT string_agg(a.attname, ', ' ORDER BY k.n)
                  FROM unnest(c.conkey) WITH ORDINALITY k(attnum, n)
                  JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum)
          FROM pg_constraint c
         WHERE c.contype = 'f'
           AND NOT EXISTS (
                SELECT 1 FROM pg_index i
                 WHERE i.indrelid = c.conrelid AND i.indpred IS NULL
                   AND (i.indkey::int2[])[0:cardinality(c.conkey) - 1] = c.conkey)";
    for scenario in ["ecommerce", "saas"] {
        let Some(db) = pg_rehearse::testing::fresh_database().await else {
            return;
        };
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("scenarios")
            .join(scenario)
            .join("migrations");
        let mut set =
            pg_rehearse::migrate::MigrationSet::load(&dir, pg_rehearse::migrate::Layout::Sqlx)
                .unwrap();
        set.migrations.truncate(1);
        let trace = trace_database(db.conn(), &set.migrations, &TraceOptions::default())
            .await
            .unwrap();
        assert!(trace.statements.iter().all(|s| !s.failed()), "{scenario}");
        let mut catalog: Vec<String> = db
            .connect()
            .await
            .query(UNINDEXED, &[])
            .await
            .unwrap()
            .iter()
            .map(|r| format!("{} ({})", r.get::<_, String>(0), r.get::<_, String>(1)))
            .collect();
        catalog.sort();
        assert!(
            !catalog.is_empty(),
            "{scenario}: the schema has unindexed keys"
        );
        let mut lint: Vec<String> = LockReport::new(&set.migrations, None, None)
            .lint
            .iter()
            .filter(|f| f.rule == RuleId::ForeignKeyWithoutIndex)
            .flat_map(|f| {
                let on = f.message.split_once("foreign key on ").unwrap().1;
                let on = on.split_once(':').unwrap().0;
                on.split("), ")
                    .map(|s| format!("{})", s.trim_end_matches(')')))
                    .collect::<Vec<_>>()
            })
            .collect();
        lint.sort();
        assert_eq!(lint, catalog, "{scenario}");
    }
}
