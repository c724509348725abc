//! Table-level lock modes and their conflict matrix, as data.
//!
//! The matrix is the one in the manual, "Explicit Locking", table
//! "Conflicting Lock Modes". Lock modes are an enum, never strings: the
//! text `pg_locks.mode` shows is parsed once, here.

use serde::{Deserialize, Serialize};

/// A table-level lock mode, weakest to strongest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LockMode {
    AccessShare,
    RowShare,
    RowExclusive,
    ShareUpdateExclusive,
    Share,
    ShareRowExclusive,
    Exclusive,
    AccessExclusive,
}

/// `CONFLICTS[a][b]`: whether mode `a` conflicts with mode `b`, in the
/// order of [`LockMode::ALL`] (manual, "Conflicting Lock Modes").
const CONFLICTS: [[bool; 8]; 8] = {
    const O: bool = false;
    const X: bool = true;
    [
        // AS RS RX SUX S  SRX E  AX
        [O, O, O, O, O, O, O, X], // ACCESS SHARE
        [O, O, O, O, O, O, X, X], // ROW SHARE
        [O, O, O, O, X, X, X, X], // ROW EXCLUSIVE
        [O, O, O, X, X, X, X, X], // SHARE UPDATE EXCLUSIVE
        [O, O, X, X, O, X, X, X], // SHARE
        [O, O, X, X, X, X, X, X], // SHARE ROW EXCLUSIVE
        [O, X, X, X, X, X, X, X], // EXCLUSIVE
        [X, X, X, X, X, X, X, X], // ACCESS EXCLUSIVE
    ]
};

impl LockMode {
    /// Every mode, weakest first.
    pub const ALL: [LockMode; 8] = [
        LockMode::AccessShare,
        LockMode::RowShare,
        LockMode::RowExclusive,
        LockMode::ShareUpdateExclusive,
        LockMode::Share,
        LockMode::ShareRowExclusive,
        LockMode::Exclusive,
        LockMode::AccessExclusive,
    ];

    fn index(self) -> usize {
        self as usize
    }

    /// Whether two sessions can hold these modes on one object at once.
    #[must_use]
    pub fn conflicts_with(self, other: LockMode) -> bool {
        CONFLICTS[self.index()][other.index()]
    }

    /// The mode as `pg_locks.mode` spells it (`AccessExclusiveLock`).
    #[must_use]
    pub fn pg_name(self) -> &'static str {
        match self {
            LockMode::AccessShare => "AccessShareLock",
            LockMode::RowShare => "RowShareLock",
            LockMode::RowExclusive => "RowExclusiveLock",
            LockMode::ShareUpdateExclusive => "ShareUpdateExclusiveLock",
            LockMode::Share => "ShareLock",
            LockMode::ShareRowExclusive => "ShareRowExclusiveLock",
            LockMode::Exclusive => "ExclusiveLock",
            LockMode::AccessExclusive => "AccessExclusiveLock",
        }
    }

    /// The mode as the manual and `LOCK TABLE` spell it (`ACCESS EXCLUSIVE`).
    #[must_use]
    pub fn sql_name(self) -> &'static str {
        match self {
            LockMode::AccessShare => "ACCESS SHARE",
            LockMode::RowShare => "ROW SHARE",
            LockMode::RowExclusive => "ROW EXCLUSIVE",
            LockMode::ShareUpdateExclusive => "SHARE UPDATE EXCLUSIVE",
            LockMode::Share => "SHARE",
            LockMode::ShareRowExclusive => "SHARE ROW EXCLUSIVE",
            LockMode::Exclusive => "EXCLUSIVE",
            LockMode::AccessExclusive => "ACCESS EXCLUSIVE",
        }
    }

    /// Parses `pg_locks.mode`. `SIReadLock` (serializable predicate locks)
    /// is not a table lock mode and yields `None`.
    #[must_use]
    pub fn from_pg(text: &str) -> Option<LockMode> {
        LockMode::ALL.into_iter().find(|m| m.pg_name() == text)
    }

    /// Whether this mode stops the application: it conflicts with what
    /// reads (ACCESS SHARE) or writes (ROW EXCLUSIVE) take (REFERENCE.md,
    /// "Table lock modes").
    #[must_use]
    pub fn blocks_reads(self) -> bool {
        self.conflicts_with(LockMode::AccessShare)
    }

    /// Whether this mode stops INSERT/UPDATE/DELETE.
    #[must_use]
    pub fn blocks_writes(self) -> bool {
        self.conflicts_with(LockMode::RowExclusive)
    }
}

impl std::fmt::Display for LockMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.sql_name())
    }
}

/// What a `pg_locks` row locks (`pg_locks.locktype`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LockType {
    Relation,
    Extend,
    Page,
    Tuple,
    TransactionId,
    VirtualXid,
    Object,
    Advisory,
    /// `spectoken`, `userlock`, `frozenid` and anything newer.
    Other,
}

impl LockType {
    /// Parses `pg_locks.locktype`.
    #[must_use]
    pub fn from_pg(text: &str) -> LockType {
        match text {
            "relation" => LockType::Relation,
            "extend" => LockType::Extend,
            "page" => LockType::Page,
            "tuple" => LockType::Tuple,
            "transactionid" => LockType::TransactionId,
            "virtualxid" => LockType::VirtualXid,
            "object" => LockType::Object,
            "advisory" => LockType::Advisory,
            _ => LockType::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matrix_is_symmetric() {
        for a in LockMode::ALL {
            for b in LockMode::ALL {
                assert_eq!(a.conflicts_with(b), b.conflicts_with(a), "{a} vs {b}");
            }
        }
    }

    #[test]
    fn matrix_matches_the_manual_rows() {
        use LockMode::*;
        let conflicting = |m: LockMode| -> Vec<LockMode> {
            LockMode::ALL
                .into_iter()
                .filter(|o| m.conflicts_with(*o))
                .collect()
        };
        assert_eq!(conflicting(AccessShare), [AccessExclusive]);
        assert_eq!(conflicting(RowShare), [Exclusive, AccessExclusive]);
        assert_eq!(
            conflicting(RowExclusive),
            [Share, ShareRowExclusive, Exclusive, AccessExclusive]
        );
        assert_eq!(
            conflicting(ShareUpdateExclusive),
            [
                ShareUpdateExclusive,
                Share,
                ShareRowExclusive,
                Exclusive,
                AccessExclusive
            ]
        );
        assert_eq!(
            conflicting(Share),
            [
                RowExclusive,
                ShareUpdateExclusive,
                ShareRowExclusive,
                Exclusive,
                AccessExclusive
            ]
        );
        assert_eq!(conflicting(AccessExclusive), LockMode::ALL);
        assert!(!Share.conflicts_with(Share));
        assert!(ShareRowExclusive.conflicts_with(ShareRowExclusive));
    }

    #[test]
    fn pg_names_round_trip_and_predicate_locks_are_not_modes() {
        for m in LockMode::ALL {
            assert_eq!(LockMode::from_pg(m.pg_name()), Some(m));
        }
        assert_eq!(LockMode::from_pg("SIReadLock"), None);
        assert_eq!(LockType::from_pg("advisory"), LockType::Advisory);
        assert_eq!(LockType::from_pg("frozenid"), LockType::Other);
    }

    #[test]
    fn what_stops_the_application() {
        assert!(LockMode::AccessExclusive.blocks_reads());
        assert!(!LockMode::Share.blocks_reads());
        assert!(LockMode::Share.blocks_writes());
        assert!(!LockMode::ShareUpdateExclusive.blocks_writes());
    }
}
