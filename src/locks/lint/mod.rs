//! Static lint of migration statements, then confirmed (or not) by what the
//! trace saw. One rule per file, each with a stable kebab-case id, a
//! one-line fix, and bad/good fixtures tested beside the registry.
//!
//! Statements are read with `sqlparser`'s tokenizer (pure Rust): it knows
//! comments, string literals, dollar quoting and quoted identifiers, so a
//! keyword inside a string or a `"CONCURRENTLY"` column never matches. The
//! rules look at keyword sequences, which is what the dangerous forms in
//! REFERENCE.md ("Operations that hurt") are.

mod add_column_rewrite;
mod add_not_null_without_default;
mod add_unique_constraint;
mod alter_column_type;
mod backfill_most_rows;
mod create_index;
mod drop_index_not_concurrently;
mod drop_or_rename;
mod foreign_key_without_index;
mod identifier_too_long;
mod json_column;
mod missing_lock_timeout;
mod missing_statement_timeout;
mod reindex_not_concurrently;
mod set_not_null;
mod statement_after_access_exclusive;
mod unbatched_backfill;
mod unsafe_enum_change;
mod validated_constraint;

use serde::{Deserialize, Serialize};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::tokenizer::{Token, Tokenizer};

use super::mode::LockMode;
use super::trace::{TraceOutcome, TracedStatement};
use crate::migrate::Migration;
pub use crate::scenario::lint_rules::RuleId;
pub use foreign_key_without_index::IndexedColumns;

/// What executing the statement should show if the rule is right.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    /// A table lock at least this strong.
    TableLock(LockMode),
    /// The table's storage replaced (relfilenode changed).
    Rewrite,
    /// A lock that blocks writes taken with `lock_timeout` unset.
    LockWithoutTimeout,
    /// Holding its locks for a noticeable time on the seeded volume.
    Slow,
    /// A fact of the text itself: execution neither proves nor disproves
    /// it; confirmed when the statement ran as written.
    Static,
    /// Touched at least half of the table's rows (and
    /// [`MOST_ROWS_MINIMUM`] or more); findings of such rules are kept
    /// only when the trace confirms them.
    MostRows,
}

/// Below this many rows a backfill is too small to matter.
pub const MOST_ROWS_MINIMUM: u64 = 1_000;

/// A lint rule: metadata as data (the eugene `hint_data` habit).
pub struct Rule {
    pub id: RuleId,
    /// One line: what to do instead.
    pub fix: &'static str,
    pub expected: Expected,
    /// Returns a message when the statement matches.
    pub check: fn(&Classified, &Context) -> Option<String>,
    /// A statement the rule must flag, and one it must not.
    pub bad: &'static str,
    pub good: &'static str,
}

/// The registry, in report order.
pub const RULES: [&Rule; 19] = [
    &create_index::RULE,
    &validated_constraint::RULE,
    &add_column_rewrite::RULE,
    &alter_column_type::RULE,
    &set_not_null::RULE,
    &add_unique_constraint::RULE,
    &unbatched_backfill::RULE,
    &drop_or_rename::RULE,
    &missing_lock_timeout::RULE,
    &drop_index_not_concurrently::RULE,
    &reindex_not_concurrently::RULE,
    &add_not_null_without_default::RULE,
    &json_column::RULE,
    &identifier_too_long::RULE,
    &statement_after_access_exclusive::RULE,
    &missing_statement_timeout::RULE,
    &backfill_most_rows::RULE,
    &unsafe_enum_change::RULE,
    &foreign_key_without_index::RULE,
];

impl RuleId {
    /// The rule's registry entry.
    #[must_use]
    pub fn rule(self) -> &'static Rule {
        RULES.into_iter().find(|r| r.id == self).unwrap_or(RULES[0])
    }
}

/// What migration context a rule sees besides the statement.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// An earlier statement of the migration set `lock_timeout`.
    pub lock_timeout_set: bool,
    /// An earlier statement of the migration set `statement_timeout`.
    pub statement_timeout_set: bool,
    /// A table an earlier statement of this transaction locked ACCESS
    /// EXCLUSIVE (by its form), still held until commit.
    pub access_exclusive: Option<String>,
    /// Indexes created by any statement of the pending migrations (before
    /// or after this one): the lint has no catalog, so these are all the
    /// indexes `foreign-key-without-index` knows.
    pub indexes: Vec<IndexedColumns>,
}

/// A statement read by the tokenizer.
#[derive(Debug, Clone, Default)]
pub struct Classified {
    /// Unquoted words upper-cased; quoted identifiers keep their quotes and
    /// string literals are `'…'`, so neither matches a keyword.
    pub tokens: Vec<String>,
    pub transaction_control: bool,
    /// CONCURRENTLY, VACUUM and the like: 25001 in a transaction block.
    pub needs_no_transaction: bool,
}

impl Classified {
    /// Whether `words` appear consecutively.
    #[must_use]
    pub fn has_seq(&self, words: &[&str]) -> bool {
        self.tokens
            .windows(words.len())
            .any(|w| w.iter().zip(words).all(|(a, b)| a == b))
    }

    #[must_use]
    pub fn has(&self, word: &str) -> bool {
        self.tokens.iter().any(|t| t == word)
    }

    #[must_use]
    pub fn starts_with(&self, words: &[&str]) -> bool {
        self.tokens.len() >= words.len() && self.tokens.iter().zip(words).all(|(a, b)| a == b)
    }
}

/// Tokenizes one statement. Text the tokenizer rejects yields no tokens
/// (no rule matches; the statement is still traced).
#[must_use]
pub fn classify(sql: &str) -> Classified {
    let dialect = PostgreSqlDialect {};
    let Ok(tokens) = Tokenizer::new(&dialect, sql).tokenize() else {
        return Classified::default();
    };
    let tokens: Vec<String> = tokens
        .into_iter()
        .filter_map(|t| match t {
            Token::Whitespace(_) | Token::EOF => None,
            Token::Word(w) if w.quote_style.is_none() => Some(w.value.to_uppercase()),
            Token::Word(w) => Some(format!("\"{}\"", w.value)),
            Token::SingleQuotedString(s) => Some(format!("'{s}'")),
            Token::DollarQuotedString(_) => Some("$$".into()),
            other => Some(other.to_string()),
        })
        .collect();
    let mut c = Classified {
        tokens,
        ..Classified::default()
    };
    c.transaction_control = ["BEGIN", "COMMIT", "ROLLBACK", "END", "START", "SAVEPOINT"]
        .iter()
        .any(|w| c.starts_with(&[w]));
    c.needs_no_transaction =
        c.has("CONCURRENTLY") || c.starts_with(&["VACUUM"]) || c.starts_with(&["ALTER", "SYSTEM"]);
    c
}

/// What execution said about a lint finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Confirmation {
    /// The trace saw what the rule predicts.
    Confirmed,
    /// Not executed by the trace (failed, or left to the sampler).
    NotConfirmed,
    /// The trace saw something else (e.g. a binary-coercible type change
    /// that did not rewrite): reported as such, not as an error.
    Contradicted,
}

/// One rule matched one statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LintFinding {
    pub rule: RuleId,
    pub version: String,
    pub index: usize,
    pub line: usize,
    pub message: String,
    pub fix: String,
    pub confirmation: Confirmation,
    /// Why it was suppressed (`-- rehearse:ignore <rule-id> <reason>`);
    /// a suppressed finding is still reported, as suppressed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suppressed: Option<String>,
}

/// Lints every statement of `migrations`; findings start `NotConfirmed`.
#[must_use]
pub fn lint(migrations: &[Migration]) -> Vec<LintFinding> {
    let mut found = Vec::new();
    // Each statement is tokenized once; the indexes of the whole pending
    // set are known before any rule runs (an index a later migration
    // creates covers a foreign key added earlier).
    let classified: Vec<Vec<Classified>> = migrations
        .iter()
        .map(|m| m.statements.iter().map(|s| classify(&s.sql)).collect())
        .collect();
    let indexes: Vec<IndexedColumns> = classified
        .iter()
        .flatten()
        .flat_map(foreign_key_without_index::indexes_created)
        .collect();
    for (migration, classified) in migrations.iter().zip(&classified) {
        let mut context = Context {
            indexes: indexes.clone(),
            ..Context::default()
        };
        for ((index, statement), classified) in
            migration.statements.iter().enumerate().zip(classified)
        {
            let ignored = ignores(&statement.sql);
            for rule in RULES {
                if let Some(message) = (rule.check)(classified, &context) {
                    let suppressed = ignored
                        .iter()
                        .find(|(id, _)| *id == rule.id.id())
                        .map(|(_, reason)| reason.clone());
                    found.push(LintFinding {
                        rule: rule.id,
                        version: migration.version.clone(),
                        index,
                        line: statement.line,
                        message,
                        fix: rule.fix.to_string(),
                        confirmation: Confirmation::NotConfirmed,
                        suppressed,
                    });
                }
            }
            if classified.has("LOCK_TIMEOUT") && classified.has("SET") {
                context.lock_timeout_set = true;
            }
            if classified.has("STATEMENT_TIMEOUT") && classified.has("SET") {
                context.statement_timeout_set = true;
            }
            // Held until commit: only a transaction keeps it.
            if migration.transactional
                && context.access_exclusive.is_none()
                && let Some((name, mode)) = super::trace::required_lock(classified)
                && mode == LockMode::AccessExclusive
                && !classified.starts_with(&["DROP"])
            {
                context.access_exclusive = Some(name.join("."));
            }
        }
    }
    found
}

/// Marks the findings of `rules` (a scenario's `[locks] allow`) as
/// suppressed; they stay in the report.
pub fn allow(findings: &mut [LintFinding], rules: &[RuleId]) {
    for f in findings.iter_mut().filter(|f| rules.contains(&f.rule)) {
        if f.suppressed.is_none() {
            f.suppressed = Some("allowed by the scenario ([locks] allow)".into());
        }
    }
}

/// `-- rehearse:ignore <rule-id> <reason>` comments in a statement's text:
/// (rule id, reason). A reason is required; without one the comment is
/// not a suppression (and the finding stays).
fn ignores(sql: &str) -> Vec<(String, String)> {
    sql.lines()
        .filter_map(|line| {
            let comment = line.split_once("--")?.1.trim();
            let rest = comment.strip_prefix("rehearse:ignore")?.trim();
            let (id, reason) = rest.split_once(char::is_whitespace)?;
            let reason = reason.trim();
            (!reason.is_empty()).then(|| (id.to_string(), reason.to_string()))
        })
        .collect()
}

/// Marks each finding by what the trace saw for its statement (looked up
/// by version and index: linear in findings plus statements).
pub fn confirm(findings: &mut Vec<LintFinding>, statements: &[TracedStatement]) {
    let by_statement: std::collections::HashMap<(&str, usize), &TracedStatement> = statements
        .iter()
        .map(|s| ((s.version.as_str(), s.index), s))
        .collect();
    for f in findings.iter_mut() {
        f.confirmation = match by_statement.get(&(f.version.as_str(), f.index)) {
            Some(s) => judge_one(f.rule.rule().expected, s),
            None => Confirmation::NotConfirmed,
        };
    }
    drop_unconfirmed_trace_only(findings);
}

/// Rules that only the trace can judge (row counts) are kept only when it
/// confirmed them: without it every UPDATE with a WHERE would be flagged.
pub fn drop_unconfirmed_trace_only(findings: &mut Vec<LintFinding>) {
    findings.retain(|f| {
        f.rule.rule().expected != Expected::MostRows || f.confirmation == Confirmation::Confirmed
    });
}

/// Statements slower than this hold their locks long enough to matter.
const SLOW_US: u64 = 100_000;

fn judge_one(expected: Expected, s: &TracedStatement) -> Confirmation {
    if s.outcome != TraceOutcome::Ran {
        return Confirmation::NotConfirmed;
    }
    let yes = |b: bool| {
        if b {
            Confirmation::Confirmed
        } else {
            Confirmation::Contradicted
        }
    };
    match expected {
        Expected::TableLock(mode) => yes(s.strongest_table_lock().is_some_and(|(_, m)| m >= mode)),
        Expected::Rewrite => yes(!s.rewritten.is_empty()),
        Expected::LockWithoutTimeout => match s.strongest_table_lock() {
            // Confirmed: it did take a write-blocking lock with no timeout.
            // Contradicted: a timeout was in effect after all (role or
            // database default) or the lock blocks nothing.
            Some((_, m)) => yes(m.blocks_writes() && is_zero(&s.lock_timeout)),
            None => Confirmation::Contradicted,
        },
        Expected::Static => Confirmation::Confirmed,
        Expected::MostRows => match (s.rows, s.table_rows) {
            (Some(rows), Some(total))
                if rows >= MOST_ROWS_MINIMUM && rows.saturating_mul(2) >= total =>
            {
                Confirmation::Confirmed
            }
            _ => Confirmation::Contradicted,
        },
        Expected::Slow => {
            if s.duration_us >= SLOW_US {
                Confirmation::Confirmed
            } else {
                // Fast on this data: neither proven nor disproven.
                Confirmation::NotConfirmed
            }
        }
    }
}

fn is_zero(setting: &str) -> bool {
    matches!(setting.trim(), "0" | "0ms" | "0s")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `RuleId::ALL` (what `[locks] allow` lists) is the registry, in order.
    #[test]
    fn rule_ids_list_the_registry_in_order() {
        assert_eq!(RULES.map(|r| r.id), RuleId::ALL);
    }

    #[test]
    fn every_rule_has_fixtures_flags_bad_and_passes_good() {
        // An earlier statement of the transaction took ACCESS EXCLUSIVE
        // (what statement-after-access-exclusive looks at).
        let context = Context {
            access_exclusive: Some("orders".into()),
            ..Context::default()
        };
        for rule in RULES {
            assert!(
                !rule.bad.trim().is_empty(),
                "{} has no bad fixture",
                rule.id
            );
            assert!(
                !rule.good.trim().is_empty(),
                "{} has no good fixture",
                rule.id
            );
            assert!(!rule.fix.is_empty(), "{} has no fix", rule.id);
            assert!(
                (rule.check)(&classify(rule.bad), &context).is_some(),
                "{} does not flag {}",
                rule.id,
                rule.bad
            );
            assert!(
                (rule.check)(&classify(rule.good), &context).is_none(),
                "{} flags its good fixture {}",
                rule.id,
                rule.good
            );
        }
    }

    #[test]
    fn ids_are_unique_kebab_case_and_registered() {
        let mut seen = std::collections::HashSet::new();
        for rule in RULES {
            assert!(seen.insert(rule.id.id()));
            assert!(
                rule.id
                    .id()
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '-')
            );
            assert_eq!(rule.id.rule().id, rule.id);
            assert_eq!(serde_json::to_value(rule.id).unwrap(), rule.id.id());
        }
    }

    #[test]
    fn keywords_in_strings_and_quoted_names_do_not_match() {
        let c = classify("INSERT INTO t (note) VALUES ('create index concurrently')");
        assert!(!c.needs_no_transaction);
        let c = classify("CREATE INDEX \"CONCURRENTLY\" ON t (a)");
        assert!(!c.needs_no_transaction);
        assert!(classify("create index concurrently i on t (a)").needs_no_transaction);
        assert!(classify("  commit").transaction_control);
    }

    #[test]
    fn lock_timeout_set_earlier_silences_the_rule() {
        let migration = |sqls: &[&str]| Migration {
            version: "1".into(),
            description: String::new(),
            kind: crate::migrate::MigrationKind::Versioned,
            path: "1.sql".into(),
            statements: sqls
                .iter()
                .enumerate()
                .map(|(i, s)| crate::migrate::Statement {
                    sql: (*s).into(),
                    line: i + 1,
                })
                .collect(),
            transactional: true,
            down: None,
        };
        let ids = |m: &Migration| -> Vec<RuleId> {
            lint(std::slice::from_ref(m))
                .into_iter()
                .map(|f| f.rule)
                .collect()
        };
        let bare = migration(&["ALTER TABLE t DROP COLUMN c"]);
        assert!(ids(&bare).contains(&RuleId::MissingLockTimeout));
        let with = migration(&["SET lock_timeout = '2s'", "ALTER TABLE t DROP COLUMN c"]);
        assert!(!ids(&with).contains(&RuleId::MissingLockTimeout));
        assert!(ids(&with).contains(&RuleId::DropOrRename));
    }

    fn ids_of(sqls: &[&str]) -> Vec<(RuleId, usize, Option<String>)> {
        lint(&[crate::locks::adhoc_migration("1", sqls)])
            .into_iter()
            .map(|f| (f.rule, f.index, f.suppressed))
            .collect()
    }

    #[test]
    fn statements_after_access_exclusive_are_flagged_until_commit() {
        let found = ids_of(&[
            "ALTER TABLE orders ADD COLUMN a int",
            "ALTER TABLE orders ADD COLUMN b int",
            "UPDATE orders SET a = 1",
        ]);
        let after: Vec<usize> = found
            .iter()
            .filter(|(r, ..)| *r == RuleId::StatementAfterAccessExclusive)
            .map(|(_, i, _)| *i)
            .collect();
        assert_eq!(after, vec![1, 2]);
        // A no-transaction migration commits each statement.
        let mut m = crate::locks::adhoc_migration(
            "1",
            &[
                "ALTER TABLE orders ADD COLUMN a int",
                "UPDATE orders SET a = 1",
            ],
        );
        m.transactional = false;
        assert!(
            lint(&[m])
                .iter()
                .all(|f| f.rule != RuleId::StatementAfterAccessExclusive)
        );
    }

    #[test]
    fn an_ignore_comment_with_a_reason_suppresses_but_still_reports() {
        let found = ids_of(&[
            "-- rehearse:ignore json-column legacy API stores raw payloads\nALTER TABLE orders ADD COLUMN meta json",
            "-- rehearse:ignore json-column\nALTER TABLE orders ADD COLUMN meta2 json",
        ]);
        let json: Vec<_> = found
            .iter()
            .filter(|(r, ..)| *r == RuleId::JsonColumn)
            .collect();
        assert_eq!(json.len(), 2, "suppressed findings are still listed");
        assert_eq!(json[0].2.as_deref(), Some("legacy API stores raw payloads"));
        // No reason: not a suppression.
        assert_eq!(json[1].2, None);
    }

    #[test]
    fn a_scenario_allow_suppresses_its_rules_and_keeps_the_findings() {
        let mut found = lint(&[crate::locks::adhoc_migration(
            "1",
            &["ALTER TABLE orders ADD COLUMN meta json", "DROP INDEX i"],
        )]);
        let before = found.len();
        allow(&mut found, &[RuleId::JsonColumn]);
        assert_eq!(found.len(), before);
        for f in &found {
            assert_eq!(
                f.suppressed.is_some(),
                f.rule == RuleId::JsonColumn,
                "{f:?}"
            );
        }
        assert_eq!(RuleId::from_id("json-column"), Some(RuleId::JsonColumn));
        assert_eq!(RuleId::from_id("nope"), None);
    }

    #[test]
    fn drop_schema_is_a_drop() {
        let found = ids_of(&["DROP SCHEMA reporting CASCADE"]);
        assert!(found.iter().any(|(r, ..)| *r == RuleId::DropOrRename));
    }

    #[test]
    fn timeouts_set_earlier_silence_their_rules() {
        let found = ids_of(&[
            "SET statement_timeout = '5s'",
            "ALTER TABLE orders ALTER COLUMN id TYPE bigint",
        ]);
        assert!(
            found
                .iter()
                .all(|(r, ..)| *r != RuleId::MissingStatementTimeout)
        );
        let found = ids_of(&["ALTER TABLE orders ALTER COLUMN id TYPE bigint"]);
        assert!(
            found
                .iter()
                .any(|(r, ..)| *r == RuleId::MissingStatementTimeout)
        );
    }

    fn traced(acquired: Vec<super::super::trace::HeldLock>, rewritten: &[&str]) -> TracedStatement {
        TracedStatement {
            version: "1".into(),
            index: 0,
            line: 1,
            sql: String::new(),
            duration_us: 10,
            acquired,
            rewritten: rewritten.iter().map(|s| (*s).to_string()).collect(),
            lock_timeout: "0".into(),
            outcome: TraceOutcome::Ran,
            ..TracedStatement::default()
        }
    }

    #[test]
    fn confirmation_follows_the_trace() {
        use super::super::mode::LockType;
        use super::super::trace::HeldLock;
        let ae = HeldLock {
            locktype: LockType::Relation,
            mode: LockMode::AccessExclusive,
            relation: Some("public.t".into()),
            relkind: Some("r".into()),
            object: None,
        };
        assert_eq!(
            judge_one(Expected::Rewrite, &traced(vec![ae.clone()], &["public.t"])),
            Confirmation::Confirmed
        );
        assert_eq!(
            judge_one(Expected::Rewrite, &traced(vec![ae.clone()], &[])),
            Confirmation::Contradicted
        );
        assert_eq!(
            judge_one(
                Expected::TableLock(LockMode::Share),
                &traced(vec![ae.clone()], &[])
            ),
            Confirmation::Confirmed
        );
        assert_eq!(
            judge_one(Expected::LockWithoutTimeout, &traced(vec![ae], &[])),
            Confirmation::Confirmed
        );
        let mut failed = traced(vec![], &[]);
        failed.outcome = TraceOutcome::NotTraced { reason: "x".into() };
        assert_eq!(
            judge_one(Expected::Rewrite, &failed),
            Confirmation::NotConfirmed
        );
    }
}
