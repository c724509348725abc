//! A compatibility report each rollout check must flag. The match
//! is exhaustive: a new check without an example does not compile.

use super::CheckId;
use crate::compat::fixtures::*;
use crate::compat::{CompatReport, Phase};

pub(crate) fn bad(check: CheckId) -> CompatReport {
    let broken_old = [
        probed(0, "old", "get", shape(&[("email", "text")])),
        probed(1, "old", "get", error("42703")),
    ];
    let phases: Vec<Phase> = match check {
        CheckId::OldOnNew => migrate_then_deploy(),
        CheckId::RollbackUnsafe => vec![
            phase(0, 0, &["old"], false),
            phase(1, 1, &["new"], false),
            phase(2, 1, &["old"], true),
        ],
        CheckId::NewOnOld => {
            let probes = [
                probed(0, "new", "get", error("42703")),
                probed(1, "new", "get", shape(&[("id", "int4")])),
            ];
            let phases = [phase(0, 0, &["old"], false), phase(1, 0, &["new"], false)];
            return report(&probes, &phases, &[]);
        }
        CheckId::DataDependentBreakage => {
            let probes = [
                probed(0, "old", "get", shape(&[])),
                probed(1, "old", "get", shape(&[])),
            ];
            let executions = [
                exec("old", "get", 1, Some("22P02")),
                exec("old", "get", 1, None),
            ];
            return report(&probes, &migrate_then_deploy(), &executions);
        }
        CheckId::TrafficErrors => {
            let probes = [
                probed(0, "old", "get", shape(&[])),
                probed(1, "old", "get", shape(&[])),
            ];
            return report(
                &probes,
                &migrate_then_deploy(),
                &[exec("old", "get", 1, Some("55P03"))],
            );
        }
        // Read the traffic report, a race record or a lock report: their
        // own tests.
        CheckId::TrafficStall
        | CheckId::LongAccessExclusive
        | CheckId::LockQueue
        | CheckId::BlockedBackends
        | CheckId::TableRewrite
        | CheckId::MissingLockTimeout
        | CheckId::LockLint
        | CheckId::LockBudget
        | CheckId::DoubleApplication
        | CheckId::DuplicateData
        | CheckId::ReplicaErrors
        | CheckId::ReplicaWaits
        | CheckId::ReplicaTimeout
        | CheckId::SchemaDrift
        | CheckId::DataDrift
        | CheckId::LeakedAdvisoryLock
        | CheckId::InvalidIndex
        | CheckId::Bookkeeping
        | CheckId::RolloutHalt
        | CheckId::FaultRecovery => return CompatReport::default(),
    };
    report(&broken_old, &phases, &[])
}
