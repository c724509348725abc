//! The per-statement trace against a real Postgres: the lock mode the
//! manual documents for each DDL form ("Explicit Locking" and the ALTER
//! TABLE / CREATE INDEX / CREATE TRIGGER / TRUNCATE pages), and whether the
//! table was rewritten.

use rehearse::locks::{
    Confirmation, LockMode, LockReport, RuleId, TraceOptions, TraceOutcome, adhoc_migration,
    trace_migrations,
};

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
    let Some(db) = rehearse::testing::fresh_database().await else {
        return;
    };
    let client = db.connect().await;
    client.batch_execute(SETUP).await.unwrap();
    let options = TraceOptions::default();
    let mut wrong = Vec::new();
    for case in CASES {
        let mut sqls: Vec<&str> = case.before.to_vec();
        sqls.push(case.sql);
        let trace = trace_migrations(&client, &[adhoc_migration("1", &sqls)], &options)
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
    // Every trace was rolled back: the clone is as it was.
    let columns: i64 = client
        .query_one(
            "SELECT count(*) FROM information_schema.columns WHERE table_name = 't'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(columns, 5);
}

#[tokio::test]
async fn concurrently_is_left_to_the_sampler_and_failures_do_not_stop_the_trace() {
    let Some(db) = rehearse::testing::fresh_database().await else {
        return;
    };
    let client = db.connect().await;
    client.batch_execute(SETUP).await.unwrap();
    let migration = adhoc_migration(
        "2",
        &[
            "CREATE INDEX CONCURRENTLY t_v_idx ON t (v)",
            "ALTER TABLE missing ADD COLUMN x int",
            "ALTER TABLE t ADD COLUMN x int",
        ],
    );
    let trace = trace_migrations(&client, &[migration], &TraceOptions::default())
        .await
        .unwrap();
    let s = &trace.statements;
    assert!(
        matches!(s[0].outcome, TraceOutcome::NotTraced { .. }),
        "{s:?}"
    );
    match &s[1].outcome {
        TraceOutcome::Failed { sqlstate, .. } => {
            assert_eq!(
                sqlstate.as_ref().map(|c| c.code().to_string()).as_deref(),
                Some("42P01")
            );
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    assert_eq!(
        s[2].strongest_on("public.t"),
        Some(LockMode::AccessExclusive)
    );
}

#[tokio::test]
async fn lint_findings_are_confirmed_or_contradicted_by_the_trace() {
    let Some(db) = rehearse::testing::fresh_database().await else {
        return;
    };
    let client = db.connect().await;
    client.batch_execute(SETUP).await.unwrap();
    let pending = [adhoc_migration(
        "3",
        &[
            "ALTER TABLE t ALTER COLUMN i TYPE bigint",
            "ALTER TABLE t ALTER COLUMN v TYPE varchar(200)",
            "CREATE INDEX t_note_idx ON t (note)",
        ],
    )];
    let trace = trace_migrations(&client, &pending, &TraceOptions::default())
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
    assert_eq!(
        mark(RuleId::MissingLockTimeout, 0),
        Some(Confirmation::Confirmed),
        "{:#?}",
        report.trace
    );
}
