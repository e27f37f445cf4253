//! The text of the group commit's multi-row statements (docs/architecture.md, "The store").
//!
//! A database parses a statement once and keeps it prepared by its text (sqlx's cache holds 100 per connection).
//! A batch's statements carry one row per write, so their text changed with every batch's size: on SQLite they
//! were parsed again and again (`sqlite3RunParser`, ~5 % of the gateway's CPU at 500 calls/s, BENCHMARKS.md,
//! "Call setup"), and the 120-odd sizes a run used pushed each other out of the cache. On SQLite the rows are
//! now padded to the next power of two with rows of NULLs that the statement leaves out, so a table has at most a
//! dozen texts, all of them kept prepared. PostgreSQL gets the rows as they are: its parameters are typed from the
//! first use, and a VALUES list of NULLs gives them no type.

use std::fmt::Write as _;

/// How a database takes a batch's rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rows {
    /// PostgreSQL: numbered parameters (`$1`), exactly the rows given.
    Exact,
    /// SQLite: positional parameters (`?`), the rows padded to the next power of two.
    Padded,
}

impl Rows {
    /// How many rows a statement of `rows` writes carries (the pad rows are bound as NULLs).
    pub fn padded(self, rows: usize) -> usize {
        match self {
            Rows::Exact => rows,
            Rows::Padded => rows.next_power_of_two(),
        }
    }

    /// Appends the rows of an INSERT: `VALUES (…), (…)`, or on SQLite the padded rows as a subquery that leaves
    /// out the pad rows (whose first column is NULL; every table's first column is its NOT NULL key).
    pub fn insert_source(self, sql: &mut String, width: usize, rows: usize) {
        match self {
            Rows::Exact => {
                sql.push_str("VALUES ");
                self.params(sql, width, rows);
            }
            Rows::Padded => {
                sql.push_str("SELECT * FROM (VALUES ");
                self.params(sql, width, self.padded(rows));
                sql.push_str(") WHERE column1 IS NOT NULL");
            }
        }
    }

    /// Appends a list of values as rows of `width` parameters, `(p, p, …), (p, p, …)`: `($1, $2), ($3, $4)` for
    /// PostgreSQL, `(?, ?), (?, ?)` for SQLite, padded there. SQLite keeps numbered (and named) parameters in a
    /// list it searches from the start for each one, while parsing and again for each value bound
    /// (`sqlite3VListNumToName`): quadratic in a batch's thousands of parameters. Plain `?` are numbered in order
    /// without that list; values are bound in the same order.
    pub fn values(self, sql: &mut String, width: usize, rows: usize) {
        self.params(sql, width, self.padded(rows));
    }

    fn params(self, sql: &mut String, width: usize, rows: usize) {
        for r in 0..rows {
            sql.push_str(if r == 0 { "(" } else { ", (" });
            for k in 0..width {
                if k > 0 {
                    sql.push_str(", ");
                }
                match self {
                    Rows::Exact => {
                        let _ = write!(sql, "${}", r * width + k + 1);
                    }
                    Rows::Padded => sql.push('?'),
                }
            }
            sql.push(')');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Rows;

    #[test]
    fn parameters_are_numbered_for_postgres_and_positional_for_sqlite() {
        let mut pg = String::new();
        Rows::Exact.values(&mut pg, 3, 2);
        assert_eq!(pg, "($1, $2, $3), ($4, $5, $6)");
        let mut lite = String::new();
        Rows::Padded.values(&mut lite, 3, 2);
        assert_eq!(lite, "(?, ?, ?), (?, ?, ?)");
        let mut one = String::new();
        Rows::Exact.values(&mut one, 4, 1);
        assert_eq!(one, "($1, $2, $3, $4)");
    }

    /// On SQLite a table's statements have one text per power of two: 3 to 256 rows take 7 texts, not 254.
    #[test]
    fn sqlite_batches_share_a_few_statement_texts() {
        let text = |rows: Rows, n: usize| {
            let mut sql = String::from("INSERT INTO t (a, b) ");
            rows.insert_source(&mut sql, 2, n);
            sql
        };
        let lite: std::collections::HashSet<String> = (3..=256).map(|n| text(Rows::Padded, n)).collect();
        assert_eq!(lite.len(), 7);
        assert_eq!(
            text(Rows::Padded, 3),
            "INSERT INTO t (a, b) SELECT * FROM (VALUES (?, ?), (?, ?), (?, ?), (?, ?)) WHERE column1 IS NOT NULL"
        );
        assert_eq!(
            text(Rows::Exact, 2),
            "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4)"
        );
        assert_eq!(Rows::Padded.padded(5), 8);
        assert_eq!(Rows::Exact.padded(5), 5);
    }
}
