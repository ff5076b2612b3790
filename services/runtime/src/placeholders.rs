//! Placeholders for statements that bind a varying number of parameters (multi-row inserts,
//! `IN` lists), written for the backend at hand.
//!
//! PostgreSQL needs numbered placeholders (`$1`). On SQLite sqlx asks, for every parameter it
//! binds, the placeholder's name, and SQLite answers a numbered one by walking the statement's
//! list of names (parsing walks it too), so binding costs the square of the parameter count:
//! statements were kept to 120 parameters for it, and a 500-record page took a hundred
//! statements. Anonymous `?` placeholders are not in that list and bind in order, so on SQLite
//! these statements use them and can carry a whole page.
//!
//! sqlx counts `?` apart from `$N`, so a statement written with these marks must write every
//! one of its parameters with them, in the order they are bound.

use sqlx::AnyConnection;

/// Parameters one statement binds at most, on either backend: a page of records in a few
/// statements, well inside PostgreSQL's 65,535 and SQLite's 32,766.
pub const PARAMETER_BUDGET: usize = 4_000;

/// How a statement's parameters are written on one backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placeholders {
    numbered: bool,
}

impl Placeholders {
    /// The placeholders of `connection`'s backend.
    pub fn of(connection: &AnyConnection) -> Placeholders {
        Placeholders::for_backend(connection.backend_name())
    }

    /// The placeholders of the backend sqlx names `backend_name`: anonymous on SQLite,
    /// numbered elsewhere.
    pub fn for_backend(backend_name: &str) -> Placeholders {
        Placeholders {
            numbered: backend_name != "SQLite",
        }
    }

    /// The `number`th parameter (from 1).
    pub fn one(self, number: usize) -> String {
        if self.numbered {
            format!("${number}")
        } else {
            "?".to_owned()
        }
    }

    /// `count` parameters from the `first`th, comma separated.
    pub fn list(self, first: usize, count: usize) -> String {
        (first..first + count)
            .map(|number| self.one(number))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `(…), (…)`: `rows` tuples of `columns` parameters each, from the `first`th.
    pub fn rows(self, first: usize, rows: usize, columns: usize) -> String {
        (0..rows)
            .map(|row| format!("({})", self.list(first + row * columns, columns)))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Rows of `columns` parameters one statement carries at most.
    pub fn rows_per_statement(columns: usize) -> usize {
        (PARAMETER_BUDGET / columns.max(1)).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_on_postgres_anonymous_on_sqlite() {
        let postgres = Placeholders::for_backend("PostgreSQL");
        assert_eq!(postgres.list(4, 3), "$4, $5, $6");
        assert_eq!(postgres.rows(1, 2, 2), "($1, $2), ($3, $4)");
        assert_eq!(postgres.rows(1, 0, 2), "");
        let sqlite = Placeholders::for_backend("SQLite");
        assert_eq!(sqlite.one(7), "?");
        assert_eq!(sqlite.rows(1, 2, 2), "(?, ?), (?, ?)");
        assert_eq!(Placeholders::rows_per_statement(9), 444);
    }
}
