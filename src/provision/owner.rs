//! Run ids and owner records: how `rehearse gc` tells an orphan from a
//! resource some live `rehearse` process still uses.

use std::fmt;

/// Identifies one run of the harness; labels containers, names local
/// cluster directories and throwaway databases.
#[derive(Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct RunId(String);

impl RunId {
    /// A fresh random id: 12 lowercase hex digits, valid in SQL identifiers,
    /// Docker labels and short socket paths.
    #[must_use]
    pub fn new() -> Self {
        RunId(format!("{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff))
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for RunId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RunId({})", self.0)
    }
}

/// The process that owns a resource: its pid plus its start time, so a
/// recycled pid is not mistaken for the owner.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Owner {
    pub pid: u32,
    /// Start time of the process in clock ticks since boot (`/proc/PID/stat`
    /// field 22); 0 where unknown.
    pub start_ticks: u64,
    pub run_id: RunId,
}

impl Owner {
    /// The current process as owner of `run_id`.
    #[must_use]
    pub fn current(run_id: &RunId) -> Self {
        let pid = std::process::id();
        Owner {
            pid,
            start_ticks: process_start_ticks(pid).unwrap_or(0),
            run_id: run_id.clone(),
        }
    }

    /// Whether the owning process still runs.
    #[must_use]
    pub fn is_alive(&self) -> bool {
        match process_start_ticks(self.pid) {
            Some(ticks) => self.start_ticks == 0 || ticks == self.start_ticks,
            None => false,
        }
    }
}

/// Field 22 of `/proc/PID/stat`; `None` when the process does not exist or
/// is a zombie (a zombie owns nothing any more).
pub(crate) fn process_start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses: split
    // after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state).
    if fields.first() == Some(&"Z") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_process_is_alive_and_a_dead_pid_is_not() {
        let me = Owner::current(&RunId::new());
        assert!(me.start_ticks > 0);
        assert!(me.is_alive());
        let recycled = Owner {
            start_ticks: me.start_ticks + 1,
            ..me.clone()
        };
        assert!(
            !recycled.is_alive(),
            "a different start time means another process"
        );
        let gone = Owner {
            pid: u32::MAX - 1,
            ..me
        };
        assert!(!gone.is_alive());
    }

    #[test]
    fn run_ids_are_short_hex_and_distinct() {
        let a = RunId::new();
        assert_eq!(a.as_str().len(), 12);
        assert!(a.as_str().chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, RunId::new());
    }
}
