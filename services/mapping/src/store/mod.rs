//! The mapping service's tables, on SQLite or PostgreSQL through sqlx's `Any` driver. sqlx
//! errors become [`Error::Storage`] here and nowhere else.
//!
//! - `overrides`: versioned tenant overrides;
//! - `override_checks`: whether each override fits its connector's newest spec, and which
//!   connector spec it is applied over;
//! - `identity`: resolved person records, the ids they carry, their links and unlinks.

pub mod identity;
mod override_checks;
mod overrides;

use sqlx::AnyPool;
use sqlx::migrate::Migrator;

use crate::error::Error;

pub use override_checks::OverrideCheck;
pub use overrides::{OverrideKey, OverrideRow};

static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
}

impl Store {
    /// Opens the database and brings its schema up to date.
    pub async fn open(database_url: &str, schema: &str) -> Result<Store, Error> {
        let pool = plugboard_runtime::storage::open(database_url, schema, &MIGRATOR).await?;
        Ok(Store { pool })
    }
}
