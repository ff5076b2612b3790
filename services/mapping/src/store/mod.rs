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

/// The page cache of identity's SQLite writer connection. Linking a page searches the
/// e-mail index at random places, so the cache should hold that index's leaves (about 5 MB at
/// 100,000 records) beside the other indexes' hot pages. Memory counts against the 150 MB of
/// the whole `plugboard dev` process: 16 MiB here and 8 MiB for sync's page commits took it to
/// 151 MB over the 100,000-record benchmark.
const IDENTITY_WRITER_CACHE_KIB: u32 = 8 * 1024;

#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    /// Identity's transactions: on SQLite one connection whose page cache outlives each page
    /// (`plugboard_runtime::storage::open_sqlite_writer`); on PostgreSQL the pool itself.
    identity_writer: AnyPool,
}

impl Store {
    /// Opens the database and brings its schema up to date.
    pub async fn open(database_url: &str, schema: &str) -> Result<Store, Error> {
        let pool = plugboard_runtime::storage::open(database_url, schema, &MIGRATOR).await?;
        let identity_writer =
            plugboard_runtime::storage::open_sqlite_writer(database_url, IDENTITY_WRITER_CACHE_KIB)
                .await?
                .unwrap_or_else(|| pool.clone());
        Ok(Store {
            pool,
            identity_writer,
        })
    }
}
