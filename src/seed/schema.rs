//! Catalog introspection: what tables exist and what a valid row looks like.

use std::collections::HashMap;

use sqlparser::ast::{
    BinaryOperator, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, UnaryOperator,
    Value as SqlValue,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;
use tokio_postgres::Client;

use super::SeedError;
use super::sql;

/// The user tables of a database.
#[derive(Debug, Clone, Default)]
pub struct Schema {
    pub tables: Vec<Table>,
}

impl Schema {
    /// The table with this oid.
    #[must_use]
    pub fn by_oid(&self, oid: u32) -> Option<&Table> {
        self.tables.iter().find(|t| t.oid == oid)
    }

    /// A table by the name a spec uses: `name` (any schema, when unambiguous,
    /// preferring `public`) or `schema.name`.
    #[must_use]
    pub fn find(&self, name: &str) -> Option<&Table> {
        if let Some(t) = self.tables.iter().find(|t| t.display_name() == name) {
            return Some(t);
        }
        if let Some((schema, table)) = name.split_once('.')
            && let Some(t) = self
                .tables
                .iter()
                .find(|t| t.schema == schema && t.name == table)
        {
            return Some(t);
        }
        let mut matches = self.tables.iter().filter(|t| t.name == name);
        let first = matches.next()?;
        matches.next().is_none().then_some(first)
    }
}

/// One table and everything that constrains its rows.
#[derive(Debug, Clone)]
pub struct Table {
    pub oid: u32,
    pub schema: String,
    pub name: String,
    pub columns: Vec<Column>,
    pub primary_key: Vec<String>,
    /// Primary key, unique constraints and unique indexes, as column lists.
    pub unique_keys: Vec<Vec<String>>,
    pub foreign_keys: Vec<ForeignKey>,
    /// `a <= b` (or `<`) between two columns, from checks and name pairs.
    pub orderings: Vec<Ordering>,
    /// Names of check constraints the generator does not understand.
    pub opaque_checks: Vec<String>,
    /// A partitioned table (rows go to its partitions).
    pub partitioned: bool,
}

impl Table {
    /// `"schema"."name"`, for SQL.
    #[must_use]
    pub fn qualified(&self) -> String {
        sql::qualified(&self.schema, &self.name)
    }

    /// `name` for tables in `public`, `schema.name` otherwise: for messages,
    /// reports and specs.
    #[must_use]
    pub fn display_name(&self) -> String {
        if self.schema == "public" {
            self.name.clone()
        } else {
            format!("{}.{}", self.schema, self.name)
        }
    }

    #[must_use]
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Whether this column alone is unique.
    #[must_use]
    pub fn is_unique_column(&self, name: &str) -> bool {
        self.unique_keys
            .iter()
            .any(|k| k.len() == 1 && k[0] == name)
    }
}

/// A column, its type and what checks say about its values.
#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    pub attnum: i16,
    /// `format_type` output, e.g. `character varying(40)`.
    pub type_name: String,
    pub ty: ColumnType,
    pub not_null: bool,
    pub default: Option<String>,
    /// `GENERATED ... AS IDENTITY` or a `nextval` default.
    pub sequence: bool,
    /// `GENERATED ALWAYS AS (...) STORED`: never written.
    pub generated: bool,
    pub bounds: Bounds,
}

/// A column type as far as generation is concerned (domains resolved).
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnType {
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    Numeric {
        precision: Option<u32>,
        scale: Option<u32>,
    },
    /// text, varchar(n), name, citext.
    Text {
        max_chars: Option<usize>,
    },
    /// char(n): blank-padded.
    Char {
        len: usize,
    },
    Bytea,
    Uuid,
    Date,
    Timestamp,
    Timestamptz,
    Time,
    Interval,
    Json,
    Jsonb,
    Inet,
    Enum(Vec<String>),
    Array(Box<ColumnType>),
    Unsupported(String),
}

/// What simple CHECK constraints allow.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bounds {
    /// Lower bound and whether it is inclusive.
    pub min: Option<(Literal, bool)>,
    pub max: Option<(Literal, bool)>,
    /// `IN (...)` / `= ANY (ARRAY[...])` lists.
    pub allowed: Option<Vec<Literal>>,
    pub min_len: Option<usize>,
    pub max_len: Option<usize>,
}

/// A literal from a check constraint.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Number(f64),
    Text(String),
}

impl Literal {
    #[must_use]
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Literal::Number(n) => Some(*n),
            Literal::Text(s) => s.trim().parse().ok(),
        }
    }

    #[must_use]
    pub fn as_text(&self) -> String {
        match self {
            Literal::Number(n) => n.to_string(),
            Literal::Text(s) => s.clone(),
        }
    }
}

/// `lesser <= greater` (strict: `<`).
#[derive(Debug, Clone, PartialEq)]
pub struct Ordering {
    pub lesser: String,
    pub greater: String,
    pub strict: bool,
}

#[derive(Debug, Clone)]
pub struct ForeignKey {
    pub name: String,
    pub columns: Vec<String>,
    pub ref_table: u32,
    pub ref_columns: Vec<String>,
}

struct TypeRow {
    name: String,
    typtype: String,
    elem: u32,
    base: u32,
    base_typmod: i32,
    category: String,
}

/// Reads tables, columns, types and constraints from the catalog.
pub async fn introspect(client: &Client) -> Result<Schema, SeedError> {
    let types: HashMap<u32, TypeRow> = client
        .query(sql::TYPES, &[])
        .await
        .map_err(|e| SeedError::db("reading pg_type", &e))?
        .iter()
        .map(|r| {
            (
                r.get(0),
                TypeRow {
                    name: r.get(1),
                    typtype: r.get(2),
                    elem: r.get(3),
                    base: r.get(4),
                    base_typmod: r.get(5),
                    category: r.get(6),
                },
            )
        })
        .collect();
    let mut labels: HashMap<u32, Vec<String>> = HashMap::new();
    for r in client
        .query(sql::ENUM_LABELS, &[])
        .await
        .map_err(|e| SeedError::db("reading pg_enum", &e))?
    {
        labels.entry(r.get(0)).or_default().push(r.get(1));
    }

    let mut tables: Vec<Table> = Vec::new();
    for r in client
        .query(sql::COLUMNS, &[])
        .await
        .map_err(|e| SeedError::db("reading table columns", &e))?
    {
        let oid: u32 = r.get(0);
        if tables.last().is_none_or(|t| t.oid != oid) {
            tables.push(Table {
                oid,
                schema: r.get(1),
                name: r.get(2),
                columns: Vec::new(),
                primary_key: Vec::new(),
                unique_keys: Vec::new(),
                foreign_keys: Vec::new(),
                orderings: Vec::new(),
                opaque_checks: Vec::new(),
                partitioned: r.get(12),
            });
        }
        let default: Option<String> = r.get(9);
        let identity: String = r.get(10);
        let generated: String = r.get(11);
        let column = Column {
            name: r.get(4),
            attnum: r.get(3),
            type_name: r.get(8),
            ty: resolve_type(&types, &labels, r.get(6), r.get(7), 0),
            not_null: r.get(5),
            sequence: !identity.is_empty()
                || default
                    .as_deref()
                    .is_some_and(|d| d.starts_with("nextval(")),
            default,
            generated: !generated.is_empty(),
            bounds: Bounds::default(),
        };
        if let Some(table) = tables.last_mut() {
            table.columns.push(column);
        }
    }

    for r in client
        .query(sql::CONSTRAINTS, &[])
        .await
        .map_err(|e| SeedError::db("reading constraints", &e))?
    {
        let oid: u32 = r.get(0);
        let ref_oid: u32 = r.get(4);
        let ref_attnums: Option<Vec<i16>> = r.get(5);
        let ref_columns = tables
            .iter()
            .find(|t| t.oid == ref_oid)
            .map(|t| names_of(t, ref_attnums.as_deref().unwrap_or_default()))
            .unwrap_or_default();
        let Some(table) = tables.iter_mut().find(|t| t.oid == oid) else {
            continue;
        };
        let name: String = r.get(1);
        let kind: String = r.get(2);
        let attnums: Option<Vec<i16>> = r.get(3);
        let columns = names_of(table, attnums.as_deref().unwrap_or_default());
        let definition: String = r.get(6);
        match kind.as_str() {
            "p" => {
                table.primary_key = columns.clone();
                table.unique_keys.push(columns);
            }
            "u" => table.unique_keys.push(columns),
            "f" => table.foreign_keys.push(ForeignKey {
                name,
                columns,
                ref_table: ref_oid,
                ref_columns,
            }),
            _ => apply_check(table, &name, &definition),
        }
    }

    for r in client
        .query(sql::UNIQUE_INDEXES, &[])
        .await
        .map_err(|e| SeedError::db("reading unique indexes", &e))?
    {
        let oid: u32 = r.get(0);
        let attnums: Vec<i16> = r.get(1);
        if let Some(table) = tables.iter_mut().find(|t| t.oid == oid) {
            let columns = names_of(table, &attnums);
            if !columns.is_empty() && !table.unique_keys.contains(&columns) {
                table.unique_keys.push(columns);
            }
        }
    }

    for table in &mut tables {
        add_conventional_orderings(table);
    }
    Ok(Schema { tables })
}

fn names_of(table: &Table, attnums: &[i16]) -> Vec<String> {
    attnums
        .iter()
        .filter_map(|n| table.columns.iter().find(|c| c.attnum == *n))
        .map(|c| c.name.clone())
        .collect()
}

fn resolve_type(
    types: &HashMap<u32, TypeRow>,
    labels: &HashMap<u32, Vec<String>>,
    oid: u32,
    typmod: i32,
    depth: u32,
) -> ColumnType {
    let Some(t) = types.get(&oid) else {
        return ColumnType::Unsupported(format!("oid {oid}"));
    };
    if depth > 8 {
        return ColumnType::Unsupported(t.name.clone());
    }
    if t.typtype == "d" {
        let typmod = if t.base_typmod >= 0 {
            t.base_typmod
        } else {
            typmod
        };
        return resolve_type(types, labels, t.base, typmod, depth + 1);
    }
    if t.typtype == "e" {
        return ColumnType::Enum(labels.get(&oid).cloned().unwrap_or_default());
    }
    if t.category == "A" && t.elem != 0 {
        return ColumnType::Array(Box::new(resolve_type(
            types,
            labels,
            t.elem,
            typmod,
            depth + 1,
        )));
    }
    // varchar and char store length + 4 in typmod; numeric stores
    // (precision << 16 | scale) + 4.
    let length = usize::try_from(typmod - 4).ok();
    match t.name.as_str() {
        "bool" => ColumnType::Bool,
        "int2" => ColumnType::Int2,
        "int4" => ColumnType::Int4,
        "int8" => ColumnType::Int8,
        "float4" => ColumnType::Float4,
        "float8" => ColumnType::Float8,
        "numeric" => {
            let packed = u32::try_from(typmod - 4).ok();
            ColumnType::Numeric {
                precision: packed.map(|p| (p >> 16) & 0xffff),
                scale: packed.map(|p| p & 0xffff),
            }
        }
        "text" | "citext" | "name" => ColumnType::Text { max_chars: None },
        "varchar" => ColumnType::Text { max_chars: length },
        "bpchar" => ColumnType::Char {
            len: length.unwrap_or(1),
        },
        "bytea" => ColumnType::Bytea,
        "uuid" => ColumnType::Uuid,
        "date" => ColumnType::Date,
        "timestamp" => ColumnType::Timestamp,
        "timestamptz" => ColumnType::Timestamptz,
        "time" => ColumnType::Time,
        "interval" => ColumnType::Interval,
        "json" => ColumnType::Json,
        "jsonb" => ColumnType::Jsonb,
        "inet" => ColumnType::Inet,
        other => ColumnType::Unsupported(other.to_owned()),
    }
}

/// `created_at <= updated_at` and similar pairs hold in real data even
/// without a check constraint saying so.
fn add_conventional_orderings(table: &mut Table) {
    const PAIRS: &[(&str, &str)] = &[
        ("created_at", "updated_at"),
        ("created_at", "deleted_at"),
        ("created_at", "completed_at"),
        ("created_at", "shipped_at"),
        ("shipped_at", "delivered_at"),
        ("created_at", "paid_at"),
        ("starts_at", "ends_at"),
        ("start_at", "end_at"),
        ("started_at", "ended_at"),
        ("started_at", "finished_at"),
        ("start_date", "end_date"),
        ("valid_from", "valid_to"),
        ("valid_from", "valid_until"),
    ];
    for (lesser, greater) in PAIRS {
        let (Some(a), Some(b)) = (table.column(lesser), table.column(greater)) else {
            continue;
        };
        if a.ty != b.ty || table.orderings.iter().any(|o| o.greater == *greater) {
            continue;
        }
        table.orderings.push(Ordering {
            lesser: (*lesser).to_owned(),
            greater: (*greater).to_owned(),
            strict: false,
        });
    }
}

/// Applies what a check constraint says to the columns it mentions; checks
/// not understood are remembered by name so failures can point at them.
fn apply_check(table: &mut Table, name: &str, definition: &str) {
    let body = definition.trim_start_matches("CHECK").trim();
    let body = body.strip_suffix("NOT VALID").unwrap_or(body).trim();
    let Ok(expr) = Parser::new(&PostgreSqlDialect {})
        .try_with_sql(body)
        .and_then(|mut p| p.parse_expr())
    else {
        table.opaque_checks.push(name.to_owned());
        return;
    };
    let mut understood = true;
    for part in conjuncts(&expr) {
        understood &= apply_conjunct(table, part);
    }
    if !understood {
        table.opaque_checks.push(name.to_owned());
    }
}

fn conjuncts(expr: &Expr) -> Vec<&Expr> {
    match expr {
        Expr::Nested(inner) => conjuncts(inner),
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            let mut parts = conjuncts(left);
            parts.extend(conjuncts(right));
            parts
        }
        other => vec![other],
    }
}

fn strip(expr: &Expr) -> &Expr {
    match expr {
        Expr::Nested(inner) | Expr::Cast { expr: inner, .. } => strip(inner),
        other => other,
    }
}

fn column_name<'t>(table: &'t Table, expr: &Expr) -> Option<&'t str> {
    let name = match strip(expr) {
        Expr::Identifier(ident) => &ident.value,
        Expr::CompoundIdentifier(parts) => &parts.last()?.value,
        _ => return None,
    };
    table
        .columns
        .iter()
        .find(|c| c.name == *name)
        .map(|c| c.name.as_str())
}

fn literal(expr: &Expr) -> Option<Literal> {
    match strip(expr) {
        Expr::Value(v) => match &v.value {
            SqlValue::Number(n, _) => n.parse().ok().map(Literal::Number),
            SqlValue::SingleQuotedString(s) => Some(Literal::Text(s.clone())),
            _ => None,
        },
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => literal(expr)?.as_f64().map(|n| Literal::Number(-n)),
        _ => None,
    }
}

/// The column inside `length(col)` / `char_length(col)`.
fn length_of<'t>(table: &'t Table, expr: &Expr) -> Option<&'t str> {
    let Expr::Function(f) = strip(expr) else {
        return None;
    };
    let fname = f.name.to_string().to_lowercase();
    if !matches!(
        fname.as_str(),
        "length" | "char_length" | "character_length"
    ) {
        return None;
    }
    let FunctionArguments::List(list) = &f.args else {
        return None;
    };
    match list.args.as_slice() {
        [FunctionArg::Unnamed(FunctionArgExpr::Expr(arg))] => column_name(table, arg),
        _ => None,
    }
}

fn list_literals(expr: &Expr) -> Option<Vec<Literal>> {
    match strip(expr) {
        Expr::Array(array) => array.elem.iter().map(literal).collect(),
        _ => None,
    }
}

fn flip(op: &BinaryOperator) -> Option<BinaryOperator> {
    Some(match op {
        BinaryOperator::Gt => BinaryOperator::Lt,
        BinaryOperator::GtEq => BinaryOperator::LtEq,
        BinaryOperator::Lt => BinaryOperator::Gt,
        BinaryOperator::LtEq => BinaryOperator::GtEq,
        BinaryOperator::Eq => BinaryOperator::Eq,
        _ => return None,
    })
}

fn bounds_mut<'t>(table: &'t mut Table, column: &str) -> Option<&'t mut Bounds> {
    table
        .columns
        .iter_mut()
        .find(|c| c.name == column)
        .map(|c| &mut c.bounds)
}

/// Returns whether the conjunct was understood.
fn apply_conjunct(table: &mut Table, expr: &Expr) -> bool {
    match expr {
        Expr::IsNotNull(inner) => column_name(table, inner).is_some(),
        Expr::InList {
            expr,
            list,
            negated: false,
        } => {
            let (Some(col), Some(values)) = (
                column_name(table, expr).map(str::to_owned),
                list.iter().map(literal).collect::<Option<Vec<_>>>(),
            ) else {
                return false;
            };
            bounds_mut(table, &col)
                .map(|b| b.allowed = Some(values))
                .is_some()
        }
        Expr::AnyOp {
            left,
            compare_op: BinaryOperator::Eq,
            right,
            ..
        } => {
            let (Some(col), Some(values)) = (
                column_name(table, left).map(str::to_owned),
                list_literals(right),
            ) else {
                return false;
            };
            bounds_mut(table, &col)
                .map(|b| b.allowed = Some(values))
                .is_some()
        }
        Expr::Between {
            expr,
            negated: false,
            low,
            high,
        } => {
            let (Some(col), Some(low), Some(high)) = (
                column_name(table, expr).map(str::to_owned),
                literal(low),
                literal(high),
            ) else {
                return false;
            };
            bounds_mut(table, &col)
                .map(|b| {
                    b.min = Some((low, true));
                    b.max = Some((high, true));
                })
                .is_some()
        }
        Expr::BinaryOp { left, op, right } => {
            // column <op> column: an ordering between two columns.
            if let (Some(a), Some(b)) = (column_name(table, left), column_name(table, right)) {
                let (lesser, greater, strict) = match op {
                    BinaryOperator::Lt => (a, b, true),
                    BinaryOperator::LtEq => (a, b, false),
                    BinaryOperator::Gt => (b, a, true),
                    BinaryOperator::GtEq => (b, a, false),
                    _ => return false,
                };
                let ordering = Ordering {
                    lesser: lesser.to_owned(),
                    greater: greater.to_owned(),
                    strict,
                };
                table.orderings.retain(|o| o.greater != ordering.greater);
                table.orderings.push(ordering);
                return true;
            }
            // Normalise to `<column or length(column)> <op> <literal>`.
            let (subject, op, lit) = match (literal(left), literal(right)) {
                (None, Some(lit)) => (left.as_ref(), op.clone(), lit),
                (Some(lit), None) => match flip(op) {
                    Some(op) => (right.as_ref(), op, lit),
                    None => return false,
                },
                _ => return false,
            };
            if let Some(col) = length_of(table, subject).map(str::to_owned) {
                let Some(n) = lit.as_f64() else { return false };
                let Some(b) = bounds_mut(table, &col) else {
                    return false;
                };
                let n = n.max(0.0) as usize;
                match op {
                    BinaryOperator::Gt => b.min_len = Some(n + 1),
                    BinaryOperator::GtEq => b.min_len = Some(n),
                    BinaryOperator::Lt => b.max_len = Some(n.saturating_sub(1)),
                    BinaryOperator::LtEq => b.max_len = Some(n),
                    _ => return false,
                }
                return true;
            }
            let Some(col) = column_name(table, subject).map(str::to_owned) else {
                return false;
            };
            let Some(b) = bounds_mut(table, &col) else {
                return false;
            };
            match op {
                BinaryOperator::Gt => b.min = Some((lit, false)),
                BinaryOperator::GtEq => b.min = Some((lit, true)),
                BinaryOperator::Lt => b.max = Some((lit, false)),
                BinaryOperator::LtEq => b.max = Some((lit, true)),
                BinaryOperator::Eq => b.allowed = Some(vec![lit]),
                _ => return false,
            }
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Table {
        let col = |name: &str, ty| Column {
            name: name.into(),
            attnum: 0,
            type_name: String::new(),
            ty,
            not_null: false,
            default: None,
            sequence: false,
            generated: false,
            bounds: Bounds::default(),
        };
        Table {
            oid: 1,
            schema: "public".into(),
            name: "t".into(),
            columns: vec![
                col("status", ColumnType::Text { max_chars: None }),
                col("qty", ColumnType::Int4),
                col(
                    "price",
                    ColumnType::Numeric {
                        precision: Some(10),
                        scale: Some(2),
                    },
                ),
                col("a", ColumnType::Date),
                col("b", ColumnType::Date),
                col("Weird Name", ColumnType::Int4),
            ],
            primary_key: vec![],
            unique_keys: vec![],
            foreign_keys: vec![],
            orderings: vec![],
            opaque_checks: vec![],
            partitioned: false,
        }
    }

    #[test]
    fn understands_the_checks_postgres_prints() {
        let mut t = table();
        apply_check(
            &mut t,
            "c1",
            "CHECK ((status = ANY (ARRAY['pending'::text, 'paid'::text, 'it''s'::text])))",
        );
        apply_check(&mut t, "c2", "CHECK (((qty > 0) AND (qty <= 100)))");
        apply_check(&mut t, "c3", "CHECK ((price >= (0)::numeric))");
        apply_check(&mut t, "c4", "CHECK ((a <= b))");
        apply_check(&mut t, "c5", "CHECK ((\"Weird Name\" >= '-10'::integer))");
        apply_check(&mut t, "c6", "CHECK ((char_length(status) > 2))");
        apply_check(&mut t, "c7", "CHECK (((qty > 1) OR (price > 0)))");
        let status = &t.column("status").unwrap().bounds;
        assert_eq!(
            status
                .allowed
                .as_ref()
                .unwrap()
                .iter()
                .map(Literal::as_text)
                .collect::<Vec<_>>(),
            ["pending", "paid", "it's"]
        );
        assert_eq!(status.min_len, Some(3));
        let qty = &t.column("qty").unwrap().bounds;
        assert_eq!(qty.min, Some((Literal::Number(0.0), false)));
        assert_eq!(qty.max, Some((Literal::Number(100.0), true)));
        assert_eq!(
            t.column("price").unwrap().bounds.min,
            Some((Literal::Number(0.0), true))
        );
        assert_eq!(
            t.column("Weird Name")
                .unwrap()
                .bounds
                .min
                .as_ref()
                .unwrap()
                .0
                .as_f64(),
            Some(-10.0)
        );
        assert_eq!(
            t.orderings,
            vec![Ordering {
                lesser: "a".into(),
                greater: "b".into(),
                strict: false
            }]
        );
        assert_eq!(t.opaque_checks, vec!["c7".to_owned()]);
    }
}
