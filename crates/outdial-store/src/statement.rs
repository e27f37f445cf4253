//! A statement of the group commit as text and values (`batch.rs` plans them), run either through sqlx's pool
//! (PostgreSQL, SQLite in memory) or on the store's SQLite thread (`thread.rs`).

use rusqlite::types::{ToSqlOutput, ValueRef};

/// A value bound to one parameter.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Param<'a> {
    Text(&'a str),
    Owned(String),
    Int(i64),
    /// NULL in a text column (an absent value, or a pad row's, `rows.rs`).
    NullText,
    /// NULL in an integer column.
    NullInt,
}

impl<'a> Param<'a> {
    pub fn opt_text(v: Option<&'a str>) -> Param<'a> {
        v.map_or(Param::NullText, Param::Text)
    }

    pub fn opt_int(v: Option<i64>) -> Param<'a> {
        v.map_or(Param::NullInt, Param::Int)
    }
}

/// A statement's text and its values, in order.
#[derive(Debug)]
pub(crate) struct Statement<'a> {
    pub sql: String,
    pub params: Vec<Param<'a>>,
}

pub(crate) type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

impl<'a> Statement<'a> {
    /// The statement as a sqlx query, its values bound.
    pub fn query(self) -> AnyQuery<'a> {
        let mut q = sqlx::query(sqlx::AssertSqlSafe(self.sql));
        for p in self.params {
            q = match p {
                Param::Text(s) => q.bind(s),
                Param::Owned(s) => q.bind(s),
                Param::Int(i) => q.bind(i),
                Param::NullText => q.bind(None::<String>),
                Param::NullInt => q.bind(None::<i64>),
            };
        }
        q
    }
}

impl rusqlite::ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            Param::Text(s) => ValueRef::Text(s.as_bytes()),
            Param::Owned(s) => ValueRef::Text(s.as_bytes()),
            Param::Int(i) => ValueRef::Integer(*i),
            Param::NullText | Param::NullInt => ValueRef::Null,
        }))
    }
}
