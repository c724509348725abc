//! Reading a migration tool's output: which SQLSTATE it failed with and
//! which line says why.
//!
//! Tools print the server's error in their driver's format:
//!
//! | tool / driver | what it prints |
//! |---|---|
//! | pgx (golang-migrate, Atlas) | `ERROR: relation "x" already exists (SQLSTATE 42P07)` |
//! | lib/pq 1.10.10+ (dbmate) | `Error: pq: relation "x" already exists (42P07)` |
//! | psycopg 2 / 3 (alembic, yoyo, Django) | `psycopg2.errors.DuplicateTable: ...`, SQLAlchemy `(psycopg2.errors.DuplicateTable) ...` |
//! | JDBC (Flyway) | `SQL State  : 42P07` then `Message    : ERROR: ...` |
//! | psql | `psql:file.sql:1: ERROR:  relation "x" already exists`, with `VERBOSITY=verbose` `ERROR:  42P07: ...` |
//! | sqlx-cli, older lib/pq | the message only: `error returned from database: relation "x" already exists` |
//!
//! Explicit codes win; a psycopg class name maps through PostgreSQL's
//! condition names (manual, appendix A); a bare message is matched against
//! the server's own message texts (PostgreSQL 15 source, English messages,
//! which the harness's servers use).

use crate::timeline::SqlState;

fn is_code(c: &str) -> bool {
    c.len() == 5
        && c.chars()
            .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
        && c.chars().any(|c| c.is_ascii_digit())
}

/// The SQLSTATE a tool's output names, explicitly or by its message.
pub(crate) fn sqlstate_in(text: &str) -> Option<SqlState> {
    explicit_code(text)
        .or_else(|| text.lines().find_map(psycopg_class))
        .or_else(|| message_code(&error_line(text)))
        .or_else(|| text.lines().find_map(message_code))
}

/// A code written out: pgx `SQLSTATE 42P07`, JDBC `SQL State  : 42P07`,
/// lib/pq `pq: ... (42P07)`, psql verbose `ERROR:  42P07: ...`, PHP/PDO
/// `SQLSTATE[42P07]`.
fn explicit_code(text: &str) -> Option<SqlState> {
    for marker in [
        "SQLSTATE ",
        "SQLSTATE[",
        "SQLSTATE: ",
        "SQL State  : ",
        "SQL State: ",
    ] {
        for (at, _) in text.match_indices(marker) {
            let code: String = text[at + marker.len()..].chars().take(5).collect();
            if is_code(&code) {
                return Some(SqlState::from_code(&code));
            }
        }
    }
    text.lines().find_map(|l| {
        // lib/pq: the code in parentheses at the end of a `pq:` message.
        if l.contains("pq: ") {
            let inner = l.trim_end().strip_suffix(')')?;
            let code = inner.get(inner.len().checked_sub(5)?..)?;
            let open = inner.get(..inner.len() - 5)?;
            if open.ends_with('(') && is_code(code) {
                return Some(SqlState::from_code(code));
            }
        }
        // psql with VERBOSITY=verbose: "ERROR:  42P07: relation ... exists".
        let rest = l.split_once("ERROR:")?.1.trim_start();
        let (code, _) = rest.split_once(':')?;
        is_code(code).then(|| SqlState::from_code(code))
    })
}

/// psycopg's exception classes are the CamelCase condition names of the
/// manual's appendix A: `psycopg2.errors.DuplicateTable` is 42P07.
fn psycopg_class(line: &str) -> Option<SqlState> {
    let at = line
        .find("psycopg2.errors.")
        .map(|i| i + 16)
        .or_else(|| line.find("psycopg.errors.").map(|i| i + 15))?;
    let name: String = line[at..]
        .chars()
        .take_while(char::is_ascii_alphanumeric)
        .collect();
    CONDITIONS
        .iter()
        .find(|(class, _)| *class == name)
        .map(|(_, code)| SqlState::from_code(code))
}

/// Condition names (CamelCase, as psycopg spells them) of the codes a
/// migration commonly fails with; manual, appendix A.
const CONDITIONS: &[(&str, &str)] = &[
    ("DuplicateTable", "42P07"),
    ("DuplicateColumn", "42701"),
    ("DuplicateObject", "42710"),
    ("DuplicateSchema", "42P06"),
    ("DuplicateFunction", "42723"),
    ("UniqueViolation", "23505"),
    ("NotNullViolation", "23502"),
    ("ForeignKeyViolation", "23503"),
    ("CheckViolation", "23514"),
    ("DeadlockDetected", "40P01"),
    ("SerializationFailure", "40001"),
    ("LockNotAvailable", "55P03"),
    ("ObjectInUse", "55006"),
    ("ObjectNotInPrerequisiteState", "55000"),
    ("ActiveSqlTransaction", "25001"),
    ("InFailedSqlTransaction", "25P02"),
    ("QueryCanceled", "57014"),
    ("AdminShutdown", "57P01"),
    ("UndefinedTable", "42P01"),
    ("UndefinedColumn", "42703"),
    ("UndefinedObject", "42704"),
    ("UndefinedFunction", "42883"),
    ("SyntaxError", "42601"),
    ("InsufficientPrivilege", "42501"),
    ("FeatureNotSupported", "0A000"),
    ("InvalidTextRepresentation", "22P02"),
    ("DatatypeMismatch", "42804"),
    ("DependentObjectsStillExist", "2BP01"),
];

/// The code of a server message a tool printed without its code, by the
/// message text (PostgreSQL 15 `errmsg` texts). Order matters: a column's
/// "already exists" names its relation too.
fn message_code(line: &str) -> Option<SqlState> {
    let has = |s: &str| line.contains(s);
    let code = if has("already exists") {
        if has("column \"") {
            "42701"
        } else if has("constraint \"") || has("type \"") || has("trigger \"") {
            "42710"
        } else if has("schema \"") {
            "42P06"
        } else if has("relation \"") {
            "42P07"
        } else {
            return None;
        }
    } else if has("duplicate key value violates unique constraint")
        || has("could not create unique index")
    {
        "23505"
    } else if has("does not exist") && has("column \"") {
        "42703"
    } else if has("does not exist") && has("relation \"") {
        "42P01"
    } else if has("deadlock detected") {
        "40P01"
    } else if has("canceling statement due to lock timeout") || has("could not obtain lock") {
        "55P03"
    } else if has("cannot run inside a transaction block") {
        "25001"
    } else if has("contains null values") || has("violates not-null constraint") {
        "23502"
    } else if has("canceling statement due to statement timeout") {
        "57014"
    } else if has("terminating connection due to administrator command") {
        "57P01"
    } else if has("current transaction is aborted") {
        "25P02"
    } else if has("syntax error at or near") {
        "42601"
    } else {
        return None;
    };
    Some(SqlState::from_code(code))
}

/// Lines that never say why: SQLAlchemy's trailer and echoed SQL,
/// traceback frames, JDBC's "Error Code : 0", separators.
fn is_noise(line: &str) -> bool {
    line.starts_with("(Background on this error at:")
        || line.starts_with("[SQL:")
        || line.starts_with("[parameters:")
        || line.starts_with("Traceback (most recent call last)")
        || line.starts_with("File \"")
        || line.starts_with("Error Code")
        || line.starts_with("SQL State")
        || line.starts_with("Location")
        || line.starts_with("LOCATION:")
        || line
            .chars()
            .all(|c| matches!(c, '-' | '=' | '^' | '~' | ' '))
}

/// The line of a tool's output that best says why it failed: the driver's
/// error line (`pq:`, `psycopg2.errors.`, `SQLSTATE`, the server's
/// `ERROR:`), else the first line that says error, else the last line that
/// is not noise (SQLAlchemy's "Background on this error at" trailer is).
pub(crate) fn error_line(all: &str) -> String {
    let lines = || {
        all.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !is_noise(l))
    };
    let driver = |l: &&str| {
        l.contains("pq: ")
            || l.contains("psycopg2.errors.")
            || l.contains("psycopg.errors.")
            || l.contains("(SQLSTATE ")
            || l.contains("error returned from database")
            || l.contains("ERROR:")
    };
    lines()
        .find(driver)
        .or_else(|| {
            lines()
                .find(|l| l.contains("ERROR") || l.starts_with("error") || l.starts_with("Error"))
        })
        .or_else(|| lines().next_back())
        .unwrap_or("")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `dbmate up` 2.37 (lib/pq) after another replica created the table;
    /// captured from the real tool.
    const DBMATE: &str = "Applying: 001_users.sql\nApplied: 001_users.sql in 1.488596ms\nApplying: 002_dup.sql\nError: pq: relation \"users\" already exists (42P07)\n";
    /// `dbmate up` against a server without TLS and no sslmode in the URL.
    const DBMATE_TLS: &str = "Error: pq: SSL is not enabled on the server\n";
    /// `alembic upgrade head` 1.20 with SQLAlchemy 2.1 and psycopg2 (tail).
    const ALEMBIC: &str = "  File \"/venv/lib/python3.11/site-packages/sqlalchemy/engine/default.py\", line 1192, in do_execute\n    cursor.execute(statement, parameters)\nsqlalchemy.exc.ProgrammingError: (psycopg2.errors.DuplicateTable) relation \"users\" already exists\n\n[SQL: CREATE TABLE users (id bigint primary key)]\n(Background on this error at: https://sqlalche.me/e/21/f405)\n";
    /// `yoyo apply` 9.0 (tail).
    const YOYO: &str = "    cursor.execute(stmt)\npsycopg2.errors.DuplicateTable: relation \"users\" already exists\n";
    /// pgx, in the format golang-migrate prints (pgconn `PgError.Error()`).
    const PGX: &str = "error: migration failed: ERROR: relation \"users\" already exists (SQLSTATE 42P07) in line 0: CREATE TABLE users (id int)\n";
    /// Flyway (JDBC), in the layout of its `FlywayMigrateException` report.
    const FLYWAY: &str = "ERROR: Migration V2__dup.sql failed\n-----------------------------\nSQL State  : 42P07\nError Code : 0\nMessage    : ERROR: relation \"users\" already exists\nLocation   : db/V2__dup.sql\nLine       : 1\nStatement  : CREATE TABLE users (id int)\n";
    /// sqlx-cli: the message only (`sqlx::Error::Database` display).
    const SQLX: &str = "Applied 1/migrate users (1.2ms)\nerror: while executing migration 2: error returned from database: duplicate key value violates unique constraint \"pg_type_typname_nsp_index\"\n";
    /// psql -v ON_ERROR_STOP=1 -f (captured, PostgreSQL 15).
    const PSQL: &str =
        "psql:db/002.sql:1: ERROR:  column \"email\" of relation \"users\" already exists\n";

    #[test]
    fn codes_are_read_from_each_tools_output() {
        let cases = [
            (DBMATE, "42P07"),
            (ALEMBIC, "42P07"),
            (YOYO, "42P07"),
            (PGX, "42P07"),
            (FLYWAY, "42P07"),
            (SQLX, "23505"),
            (PSQL, "42701"),
            ("psql:x.sql:1: ERROR:  23505: duplicate key value", "23505"),
            ("SQLSTATE[42P01]: Undefined table", "42P01"),
        ];
        for (text, code) in cases {
            assert_eq!(
                sqlstate_in(text).as_ref().map(SqlState::code),
                Some(code),
                "{text}"
            );
        }
        assert_eq!(sqlstate_in(DBMATE_TLS), None);
        assert_eq!(sqlstate_in("no code"), None);
        assert_eq!(sqlstate_in("ERROR:  relation: x"), None);
    }

    #[test]
    fn the_error_line_is_the_tools_own() {
        assert_eq!(
            error_line(DBMATE),
            "Error: pq: relation \"users\" already exists (42P07)"
        );
        assert_eq!(
            error_line(ALEMBIC),
            "sqlalchemy.exc.ProgrammingError: (psycopg2.errors.DuplicateTable) relation \"users\" already exists"
        );
        assert_eq!(
            error_line(YOYO),
            "psycopg2.errors.DuplicateTable: relation \"users\" already exists"
        );
        assert_eq!(error_line(FLYWAY), "ERROR: Migration V2__dup.sql failed");
        assert!(error_line(SQLX).contains("pg_type_typname_nsp_index"));
        assert_eq!(error_line("usage: tool\nbad flag"), "bad flag");
    }
}
