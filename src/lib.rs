//! `rehearse`: a staging rehearsal harness for PostgreSQL schema migrations.
//!
//! Data flows one way, and the modules say so:
//!
//! ```text
//! scenario file -> provision (a Postgres) -> seed -> rehearsal
//!     (replicas + app workloads + lock sampler, all emitting timestamped events)
//! -> timeline (plain, serialisable data) -> findings (one check per file)
//! -> report (terminal / JSON / ...) -> exit code
//! ```
//!
//! Only [`provision`], [`seed`], [`migrate`] and [`rehearsal`] talk to
//! Postgres. [`timeline`], [`findings`] and [`report`] work on plain data and
//! are tested from recorded timelines.

pub mod api;
pub mod cli;
pub mod compat;
pub mod exit;
pub mod findings;
pub mod forecast; // lock holds at production size
pub mod locks;
pub mod migrate;
pub mod progress;
pub mod provision;
pub mod redact;
pub mod rehearsal;
pub mod report;
pub mod scenario;
pub mod seed;
pub mod stats; // production statistics capture
pub mod testing;
pub mod timeline;

pub use api::{Outcome, Rehearsal};
pub use findings::CheckId;
pub mod workload;
