//! Impact on traffic: per phase and per query, throughput, errors, latency
//! percentiles (hdrhistogram) and the longest stall, with the migration
//! statement that was running meanwhile. Pure: built from recorded
//! executions and the timeline.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::Execution;
use crate::compat::Phase;
use crate::timeline::{EventKind, Timeline};

/// Traffic of one query of one version in one phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryTraffic {
    pub phase: usize,
    pub version: String,
    pub query: String,
    pub executions: u64,
    pub errors: u64,
    /// Executions per second over the phase.
    pub throughput: f64,
    pub p50_us: u64,
    pub p95_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

/// A migration statement's run, from the timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatementRun {
    pub version: String,
    pub index: usize,
    pub line: usize,
    pub start_us: u64,
    pub end_us: u64,
}

/// An execution slower than the stall threshold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stall {
    pub phase: usize,
    pub version: String,
    pub query: String,
    pub client: String,
    pub start_us: u64,
    pub latency_us: u64,
    /// Migration statements running while it waited, `version:line`.
    pub during: Vec<String>,
}

/// Traffic of a whole rollout.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrafficReport {
    pub phases: Vec<Phase>,
    pub queries: Vec<QueryTraffic>,
    /// Stalls at or above `stall_threshold_us`, longest first (at most 20).
    pub stalls: Vec<Stall>,
    pub stall_threshold_us: u64,
    pub statements: Vec<StatementRun>,
    /// Executions recorded (long runs keep a sample of the successes).
    pub recorded_executions: usize,
}

/// Migration statements' begin/end pairs from the timeline.
#[must_use]
pub fn statement_runs(timeline: &Timeline) -> Vec<StatementRun> {
    let mut open: BTreeMap<(String, usize), (u64, usize)> = BTreeMap::new();
    let mut runs = Vec::new();
    for e in &timeline.events {
        match &e.kind {
            EventKind::StatementBegin {
                version,
                index,
                line,
            } => {
                open.insert((version.clone(), *index), (e.at_us, *line));
            }
            EventKind::StatementEnd {
                version,
                index,
                line,
            } => {
                let start = open
                    .remove(&(version.clone(), *index))
                    .map_or(e.at_us, |(s, _)| s);
                runs.push(StatementRun {
                    version: version.clone(),
                    index: *index,
                    line: *line,
                    start_us: start,
                    end_us: e.at_us,
                });
            }
            _ => {}
        }
    }
    // A statement that never ended (it failed) ran until the timeline did.
    let last = timeline.events.last().map_or(0, |e| e.at_us);
    for ((version, index), (start, line)) in open {
        runs.push(StatementRun {
            version,
            index,
            line,
            start_us: start,
            end_us: last,
        });
    }
    runs.sort_by_key(|r| r.start_us);
    runs
}

/// Builds the traffic report.
#[must_use]
pub fn traffic_report(
    phases: &[Phase],
    executions: &[Execution],
    timeline: &Timeline,
    stall_threshold_us: u64,
) -> TrafficReport {
    let statements = statement_runs(timeline);
    let mut groups: BTreeMap<(usize, &str, &str), Vec<&Execution>> = BTreeMap::new();
    for e in executions {
        groups
            .entry((e.phase, e.version.as_str(), e.query.as_str()))
            .or_default()
            .push(e);
    }
    let mut queries = Vec::new();
    for ((phase, version, query), list) in groups {
        // 1 us to 1 h at three significant digits; longer is clamped.
        let mut histogram = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3)
            .expect("bounds and precision are valid");
        for e in &list {
            histogram.saturating_record(e.latency_us.max(1));
        }
        let seconds = phases
            .iter()
            .find(|p| p.index == phase)
            .map_or(0.0, |p| (p.end_us.saturating_sub(p.start_us)) as f64 / 1e6);
        queries.push(QueryTraffic {
            phase,
            version: version.to_string(),
            query: query.to_string(),
            executions: list.len() as u64,
            errors: list.iter().filter(|e| e.sqlstate.is_some()).count() as u64,
            throughput: if seconds > 0.0 {
                list.len() as f64 / seconds
            } else {
                0.0
            },
            p50_us: histogram.value_at_quantile(0.50),
            p95_us: histogram.value_at_quantile(0.95),
            p99_us: histogram.value_at_quantile(0.99),
            max_us: histogram.max(),
        });
    }
    let mut stalls: Vec<Stall> = executions
        .iter()
        .filter(|e| e.latency_us >= stall_threshold_us)
        .map(|e| {
            let end = e.start_us + e.latency_us;
            Stall {
                phase: e.phase,
                version: e.version.clone(),
                query: e.query.clone(),
                client: e.client.clone(),
                start_us: e.start_us,
                latency_us: e.latency_us,
                during: statements
                    .iter()
                    .filter(|s| s.start_us < end && s.end_us > e.start_us)
                    .map(|s| format!("{}:{}", s.version, s.line))
                    .collect(),
            }
        })
        .collect();
    stalls.sort_by_key(|s| std::cmp::Reverse(s.latency_us));
    stalls.truncate(20);
    TrafficReport {
        phases: phases.to_vec(),
        queries,
        stalls,
        stall_threshold_us,
        statements,
        recorded_executions: executions.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compat::fixtures::{exec, phase};
    use crate::timeline::{Actor, Event};

    #[test]
    fn percentiles_throughput_and_stalls_with_the_running_statement() {
        let phases = vec![phase(0, 0, &["old"], false), phase(1, 0, &["old"], false)];
        let mut executions: Vec<Execution> = (0..100)
            .map(|i| {
                let mut e = exec("old", "get", 1, None);
                e.latency_us = 100 + i;
                e
            })
            .collect();
        let mut slow = exec("old", "get", 1, Some("57014"));
        slow.start_us = 1_100_000;
        slow.latency_us = 2_000_000;
        executions.push(slow);
        let timeline = Timeline {
            events: vec![
                Event {
                    at_us: 1_200_000,
                    actor: Actor::Job,
                    kind: EventKind::StatementBegin {
                        version: "0002".into(),
                        index: 0,
                        line: 3,
                    },
                },
                Event {
                    at_us: 2_900_000,
                    actor: Actor::Job,
                    kind: EventKind::StatementEnd {
                        version: "0002".into(),
                        index: 0,
                        line: 3,
                    },
                },
            ],
        };
        let r = traffic_report(&phases, &executions, &timeline, 1_000_000);
        assert_eq!(r.queries.len(), 1);
        let q = &r.queries[0];
        assert_eq!((q.executions, q.errors), (101, 1));
        assert!((q.throughput - 101.0).abs() < 1e-9);
        assert!((148..=151).contains(&q.p50_us), "{}", q.p50_us);
        assert!(q.p95_us < 200 && q.p99_us >= q.p95_us, "{q:?}");
        assert!(
            q.max_us >= 2_000_000 && q.max_us < 2_002_000,
            "{}",
            q.max_us
        );
        assert_eq!(r.stalls.len(), 1);
        assert_eq!(r.stalls[0].during, vec!["0002:3"]);
    }
}
