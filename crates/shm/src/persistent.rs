//! Persistent tables: named POSIX shared-memory segments in `/dev/shm`.
//!
//! A table built with [`TableBuilder::persistent`](crate::TableBuilder::persistent)
//! lives in `/dev/shm/rswoole.<name>` and outlives every process: a
//! restarted server attaches to it and finds its rows. The segment starts
//! with a header (magic, layout version, layout hash, geometry, column
//! descriptors, row count), so attaching with other columns or another row
//! count is an [`Error::LayoutMismatch`], never garbage.
//!
//! Creation is serialised with an exclusive `flock` on the segment, taken by
//! every attacher: the creator truncates, maps and initialises the segment
//! and marks it ready before releasing the lock. If the creator dies
//! half-way, the kernel drops its `flock`; the next builder sees a segment
//! that is not ready and initialises it afresh.
//!
//! This module also has the functions behind `rswoole table list|dump|rm`:
//! [`list`], [`info`], [`open`] and [`remove`].
//!
//! # Safety of attaching
//!
//! Another program may map the same file. Every byte of the segment is read
//! through atomics and every value used as an offset is bounds-checked, so a
//! misbehaving writer can corrupt the *data* but not this process's memory.
//! Shrinking the file under a live mapping makes later accesses fault with
//! `SIGBUS`, as for any shared file mapping.

use std::path::PathBuf;
use std::sync::atomic::Ordering::{Acquire, Relaxed};
use std::sync::Arc;
use std::time::Duration;

use crate::layout::{self, Geometry, Segment};
use crate::sys::{self, Mapping};
use crate::table::{create_segment, describe, geometry, layout_hash};
use crate::value::{load_bytes, Schema};
use crate::{Column, Error, Result, Table, MAX_ROWS};

/// Prefix of the shm object names of persistent tables.
pub const SHM_PREFIX: &str = "rswoole.";
/// Directory where Linux shows POSIX shm objects.
pub const SHM_DIR: &str = "/dev/shm";
/// How long [`open`] or `build` wait for another process creating the same
/// table. Default is 10 s.
pub const ATTACH_TIMEOUT: Duration = Duration::from_secs(10);

/// What [`info`] reports about a persistent table.
///
/// # Examples
///
/// ```
/// use rswoole_shm::{persistent, Column, Table};
/// let name = format!("doc-tableinfo-{}", std::process::id());
/// let t = Table::builder(16).column("n", Column::Int).persistent(&name).build()?;
/// t.set("a", &[("n", 1.into())])?;
/// let info = persistent::info(&name)?;
/// assert_eq!((info.count, info.capacity), (1, 16));
/// assert_eq!(info.columns, vec![("n".to_string(), Column::Int)]);
/// persistent::remove(&name)?;
/// # Ok::<(), rswoole_shm::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TableInfo {
    /// The table's name (without the `rswoole.` prefix).
    pub name: String,
    /// Rows in use.
    pub count: usize,
    /// Rows the table holds.
    pub capacity: usize,
    /// `(name, type)` of each column.
    pub columns: Vec<(String, Column)>,
    /// Bytes of shared memory.
    pub memory_size: usize,
}

/// The file backing persistent table `name`: `/dev/shm/rswoole.<name>`.
///
/// # Examples
///
/// ```
/// let path = rswoole_shm::persistent::path("sessions");
/// assert_eq!(path, std::path::Path::new("/dev/shm/rswoole.sessions"));
/// ```
pub fn path(name: &str) -> PathBuf {
    PathBuf::from(SHM_DIR).join(format!("{SHM_PREFIX}{name}"))
}

fn valid_name(name: &str) -> bool {
    (1..=200).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
}

fn check_name(name: &str) -> Result<()> {
    if valid_name(name) {
        Ok(())
    } else {
        Err(Error::InvalidName {
            name: name.to_owned(),
        })
    }
}

/// Names of the persistent tables in `/dev/shm`, sorted.
///
/// # Errors
///
/// [`Error::Os`] if `/dev/shm` exists but cannot be read.
///
/// # Examples
///
/// ```
/// use rswoole_shm::{persistent, Column, Table};
/// let name = format!("doc-list-{}", std::process::id());
/// let _t = Table::builder(8).column("n", Column::Int).persistent(&name).build()?;
/// assert!(persistent::list()?.contains(&name));
/// persistent::remove(&name)?;
/// assert!(!persistent::list()?.contains(&name));
/// # Ok::<(), rswoole_shm::Error>(())
/// ```
pub fn list() -> Result<Vec<String>> {
    let dir = match std::fs::read_dir(SHM_DIR) {
        Ok(dir) => dir,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::os("read_dir /dev/shm")(e)),
    };
    let mut names: Vec<String> = dir
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter_map(|f| f.strip_prefix(SHM_PREFIX).map(str::to_owned))
        .filter(|n| valid_name(n))
        .collect();
    names.sort();
    Ok(names)
}

/// Attaches to persistent table `name` and reports its size and columns.
///
/// # Errors
///
/// As [`open`].
///
/// # Examples
///
/// ```
/// use rswoole_shm::{persistent, Column, Table};
/// let name = format!("doc-info-{}", std::process::id());
/// let _t = Table::builder(8).column("s", Column::Str(10)).persistent(&name).build()?;
/// let info = persistent::info(&name)?;
/// assert_eq!(info.name, name);
/// assert_eq!(info.columns[0], ("s".to_string(), Column::Str(10)));
/// persistent::remove(&name)?;
/// # Ok::<(), rswoole_shm::Error>(())
/// ```
pub fn info(name: &str) -> Result<TableInfo> {
    let t = open(name)?;
    Ok(TableInfo {
        name: name.to_owned(),
        count: t.count(),
        capacity: t.capacity(),
        columns: t.columns().map(|(n, c)| (n.to_owned(), c)).collect(),
        memory_size: t.memory_size(),
    })
}

/// Attaches to the existing persistent table `name`, with the columns and
/// row count stored in it.
///
/// # Errors
///
/// [`Error::InvalidName`], [`Error::NotFound`], [`Error::Corrupt`] (not an
/// rswoole table, another layout version, or never finished), [`Error::Busy`],
/// [`Error::Os`].
///
/// # Examples
///
/// ```
/// # use rswoole_shm::{Column, Table};
/// # let name = format!("doc-open-{}", std::process::id());
/// # Table::builder(8).column("user", Column::Str(8)).persistent(&name).build()?
/// #     .set("s1", &[("user", "ann".into())])?;
/// let t = rswoole_shm::persistent::open(&name)?; // e.g. "sessions"
/// for (key, row) in &t {
///     println!("{} {:?}", String::from_utf8_lossy(&key), row);
/// }
/// assert_eq!(t.get("s1")?.unwrap().str("user"), Some("ann"));
/// # rswoole_shm::persistent::remove(&name)?;
/// # Ok::<(), rswoole_shm::Error>(())
/// ```
pub fn open(name: &str) -> Result<Table> {
    attach(name, None)
}

/// Removes persistent table `name`. Processes that have it mapped keep
/// using their (now nameless) copy; the memory is freed when the last one
/// unmaps it, and a new `build` creates a fresh table.
///
/// # Errors
///
/// [`Error::InvalidName`], [`Error::NotFound`], [`Error::Os`].
///
/// # Examples
///
/// ```
/// use rswoole_shm::{persistent, Column, Error, Table};
/// let name = format!("doc-remove-{}", std::process::id());
/// let t = Table::builder(8).column("n", Column::Int).persistent(&name).build()?;
/// persistent::remove(&name)?;
/// assert!(matches!(persistent::open(&name), Err(Error::NotFound { .. })));
/// t.set("still", &[("n", 1.into())])?; // this process keeps its mapping
/// assert!(matches!(persistent::remove(&name), Err(Error::NotFound { .. })));
/// # Ok::<(), rswoole_shm::Error>(())
/// ```
pub fn remove(name: &str) -> Result<()> {
    check_name(name)?;
    sys::shm_unlink(&format!("{SHM_PREFIX}{name}")).map_err(|e| not_found(name, e, "shm_unlink"))
}

fn not_found(name: &str, e: std::io::Error, op: &'static str) -> Error {
    if e.kind() == std::io::ErrorKind::NotFound {
        Error::NotFound {
            name: name.to_owned(),
        }
    } else {
        Error::Os { op, source: e }
    }
}

fn corrupt(name: &str, reason: impl Into<String>) -> Error {
    Error::Corrupt {
        name: name.to_owned(),
        reason: reason.into(),
    }
}

/// Opens `name`; with `want`, creates it (or reinitialises an unfinished
/// one) with that layout, or checks an existing one has it.
pub(crate) fn attach(name: &str, want: Option<(Arc<Schema>, usize)>) -> Result<Table> {
    check_name(name)?;
    let shm_name = format!("{SHM_PREFIX}{name}");
    let fd =
        sys::shm_open(&shm_name, want.is_some()).map_err(|e| not_found(name, e, "shm_open"))?;
    // Held until this function returns (see `sys::FileLock`).
    let Some(_flock) = sys::flock_exclusive(&fd, ATTACH_TIMEOUT).map_err(Error::os("flock"))?
    else {
        return Err(Error::Busy {
            name: name.to_owned(),
        });
    };
    let len = sys::file_len(&fd).map_err(Error::os("fstat"))?;
    let len = usize::try_from(len).map_err(|_| corrupt(name, "larger than the address space"))?;
    let ready = len >= Geometry::HEADER_LEN && {
        let map = Mapping::from_fd(&fd, Geometry::HEADER_LEN).map_err(Error::os("mmap"))?;
        let hdr = layout::header_of(&map).ok_or_else(|| corrupt(name, "short header"))?;
        hdr.state.load(Acquire) == layout::STATE_READY
    };
    if !ready {
        let Some((schema, rows)) = want else {
            return Err(corrupt(
                name,
                "never finished initialising (its creator died?); remove it",
            ));
        };
        let geo = geometry(rows, &schema);
        let total = geo
            .total_len()
            .ok_or_else(|| Error::schema("table too large"))?;
        // Truncating to zero first guarantees all-zero contents.
        sys::set_file_len(&fd, 0).map_err(Error::os("ftruncate"))?;
        sys::set_file_len(&fd, total as u64).map_err(Error::os("ftruncate"))?;
        let map = Mapping::from_fd(&fd, total).map_err(Error::os("mmap"))?;
        let seg = create_segment(map, &schema, geo)?;
        return Ok(Table::from_segment(seg, schema, Some(name.to_owned())));
    }
    let map = Mapping::from_fd(&fd, len).map_err(Error::os("mmap"))?;
    let (schema, geo) = read_layout(name, &map)?;
    if let Some((want_schema, rows)) = &want {
        let want_geo = geometry(*rows, want_schema);
        if layout_hash(want_schema, want_geo) != layout_hash(&schema, geo) {
            return Err(Error::LayoutMismatch {
                name: name.to_owned(),
                expected: describe(*rows, want_schema),
                found: describe(geo.capacity, &schema),
            });
        }
    }
    let seg = Segment::new(map, geo).ok_or_else(|| corrupt(name, "shorter than its layout"))?;
    Ok(Table::from_segment(
        seg,
        Arc::new(schema),
        Some(name.to_owned()),
    ))
}

/// Reads and checks the layout stored in a READY segment's header.
fn read_layout(name: &str, map: &Mapping) -> Result<(Schema, Geometry)> {
    let hdr = layout::header_of(map).ok_or_else(|| corrupt(name, "short header"))?;
    if hdr.magic.load(Relaxed) != layout::MAGIC {
        return Err(corrupt(name, "not an rswoole table (bad magic)"));
    }
    let version = hdr.version.load(Relaxed);
    if version != layout::VERSION {
        return Err(corrupt(
            name,
            format!(
                "layout version {version}, this build reads version {}",
                layout::VERSION
            ),
        ));
    }
    let ncols = hdr.ncols.load(Relaxed) as usize;
    if ncols > layout::MAX_COLUMNS {
        return Err(corrupt(name, "too many columns"));
    }
    let mut cols = Vec::with_capacity(ncols);
    for desc in &hdr.columns[..ncols] {
        let mut bytes = load_bytes(&desc.name, layout::NAME_WORDS * 8);
        while bytes.last() == Some(&0) {
            bytes.pop();
        }
        let col_name =
            String::from_utf8(bytes).map_err(|_| corrupt(name, "column name is not UTF-8"))?;
        let column = Column::from_code(desc.kind.load(Relaxed), desc.size.load(Relaxed))
            .ok_or_else(|| corrupt(name, "unknown column type"))?;
        cols.push((col_name, column));
    }
    let schema = Schema::new(cols).map_err(|e| corrupt(name, e.to_string()))?;
    let capacity = usize::try_from(hdr.capacity.load(Relaxed)).unwrap_or(usize::MAX);
    if capacity == 0 || capacity > MAX_ROWS {
        return Err(corrupt(name, "bad row count"));
    }
    let geo = geometry(capacity, &schema);
    let stored = (
        hdr.index_len.load(Relaxed),
        hdr.buf_words.load(Relaxed),
        hdr.total_len.load(Relaxed),
        hdr.layout_hash.load(Relaxed),
    );
    let expected = (
        geo.index_len as u64,
        geo.buf_words as u64,
        geo.total_len().unwrap_or(0) as u64,
        layout_hash(&schema, geo),
    );
    if stored != expected {
        return Err(corrupt(
            name,
            "header is inconsistent (made by another build or ABI?)",
        ));
    }
    Ok((schema, geo))
}
