//! The loader: streams generated rows into `COPY ... FROM STDIN (FORMAT
//! binary)`, with indexes and foreign keys of empty tables set aside during
//! the load.

use std::collections::HashMap;
use std::error::Error;
use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::TryStreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use tokio_postgres::Client;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};

use super::SeedError;
use super::TableReport;
use super::plan::{DeferredFk, TablePlan};
use super::rows::{ParentKeys, RowGenerator};
use super::sql::{self, quote_ident};
use super::value::Value;

/// Rows per batch handed from the generator thread to the writer.
const BATCH_ROWS: usize = 2048;
/// Batches in flight: bounds memory whatever the table size.
const BATCHES_IN_FLIGHT: usize = 4;
/// Longest the writer waits for the generator thread between batches.
const GENERATOR_TIMEOUT: Duration = Duration::from_secs(300);

/// A value read back from the server, kept in binary form.
struct RawValue(Option<Bytes>);

impl<'a> FromSql<'a> for RawValue {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn Error + Sync + Send>> {
        Ok(RawValue(Some(Bytes::copy_from_slice(raw))))
    }

    fn from_sql_null(_: &Type) -> Result<Self, Box<dyn Error + Sync + Send>> {
        Ok(RawValue(None))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// Rows encoded in binary COPY value format: `spans` holds, row by row, the
/// byte range of each value in `data` (`None` for NULL).
struct EncodedBatch {
    data: Bytes,
    spans: Vec<Option<(u32, u32)>>,
    rows: usize,
}

impl EncodedBatch {
    fn fill(generator: &mut RowGenerator, types: &[Type], max_rows: usize) -> Result<Self, String> {
        let mut data = BytesMut::with_capacity(max_rows * 64);
        let mut spans = Vec::with_capacity(max_rows * types.len());
        let mut rows = 0;
        while rows < max_rows {
            let Some(row) = generator.next_row() else {
                break;
            };
            for (value, ty) in row.iter().zip(types) {
                let start = data.len();
                let is_null = value
                    .to_sql(ty, &mut data)
                    .map_err(|e| format!("encoding a {} value: {e}", ty.name()))?;
                spans.push(match is_null {
                    IsNull::Yes => None,
                    IsNull::No => Some((
                        u32::try_from(start).map_err(|e| e.to_string())?,
                        u32::try_from(data.len()).map_err(|e| e.to_string())?,
                    )),
                });
            }
            rows += 1;
        }
        Ok(EncodedBatch {
            data: data.freeze(),
            spans,
            rows,
        })
    }
}

/// One pre-encoded value, written as is.
#[derive(Debug)]
struct Encoded<'a> {
    data: &'a Bytes,
    span: Option<(u32, u32)>,
}

impl ToSql for Encoded<'_> {
    fn to_sql(&self, _: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        match self.span {
            None => Ok(IsNull::Yes),
            Some((start, end)) => {
                out.put_slice(&self.data[start as usize..end as usize]);
                Ok(IsNull::No)
            }
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// Parent keys already read, by query text.
pub(crate) type KeyCache = HashMap<String, Arc<ParentKeys>>;

/// What was set aside for a table's load and must be put back.
#[derive(Default)]
pub(crate) struct SetAside {
    /// `CREATE INDEX` statements.
    pub indexes: Vec<String>,
    /// `ALTER TABLE ... ADD CONSTRAINT` statements for foreign keys.
    pub foreign_keys: Vec<String>,
    /// `ALTER TABLE ... ADD CONSTRAINT` statements for primary keys and
    /// unique constraints.
    pub keys: Vec<String>,
}

/// Drops the primary key and unique constraints of an empty table whose
/// referencing foreign keys are all dropped already.
pub(crate) async fn set_aside_keys(
    client: &Client,
    plan: &TablePlan,
    aside: &mut SetAside,
) -> Result<(), SeedError> {
    set_aside_constraints(client, plan, sql::KEY_CONSTRAINTS, &mut aside.keys).await
}

/// Drops the constraints `query` lists for the table (name, definition)
/// and remembers how to add each back after the load.
async fn set_aside_constraints(
    client: &Client,
    plan: &TablePlan,
    query: &str,
    restore: &mut Vec<String>,
) -> Result<(), SeedError> {
    let context = format!("preparing {} for loading", plan.display);
    for row in client
        .query(query, &[&plan.oid])
        .await
        .map_err(|e| SeedError::db(&context, &e))?
    {
        let name: String = row.get(0);
        let definition: String = row.get(1);
        client
            .batch_execute(&format!(
                "ALTER TABLE {} DROP CONSTRAINT {name}",
                plan.qualified
            ))
            .await
            .map_err(|e| SeedError::db(&context, &e))?;
        restore.push(format!(
            "ALTER TABLE {} ADD CONSTRAINT {name} {definition}",
            plan.qualified
        ));
    }
    Ok(())
}

async fn parent_keys(
    client: &Client,
    plan: &TablePlan,
    cache: &mut KeyCache,
) -> Result<Vec<Arc<ParentKeys>>, SeedError> {
    let mut out = Vec::new();
    for group in &plan.groups {
        let select = group
            .parent_columns
            .iter()
            .zip(&group.child_types)
            .map(|(c, t)| format!("{}::{t}", quote_ident(c)))
            .collect::<Vec<_>>()
            .join(", ");
        let not_null = group
            .parent_columns
            .iter()
            .map(|c| format!("{} IS NOT NULL", quote_ident(c)))
            .collect::<Vec<_>>()
            .join(" AND ");
        let order = (1..=group.parent_columns.len())
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let query = sql::parent_keys(&group.parent_qualified, &select, &not_null, &order);
        if let Some(keys) = cache.get(&query) {
            out.push(keys.clone());
            continue;
        }
        let context = format!(
            "reading keys of {} for {}",
            group.parent_display, plan.display
        );
        let stream = client
            .query_raw(&query, std::iter::empty::<i32>())
            .await
            .map_err(|e| SeedError::db(&context, &e))?;
        let mut stream = pin!(stream);
        let arity = group.parent_columns.len();
        let mut values = Vec::new();
        while let Some(row) = stream
            .try_next()
            .await
            .map_err(|e| SeedError::db(&context, &e))?
        {
            for i in 0..arity {
                let raw: RawValue = row.try_get(i).map_err(|e| SeedError::db(&context, &e))?;
                values.push(raw.0.map_or(Value::Null, Value::Raw));
            }
        }
        let keys = Arc::new(ParentKeys { arity, values });
        cache.insert(query, keys.clone());
        out.push(keys);
    }
    Ok(out)
}

/// Drops the indexes and foreign keys of an empty table that no constraint
/// needs, returning the statements that recreate them.
pub(crate) async fn set_aside(
    client: &Client,
    plan: &TablePlan,
    aside: &mut SetAside,
) -> Result<(), SeedError> {
    if plan.had_rows {
        return Ok(());
    }
    let context = format!("preparing {} for loading", plan.display);
    for row in client
        .query(sql::DROPPABLE_INDEXES, &[&plan.oid])
        .await
        .map_err(|e| SeedError::db(&context, &e))?
    {
        let name: String = row.get(0);
        let definition: String = row.get(1);
        client
            .batch_execute(&format!("DROP INDEX {name}"))
            .await
            .map_err(|e| SeedError::db(&context, &e))?;
        aside.indexes.push(definition);
    }
    set_aside_constraints(
        client,
        plan,
        sql::OUTGOING_FOREIGN_KEYS,
        &mut aside.foreign_keys,
    )
    .await
}

/// Generates and loads one table.
pub(crate) async fn load_table(
    client: &Client,
    plan: TablePlan,
    seed: u64,
    cache: &mut KeyCache,
    progress: bool,
) -> Result<TableReport, SeedError> {
    let started = Instant::now();
    let plan = Arc::new(plan);
    let parents = parent_keys(client, &plan, cache).await?;
    let context = format!("loading {}", plan.display);
    let columns = sql::column_list(plan.columns.iter().map(|c| c.name.as_str()));

    // The statement's column types include enums and domains with their
    // base types resolved, which the binary encoder needs.
    let types: Vec<Type> = if plan.columns.is_empty() {
        Vec::new()
    } else {
        client
            .prepare(&format!("SELECT {columns} FROM {} LIMIT 0", plan.qualified))
            .await
            .map_err(|e| SeedError::db(&context, &e))?
            .columns()
            .iter()
            .map(|c| c.type_().clone())
            .collect()
    };

    let mut generator = RowGenerator::new(plan.clone(), parents, seed)?;
    let bar = progress_bar(progress, &plan.display, generator.expected_rows());

    if plan.columns.is_empty() {
        // A table of generated columns only: nothing to COPY, insert defaults.
        let mut rows = 0u64;
        while generator.next_row().is_some() {
            client
                .batch_execute(&format!("INSERT INTO {} DEFAULT VALUES", plan.qualified))
                .await
                .map_err(|e| SeedError::db(&context, &e))?;
            rows += 1;
        }
        bar.finish_and_clear();
        return Ok(report(&plan.display, rows, started));
    }

    let sink = client
        .copy_in::<_, Bytes>(&sql::copy_in(&plan.qualified, &columns, plan.freeze))
        .await
        .map_err(|e| SeedError::db(&context, &e))?;
    let writer = BinaryCopyInWriter::new(sink, &types);
    let mut writer = pin!(writer);

    // Generation and binary encoding run on a blocking thread while this
    // task only copies encoded bytes into the COPY stream: the two overlap,
    // values are freed on the thread that allocated them, and the channel
    // bound caps memory whatever the table size.
    let width = types.len();
    let (tx, mut rx) =
        tokio::sync::mpsc::channel::<Result<EncodedBatch, String>>(BATCHES_IN_FLIGHT);
    let producer_types = types.clone();
    let producer = tokio::task::spawn_blocking(move || {
        loop {
            let batch = EncodedBatch::fill(&mut generator, &producer_types, BATCH_ROWS);
            let done = match &batch {
                Ok(b) => b.rows < BATCH_ROWS,
                Err(_) => true,
            };
            let empty = matches!(&batch, Ok(b) if b.rows == 0);
            if !empty && tx.blocking_send(batch).is_err() {
                return;
            }
            if done {
                return;
            }
        }
    });

    let mut failure = None;
    loop {
        let batch = match tokio::time::timeout(GENERATOR_TIMEOUT, rx.recv()).await {
            Ok(Some(Ok(batch))) => batch,
            Ok(Some(Err(message))) => {
                failure = Some(SeedError::Database {
                    context: context.clone(),
                    message,
                    sqlstate: None,
                });
                break;
            }
            Ok(None) => break,
            Err(_) => {
                failure = Some(SeedError::Database {
                    context: context.clone(),
                    message: "row generator stalled".into(),
                    sqlstate: None,
                });
                break;
            }
        };
        for row in batch.spans.chunks(width) {
            let values = row.iter().map(|span| Encoded {
                data: &batch.data,
                span: *span,
            });
            if let Err(e) = writer.as_mut().write_raw(values).await {
                failure = Some(SeedError::db(&context, &e));
                break;
            }
        }
        if failure.is_some() {
            break;
        }
        bar.inc(batch.rows as u64);
    }
    drop(rx);
    let _ = producer.await;
    if let Some(error) = failure {
        bar.abandon();
        // Finishing surfaces the server's error, which says more than a
        // broken pipe on write.
        return Err(match writer.as_mut().finish().await {
            Err(e) => SeedError::db(&context, &e),
            Ok(_) => error,
        });
    }
    let rows = writer
        .as_mut()
        .finish()
        .await
        .map_err(|e| SeedError::db(&context, &e))?;
    bar.finish_and_clear();

    for column in &plan.sequences {
        client
            .query(
                &sql::sync_sequence(&plan.qualified, &quote_ident(column)),
                &[&plan.qualified, column],
            )
            .await
            .map_err(|e| {
                SeedError::db(
                    format!("moving the sequence of {}.{column}", plan.display),
                    &e,
                )
            })?;
    }
    Ok(report(&plan.display, rows, started))
}

fn report(name: &str, rows: u64, started: Instant) -> TableReport {
    let elapsed = started.elapsed();
    TableReport {
        name: name.to_owned(),
        rows,
        duration_ms: elapsed.as_millis() as u64,
        rows_per_sec: if elapsed.as_secs_f64() > 0.0 {
            rows as f64 / elapsed.as_secs_f64()
        } else {
            0.0
        },
    }
}

fn progress_bar(enabled: bool, name: &str, len: u64) -> ProgressBar {
    let bar = crate::progress::bar(enabled, len);
    if let Ok(style) = ProgressStyle::with_template(
        "{prefix:>24} [{bar:30}] {human_pos}/{human_len} rows {per_sec} eta {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(name.to_owned());
    bar
}

/// Fills foreign keys deferred for cycles and self-references.
pub(crate) async fn fill_deferred(
    client: &Client,
    fk: &DeferredFk,
    seed: u64,
) -> Result<(), SeedError> {
    let statement = sql::fill_deferred_fk(
        &fk.child,
        &fk.parent,
        &fk.child_columns,
        &fk.parent_columns,
        seed,
        (fk.null_fraction * 1000.0).round() as u32,
    );
    client.batch_execute(&statement).await.map_err(|e| {
        SeedError::db(
            format!("filling foreign key {} of {}", fk.name, fk.child_display),
            &e,
        )
    })
}

/// Recreates what `set_aside` dropped.
pub(crate) async fn restore(client: &Client, statements: &[String]) -> Result<(), SeedError> {
    for statement in statements {
        client
            .batch_execute(statement)
            .await
            .map_err(|e| SeedError::db(format!("restoring after load: {statement}"), &e))?;
    }
    Ok(())
}
