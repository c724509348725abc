//! The lint rules by their kebab-case ids, as `[locks] allow` names them.
//! Plain data; `locks::lint` holds each rule's check and metadata.

use serde::{Deserialize, Serialize};

/// Every lint rule, by its kebab-case id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RuleId {
    CreateIndexNotConcurrently,
    ValidatedConstraint,
    AddColumnRewrite,
    AlterColumnType,
    SetNotNull,
    AddUniqueConstraint,
    UnbatchedBackfill,
    DropOrRename,
    MissingLockTimeout,
    DropIndexNotConcurrently,
    ReindexNotConcurrently,
    AddNotNullWithoutDefault,
    JsonColumn,
    IdentifierTooLong,
    StatementAfterAccessExclusive,
    MissingStatementTimeout,
    BackfillMostRows,
    UnsafeEnumChange,
    ForeignKeyWithoutIndex,
}

impl RuleId {
    /// Every rule, in the lint registry's report order (`locks::lint::RULES`).
    pub const ALL: [RuleId; 19] = [
        RuleId::CreateIndexNotConcurrently,
        RuleId::ValidatedConstraint,
        RuleId::AddColumnRewrite,
        RuleId::AlterColumnType,
        RuleId::SetNotNull,
        RuleId::AddUniqueConstraint,
        RuleId::UnbatchedBackfill,
        RuleId::DropOrRename,
        RuleId::MissingLockTimeout,
        RuleId::DropIndexNotConcurrently,
        RuleId::ReindexNotConcurrently,
        RuleId::AddNotNullWithoutDefault,
        RuleId::JsonColumn,
        RuleId::IdentifierTooLong,
        RuleId::StatementAfterAccessExclusive,
        RuleId::MissingStatementTimeout,
        RuleId::BackfillMostRows,
        RuleId::UnsafeEnumChange,
        RuleId::ForeignKeyWithoutIndex,
    ];

    /// The stable kebab-case id.
    #[must_use]
    pub fn id(self) -> &'static str {
        match self {
            RuleId::CreateIndexNotConcurrently => "create-index-not-concurrently",
            RuleId::ValidatedConstraint => "validated-constraint",
            RuleId::AddColumnRewrite => "add-column-rewrite",
            RuleId::AlterColumnType => "alter-column-type",
            RuleId::SetNotNull => "set-not-null",
            RuleId::AddUniqueConstraint => "add-unique-constraint",
            RuleId::UnbatchedBackfill => "unbatched-backfill",
            RuleId::DropOrRename => "drop-or-rename",
            RuleId::MissingLockTimeout => "missing-lock-timeout",
            RuleId::DropIndexNotConcurrently => "drop-index-not-concurrently",
            RuleId::ReindexNotConcurrently => "reindex-not-concurrently",
            RuleId::AddNotNullWithoutDefault => "add-not-null-without-default",
            RuleId::JsonColumn => "json-column",
            RuleId::IdentifierTooLong => "identifier-too-long",
            RuleId::StatementAfterAccessExclusive => "statement-after-access-exclusive",
            RuleId::MissingStatementTimeout => "missing-statement-timeout",
            RuleId::BackfillMostRows => "backfill-most-rows",
            RuleId::UnsafeEnumChange => "unsafe-enum-change",
            RuleId::ForeignKeyWithoutIndex => "foreign-key-without-index",
        }
    }

    /// The rule with this kebab-case id.
    #[must_use]
    pub fn from_id(id: &str) -> Option<RuleId> {
        RuleId::ALL.into_iter().find(|r| r.id() == id)
    }
}

impl std::fmt::Display for RuleId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.id())
    }
}
