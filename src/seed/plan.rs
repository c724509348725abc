//! Turns schema + spec into a load plan: which tables, in what order, with
//! which generator per column. All spec-against-schema validation is here.

use std::collections::{BTreeSet, HashMap};

use serde_spanned::Spanned;

use super::distribution::{NumSampler, Weighted};
use super::generate::{self, Gen, IntWidth, TEXT_GENERATORS, TextKind};
use super::schema::{Column, ColumnType, Schema, Table};
use super::spec::{ColumnSpec, Distribution, SeedSpec, TableSpec};
use super::value::Value;
use super::{SeedError, SeedOptions};

/// Postgres truncates longer identifiers, so a longer name in a spec can
/// never match what the schema holds.
const MAX_IDENTIFIER_BYTES: usize = 63;
/// Rows for tables a spec does not mention.
const DEFAULT_ROWS: u64 = 1000;
const BAD_TIMESTAMP: &str = "expected YYYY-MM-DD or an RFC 3339 timestamp";
/// Tables of migration tools: bookkeeping, never seeded.
const MIGRATION_TABLES: &[&str] = &[
    "_sqlx_migrations",
    "schema_migrations",
    "flyway_schema_history",
    "refinery_schema_history",
    "__diesel_schema_migrations",
    "goose_db_version",
    "atlas_schema_revisions",
    "seaql_migrations",
];

/// Everything to load, in foreign-key order.
#[derive(Debug)]
pub(crate) struct Plan {
    pub tables: Vec<TablePlan>,
    /// Foreign keys left NULL during load and filled once both sides exist.
    pub deferred: Vec<DeferredFk>,
}

#[derive(Debug)]
pub(crate) struct TablePlan {
    pub oid: u32,
    pub display: String,
    pub qualified: String,
    pub rows: RowCount,
    pub columns: Vec<ColumnPlan>,
    pub groups: Vec<FkGroup>,
    /// Sets of groups whose combination must be unique (join tables).
    pub combos: Vec<Vec<usize>>,
    /// (lesser, greater, strict) as indices into `columns`.
    pub orderings: Vec<(usize, usize, bool)>,
    /// Serial and identity columns whose sequences move past the data.
    pub sequences: Vec<String>,
    pub had_rows: bool,
    /// Truncated in this transaction: load with `COPY FREEZE`.
    pub freeze: bool,
}

#[derive(Debug)]
pub(crate) enum RowCount {
    Fixed(u64),
    /// `counts` children for each row of the parent of `group`.
    PerParent {
        group: usize,
        counts: NumSampler,
    },
}

#[derive(Debug)]
pub(crate) struct ColumnPlan {
    pub name: String,
    pub generator: Gen,
    pub null_fraction: f64,
    pub hostile: bool,
    /// NULLs and duplicates are allowed in hostile mode.
    pub nullable: bool,
    pub unique: bool,
}

#[derive(Debug)]
pub(crate) struct FkGroup {
    pub name: String,
    pub parent_display: String,
    pub parent_qualified: String,
    pub parent_columns: Vec<String>,
    /// `format_type` of each child column: parent keys are read back cast to
    /// them so their binary form is what the child column expects.
    pub child_types: Vec<String>,
    pub nullable: bool,
    pub null_fraction: f64,
    pub dist: Option<Distribution>,
}

#[derive(Debug)]
pub(crate) struct DeferredFk {
    pub name: String,
    pub child_display: String,
    pub child: String,
    pub parent: String,
    pub child_columns: Vec<String>,
    pub parent_columns: Vec<String>,
    pub null_fraction: f64,
}

fn spec_table<'s>(
    spec: &'s SeedSpec,
    table: &Table,
) -> Option<(&'s Spanned<String>, &'s TableSpec)> {
    spec.raw.tables.iter().find(|(name, _)| {
        let name = name.get_ref();
        *name == table.display_name() || *name == format!("{}.{}", table.schema, table.name)
    })
}

fn check_identifier(spec: &SeedSpec, name: &Spanned<String>, field: &str) -> Result<(), SeedError> {
    let bytes = name.get_ref().split('.').map(str::len).max().unwrap_or(0);
    if bytes > MAX_IDENTIFIER_BYTES {
        return Err(spec.error_at(
            name.span(),
            field,
            format!(
                "name `{}` is {bytes} bytes; postgres identifiers are at most {MAX_IDENTIFIER_BYTES} bytes",
                name.get_ref()
            ),
        ));
    }
    Ok(())
}

/// Validates the spec against the schema and builds the plan.
pub(crate) fn build(
    schema: &Schema,
    spec: &SeedSpec,
    options: &SeedOptions,
    has_rows: &HashMap<u32, bool>,
) -> Result<Plan, SeedError> {
    // Every table and column the spec names must exist.
    for (name, tspec) in &spec.raw.tables {
        let field = format!("tables.{}", name.get_ref());
        check_identifier(spec, name, &field)?;
        let Some(table) = schema.find(name.get_ref()) else {
            return Err(spec.error_at(
                name.span(),
                field,
                format!("unknown table `{}`", name.get_ref()),
            ));
        };
        for cname in tspec.columns.keys() {
            let cfield = format!("{field}.columns.{}", cname.get_ref());
            check_identifier(spec, cname, &cfield)?;
            if table.column(cname.get_ref()).is_none() {
                return Err(spec.error_at(
                    cname.span(),
                    cfield,
                    format!(
                        "unknown column `{}` in table {}",
                        cname.get_ref(),
                        table.display_name()
                    ),
                ));
            }
        }
    }

    let scale = spec.scale() * options.scale;
    let default_rows = spec
        .raw
        .default_rows
        .as_ref()
        .map_or(DEFAULT_ROWS, |r| *r.get_ref());
    let global_hostile = options.hostile || spec.raw.hostile.as_ref().is_some_and(|h| *h.get_ref());

    // Which tables to fill: listed ones always, others when empty.
    let mut chosen: Vec<&Table> = Vec::new();
    for table in &schema.tables {
        let listed = spec_table(spec, table);
        let had_rows = has_rows.get(&table.oid).copied().unwrap_or(false);
        if listed.is_none() && (had_rows || MIGRATION_TABLES.contains(&table.name.as_str())) {
            continue;
        }
        chosen.push(table);
    }
    let chosen_oids: BTreeSet<u32> = chosen.iter().map(|t| t.oid).collect();

    // Foreign keys that cannot be satisfied while loading in order are
    // deferred: self-references and one edge of every cycle.
    let mut deferred_names: BTreeSet<(u32, String)> = BTreeSet::new();
    for table in &chosen {
        for fk in &table.foreign_keys {
            if fk.ref_table == table.oid {
                if !fk_nullable(table, &fk.columns) {
                    return Err(SeedError::schema(
                        table.display_name(),
                        format!(
                            "foreign key {} references its own table through NOT NULL columns; \
                             such rows cannot be generated",
                            fk.name
                        ),
                    ));
                }
                deferred_names.insert((table.oid, fk.name.clone()));
            }
        }
    }
    let order = load_order(&chosen, &chosen_oids, &mut deferred_names)?;

    let mut plan = Plan {
        tables: Vec::new(),
        deferred: Vec::new(),
    };
    // Per planned table: its bare name and the columns the spec sets.
    let mut named: Vec<(String, BTreeSet<String>)> = Vec::new();
    for table in order {
        let listed = spec_table(spec, table);
        let tspec = listed.map(|(_, t)| t);
        let tname = listed.map_or_else(|| table.display_name(), |(n, _)| n.get_ref().clone());
        let table_hostile = tspec.and_then(|t| t.hostile.as_ref()).map(|h| *h.get_ref());
        let had_rows = has_rows.get(&table.oid).copied().unwrap_or(false);
        let rows = tspec
            .and_then(|t| t.rows.as_ref())
            .map(|r| *r.get_ref())
            .or_else(|| {
                let stats = spec.stats.as_deref()?;
                super::stats::table_rows(stats, &table.schema, &table.name)
            })
            .unwrap_or(default_rows);
        let rows = (rows as f64 * scale).round() as u64;
        plan.tables.push(plan_table(
            schema,
            spec,
            table,
            &tname,
            tspec,
            rows,
            table_hostile.unwrap_or(global_hostile),
            &deferred_names,
            had_rows,
            &mut plan.deferred,
        )?);
        let set = tspec
            .map(|t| t.columns.keys().map(|k| k.get_ref().clone()).collect())
            .unwrap_or_default();
        named.push((table.name.clone(), set));
    }
    let warnings = reference_like_columns(&mut plan, &named);
    if !warnings.is_empty() {
        crate::progress::bars().suspend(|| {
            for w in &warnings {
                eprintln!("rehearse: seed: {w}");
            }
        });
    }
    Ok(plan)
}

/// Integer columns named like a reference (`customer_id`) without a
/// declared foreign key: a later `ADD FOREIGN KEY` fails on the seeded
/// data unless their values are keys of the table they name. When a seeded
/// table matches by name (`customers`, `customer`, `categories` for
/// `category_id`) and gets generated sequential keys, the column draws from
/// that key range; otherwise a warning names the column. Columns the seeds
/// file sets are left alone.
fn reference_like_columns(plan: &mut Plan, named: &[(String, BTreeSet<String>)]) -> Vec<String> {
    // Each table's generated key range, by bare name.
    let keys: HashMap<String, (i64, i64)> = plan
        .tables
        .iter()
        .zip(named)
        .filter_map(|(t, (name, _))| {
            let RowCount::Fixed(rows) = t.rows else {
                return None;
            };
            let start = t.columns.iter().find_map(|c| match c.generator {
                Gen::Sequence { start, .. } if c.unique => Some(start),
                _ => None,
            })?;
            let rows = i64::try_from(rows).ok().filter(|r| *r > 0)?;
            Some((name.to_lowercase(), (start, start + rows - 1)))
        })
        .collect();
    let mut warnings = Vec::new();
    for (t, (table, set)) in plan.tables.iter_mut().zip(named) {
        for c in &mut t.columns {
            let lower = c.name.to_lowercase();
            let Some(stem) = lower.strip_suffix("_id").filter(|s| !s.is_empty()) else {
                continue;
            };
            if set.contains(&c.name) || c.unique {
                continue;
            }
            let Gen::Int {
                lo, hi, sampler, ..
            } = &mut c.generator
            else {
                continue;
            };
            let mut candidates = vec![stem.to_string(), format!("{stem}s"), format!("{stem}es")];
            if let Some(y) = stem.strip_suffix('y') {
                candidates.push(format!("{y}ies"));
            }
            match candidates.iter().find_map(|n| keys.get(n)) {
                Some(&(first, last)) => {
                    *lo = first;
                    *hi = last;
                    #[expect(clippy::cast_precision_loss, reason = "key ranges as sampler bounds")]
                    if let Ok(uniform) = NumSampler::new(None, first as f64, last as f64) {
                        *sampler = uniform;
                    }
                }
                None => warnings.push(format!(
                    "{table}.{} looks like a reference but has no foreign key and no seeded \
                     table named {stem} or {stem}s: its values ({lo}-{hi}) will not match any \
                     key; declare the foreign key or set min/max in the seeds file",
                    c.name
                )),
            }
        }
    }
    warnings
}

fn fk_nullable(table: &Table, columns: &[String]) -> bool {
    columns
        .iter()
        .all(|c| table.column(c).is_some_and(|c| !c.not_null))
}

/// Kahn's algorithm over the chosen tables; a cycle is broken at a nullable
/// foreign key, which is then filled after loading.
fn load_order<'t>(
    chosen: &[&'t Table],
    chosen_oids: &BTreeSet<u32>,
    deferred: &mut BTreeSet<(u32, String)>,
) -> Result<Vec<&'t Table>, SeedError> {
    let mut remaining: Vec<&Table> = chosen.to_vec();
    let mut order = Vec::new();
    let mut loaded: BTreeSet<u32> = BTreeSet::new();
    while !remaining.is_empty() {
        let ready = remaining.iter().position(|t| {
            t.foreign_keys.iter().all(|fk| {
                fk.ref_table == t.oid
                    || !chosen_oids.contains(&fk.ref_table)
                    || loaded.contains(&fk.ref_table)
                    || deferred.contains(&(t.oid, fk.name.clone()))
            })
        });
        if let Some(i) = ready {
            let t = remaining.remove(i);
            loaded.insert(t.oid);
            order.push(t);
            continue;
        }
        // Every remaining table waits for another: defer one nullable edge.
        let edge = remaining.iter().find_map(|t| {
            t.foreign_keys
                .iter()
                .find(|fk| {
                    fk.ref_table != t.oid
                        && chosen_oids.contains(&fk.ref_table)
                        && !loaded.contains(&fk.ref_table)
                        && !deferred.contains(&(t.oid, fk.name.clone()))
                        && fk_nullable(t, &fk.columns)
                })
                .map(|fk| (t.oid, fk.name.clone()))
        });
        match edge {
            Some(e) => {
                deferred.insert(e);
            }
            None => {
                let names: Vec<String> = remaining.iter().map(|t| t.display_name()).collect();
                return Err(SeedError::schema(
                    names.join(", "),
                    "foreign keys form a cycle of NOT NULL columns; no load order exists \
                     (make one of them nullable or DEFERRABLE and list the table in the spec)",
                ));
            }
        }
    }
    Ok(order)
}

#[allow(clippy::too_many_arguments)]
fn plan_table(
    schema: &Schema,
    spec: &SeedSpec,
    table: &Table,
    tname: &str,
    tspec: Option<&TableSpec>,
    rows: u64,
    table_hostile: bool,
    deferred_names: &BTreeSet<(u32, String)>,
    had_rows: bool,
    deferred: &mut Vec<DeferredFk>,
) -> Result<TablePlan, SeedError> {
    let colspec = |name: &str| -> Option<(&Spanned<String>, &Spanned<ColumnSpec>)> {
        tspec.and_then(|t| t.columns.iter().find(|(k, _)| k.get_ref() == name))
    };
    let field_of = |c: &str| format!("tables.{tname}.columns.{c}");

    // Foreign key groups: one pick of a parent row fills all their columns.
    let mut groups: Vec<FkGroup> = Vec::new();
    let mut fk_of: HashMap<String, (usize, usize)> = HashMap::new();
    for fk in &table.foreign_keys {
        let Some(parent) = schema.by_oid(fk.ref_table) else {
            continue;
        };
        if deferred_names.contains(&(table.oid, fk.name.clone())) {
            let null_fraction = fk
                .columns
                .first()
                .and_then(|c| colspec(c))
                .and_then(|(_, s)| s.get_ref().null_fraction.as_ref())
                .map_or(0.0, |f| *f.get_ref());
            deferred.push(DeferredFk {
                name: fk.name.clone(),
                child_display: table.display_name(),
                child: table.qualified(),
                parent: parent.qualified(),
                child_columns: fk.columns.clone(),
                parent_columns: fk.ref_columns.clone(),
                null_fraction,
            });
            continue;
        }
        for c in &fk.columns {
            if let Some((other, _)) = fk_of.get(c) {
                return Err(SeedError::schema(
                    table.display_name(),
                    format!(
                        "column {c} belongs to two foreign keys ({} and {}); overlapping foreign keys are not supported",
                        groups[*other].name, fk.name
                    ),
                ));
            }
        }
        let first = fk
            .columns
            .first()
            .and_then(|c| colspec(c))
            .map(|(_, s)| s.get_ref());
        let null_fraction = first
            .and_then(|s| s.null_fraction.as_ref())
            .map_or(0.0, |f| *f.get_ref());
        let nullable = fk_nullable(table, &fk.columns);
        if null_fraction > 0.0 && !nullable {
            let (name, s) = colspec(&fk.columns[0]).expect("spec present when fraction is set");
            let span = s
                .get_ref()
                .null_fraction
                .as_ref()
                .map_or(s.span(), Spanned::span);
            return Err(spec.error_at(
                span,
                format!("{}.null_fraction", field_of(name.get_ref())),
                "column is NOT NULL",
            ));
        }
        let index = groups.len();
        for (component, c) in fk.columns.iter().enumerate() {
            fk_of.insert(c.clone(), (index, component));
        }
        groups.push(FkGroup {
            name: fk.name.clone(),
            parent_display: parent.display_name(),
            parent_qualified: parent.qualified(),
            parent_columns: fk.ref_columns.clone(),
            child_types: fk
                .columns
                .iter()
                .map(|c| {
                    table
                        .column(c)
                        .map_or_else(|| "text".to_owned(), |c| c.type_name.clone())
                })
                .collect(),
            nullable,
            null_fraction,
            dist: first
                .and_then(|s| s.distribution.as_ref())
                .map(|d| d.get_ref().clone()),
        });
    }
    let deferred_cols: BTreeSet<&str> = deferred
        .iter()
        .filter(|d| d.child == table.qualified())
        .flat_map(|d| d.child_columns.iter().map(String::as_str))
        .collect();

    // Unique keys: make one column unique by construction, or enumerate
    // distinct parent combinations for keys made only of foreign keys.
    let mut unique_cols: BTreeSet<String> = BTreeSet::new();
    let mut combos: Vec<Vec<usize>> = Vec::new();
    for key in &table.unique_keys {
        if key.iter().any(|c| unique_cols.contains(c)) {
            continue;
        }
        let candidate = key
            .iter()
            .filter(|c| !fk_of.contains_key(*c) && !deferred_cols.contains(c.as_str()))
            .filter_map(|c| table.column(c))
            .filter(|c| {
                uniqueable(c) && colspec(&c.name).is_none_or(|(_, s)| s.get_ref().values.is_none())
            })
            .min_by_key(|c| if c.sequence { 0 } else { 1 });
        if let Some(c) = candidate {
            unique_cols.insert(c.name.clone());
        } else if key.iter().all(|c| fk_of.contains_key(c)) {
            let mut set: Vec<usize> = key.iter().map(|c| fk_of[c].0).collect();
            set.sort_unstable();
            set.dedup();
            combos.push(set);
        } else if let Some(distinct) = key_domain(table, key)
            && rows > distinct
        {
            // Would end in a unique violation (23505) mid-load, exit 3,
            // naming neither the seeds file nor the line that asks for it.
            let message = format!(
                "{rows} rows cannot fit unique key ({}), which holds at most {distinct} \
                 distinct values",
                key.join(", ")
            );
            let asked = tspec
                .and_then(|t| {
                    t.rows
                        .as_ref()
                        .map(|r| (r.span(), format!("tables.{tname}.rows")))
                })
                .or_else(|| {
                    spec.raw
                        .default_rows
                        .as_ref()
                        .map(|r| (r.span(), "default_rows".to_string()))
                });
            return Err(match asked {
                Some((span, field)) => spec.error_at(span, field, message),
                None => SeedError::Schema {
                    table: tname.to_string(),
                    message: format!("{message}; set a lower `rows` for it in the seeds file"),
                },
            });
        }
    }

    let mut columns: Vec<ColumnPlan> = Vec::new();
    let mut sequences = Vec::new();
    for column in &table.columns {
        if column.generated {
            continue;
        }
        let cs = colspec(&column.name);
        let field = field_of(&column.name);
        let hostile = cs
            .and_then(|(_, s)| s.get_ref().hostile.as_ref())
            .map_or(table_hostile, |h| *h.get_ref());
        let null_fraction = cs
            .and_then(|(_, s)| s.get_ref().null_fraction.as_ref())
            .map_or(Ok(0.0), |f| {
                if column.not_null && *f.get_ref() > 0.0 {
                    Err(spec.error_at(
                        f.span(),
                        format!("{field}.null_fraction"),
                        "column is NOT NULL",
                    ))
                } else {
                    Ok(*f.get_ref())
                }
            })?;
        let unique = unique_cols.contains(&column.name);
        let generator = if let Some((group, component)) = fk_of.get(&column.name) {
            Gen::ForeignKey {
                group: *group,
                component: *component,
            }
        } else if deferred_cols.contains(column.name.as_str()) {
            Gen::Null
        } else {
            match column_gen(spec, table, column, cs.map(|(_, s)| s), &field, unique)? {
                Some(g) => g,
                None => continue,
            }
        };
        if column.sequence && matches!(generator, Gen::Sequence { .. }) {
            sequences.push(column.name.clone());
        }
        // Captured statistics shape what the seeds file leaves open.
        let (generator, null_fraction) = match spec.stats.as_deref() {
            Some(stats) if cs.is_none() && !unique && !generator.is_unique() => {
                super::stats::shape(stats, table, column, rows, generator, null_fraction)
            }
            _ => (generator, null_fraction),
        };
        columns.push(ColumnPlan {
            name: column.name.clone(),
            nullable: !column.not_null,
            unique: unique || generator.is_unique(),
            generator,
            null_fraction,
            hostile,
        });
    }

    // Orderings between columns, from checks, conventions and `after`.
    let mut orderings: Vec<(usize, usize, bool)> = Vec::new();
    let index = |name: &str| columns.iter().position(|c| c.name == name);
    for o in &table.orderings {
        if let (Some(a), Some(b)) = (index(&o.lesser), index(&o.greater)) {
            orderings.push((a, b, o.strict));
        }
    }
    for column in &table.columns {
        let Some((_, s)) = colspec(&column.name) else {
            continue;
        };
        let Some(after) = &s.get_ref().after else {
            continue;
        };
        let field = format!("{}.after", field_of(&column.name));
        let Some(a) = index(after.get_ref()) else {
            return Err(spec.error_at(
                after.span(),
                field,
                format!("unknown column `{}`", after.get_ref()),
            ));
        };
        let b = index(&column.name).unwrap_or(a);
        let other = table.column(after.get_ref()).map(|c| &c.ty);
        if a == b || other != Some(&column.ty) {
            return Err(spec.error_at(
                after.span(),
                field,
                "`after` needs another column of the same type",
            ));
        }
        orderings.retain(|(_, g, _)| *g != b);
        orderings.push((a, b, false));
    }

    let rows = match tspec.and_then(|t| t.per_parent.as_ref()) {
        Some(pp) => {
            let pp_ref = pp.get_ref();
            let field = format!("tables.{tname}.per_parent.column");
            let Some((group, _)) = fk_of.get(pp_ref.column.get_ref()) else {
                return Err(spec.error_at(
                    pp_ref.column.span(),
                    field,
                    format!(
                        "`{}` is not a foreign key column of {}",
                        pp_ref.column.get_ref(),
                        table.display_name()
                    ),
                ));
            };
            let d = pp_ref.distribution.get_ref();
            let (lo, hi) = match d {
                Distribution::Uniform { min, max } => (min.unwrap_or(0.0), max.unwrap_or(10.0)),
                Distribution::Normal { mean, stddev } => (0.0, mean + 4.0 * stddev),
                Distribution::Zipf { .. } => (1.0, 100.0),
            };
            let counts = NumSampler::new(Some(d), lo.max(0.0), hi.max(0.0)).map_err(|m| {
                spec.error_at(
                    pp_ref.distribution.span(),
                    format!("tables.{tname}.per_parent.distribution"),
                    m,
                )
            })?;
            RowCount::PerParent {
                group: *group,
                counts,
            }
        }
        None => RowCount::Fixed(rows),
    };

    Ok(TablePlan {
        oid: table.oid,
        display: table.display_name(),
        qualified: table.qualified(),
        rows,
        columns,
        groups,
        combos,
        orderings,
        sequences,
        had_rows,
        freeze: false,
    })
}

/// How many distinct values a unique key can take, where that is small and
/// known: keys made only of NOT NULL booleans (NULLs never collide in a
/// unique index, so a nullable column makes it unbounded). `None` otherwise.
fn key_domain(table: &Table, key: &[String]) -> Option<u64> {
    key.iter().try_fold(1_u64, |product, name| {
        let column = table.column(name)?;
        (column.ty == ColumnType::Bool && column.not_null).then(|| product.saturating_mul(2))
    })
}

fn uniqueable(c: &Column) -> bool {
    matches!(
        c.ty,
        ColumnType::Int2
            | ColumnType::Int4
            | ColumnType::Int8
            | ColumnType::Numeric { .. }
            | ColumnType::Text { .. }
            | ColumnType::Uuid
            | ColumnType::Date
            | ColumnType::Timestamp
            | ColumnType::Timestamptz
    ) && c.bounds.allowed.is_none()
}

/// Default integer range for a column name, before checks narrow it.
fn default_int_range(name: &str, width: IntWidth) -> (i64, i64) {
    let n = name.to_lowercase();
    let has = |w: &[&str]| w.iter().any(|x| n.contains(x));
    let range = if has(&["quantity", "qty", "count", "num_"]) {
        (1, 10)
    } else if n == "age" || n.ends_with("_age") {
        (18, 90)
    } else if has(&["price", "amount", "total", "cost", "balance", "cents"]) {
        (1, 100_000)
    } else if has(&["year"]) {
        (1990, 2025)
    } else if has(&["rating", "score", "stars"]) {
        (1, 5)
    } else if has(&["position", "rank", "sort", "order"]) || width == IntWidth::I16 {
        (0, 1000)
    } else {
        (0, 100_000)
    };
    let (lo, hi) = width.range();
    (range.0.max(lo), range.1.min(hi))
}

fn default_float_range(name: &str) -> (f64, f64) {
    let n = name.to_lowercase();
    if n.contains("lat") {
        (-90.0, 90.0)
    } else if n.contains("lon") || n.contains("lng") {
        (-180.0, 180.0)
    } else if n.contains("price") || n.contains("amount") || n.contains("total") {
        (1.0, 1000.0)
    } else {
        (0.0, 1000.0)
    }
}

/// Narrows a default range by check bounds; `step` is the smallest
/// difference between two values (for strict bounds).
fn narrow(column: &Column, default: (f64, f64), limits: (f64, f64), step: f64) -> (f64, f64) {
    let min = column
        .bounds
        .min
        .as_ref()
        .and_then(|(l, inc)| l.as_f64().map(|v| if *inc { v } else { v + step }));
    let max = column
        .bounds
        .max
        .as_ref()
        .and_then(|(l, inc)| l.as_f64().map(|v| if *inc { v } else { v - step }));
    let (mut lo, mut hi) = default;
    if let Some(m) = min {
        lo = lo.max(m);
    }
    if let Some(m) = max {
        hi = hi.min(m);
    }
    if lo > hi {
        // The default window lies outside what the check allows: take a
        // window at the allowed edge instead.
        let width = default.1 - default.0;
        match (min, max) {
            (Some(a), Some(b)) => (lo, hi) = (a, b),
            (Some(a), None) => (lo, hi) = (a, a + width),
            (None, Some(b)) => (lo, hi) = (b - width, b),
            (None, None) => {}
        }
    }
    (lo.max(limits.0), hi.min(limits.1))
}

/// Applies spec `min`/`max` after checking them against the schema.
fn spec_range(
    spec: &SeedSpec,
    cs: Option<&ColumnSpec>,
    field: &str,
    allowed: (f64, f64),
    current: (f64, f64),
) -> Result<(f64, f64), SeedError> {
    let Some(cs) = cs else { return Ok(current) };
    let mut range = current;
    if let Some(min) = &cs.min {
        if *min.get_ref() < allowed.0 || *min.get_ref() > allowed.1 {
            return Err(spec.error_at(
                min.span(),
                format!("{field}.min"),
                format!(
                    "{} is outside what the column allows ({} ..= {})",
                    min.get_ref(),
                    allowed.0,
                    allowed.1
                ),
            ));
        }
        range.0 = *min.get_ref();
        range.1 = range.1.max(range.0);
    }
    if let Some(max) = &cs.max {
        if *max.get_ref() < allowed.0 || *max.get_ref() > allowed.1 {
            return Err(spec.error_at(
                max.span(),
                format!("{field}.max"),
                format!(
                    "{} is outside what the column allows ({} ..= {})",
                    max.get_ref(),
                    allowed.0,
                    allowed.1
                ),
            ));
        }
        range.1 = *max.get_ref();
        range.0 = range.0.min(range.1);
    }
    Ok(range)
}

fn sampler(
    spec: &SeedSpec,
    cs: Option<&ColumnSpec>,
    field: &str,
    lo: f64,
    hi: f64,
) -> Result<NumSampler, SeedError> {
    let dist = cs.and_then(|c| c.distribution.as_ref());
    NumSampler::new(dist.map(Spanned::get_ref), lo, hi).map_err(|m| {
        spec.error_at(
            dist.map_or(0..0, Spanned::span),
            format!("{field}.distribution"),
            m,
        )
    })
}

/// The generator for one non-key column; `None` leaves it to its default.
fn column_gen(
    spec: &SeedSpec,
    table: &Table,
    column: &Column,
    cs: Option<&Spanned<ColumnSpec>>,
    field: &str,
    unique: bool,
) -> Result<Option<Gen>, SeedError> {
    let span = cs.map_or(0..0, Spanned::span);
    let cs = cs.map(Spanned::get_ref);
    let spec_generator = cs.and_then(|c| c.generator.as_ref());
    let named = spec_generator.map(|g| g.get_ref().as_str());

    // Explicit values, CHECK lists and enums: a weighted choice.
    if let Some(values) = cs.and_then(|c| c.values.as_ref()) {
        if unique {
            return Err(spec.error_at(
                values.span(),
                format!("{field}.values"),
                "column is unique; a fixed list of values would repeat",
            ));
        }
        let pairs = values.get_ref().weighted();
        let mut converted = Vec::new();
        for (text, _) in &pairs {
            if let ColumnType::Enum(labels) = &column.ty
                && !labels.contains(text)
            {
                return Err(spec.error_at(
                    values.span(),
                    format!("{field}.values"),
                    format!(
                        "`{text}` is not a label of the column's enum ({})",
                        labels.join(", ")
                    ),
                ));
            }
            if let Some(allowed) = &column.bounds.allowed
                && !allowed.iter().any(|a| {
                    a.as_text() == *text
                        || a.as_f64()
                            .is_some_and(|f| text.parse::<f64>().ok() == Some(f))
                })
            {
                return Err(spec.error_at(
                    values.span(),
                    format!("{field}.values"),
                    format!("`{text}` is not allowed by the column's check constraint"),
                ));
            }
            let value = literal_value(&column.ty, text).ok_or_else(|| {
                spec.error_at(
                    values.span(),
                    format!("{field}.values"),
                    format!("`{text}` is not a valid {}", column.type_name),
                )
            })?;
            converted.push(value);
        }
        let weights = Weighted::new(&pairs.iter().map(|(_, w)| *w).collect::<Vec<_>>())
            .map_err(|m| spec.error_at(values.span(), format!("{field}.values"), m))?;
        return Ok(Some(Gen::Choice {
            values: converted,
            weights,
        }));
    }
    if named.is_none()
        && let Some(allowed) = &column.bounds.allowed
    {
        let values: Option<Vec<Value>> = allowed
            .iter()
            .map(|l| literal_value(&column.ty, &l.as_text()))
            .collect();
        if let Some(values) = values.filter(|v| !v.is_empty()) {
            let weights = Weighted::new(&vec![1.0; values.len()])
                .map_err(|m| SeedError::schema(table.display_name(), m))?;
            return Ok(Some(Gen::Choice { values, weights }));
        }
    }

    if let Some(g) = spec_generator {
        let name = g.get_ref().as_str();
        let fits = match name {
            "null" => !column.not_null,
            "uuid" => matches!(column.ty, ColumnType::Uuid),
            "sequence" => matches!(
                column.ty,
                ColumnType::Int2 | ColumnType::Int4 | ColumnType::Int8
            ),
            _ => match TEXT_GENERATORS.iter().find(|(n, _)| *n == name) {
                Some(_) => matches!(column.ty, ColumnType::Text { .. } | ColumnType::Char { .. }),
                None => {
                    let known: Vec<&str> = TEXT_GENERATORS
                        .iter()
                        .map(|(n, _)| *n)
                        .chain(["uuid", "sequence", "null"])
                        .collect();
                    return Err(spec.error_at(
                        g.span(),
                        format!("{field}.generator"),
                        format!("unknown generator `{name}`; known: {}", known.join(", ")),
                    ));
                }
            },
        };
        if !fits {
            return Err(spec.error_at(
                g.span(),
                format!("{field}.generator"),
                format!(
                    "generator `{name}` does not fit column type {}{}",
                    column.type_name,
                    if column.not_null { " not null" } else { "" }
                ),
            ));
        }
        match name {
            "null" => return Ok(Some(Gen::Null)),
            "uuid" => return Ok(Some(Gen::Uuid)),
            "sequence" => {
                let width = int_width(&column.ty);
                return Ok(Some(Gen::Sequence { width, start: 1 }));
            }
            _ => {}
        }
    }

    let generator = match &column.ty {
        ColumnType::Int2 | ColumnType::Int4 | ColumnType::Int8 => {
            let width = int_width(&column.ty);
            let limits = width.range();
            let limits = (limits.0 as f64, limits.1 as f64);
            let allowed = narrow(column, limits, limits, 1.0);
            if unique || column.sequence {
                spec_range(spec, cs, field, allowed, allowed)?;
                let start = column
                    .bounds
                    .min
                    .as_ref()
                    .and_then(|(l, inc)| l.as_f64().map(|v| if *inc { v } else { v + 1.0 }));
                let start = cs
                    .and_then(|c| c.min.as_ref())
                    .map(|m| *m.get_ref())
                    .or(start)
                    .unwrap_or(1.0);
                Gen::Sequence {
                    width,
                    start: start.ceil() as i64,
                }
            } else {
                let d = default_int_range(&column.name, width);
                let (lo, hi) = narrow(column, (d.0 as f64, d.1 as f64), limits, 1.0);
                let (lo, hi) = spec_range(spec, cs, field, allowed, (lo, hi))?;
                Gen::Int {
                    width,
                    lo: lo.ceil() as i64,
                    hi: hi.floor() as i64,
                    sampler: sampler(spec, cs, field, lo, hi)?,
                }
            }
        }
        ColumnType::Float4 | ColumnType::Float8 => {
            let limits = (-1e30, 1e30);
            let allowed = narrow(column, limits, limits, 1e-6);
            let (lo, hi) = narrow(column, default_float_range(&column.name), limits, 1e-6);
            let (lo, hi) = spec_range(spec, cs, field, allowed, (lo, hi))?;
            Gen::Float {
                double: column.ty == ColumnType::Float8,
                lo,
                hi,
                sampler: sampler(spec, cs, field, lo, hi)?,
            }
        }
        ColumnType::Numeric { precision, scale } => {
            let s = scale.unwrap_or(2).min(30) as u16;
            let max_abs = precision.map_or(1e15, |p| {
                10f64.powi(p as i32 - i32::from(s)) - 10f64.powi(-i32::from(s))
            });
            let limits = (-max_abs, max_abs);
            let step = 10f64.powi(-i32::from(s));
            let allowed = narrow(column, limits, limits, step);
            let (lo, hi) = narrow(column, default_float_range(&column.name), limits, step);
            let (lo, hi) = spec_range(spec, cs, field, allowed, (lo, hi))?;
            let factor = 10f64.powi(i32::from(s));
            Gen::Numeric {
                scale: s,
                lo: (lo * factor).ceil() as i128,
                hi: (hi * factor).floor() as i128,
                sampler: sampler(spec, cs, field, lo, hi)?,
                unique,
            }
        }
        ColumnType::Bool => {
            let n = column.name.to_lowercase();
            let p_true = if ["active", "enabled", "verified", "visible", "published"]
                .iter()
                .any(|w| n.contains(w))
            {
                0.8
            } else if ["deleted", "archived", "banned", "blocked", "suspended"]
                .iter()
                .any(|w| n.contains(w))
            {
                0.05
            } else {
                0.5
            };
            Gen::Bool { p_true }
        }
        ColumnType::Text { .. } | ColumnType::Char { .. } => {
            let pad_to = match column.ty {
                ColumnType::Char { len } => Some(len),
                _ => None,
            };
            text_gen(spec, table, column, cs, field, unique, named)?.with_pad(pad_to)
        }
        ColumnType::Uuid => Gen::Uuid,
        ColumnType::Date | ColumnType::Timestamp | ColumnType::Timestamptz => {
            let (mut from, mut to) = generate::default_window();
            if let Some((l, _)) = &column.bounds.min
                && let Some(t) = generate::parse_timestamp(&l.as_text())
            {
                from = from.max(t);
                to = to.max(from);
            }
            if let Some((l, _)) = &column.bounds.max
                && let Some(t) = generate::parse_timestamp(&l.as_text())
            {
                to = to.min(t);
                from = from.min(to);
            }
            if let Some(k) = cs.and_then(|c| c.from.as_ref()) {
                from = generate::parse_timestamp(k.get_ref()).ok_or_else(|| {
                    spec.error_at(k.span(), format!("{field}.from"), BAD_TIMESTAMP)
                })?;
            }
            if let Some(k) = cs.and_then(|c| c.to.as_ref()) {
                to = generate::parse_timestamp(k.get_ref())
                    .ok_or_else(|| spec.error_at(k.span(), format!("{field}.to"), BAD_TIMESTAMP))?;
            }
            if from > to {
                let k = cs
                    .and_then(|c| c.from.as_ref())
                    .map_or(span.clone(), Spanned::span);
                return Err(spec.error_at(k, format!("{field}.from"), "from is after to"));
            }
            if column.ty == ColumnType::Date {
                Gen::Date {
                    from: generate::micros_to_days(from),
                    to: generate::micros_to_days(to),
                    unique,
                }
            } else {
                Gen::Timestamp { from, to, unique }
            }
        }
        ColumnType::Time => Gen::Time,
        ColumnType::Interval => Gen::Interval,
        ColumnType::Json | ColumnType::Jsonb => Gen::Json,
        ColumnType::Bytea => Gen::Bytea,
        ColumnType::Inet => Gen::Inet,
        ColumnType::Enum(labels) => {
            if labels.is_empty() {
                return Err(SeedError::schema(
                    table.display_name(),
                    format!("column {} has an enum type without labels", column.name),
                ));
            }
            let values = labels.iter().map(|l| Value::Text(l.clone())).collect();
            Gen::Choice {
                values,
                weights: Weighted::new(&vec![1.0; labels.len()])
                    .map_err(|m| SeedError::schema(table.display_name(), m))?,
            }
        }
        ColumnType::Array(inner) => {
            let element = Column {
                ty: (**inner).clone(),
                bounds: Default::default(),
                not_null: true,
                sequence: false,
                ..column.clone()
            };
            match column_gen(spec, table, &element, None, field, false)? {
                Some(inner) => Gen::Array {
                    inner: Box::new(inner),
                    max_len: 4,
                },
                None => Gen::Null,
            }
        }
        ColumnType::Unsupported(name) => {
            if column.default.is_some() {
                return Ok(None);
            }
            if !column.not_null {
                Gen::Null
            } else {
                return Err(SeedError::schema(
                    table.display_name(),
                    format!(
                        "column {} has type {name}, which the generator does not support, and is NOT NULL without a default",
                        column.name
                    ),
                ));
            }
        }
    };
    if gen_is_null_for_not_null(&generator, column) {
        return Err(SeedError::schema(
            table.display_name(),
            format!("column {} cannot be generated", column.name),
        ));
    }
    Ok(Some(generator))
}

fn gen_is_null_for_not_null(generator: &Gen, column: &Column) -> bool {
    matches!(generator, Gen::Null) && column.not_null
}

impl Gen {
    fn with_pad(self, pad: Option<usize>) -> Gen {
        match self {
            Gen::Text {
                kind,
                min_chars,
                max_chars,
                target,
                unique,
                ..
            } => Gen::Text {
                kind,
                min_chars,
                max_chars,
                target,
                unique,
                pad_to: pad,
            },
            other => other,
        }
    }
}

fn text_gen(
    spec: &SeedSpec,
    table: &Table,
    column: &Column,
    cs: Option<&ColumnSpec>,
    field: &str,
    unique: bool,
    named: Option<&str>,
) -> Result<Gen, SeedError> {
    let type_max = match column.ty {
        ColumnType::Text { max_chars } => max_chars,
        ColumnType::Char { len } => Some(len),
        _ => None,
    };
    let max_chars = match (type_max, column.bounds.max_len) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let min_chars = column.bounds.min_len.unwrap_or(0);
    let kind = named
        .and_then(|n| {
            TEXT_GENERATORS
                .iter()
                .find(|(k, _)| *k == n)
                .map(|(_, k)| *k)
        })
        .unwrap_or_else(|| generate::text_kind_for(&table.name, &column.name, max_chars));
    let target = match cs.and_then(|c| c.length.as_ref()) {
        Some(len) => {
            let l = len.get_ref();
            if max_chars.is_some_and(|m| l.max > m) || l.min < min_chars {
                return Err(spec.error_at(
                    len.span(),
                    format!("{field}.length"),
                    format!(
                        "{}..={} does not fit the column ({} ..= {} characters)",
                        l.min,
                        l.max,
                        min_chars,
                        max_chars.map_or("unlimited".to_owned(), |m| m.to_string())
                    ),
                ));
            }
            Some((l.min, l.max))
        }
        None => None,
    };
    if unique && max_chars.is_some_and(|m| m < 8) {
        return Err(SeedError::schema(
            table.display_name(),
            format!(
                "column {} is unique but holds at most {} characters; give it values in the spec",
                column.name,
                max_chars.unwrap_or(0)
            ),
        ));
    }
    let kind = if unique && kind == TextKind::CountryCode {
        TextKind::Code
    } else {
        kind
    };
    Ok(Gen::Text {
        kind,
        min_chars,
        max_chars,
        target,
        unique,
        pad_to: None,
    })
}

fn int_width(ty: &ColumnType) -> IntWidth {
    match ty {
        ColumnType::Int2 => IntWidth::I16,
        ColumnType::Int4 => IntWidth::I32,
        _ => IntWidth::I64,
    }
}

/// Converts a literal from a spec or check into a value of the column type.
fn literal_value(ty: &ColumnType, text: &str) -> Option<Value> {
    Some(match ty {
        ColumnType::Text { .. } | ColumnType::Char { .. } | ColumnType::Enum(_) => {
            Value::Text(text.to_owned())
        }
        ColumnType::Int2 => Value::I16(text.parse().ok()?),
        ColumnType::Int4 => Value::I32(text.parse().ok()?),
        ColumnType::Int8 => Value::I64(text.parse().ok()?),
        ColumnType::Float4 => Value::F32(text.parse().ok()?),
        ColumnType::Float8 => Value::F64(text.parse().ok()?),
        ColumnType::Bool => Value::Bool(text.parse().ok()?),
        ColumnType::Numeric { scale, .. } => {
            let s = scale.unwrap_or(2).min(30) as u16;
            let v: f64 = text.parse().ok()?;
            Value::Numeric {
                mantissa: (v * 10f64.powi(i32::from(s))).round() as i128,
                scale: s,
            }
        }
        ColumnType::Uuid => Value::Uuid(*uuid::Uuid::parse_str(text).ok()?.as_bytes()),
        ColumnType::Date => Value::Date(generate::micros_to_days(generate::parse_timestamp(text)?)),
        ColumnType::Timestamp | ColumnType::Timestamptz => {
            Value::Timestamp(generate::parse_timestamp(text)?)
        }
        ColumnType::Json | ColumnType::Jsonb => Value::Json(text.to_owned()),
        _ => return None,
    })
}

#[cfg(test)]
mod reference_tests {
    /// `orders.customer_id` has no foreign key, yet a later `ADD FOREIGN
    /// KEY` must hold on the seeded data: its values are keys of
    /// `customers`. `orders.widget_id` names no table: left as it was.
    #[tokio::test]
    async fn reference_like_columns_draw_from_the_named_tables_keys() {
        let Some(db) = crate::testing::fresh_database().await else {
            return;
        };
        let client = db.connect().await;
        client
            .batch_execute(
                "CREATE TABLE customers (id serial PRIMARY KEY, name text); \
                 CREATE TABLE categories (id bigserial PRIMARY KEY, name text); \
                 CREATE TABLE orders (id serial PRIMARY KEY, customer_id int NOT NULL, \
                                      category_id bigint, widget_id int);",
            )
            .await
            .unwrap();
        let options = crate::seed::SeedOptions {
            progress: false,
            ..crate::seed::SeedOptions::default()
        };
        crate::seed::seed_database(db.conn(), None, &options)
            .await
            .unwrap();
        client
            .batch_execute(
                "ALTER TABLE orders ADD FOREIGN KEY (customer_id) REFERENCES customers; \
                 ALTER TABLE orders ADD FOREIGN KEY (category_id) REFERENCES categories;",
            )
            .await
            .expect("seeded references hold");
        let outside: i64 = client
            .query_one(
                "SELECT count(*) FROM orders WHERE widget_id > (SELECT max(id) FROM customers)",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert!(outside > 0, "widget_id kept its generic range");
    }
}
