//! The local audit spool: append-only segment files that a lease's audit row is written to
//! before the lease answers.
//!
//! A row is one JSON line, appended with one `write(2)` to the current segment: once that call
//! returns the kernel holds the row, so a crash of this process cannot lose it (a crash of the
//! machine can lose what the kernel had not yet flushed, as with SQLite's `synchronous =
//! NORMAL`). The shipper ([`super::ship`]) moves closed segments into the database and deletes
//! them.
//!
//! Every segment is held under an exclusive `flock` by the process writing or shipping it, so
//! the kernel releases it when that process dies, however it dies. A segment nobody holds is
//! therefore one a dead process left behind; any process spooling for the same database adopts
//! and ships it ([`Spool::orphans`]).

use std::collections::HashSet;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use crate::error::Error;
use crate::store::{AuditEntry, AuditRow};

/// Segment files end with this; anything else in the directory is left alone.
const SEGMENT_SUFFIX: &str = ".audit";

/// A new audit row as spooled: the entry and the id it will have in the table.
fn spooled(entry: AuditEntry) -> AuditRow {
    AuditRow {
        // uuid v7 ids sort by time, which orders rows written in the same millisecond.
        id: uuid::Uuid::now_v7().to_string(),
        entry,
    }
}

/// A segment file, locked by this process for as long as this value lives.
#[derive(Debug)]
pub(crate) struct Segment {
    pub path: PathBuf,
    /// Rows this process appended; 0 for an adopted orphan (its count is unknown).
    pub rows: usize,
    /// Holds the lock; closing it releases the lock.
    file: File,
}

#[derive(Debug)]
struct Current {
    segment: Segment,
    /// A write failed part-way: the next row goes to a new segment, so a torn line can only
    /// ever be the last line of a segment.
    torn: bool,
}

/// The spool of one credentials process for one database.
#[derive(Debug)]
pub(crate) struct Spool {
    dir: PathBuf,
    current: Mutex<Current>,
    /// Rows appended and not yet shipped.
    unshipped: AtomicUsize,
    /// Segments found that this process cannot open (another user's, say), told once each.
    unopenable: Mutex<HashSet<PathBuf>>,
    /// More unshipped rows than this and rows are refused: the database has not taken rows
    /// for a long time, and the disk is not to fill up with them.
    max_unshipped: usize,
}

impl Spool {
    /// Opens `dir` (creating it, private to this user) with a new segment to append to,
    /// holding at most `max_unshipped` rows the database has not taken.
    pub(crate) fn open(dir: &Path, max_unshipped: usize) -> Result<Spool, Error> {
        let segment = new_segment(dir)?;
        Ok(Spool {
            dir: dir.to_owned(),
            current: Mutex::new(Current {
                segment,
                torn: false,
            }),
            unshipped: AtomicUsize::new(0),
            unopenable: Mutex::new(HashSet::new()),
            max_unshipped,
        })
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends `entry`; returns once the kernel has it. Returns how many rows are unshipped.
    pub(crate) fn append(&self, entry: AuditEntry) -> Result<usize, Error> {
        let unshipped = self.unshipped.load(Ordering::Relaxed);
        if unshipped >= self.max_unshipped {
            return Err(Error::AuditFailed(format!(
                "the audit spool holds {unshipped} audit rows the database has not taken"
            )));
        }
        let mut line = serde_json::to_vec(&spooled(entry))
            .map_err(|error| Error::AuditFailed(format!("cannot encode an audit row: {error}")))?;
        line.push(b'\n');
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if current.torn {
            // The torn segment's lock goes with its handle, so the shipper's next look for
            // orphans ships its rows.
            let torn = std::mem::replace(&mut current.segment, new_segment(&self.dir)?);
            current.torn = false;
            self.shipped(torn.rows);
        }
        if let Err(error) = current.segment.file.write_all(&line) {
            current.torn = true;
            return Err(spool_error(
                &current.segment.path,
                "cannot append to the audit spool segment",
                error,
            ));
        }
        current.segment.rows += 1;
        drop(current);
        Ok(self.unshipped.fetch_add(1, Ordering::Relaxed) + 1)
    }

    /// Swaps in a new segment and hands over the one written so far, still locked; `None`
    /// when it holds no row.
    pub(crate) fn close_current(&self) -> Result<Option<Segment>, Error> {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if current.segment.rows == 0 && !current.torn {
            return Ok(None);
        }
        let fresh = new_segment(&self.dir)?;
        current.torn = false;
        Ok(Some(std::mem::replace(&mut current.segment, fresh)))
    }

    /// Counts `rows` as shipped.
    pub(crate) fn shipped(&self, rows: usize) {
        // Saturating: adopted segments count 0, so this cannot go below what was appended.
        let _ = self
            .unshipped
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |unshipped| {
                Some(unshipped.saturating_sub(rows))
            });
    }

    /// Segments in the directory that no live process holds, locked now by this one, oldest
    /// first. This process's own segments are held, so they are never among them.
    pub(crate) fn orphans(&self) -> Result<Vec<Segment>, Error> {
        let entries = std::fs::read_dir(&self.dir).map_err(|error| {
            spool_error(&self.dir, "cannot list the audit spool directory", error)
        })?;
        let mut paths: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| path.to_string_lossy().ends_with(SEGMENT_SUFFIX))
            .collect();
        // Names start with the creation time, so this is oldest first.
        paths.sort();
        let mut orphans = Vec::new();
        for path in paths {
            let file = match OpenOptions::new().read(true).append(true).open(&path) {
                Ok(file) => file,
                // Gone meanwhile: another process shipped it.
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
                Err(error) => {
                    self.warn_once(&path, &error);
                    continue;
                }
            };
            match file.try_lock() {
                Ok(()) => orphans.push(Segment {
                    path,
                    rows: 0,
                    file,
                }),
                Err(TryLockError::WouldBlock) => {}
                Err(TryLockError::Error(error)) => {
                    return Err(spool_error(
                        &path,
                        "cannot lock the audit spool segment",
                        error,
                    ));
                }
            }
        }
        Ok(orphans)
    }
}

impl Spool {
    fn warn_once(&self, path: &Path, error: &std::io::Error) {
        let mut told = self
            .unopenable
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if told.insert(path.to_owned()) {
            tracing::warn!(
                segment = %path.display(),
                error = %error,
                "cannot open an audit spool segment another process left; its rows are not \
                 shipped until this process can read and lock it (its owner or mode)"
            );
        }
    }
}

impl Drop for Spool {
    /// An empty current segment is not worth a file; one with rows stays for the next process
    /// to ship (see [`Spool::orphans`]).
    fn drop(&mut self) {
        let current = self
            .current
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        if current.segment.rows == 0 && !current.torn {
            let _ = std::fs::remove_file(&current.segment.path);
            // Only an empty directory goes (tests open many stores, each with its own); another
            // process on it re-creates it with its next segment.
            let _ = std::fs::remove_dir(&self.dir);
        }
    }
}

impl Segment {
    /// Deletes the file; the lock goes with the handle when `self` is dropped.
    pub(crate) fn remove(self) -> Result<(), Error> {
        std::fs::remove_file(&self.path).map_err(|error| {
            spool_error(&self.path, "cannot delete the audit spool segment", error)
        })
    }
}

/// A segment's bytes: one JSON row per line.
pub(crate) fn read_segment(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path)
        .map_err(|error| spool_error(path, "cannot read the audit spool segment", error))
}

/// The rows of a segment's bytes, and how many lines were not rows (a line torn by a crash of
/// the machine mid-write is the only way to get one).
pub(crate) fn parse_rows(bytes: &[u8]) -> (Vec<AuditRow>, usize) {
    let mut rows = Vec::new();
    let mut unreadable = 0;
    for line in bytes.split(|byte| *byte == b'\n') {
        if line.is_empty() {
            continue;
        }
        match serde_json::from_slice(line) {
            Ok(row) => rows.push(row),
            Err(_) => unreadable += 1,
        }
    }
    (rows, unreadable)
}

/// A new segment, created and locked. Its name starts with the time so that a listing sorts
/// oldest first; the uuid keeps two processes sharing a directory apart.
fn new_segment(dir: &Path) -> Result<Segment, Error> {
    create_private_dir(dir)
        .map_err(|error| spool_error(dir, "cannot create the audit spool directory", error))?;
    let millis = chrono::Utc::now().timestamp_millis();
    let name = format!(
        "{millis:015}-{}{SEGMENT_SUFFIX}",
        uuid::Uuid::now_v7().simple()
    );
    let path = dir.join(name);
    let mut options = OpenOptions::new();
    options.append(true).read(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options
        .open(&path)
        .map_err(|error| spool_error(&path, "cannot create the audit spool segment", error))?;
    // Nobody else can have opened a file this process just created with a fresh name.
    file.lock()
        .map_err(|error| spool_error(&path, "cannot lock the audit spool segment", error))?;
    Ok(Segment {
        path,
        rows: 0,
        file,
    })
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

fn spool_error(path: &Path, what: &str, error: std::io::Error) -> Error {
    Error::AuditFailed(format!("{what} {}: {error}", path.display()))
}

/// Checks that `dir` can serve as a spool: created if missing, and a file can be made in it.
/// Run at start, before the service binds its port.
pub(crate) fn check_writable(dir: &Path) -> Result<(), String> {
    create_private_dir(dir).map_err(|error| format!("cannot create {}: {error}", dir.display()))?;
    let probe = dir.join(format!(".probe-{}", uuid::Uuid::new_v4().simple()));
    std::fs::File::create_new(&probe)
        .map_err(|error| format!("cannot write in {}: {error}", dir.display()))?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}
