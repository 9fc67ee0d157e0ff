//! Small byte copies that are shared (`Bytes`) without an allocation each: a per-thread
//! chunk that copies are cut from, reclaimed in place once every copy cut from it is
//! dropped.
//!
//! Used for request heads that outlive the buffer they were read into: the head an HTTP
//! request carries in Process mode, in the master (kept until the worker acknowledges it,
//! which would otherwise pin the connection's read buffer and make the next read allocate a
//! new one) and in the worker (copied out of the pipe datagram). A `Bytes` cut from the chunk
//! is reference counted (cloning it is an atomic increment, not the promotion of a
//! `Vec`-backed `Bytes` — itself an allocation); a copy kept for long keeps its chunk
//! ([`CHUNK`] bytes) allocated.

use std::cell::RefCell;

use bytes::{Bytes, BytesMut};

/// Bytes of one chunk.
pub(crate) const CHUNK: usize = 8 * 1024;
/// Copies larger than this get a buffer of their own.
pub(crate) const MAX_COPY: usize = 1024;

thread_local! {
    static ARENA: RefCell<BytesMut> = RefCell::new(BytesMut::new());
}

/// `src` copied into a shared buffer: cut from this thread's chunk when it is small
/// ([`MAX_COPY`]), else a buffer of its own.
///
/// # Examples
///
/// ```ignore
/// let a = shared_copy(b"GET / HTTP/1.1\r\n\r\n");
/// assert_eq!(&a[..], b"GET / HTTP/1.1\r\n\r\n");
/// ```
pub(crate) fn shared_copy(src: &[u8]) -> Bytes {
    if src.len() <= MAX_COPY {
        let cut = ARENA.try_with(|a| {
            let mut a = a.try_borrow_mut().ok()?;
            if a.capacity() < src.len() {
                // Reclaims the whole chunk in place when every copy cut from it is gone
                // (the chunk is then unique), else starts a new one.
                a.reserve(CHUNK);
            }
            a.extend_from_slice(src);
            Some(a.split().freeze())
        });
        if let Ok(Some(b)) = cut {
            return b;
        }
    }
    BytesMut::from(src).freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Copies are equal to their source, independent of each other, and a chunk whose copies
    /// are all dropped is reused in place (no new allocation: the same address).
    #[test]
    fn copies_share_a_chunk_and_it_is_reclaimed() {
        let a = shared_copy(b"first");
        let b = shared_copy(b"second");
        assert_eq!((&a[..], &b[..]), (&b"first"[..], &b"second"[..]));
        // Cut one after the other from the same chunk.
        assert_eq!(a.as_ptr() as usize + 5, b.as_ptr() as usize);
        let first = a.as_ptr();
        let c = a.slice(1..3);
        assert_eq!(&c[..], b"ir");
        drop((a, b, c));
        // Fill the chunk: the next copy reclaims it from its start.
        let filler = vec![b'x'; MAX_COPY];
        let mut n = 0;
        loop {
            let f = shared_copy(&filler);
            if f.as_ptr() == first {
                break;
            }
            n += 1;
            assert!(n <= CHUNK / MAX_COPY + 1, "the chunk was never reclaimed");
        }
        let big = vec![b'y'; MAX_COPY + 1];
        assert_eq!(&shared_copy(&big)[..], &big[..]);
    }
}
