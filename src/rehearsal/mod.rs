//! The rehearsal itself: replicas, app workloads and the lock sampler running
//! against a provisioned database, all emitting events into the timeline.

pub mod races;

pub use races::{
    FaultConfig, RaceConfig, RaceOutcome, RehearsalError, run_races, run_races_with_reference,
    run_reference,
};
