//! The `#[repr(C)]` types that live in shared memory, and safe views of them.
//!
//! A table segment is laid out as:
//!
//! ```text
//! [Header][index: index_len x u64][row 0][row 1]...[row capacity-1]
//! row = [RowHdr: seq, next_free, mutex][buffer 0][buffer 1]
//! buffer = [meta: live bit | key len][key: 8 words][column words...]
//! ```
//!
//! Every field is an atomic or a [`RawMutex`], so references into the
//! segment may be handed out freely (interior mutability), and a segment
//! mapped by another, misbehaving program can give us wrong *values* but not
//! undefined behaviour: every value read from it is bounds-checked before
//! being used as an offset. The handle types ([`Segment`], [`Shared`]) are
//! per-process and hold the mapping; the segment types hold no pointers.
//!
//! This is one of the two modules allowed to use `unsafe` (the other is
//! [`crate::sys`]); all of it is turning an offset in a mapping that was
//! checked to be in bounds and aligned into a reference.

use std::io;
use std::marker::PhantomData;
use std::mem::{align_of, size_of};
use std::sync::atomic::Ordering::{Acquire, Release};
use std::sync::atomic::{AtomicU32, AtomicU64};

use crate::sys::{Mapping, RawMutex};

/// `b"RSWTABLE"` read as a little-endian word.
pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"RSWTABLE");
/// Version of this layout; bump on any change to the types below.
pub(crate) const VERSION: u32 = 1;
/// `Header::state` once the segment may be used.
pub(crate) const STATE_READY: u32 = 1;
/// Most columns a table can have.
pub(crate) const MAX_COLUMNS: usize = 32;
/// Words used to store a column name (so names are at most 32 bytes).
pub(crate) const NAME_WORDS: usize = 4;
/// Words used to store a key (so keys are at most 63 bytes + padding).
pub(crate) const KEY_WORDS: usize = 8;
/// Word index of the first column in a row buffer (after meta + key).
pub(crate) const DATA_WORD: usize = 1 + KEY_WORDS;

/// One column descriptor in the header.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct ColumnDesc {
    /// Column name, zero padded.
    pub(crate) name: [AtomicU64; NAME_WORDS],
    /// 1 = Int, 2 = Float, 3 = Str.
    pub(crate) kind: AtomicU32,
    /// Declared size in bytes for Str columns, 8 otherwise.
    pub(crate) size: AtomicU32,
}

/// The table header at offset 0 of a segment.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct Header {
    /// [`MAGIC`].
    pub(crate) magic: AtomicU64,
    /// [`VERSION`].
    pub(crate) version: AtomicU32,
    /// 0 until initialisation completed, then [`STATE_READY`].
    pub(crate) state: AtomicU32,
    /// Hash of the layout description (columns, capacity, ABI sizes).
    pub(crate) layout_hash: AtomicU64,
    /// Per-table random seed of the key hash.
    pub(crate) seed: AtomicU64,
    /// Number of row slots.
    pub(crate) capacity: AtomicU64,
    /// Number of index entries (a power of two >= 2 * capacity).
    pub(crate) index_len: AtomicU64,
    /// Words per row buffer.
    pub(crate) buf_words: AtomicU64,
    /// Total segment length in bytes.
    pub(crate) total_len: AtomicU64,
    /// Number of used entries in `columns`.
    pub(crate) ncols: AtomicU64,
    /// Column descriptors.
    pub(crate) columns: [ColumnDesc; MAX_COLUMNS],
    /// Live rows (changed under `table_lock`).
    pub(crate) count: AtomicU64,
    /// Tombstone index entries (changed under `table_lock`).
    pub(crate) tombstones: AtomicU64,
    /// Head of the free-row list: row + 1, or 0 when empty (under `table_lock`).
    pub(crate) free_head: AtomicU64,
    /// Index seqlock: odd while the index is being rebuilt.
    pub(crate) index_gen: AtomicU64,
    /// Serialises inserts, deletes and index rebuilds.
    pub(crate) table_lock: RawMutex,
}

/// The per-row header.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct RowHdr {
    /// Publish counter: buffer `seq & 1` is the current value. First, so a
    /// reader finds it on the same cache line as buffer 0's meta word.
    pub(crate) seq: AtomicU64,
    /// Next free row + 1, or 0 (only meaningful while the row is free).
    pub(crate) next_free: AtomicU64,
    /// Serialises writers of this row.
    pub(crate) lock: RawMutex,
}

const fn round_up(n: usize, to: usize) -> usize {
    n.div_ceil(to) * to
}

/// Byte offsets of the parts of a segment, derived from three numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Geometry {
    /// Row slots.
    pub(crate) capacity: usize,
    /// Index entries (power of two).
    pub(crate) index_len: usize,
    /// Words per row buffer.
    pub(crate) buf_words: usize,
}

impl Geometry {
    /// Bytes before the index.
    pub(crate) const HEADER_LEN: usize = round_up(size_of::<Header>(), 64);

    fn rows_offset(&self) -> usize {
        round_up(Self::HEADER_LEN + self.index_len * 8, 64)
    }

    /// Bytes from one row to the next.
    pub(crate) fn row_stride(&self) -> usize {
        round_up(size_of::<RowHdr>() + 2 * self.buf_words * 8, 64)
    }

    /// Total bytes of the segment, or `None` on overflow.
    pub(crate) fn total_len(&self) -> Option<usize> {
        let index = self.index_len.checked_mul(8)?;
        let rows = self.capacity.checked_mul(self.row_stride())?;
        round_up(Self::HEADER_LEN.checked_add(index)?, 64).checked_add(rows)
    }
}

/// Returns the header of a mapping that is at least a header long.
#[inline]
pub(crate) fn header_of(map: &Mapping) -> Option<&Header> {
    if map.len() < Geometry::HEADER_LEN {
        return None;
    }
    // SAFETY: the mapping is page aligned (>= align_of::<Header>()), at least
    // HEADER_LEN >= size_of::<Header>() bytes long, lives as long as the
    // borrow of `map`, and every field of Header is valid for any bit pattern
    // except RawMutex, which is only used after the segment is READY
    // (initialised). Shared access is fine: all fields are interior-mutable.
    Some(unsafe { &*map.as_ptr().cast::<Header>() })
}

/// A mapped table segment whose geometry was checked against its length.
#[derive(Debug)]
pub(crate) struct Segment {
    map: Mapping,
    geo: Geometry,
}

/// A view of one row.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RowRef<'a> {
    /// Lock, publish counter and free-list link.
    pub(crate) hdr: &'a RowHdr,
    bufs: [&'a [AtomicU64]; 2],
}

impl<'a> RowRef<'a> {
    /// Buffer `which & 1`.
    #[inline]
    pub(crate) fn buf(&self, which: u64) -> &'a [AtomicU64] {
        self.bufs[(which & 1) as usize]
    }
}

impl Segment {
    /// Wraps `map`; `None` if `geo` does not fit in it.
    pub(crate) fn new(map: Mapping, geo: Geometry) -> Option<Segment> {
        let total = geo.total_len()?;
        if total > map.len()
            || geo.buf_words < DATA_WORD
            || align_of::<Header>() > 64
            || align_of::<RowHdr>() > 64
        {
            return None;
        }
        Some(Segment { map, geo })
    }

    /// The checked geometry.
    pub(crate) fn geometry(&self) -> Geometry {
        self.geo
    }

    /// Bytes mapped.
    pub(crate) fn mapped_len(&self) -> usize {
        self.map.len()
    }

    /// The header.
    #[inline]
    pub(crate) fn header(&self) -> &Header {
        header_of(&self.map).expect("Segment::new checked the length")
    }

    /// The hash index.
    #[inline]
    pub(crate) fn index(&self) -> &[AtomicU64] {
        // SAFETY: `new` checked HEADER_LEN + index_len * 8 <= len; the offset
        // is a multiple of 64 so the words are aligned; AtomicU64 is valid
        // for any bits; the slice borrows `self` which owns the mapping.
        unsafe {
            std::slice::from_raw_parts(
                self.map
                    .as_ptr()
                    .add(Geometry::HEADER_LEN)
                    .cast::<AtomicU64>(),
                self.geo.index_len,
            )
        }
    }

    /// Row `i`. Panics if `i >= capacity` (callers check indices read from
    /// shared memory first).
    #[inline]
    pub(crate) fn row(&self, i: usize) -> RowRef<'_> {
        assert!(i < self.geo.capacity, "row index out of range");
        let off = self.geo.rows_offset() + i * self.geo.row_stride();
        let words = self.geo.buf_words;
        // SAFETY: `new` checked rows_offset + capacity * stride <= len and
        // i < capacity, so [off, off + stride) is inside the mapping; the
        // offset is a multiple of 64 so RowHdr and the u64 buffers after it
        // (size_of::<RowHdr>() is a multiple of 8) are aligned; all types are
        // interior-mutable and valid for any bits except the row mutex, which
        // is initialised before the segment is READY; the references borrow
        // `self`, which owns the mapping.
        unsafe {
            let base = self.map.as_ptr().add(off);
            let hdr = &*base.cast::<RowHdr>();
            let b0 = base.add(size_of::<RowHdr>()).cast::<AtomicU64>();
            let b1 = b0.add(words);
            RowRef {
                hdr,
                bufs: [
                    std::slice::from_raw_parts(b0, words),
                    std::slice::from_raw_parts(b1, words),
                ],
            }
        }
    }

    /// Initialises a segment that was never published: `fill` writes the
    /// header fields and free list, then every mutex is initialised, then
    /// the state becomes [`STATE_READY`] (release), publishing it.
    ///
    /// Refuses (`AlreadyExists`) a segment that is already READY.
    pub(crate) fn initialise(&self, fill: impl FnOnce(&Segment)) -> io::Result<()> {
        let hdr = self.header();
        if hdr.state.load(Acquire) == STATE_READY {
            return Err(io::ErrorKind::AlreadyExists.into());
        }
        fill(self);
        // SAFETY: the segment is not READY, and no process uses a segment's
        // mutexes before seeing it READY: anonymous segments were just mapped
        // by this process, and persistent ones are only attached (under the
        // creation flock, which our caller holds) once READY.
        unsafe {
            hdr.table_lock.init()?;
            for i in 0..self.geo.capacity {
                self.row(i).hdr.lock.init()?;
            }
        }
        hdr.state.store(STATE_READY, Release);
        Ok(())
    }
}

const _: () = assert!(size_of::<RowHdr>() % 8 == 0);

/// The shared word of an [`crate::Atomic`] / [`crate::AtomicLong`].
#[repr(C)]
#[derive(Debug)]
pub(crate) struct AtomicCell {
    /// The value (an `i64` is stored as its two's complement bits).
    pub(crate) value: AtomicU64,
    /// Bumped by every wakeup; the futex word waiters sleep on.
    pub(crate) epoch: AtomicU32,
}

/// Types that may be placed alone in an anonymous shared mapping.
pub(crate) trait ShmCell {
    /// Initialises a zeroed, unpublished value.
    ///
    /// # Safety
    ///
    /// `this` must not be in use by any other thread or process.
    unsafe fn init(this: &Self) -> io::Result<()>;
}

impl ShmCell for AtomicCell {
    unsafe fn init(_this: &Self) -> io::Result<()> {
        Ok(())
    }
}

impl ShmCell for RawMutex {
    unsafe fn init(this: &Self) -> io::Result<()> {
        // SAFETY: forwarded from the trait's contract.
        unsafe { this.init() }
    }
}

/// One `T` in its own anonymous shared mapping, inherited across `fork`.
#[derive(Debug)]
pub(crate) struct Shared<T> {
    map: Mapping,
    _t: PhantomData<T>,
}

impl<T: ShmCell> Shared<T> {
    /// Maps a fresh zeroed `T` and initialises it.
    pub(crate) fn new() -> io::Result<Shared<T>> {
        let map = Mapping::anonymous(size_of::<T>().max(1))?;
        let shared = Shared {
            map,
            _t: PhantomData,
        };
        // SAFETY: the mapping was just created and is not shared yet.
        unsafe { T::init(shared.get())? };
        Ok(shared)
    }

    /// The shared value.
    pub(crate) fn get(&self) -> &T {
        // SAFETY: the mapping is page aligned and at least size_of::<T>()
        // long; ShmCell types are atomics or RawMutex (initialised in `new`),
        // valid for shared access; the reference borrows `self`.
        unsafe { &*self.map.as_ptr().cast::<T>() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_is_aligned_and_sized() {
        let g = Geometry {
            capacity: 3,
            index_len: 8,
            buf_words: DATA_WORD + 3,
        };
        assert_eq!(Geometry::HEADER_LEN % 64, 0);
        assert_eq!(g.row_stride() % 64, 0);
        assert!(g.row_stride() >= size_of::<RowHdr>() + 2 * 8 * g.buf_words);
        let total = g.total_len().unwrap();
        assert!(total >= Geometry::HEADER_LEN + 64 + 3 * g.row_stride());
        let huge = Geometry {
            capacity: usize::MAX / 2,
            index_len: 8,
            buf_words: 64,
        };
        assert_eq!(huge.total_len(), None);
    }
}
