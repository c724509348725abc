//! Row generation for one table: parent picks, column values, orderings.
//!
//! Each column has its own RNG stream derived from (seed, table, column), so
//! changing one column's spec leaves every other column's data unchanged.

use std::sync::Arc;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

use super::SeedError;
use super::distribution::{IndexSampler, coprime_multiplier};
use super::generate::{self, Gen};
use super::hostile::{HOSTILE_DUPLICATES, HOSTILE_NULLS, HOSTILE_SHARE};
use super::plan::{RowCount, TablePlan};
use super::value::Value;

/// Key values of a parent table, flattened: row `i` is
/// `values[i * arity .. (i + 1) * arity]`, in the child's column types.
#[derive(Debug, Default)]
pub(crate) struct ParentKeys {
    pub arity: usize,
    pub values: Vec<Value>,
}

impl ParentKeys {
    pub(crate) fn len(&self) -> usize {
        self.values.len().checked_div(self.arity).unwrap_or(0)
    }
}

/// A seeded RNG for one stream of one table.
pub(crate) fn stream(seed: u64, table: &str, stream: &str) -> ChaCha8Rng {
    let mut hasher = Sha256::new();
    hasher.update(seed.to_le_bytes());
    hasher.update(table.as_bytes());
    hasher.update([0]);
    hasher.update(stream.as_bytes());
    ChaCha8Rng::from_seed(hasher.finalize().into())
}

struct Combo {
    groups: Vec<usize>,
    radices: Vec<u128>,
    total: u128,
    multiplier: u128,
    offset: u128,
}

struct PerParent {
    group: usize,
    parent: usize,
    remaining: u64,
    child: u64,
    started: bool,
    /// Per group: where this parent's run of distinct picks starts.
    starts: Vec<usize>,
}

/// Produces the rows of one table, in order.
pub(crate) struct RowGenerator {
    plan: Arc<TablePlan>,
    parents: Vec<Arc<ParentKeys>>,
    samplers: Vec<IndexSampler>,
    column_rngs: Vec<ChaCha8Rng>,
    pick_rng: ChaCha8Rng,
    combos: Vec<Combo>,
    combo_of: Vec<Option<usize>>,
    per_parent: Option<PerParent>,
    row: u64,
    total: u64,
    previous: Vec<Value>,
    any_hostile: bool,
}

impl RowGenerator {
    pub(crate) fn new(
        plan: Arc<TablePlan>,
        parents: Vec<Arc<ParentKeys>>,
        seed: u64,
    ) -> Result<Self, SeedError> {
        let table = plan.display.clone();
        let mut samplers = Vec::new();
        for (g, group) in plan.groups.iter().enumerate() {
            let n = parents[g].len();
            samplers.push(
                IndexSampler::new(group.dist.as_ref(), n.max(1)).map_err(|m| {
                    SeedError::schema(&table, format!("foreign key {}: {m}", group.name))
                })?,
            );
        }
        let total = match &plan.rows {
            RowCount::Fixed(n) => *n,
            RowCount::PerParent { .. } => u64::MAX,
        };
        // A NOT NULL foreign key needs parent rows.
        for (g, group) in plan.groups.iter().enumerate() {
            if parents[g].len() == 0 && !group.nullable && total > 0 {
                return Err(SeedError::schema(
                    &table,
                    format!(
                        "foreign key {} needs rows in {}, which has none",
                        group.name, group.parent_display
                    ),
                ));
            }
        }
        let per_parent = match &plan.rows {
            RowCount::PerParent { group, .. } => Some(PerParent {
                group: *group,
                parent: 0,
                remaining: 0,
                child: 0,
                started: false,
                starts: vec![0; plan.groups.len()],
            }),
            RowCount::Fixed(_) => None,
        };
        let mut combos = Vec::new();
        let mut combo_of = vec![None; plan.groups.len()];
        for set in &plan.combos {
            let driver_in = per_parent.as_ref().is_some_and(|p| set.contains(&p.group));
            let radices: Vec<u128> = set.iter().map(|g| parents[*g].len() as u128).collect();
            let total_combos = radices.iter().product::<u128>();
            if !driver_in && u128::from(total) > total_combos {
                let names: Vec<&str> = set.iter().map(|g| plan.groups[*g].name.as_str()).collect();
                return Err(SeedError::schema(
                    &table,
                    format!(
                        "a unique key over foreign keys ({}) allows only {total_combos} distinct rows but {total} were asked for",
                        names.join(", ")
                    ),
                ));
            }
            let index = combos.len();
            for g in set {
                combo_of[*g] = Some(index);
            }
            let mut rng = stream(seed, &table, "combo");
            combos.push(Combo {
                groups: set.clone(),
                radices,
                total: total_combos.max(1),
                multiplier: coprime_multiplier(total_combos.max(1)),
                offset: u128::from(rng.random::<u64>()) % total_combos.max(1),
            });
        }
        let column_rngs = plan
            .columns
            .iter()
            .map(|c| stream(seed, &table, &c.name))
            .collect();
        let any_hostile = plan.columns.iter().any(|c| c.hostile);
        Ok(RowGenerator {
            pick_rng: stream(seed, &table, "\0picks"),
            previous: Vec::new(),
            parents,
            samplers,
            column_rngs,
            combos,
            combo_of,
            per_parent,
            row: 0,
            total,
            any_hostile,
            plan,
        })
    }

    /// Rows expected, for progress bars.
    pub(crate) fn expected_rows(&self) -> u64 {
        match &self.plan.rows {
            RowCount::Fixed(n) => *n,
            RowCount::PerParent { group, counts } => {
                (self.parents[*group].len() as f64 * counts.mean()).round() as u64
            }
        }
    }

    fn pick_parents(&mut self) -> Option<Vec<Option<usize>>> {
        let groups = self.plan.groups.len();
        let mut picks: Vec<Option<usize>> = vec![None; groups];
        let mut driver = None;
        if let Some(pp) = &mut self.per_parent {
            let n = self.parents[pp.group].len();
            let RowCount::PerParent { counts, .. } = &self.plan.rows else {
                return None;
            };
            while pp.remaining == 0 {
                if pp.started {
                    pp.parent += 1;
                }
                pp.started = true;
                if pp.parent >= n {
                    return None;
                }
                pp.remaining = counts.sample(&mut self.pick_rng).round().max(0.0) as u64;
                pp.child = 0;
                for (g, start) in pp.starts.iter_mut().enumerate() {
                    let len = self.parents[g].len().max(1);
                    *start = self.pick_rng.random_range(0..len);
                }
                // Distinct picks per parent cannot exceed the other side.
                for set in &self.plan.combos {
                    if set.contains(&pp.group) {
                        for g in set.iter().filter(|g| **g != pp.group) {
                            pp.remaining = pp.remaining.min(self.parents[*g].len() as u64);
                        }
                    }
                }
            }
            pp.remaining -= 1;
            picks[pp.group] = Some(pp.parent);
            driver = Some((pp.group, pp.child, pp.starts.clone()));
            pp.child += 1;
        } else if self.row >= self.total {
            return None;
        }
        // Combinations for unique keys over foreign keys.
        for combo in &self.combos {
            match &driver {
                Some((dg, child, starts)) if combo.groups.contains(dg) => {
                    for g in combo.groups.iter().filter(|g| *g != dg) {
                        let n = self.parents[*g].len().max(1);
                        picks[*g] = Some((starts[*g] + *child as usize) % n);
                    }
                }
                _ => {
                    let mut c =
                        (u128::from(self.row) * combo.multiplier + combo.offset) % combo.total;
                    for (g, radix) in combo.groups.iter().zip(&combo.radices) {
                        let radix = (*radix).max(1);
                        picks[*g] = Some((c % radix) as usize);
                        c /= radix;
                    }
                }
            }
        }
        for (g, group) in self.plan.groups.iter().enumerate() {
            if picks[g].is_some()
                || driver.as_ref().is_some_and(|d| d.0 == g)
                || self.combo_of[g].is_some()
            {
                continue;
            }
            if self.parents[g].len() == 0 {
                continue;
            }
            let hostile_null =
                group.nullable && self.any_hostile && self.pick_rng.random_bool(HOSTILE_NULLS);
            if hostile_null
                || (group.null_fraction > 0.0 && self.pick_rng.random_bool(group.null_fraction))
            {
                continue;
            }
            picks[g] = Some(self.samplers[g].sample(&mut self.pick_rng));
        }
        Some(picks)
    }

    /// The next row, or `None` when the table is complete.
    pub(crate) fn next_row(&mut self) -> Option<Vec<Value>> {
        let picks = self.pick_parents()?;
        let row = self.row;
        let mut values = Vec::with_capacity(self.plan.columns.len());
        for (i, column) in self.plan.columns.iter().enumerate() {
            let rng = &mut self.column_rngs[i];
            let value = match &column.generator {
                Gen::ForeignKey { group, component } => match picks[*group] {
                    Some(p) => {
                        let keys = &self.parents[*group];
                        keys.values[p * keys.arity + component].clone()
                    }
                    None => Value::Null,
                },
                generator => {
                    if column.null_fraction > 0.0 && rng.random_bool(column.null_fraction) {
                        Value::Null
                    } else if column.hostile && !column.unique {
                        if column.nullable && rng.random_bool(HOSTILE_NULLS) {
                            Value::Null
                        } else if row > 0 && rng.random_bool(HOSTILE_DUPLICATES) {
                            self.previous[i].clone()
                        } else if rng.random_bool(HOSTILE_SHARE) {
                            generator
                                .hostile(rng)
                                .unwrap_or_else(|| generator.sample(rng, row))
                        } else {
                            generator.sample(rng, row)
                        }
                    } else {
                        generator.sample(rng, row)
                    }
                }
            };
            values.push(value);
        }
        for (a, b, strict) in &self.plan.orderings {
            if values[*a] != Value::Null
                && values[*b] != Value::Null
                && !generate::ordered(&values[*a], &values[*b], *strict)
                && let Some(v) = generate::after(&values[*a], &mut self.column_rngs[*b], *strict)
            {
                values[*b] = v;
            }
        }
        if self.any_hostile {
            self.previous.clone_from(&values);
        }
        self.row += 1;
        Some(values)
    }
}
