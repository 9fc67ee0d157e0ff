//! [`Table`]: a fixed-capacity hash table in shared memory.
//!
//! # How it works
//!
//! The segment (see [`crate::layout`]) holds a header, an open-addressing
//! index of `u64` entries and a pool of exactly `capacity` row slots with a
//! free list. The index has at least twice as many entries as there are
//! rows and is rebuilt when tombstones pile up, so probes stay short and a
//! table built for N rows holds N rows whatever the keys hash to.
//!
//! - **Reads take no lock.** Each row has two buffers and a publish counter
//!   `seq`; buffer `seq & 1` is the current value. A reader copies the
//!   current buffer and checks `seq` did not move (a seqlock); the index has
//!   its own seqlock (`index_gen`) that only moves during a rebuild.
//! - **Writers** of a row hold the row's robust mutex, write the *other*
//!   buffer in full, then bump `seq`. A writer killed half-way leaves only
//!   the inactive buffer torn, so readers never see a torn row and the next
//!   writer has nothing to repair.
//! - **Inserts, deletes and rebuilds** hold the table mutex (then the row
//!   mutex). If its holder died (`EOWNERDEAD`) the next holder rebuilds the
//!   index, free list and count from the rows, which are the source of
//!   truth, before going on.

use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::atomic::{fence, AtomicU64};
use std::sync::Arc;

use crate::layout::{self, Geometry, Segment, DATA_WORD, KEY_WORDS};
use crate::sys::{Mapping, RawGuard, MUTEX_SIZE};
use crate::value::{load_bytes, Schema};
use crate::{persistent, Column, Error, Result, Row, Value};

/// Longest key, in bytes. Longer keys are rejected with
/// [`Error::KeyTooLong`].
pub const MAX_KEY_LEN: usize = KEY_WORDS * 8 - 1;
/// Most rows a table can be built for (2^28).
pub const MAX_ROWS: usize = 1 << 28;

const EMPTY: u64 = 0;
const TOMB: u64 = u64::MAX;
const LIVE: u64 = 1 << 63;
const ROW_MASK: u64 = 0xFFFF_FFFF;

/// A key packed the way rows store it.
struct Key {
    /// `LIVE | len`, as in a live row's meta word.
    meta: u64,
    words: [u64; KEY_WORDS],
    hash: u64,
}

impl Key {
    #[inline]
    fn new(key: &[u8], seed: u64) -> Result<Key> {
        if key.len() > MAX_KEY_LEN {
            return Err(Error::KeyTooLong { len: key.len() });
        }
        let mut bytes = [0u8; KEY_WORDS * 8];
        bytes[..key.len()].copy_from_slice(key);
        let words: [u64; KEY_WORDS] = std::array::from_fn(|i| {
            u64::from_le_bytes(bytes[i * 8..i * 8 + 8].try_into().unwrap_or_default())
        });
        Ok(Key::packed(key.len(), words, seed))
    }

    /// `words` must already be zero past `len` bytes.
    #[inline]
    fn packed(len: usize, words: [u64; KEY_WORDS], seed: u64) -> Key {
        Key {
            meta: LIVE | len as u64,
            hash: hash_key(seed, len, &words),
            words,
        }
    }

    fn from_words(len: usize, mut words: [u64; KEY_WORDS], seed: u64) -> Key {
        // Normalise padding so equal keys compare equal word by word.
        for (i, w) in words.iter_mut().enumerate() {
            let start = i * 8;
            if start >= len {
                *w = 0;
            } else if len - start < 8 {
                *w &= (1u64 << ((len - start) * 8)) - 1;
            }
        }
        Key::packed(len, words, seed)
    }

    /// Whether `buf` holds this key, live. Equal meta words mean equal
    /// lengths, and padding is always zero, so only the words holding key
    /// bytes are compared.
    #[inline]
    fn matches(&self, buf: &[AtomicU64]) -> bool {
        let used = ((self.meta & !LIVE) as usize).div_ceil(8);
        buf[0].load(Relaxed) == self.meta
            && self.words[..used]
                .iter()
                .zip(&buf[1..DATA_WORD])
                .all(|(w, b)| b.load(Relaxed) == *w)
    }

    fn write(&self, buf: &[AtomicU64]) {
        buf[0].store(self.meta, Relaxed);
        for (w, b) in self.words.iter().zip(&buf[1..DATA_WORD]) {
            b.store(*w, Relaxed);
        }
    }

    fn entry(&self, row: usize) -> u64 {
        (self.hash & !ROW_MASK) | (row as u64 + 1)
    }

    fn tag_matches(&self, entry: u64) -> bool {
        entry & !ROW_MASK == self.hash & !ROW_MASK
    }
}

const K: u64 = 0x9E37_79B9_7F4A_7C15;

/// The key hash: stable across builds (persistent tables depend on it),
/// seeded per table.
#[inline]
fn hash_key(seed: u64, len: usize, words: &[u64; KEY_WORDS]) -> u64 {
    let mut h = seed ^ (len as u64).wrapping_mul(K);
    for &w in &words[..len.div_ceil(8)] {
        h = (h ^ w).wrapping_mul(K);
        h ^= h >> 29;
    }
    fmix64(h)
}

#[inline]
fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// FNV-1a, for the layout hash.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Builds a [`Table`]: rows, columns, and optionally a persistent name.
///
/// # Examples
///
/// ```
/// use rswoole_shm::{Column, Table};
/// let table = Table::builder(1024)
///     .column("name", Column::Str(64))
///     .column("score", Column::Int)
///     .column("ratio", Column::Float)
///     .build()?;
/// assert_eq!(table.capacity(), 1024);
/// # Ok::<(), rswoole_shm::Error>(())
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until .build() is called"]
pub struct TableBuilder {
    rows: usize,
    cols: Vec<(String, Column)>,
    persistent: Option<String>,
}

impl TableBuilder {
    /// Adds a column. Columns keep the order they are added in.
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_shm::{Column, Table};
    /// let t = Table::builder(4).column("id", Column::Int).column("tag", Column::Str(8)).build()?;
    /// let cols: Vec<_> = t.columns().collect();
    /// assert_eq!(cols, [("id", Column::Int), ("tag", Column::Str(8))]);
    /// # Ok::<(), rswoole_shm::Error>(())
    /// ```
    pub fn column(mut self, name: impl Into<String>, column: Column) -> TableBuilder {
        self.cols.push((name.into(), column));
        self
    }

    /// Backs the table with the POSIX shared-memory object
    /// `/dev/shm/rswoole.<name>`, which outlives every process.
    ///
    /// `build` creates it, or attaches to it if it exists with the same
    /// layout, finding the rows written before (for example by the server
    /// before a restart). Remove it with [`persistent::remove`] or
    /// `rswoole table rm <name>`.
    ///
    /// POSIX shm rather than System V: the object is a file on a tmpfs, so
    /// it has a readable name (no `ftok` key collisions), ordinary
    /// permissions, shows up in `ls /dev/shm` and `df`, is sized with
    /// `ftruncate` and checked with `fstat`, can be `flock`ed to serialise
    /// creation, and is not bound by `kernel.shmmax`/`shmall`.
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_shm::{persistent, Column, Table};
    /// let name = format!("doc-persistent-{}", std::process::id());
    /// let build = || Table::builder(64).column("visits", Column::Int).persistent(&name).build();
    /// build()?.incr("home", "visits", 1)?;
    /// // A later build (e.g. after a server restart) finds the rows again.
    /// let t = build()?;
    /// assert_eq!(t.name(), Some(name.as_str()));
    /// assert_eq!(t.incr("home", "visits", 1)?, 2);
    /// persistent::remove(&name)?;
    /// # Ok::<(), rswoole_shm::Error>(())
    /// ```
    pub fn persistent(mut self, name: impl Into<String>) -> TableBuilder {
        self.persistent = Some(name.into());
        self
    }

    /// Creates the table (or attaches to the persistent one).
    ///
    /// Build tables *before* forking workers: children inherit the shared
    /// mapping, and every process then sees the same rows.
    ///
    /// # Errors
    ///
    /// - [`Error::InvalidSchema`] for zero or more than [`MAX_ROWS`] rows, no
    ///   columns, a duplicate or over-long column name, a bad `Str` size.
    /// - For persistent tables: [`Error::InvalidName`],
    ///   [`Error::LayoutMismatch`] if it exists with other columns or rows,
    ///   [`Error::Corrupt`], [`Error::Busy`].
    /// - [`Error::Os`] if the memory cannot be mapped.
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_shm::{Column, Error, Table};
    /// let t = Table::builder(10).column("n", Column::Int).build()?;
    /// assert_eq!((t.capacity(), t.count()), (10, 0));
    /// // A table needs at least one column:
    /// assert!(matches!(Table::builder(10).build(), Err(Error::InvalidSchema { .. })));
    /// # Ok::<(), rswoole_shm::Error>(())
    /// ```
    pub fn build(self) -> Result<Table> {
        if self.rows == 0 || self.rows > MAX_ROWS {
            return Err(Error::schema(format!(
                "rows must be 1..={MAX_ROWS}, not {}",
                self.rows
            )));
        }
        let schema = Arc::new(Schema::new(self.cols)?);
        match self.persistent {
            Some(name) => persistent::attach(&name, Some((schema, self.rows))),
            None => {
                let geo = geometry(self.rows, &schema);
                let len = geo
                    .total_len()
                    .ok_or_else(|| Error::schema("table too large"))?;
                let map = Mapping::anonymous(len).map_err(Error::os("mmap"))?;
                let seg = create_segment(map, &schema, geo)?;
                Ok(Table::from_segment(seg, schema, None))
            }
        }
    }
}

/// The geometry of a table of `rows` rows with `schema`.
pub(crate) fn geometry(rows: usize, schema: &Schema) -> Geometry {
    Geometry {
        capacity: rows,
        index_len: (rows * 2).next_power_of_two().max(16),
        buf_words: schema.buf_words,
    }
}

/// Human description of a layout, used in errors and `rswoole table list`.
pub(crate) fn describe(rows: usize, schema: &Schema) -> String {
    format!("{rows} rows of [{}]", schema.describe())
}

/// Hash of everything that must match for a segment to be reused.
pub(crate) fn layout_hash(schema: &Schema, geo: Geometry) -> u64 {
    fnv1a(
        format!(
            "v{} {} index={} buf={} header={} rowhdr={} mutex={}",
            layout::VERSION,
            describe(geo.capacity, schema),
            geo.index_len,
            geo.buf_words,
            Geometry::HEADER_LEN,
            std::mem::size_of::<layout::RowHdr>(),
            MUTEX_SIZE
        )
        .as_bytes(),
    )
}

/// Maps nothing: wraps a fresh mapping, writes the header and free list, and
/// publishes it.
pub(crate) fn create_segment(map: Mapping, schema: &Schema, geo: Geometry) -> Result<Segment> {
    let seg = Segment::new(map, geo).ok_or_else(|| Error::schema("mapping too small"))?;
    let seed = RandomState::new().hash_one(0x5eed_u64);
    seg.initialise(|seg| {
        let h = seg.header();
        h.magic.store(layout::MAGIC, Relaxed);
        h.version.store(layout::VERSION, Relaxed);
        h.layout_hash.store(layout_hash(schema, geo), Relaxed);
        h.seed.store(seed, Relaxed);
        h.capacity.store(geo.capacity as u64, Relaxed);
        h.index_len.store(geo.index_len as u64, Relaxed);
        h.buf_words.store(geo.buf_words as u64, Relaxed);
        h.total_len
            .store(geo.total_len().unwrap_or(0) as u64, Relaxed);
        h.ncols.store(schema.cols.len() as u64, Relaxed);
        for (desc, col) in h.columns.iter().zip(&schema.cols) {
            crate::value::store_bytes(&desc.name, col.name.as_bytes());
            let (kind, size) = col.column.code();
            desc.kind.store(kind, Relaxed);
            desc.size.store(size, Relaxed);
        }
        let mut head = 0;
        for r in (0..geo.capacity).rev() {
            seg.row(r).hdr.next_free.store(head, Relaxed);
            head = r as u64 + 1;
        }
        h.free_head.store(head, Relaxed);
    })
    .map_err(Error::os("pthread_mutex_init"))?;
    Ok(seg)
}

/// A fixed-capacity hash table in shared memory, shared by every process
/// forked after it was built.
///
/// Keys are byte strings of at most [`MAX_KEY_LEN`] bytes; rows have the
/// typed columns given to [`Table::builder`]. `Table` is a cheap handle
/// (`Clone` shares the same rows) and is `Send + Sync`.
///
/// - Reads ([`get`](Table::get), [`get_field`](Table::get_field),
///   [`exists`](Table::exists), iteration) take no lock and never see a
///   half-written row.
/// - Writes to one row ([`set`](Table::set) of an existing key,
///   [`incr`](Table::incr), [`update`](Table::update)) lock only that row;
///   inserting or deleting a key also takes the table lock briefly.
/// - A process killed with `SIGKILL` at any point, holding any lock, does
///   not deadlock the others nor tear a row (see the module docs of
///   `rswoole_shm::table` for how).
///
/// # Examples
///
/// ```
/// use rswoole_shm::{Column, Table, Value};
/// let t = Table::builder(100)
///     .column("name", Column::Str(32))
///     .column("score", Column::Int)
///     .column("ratio", Column::Float)
///     .build()?;
/// t.set("alice", &[("name", "Alice".into()), ("score", 10.into())])?;
/// assert_eq!(t.incr("alice", "score", 5)?, 15);
/// assert_eq!(t.get_field("alice", "score")?, Some(Value::Int(15)));
/// let row = t.get("alice")?.unwrap();
/// assert_eq!(row.str("name"), Some("Alice"));
/// assert_eq!(row.float("ratio"), Some(0.0)); // unset columns are zero
/// assert_eq!(t.count(), 1);
/// for (key, row) in &t {
///     println!("{} -> {row:?}", String::from_utf8_lossy(&key));
/// }
/// assert!(t.del("alice")?);
/// assert!(!t.exists("alice")?);
/// # Ok::<(), rswoole_shm::Error>(())
/// ```
#[derive(Clone)]
pub struct Table {
    inner: Arc<Inner>,
}

struct Inner {
    seg: Segment,
    schema: Arc<Schema>,
    seed: u64,
    mask: usize,
    capacity: usize,
    name: Option<String>,
}

impl fmt::Debug for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Table")
            .field("name", &self.inner.name)
            .field("capacity", &self.inner.capacity)
            .field("count", &self.count())
            .field("columns", &self.inner.schema.describe())
            .finish()
    }
}

impl Table {
    /// Starts building a table that holds exactly `rows` rows.
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_shm::{Column, Table};
    /// let t = Table::builder(2).column("n", Column::Int).build()?;
    /// t.set("a", &[("n", 1.into())])?;
    /// t.set("b", &[("n", 2.into())])?;
    /// assert!(t.set("c", &[("n", 3.into())]).is_err()); // exactly 2 rows
    /// # Ok::<(), rswoole_shm::Error>(())
    /// ```
    pub fn builder(rows: usize) -> TableBuilder {
        TableBuilder {
            rows,
            cols: Vec::new(),
            persistent: None,
        }
    }

    /// Attaches to the persistent table `name`, reading its columns from
    /// the segment (see [`persistent::open`]).
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`], [`Error::InvalidName`], [`Error::Corrupt`],
    /// [`Error::Busy`], [`Error::Os`].
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_shm::{persistent, Column, Table};
    /// let name = format!("doc-table-open-{}", std::process::id());
    /// let t = Table::builder(8).column("n", Column::Int).persistent(&name).build()?;
    /// t.set("k", &[("n", 5.into())])?;
    /// let again = Table::open(&name)?; // columns read from the segment
    /// assert_eq!(again.layout(), t.layout());
    /// assert_eq!(again.get("k")?.unwrap().int("n"), Some(5));
    /// persistent::remove(&name)?;
    /// # Ok::<(), rswoole_shm::Error>(())
    /// ```
    pub fn open(name: &str) -> Result<Table> {
        persistent::open(name)
    }

    pub(crate) fn from_segment(seg: Segment, schema: Arc<Schema>, name: Option<String>) -> Table {
        let geo = seg.geometry();
        let seed = seg.header().seed.load(Relaxed);
        Table {
            inner: Arc::new(Inner {
                seg,
                schema,
                seed,
                mask: geo.index_len - 1,
                capacity: geo.capacity,
                name,
            }),
        }
    }

    fn key(&self, key: &[u8]) -> Result<Key> {
        Key::new(key, self.inner.seed)
    }

    /// Rows the table holds (the `rows` it was built with).
    pub fn capacity(&self) -> usize {
        self.inner.capacity
    }

    /// Rows in use.
    pub fn count(&self) -> usize {
        self.inner.seg.header().count.load(Relaxed) as usize
    }

    /// Bytes of shared memory the table occupies.
    pub fn memory_size(&self) -> usize {
        self.inner.seg.mapped_len()
    }

    /// The persistent name, if the table is persistent.
    pub fn name(&self) -> Option<&str> {
        self.inner.name.as_deref()
    }

    /// `(name, type)` of each column, in order.
    pub fn columns(&self) -> impl Iterator<Item = (&str, Column)> + '_ {
        self.inner
            .schema
            .cols
            .iter()
            .map(|c| (c.name.as_str(), c.column))
    }

    /// A description of the layout: rows and columns.
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_shm::{Column, Table};
    /// let t = Table::builder(8).column("n", Column::Int).build()?;
    /// assert!(t.layout().starts_with("8 rows of ["));
    /// assert!(t.memory_size() > 0);
    /// assert_eq!(t.name(), None); // not persistent
    /// # Ok::<(), rswoole_shm::Error>(())
    /// ```
    pub fn layout(&self) -> String {
        describe(self.inner.capacity, &self.inner.schema)
    }

    /// The row stored under `key`, or `None`.
    ///
    /// # Errors
    ///
    /// [`Error::KeyTooLong`].
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_shm::{Column, Table};
    /// let t = Table::builder(8).column("name", Column::Str(8)).build()?;
    /// assert!(t.get("u1")?.is_none());
    /// t.set("u1", &[("name", "ann".into())])?;
    /// assert_eq!(t.get("u1")?.unwrap().str("name"), Some("ann"));
    /// # Ok::<(), rswoole_shm::Error>(())
    /// ```
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Row>> {
        let k = self.key(key.as_ref())?;
        let schema = &self.inner.schema;
        Ok(self
            .lookup(&k, |buf| schema.decode_all(buf))?
            .map(|(_, _, values)| Row {
                schema: schema.clone(),
                values,
            }))
    }

    /// One column of the row under `key`, or `None` if there is no row.
    ///
    /// # Errors
    ///
    /// [`Error::KeyTooLong`], [`Error::UnknownColumn`].
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_shm::{Column, Table, Value};
    /// let t = Table::builder(8).column("score", Column::Int).build()?;
    /// t.set("u1", &[("score", 42.into())])?;
    /// assert_eq!(t.get_field("u1", "score")?, Some(Value::Int(42)));
    /// assert_eq!(t.get_field("u2", "score")?, None);
    /// assert!(t.get_field("u1", "nope").is_err());
    /// # Ok::<(), rswoole_shm::Error>(())
    /// ```
    pub fn get_field(&self, key: impl AsRef<[u8]>, column: &str) -> Result<Option<Value>> {
        let (i, _) = self.inner.schema.find(column)?;
        let k = self.key(key.as_ref())?;
        let schema = &self.inner.schema;
        Ok(self
            .lookup(&k, |buf| schema.decode(i, buf))?
            .map(|(_, _, v)| v))
    }

    /// Whether a row is stored under `key`.
    ///
    /// # Errors
    ///
    /// [`Error::KeyTooLong`].
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_shm::{Column, Table};
    /// let t = Table::builder(8).column("n", Column::Int).build()?;
    /// t.set(b"binary\0key", &[])?; // keys are bytes; a row with every column zero
    /// assert!(t.exists(b"binary\0key")?);
    /// assert!(!t.exists("other")?);
    /// # Ok::<(), rswoole_shm::Error>(())
    /// ```
    pub fn exists(&self, key: impl AsRef<[u8]>) -> Result<bool> {
        let k = self.key(key.as_ref())?;
        Ok(self.lookup(&k, |_| ())?.is_some())
    }

    /// Stores `fields` in the row under `key`, creating the row if needed.
    ///
    /// Columns not named keep their value (or are zero / empty in a new
    /// row), as in Swoole. `Int` values are accepted by `Float` columns.
    /// Readers see the row either wholly before or wholly after this call.
    ///
    /// # Errors
    ///
    /// [`Error::KeyTooLong`], [`Error::UnknownColumn`],
    /// [`Error::TypeMismatch`], [`Error::StrTooLong`], [`Error::Full`]. All
    /// are detected before anything is written.
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_shm::{Column, Table, Value};
    /// let t = Table::builder(2).column("n", Column::Int).column("s", Column::Str(4)).build()?;
    /// t.set("a", &[("n", 1.into()), ("s", "four".into())])?;
    /// t.set("a", &[("n", Value::Int(2))])?; // "s" is kept
    /// assert_eq!(t.get("a")?.unwrap().str("s"), Some("four"));
    /// assert!(t.set("a", &[("s", "fives".into())]).is_err()); // too long: nothing changed
    /// # Ok::<(), rswoole_shm::Error>(())
    /// ```
    pub fn set(&self, key: impl AsRef<[u8]>, fields: &[(&str, Value)]) -> Result<()> {
        let k = self.key(key.as_ref())?;
        let schema = &self.inner.schema;
        // Resolve and check every field before writing anything; column
        // indices go on the stack for the usual short field lists.
        let mut small = [0usize; 8];
        let mut large = Vec::new();
        let idx: &mut [usize] = if fields.len() <= small.len() {
            &mut small[..fields.len()]
        } else {
            large.resize(fields.len(), 0);
            &mut large
        };
        for ((name, value), slot) in fields.iter().zip(idx.iter_mut()) {
            let (i, _) = schema.find(name)?;
            schema.check(i, value)?;
            *slot = i;
        }
        let idx = &*idx;
        self.modify(&k, true, |buf| {
            for ((_, value), i) in fields.iter().zip(idx) {
                schema.encode(*i, value, buf);
            }
        })?;
        Ok(())
    }

    /// Stores one column of the row under `key` (see [`Table::set`]).
    ///
    /// # Errors
    ///
    /// As [`Table::set`].
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_shm::{Column, Table};
    /// let t = Table::builder(8).column("name", Column::Str(8)).column("age", Column::Int).build()?;
    /// t.set_field("u1", "name", "ann")?;
    /// t.set_field("u1", "age", 30)?;
    /// let row = t.get("u1")?.unwrap();
    /// assert_eq!((row.str("name"), row.int("age")), (Some("ann"), Some(30)));
    /// # Ok::<(), rswoole_shm::Error>(())
    /// ```
    pub fn set_field(
        &self,
        key: impl AsRef<[u8]>,
        column: &str,
        value: impl Into<Value>,
    ) -> Result<()> {
        self.set(key, &[(column, value.into())])
    }

    /// Atomically adds `by` (wrapping) to the `Int` column of the row under
    /// `key` and returns the new value. A missing row is created first, with
    /// every column zero, as in Swoole.
    ///
    /// # Errors
    ///
    /// [`Error::KeyTooLong`], [`Error::UnknownColumn`],
    /// [`Error::TypeMismatch`] (not an `Int` column), [`Error::Full`].
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_shm::{Column, Error, Table};
    /// let t = Table::builder(8).column("hits", Column::Int).column("ratio", Column::Float).build()?;
    /// assert_eq!(t.incr("/", "hits", 1)?, 1); // row created
    /// assert_eq!(t.incr("/", "hits", 10)?, 11);
    /// assert!(matches!(t.incr("/", "ratio", 1), Err(Error::TypeMismatch { .. })));
    /// # Ok::<(), rswoole_shm::Error>(())
    /// ```
    pub fn incr(&self, key: impl AsRef<[u8]>, column: &str, by: i64) -> Result<i64> {
        let w = self.numeric_word(column, Column::Int)?;
        let k = self.key(key.as_ref())?;
        self.modify(&k, true, |buf| {
            let v = (buf[w].load(Relaxed) as i64).wrapping_add(by);
            buf[w].store(v as u64, Relaxed);
            v
        })
        .map(|v| v.expect("modify with create=true always returns a value"))
    }

    /// Atomically subtracts `by` from an `Int` column: `incr(key, column, -by)`.
    ///
    /// # Errors
    ///
    /// As [`Table::incr`].
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_shm::{Column, Table};
    /// let t = Table::builder(8).column("stock", Column::Int).build()?;
    /// t.set("apple", &[("stock", 5.into())])?;
    /// assert_eq!(t.decr("apple", "stock", 2)?, 3);
    /// # Ok::<(), rswoole_shm::Error>(())
    /// ```
    pub fn decr(&self, key: impl AsRef<[u8]>, column: &str, by: i64) -> Result<i64> {
        self.incr(key, column, by.wrapping_neg())
    }

    /// Atomically adds `by` to the `Float` column of the row under `key`
    /// and returns the new value; creates a missing row like
    /// [`Table::incr`].
    ///
    /// # Errors
    ///
    /// As [`Table::incr`], with [`Error::TypeMismatch`] for a non-`Float`
    /// column.
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_shm::{Column, Table};
    /// let t = Table::builder(8).column("load", Column::Float).build()?;
    /// assert_eq!(t.incr_float("w0", "load", 0.5)?, 0.5);
    /// assert_eq!(t.incr_float("w0", "load", 0.25)?, 0.75);
    /// # Ok::<(), rswoole_shm::Error>(())
    /// ```
    pub fn incr_float(&self, key: impl AsRef<[u8]>, column: &str, by: f64) -> Result<f64> {
        let w = self.numeric_word(column, Column::Float)?;
        let k = self.key(key.as_ref())?;
        self.modify(&k, true, |buf| {
            let v = f64::from_bits(buf[w].load(Relaxed)) + by;
            buf[w].store(v.to_bits(), Relaxed);
            v
        })
        .map(|v| v.expect("modify with create=true always returns a value"))
    }

    /// Atomically subtracts `by` from a `Float` column.
    ///
    /// # Errors
    ///
    /// As [`Table::incr_float`].
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_shm::{Column, Table};
    /// let t = Table::builder(8).column("load", Column::Float).build()?;
    /// t.set("w0", &[("load", 1.0.into())])?;
    /// assert_eq!(t.decr_float("w0", "load", 0.25)?, 0.75);
    /// # Ok::<(), rswoole_shm::Error>(())
    /// ```
    pub fn decr_float(&self, key: impl AsRef<[u8]>, column: &str, by: f64) -> Result<f64> {
        self.incr_float(key, column, -by)
    }

    /// Read-modify-write of a whole row under its lock: `f` gets the
    /// current row, may change it with [`Row::set`], and the result is
    /// stored when `f` returns. Returns `None` (and does not call `f`) if
    /// there is no row under `key`.
    ///
    /// Other writers of this row wait while `f` runs, so keep it short; from
    /// inside `f`, writing this same row again through the table returns
    /// [`Error::WouldDeadlock`] instead of hanging.
    ///
    /// # Errors
    ///
    /// [`Error::KeyTooLong`], [`Error::WouldDeadlock`].
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_shm::{Column, Table};
    /// let t = Table::builder(4).column("hits", Column::Int).column("last", Column::Str(8)).build()?;
    /// t.set("page", &[("hits", 1.into())])?;
    /// let hits = t.update("page", |row| {
    ///     let hits = row.int("hits").unwrap_or(0) + 1;
    ///     row.set("hits", hits).and(row.set("last", "bob")).map(|()| hits)
    /// })?;
    /// assert_eq!(hits.transpose()?, Some(2));
    /// # Ok::<(), rswoole_shm::Error>(())
    /// ```
    pub fn update<R>(
        &self,
        key: impl AsRef<[u8]>,
        f: impl FnOnce(&mut Row) -> R,
    ) -> Result<Option<R>> {
        let k = self.key(key.as_ref())?;
        let schema = &self.inner.schema;
        let mut f = Some(f);
        self.modify(&k, false, |buf| {
            let mut row = Row {
                schema: schema.clone(),
                values: schema.decode_all(buf),
            };
            let out = (f.take().expect("modify applies once"))(&mut row);
            for (i, v) in row.values.iter().enumerate() {
                schema.encode(i, v, buf);
            }
            out
        })
    }

    /// Removes the row under `key`; returns whether there was one.
    ///
    /// # Errors
    ///
    /// [`Error::KeyTooLong`].
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_shm::{Column, Table};
    /// let t = Table::builder(8).column("n", Column::Int).build()?;
    /// t.set("a", &[("n", 1.into())])?;
    /// assert!(t.del("a")?);
    /// assert!(!t.del("a")?); // already gone
    /// assert_eq!(t.count(), 0);
    /// # Ok::<(), rswoole_shm::Error>(())
    /// ```
    pub fn del(&self, key: impl AsRef<[u8]>) -> Result<bool> {
        let k = self.key(key.as_ref())?;
        let _table = self.lock_table()?;
        let Some((r, pos, ())) = self.lookup(&k, |_| ())? else {
            return Ok(false);
        };
        {
            let _row = self.lock_row(r)?;
            self.publish(r, |src, dst| {
                copy(src, dst);
                dst[0].store(0, Relaxed);
            });
        }
        let hdr = self.inner.seg.header();
        self.inner.seg.index()[pos].store(TOMB, Release);
        hdr.tombstones.fetch_add(1, Relaxed);
        hdr.count.fetch_sub(1, Relaxed);
        self.inner
            .seg
            .row(r)
            .hdr
            .next_free
            .store(hdr.free_head.load(Relaxed), Relaxed);
        hdr.free_head.store(r as u64 + 1, Relaxed);
        Ok(true)
    }

    /// Iterates over `(key, row)` snapshots of every row.
    ///
    /// Iteration takes no lock: each row is read consistently, but rows
    /// inserted or deleted during the iteration may or may not be seen.
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_shm::{Column, Table};
    /// let t = Table::builder(8).column("n", Column::Int).build()?;
    /// t.set("a", &[("n", 1.into())])?;
    /// t.set("b", &[("n", 2.into())])?;
    /// let mut sum: Vec<(Vec<u8>, i64)> = t.iter().map(|(k, row)| (k, row.int("n").unwrap())).collect();
    /// sum.sort();
    /// assert_eq!(sum, [(b"a".to_vec(), 1), (b"b".to_vec(), 2)]);
    /// # Ok::<(), rswoole_shm::Error>(())
    /// ```
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            table: self,
            next: 0,
        }
    }

    fn numeric_word(&self, column: &str, want: Column) -> Result<usize> {
        let (_, c) = self.inner.schema.find(column)?;
        if c.column != want {
            return Err(Error::TypeMismatch {
                column: column.to_owned(),
                expected: c.column,
            });
        }
        Ok(c.word)
    }

    /// Seqlock read of row `r`: `f` sees the current buffer, and its result
    /// is returned only if no writer published meanwhile.
    #[inline]
    fn read_stable<T>(&self, r: usize, mut f: impl FnMut(&[AtomicU64]) -> T) -> T {
        let row = self.inner.seg.row(r);
        let mut spins = 0u32;
        loop {
            let s1 = row.hdr.seq.load(Acquire);
            let out = f(row.buf(s1));
            fence(Acquire);
            if row.hdr.seq.load(Relaxed) == s1 {
                return out;
            }
            spins += 1;
            if spins > 64 {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
    }

    /// Publishes a new value of row `r`: `f` fills the inactive buffer
    /// (given the active one to copy from), then `seq` moves. The caller
    /// holds the row lock.
    fn publish<T>(&self, r: usize, f: impl FnOnce(&[AtomicU64], &[AtomicU64]) -> T) -> T {
        let row = self.inner.seg.row(r);
        let s = row.hdr.seq.load(Relaxed);
        // Orders the earlier `seq` store that retired this buffer before our
        // writes to it, for readers that still read it (they then see `seq`
        // moved and retry).
        fence(Release);
        let out = f(row.buf(s), row.buf(s.wrapping_add(1)));
        row.hdr.seq.store(s.wrapping_add(1), Release);
        out
    }

    /// Lock-free lookup: `(row, index position, f(buffer))` of the live row
    /// holding `k`.
    #[inline]
    fn lookup<T>(
        &self,
        k: &Key,
        mut f: impl FnMut(&[AtomicU64]) -> T,
    ) -> Result<Option<(usize, usize, T)>> {
        let seg = &self.inner.seg;
        let hdr = seg.header();
        let index = seg.index();
        loop {
            let g1 = hdr.index_gen.load(Acquire);
            if g1 & 1 == 1 {
                // A rebuild is running, or its process died: wait for it (or
                // repair it) by taking the table lock once.
                drop(self.lock_table()?);
                continue;
            }
            let mut pos = k.hash as usize & self.inner.mask;
            for _ in 0..index.len() {
                let e = index[pos].load(Acquire);
                if e == EMPTY {
                    break;
                }
                if e != TOMB && k.tag_matches(e) {
                    let r = (e & ROW_MASK) as usize;
                    if (1..=self.inner.capacity).contains(&r) {
                        let out = self.read_stable(r - 1, |buf| k.matches(buf).then(|| f(buf)));
                        if let Some(out) = out {
                            return Ok(Some((r - 1, pos, out)));
                        }
                    }
                }
                pos = (pos + 1) & self.inner.mask;
            }
            // A hit validates itself (a consistent live row with our key); a
            // miss is only trusted if no rebuild moved entries meanwhile.
            fence(Acquire);
            if hdr.index_gen.load(Relaxed) == g1 {
                return Ok(None);
            }
        }
    }

    fn lock_row(&self, r: usize) -> Result<RawGuard<'_>> {
        let mut g = self.inner.seg.row(r).hdr.lock.lock()?;
        // A writer that died holding the row lock only ever touched the
        // inactive buffer, which the next writer rewrites in full.
        g.mark_consistent();
        Ok(g)
    }

    fn lock_table(&self) -> Result<RawGuard<'_>> {
        let hdr = self.inner.seg.header();
        let mut g = hdr.table_lock.lock()?;
        if g.owner_died() || hdr.index_gen.load(Relaxed) & 1 == 1 {
            self.rebuild()?;
            g.mark_consistent();
        }
        Ok(g)
    }

    /// Changes the row holding `k` with `apply` (on a copy of its current
    /// value), inserting a zeroed row first if `create`.
    fn modify<T>(
        &self,
        k: &Key,
        create: bool,
        mut apply: impl FnMut(&[AtomicU64]) -> T,
    ) -> Result<Option<T>> {
        // Fast path: an existing row, only its lock.
        if let Some((r, _, ())) = self.lookup(k, |_| ())? {
            let _row = self.lock_row(r)?;
            let row = self.inner.seg.row(r);
            if k.matches(row.buf(row.hdr.seq.load(Relaxed))) {
                return Ok(Some(self.publish(r, |src, dst| {
                    copy(src, dst);
                    apply(dst)
                })));
            }
            // Deleted (and maybe reused) since the lookup: take the slow path.
        }
        let _table = self.lock_table()?;
        if let Some((r, _, ())) = self.lookup(k, |_| ())? {
            // Deletes hold the table lock, so the row cannot change key now.
            let _row = self.lock_row(r)?;
            return Ok(Some(self.publish(r, |src, dst| {
                copy(src, dst);
                apply(dst)
            })));
        }
        if !create {
            return Ok(None);
        }
        self.insert_locked(k, apply).map(Some)
    }

    /// Inserts `k` (known absent) into a free row. Holds the table lock.
    fn insert_locked<T>(&self, k: &Key, apply: impl FnOnce(&[AtomicU64]) -> T) -> Result<T> {
        let seg = &self.inner.seg;
        let hdr = seg.header();
        let index = seg.index();
        let used = hdr.count.load(Relaxed) + hdr.tombstones.load(Relaxed) + 1;
        if used * 4 > index.len() as u64 * 3 {
            self.rebuild()?;
        }
        let mut head = hdr.free_head.load(Relaxed);
        if head > self.inner.capacity as u64 {
            self.rebuild()?;
            head = hdr.free_head.load(Relaxed);
        }
        if head == 0 {
            return Err(Error::Full {
                capacity: self.inner.capacity,
            });
        }
        let r = (head - 1) as usize;
        let next = seg.row(r).hdr.next_free.load(Relaxed);
        let out = {
            let _row = self.lock_row(r)?;
            self.publish(r, |_src, dst| {
                for w in dst {
                    w.store(0, Relaxed);
                }
                k.write(dst);
                apply(dst)
            })
        };
        hdr.free_head.store(
            if next <= self.inner.capacity as u64 {
                next
            } else {
                0
            },
            Relaxed,
        );
        let pos = self.vacant(k.hash);
        if index[pos].load(Relaxed) == TOMB {
            hdr.tombstones.fetch_sub(1, Relaxed);
        }
        index[pos].store(k.entry(r), Release);
        hdr.count.fetch_add(1, Relaxed);
        Ok(out)
    }

    /// First empty or tombstone index position on `hash`'s probe sequence.
    fn vacant(&self, hash: u64) -> usize {
        let index = self.inner.seg.index();
        let mut pos = hash as usize & self.inner.mask;
        loop {
            let e = index[pos].load(Relaxed);
            if e == EMPTY || e == TOMB {
                return pos;
            }
            pos = (pos + 1) & self.inner.mask;
        }
    }

    /// Rebuilds index, free list, count and tombstones from the rows.
    /// Holds the table lock. Idempotent, so a crash during it is repaired
    /// by the next holder doing it again.
    fn rebuild(&self) -> Result<()> {
        let seg = &self.inner.seg;
        let hdr = seg.header();
        let index = seg.index();
        let gen = hdr.index_gen.load(Relaxed) | 1;
        hdr.index_gen.store(gen, Relaxed);
        fence(Release);
        for e in index {
            e.store(EMPTY, Relaxed);
        }
        let mut count = 0;
        let mut free = 0u64;
        for r in (0..self.inner.capacity).rev() {
            let (meta, words) = self.read_stable(r, |buf| {
                let mut w = [0u64; KEY_WORDS];
                for (o, b) in w.iter_mut().zip(&buf[1..DATA_WORD]) {
                    *o = b.load(Relaxed);
                }
                (buf[0].load(Relaxed), w)
            });
            let len = (meta & !LIVE) as usize;
            if meta & LIVE != 0 && len <= MAX_KEY_LEN {
                let k = Key::from_words(len, words, self.inner.seed);
                let mut pos = k.hash as usize & self.inner.mask;
                let mut dup = false;
                loop {
                    let e = index[pos].load(Relaxed);
                    if e == EMPTY {
                        break;
                    }
                    let other = (e & ROW_MASK) as usize - 1;
                    if k.tag_matches(e) && self.read_stable(other, |buf| k.matches(buf)) {
                        dup = true;
                        break;
                    }
                    pos = (pos + 1) & self.inner.mask;
                }
                if !dup {
                    index[pos].store(k.entry(r), Relaxed);
                    count += 1;
                    continue;
                }
            }
            if meta != 0 {
                // Never produced by this crate (a duplicate key or a bad
                // length): retire the row so it can be reused.
                let _row = self.lock_row(r)?;
                self.publish(r, |src, dst| {
                    copy(src, dst);
                    dst[0].store(0, Relaxed);
                });
            }
            seg.row(r).hdr.next_free.store(free, Relaxed);
            free = r as u64 + 1;
        }
        hdr.count.store(count, Relaxed);
        hdr.tombstones.store(0, Relaxed);
        hdr.free_head.store(free, Relaxed);
        hdr.index_gen.store(gen.wrapping_add(1), Release);
        Ok(())
    }
}

/// Test hooks that simulate a process dying at the worst moment; used by
/// the crash tests through `examples/shm_stress.rs`. Not part of the API: they exist only
/// with the `fault-injection` feature, which the crate's own tests and examples turn on.
#[cfg(feature = "fault-injection")]
#[doc(hidden)]
impl Table {
    /// Takes row `key`'s lock, fills its inactive buffer with `garbage`
    /// (as if killed mid-write), prints `locked`, and sleeps forever.
    pub fn __die_mid_row_write(&self, key: &str, garbage: u64) -> Result<std::convert::Infallible> {
        let k = self.key(key.as_bytes())?;
        let (r, _, ()) = self.lookup(&k, |_| ())?.ok_or(Error::NotFound {
            name: key.to_owned(),
        })?;
        let _row = self.lock_row(r)?;
        let row = self.inner.seg.row(r);
        for w in row.buf(row.hdr.seq.load(Relaxed).wrapping_add(1)) {
            w.store(garbage, Relaxed);
        }
        println!("locked");
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }

    /// Takes the table lock, starts an index rebuild (odd generation, index
    /// half cleared), prints `locked`, and sleeps forever.
    pub fn __die_mid_rebuild(&self) -> Result<std::convert::Infallible> {
        let _table = self.lock_table()?;
        let hdr = self.inner.seg.header();
        hdr.index_gen.fetch_add(1, Release);
        let index = self.inner.seg.index();
        for e in &index[..index.len() / 2] {
            e.store(EMPTY, Relaxed);
        }
        hdr.free_head.store(u64::MAX, Relaxed);
        println!("locked");
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
}

fn copy(src: &[AtomicU64], dst: &[AtomicU64]) {
    for (s, d) in src.iter().zip(dst) {
        d.store(s.load(Relaxed), Relaxed);
    }
}

/// Iterator over `(key, row)` snapshots; see [`Table::iter`].
///
/// # Examples
///
/// ```
/// use rswoole_shm::{Column, Table};
/// let t = Table::builder(8).column("n", Column::Int).build()?;
/// t.set("only", &[("n", 7.into())])?;
/// let mut it = t.iter(); // or `for (key, row) in &t`
/// let (key, row) = it.next().unwrap();
/// assert_eq!((key.as_slice(), row.int("n")), (&b"only"[..], Some(7)));
/// assert!(it.next().is_none());
/// # Ok::<(), rswoole_shm::Error>(())
/// ```
#[derive(Debug)]
pub struct Iter<'a> {
    table: &'a Table,
    next: usize,
}

impl Iterator for Iter<'_> {
    type Item = (Vec<u8>, Row);

    fn next(&mut self) -> Option<(Vec<u8>, Row)> {
        let t = self.table;
        let schema = &t.inner.schema;
        while self.next < t.inner.capacity {
            let r = self.next;
            self.next += 1;
            let snap = t.read_stable(r, |buf| {
                let meta = buf[0].load(Relaxed);
                let len = (meta & !LIVE) as usize;
                (meta & LIVE != 0 && len <= MAX_KEY_LEN)
                    .then(|| (load_bytes(&buf[1..DATA_WORD], len), schema.decode_all(buf)))
            });
            if let Some((key, values)) = snap {
                return Some((
                    key,
                    Row {
                        schema: schema.clone(),
                        values,
                    },
                ));
            }
        }
        None
    }
}

impl<'a> IntoIterator for &'a Table {
    type Item = (Vec<u8>, Row);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_padding_is_normalised() {
        let a = Key::new(b"abc", 1).unwrap();
        let b = Key::from_words(
            3,
            [u64::from_le_bytes(*b"abcXXXXX"), 7, 0, 0, 0, 0, 0, 0],
            1,
        );
        assert_eq!(a.words, b.words);
        assert_eq!(a.hash, b.hash);
        assert!(Key::new(&[0; 64], 1).is_err());
        assert!(Key::new(&[0; 63], 1).is_ok());
    }

    #[test]
    fn colliding_keys_all_fit_and_survive_deletes() {
        let t = Table::builder(8).column("v", Column::Int).build().unwrap();
        // Eight keys whose probe sequences all start at the same slot.
        let home = |k: &str| t.key(k.as_bytes()).unwrap().hash as usize & t.inner.mask;
        let target = home("0");
        let keys: Vec<String> = (0..)
            .map(|i: u32| i.to_string())
            .filter(|k| home(k) == target)
            .take(8)
            .collect();
        for (i, k) in keys.iter().enumerate() {
            t.set(k, &[("v", Value::Int(i as i64))]).unwrap();
        }
        assert!(matches!(
            t.set("x", &[("v", 0.into())]),
            Err(Error::Full { capacity: 8 })
        ));
        for (i, k) in keys.iter().enumerate().filter(|(i, _)| i % 2 == 0) {
            assert!(t.del(k).unwrap(), "{i}");
        }
        for (i, k) in keys.iter().enumerate() {
            let want = (i % 2 == 1).then_some(Value::Int(i as i64));
            assert_eq!(t.get_field(k, "v").unwrap(), want, "{k}");
        }
        for k in keys.iter().step_by(2) {
            t.set(k, &[("v", Value::Int(-1))]).unwrap();
        }
        assert_eq!(t.count(), 8);
        assert_eq!(t.iter().count(), 8);
        assert_eq!(t.get_field(&keys[0], "v").unwrap(), Some(Value::Int(-1)));
    }

    #[test]
    fn entries_never_collide_with_markers() {
        let k = Key::new(b"x", 9).unwrap();
        for r in [0, 1, MAX_ROWS - 1] {
            let e = k.entry(r);
            assert_ne!(e, EMPTY);
            assert_ne!(e, TOMB);
            assert!(k.tag_matches(e));
            assert_eq!((e & ROW_MASK) as usize, r + 1);
        }
    }
}
