//! Where an imported query's parameters go, read from its syntax tree: for
//! each `$n`, the column it is compared with (`col = $1`, `t.col IN ($1,
//! $2)`, `col < $1`, `col = ANY($1)` in `WHERE`, `ON`, `HAVING`), the
//! column it is written to (`INSERT INTO t (a, b) VALUES ($1, $2)`,
//! `UPDATE t SET a = $1`, `ON CONFLICT ... DO UPDATE SET`), or a `LIMIT` /
//! `OFFSET` count. Aliases resolve to the table they name, schema-qualified
//! when the query writes it so.
//!
//! Pure: no catalog. An unqualified column with several tables in scope is
//! left unresolved rather than guessed, and names of CTEs and subqueries
//! are not tables. Anything unrecognised leaves the parameter at
//! [`ParamUse::Other`], for a generator by its declared type.

use sqlparser::ast::{
    AssignmentTarget, BinaryOperator, Delete, Expr, FromTable, FunctionArg, FunctionArgExpr,
    FunctionArguments, Ident, Insert, JoinConstraint, JoinOperator, LimitClause, ObjectName,
    OnConflictAction, OnInsert, Query, Select, SelectItem, SetExpr, Statement, TableFactor,
    TableObject, TableWithJoins, Update, UpdateTableFromKind, Value,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

use super::ParamUse;

/// What the statement does with one parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Site {
    /// `table.column` (or `schema.table.column`) for lookups and writes.
    pub column: Option<String>,
    pub usage: ParamUse,
    /// Compared with `ANY(...)` / `ALL(...)`: the parameter is an array.
    pub array: bool,
}

impl Site {
    const OTHER: Site = Site {
        column: None,
        usage: ParamUse::Other,
        array: false,
    };

    /// A parameter used several ways takes its strongest use: a lookup
    /// (real values find rows) over a write over a count.
    fn rank(&self) -> u8 {
        match self.usage {
            ParamUse::Lookup => 3,
            ParamUse::Write => 2,
            ParamUse::Limit => 1,
            ParamUse::Other => 0,
        }
    }
}

/// The use of `$1..$count` in `sql` (unparseable SQL: all
/// [`ParamUse::Other`]).
pub(crate) fn sites(sql: &str, count: usize) -> Vec<Site> {
    let mut walker = Walker {
        sites: vec![Site::OTHER; count],
        scopes: Vec::new(),
        ctes: Vec::new(),
    };
    if let Ok(statements) = Parser::parse_sql(&PostgreSqlDialect {}, sql) {
        for statement in &statements {
            walker.statement(statement);
        }
    }
    walker.sites
}

/// A relation in a `FROM` list: what qualifies its columns, and the table
/// it is (`None` for subqueries, CTEs and table functions).
struct Rel {
    qualifier: String,
    table: Option<String>,
}

struct Walker {
    sites: Vec<Site>,
    /// Innermost last: a subquery sees its own relations, then the outer ones.
    scopes: Vec<Vec<Rel>>,
    /// CTE names visible here.
    ctes: Vec<String>,
}

impl Walker {
    fn record(&mut self, n: usize, site: Site) {
        if let Some(slot) = self.sites.get_mut(n.wrapping_sub(1))
            && site.rank() > slot.rank()
        {
            *slot = site;
        }
    }

    fn statement(&mut self, statement: &Statement) {
        match statement {
            Statement::Query(q) => self.query(q),
            Statement::Insert(i) => self.insert(i),
            Statement::Update(u) => self.update(u),
            Statement::Delete(d) => self.delete(d),
            _ => {}
        }
    }

    fn query(&mut self, q: &Query) {
        let visible = self.ctes.len();
        if let Some(with) = &q.with {
            for cte in &with.cte_tables {
                self.query(&cte.query);
                self.ctes.push(normal(&cte.alias.name));
            }
        }
        self.set_expr(&q.body);
        let (limit, offset) = match &q.limit_clause {
            Some(LimitClause::LimitOffset { limit, offset, .. }) => {
                (limit.as_ref(), offset.as_ref().map(|o| &o.value))
            }
            Some(LimitClause::OffsetCommaLimit { offset, limit }) => (Some(limit), Some(offset)),
            None => (None, None),
        };
        for count in [limit, offset].into_iter().flatten() {
            if let Some(n) = placeholder(count) {
                self.record(
                    n,
                    Site {
                        column: None,
                        usage: ParamUse::Limit,
                        array: false,
                    },
                );
            }
        }
        self.ctes.truncate(visible);
    }

    fn set_expr(&mut self, body: &SetExpr) {
        match body {
            SetExpr::Select(s) => self.select(s),
            SetExpr::Query(q) => self.query(q),
            SetExpr::SetOperation { left, right, .. } => {
                self.set_expr(left);
                self.set_expr(right);
            }
            SetExpr::Values(values) => {
                for row in &values.rows {
                    for e in &row.content {
                        self.expr(e);
                    }
                }
            }
            SetExpr::Insert(s) | SetExpr::Update(s) | SetExpr::Delete(s) => self.statement(s),
            _ => {}
        }
    }

    fn select(&mut self, s: &Select) {
        let mut scope = Vec::new();
        for from in &s.from {
            self.relations(from, &mut scope);
        }
        self.scopes.push(scope);
        for from in &s.from {
            self.join_conditions(from);
        }
        for e in [&s.selection, &s.having].into_iter().flatten() {
            self.expr(e);
        }
        for item in &s.projection {
            if let SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } = item {
                self.expr(e);
            }
        }
        self.scopes.pop();
    }

    /// Adds the relations of `from` to `scope`; subqueries in it are walked
    /// with the enclosing scopes only (as Postgres resolves them, LATERAL
    /// aside).
    fn relations(&mut self, from: &TableWithJoins, scope: &mut Vec<Rel>) {
        self.relation(&from.relation, scope);
        for join in &from.joins {
            self.relation(&join.relation, scope);
        }
    }

    fn relation(&mut self, factor: &TableFactor, scope: &mut Vec<Rel>) {
        match factor {
            TableFactor::Table { name, alias, .. } => {
                let name = parts(name);
                let table = match name.as_slice() {
                    [one] if self.ctes.contains(one) => None,
                    _ => Some(name.join(".")),
                };
                let qualifier = match alias {
                    Some(alias) => normal(&alias.name),
                    None => name.last().cloned().unwrap_or_default(),
                };
                scope.push(Rel { qualifier, table });
            }
            TableFactor::Derived {
                subquery, alias, ..
            } => {
                self.query(subquery);
                scope.push(Rel {
                    qualifier: alias.as_ref().map(|a| normal(&a.name)).unwrap_or_default(),
                    table: None,
                });
            }
            TableFactor::NestedJoin {
                table_with_joins, ..
            } => self.relations(table_with_joins, scope),
            // Table functions (`unnest($1)`), VALUES lists and the like:
            // columns, but no table to sample.
            _ => scope.push(Rel {
                qualifier: String::new(),
                table: None,
            }),
        }
    }

    fn join_conditions(&mut self, from: &TableWithJoins) {
        if let TableFactor::NestedJoin {
            table_with_joins, ..
        } = &from.relation
        {
            self.join_conditions(table_with_joins);
        }
        for join in &from.joins {
            if let Some(JoinConstraint::On(e)) = constraint(&join.join_operator) {
                self.expr(e);
            }
            if let TableFactor::NestedJoin {
                table_with_joins, ..
            } = &join.relation
            {
                self.join_conditions(table_with_joins);
            }
        }
    }

    fn insert(&mut self, insert: &Insert) {
        let TableObject::TableName(name) = &insert.table else {
            return;
        };
        let name = parts(name);
        let table = name.join(".");
        let columns: Vec<String> = insert
            .columns
            .iter()
            .filter_map(|c| parts(c).pop())
            .collect();
        if let Some(source) = &insert.source {
            // Values by position: `VALUES ($1, $2), ($3, $4)` or `SELECT $1, $2`.
            let rows: Vec<Vec<&Expr>> = match &*source.body {
                SetExpr::Values(values) => values
                    .rows
                    .iter()
                    .map(|row| row.content.iter().collect())
                    .collect(),
                SetExpr::Select(s) => vec![
                    s.projection
                        .iter()
                        .filter_map(|item| match item {
                            SelectItem::UnnamedExpr(e)
                            | SelectItem::ExprWithAlias { expr: e, .. } => Some(e),
                            _ => None,
                        })
                        .collect(),
                ],
                _ => Vec::new(),
            };
            for row in rows {
                for (value, column) in row.into_iter().zip(&columns) {
                    self.write(&table, column, value);
                }
            }
            self.query(source);
        }
        if let Some(OnInsert::OnConflict(conflict)) = &insert.on
            && let OnConflictAction::DoUpdate(update) = &conflict.action
        {
            let qualifier = match &insert.table_alias {
                Some(alias) => normal(&alias.alias),
                None => name.last().cloned().unwrap_or_default(),
            };
            self.scopes.push(vec![
                Rel {
                    qualifier,
                    table: Some(table.clone()),
                },
                Rel {
                    qualifier: "excluded".into(),
                    table: None,
                },
            ]);
            self.assignments(&update.assignments, Some(&table));
            if let Some(e) = &update.selection {
                self.expr(e);
            }
            self.scopes.pop();
        }
    }

    fn update(&mut self, update: &Update) {
        let mut scope = Vec::new();
        self.relations(&update.table, &mut scope);
        let table = scope.first().and_then(|r| r.table.clone());
        let from = match &update.from {
            Some(UpdateTableFromKind::BeforeSet(from) | UpdateTableFromKind::AfterSet(from)) => {
                from.as_slice()
            }
            None => &[],
        };
        for f in from {
            self.relations(f, &mut scope);
        }
        self.scopes.push(scope);
        self.assignments(&update.assignments, table.as_deref());
        for f in from {
            self.join_conditions(f);
        }
        if let Some(e) = &update.selection {
            self.expr(e);
        }
        self.scopes.pop();
    }

    fn delete(&mut self, delete: &Delete) {
        let (FromTable::WithFromKeyword(tables) | FromTable::WithoutKeyword(tables)) = &delete.from;
        let using = delete.using.as_deref().unwrap_or_default();
        let mut scope = Vec::new();
        for f in tables.iter().chain(using) {
            self.relations(f, &mut scope);
        }
        self.scopes.push(scope);
        for f in tables.iter().chain(using) {
            self.join_conditions(f);
        }
        if let Some(e) = &delete.selection {
            self.expr(e);
        }
        self.scopes.pop();
    }

    /// `SET a = $1` and `SET (a, b) = ($1, $2)` write to `table`.
    fn assignments(&mut self, assignments: &[sqlparser::ast::Assignment], table: Option<&str>) {
        for a in assignments {
            if let Some(table) = table {
                match (&a.target, strip(&a.value)) {
                    (AssignmentTarget::ColumnName(c), value) => {
                        if let Some(column) = parts(c).pop() {
                            self.write(table, &column, value);
                        }
                    }
                    (AssignmentTarget::Tuple(cs), Expr::Tuple(values)) => {
                        for (c, value) in cs.iter().zip(values) {
                            if let Some(column) = parts(c).pop() {
                                self.write(table, &column, value);
                            }
                        }
                    }
                    _ => {}
                }
            }
            self.expr(&a.value);
        }
    }

    fn write(&mut self, table: &str, column: &str, value: &Expr) {
        if let Some(n) = placeholder(value) {
            self.record(
                n,
                Site {
                    column: Some(format!("{table}.{column}")),
                    usage: ParamUse::Write,
                    array: false,
                },
            );
        }
    }

    /// Walks the conditions of `e`, recording comparisons of a column with
    /// a parameter.
    fn expr(&mut self, e: &Expr) {
        match e {
            Expr::BinaryOp { left, op, right } => {
                if is_comparison(op) {
                    self.compare(left, right, false);
                    self.compare(right, left, false);
                }
                self.expr(left);
                self.expr(right);
            }
            Expr::AnyOp { left, right, .. } | Expr::AllOp { left, right, .. } => {
                self.compare(left, right, true);
                self.expr(left);
                self.expr(right);
            }
            Expr::IsDistinctFrom(a, b) | Expr::IsNotDistinctFrom(a, b) => {
                self.compare(a, b, false);
                self.compare(b, a, false);
            }
            Expr::InList { expr, list, .. } => {
                for item in list {
                    self.compare(expr, item, false);
                    self.expr(item);
                }
                self.expr(expr);
            }
            Expr::Between {
                expr, low, high, ..
            } => {
                self.compare(expr, low, false);
                self.compare(expr, high, false);
                self.expr(expr);
            }
            Expr::Like {
                expr,
                pattern,
                any: false,
                ..
            }
            | Expr::ILike {
                expr,
                pattern,
                any: false,
                ..
            } => self.compare(expr, pattern, false),
            Expr::InSubquery { expr, subquery, .. } => {
                self.expr(expr);
                self.query(subquery);
            }
            Expr::Exists { subquery, .. } | Expr::Subquery(subquery) => self.query(subquery),
            Expr::Nested(e)
            | Expr::UnaryOp { expr: e, .. }
            | Expr::Cast { expr: e, .. }
            | Expr::IsNull(e)
            | Expr::IsNotNull(e)
            | Expr::IsTrue(e)
            | Expr::IsFalse(e) => self.expr(e),
            Expr::Case {
                operand,
                conditions,
                else_result,
                ..
            } => {
                for e in operand.iter().chain(else_result) {
                    self.expr(e);
                }
                for when in conditions {
                    self.expr(&when.condition);
                    self.expr(&when.result);
                }
            }
            Expr::Function(f) => match &f.args {
                FunctionArguments::List(list) => {
                    for arg in &list.args {
                        if let FunctionArg::Unnamed(FunctionArgExpr::Expr(e))
                        | FunctionArg::Named {
                            arg: FunctionArgExpr::Expr(e),
                            ..
                        } = arg
                        {
                            self.expr(e);
                        }
                    }
                }
                FunctionArguments::Subquery(q) => self.query(q),
                FunctionArguments::None => {}
            },
            _ => {}
        }
    }

    /// `column <op> $n` (and row comparisons, pairwise).
    fn compare(&mut self, column: &Expr, value: &Expr, array: bool) {
        if let (Expr::Tuple(columns), Expr::Tuple(values)) = (strip(column), strip(value)) {
            for (c, v) in columns.iter().zip(values) {
                self.compare(c, v, array);
            }
            return;
        }
        if let Some(n) = placeholder(value)
            && let Some(column) = self.column(column)
        {
            self.record(
                n,
                Site {
                    column: Some(column),
                    usage: ParamUse::Lookup,
                    array,
                },
            );
        }
    }

    /// The `table.column` a column reference names, through aliases;
    /// `None` when it is not a plain column of a table in scope.
    fn column(&self, e: &Expr) -> Option<String> {
        let parts: Vec<String> = match strip(e) {
            Expr::Identifier(i) => vec![normal(i)],
            Expr::CompoundIdentifier(is) => is.iter().map(normal).collect(),
            _ => return None,
        };
        let (column, qualifier) = parts.split_last()?;
        let qualifier = qualifier.join(".");
        for scope in self.scopes.iter().rev() {
            let rel = if qualifier.is_empty() {
                match scope.as_slice() {
                    [] => continue,
                    [only] => Some(only),
                    // Ambiguous without the catalog.
                    _ => return None,
                }
            } else {
                scope.iter().find(|r| {
                    r.qualifier == qualifier || r.table.as_deref() == Some(qualifier.as_str())
                })
            };
            if let Some(rel) = rel {
                return rel.table.as_ref().map(|t| format!("{t}.{column}"));
            }
        }
        None
    }
}

fn constraint(op: &JoinOperator) -> Option<&JoinConstraint> {
    match op {
        JoinOperator::Join(c)
        | JoinOperator::Inner(c)
        | JoinOperator::Left(c)
        | JoinOperator::LeftOuter(c)
        | JoinOperator::Right(c)
        | JoinOperator::RightOuter(c)
        | JoinOperator::FullOuter(c)
        | JoinOperator::CrossJoin(c)
        | JoinOperator::Semi(c)
        | JoinOperator::LeftSemi(c)
        | JoinOperator::RightSemi(c)
        | JoinOperator::Anti(c)
        | JoinOperator::LeftAnti(c)
        | JoinOperator::RightAnti(c)
        | JoinOperator::StraightJoin(c)
        | JoinOperator::AsOf { constraint: c, .. } => Some(c),
        _ => None,
    }
}

fn is_comparison(op: &BinaryOperator) -> bool {
    matches!(
        op,
        BinaryOperator::Eq
            | BinaryOperator::NotEq
            | BinaryOperator::Lt
            | BinaryOperator::LtEq
            | BinaryOperator::Gt
            | BinaryOperator::GtEq
    )
}

/// `e` without parentheses and casts (`$1::int8`, `(t.id)`).
fn strip(mut e: &Expr) -> &Expr {
    loop {
        match e {
            Expr::Nested(inner) | Expr::Cast { expr: inner, .. } => e = inner,
            _ => return e,
        }
    }
}

/// `n` when `e` is the parameter `$n`, possibly cast or parenthesised.
fn placeholder(e: &Expr) -> Option<usize> {
    match strip(e) {
        Expr::Value(v) => match &v.value {
            Value::Placeholder(p) => p.strip_prefix('$')?.parse().ok(),
            _ => None,
        },
        _ => None,
    }
}

/// An identifier as Postgres reads it: unquoted names fold to lower case.
fn normal(ident: &Ident) -> String {
    if ident.quote_style.is_some() {
        ident.value.clone()
    } else {
        ident.value.to_lowercase()
    }
}

/// The parts of a dotted name, as Postgres reads them.
fn parts(name: &ObjectName) -> Vec<String> {
    name.0
        .iter()
        .filter_map(|p| p.as_ident().map(normal))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(column: &str) -> Site {
        Site {
            column: Some(column.into()),
            usage: ParamUse::Lookup,
            array: false,
        }
    }

    fn write(column: &str) -> Site {
        Site {
            column: Some(column.into()),
            usage: ParamUse::Write,
            array: false,
        }
    }

    fn limit() -> Site {
        Site {
            column: None,
            usage: ParamUse::Limit,
            array: false,
        }
    }

    #[test]
    fn each_parameter_finds_its_column() {
        let any = Site {
            array: true,
            ..lookup("orders.id")
        };
        let cases: Vec<(&str, Vec<Site>)> = vec![
            (
                "SELECT id FROM customers WHERE email = $1",
                vec![lookup("customers.email")],
            ),
            (
                "SELECT c.id FROM Customers AS c WHERE c.Email = $1 AND $2 < c.created_at",
                vec![lookup("customers.email"), lookup("customers.created_at")],
            ),
            (
                "SELECT * FROM billing.invoices i WHERE i.id IN ($1, $2::int8, $3)",
                vec![
                    lookup("billing.invoices.id"),
                    lookup("billing.invoices.id"),
                    lookup("billing.invoices.id"),
                ],
            ),
            (
                r#"SELECT * FROM "Audit"."Log" WHERE "Audit"."Log"."Kind" = $1"#,
                vec![lookup("Audit.Log.Kind")],
            ),
            (
                "SELECT o.id FROM orders o JOIN customers c ON c.id = o.customer_id \
                 AND c.region = $1 WHERE o.total BETWEEN $2 AND $3 ORDER BY o.id LIMIT $4 OFFSET $5",
                vec![
                    lookup("customers.region"),
                    lookup("orders.total"),
                    lookup("orders.total"),
                    limit(),
                    limit(),
                ],
            ),
            ("SELECT * FROM orders WHERE id = ANY($1)", vec![any]),
            (
                "INSERT INTO orders (customer_id, total, note) VALUES ($1, $2, lower($3)) RETURNING id",
                vec![
                    write("orders.customer_id"),
                    write("orders.total"),
                    Site::OTHER,
                ],
            ),
            (
                "UPDATE customers SET email = $1, visits = visits + $2 WHERE id = $3",
                vec![
                    write("customers.email"),
                    Site::OTHER,
                    lookup("customers.id"),
                ],
            ),
            (
                "UPDATE orders o SET total = $1 FROM customers c \
                 WHERE c.id = o.customer_id AND c.email = $2",
                vec![write("orders.total"), lookup("customers.email")],
            ),
            (
                "DELETE FROM sessions s USING customers c WHERE s.customer_id = c.id AND c.id = $1",
                vec![lookup("customers.id")],
            ),
            (
                "INSERT INTO tags (name, hits) VALUES ($1, 1) \
                 ON CONFLICT (name) DO UPDATE SET hits = tags.hits + $2, label = $3",
                vec![write("tags.name"), Site::OTHER, write("tags.label")],
            ),
            // A parameter both looked up and written is a lookup.
            (
                "UPDATE customers SET region = $1 WHERE region = $1",
                vec![lookup("customers.region")],
            ),
            // Correlated subqueries see the outer aliases.
            (
                "SELECT * FROM orders o WHERE EXISTS \
                 (SELECT 1 FROM items i WHERE i.order_id = o.id AND i.sku = $1 AND o.state = $2)",
                vec![lookup("items.sku"), lookup("orders.state")],
            ),
            // CTE names are not tables; the CTE's own statement is walked.
            (
                "WITH recent AS (SELECT * FROM orders WHERE placed_at > $1) \
                 SELECT * FROM recent WHERE recent.id = $2",
                vec![lookup("orders.placed_at"), Site::OTHER],
            ),
            // Two tables and an unqualified column: ambiguous, left alone.
            (
                "SELECT * FROM orders, customers WHERE email = $1",
                vec![Site::OTHER],
            ),
            // No column at all: a function argument.
            ("SELECT pg_sleep($1)", vec![Site::OTHER]),
            ("not sql at all $1", vec![Site::OTHER]),
        ];
        for (sql, expected) in cases {
            assert_eq!(sites(sql, expected.len()), expected, "{sql}");
        }
    }
}
