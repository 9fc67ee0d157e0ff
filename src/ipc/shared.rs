//! The server's own shared memory: counters, per-worker state and the connection table.
//!
//! Mapped by the master before it forks, so the manager, every worker and every task worker
//! see the same bytes. Every field is an atomic. The connection table is what makes
//! `exists(fd)`, `connection_info(fd)` and the output-buffer check of `send` answer without an
//! IPC round trip, whatever process asks.
//!
//! Session ids (`fd`s) are allocated so that `slot = (id - 1) % capacity`: the master (or, in
//! Base mode, each worker with its own stride) takes the next id whose slot is free. Ids are
//! never reused while the server lives, and small while few connections have been made.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::*};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::base::{ConnError, ConnId, ConnectionInfo};
use crate::sys::{ShmRegion, ShmSafe};

#[repr(C)]
pub(crate) struct Header {
    pub(crate) master_pid: AtomicU32,
    pub(crate) manager_pid: AtomicU32,
    pub(crate) started_ms: AtomicU64,
    pub(crate) accepted: AtomicU64,
    pub(crate) closed: AtomicU64,
    pub(crate) live: AtomicU64,
    pub(crate) next_id: AtomicU64,
    pub(crate) refused: AtomicU64,
    pub(crate) phase: AtomicU32,
    /// Connections closed because their output buffer was full (a client reading too slowly).
    pub(crate) overflowed: AtomicU64,
    /// TLS certificate generation: bumped by the master when `reload-certs` checked new
    /// files; a Base-mode worker reloads its listeners' certificates before its next handshake.
    pub(crate) certs_gen: AtomicU64,
}
// SAFETY: only atomics; all-zero is a valid value.
#[allow(unsafe_code)]
unsafe impl ShmSafe for Header {}

/// Server phases, stored in [`Header::phase`] by the master.
pub(crate) const PHASE_RUNNING: u32 = 1;
/// The master got SIGTERM: everything is stopping, nothing will be restarted.
pub(crate) const PHASE_STOPPING: u32 = 2;
/// An upgrade handed the listeners to a new master: this one accepts no more connections and
/// its HTTP responses say `Connection: close`, until it stops (workers are still restarted).
pub(crate) const PHASE_DRAINING: u32 = 3;

/// Worker states, stored in [`WorkerSlot::state`].
pub(crate) const W_STARTING: u32 = 0;
pub(crate) const W_IDLE: u32 = 1;
pub(crate) const W_BUSY: u32 = 2;
pub(crate) const W_EXITING: u32 = 3;
/// The incarnation died and no replacement has started yet (set by the manager when it reaps
/// it).
pub(crate) const W_DOWN: u32 = 4;

#[repr(C)]
pub(crate) struct WorkerSlot {
    pub(crate) pid: AtomicU32,
    pub(crate) state: AtomicU32,
    pub(crate) requests: AtomicU64,
    pub(crate) restarts: AtomicU64,
    pub(crate) next_seq: AtomicU64,
    pub(crate) started_ms: AtomicU64,
}
// SAFETY: only atomics; all-zero is a valid value.
#[allow(unsafe_code)]
unsafe impl ShmSafe for WorkerSlot {}

/// Connection slot state bits, in [`ConnSlot::flags`].
const C_CLOSING: u32 = 1;
/// The connection is an established WebSocket (set by the socket owner after the upgrade).
const C_WS: u32 = 2;
/// The connection is TLS and its handshake finished.
const C_TLS: u32 = 4;
/// ... and the client presented a verified certificate ([`PeerFp`], in its own array).
const C_PEER: u32 = 8;

/// Why [`Shared::reserve_out`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OutRefused {
    /// The connection is closed, closing or unknown.
    Closed,
    /// Its output buffer plus what is on its way would pass the limit.
    Full,
}

#[repr(C)]
pub(crate) struct ConnSlot {
    /// 0 = free; otherwise the session id that owns the slot. Written last on open, first on
    /// free.
    pub(crate) id: AtomicU64,
    ip_hi: AtomicU64,
    ip_lo: AtomicU64,
    /// family (4 or 6) << 16 | remote port
    fam_port: AtomicU32,
    /// listener index << 16 | server port
    listener_port: AtomicU32,
    reactor: AtomicU32,
    pub(crate) flags: AtomicU32,
    connect_ms: AtomicU64,
    last_recv_ms: AtomicU64,
    /// Bytes queued in the owner's output buffer.
    pub(crate) out_bytes: AtomicU64,
    /// Worker the connection is bound to (Base mode: owner; Process mode: last dispatched).
    pub(crate) worker: AtomicU32,
    /// `Handle::bind` user id; 0 = not bound (dispatch_mode 5 routes bound ones by it).
    pub(crate) uid: AtomicU32,
    /// Pid of the process that accepted the connection and owns its socket (the master in
    /// Process mode, the worker incarnation in Base mode, whose connections die with it).
    pub(crate) owner_pid: AtomicU32,
    /// Process mode: bytes that workers have sent to this connection and the master has not
    /// applied yet (still in a worker's pipe queue or in the socket between them). A worker
    /// reserves them before it queues the record ([`Shared::reserve_out`]), the master gives
    /// them back as it applies it ([`Shared::release_out`]), so that `buffer_output_size`
    /// bounds what is buffered plus what is on its way, and a sender gets `BufferFull`
    /// instead of the master finding its buffer overflowed. In the slot's 4 bytes of padding.
    in_flight: AtomicU32,
}
// SAFETY: only atomics; all-zero is a valid value.
#[allow(unsafe_code)]
unsafe impl ShmSafe for ConnSlot {}

/// TLS: SHA-256 of a connection's verified client certificate (with `C_PEER`), in an array
/// of its own beside the slots (same index): its pages are touched only by connections that
/// present one, and the slot of every connection stays at 80 bytes (112 with it inside).
#[repr(C)]
pub(crate) struct PeerFp([AtomicU64; 4]);
// SAFETY: only atomics; all-zero is a valid value.
#[allow(unsafe_code)]
unsafe impl ShmSafe for PeerFp {}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Milliseconds since the Unix epoch from the coarse real-time clock
/// (`CLOCK_REALTIME_COARSE`: the time of the last timer tick, read from the vDSO without
/// reading the hardware counter; resolution one tick, 1–4 ms). Through the C library (its
/// vDSO lookup also works under valgrind, rustix's does not); the precise clock if the coarse
/// one is missing.
pub(crate) fn coarse_now_ms() -> u64 {
    match nix::time::clock_gettime(nix::time::ClockId::CLOCK_REALTIME_COARSE) {
        Ok(t) => (t.tv_sec() as u64) * 1000 + (t.tv_nsec() as u64) / 1_000_000,
        Err(_) => now_ms(),
    }
}

/// The remote address a connection slot holds.
fn remote_of(s: &ConnSlot) -> SocketAddr {
    let fam_port = s.fam_port.load(Relaxed);
    let (hi, lo) = (s.ip_hi.load(Relaxed), s.ip_lo.load(Relaxed));
    let ip = if fam_port >> 16 == 6 {
        IpAddr::V6(Ipv6Addr::from((hi as u128) << 64 | lo as u128))
    } else {
        IpAddr::V4(Ipv4Addr::from(lo as u32))
    };
    SocketAddr::new(ip, fam_port as u16)
}

/// The part of a connection's [`ConnectionInfo`] an HTTP request carries
/// ([`Shared::request_peer`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RequestPeer {
    pub(crate) remote_addr: SocketAddr,
    pub(crate) server_port: u16,
    pub(crate) tls: bool,
    pub(crate) peer_cert_sha256: Option<[u8; 32]>,
}

fn ms_to_time(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

/// Handle to the server's shared region (cheap to clone: one `Arc`, 8 bytes — every
/// connection record holds one).
#[derive(Debug, Clone)]
pub(crate) struct Shared(std::sync::Arc<Layout>);

/// The mapping and where its parts are.
#[derive(Debug)]
pub(crate) struct Layout {
    region: ShmRegion,
    workers: usize,
    conn_cap: usize,
    workers_off: usize,
    conns_off: usize,
    fps_off: usize,
}

impl std::ops::Deref for Shared {
    type Target = Layout;
    fn deref(&self) -> &Layout {
        &self.0
    }
}

fn align(n: usize, a: usize) -> usize {
    n.div_ceil(a) * a
}

/// The least common multiple of `a` and `b` (both non-zero).
fn lcm(a: usize, b: usize) -> usize {
    let (mut x, mut y) = (a, b);
    while y != 0 {
        (x, y) = (y, x % y);
    }
    a / x * b
}

impl Shared {
    /// Maps the region for `workers` worker slots (workers then task workers) and `conn_cap`
    /// connections.
    pub(crate) fn new(workers: usize, conn_cap: usize) -> std::io::Result<Shared> {
        let workers_off = align(std::mem::size_of::<Header>(), 64);
        // On a page boundary: the table's free pages can be given back in whole groups
        // ([`Shared::release_free_slots`]).
        let conns_off = align(
            workers_off + workers * std::mem::size_of::<WorkerSlot>(),
            crate::sys::page_size(),
        );
        let fps_off = align(conns_off + conn_cap * std::mem::size_of::<ConnSlot>(), 64);
        let len = fps_off + conn_cap * std::mem::size_of::<PeerFp>();
        let region = ShmRegion::new(len)?;
        let s = Shared(std::sync::Arc::new(Layout {
            region,
            workers,
            conn_cap,
            workers_off,
            conns_off,
            fps_off,
        }));
        s.header().started_ms.store(now_ms(), Relaxed);
        Ok(s)
    }

    pub(crate) fn header(&self) -> &Header {
        self.region.get(0)
    }

    /// Whether the whole server is stopping (not a reload): no process will be replaced.
    pub(crate) fn stopping(&self) -> bool {
        self.header().phase.load(Acquire) == PHASE_STOPPING
    }

    /// Whether this server is draining after an upgrade (see [`PHASE_DRAINING`]).
    pub(crate) fn draining(&self) -> bool {
        self.header().phase.load(Acquire) == PHASE_DRAINING
    }

    pub(crate) fn worker(&self, i: usize) -> &WorkerSlot {
        assert!(i < self.workers);
        self.region
            .get(self.workers_off + i * std::mem::size_of::<WorkerSlot>())
    }

    pub(crate) fn conn_cap(&self) -> usize {
        self.conn_cap
    }

    /// The certificate fingerprint beside `id`'s slot.
    fn fp_of(&self, id: u64) -> Option<&PeerFp> {
        let i = (id.checked_sub(1)? % self.conn_cap as u64) as usize;
        Some(
            self.region
                .get(self.fps_off + i * std::mem::size_of::<PeerFp>()),
        )
    }

    fn slot_of(&self, id: u64) -> Option<&ConnSlot> {
        self.slot_index(ConnId(id)).map(|i| self.slot_at(i))
    }

    /// Where connection `id`'s slot is in the table (`None` for id 0): a division, which a
    /// connection record does once rather than on every read ([`touch_recv_at`](Self::touch_recv_at)).
    pub(crate) fn slot_index(&self, id: ConnId) -> Option<u32> {
        id.0.checked_sub(1)
            .map(|i| (i % self.conn_cap as u64) as u32)
    }

    fn slot_at(&self, i: u32) -> &ConnSlot {
        self.region
            .get(self.conns_off + i as usize * std::mem::size_of::<ConnSlot>())
    }

    /// The slot of a live (not closing) connection.
    pub(crate) fn live_slot(&self, id: ConnId) -> Option<&ConnSlot> {
        let s = self.slot_of(id.0)?;
        (s.id.load(Acquire) == id.0 && s.flags.load(Acquire) & C_CLOSING == 0).then_some(s)
    }

    /// Process mode: reserves room for `len` bytes a worker is about to queue for `id`, if
    /// its output buffer (what the master holds plus what is on its way, [`ConnSlot`]'s
    /// `in_flight`) can take them within `cap`. The reservation is taken first and undone if
    /// over, so two workers sending at once cannot both pass on the same room. Room above
    /// `u32::MAX` bytes on the way is never given.
    pub(crate) fn reserve_out(&self, id: ConnId, len: usize, cap: usize) -> Result<(), OutRefused> {
        let s = self.live_slot(id).ok_or(OutRefused::Closed)?;
        let n = u32::try_from(len).map_err(|_| OutRefused::Full)?;
        // Acquire pairs with the master's release in `give_back`: a count it lowered comes
        // with the output buffer it raised for the same bytes (`out_bytes`, stored first).
        let before = s.in_flight.fetch_add(n, AcqRel);
        let on_the_way = before as u64 + n as u64;
        if before.checked_add(n).is_none() || s.out_bytes.load(Relaxed) + on_the_way > cap as u64 {
            Self::give_back(s, n);
            return Err(OutRefused::Full);
        }
        // The slot may have been freed and taken by another connection since the check: that
        // one's count starts at 0 (`fill`), so take back what was added to it.
        if s.id.load(Acquire) != id.0 {
            Self::give_back(s, n);
            return Err(OutRefused::Closed);
        }
        Ok(())
    }

    /// Process mode: the master applied (or dropped) a record of `len` bytes for `id` that a
    /// worker reserved with [`reserve_out`](Self::reserve_out), or the worker could not queue
    /// it after all. Nothing if the slot is another connection's by now.
    pub(crate) fn release_out(&self, id: ConnId, len: usize) {
        if let Some(s) = self.any_slot(id) {
            Self::give_back(s, u32::try_from(len).unwrap_or(u32::MAX));
        }
    }

    /// Process mode: forgets what every connection of `ids` had on its way (a worker died:
    /// what it had queued and not written never arrives to be released). Other workers'
    /// records on their way are forgotten too; at worst one of them then finds the buffer
    /// full and closes the connection, as before reservations existed.
    pub(crate) fn forget_in_flight(&self, ids: impl IntoIterator<Item = ConnId>) {
        for id in ids {
            if let Some(s) = self.any_slot(id) {
                s.in_flight.store(0, Relaxed);
            }
        }
    }

    /// Subtracts `n` from the slot's bytes on the way, never below 0 (the slot may have been
    /// reset for a new connection meanwhile).
    fn give_back(s: &ConnSlot, n: u32) {
        let _ = s
            .in_flight
            .fetch_update(Release, Relaxed, |v| Some(v.saturating_sub(n)));
    }

    /// The slot of a connection that is open or closing.
    pub(crate) fn any_slot(&self, id: ConnId) -> Option<&ConnSlot> {
        let s = self.slot_of(id.0)?;
        (s.id.load(Acquire) == id.0).then_some(s)
    }

    /// Allocates a session id: the first of `start, start+stride, …` whose slot is free.
    /// `counter` is the allocator's cursor (header.next_id in Process mode, a worker's next_seq in
    /// Base mode, counted in strides). Returns `None` when every slot of that stride is taken.
    pub(crate) fn alloc(
        &self,
        counter: &AtomicU64,
        first: u64,
        stride: u64,
        info: &NewConn,
    ) -> Option<ConnId> {
        let tries = self.conn_cap as u64 / stride + 1;
        for _ in 0..tries {
            let k = counter.fetch_add(1, Relaxed);
            let id = first + k * stride;
            let slot = self.slot_of(id)?;
            if slot
                .id
                .compare_exchange(0, u64::MAX, AcqRel, Relaxed)
                .is_ok()
            {
                let now = now_ms();
                self.fill(slot, id, info, now, now, 0);
                return Some(ConnId(id));
            }
        }
        None
    }

    /// Takes in a connection that moved from another master (upgrade) under its own id,
    /// with its connect and last-receive times and bound uid. False if its slot is taken
    /// (this server's `max_connection` maps another connection there).
    pub(crate) fn adopt(
        &self,
        id: ConnId,
        info: &NewConn,
        connect_ms: u64,
        last_recv_ms: u64,
        uid: u32,
    ) -> bool {
        let Some(slot) = self.slot_of(id.0) else {
            return false;
        };
        if slot
            .id
            .compare_exchange(0, u64::MAX, AcqRel, Relaxed)
            .is_err()
        {
            return false;
        }
        self.fill(slot, id.0, info, connect_ms, last_recv_ms, uid);
        true
    }

    /// Writes a claimed slot's fields, then its id (which publishes it), and counts it.
    fn fill(
        &self,
        slot: &ConnSlot,
        id: u64,
        info: &NewConn,
        connect_ms: u64,
        last_recv_ms: u64,
        uid: u32,
    ) {
        let (fam, hi, lo) = match info.remote.ip() {
            IpAddr::V4(v4) => (4u32, 0, u32::from(v4) as u64),
            IpAddr::V6(v6) => {
                let b = u128::from(v6);
                (6u32, (b >> 64) as u64, b as u64)
            }
        };
        slot.ip_hi.store(hi, Relaxed);
        slot.ip_lo.store(lo, Relaxed);
        slot.fam_port
            .store(fam << 16 | info.remote.port() as u32, Relaxed);
        slot.listener_port.store(
            (info.listener as u32) << 16 | info.server_port as u32,
            Relaxed,
        );
        slot.reactor.store(info.reactor, Relaxed);
        slot.flags.store(0, Relaxed);
        slot.connect_ms.store(connect_ms, Relaxed);
        slot.last_recv_ms.store(last_recv_ms, Relaxed);
        slot.out_bytes.store(0, Relaxed);
        slot.in_flight.store(0, Relaxed);
        slot.worker.store(info.worker, Relaxed);
        slot.uid.store(uid, Relaxed);
        slot.owner_pid.store(info.owner_pid, Relaxed);
        slot.id.store(id, Release);
        let h = self.header();
        h.accepted.fetch_add(1, Relaxed);
        h.live.fetch_add(1, Relaxed);
    }

    /// Gives back the connection table's pages that hold no connection (after a burst, the
    /// slots of the connections that closed stay resident otherwise: 80 B each, in every
    /// process that touched them). The table starts on a page boundary and is cut into
    /// groups of whole pages that hold whole slots (the least common multiple of the page
    /// and the slot size: 5 pages, 256 slots), so that no slot spans two groups. Only groups
    /// with a resident page are looked at (`mincore`: reading pages that are not there would
    /// bring them in); a group goes back when every slot in it is free: each is claimed first
    /// (`id` 0 → `u64::MAX`, as [`alloc`](Self::alloc) claims one), so that no process can
    /// take one while its pages are given back; a group with a slot taken meanwhile is left
    /// as it is (the claims undone). The pages then read as zeros: free slots. Safe with any
    /// number of processes doing this, allocating and reading at once. Returns the bytes
    /// given back.
    pub(crate) fn release_free_slots(&self) -> usize {
        let page = crate::sys::page_size();
        let sz = std::mem::size_of::<ConnSlot>();
        let group = lcm(page, sz);
        let per_group = group / sz;
        let groups = self.conn_cap / per_group;
        if groups == 0 || self.conns_off % page != 0 {
            return 0;
        }
        let resident = match self.region.resident_pages(self.conns_off, groups * group) {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(error = %e, "cannot see which connection-table pages are resident");
                return 0;
            }
        };
        let pages = group / page;
        let slot = |i: usize| -> &ConnSlot { self.region.get(self.conns_off + i * sz) };
        let mut released = 0;
        for g in 0..groups {
            if !resident[g * pages..(g + 1) * pages].iter().any(|r| *r) {
                continue;
            }
            let first = g * per_group;
            let mut claimed = 0;
            while claimed < per_group
                && slot(first + claimed)
                    .id
                    .compare_exchange(0, u64::MAX, AcqRel, Relaxed)
                    .is_ok()
            {
                claimed += 1;
            }
            if claimed == per_group {
                match self.region.discard(self.conns_off + g * group, group) {
                    Ok(()) => {
                        released += group;
                        continue;
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "cannot give connection-table pages back")
                    }
                }
            }
            for i in first..first + claimed {
                slot(i).id.store(0, Release);
            }
        }
        released
    }

    /// Marks a connection closing: `exists` turns false and sends fail from now on.
    /// Returns false if it was already closing (or gone).
    pub(crate) fn mark_closing(&self, id: ConnId) -> bool {
        match self.any_slot(id) {
            Some(s) => s.flags.fetch_or(C_CLOSING, AcqRel) & C_CLOSING == 0,
            None => false,
        }
    }

    /// Marks `id` an established WebSocket connection (`crate::websocket`).
    pub(crate) fn mark_websocket(&self, id: ConnId) {
        if let Some(s) = self.any_slot(id) {
            s.flags.fetch_or(C_WS, AcqRel);
        }
    }

    /// Whether `id` is an open (not closing) established WebSocket connection.
    pub(crate) fn is_websocket(&self, id: ConnId) -> bool {
        self.live_slot(id)
            .is_some_and(|s| s.flags.load(Acquire) & C_WS != 0)
    }

    /// Every open established WebSocket connection, in slot order.
    pub(crate) fn websockets(&self) -> Vec<ConnId> {
        let mut v = Vec::new();
        for i in 0..self.conn_cap {
            let s: &ConnSlot = self
                .region
                .get(self.conns_off + i * std::mem::size_of::<ConnSlot>());
            let id = s.id.load(Acquire);
            if id != 0 && id != u64::MAX && s.flags.load(Relaxed) & (C_CLOSING | C_WS) == C_WS {
                v.push(ConnId(id));
            }
        }
        v
    }

    /// Frees the slot of every connection whose socket process `pid` owned: a Base-mode
    /// worker that exited (crashed, or replaced) took them with it. Returns how many.
    pub(crate) fn free_owned_by(&self, pid: u32) -> usize {
        let mut n = 0;
        for i in 0..self.conn_cap {
            let s: &ConnSlot = self
                .region
                .get(self.conns_off + i * std::mem::size_of::<ConnSlot>());
            let id = s.id.load(Acquire);
            if id != 0 && id != u64::MAX && s.owner_pid.load(Relaxed) == pid {
                self.free(ConnId(id));
                n += 1;
            }
        }
        n
    }

    /// Whether worker `w`'s current incarnation serves: it finished `on_worker_start` and has
    /// not died or been stopped ([`W_IDLE`] or [`W_BUSY`]).
    pub(crate) fn worker_serving(&self, w: usize) -> bool {
        w < self.workers && matches!(self.worker(w).state.load(Acquire), W_IDLE | W_BUSY)
    }

    /// Base mode: the worker that owns the connection in `s`, if the incarnation that
    /// accepted it is still that worker's current, serving one. `None` when it died or is
    /// being replaced: its connections are gone, or going, with it.
    pub(crate) fn live_owner(&self, s: &ConnSlot) -> Option<usize> {
        let w = s.worker.load(Relaxed) as usize;
        (self.worker_serving(w) && self.worker(w).pid.load(Acquire) == s.owner_pid.load(Relaxed))
            .then_some(w)
    }

    /// Frees the slot of a closed connection.
    pub(crate) fn free(&self, id: ConnId) {
        if let Some(s) = self.slot_of(id.0) {
            if s.id.compare_exchange(id.0, 0, AcqRel, Relaxed).is_ok() {
                let h = self.header();
                h.closed.fetch_add(1, Relaxed);
                h.live.fetch_sub(1, Relaxed);
            }
        }
    }

    /// Binds live connection `id` to `uid` (non-zero) once: false if it is closed, already
    /// bound, or `uid` is 0.
    pub(crate) fn bind(&self, id: ConnId, uid: u32) -> Result<(), ConnError> {
        if uid == 0 {
            return Err(ConnError::InvalidUid);
        }
        let s = self.live_slot(id).ok_or(ConnError::NotOpen(id))?;
        if let Err(old) = s.uid.compare_exchange(0, uid, AcqRel, Relaxed) {
            return Err(ConnError::AlreadyBound(id, old));
        }
        // The slot may have been freed and reused meanwhile: undo if so.
        if s.id.load(Acquire) != id.0 {
            let _ = s.uid.compare_exchange(uid, 0, AcqRel, Relaxed);
            return Err(ConnError::NotOpen(id));
        }
        Ok(())
    }

    /// One more connection closed for a full output buffer.
    pub(crate) fn count_overflow(&self) {
        self.header().overflowed.fetch_add(1, Relaxed);
    }

    /// Connection `id` received bytes now: its `last_receive_time`. Read per read, so from
    /// the coarse clock ([`coarse_now_ms`]: a few milliseconds of resolution, a fraction of
    /// the cost of a precise clock read; heartbeats and `connection_info` count in seconds).
    pub(crate) fn touch_recv(&self, id: ConnId) {
        self.touch_recv_at(self.slot_index(id));
    }

    /// [`touch_recv`](Self::touch_recv) by the slot's index ([`slot_index`](Self::slot_index),
    /// kept by the connection).
    pub(crate) fn touch_recv_at(&self, slot: Option<u32>) {
        if let Some(i) = slot {
            self.slot_at(i).last_recv_ms.store(coarse_now_ms(), Relaxed);
        }
    }

    pub(crate) fn info(&self, id: ConnId) -> Option<ConnectionInfo> {
        let s = self.live_slot(id)?;
        let lp = s.listener_port.load(Relaxed);
        let flags = s.flags.load(Relaxed);
        let info = ConnectionInfo {
            remote_addr: remote_of(s),
            server_port: lp as u16,
            listener: (lp >> 16) as usize,
            reactor_id: s.reactor.load(Relaxed),
            connect_time: ms_to_time(s.connect_ms.load(Relaxed)),
            last_receive_time: ms_to_time(s.last_recv_ms.load(Relaxed)),
            output_buffered: s.out_bytes.load(Relaxed),
            uid: s.uid.load(Relaxed),
            tls: flags & C_TLS != 0,
            peer_cert_sha256: self.peer_fp(id, flags),
        };
        // The slot may have been reused while we read it: check the id again.
        (s.id.load(Acquire) == id.0).then_some(info)
    }

    /// What a request needs of its connection (the fields of [`info`](Self::info) an HTTP
    /// request carries), without reading the rest: remote address, server port, TLS and the
    /// client certificate's fingerprint. `None` when [`info`](Self::info) would be `None`.
    pub(crate) fn request_peer(&self, id: ConnId) -> Option<RequestPeer> {
        let s = self.live_slot(id)?;
        let flags = s.flags.load(Relaxed);
        let peer = RequestPeer {
            remote_addr: remote_of(s),
            server_port: s.listener_port.load(Relaxed) as u16,
            tls: flags & C_TLS != 0,
            peer_cert_sha256: self.peer_fp(id, flags),
        };
        (s.id.load(Acquire) == id.0).then_some(peer)
    }

    /// The client certificate's fingerprint of connection `id`, whose flags are `flags`.
    fn peer_fp(&self, id: ConnId, flags: u32) -> Option<[u8; 32]> {
        (flags & C_PEER != 0)
            .then(|| self.fp_of(id.0))
            .flatten()
            .map(|f| {
                let mut fp = [0u8; 32];
                for (i, w) in f.0.iter().enumerate() {
                    fp[i * 8..i * 8 + 8].copy_from_slice(&w.load(Relaxed).to_be_bytes());
                }
                fp
            })
    }

    /// A TLS connection finished its handshake; `peer`: its client certificate's SHA-256.
    pub(crate) fn set_tls_peer(&self, id: ConnId, peer: Option<[u8; 32]>) {
        let Some(s) = self.live_slot(id) else { return };
        let mut bits = C_TLS;
        if let (Some(fp), Some(f)) = (peer, self.fp_of(id.0)) {
            for (i, w) in f.0.iter().enumerate() {
                let mut b = [0u8; 8];
                b.copy_from_slice(&fp[i * 8..i * 8 + 8]);
                w.store(u64::from_be_bytes(b), Relaxed);
            }
            bits |= C_PEER;
        }
        s.flags.fetch_or(bits, Release);
    }

    /// Every live connection id, in slot order.
    pub(crate) fn connections(&self) -> Vec<ConnId> {
        let mut v = Vec::new();
        for i in 0..self.conn_cap {
            let s: &ConnSlot = self
                .region
                .get(self.conns_off + i * std::mem::size_of::<ConnSlot>());
            let id = s.id.load(Acquire);
            if id != 0 && id != u64::MAX && s.flags.load(Relaxed) & C_CLOSING == 0 {
                v.push(ConnId(id));
            }
        }
        v
    }
}

/// What the allocator records about a new connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NewConn {
    pub(crate) remote: SocketAddr,
    pub(crate) server_port: u16,
    pub(crate) listener: usize,
    pub(crate) reactor: u32,
    pub(crate) worker: u32,
    /// The accepting process (see [`ConnSlot::owner_pid`]).
    pub(crate) owner_pid: u32,
}

impl Shared {
    /// Server-wide counters for `workers` workers.
    pub(crate) fn stats(&self, workers: usize) -> crate::base::Stats {
        use std::sync::atomic::Ordering::Relaxed;
        let h = self.header();
        crate::base::Stats {
            start_time: SystemTime::UNIX_EPOCH
                + std::time::Duration::from_millis(h.started_ms.load(Relaxed)),
            connections: h.live.load(Relaxed),
            accepted: h.accepted.load(Relaxed),
            closed: h.closed.load(Relaxed),
            refused: h.refused.load(Relaxed),
            output_overflows: h.overflowed.load(Relaxed),
            requests: (0..workers)
                .map(|i| self.worker(i).requests.load(Relaxed))
                .collect(),
            restarts: (0..workers)
                .map(|i| self.worker(i).restarts.load(Relaxed))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coarse_clock_is_the_wall_clock_within_a_tick() {
        let (a, c, b) = (now_ms(), coarse_now_ms(), now_ms());
        // The coarse clock lags by at most one tick (≤ 10 ms even at HZ=100).
        assert!(c + 10 >= a && c <= b, "{a} {c} {b}");
    }

    fn open(s: &Shared, worker: u32, owner_pid: u32) -> ConnId {
        let info = NewConn {
            remote: ([127, 0, 0, 1], 5000).into(),
            server_port: 80,
            listener: 0,
            reactor: 0,
            worker,
            owner_pid,
        };
        let w = s.worker(worker as usize);
        s.alloc(&w.next_seq, worker as u64 + 1, 2, &info)
            .expect("a free slot")
    }

    /// Process mode's allocation: one cursor, stride 1.
    fn open1(s: &Shared) -> ConnId {
        let info = NewConn {
            remote: ([127, 0, 0, 1], 5000).into(),
            server_port: 80,
            listener: 0,
            reactor: 0,
            worker: 0,
            owner_pid: 100,
        };
        s.alloc(&s.header().next_id, 1, 1, &info)
            .expect("a free slot")
    }

    /// Bytes on their way to the master count against `buffer_output_size` until the master
    /// applies them; a slot taken by a new connection starts at 0, and what the old one's
    /// records give back late does not go below it.
    #[test]
    fn bytes_on_their_way_count_until_released() {
        let s = Shared::new(1, 4).unwrap();
        let id = open1(&s);
        assert_eq!(s.reserve_out(id, 600, 1000), Ok(()));
        assert_eq!(s.reserve_out(id, 600, 1000), Err(OutRefused::Full));
        assert_eq!(s.reserve_out(id, 400, 1000), Ok(()));
        // The master applies the first record: it is in the output buffer now.
        s.slot_of(id.0).unwrap().out_bytes.store(600, Relaxed);
        s.release_out(id, 600);
        assert_eq!(s.reserve_out(id, 1, 1000), Err(OutRefused::Full));
        s.slot_of(id.0).unwrap().out_bytes.store(0, Relaxed);
        assert_eq!(s.reserve_out(id, 600, 1000), Ok(()));
        // Closed: refused; its slot goes to a new connection with nothing on its way.
        s.free(id);
        assert_eq!(s.reserve_out(id, 1, 1000), Err(OutRefused::Closed));
        let ids: Vec<ConnId> = (0..4).map(|_| open1(&s)).collect();
        let again = *ids
            .iter()
            .find(|i| {
                s.slot_of(i.0).map(|x| x as *const _) == s.slot_of(id.0).map(|x| x as *const _)
            })
            .unwrap();
        assert_eq!(s.reserve_out(again, 1000, 1000), Ok(()));
        // The old connection's late release does nothing to the new one's count.
        s.release_out(id, 1000);
        assert_eq!(s.reserve_out(again, 1, 1000), Err(OutRefused::Full));
        s.release_out(again, 5000);
        assert_eq!(s.reserve_out(again, 1000, 1000), Ok(()));
        // A dead worker's reservations are forgotten.
        s.forget_in_flight([again]);
        assert_eq!(s.reserve_out(again, 1000, 1000), Ok(()));
    }

    fn resident(s: &Shared) -> usize {
        let page = crate::sys::page_size();
        let sz = std::mem::size_of::<ConnSlot>();
        let last = (s.conns_off + s.conn_cap * sz) / page * page;
        s.region
            .resident_pages(s.conns_off, last - s.conns_off)
            .unwrap()
            .iter()
            .filter(|r| **r)
            .count()
    }

    /// After a burst, the table's pages that hold no connection go back (and no page with a
    /// live one); the live connections keep their slots and fields, the freed slots are
    /// taken again by new connections.
    #[test]
    fn free_slot_pages_go_back_after_a_burst() {
        // Slots stay small: the TLS fingerprint lives beside them.
        assert_eq!(std::mem::size_of::<ConnSlot>(), 80);
        let s = Shared::new(1, 4000).unwrap();
        let idle_pages = resident(&s);
        let ids: Vec<ConnId> = (0..3000).map(|_| open1(&s)).collect();
        let burst_pages = resident(&s);
        assert!(
            burst_pages >= idle_pages + 3000 * 80 / 4096,
            "{idle_pages} -> {burst_pages}"
        );
        // Every 1000th stays open (and bound: its fields must survive).
        let kept: Vec<ConnId> = ids.iter().copied().step_by(1000).collect();
        for &id in &ids {
            if !kept.contains(&id) {
                s.free(id);
            }
        }
        for &id in &kept {
            s.bind(id, 7).unwrap();
        }
        let released = s.release_free_slots();
        let after = resident(&s);
        // 3000 slots touched 12 groups of 256 slots (5 pages each; the last in part); the
        // kept ones (slots 0, 1000, 2000) hold 3 of them, which stay whole.
        let page = crate::sys::page_size();
        let group = 5 * page * 80 / std::mem::size_of::<ConnSlot>();
        assert_eq!(released, 9 * group, "released {released} B");
        assert_eq!(idle_pages, 0);
        assert_eq!(after, 3 * group / page, "{burst_pages} -> {after} pages");
        assert_eq!(s.connections(), kept);
        for &id in &kept {
            let info = s.info(id).expect("a kept connection");
            assert_eq!(info.uid, 7);
        }
        // Freed slots are free: new connections take them (the cursor wraps around).
        let again: Vec<ConnId> = (0..3000).map(|_| open1(&s)).collect();
        assert_eq!(s.connections().len(), kept.len() + again.len());
        // Nothing to give back while every page holds a connection.
        let _ = s.release_free_slots();
        assert_eq!(s.connections().len(), kept.len() + again.len());
    }

    /// Base mode: a connection is reachable through its owner only while the incarnation
    /// that accepted it is its worker's current, serving one; when that process exits, its
    /// connections are freed and nobody sees them open.
    #[test]
    fn shared_connections_die_with_their_worker_incarnation() {
        let s = Shared::new(2, 16).unwrap();
        for (w, pid) in [(0, 100), (1, 200)] {
            s.worker(w).pid.store(pid, Relaxed);
            s.worker(w).state.store(W_IDLE, Relaxed);
        }
        let a = open(&s, 0, 100);
        let b1 = open(&s, 1, 200);
        let b2 = open(&s, 1, 200);
        let owner = |fd| s.live_slot(fd).and_then(|sl| s.live_owner(sl));
        assert_eq!((owner(a), owner(b1)), (Some(0), Some(1)));
        assert!(s.worker_serving(1));
        // Worker 1 died: down until its replacement starts, and its connections go.
        s.worker(1).state.store(W_DOWN, Relaxed);
        assert_eq!(owner(b1), None);
        assert!(!s.worker_serving(1));
        assert_eq!(s.free_owned_by(200), 2);
        assert_eq!(s.connections(), vec![a]);
        assert_eq!(s.header().live.load(Relaxed), 1);
        // The replacement (another pid) serves its own new connections only.
        s.worker(1).pid.store(201, Relaxed);
        s.worker(1).state.store(W_BUSY, Relaxed);
        let c = open(&s, 1, 201);
        assert_eq!(owner(c), Some(1));
        assert!(s.live_slot(b2).is_none());
        // A connection of a replaced incarnation that has not exited yet: not reachable.
        s.worker(0).pid.store(101, Relaxed);
        assert_eq!(owner(a), None);
    }
}
