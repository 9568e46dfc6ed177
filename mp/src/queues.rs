//! Queues shared between processes (CPython's `multiprocessing.queues`): [`Queue`],
//! [`SimpleQueue`] and [`JoinableQueue`].
//!
//! ```
//! # mp::test_support!();
//! #[mp::task]
//! fn f(q: mp::Queue<(i32, Option<i32>, String)>) {
//!     q.put((42, None, "hello".to_string())).unwrap();
//! }
//!
//! # fn main() -> mp::Result<()> {
//! let q = mp::Queue::new()?;
//! let p = mp::Process::new(f, (q.clone(),));
//! p.start()?;
//! assert_eq!(q.get()?, (42, None, "hello".to_string()));
//! p.join()?;
//! # Ok(()) }
//! ```
//!
//! # Design
//! A queue is a ring buffer in shared memory (a [`heap`](crate::heap) block: one header
//! of futex words and counters, then the data ring), protected by a futex lock, with
//! futex wake-ups for blocked getters and putters. Putting or getting an item is a
//! memory copy under a lock: no system call unless somebody sleeps, which is how a queue
//! moves millions of small items a second (a pipe write per item, CPython's design,
//! tops out near 2 M/s here).
//!
//! - Items bigger than [`INLINE_MAX`] do not go through the ring: their bytes are
//!   written to an anonymous file (`memfd`) whose descriptor travels on a side
//!   channel (a Unix socket pair every holder of the queue has); the ring holds a small
//!   record. So a 16 MiB item costs two copies and never fills the ring, and a child
//!   that put a large item can exit before anybody reads it: the kernel holds the
//!   in-flight descriptor (the docs' "joining processes that use queues" deadlock does
//!   not happen).
//! - Items that carry handles (a `Connection`, another `Queue`, a `Lock` …) send their
//!   descriptors on the same side channel, each message tagged with its entry's sequence
//!   number, so descriptors always reach the consumer of their item.
//! - An unbounded queue's `put` never blocks: if the ring is full, the item waits in a
//!   per-process buffer that a feeder thread moves into the ring as consumers make room
//!   (CPython's feeder thread, needed here only when the 1 MiB ring is full). At exit the
//!   feeder is joined ([`Queue::join_thread`]) unless [`Queue::cancel_join_thread`] was
//!   called, as in CPython.
//! - A consumer killed while it sleeps in `get`, or a producer killed between two puts,
//!   holds nothing: the others carry on. A process killed in the middle of a put or get
//!   (while holding the lock, a few microseconds) leaves the lock held: `get_timeout` and
//!   `put_timeout` then fail after their timeout instead of hanging.

use crate::codec;
use crate::error::{Error, Result};
use crate::heap::Block;
use crate::reduction::{self, recv_with_fds, send_with_fds};
use crate::synchronize::futex::{self, Deadline};
use serde::{de::DeserializeOwned, Deserialize, Deserializer, Serialize, Serializer};
use std::collections::VecDeque;
use std::fmt;
use std::io::IoSlice;
use std::marker::PhantomData;
use std::ops::Deref;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::*};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// Items larger than this (encoded) travel in their own `memfd`, not through the ring.
pub const INLINE_MAX: usize = 64 * 1024;
/// Bytes of the data ring of each queue.
const RING: usize = 1 << 20;

// Header layout: u32 futex words and u64 counters, grouped by who writes them so that
// producers and consumers do not bounce each other's cache lines (64 bytes) needlessly.
const W_LOCK: usize = 0; // line 0: ring mutex
const W_PUT_SEQ: usize = 16; // line 1: bumped by every put (getters sleep on it)
const W_GETTERS: usize = 17; //         sleeping getters
const W_GET_SEQ: usize = 32; // line 2: bumped by every get (bounded putters sleep on it)
const W_PUTTERS: usize = 33; //         sleeping putters
const W_UNFINISHED: usize = 48; // line 3: JoinableQueue: items put and not task_done
const W_JOIN_SEQ: usize = 49; //         bumped when unfinished reaches 0
const W_JOINERS: usize = 50;
const Q_HEAD: usize = 32; // line 4 (u64 index): bytes consumed (monotonic)
const Q_TAIL: usize = 40; // line 5: bytes produced (monotonic)
const Q_COUNT: usize = 41; //         items in the ring
const Q_SEQ: usize = 42; //         sequence number of the next entry
const Q_MAXSIZE: usize = 48; // line 6: 0 = unbounded (written once)
const HEADER: usize = 512;

// Entry: [len: u32][kind: u32][seq: u64] then the inline bytes, padded to 8.
const ENTRY_HDR: usize = 16;
const KIND_INLINE: u32 = 0;
const KIND_FDS: u32 = 1; // inline bytes; descriptors on the side channel
const KIND_INDIRECT: u32 = 2; // bytes in a memfd (first descriptor on the side channel)
const KIND_WRAP: u32 = 3; // the rest of the ring is unused: continue at offset 0

thread_local! {
    /// Per-thread buffer items are encoded into (and popped into) before the ring copy.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn pad8(n: usize) -> usize {
    (n + 7) & !7
}

fn lock_local<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// An encoded item ready for the ring.
struct Encoded {
    bytes: Vec<u8>,
    fds: Vec<OwnedFd>,
    /// For big items: the memfd holding `bytes` (then `bytes` is empty).
    memfd: Option<(OwnedFd, usize)>,
}

impl Encoded {
    fn new<T: Serialize>(item: &T) -> Result<Encoded> {
        // reuse this thread's buffer: the common case hands it back right after the push
        let mut bytes = SCRATCH.with(|s| std::mem::take(&mut *s.borrow_mut()));
        bytes.clear();
        let guard = reduction::EncodeFds::begin();
        let encoded = codec::encode_into(item, &mut bytes);
        let fds = guard.finish();
        encoded?;
        if bytes.len() <= INLINE_MAX {
            return Ok(Encoded {
                bytes,
                fds,
                memfd: None,
            });
        }
        let fd = rustix::fs::memfd_create("mp-queue-item", rustix::fs::MemfdFlags::CLOEXEC)?;
        let mut file = std::fs::File::from(fd);
        std::io::Write::write_all(&mut file, &bytes)?;
        Ok(Encoded {
            bytes: Vec::new(),
            fds,
            memfd: Some((file.into(), bytes.len())),
        })
    }

    /// Gives the byte buffer back to this thread for the next item.
    fn recycle(self) {
        if self.bytes.capacity() <= INLINE_MAX * 2 {
            SCRATCH.with(|s| *s.borrow_mut() = self.bytes);
        }
    }

    fn ring_size(&self) -> usize {
        ENTRY_HDR
            + if self.memfd.is_some() {
                0
            } else {
                pad8(self.bytes.len())
            }
    }

    fn kind(&self) -> u32 {
        match (&self.memfd, self.fds.is_empty()) {
            (Some(_), _) => KIND_INDIRECT,
            (None, true) => KIND_INLINE,
            (None, false) => KIND_FDS,
        }
    }
}

/// A process-shared file descriptor of the queue (the side channel's ends).
struct Fd(OwnedFd);

impl Serialize for Fd {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        reduction::serialize_fd(self.0.as_fd(), s)
    }
}

impl<'de> Deserialize<'de> for Fd {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        reduction::deserialize_fd(d).map(Fd)
    }
}

/// What every process holding the queue shares.
#[derive(Serialize, Deserialize)]
struct Shared {
    block: Block,
    side_tx: Fd,
    side_rx: Fd,
}

/// What this process alone holds (CPython's `_buffer`, `_thread`, `_closed` …).
#[derive(Default)]
struct Local {
    pending: Mutex<VecDeque<Encoded>>,
    /// Items buffered or in the feeder's hands: while 0, puts go straight to the ring
    /// without touching `pending`'s lock.
    pending_len: std::sync::atomic::AtomicUsize,
    /// Signalled when `pending` drains (join_thread waits on it).
    drained: Condvar,
    feeder: Mutex<Option<std::thread::JoinHandle<()>>>,
    closed: AtomicBool,
    cancel_join: AtomicBool,
    hook_installed: AtomicBool,
    /// A feeder thread is running; changed only under `pending`'s lock, so an item
    /// buffered while the feeder decides to stop is never stranded.
    feeder_active: AtomicBool,
}

struct Core {
    shared: Shared,
    local: Local,
}

impl Core {
    fn create(maxsize: usize, ring: usize) -> Result<Arc<Core>> {
        let block = Block::new(HEADER + ring)?;
        block.atomic_u64(Q_MAXSIZE).store(maxsize as u64, Relaxed);
        let (tx, rx) = UnixStream::pair()?;
        rx.set_nonblocking(true)?;
        tx.set_nonblocking(true)?;
        Ok(Arc::new(Core {
            shared: Shared {
                block,
                side_tx: Fd(tx.into()),
                side_rx: Fd(rx.into()),
            },
            local: Local::default(),
        }))
    }

    fn w(&self, i: usize) -> &AtomicU32 {
        self.shared.block.atomic_u32(i)
    }

    fn q(&self, i: usize) -> &AtomicU64 {
        self.shared.block.atomic_u64(i)
    }

    fn capacity(&self) -> usize {
        self.shared.block.len() - HEADER
    }

    fn maxsize(&self) -> usize {
        self.q(Q_MAXSIZE).load(Relaxed) as usize
    }

    fn count(&self) -> usize {
        self.q(Q_COUNT).load(Acquire) as usize
    }

    fn lock(&self, dl: Deadline) -> bool {
        // The ring's critical sections are a few hundred nanoseconds: spin on them a
        // while before sleeping, so a producer and a consumer on two CPUs never fall
        // into a convoy of futex sleeps and wake-ups.
        let w = self.w(W_LOCK);
        for _ in 0..2000 {
            if w.load(Relaxed) == 0 && w.compare_exchange(0, 1, Acquire, Relaxed).is_ok() {
                return true;
            }
            std::hint::spin_loop();
        }
        futex::lock(w, dl)
    }

    fn unlock(&self) {
        futex::unlock(self.w(W_LOCK));
    }

    /// Whether an item of `size` ring bytes could go in now (read without the lock: a hint).
    fn has_room(&self, size: usize) -> bool {
        let max = self.maxsize();
        if max > 0 && self.count() >= max {
            return false;
        }
        let used = self.q(Q_TAIL).load(Acquire) - self.q(Q_HEAD).load(Acquire);
        // worst case a wrap wastes up to `size` bytes at the end of the ring
        used as usize + 2 * size <= self.capacity()
    }

    /// What a putter waiting for room sleeps until: a free slot of a bounded queue, or
    /// a quarter of the ring free for an unbounded one (so a full ring refills in
    /// batches rather than with one wake-up per get).
    fn room_to_wake(&self, size: usize) -> bool {
        if self.maxsize() > 0 {
            return self.has_room(size);
        }
        let used = (self.q(Q_TAIL).load(Acquire) - self.q(Q_HEAD).load(Acquire)) as usize;
        self.capacity().saturating_sub(used) >= self.capacity() / 4 && self.has_room(size)
    }

    /// After a get: wake sleeping putters when there is the room they wait for.
    fn bump_after_get(&self) {
        self.w(W_GET_SEQ).fetch_add(1, SeqCst);
        if self.w(W_PUTTERS).load(SeqCst) > 0 && self.room_to_wake(0) {
            futex::wake(self.w(W_GET_SEQ), u32::MAX);
        }
    }

    /// Sleeps until [`room_to_wake`](Self::room_to_wake) (re-checking the exact room at
    /// least every millisecond, so a putter whose item fits is never left waiting for
    /// the quarter). `false` once the deadline has passed.
    fn wait_room(&self, size: usize, dl: Deadline) -> bool {
        let step = match dl {
            Deadline::Now => return false,
            Deadline::Never => Deadline::after(Some(Duration::from_millis(1))),
            Deadline::At(t) => {
                let soon = std::time::Instant::now() + Duration::from_millis(1);
                Deadline::At(t.min(soon))
            }
        };
        futex::wait_until(self.w(W_GET_SEQ), self.w(W_PUTTERS), step, || {
            self.room_to_wake(size)
        });
        !dl.expired()
    }

    fn bump(&self, seq: usize, waiters: usize, n: u32) {
        self.w(seq).fetch_add(1, SeqCst);
        if self.w(waiters).load(SeqCst) > 0 {
            futex::wake(self.w(seq), n);
        }
    }

    /// With the lock held: appends `e` if there is room. `Ok(false)` = full.
    fn push_locked(&self, e: &Encoded) -> Result<bool> {
        let max = self.maxsize();
        let count = self.q(Q_COUNT).load(Relaxed);
        if max > 0 && count as usize >= max {
            return Ok(false);
        }
        let cap = self.capacity() as u64;
        let (head, tail) = (self.q(Q_HEAD).load(Relaxed), self.q(Q_TAIL).load(Relaxed));
        let size = e.ring_size() as u64;
        let pos = tail % cap;
        let waste = if pos + size > cap { cap - pos } else { 0 };
        if (tail - head) + waste + size > cap {
            return Ok(false);
        }
        let seq = self.q(Q_SEQ).load(Relaxed);
        if e.kind() != KIND_INLINE {
            // descriptors first, tagged with the entry's sequence number
            let mut fds: Vec<BorrowedFd<'_>> = Vec::with_capacity(e.fds.len() + 1);
            if let Some((m, _)) = &e.memfd {
                fds.push(m.as_fd());
            }
            fds.extend(e.fds.iter().map(|f| f.as_fd()));
            let tag = seq.to_le_bytes();
            match send_with_fds(self.shared.side_tx.0.as_fd(), &[IoSlice::new(&tag)], &fds) {
                Ok(8) => {}
                Ok(_) => {
                    return Err(Error::Io(std::io::Error::other(
                        "short write on the queue's side channel",
                    )))
                }
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => return Ok(false),
                Err(err) => return Err(err.into()),
            }
        }
        let block = &self.shared.block;
        let mut at = tail;
        if waste > 0 {
            if waste >= ENTRY_HDR as u64 {
                let mut h = [0u8; ENTRY_HDR];
                h[4..8].copy_from_slice(&KIND_WRAP.to_le_bytes());
                block.write_bytes(HEADER + pos as usize, &h);
            }
            at += waste;
        }
        let off = HEADER + (at % cap) as usize;
        let len = e.memfd.as_ref().map_or(e.bytes.len(), |(_, n)| *n);
        let mut h = [0u8; ENTRY_HDR];
        h[..4].copy_from_slice(&(len as u32).to_le_bytes());
        h[4..8].copy_from_slice(&e.kind().to_le_bytes());
        h[8..].copy_from_slice(&seq.to_le_bytes());
        block.write_bytes(off, &h);
        if e.memfd.is_none() {
            block.write_bytes(off + ENTRY_HDR, &e.bytes);
        }
        self.q(Q_SEQ).store(seq + 1, Relaxed);
        self.q(Q_TAIL).store(at + size, Release);
        self.q(Q_COUNT).store(count + 1, Release);
        Ok(true)
    }

    /// With the lock held: takes the oldest entry, if any, as (bytes, descriptors).
    /// `Some(Err(_))` reports an item whose descriptors were lost (a consumer died
    /// holding them); the entry is dropped so the queue stays usable.
    fn pop_locked(&self) -> Option<Result<(Vec<u8>, Vec<OwnedFd>)>> {
        let count = self.q(Q_COUNT).load(Relaxed);
        if count == 0 {
            return None;
        }
        let cap = self.capacity() as u64;
        let block = &self.shared.block;
        let mut head = self.q(Q_HEAD).load(Relaxed);
        let mut h = [0u8; ENTRY_HDR];
        let mut pos = head % cap;
        if cap - pos < ENTRY_HDR as u64 {
            head += cap - pos;
            pos = 0;
        } else {
            block.read_bytes(HEADER + pos as usize, &mut h);
            if u32::from_le_bytes(h[4..8].try_into().expect("4 bytes")) == KIND_WRAP {
                head += cap - pos;
                pos = 0;
            }
        }
        block.read_bytes(HEADER + pos as usize, &mut h);
        let len = u32::from_le_bytes(h[..4].try_into().expect("4 bytes")) as usize;
        let kind = u32::from_le_bytes(h[4..8].try_into().expect("4 bytes"));
        let seq = u64::from_le_bytes(h[8..].try_into().expect("8 bytes"));
        let inline_ok = pos + (ENTRY_HDR + pad8(len)) as u64 <= cap && len <= INLINE_MAX;
        if kind > KIND_INDIRECT || (kind != KIND_INDIRECT && !inline_ok) {
            // Only a process killed mid-write (or foreign writes to the shared memory)
            // can leave this: drop everything queued rather than read garbage.
            let tail = self.q(Q_TAIL).load(Relaxed);
            self.q(Q_HEAD).store(tail, Release);
            self.q(Q_COUNT).store(0, Release);
            return Some(Err(Error::Codec(format!(
                "queue ring corrupted (entry kind {kind}, length {len}); its items were dropped"
            ))));
        }
        let mut size = ENTRY_HDR as u64;
        let mut out = Ok((Vec::new(), Vec::new()));
        if kind != KIND_INDIRECT {
            let mut bytes = SCRATCH.with(|s| std::mem::take(&mut *s.borrow_mut()));
            bytes.clear();
            bytes.resize(len, 0);
            block.read_bytes(HEADER + pos as usize + ENTRY_HDR, &mut bytes);
            size += pad8(len) as u64;
            out = Ok((bytes, Vec::new()));
        }
        if kind != KIND_INLINE {
            out = match self.take_fds(seq) {
                Some(mut fds) if kind == KIND_INDIRECT => {
                    if fds.is_empty() {
                        Err(Error::Codec("queue item lost its data".into()))
                    } else {
                        let memfd = fds.remove(0);
                        read_memfd(memfd, len).map(|b| (b, fds))
                    }
                }
                Some(fds) => out.map(|(b, _)| (b, fds)),
                None => Err(Error::Codec(
                    "a queue item's descriptors were lost (a consumer died while taking it)".into(),
                )),
            };
        }
        self.q(Q_HEAD).store(head + size, Release);
        self.q(Q_COUNT).store(count - 1, Release);
        Some(out)
    }

    /// Receives the side-channel message for entry `seq`, skipping older orphans (sent
    /// by a producer that died before committing its entry). `None` if it is missing.
    fn take_fds(&self, seq: u64) -> Option<Vec<OwnedFd>> {
        let rx = self.shared.side_rx.0.as_fd();
        loop {
            let mut tag = [0u8; 8];
            let n = rustix::net::recv(rx, &mut tag, rustix::net::RecvFlags::PEEK).ok()?;
            if n.0 != 8 {
                return None;
            }
            let got = u64::from_le_bytes(tag);
            if got > seq {
                return None; // ours is gone; leave this one for its own entry
            }
            let mut fds = Vec::new();
            if recv_with_fds(rx, &mut tag, &mut fds).ok()? != 8 {
                return None;
            }
            if got == seq {
                return Some(fds);
            }
            // an orphan: its descriptors are closed here
        }
    }

    /// One attempt: lock, append if there is room, wake a getter. `Ok(false)` = full.
    fn push_once(&self, e: &Encoded, dl: Deadline) -> Result<bool> {
        if !self.lock(dl) {
            return Err(Error::Full);
        }
        let pushed = self.push_locked(e);
        self.unlock();
        if pushed? {
            self.bump(W_PUT_SEQ, W_GETTERS, 1);
            return Ok(true);
        }
        Ok(false)
    }

    /// Puts, waiting (until the deadline) for room. `Err(Full)` on timeout.
    fn put_wait(&self, e: Encoded, dl: Deadline) -> Result<()> {
        loop {
            if self.push_once(&e, dl)? {
                e.recycle();
                return Ok(());
            }
            let size = e.ring_size();
            if dl != Deadline::Now && self.spin_until(|| self.has_room(size)) {
                continue;
            }
            if !self.wait_room(size, dl) {
                return Err(Error::Full);
            }
        }
    }

    /// Spins for a few microseconds waiting for `pred`: a producer streaming items on
    /// another CPU usually delivers the next one well before a futex sleep and wake-up
    /// (20–25 µs on this kind of VM) would, so a consumer that keeps up stays awake.
    fn spin_until(&self, pred: impl Fn() -> bool) -> bool {
        const SPIN: Duration = Duration::from_micros(20);
        let start = std::time::Instant::now();
        loop {
            for _ in 0..64 {
                if pred() {
                    return true;
                }
                std::hint::spin_loop();
            }
            if start.elapsed() >= SPIN {
                return false;
            }
        }
    }

    /// Gets, waiting (until the deadline) for an item. `Err(Empty)` on timeout.
    fn get_wait(&self, dl: Deadline) -> Result<(Vec<u8>, Vec<OwnedFd>)> {
        loop {
            if !self.lock(dl) {
                return Err(Error::Empty);
            }
            let item = self.pop_locked();
            self.unlock();
            if let Some(item) = item {
                self.bump_after_get();
                return item;
            }
            if dl != Deadline::Now && self.spin_until(|| self.count() > 0) {
                continue;
            }
            if !futex::wait_until(self.w(W_PUT_SEQ), self.w(W_GETTERS), dl, || {
                self.count() > 0
            }) {
                return Err(Error::Empty);
            }
        }
    }

    fn check_open(&self) -> Result<()> {
        if self.local.closed.load(Acquire) {
            Err(Error::invalid("Queue is closed"))
        } else {
            Ok(())
        }
    }

    /// An unbounded put: straight into the ring, or into the feeder's buffer if the ring
    /// is full (or older items are still buffered, to keep this producer's order).
    fn put_nowait_unbounded(self: &Arc<Self>, e: Encoded) -> Result<()> {
        // A full ring usually means a consumer one step behind: spin a few microseconds
        // for room (it frees some with every get) before handing the item to the
        // feeder thread, whose wake-ups would slow both sides to a crawl.
        let mut spun = false;
        while self.local.pending_len.load(Acquire) == 0 {
            if self.push_once(&e, Deadline::Never)? {
                e.recycle();
                return Ok(());
            }
            let size = e.ring_size();
            if spun || !self.spin_until(|| self.has_room(size)) {
                break;
            }
            spun = true;
        }
        let mut pending = lock_local(&self.local.pending);
        pending.push_back(e);
        self.local.pending_len.fetch_add(1, AcqRel);
        drop(pending);
        // move what fits now (keeps this producer's order: the buffer drains from the
        // front); the feeder thread takes over only while the ring stays full
        self.drain_pending();
        if self.local.pending_len.load(Acquire) > 0 {
            self.start_feeder();
        }
        Ok(())
    }

    /// Moves buffered items into the ring, as many as fit, under one lock acquisition.
    /// Returns the ring size of the first item still buffered, if any.
    fn drain_pending(&self) -> Option<usize> {
        let mut pending = lock_local(&self.local.pending);
        if pending.is_empty() {
            return None;
        }
        if !self.lock(Deadline::Never) {
            return pending.front().map(Encoded::ring_size);
        }
        let mut moved = 0u32;
        while let Some(front) = pending.front() {
            match self.push_locked(front) {
                Ok(true) => {}
                Ok(false) => break,
                Err(err) => log::warn!("queue feeder dropped an item: {err}"),
            }
            if let Some(e) = pending.pop_front() {
                e.recycle();
            }
            self.local.pending_len.fetch_sub(1, AcqRel);
            moved += 1;
        }
        self.unlock();
        if moved > 0 {
            self.bump(W_PUT_SEQ, W_GETTERS, moved);
        }
        pending.front().map(Encoded::ring_size)
    }

    fn start_feeder(self: &Arc<Self>) {
        let pending = lock_local(&self.local.pending);
        if pending.is_empty() || self.local.feeder_active.load(Acquire) {
            return;
        }
        self.local.feeder_active.store(true, Release);
        drop(pending);
        let mut feeder = lock_local(&self.local.feeder);
        if let Some(old) = feeder.take() {
            let _ = old.join(); // it has stopped (or is stopping): it cleared feeder_active
        }
        let core = self.clone();
        *feeder = Some(std::thread::spawn(move || core.feed()));
        drop(feeder);
        if !self.local.hook_installed.swap(true, AcqRel) {
            let weak = Arc::downgrade(self);
            crate::util::register_exit_hook(0, move || {
                if let Some(core) = weak.upgrade() {
                    core.finalize();
                }
            });
        }
    }

    /// The feeder thread: moves buffered items into the ring, in order, in batches.
    fn feed(&self) {
        loop {
            if self.local.cancel_join.load(Acquire) && self.local.closed.load(Acquire) {
                let mut pending = lock_local(&self.local.pending);
                self.local.pending_len.fetch_sub(pending.len(), AcqRel);
                pending.clear(); // cancelled: drop what is left
            }
            let Some(size) = self.drain_pending() else {
                let pending = lock_local(&self.local.pending);
                if !pending.is_empty() {
                    continue; // a producer buffered another item meanwhile
                }
                self.local.feeder_active.store(false, Release);
                self.local.drained.notify_all();
                return;
            };
            if !self.spin_until(|| self.has_room(size)) {
                self.wait_room(size, Deadline::Never);
            }
        }
    }

    /// Waits until this process's buffered items are in the ring.
    fn join_feeder(&self) {
        let mut pending = lock_local(&self.local.pending);
        while !pending.is_empty() {
            pending = self
                .local
                .drained
                .wait(pending)
                .unwrap_or_else(|p| p.into_inner());
        }
        drop(pending);
        if let Some(h) = lock_local(&self.local.feeder).take() {
            let _ = h.join();
        }
    }

    /// At exit: flush the buffer unless cancelled (CPython's `_finalize_join`).
    fn finalize(&self) {
        if self.local.cancel_join.load(Acquire) {
            let mut pending = lock_local(&self.local.pending);
            self.local.pending_len.fetch_sub(pending.len(), AcqRel);
            pending.clear();
            return;
        }
        self.join_feeder();
    }
}

/// Decodes an item and hands its buffer back to this thread.
fn decode_recycle<T: DeserializeOwned>(bytes: Vec<u8>, fds: Vec<OwnedFd>) -> Result<T> {
    let out = codec::decode_with_fds(&bytes, fds);
    if bytes.capacity() <= INLINE_MAX * 2 {
        SCRATCH.with(|s| *s.borrow_mut() = bytes);
    }
    out
}

fn read_memfd(fd: OwnedFd, len: usize) -> Result<Vec<u8>> {
    let file = std::fs::File::from(fd);
    let real = file.metadata()?.len();
    if real != len as u64 {
        return Err(Error::Codec(format!(
            "queue item of {len} bytes arrived with {real}"
        )));
    }
    let mut out = vec![0u8; len];
    std::os::unix::fs::FileExt::read_exact_at(&file, &mut out, 0)?;
    Ok(out)
}

fn deadline(timeout: Duration) -> Deadline {
    Deadline::after(Some(timeout))
}

/// Python's `multiprocessing.Queue`: a multi-producer, multi-consumer FIFO shared
/// between processes. Cloning gives another handle to the same queue; pass it to a
/// child in a `Process`'s arguments (any start method), through a `Connection`, or in
/// another queue. Items from one producer arrive in order.
///
/// `put` on an unbounded queue never blocks; on a queue made with
/// [`with_maxsize`](Queue::with_maxsize) it waits for room (`try_put` fails with
/// [`Error::Full`], `put_timeout` after its timeout). `get` waits for an item
/// (`try_get` / `get_timeout` fail with [`Error::Empty`]).
pub struct Queue<T> {
    core: Arc<Core>,
    _t: PhantomData<fn(T) -> T>,
}

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Self {
        Queue {
            core: self.core.clone(),
            _t: PhantomData,
        }
    }
}

impl<T> fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "<Queue qsize={} maxsize={}>",
            self.core.count(),
            self.core.maxsize()
        )
    }
}

impl<T> Serialize for Queue<T> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.core.shared.serialize(s)
    }
}

impl<'de, T> Deserialize<'de> for Queue<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let shared = Shared::deserialize(d)?;
        if shared.block.len() < HEADER + 64 {
            return Err(serde::de::Error::custom("queue block too small"));
        }
        Ok(Queue {
            core: Arc::new(Core {
                shared,
                local: Local::default(),
            }),
            _t: PhantomData,
        })
    }
}

impl<T: Serialize + DeserializeOwned + Send + 'static> Queue<T> {
    /// `Queue()`: an unbounded queue.
    pub fn new() -> Result<Self> {
        Self::with_maxsize(0)
    }

    /// `Queue(maxsize)`: at most `maxsize` items at a time (0 = unbounded).
    pub fn with_maxsize(maxsize: usize) -> Result<Self> {
        Ok(Queue {
            core: Core::create(maxsize, RING)?,
            _t: PhantomData,
        })
    }

    /// `put(item)`: never blocks on an unbounded queue; waits for room on a bounded one.
    /// [`Error::InvalidState`] after [`close`](Self::close).
    pub fn put(&self, item: T) -> Result<()> {
        self.core.check_open()?;
        let e = Encoded::new(&item)?;
        drop(item);
        if self.core.maxsize() == 0 {
            self.core.put_nowait_unbounded(e)
        } else {
            self.core.put_wait(e, Deadline::Never)
        }
    }

    /// `put(item, block=False)`: [`Error::Full`] if a bounded queue has no room.
    pub fn try_put(&self, item: T) -> Result<()> {
        self.core.check_open()?;
        let e = Encoded::new(&item)?;
        if self.core.maxsize() == 0 {
            return self.core.put_nowait_unbounded(e);
        }
        self.core.put_wait(e, Deadline::Now)
    }

    /// `put(item, timeout=t)`: [`Error::Full`] if a bounded queue had no room in time.
    pub fn put_timeout(&self, item: T, timeout: Duration) -> Result<()> {
        self.core.check_open()?;
        let e = Encoded::new(&item)?;
        if self.core.maxsize() == 0 {
            return self.core.put_nowait_unbounded(e);
        }
        self.core.put_wait(e, deadline(timeout))
    }

    /// `get()`: waits for an item.
    pub fn get(&self) -> Result<T> {
        self.core.check_open()?;
        let (bytes, fds) = self.core.get_wait(Deadline::Never)?;
        decode_recycle(bytes, fds)
    }

    /// `get(block=False)` / `get_nowait()`: [`Error::Empty`] if there is no item.
    pub fn try_get(&self) -> Result<T> {
        self.core.check_open()?;
        let (bytes, fds) = self.core.get_wait(Deadline::Now)?;
        decode_recycle(bytes, fds)
    }

    /// `get(timeout=t)`: [`Error::Empty`] if no item came in time; never blocks longer.
    pub fn get_timeout(&self, timeout: Duration) -> Result<T> {
        self.core.check_open()?;
        let (bytes, fds) = self.core.get_wait(deadline(timeout))?;
        decode_recycle(bytes, fds)
    }

    /// `qsize()`: the approximate number of items (in the queue, plus those this
    /// process's feeder has not yet moved in).
    pub fn qsize(&self) -> usize {
        self.core.count() + self.core.local.pending_len.load(Acquire)
    }

    /// `empty()`: whether the queue holds no item (approximate, as in Python).
    pub fn empty(&self) -> bool {
        self.core.count() == 0
    }

    /// `full()`: whether a bounded queue is at its maximum size.
    pub fn full(&self) -> bool {
        let max = self.core.maxsize();
        max > 0 && self.qsize() >= max
    }

    /// The `maxsize` given at creation (0 = unbounded).
    pub fn maxsize(&self) -> usize {
        self.core.maxsize()
    }

    /// `close()`: this process will put no more items; buffered ones are still
    /// flushed by the feeder. Later `put`/`get` through this process's handles give
    /// [`Error::InvalidState`]. Other processes are not affected.
    pub fn close(&self) -> Result<()> {
        self.core.local.closed.store(true, Release);
        Ok(())
    }

    /// `join_thread()`: waits until the items this process put are all in the queue
    /// (the feeder has flushed its buffer). Only after [`close`](Self::close).
    pub fn join_thread(&self) -> Result<()> {
        if !self.core.local.closed.load(Acquire) {
            return Err(Error::invalid("Queue.join_thread() called before close()"));
        }
        self.core.join_feeder();
        Ok(())
    }

    /// `cancel_join_thread()`: at exit, do not wait for buffered items to reach the
    /// queue (they are dropped). Needed only when the ring is full and nobody reads.
    pub fn cancel_join_thread(&self) {
        self.core.local.cancel_join.store(true, Release);
    }
}

/// `Clone` and the handle's serde impls for a type wrapping a [`Queue`] as `inner`.
macro_rules! queue_wrapper {
    ($name:ident) => {
        impl<T> Clone for $name<T> {
            fn clone(&self) -> Self {
                $name {
                    inner: self.inner.clone(),
                }
            }
        }

        impl<T> Serialize for $name<T> {
            fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                self.inner.serialize(s)
            }
        }

        impl<'de, T> Deserialize<'de> for $name<T> {
            fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                Ok($name {
                    inner: Queue::deserialize(d)?,
                })
            }
        }
    };
}

/// Python's `multiprocessing.SimpleQueue`: a queue without a feeder thread or size
/// limit; `put` writes the item straight into the shared ring (waiting if the ring
/// itself is full).
pub struct SimpleQueue<T> {
    inner: Queue<T>,
}

impl<T> fmt::Debug for SimpleQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<SimpleQueue qsize={}>", self.inner.core.count())
    }
}

queue_wrapper!(SimpleQueue);

impl<T: Serialize + DeserializeOwned + Send + 'static> SimpleQueue<T> {
    /// `SimpleQueue()`.
    pub fn new() -> Result<Self> {
        Ok(SimpleQueue {
            inner: Queue::new()?,
        })
    }

    /// `put(item)`.
    pub fn put(&self, item: T) -> Result<()> {
        self.inner.core.check_open()?;
        let e = Encoded::new(&item)?;
        self.inner.core.put_wait(e, Deadline::Never)
    }

    /// `get()`: waits for an item.
    pub fn get(&self) -> Result<T> {
        self.inner.get()
    }

    /// `get` with a timeout ([`Error::Empty`] after it; beyond CPython's SimpleQueue).
    pub fn get_timeout(&self, timeout: Duration) -> Result<T> {
        self.inner.get_timeout(timeout)
    }

    /// `empty()`.
    pub fn empty(&self) -> bool {
        self.inner.empty()
    }

    /// `close()`: this process's handles refuse further use.
    pub fn close(&self) -> Result<()> {
        self.inner.close()
    }
}

/// Python's `multiprocessing.JoinableQueue`: a [`Queue`] whose consumers call
/// [`task_done`](Self::task_done) for every item, so producers can
/// [`join`](Self::join) until all items are processed. Every other method is the
/// `Queue`'s (through `Deref`).
pub struct JoinableQueue<T> {
    inner: Queue<T>,
}

impl<T> fmt::Debug for JoinableQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "<JoinableQueue qsize={} unfinished={}>",
            self.inner.core.count(),
            self.inner.core.w(W_UNFINISHED).load(Relaxed)
        )
    }
}

queue_wrapper!(JoinableQueue);

impl<T> Deref for JoinableQueue<T> {
    type Target = Queue<T>;
    fn deref(&self) -> &Queue<T> {
        &self.inner
    }
}

impl<T: Serialize + DeserializeOwned + Send + 'static> JoinableQueue<T> {
    /// `JoinableQueue()`.
    pub fn new() -> Result<Self> {
        Self::with_maxsize(0)
    }

    /// `JoinableQueue(maxsize)`.
    pub fn with_maxsize(maxsize: usize) -> Result<Self> {
        Ok(JoinableQueue {
            inner: Queue::with_maxsize(maxsize)?,
        })
    }

    fn counted(&self, put: impl FnOnce() -> Result<()>) -> Result<()> {
        let unfinished = self.inner.core.w(W_UNFINISHED);
        unfinished.fetch_add(1, SeqCst);
        let r = put();
        if r.is_err() {
            self.undo_count();
        }
        r
    }

    fn undo_count(&self) {
        let core = &self.inner.core;
        if core.w(W_UNFINISHED).fetch_sub(1, SeqCst) == 1 {
            core.bump(W_JOIN_SEQ, W_JOINERS, u32::MAX);
        }
    }

    /// `put(item)` (counts one more unfinished task).
    pub fn put(&self, item: T) -> Result<()> {
        self.counted(|| self.inner.put(item))
    }

    /// `put(item, block=False)`.
    pub fn try_put(&self, item: T) -> Result<()> {
        self.counted(|| self.inner.try_put(item))
    }

    /// `put(item, timeout=t)`.
    pub fn put_timeout(&self, item: T, timeout: Duration) -> Result<()> {
        self.counted(|| self.inner.put_timeout(item, timeout))
    }

    /// `task_done()`: one item got by a consumer is processed.
    /// [`Error::InvalidState`] if called more times than items were put.
    pub fn task_done(&self) -> Result<()> {
        let w = self.inner.core.w(W_UNFINISHED);
        let mut cur = w.load(SeqCst);
        loop {
            if cur == 0 {
                return Err(Error::invalid("task_done() called too many times"));
            }
            match w.compare_exchange(cur, cur - 1, SeqCst, SeqCst) {
                Ok(_) => break,
                Err(now) => cur = now,
            }
        }
        if cur == 1 {
            self.inner.core.bump(W_JOIN_SEQ, W_JOINERS, u32::MAX);
        }
        Ok(())
    }

    /// `join()`: waits until every item put has been marked [`task_done`](Self::task_done).
    pub fn join(&self) -> Result<()> {
        self.join_deadline(Deadline::Never);
        Ok(())
    }

    /// `join()` with a timeout: `false` if items were still unfinished when it passed.
    pub fn join_timeout(&self, timeout: Duration) -> bool {
        self.join_deadline(deadline(timeout))
    }

    fn join_deadline(&self, dl: Deadline) -> bool {
        let core = &self.inner.core;
        futex::wait_until(core.w(W_JOIN_SEQ), core.w(W_JOINERS), dl, || {
            core.w(W_UNFINISHED).load(SeqCst) == 0
        })
    }
}

impl crate::context::Context {
    /// `ctx.Queue()`.
    pub fn queue<T: Serialize + DeserializeOwned + Send + 'static>(&self) -> Result<Queue<T>> {
        Queue::new()
    }

    /// `ctx.Queue(maxsize)`.
    pub fn queue_with_maxsize<T: Serialize + DeserializeOwned + Send + 'static>(
        &self,
        maxsize: usize,
    ) -> Result<Queue<T>> {
        Queue::with_maxsize(maxsize)
    }

    /// `ctx.SimpleQueue()`.
    pub fn simple_queue<T: Serialize + DeserializeOwned + Send + 'static>(
        &self,
    ) -> Result<SimpleQueue<T>> {
        SimpleQueue::new()
    }

    /// `ctx.JoinableQueue()`.
    pub fn joinable_queue<T: Serialize + DeserializeOwned + Send + 'static>(
        &self,
    ) -> Result<JoinableQueue<T>> {
        JoinableQueue::new()
    }

    /// `ctx.JoinableQueue(maxsize)`.
    pub fn joinable_queue_with_maxsize<T: Serialize + DeserializeOwned + Send + 'static>(
        &self,
        maxsize: usize,
    ) -> Result<JoinableQueue<T>> {
        JoinableQueue::with_maxsize(maxsize)
    }
}

#[doc(hidden)]
pub mod root_exports {
    pub use super::{JoinableQueue, Queue, SimpleQueue};
}
