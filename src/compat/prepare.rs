//! PREPARE every query of every version on the current schema state. The
//! only part of the compatibility matrix that talks to Postgres.

use std::sync::Arc;

use tokio_postgres::Client;

use super::{Prepared, Probe, Shape};
use crate::timeline::SqlState;
use crate::workload::Workload;

/// Prepares each statement of each query of `workloads` on `client` (a
/// connection to the database in schema state `state`). Preparing runs the
/// server's parse analysis only: nothing executes.
pub async fn probe(client: &Client, state: usize, workloads: &[Arc<Workload>]) -> Vec<Probe> {
    let mut probes = Vec::new();
    for workload in workloads {
        for query in &workload.queries {
            let mut shapes = Vec::new();
            let mut prepared = None;
            for (statement, sql) in query.statements.iter().enumerate() {
                match client.prepare(sql).await {
                    Ok(s) => shapes.push(Shape {
                        params: s.params().iter().map(|t| t.name().to_string()).collect(),
                        columns: s
                            .columns()
                            .iter()
                            .map(|c| (c.name().to_string(), c.type_().name().to_string()))
                            .collect(),
                    }),
                    Err(e) => {
                        prepared = Some(Prepared::Error {
                            statement,
                            sqlstate: e.code().map_or(SqlState::Other("08006".into()), |c| {
                                SqlState::from_code(c.code())
                            }),
                            message: crate::provision::describe_pg_error(&e),
                        });
                        break;
                    }
                }
            }
            probes.push(Probe {
                state,
                version: workload.version.clone(),
                query: query.name.clone(),
                prepared: prepared.unwrap_or(Prepared::Ok { shapes }),
            });
        }
    }
    probes
}
