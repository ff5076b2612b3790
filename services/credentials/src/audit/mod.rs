//! Audit rows written on their own (every lease writes one): spooled locally before the caller
//! is answered, shipped to the `credential_audit` table in the background.
//!
//! A lease must not answer before its audit row is safe, and waiting for a database commit was
//! most of what a lease cost beyond an empty RPC (`benches/RESULTS.md`: half its latency, even
//! group-committed). So, like Vault's file audit device, a lease appends its row to a local file
//! ([`spool`]) with one `write(2)` and answers once that returns: from then on a crash of this
//! process cannot lose the row. A background task ([`ship`]) moves the rows into the table every
//! [`SHIP_EVERY`] or every [`SHIP_AT`] rows, whichever comes first, in transactions that commit
//! synchronously. What a crash of the whole machine can lose is the rows of the last fraction
//! of a second that were neither shipped nor flushed to disk by the kernel; a crash of the
//! process loses none: its segments are locked only while it lives, and the next process on the
//! same spool directory ships them.
//!
//! Reads of the audit log through this process ship first ([`AuditWriter::flush`]), so they see
//! every row this process spooled; another replica sees them once shipped (within
//! [`SHIP_EVERY`]). Rows written inside a credential write's own transaction (put, revoke,
//! connect) do not come here: they commit with the write.

mod ship;
mod spool;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::Digest as _;
use sqlx::AnyPool;
use tokio::sync::Notify;

use self::ship::Shipper;
use self::spool::Spool;
pub(crate) use self::spool::check_writable;
use crate::error::Error;
use crate::store::AuditEntry;

/// How often spooled rows are shipped when fewer than [`SHIP_AT`] are waiting.
pub const SHIP_EVERY: Duration = Duration::from_millis(100);
/// Unshipped rows that start a shipment at once, before [`SHIP_EVERY`]: about 1 MB of spool.
/// Shipping has a cost per shipment (a file made and deleted, a transaction) as well as per
/// row; in the lease bench shipments of up to 4,096 rows left leases faster than of 512.
pub const SHIP_AT: usize = 4096;
/// Unshipped rows past which rows are refused (and with them leases): about 50 MB of spool,
/// far more than a replica writes while a database restarts.
const MAX_UNSHIPPED: usize = 200_000;
/// How often the spool directory is searched for segments dead processes left.
const ORPHANS_EVERY: Duration = Duration::from_secs(10);
/// The wait after a failed shipment (the database is down, say) before the next.
const RETRY_AFTER: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct AuditWriter {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    spool: Arc<Spool>,
    shipper: Arc<Shipper>,
    wake: Arc<Notify>,
    shipping: tokio::task::JoinHandle<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Rows still spooled stay in their segment, which the next process adopts.
        self.shipping.abort();
    }
}

impl AuditWriter {
    /// Opens the spool in `dir` and starts shipping to `pool` on the current tokio runtime,
    /// beginning with any segments a dead process left there. `dir` must serve this database
    /// only: a segment found there is shipped to it.
    pub fn open(pool: AnyPool, dir: &Path, sqlite: bool) -> Result<AuditWriter, Error> {
        let spool = Arc::new(Spool::open(dir, MAX_UNSHIPPED)?);
        let shipper = Arc::new(Shipper::new(pool, spool.clone(), sqlite));
        let wake = Arc::new(Notify::new());
        let shipping = tokio::spawn(ship_forever(shipper.clone(), wake.clone()));
        tracing::info!(dir = %dir.display(), "audit rows are spooled here before shipping");
        Ok(AuditWriter {
            inner: Arc::new(Inner {
                spool,
                shipper,
                wake,
                shipping,
            }),
        })
    }

    /// Spools `audit`; returns once the kernel holds it (see the module docs). A row that
    /// cannot be spooled fails the call: nothing is done unaudited.
    pub fn record(&self, audit: AuditEntry) -> Result<(), Error> {
        let unshipped = self.inner.spool.append(audit)?;
        if unshipped >= SHIP_AT {
            self.inner.wake.notify_one();
        }
        Ok(())
    }

    /// Ships every row spooled before the call into the table.
    pub async fn flush(&self) -> Result<(), Error> {
        self.inner.shipper.ship(false).await.map(drop)
    }

    pub fn spool_dir(&self) -> &Path {
        self.inner.spool.dir()
    }
}

/// The spool directory used when none is configured: beside a SQLite database file; a fresh
/// temporary one for an in-memory database (it cannot outlive the process anyway); otherwise
/// one in the temporary directory named by a digest of the database url and schema, so that
/// every store of one database, and only those, share it.
pub fn default_spool_dir(database_url: &str, schema: &str) -> PathBuf {
    if database_url.starts_with("sqlite:") {
        return match plugboard_runtime::storage::sqlite_path(database_url) {
            Some(file) => {
                let mut name = file.file_name().unwrap_or_default().to_owned();
                name.push(".audit-spool");
                file.with_file_name(name)
            }
            None => std::env::temp_dir().join(format!(
                "plugboard-credentials-audit-{}",
                uuid::Uuid::new_v4().simple()
            )),
        };
    }
    // Not the user or password: rotating a password must not strand the rows spooled so far.
    let database = match url::Url::parse(database_url) {
        Ok(mut url) => {
            let _ = url.set_password(None);
            let _ = url.set_username("");
            url.to_string()
        }
        Err(_) => database_url.to_owned(),
    };
    let digest = sha2::Sha256::digest(format!("{database}\n{schema}").as_bytes());
    std::env::temp_dir().join(format!(
        "plugboard-credentials-audit-{}",
        &hex::encode(digest)[..16]
    ))
}

/// Ships on every wake-up or tick until aborted; adopts orphaned segments at start and every
/// [`ORPHANS_EVERY`]. A failure is logged when it starts and when it ends, not on every retry.
async fn ship_forever(shipper: Arc<Shipper>, wake: Arc<Notify>) {
    let mut orphans_adopted: Option<Instant> = None;
    let mut failing = false;
    loop {
        let adopt = orphans_adopted.is_none_or(|at| at.elapsed() >= ORPHANS_EVERY);
        match shipper.ship(adopt).await {
            Ok(rows) => {
                if failing {
                    tracing::info!(rows, "audit rows are reaching the database again");
                    failing = false;
                }
                if adopt {
                    orphans_adopted = Some(Instant::now());
                }
            }
            Err(error) => {
                if !failing {
                    tracing::error!(
                        error = %error,
                        "cannot ship spooled audit rows to the database; they stay spooled \
                         and shipping is retried"
                    );
                    failing = true;
                }
                tokio::time::sleep(RETRY_AFTER).await;
                continue;
            }
        }
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(SHIP_EVERY) => {}
        }
    }
}
