//! The shared-memory ring of a queue: its layout, its entries, push and pop, and the
//! validation of everything read back (CPython has no counterpart: its queues are a
//! pipe; the ring plays the pipe's part, the side channel carries descriptors).
//!
//! # Layout
//! A [`heap`](crate::heap) block: the [`QueueHeader`] (futex words and counters, one
//! cache line per writer, the ring lock beside the producers' counters), then the data
//! ring. An entry is `[len: u32][kind: u32][seq: u64]` then, for inline items, the
//! bytes padded to 8. An entry never wraps: when it does not fit before the end of the
//! ring, a [`KIND_WRAP`] marker (or fewer than [`ENTRY_HDR`] bytes of slack) sends the
//! reader back to offset 0.
//!
//! # Validation
//! Every entry read from the ring is checked (kind, length against the ring and
//! [`INLINE_MAX`], a memfd's size against the entry's length) before use: the ring is
//! memory other processes write, a process killed mid-write or a hostile peer can
//! leave anything there. A corrupt entry is an [`Error::Codec`] and never a panic.

use crate::codec;
use crate::error::{Error, Result};
use crate::heap::{Block, CachePadded, SharedHeader};
use crate::reduction::{self, recv_with_fds, send_with_fds};
use crate::synchronize::futex::{self, Deadline, Locked, OwnedLock};
use serde::{de::DeserializeOwned, Deserialize, Deserializer, Serialize, Serializer};
use std::io::IoSlice;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::*};
use std::time::Duration;

/// Items larger than this (encoded) travel in their own `memfd`, not through the ring.
pub const INLINE_MAX: usize = 64 * 1024;
/// Bytes of the data ring of each queue.
pub(super) const RING: usize = 1 << 20;

/// How many sleeping getters a put wakes: all of them. A futex wake-up is not a
/// token the woken getter is sure to use: one that is killed (or dies) between its
/// wake-up and taking the item would leave the item in the ring and every other getter
/// asleep, an untimed `get` hung for good. Woken getters that find the ring empty
/// again go back to sleep; the herd is as large as the number of getters asleep at
/// once (a woken getter that finds the item gone sleeps again without spinning), and a
/// streaming producer usually finds none asleep (see [`Ring::bump`]).
pub(super) const WAKE_ALL_GETTERS: u32 = u32::MAX;

/// Bytes before the data ring (the [`QueueHeader`], rounded up).
pub(super) const HEADER: usize = 512;

/// A futex word bumped on every event of one kind, and the number of sleepers on it
/// (the bumper skips the wake-up syscall while nobody sleeps).
#[repr(C)]
pub(super) struct WaitWord {
    /// Bumped by every event: the futex word.
    pub seq: AtomicU32,
    /// Sleepers on `seq`.
    pub sleepers: AtomicU32,
}

/// `JoinableQueue`'s shared counters.
#[repr(C)]
pub(super) struct JoinState {
    /// Items put and not yet `task_done`.
    pub unfinished: AtomicU32,
    /// Bumped when `unfinished` reaches 0; joiners sleep on it.
    pub done: WaitWord,
}

/// The ring lock and the producers' counters, in one cache line. Both sides write the
/// lock word on every item anyway; a producer that has just taken it owns the line and
/// writes its counters for free, and a consumer that takes it brings along the tail it
/// must read. (With the lock, the tail and the item count on three lines, each item
/// moved all three between the CPUs of a producer and a consumer.)
#[repr(C)]
pub(super) struct Tail {
    /// The ring lock (a futex lock word, [`OwnedLock`]).
    pub lock: AtomicU32,
    /// Bytes produced (monotonic; the ring offset is `tail % capacity`).
    pub tail: AtomicU64,
    /// Items ever put (the items in the ring are `puts - gets`).
    pub puts: AtomicU64,
    /// Sequence number of the next entry (tags its side-channel message).
    pub seq: AtomicU64,
}

/// The consumers' counters, written under the ring lock by gets only (producers read
/// them only when the ring looks full to them, see [`Ring::push_locked`]).
#[repr(C)]
pub(super) struct Head {
    /// Bytes consumed (monotonic).
    pub head: AtomicU64,
    /// Items ever got.
    pub gets: AtomicU64,
}

/// The queue's shared header, at the start of its block, before the data ring. Fields
/// are grouped by who writes them, one cache line each, so producers and consumers do
/// not bounce each other's lines needlessly.
#[repr(C)]
pub(super) struct QueueHeader {
    /// The ring lock; bytes produced, items put, next sequence number.
    pub tail: CachePadded<Tail>,
    /// Bytes consumed, items got.
    pub head: CachePadded<Head>,
    /// Bumped by every put (getters sleep on it).
    pub put: CachePadded<WaitWord>,
    /// Bumped by every get (putters waiting for room sleep on it).
    pub get: CachePadded<WaitWord>,
    /// `JoinableQueue`: unfinished tasks and their joiners.
    pub join: CachePadded<JoinState>,
    /// 0 = unbounded (written once, at creation).
    pub maxsize: CachePadded<AtomicU64>,
}
// SAFETY: repr(C), atomics only (CachePadded is repr(C) too): every bit pattern is valid.
unsafe impl SharedHeader for QueueHeader {}
const _: () = assert!(std::mem::size_of::<QueueHeader>() <= HEADER);

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

/// An encoded item ready for the ring.
pub(super) struct Encoded {
    bytes: Vec<u8>,
    fds: Vec<OwnedFd>,
    /// For big items: the memfd holding `bytes` (then `bytes` is empty).
    memfd: Option<(OwnedFd, usize)>,
}

impl Encoded {
    pub(super) fn new<T: Serialize>(item: &T) -> Result<Encoded> {
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
        entry_len(bytes.len())?;
        let fd = rustix::fs::memfd_create(
            "mp-queue-item",
            rustix::fs::MemfdFlags::CLOEXEC | rustix::fs::MemfdFlags::ALLOW_SEALING,
        )?;
        let mut file = std::fs::File::from(fd);
        std::io::Write::write_all(&mut file, &bytes)?;
        // written once: nobody may change it afterwards (size or bytes)
        rustix::fs::fcntl_add_seals(&file, ITEM_SEALS)?;
        Ok(Encoded {
            bytes: Vec::new(),
            fds,
            memfd: Some((file.into(), bytes.len())),
        })
    }

    /// Gives the byte buffer back to this thread for the next item.
    pub(super) fn recycle(self) {
        if self.bytes.capacity() <= INLINE_MAX * 2 {
            SCRATCH.with(|s| *s.borrow_mut() = self.bytes);
        }
    }

    pub(super) fn ring_size(&self) -> usize {
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

/// What one [`Ring::push_once`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Pushed {
    /// The item is in the ring.
    Done,
    /// No room for it.
    NoRoom,
    /// The ring lock was not free before the deadline.
    LockTimedOut,
    /// The side channel cannot take the item's descriptors yet (transient).
    ChannelBusy,
}

/// Errors of the side channel that pass once consumers take their items.
fn is_transient(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::WouldBlock
        || matches!(
            e.raw_os_error(),
            Some(libc::ETOOMANYREFS) | Some(libc::ENOBUFS) | Some(libc::ENOMEM)
        )
}

/// The shared-memory ring every process holding the queue maps, and the side channel
/// beside it: what a queue handle serializes as.
#[derive(Serialize, Deserialize)]
pub(super) struct Ring {
    block: Block,
    side_tx: Fd,
    side_rx: Fd,
    /// The head this process last read (a lower bound of the real one: the head only
    /// grows), so a put reads the consumers' line only when the ring looks full.
    #[serde(skip)]
    seen_head: AtomicU64,
}

impl Ring {
    /// A new ring of `ring` data bytes (`maxsize` 0 = unbounded).
    pub(super) fn create(maxsize: usize, ring: usize) -> Result<Ring> {
        let block = Block::new_aligned(HEADER + ring, 64)?;
        block
            .header::<QueueHeader>()
            .maxsize
            .store(maxsize as u64, Relaxed);
        let (tx, rx) = UnixStream::pair()?;
        // with fcntl rather than std's ioctl(FIONBIO): the same flag, and Miri models it
        for s in [&rx, &tx] {
            rustix::fs::fcntl_setfl(s, rustix::fs::OFlags::NONBLOCK)?;
        }
        Ok(Ring {
            block,
            side_tx: Fd(tx.into()),
            side_rx: Fd(rx.into()),
            seen_head: AtomicU64::new(0),
        })
    }

    /// Checks a ring received from another process before any use.
    pub(super) fn validate(&self) -> std::result::Result<(), &'static str> {
        if self.block.len() < HEADER + 64 || self.block.try_header::<QueueHeader>().is_none() {
            return Err("queue block too small");
        }
        Ok(())
    }

    /// The shared header.
    #[inline]
    pub(super) fn h(&self) -> &QueueHeader {
        self.block.header()
    }

    pub(super) fn capacity(&self) -> usize {
        self.block.len() - HEADER
    }

    pub(super) fn maxsize(&self) -> usize {
        self.h().maxsize.load(Relaxed) as usize
    }

    /// Items in the ring (`puts - gets`, read without the lock: a hint). `gets` is read
    /// first: both only grow, so `puts` read after it is at least as large (saturating
    /// all the same: the words are shared memory, and a repair may lower `puts`).
    pub(super) fn count(&self) -> usize {
        let gets = self.h().head.gets.load(Acquire);
        let puts = self.h().tail.puts.load(Acquire);
        puts.saturating_sub(gets) as usize
    }

    /// Takes the ring lock; `false` if the deadline passed first. The ring's critical
    /// sections last tens of nanoseconds: a waiter re-checks the word after every
    /// `pause` for a microsecond, then the futex core's spin policy keeps a producer and
    /// a consumer on two CPUs out of a convoy of futex sleeps and wake-ups. The lock word names its holder: a holder killed inside its critical
    /// section is detected by the next waiter (within [`futex::OWNER_CHECK`]), which
    /// takes the lock over and [`repair`](Self::repair)s the ring first.
    pub(super) fn lock(&self, dl: Deadline) -> bool {
        match OwnedLock::lock(&self.h().tail.lock, dl) {
            Locked::Yes => true,
            Locked::FromDeadOwner => {
                self.repair();
                true
            }
            Locked::TimedOut => false,
        }
    }

    pub(super) fn unlock(&self) {
        OwnedLock::unlock(&self.h().tail.lock);
    }

    /// With the lock taken over from a dead holder: makes the ring consistent again.
    ///
    /// A put commits by advancing the tail after writing its entry, so the entry of a
    /// producer killed before that lies past the tail and is never read (its
    /// descriptors, if it sent any, become an orphan message that [`take_fds`] skips:
    /// the sequence number is advanced past it here). A holder killed between its
    /// stores leaves the item count off by one: it is recounted from the entries
    /// between head and tail. Anything unreadable there truncates the ring at that
    /// entry, so nothing torn is ever delivered.
    ///
    /// [`take_fds`]: Self::take_fds
    fn repair(&self) {
        log::warn!("a process died holding a queue's lock; the queue was repaired");
        let h = self.h();
        let cap = self.capacity() as u64;
        let head = h.head.head.load(Relaxed);
        let mut tail = h.tail.tail.load(Relaxed);
        if tail < head || tail - head > cap {
            tail = head; // the counters themselves are garbage: empty the ring
        }
        let (mut pos, mut n) = (head, 0u64);
        while pos < tail {
            let off = pos % cap;
            if cap - off < ENTRY_HDR as u64 {
                pos = pos.saturating_add(cap - off);
                continue;
            }
            let mut e = [0u8; ENTRY_HDR];
            self.block.read_bytes(HEADER + off as usize, &mut e);
            let len = u32::from_le_bytes(e[..4].try_into().expect("4 bytes")) as usize;
            let kind = u32::from_le_bytes(e[4..8].try_into().expect("4 bytes"));
            let size = match kind {
                KIND_WRAP => {
                    pos = pos.saturating_add(cap - off);
                    continue;
                }
                KIND_INDIRECT => ENTRY_HDR as u64,
                KIND_INLINE | KIND_FDS if len <= INLINE_MAX => (ENTRY_HDR + pad8(len)) as u64,
                _ => break,
            };
            match pos.checked_add(size) {
                Some(end) if off + size <= cap && end <= tail => pos = end,
                _ => break,
            }
            n += 1;
        }
        let tail = pos.min(tail);
        h.tail.tail.store(tail, Release);
        // the count is `puts - gets`: a holder killed between its two stores left one of
        // them a step behind its byte counter
        h.tail
            .puts
            .store(h.head.gets.load(Relaxed).wrapping_add(n), Release);
        h.tail.seq.fetch_add(1, Relaxed);
    }

    /// Ring bytes in use, read without the lock (a hint). The head is read first: both
    /// only grow, so the tail read after it is at least as large (read the other way
    /// round, consumers can move the head past the tail read before it, and the
    /// difference underflows). Saturating all the same: the words are shared memory.
    fn used(&self) -> usize {
        let head = self.h().head.head.load(Acquire);
        let tail = self.h().tail.tail.load(Acquire);
        tail.saturating_sub(head) as usize
    }

    /// Whether an item of `size` ring bytes could go in now (read without the lock: a hint).
    pub(super) fn has_room(&self, size: usize) -> bool {
        let max = self.maxsize();
        if max > 0 && self.count() >= max {
            return false;
        }
        // worst case a wrap wastes up to `size` bytes at the end of the ring
        self.used().saturating_add(2 * size) <= self.capacity()
    }

    /// What a putter waiting for room sleeps until: a free slot of a bounded queue, or
    /// a quarter of the ring free for an unbounded one (so a full ring refills in
    /// batches rather than with one wake-up per get).
    pub(super) fn room_to_wake(&self, size: usize) -> bool {
        if self.maxsize() > 0 {
            return self.has_room(size);
        }
        self.capacity().saturating_sub(self.used()) >= self.capacity() / 4 && self.has_room(size)
    }

    /// After a get: wake sleeping putters when there is the room they wait for.
    /// Nothing is written while nobody sleeps (see [`bump`](Self::bump)).
    pub(super) fn bump_after_get(&self) {
        let get = &self.h().get;
        std::sync::atomic::fence(SeqCst);
        if get.sleepers.load(SeqCst) > 0 {
            get.seq.fetch_add(1, SeqCst);
            if self.room_to_wake(0) {
                futex::wake(&get.seq, u32::MAX);
            }
        }
    }

    /// Sleeps until [`room_to_wake`](Self::room_to_wake) or the deadline: every get
    /// that leaves that much room wakes the sleepers, so nothing polls. `false` once the
    /// deadline has passed without room.
    pub(super) fn wait_room(&self, size: usize, dl: Deadline) -> bool {
        let get = &self.h().get;
        futex::wait_until_counted(&get.seq, &get.sleepers, dl, || self.room_to_wake(size))
    }

    /// After a change a sleeper on `w` may wait for: bumps `w` and wakes up to `n` of
    /// its sleepers, if any. While nobody sleeps nothing is written, so a producer and
    /// a consumer on two CPUs do not pull the word's cache line back and forth on every
    /// item: a waiter counts itself in `sleepers` before its last look at the ring
    /// ([`futex::wait_until_counted`]), and the fence orders our change before our read
    /// of `sleepers`, so one of the two always sees the other.
    pub(super) fn bump(w: &WaitWord, n: u32) {
        std::sync::atomic::fence(SeqCst);
        if w.sleepers.load(SeqCst) > 0 {
            w.seq.fetch_add(1, SeqCst);
            futex::wake(&w.seq, n);
        }
    }

    /// With the lock held: appends `e` if there is room (and, for an item with
    /// descriptors, the side channel takes them now). An `Err` is permanent.
    pub(super) fn push_locked(&self, e: &Encoded) -> Result<Pushed> {
        let q = self.h();
        let max = self.maxsize();
        let puts = q.tail.puts.load(Relaxed);
        if max > 0 && puts.saturating_sub(q.head.gets.load(Relaxed)) >= max as u64 {
            return Ok(Pushed::NoRoom);
        }
        let cap = self.capacity() as u64;
        let tail = q.tail.tail.load(Relaxed);
        let size = e.ring_size() as u64;
        let pos = tail % cap;
        let waste = if pos + size > cap { cap - pos } else { 0 };
        let fits = |head: u64| {
            tail.checked_sub(head)
                .is_some_and(|used| used <= cap && used + waste + size <= cap)
        };
        // the counters are shared memory: a tail behind the head or more than the ring
        // ahead of it, or one no real queue reaches (2^64 bytes produced), was written
        // by someone else; waiting for room would wait forever
        let corrupt = |head: u64| {
            Err(Error::Codec(
                format!("queue ring corrupted (head {head}, tail {tail}); the queue is unusable")
                    .into(),
            ))
        };
        let Some(end) = tail.checked_add(waste + size) else {
            return corrupt(q.head.head.load(Relaxed));
        };
        // The head this process saw last is a lower bound of the real one (the head only
        // grows): if the entry fits with it, it fits, and the consumers' line, which
        // every get writes, stays in their cache. Otherwise the real head decides.
        if !fits(self.seen_head.load(Relaxed)) {
            let head = q.head.head.load(Relaxed);
            self.seen_head.store(head, Relaxed);
            if !matches!(tail.checked_sub(head), Some(used) if used <= cap) {
                return corrupt(head);
            }
            if !fits(head) {
                return Ok(Pushed::NoRoom);
            }
        }
        let seq = q.tail.seq.load(Relaxed);
        if e.kind() != KIND_INLINE {
            // descriptors first, tagged with the entry's sequence number
            let mut fds: Vec<BorrowedFd<'_>> = Vec::with_capacity(e.fds.len() + 1);
            if let Some((m, _)) = &e.memfd {
                fds.push(m.as_fd());
            }
            fds.extend(e.fds.iter().map(|f| f.as_fd()));
            let tag = seq.to_le_bytes();
            match send_with_fds(self.side_tx.0.as_fd(), &[IoSlice::new(&tag)], &fds) {
                Ok(8) => {}
                Ok(_) => {
                    return Err(Error::Io(std::io::Error::other(
                        "short write on the queue's side channel",
                    )))
                }
                // the channel's buffer is full, or too many descriptors are in flight
                // (ETOOMANYREFS, under a low RLIMIT_NOFILE): both pass as consumers take
                // their items; the ring may have plenty of room meanwhile
                Err(err) if is_transient(&err) => return Ok(Pushed::ChannelBusy),
                Err(err) => return Err(err.into()),
            }
        }
        let block = &self.block;
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
        h[..4].copy_from_slice(&entry_len(len)?.to_le_bytes());
        h[4..8].copy_from_slice(&e.kind().to_le_bytes());
        h[8..].copy_from_slice(&seq.to_le_bytes());
        block.write_bytes(off, &h);
        if e.memfd.is_none() {
            block.write_bytes(off + ENTRY_HDR, &e.bytes);
        }
        q.tail.seq.store(seq.wrapping_add(1), Relaxed);
        q.tail.tail.store(end, Release);
        q.tail.puts.store(puts.wrapping_add(1), Release);
        Ok(Pushed::Done)
    }

    /// With the lock held: takes the oldest entry, if any, as (bytes, descriptors).
    /// `Some(Err(_))` reports an item whose descriptors were lost (a consumer died
    /// holding them); the entry is dropped so the queue stays usable.
    pub(super) fn pop_locked(&self) -> Option<Result<(Vec<u8>, Vec<OwnedFd>)>> {
        let q = self.h();
        let gets = q.head.gets.load(Relaxed);
        let puts = q.tail.puts.load(Relaxed);
        if puts == gets {
            return None;
        }
        let cap = self.capacity() as u64;
        let block = &self.block;
        let mut head = q.head.head.load(Relaxed);
        let mut h = [0u8; ENTRY_HDR];
        let mut pos = head % cap;
        // saturating: the counters are shared memory, and may be anything
        if cap - pos < ENTRY_HDR as u64 {
            head = head.saturating_add(cap - pos);
            pos = 0;
        } else {
            block.read_bytes(HEADER + pos as usize, &mut h);
            if u32::from_le_bytes(h[4..8].try_into().expect("4 bytes")) == KIND_WRAP {
                head = head.saturating_add(cap - pos);
                pos = 0;
            }
        }
        block.read_bytes(HEADER + pos as usize, &mut h);
        let len = u32::from_le_bytes(h[..4].try_into().expect("4 bytes")) as usize;
        let kind = u32::from_le_bytes(h[4..8].try_into().expect("4 bytes"));
        let seq = u64::from_le_bytes(h[8..].try_into().expect("8 bytes"));
        let inline_ok = pos + (ENTRY_HDR + pad8(len)) as u64 <= cap && len <= INLINE_MAX;
        let entry_end = head.saturating_add(
            ENTRY_HDR as u64
                + if kind == KIND_INDIRECT {
                    0
                } else {
                    pad8(len) as u64
                },
        );
        let past_tail = entry_end > self.h().tail.tail.load(Relaxed);
        if kind > KIND_INDIRECT || (kind != KIND_INDIRECT && !inline_ok) || past_tail {
            // Only a process killed mid-write (or foreign writes to the shared memory)
            // can leave this: drop everything queued rather than read garbage.
            let tail = q.tail.tail.load(Relaxed);
            q.head.head.store(tail, Release);
            q.head.gets.store(puts, Release);
            return Some(Err(Error::Codec(
                format!(
                "queue ring corrupted (entry kind {kind}, length {len}); its items were dropped"
            )
                .into(),
            )));
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
        q.head.head.store(head.saturating_add(size), Release);
        q.head.gets.store(gets.wrapping_add(1), Release);
        Some(out)
    }

    /// Receives the side-channel message for entry `seq`, skipping older orphans (sent
    /// by a producer that died before committing its entry). `None` if it is missing.
    pub(super) fn take_fds(&self, seq: u64) -> Option<Vec<OwnedFd>> {
        let rx = self.side_rx.0.as_fd();
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

    /// One attempt: lock (until the deadline), append if there is room, wake a getter.
    pub(super) fn push_once(&self, e: &Encoded, dl: Deadline) -> Result<Pushed> {
        if !self.lock(dl) {
            return Ok(Pushed::LockTimedOut);
        }
        let pushed = self.push_locked(e);
        self.unlock();
        let pushed = pushed?;
        if pushed == Pushed::Done {
            Self::bump(&self.h().put, WAKE_ALL_GETTERS);
        }
        Ok(pushed)
    }

    /// Sleeps until the side channel can take more (or `dl`, or at most 50 ms: a
    /// descriptor-count limit gives no wake-up, so the caller retries now and then).
    /// `false` once the deadline has passed.
    pub(super) fn wait_channel(&self, dl: Deadline) -> bool {
        let step = dl.min_after(Duration::from_millis(50));
        if let Some(left) = step.remaining() {
            let _ = reduction::wait_writable(self.side_tx.0.as_fd(), left);
        }
        !dl.expired()
    }

    /// Puts, waiting (until the deadline) for room. `Err(Full)` on timeout.
    pub(super) fn put_wait(&self, e: Encoded, dl: Deadline) -> Result<()> {
        loop {
            match self.push_once(&e, dl)? {
                Pushed::Done => {
                    e.recycle();
                    return Ok(());
                }
                Pushed::LockTimedOut => return Err(Error::Full),
                Pushed::ChannelBusy => {
                    if !self.wait_channel(dl) {
                        return Err(Error::Full);
                    }
                    continue;
                }
                Pushed::NoRoom => {}
            }
            if !self.wait_room(e.ring_size(), dl) {
                return Err(Error::Full);
            }
        }
    }

    /// Gets, waiting (until the deadline) for an item. `Err(Empty)` on timeout.
    pub(super) fn get_wait(&self, dl: Deadline) -> Result<(Vec<u8>, Vec<OwnedFd>)> {
        let mut woken = false;
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
            let (seq, sleepers) = (&self.h().put.seq, &self.h().put.sleepers);
            let has_item = || self.count() > 0;
            // a producer streaming on another CPU usually delivers the next item well
            // before a futex sleep and wake-up would: wait_until spins first. A getter
            // woken with others (a put wakes them all) that lost the item to one of
            // them sleeps again at once instead of spinning.
            let got = if woken {
                futex::wait_counted(seq, sleepers, dl, has_item)
            } else {
                futex::wait_until_counted(seq, sleepers, dl, has_item)
            };
            if !got {
                return Err(Error::Empty);
            }
            woken = true;
        }
    }
}

/// The seals of a large item's memfd: size and contents final.
const ITEM_SEALS: rustix::fs::SealFlags = rustix::fs::SealFlags::SHRINK
    .union(rustix::fs::SealFlags::GROW)
    .union(rustix::fs::SealFlags::WRITE);

/// The length field of an entry: items of 4 GiB or more (encoded) are refused at `put`
/// rather than stored truncated.
fn entry_len(len: usize) -> Result<u32> {
    u32::try_from(len).map_err(|_| Error::MessageTooLarge {
        len,
        max: u32::MAX as usize,
    })
}

/// Reads a large item: the memfd must carry the writer's seals (so nobody can change
/// its size while we read: no `SIGBUS`, no surprise allocation) and have exactly the
/// entry's length.
fn read_memfd(fd: OwnedFd, len: usize) -> Result<Vec<u8>> {
    let seals = rustix::fs::fcntl_get_seals(&fd)?;
    if !seals.contains(ITEM_SEALS) {
        return Err(Error::Codec(
            "a queue item arrived in an unsealed memfd".into(),
        ));
    }
    let file = std::fs::File::from(fd);
    let real = file.metadata()?.len();
    if real != len as u64 {
        return Err(Error::Codec(
            format!("queue item of {len} bytes arrived with {real}").into(),
        ));
    }
    let mut out = vec![0u8; len];
    std::os::unix::fs::FileExt::read_exact_at(&file, &mut out, 0)?;
    Ok(out)
}

/// Decodes an item and hands its buffer back to this thread.
pub(super) fn decode_recycle<T: DeserializeOwned>(bytes: Vec<u8>, fds: Vec<OwnedFd>) -> Result<T> {
    let out = codec::decode_with_fds(&bytes, fds);
    if bytes.capacity() <= INLINE_MAX * 2 {
        SCRATCH.with(|s| *s.borrow_mut() = bytes);
    }
    out
}

/// Fuzzing hook (`mp::__fuzz::queue_ring`): a ring of 256 or 4096 data bytes whose
/// counters (head, tail, puts, sequence) and entries are `data`, as a hostile or
/// dying process could leave them; then pops (each item decoded), pushes and, when
/// `data[0]` asks, the dead-holder repair. Must end without a panic or a hang.
pub(crate) fn fuzz_entries(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let cap = if mode & 1 == 0 { 256 } else { 4096 };
    let r = Ring::create(0, cap).expect("a ring");
    let word = |i: usize| {
        let mut w = [0u8; 8];
        let src = rest.get(8 * i..).unwrap_or(&[]);
        let n = src.len().min(8);
        w[..n].copy_from_slice(&src[..n]);
        u64::from_le_bytes(w)
    };
    let h = r.h();
    h.head.head.store(word(0), Relaxed);
    h.tail.tail.store(word(1), Relaxed);
    h.tail.puts.store(word(2), Relaxed);
    h.tail.seq.store(word(3), Relaxed);
    let entries = rest.get(32..).unwrap_or(&[]);
    r.block
        .write_bytes(HEADER, &entries[..entries.len().min(cap)]);
    if mode & 2 != 0 {
        r.repair();
    }
    let item = Encoded::new(&crate::codec::ByteBuf::from(vec![mode; 24])).expect("an item");
    for op in 0..16u8 {
        assert!(r.lock(Deadline::Now), "the ring lock is free");
        let popped = if (mode >> 2) & (1 << (op % 6)) != 0 {
            let _ = r.push_locked(&item);
            None
        } else {
            r.pop_locked()
        };
        r.unlock();
        if let Some(Ok((bytes, fds))) = popped {
            let _ = decode_recycle::<crate::codec::ByteBuf>(bytes, fds);
        }
        let _ = (r.count(), r.has_room(64), r.room_to_wake(64));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::ByteBuf;

    /// A ring of `cap` data bytes, unbounded.
    fn tiny(cap: usize) -> Ring {
        Ring::create(0, cap).unwrap()
    }

    fn item(tag: u8, len: usize) -> Encoded {
        Encoded::new(&ByteBuf::from(vec![tag; len])).unwrap()
    }

    fn push(r: &Ring, e: &Encoded) -> bool {
        assert!(r.lock(Deadline::Now));
        let pushed = r.push_locked(e).unwrap();
        r.unlock();
        pushed == Pushed::Done
    }

    fn pop(r: &Ring) -> Option<Result<Vec<u8>>> {
        assert!(r.lock(Deadline::Now));
        let got = r.pop_locked();
        r.unlock();
        got.map(|x| {
            x.and_then(|(b, fds)| codec::decode_with_fds::<ByteBuf>(&b, fds).map(|b| b.into_vec()))
        })
    }

    #[test]
    fn fifo_across_many_wrap_arounds() {
        let r = tiny(256);
        // sizes chosen so entries end at every offset: some wraps leave a marker,
        // some leave less than an entry header of slack
        let mut next_out = 0u32;
        let mut next_in = 0u32;
        for round in 0..500u32 {
            let len = (round * 7 % 40) as usize + 1;
            while !push(&r, &item(next_in as u8, len)) {
                let got = pop(&r).expect("full ring has items").unwrap();
                assert_eq!(got[0], next_out as u8, "order");
                next_out += 1;
            }
            next_in += 1;
        }
        while let Some(got) = pop(&r) {
            assert_eq!(got.unwrap()[0], next_out as u8);
            next_out += 1;
        }
        assert_eq!(next_in, next_out);
        assert_eq!(r.count(), 0);
    }

    #[test]
    fn wrap_marker_sends_the_reader_to_the_start() {
        let r = tiny(192);
        assert_eq!(r.capacity(), 192);
        // 16-byte header + 1 length byte + 40 payload bytes → 64 ring bytes per entry
        let e = item(1, 40);
        assert_eq!(e.ring_size(), 64);
        let small = item(2, 8); // 16 + 16 = 32 ring bytes
        assert_eq!(small.ring_size(), 32);
        assert!(push(&r, &small)); // [0, 32)
        assert!(push(&r, &e)); // [32, 96)
        assert!(push(&r, &e)); // [96, 160)
        assert_eq!(pop(&r).unwrap().unwrap(), vec![2; 8]);
        assert_eq!(pop(&r).unwrap().unwrap(), vec![1; 40]);
        // 32 bytes left at the end, the entry needs 64: a wrap marker at 160, entry at 0
        assert!(push(&r, &e));
        let marker = {
            let mut h = [0u8; ENTRY_HDR];
            r.block.read_bytes(HEADER + 160, &mut h);
            u32::from_le_bytes(h[4..8].try_into().unwrap())
        };
        assert_eq!(marker, KIND_WRAP);
        assert_eq!(pop(&r).unwrap().unwrap(), vec![1; 40]);
        assert_eq!(pop(&r).unwrap().unwrap(), vec![1; 40]);
        assert!(pop(&r).is_none());
        assert_eq!(r.h().head.head.load(Relaxed), r.h().tail.tail.load(Relaxed));
        assert_eq!(r.h().head.head.load(Relaxed), 192 + 64);
    }

    #[test]
    fn full_and_empty() {
        let r = tiny(128);
        assert!(pop(&r).is_none());
        let e = item(3, 40); // 64 ring bytes
        assert!(push(&r, &e));
        assert!(push(&r, &e));
        assert!(!push(&r, &e), "a full ring refuses");
        assert!(!r.has_room(e.ring_size()));
        assert_eq!(r.count(), 2);
        assert!(pop(&r).is_some() && pop(&r).is_some());
        assert!(pop(&r).is_none());
        let bounded = Ring::create(1, 256).unwrap();
        assert!(push(&bounded, &item(4, 1)));
        assert!(!push(&bounded, &item(4, 1)), "maxsize 1");
    }

    #[test]
    fn corrupt_entries_are_an_error_and_the_ring_stays_usable() {
        let r = tiny(256);
        assert!(push(&r, &item(5, 10)));
        assert!(push(&r, &item(6, 10)));
        // a foreign write: an unknown kind at the head entry
        r.block.write_bytes(HEADER + 4, &77u32.to_le_bytes());
        assert!(matches!(pop(&r), Some(Err(Error::Codec(_)))));
        assert!(pop(&r).is_none(), "the corrupt ring's items are dropped");
        // an inline length past the ring's end
        assert!(push(&r, &item(7, 10)));
        let head = (r.h().head.head.load(Relaxed) % 256) as usize;
        r.block
            .write_bytes(HEADER + head, &100_000u32.to_le_bytes());
        assert!(matches!(pop(&r), Some(Err(Error::Codec(_)))));
        assert!(push(&r, &item(8, 10)));
        assert_eq!(pop(&r).unwrap().unwrap(), vec![8; 10]);
    }

    #[test]
    fn a_dead_holder_is_taken_over_and_the_ring_repaired() {
        let r = tiny(256);
        for i in 0..3 {
            assert!(push(&r, &item(i, 10)));
        }
        // a holder that died between its stores: the count is off, a half-written
        // entry lies past the tail
        r.h().tail.puts.store(5, Relaxed);
        let tail = (r.h().tail.tail.load(Relaxed) % 256) as usize;
        r.block.write_bytes(HEADER + tail, &[0xff; ENTRY_HDR]);
        let dead = std::thread::spawn(futex::tid).join().unwrap();
        r.h().tail.lock.store(dead, Relaxed);
        let seq = r.h().tail.seq.load(Relaxed);
        assert!(r.lock(Deadline::timeout(Duration::from_secs(10))));
        r.unlock();
        assert_eq!(r.count(), 3);
        assert_eq!(
            r.h().tail.seq.load(Relaxed),
            seq + 1,
            "orphans' sequence skipped"
        );
        for i in 0..3 {
            assert_eq!(pop(&r).unwrap().unwrap(), vec![i; 10]);
        }
        assert!(pop(&r).is_none());
        assert!(push(&r, &item(9, 10)));
        assert_eq!(pop(&r).unwrap().unwrap(), vec![9; 10]);
    }

    /// A getter killed between its two stores (head, then its count of gets) leaves
    /// the count a step behind: the repair recounts it from the entries.
    #[test]
    fn a_getter_killed_between_its_stores_is_recounted() {
        let r = tiny(256);
        for i in 0..3 {
            assert!(push(&r, &item(i, 10)));
        }
        assert_eq!(pop(&r).unwrap().unwrap(), vec![0; 10]);
        // the next getter moved the head past item 1 and died before counting its get
        let size = item(1, 10).ring_size() as u64;
        r.h().head.head.fetch_add(size, Relaxed);
        assert_eq!(r.count(), 2, "the count is a step behind");
        let dead = std::thread::spawn(futex::tid).join().unwrap();
        r.h().tail.lock.store(dead, Relaxed);
        assert!(r.lock(Deadline::timeout(Duration::from_secs(10))));
        r.unlock();
        assert_eq!(r.count(), 1);
        assert_eq!(pop(&r).unwrap().unwrap(), vec![2; 10]);
        assert!(pop(&r).is_none());
        assert_eq!(r.count(), 0);
        assert!(push(&r, &item(3, 10)));
        assert_eq!(pop(&r).unwrap().unwrap(), vec![3; 10]);
    }

    /// A put reads the real head only when its entry does not fit with the head its
    /// process saw last, a lower bound: a ring that looks full refreshes it, a stale
    /// one never lets a put over unread entries, and garbage found on the refresh is
    /// still an error.
    #[test]
    fn a_put_trusts_the_head_it_saw_only_as_a_lower_bound() {
        let r = tiny(128);
        let e = item(1, 40); // 64 ring bytes
        assert!(push(&r, &e));
        assert!(push(&r, &e));
        assert_eq!(
            r.seen_head.load(Relaxed),
            0,
            "both fitted: the head was not read"
        );
        // a consumer (in another process, say) takes one: the seen head is stale
        assert_eq!(pop(&r).unwrap().unwrap(), vec![1; 40]);
        assert_eq!(r.h().head.head.load(Relaxed), 64);
        assert!(
            push(&r, &item(2, 40)),
            "the full-looking ring read the real head"
        );
        assert_eq!(r.seen_head.load(Relaxed), 64);
        assert!(!push(&r, &e), "full with the real head too");
        assert_eq!(pop(&r).unwrap().unwrap(), vec![1; 40]);
        assert_eq!(pop(&r).unwrap().unwrap(), vec![2; 40]);
        assert!(pop(&r).is_none());
        // someone wrote a head past the tail: the next refresh finds it
        r.h().head.head.store(u64::MAX, Relaxed);
        assert!(r.lock(Deadline::Now));
        assert!(matches!(r.push_locked(&e), Err(Error::Codec(_))));
        r.unlock();
    }

    // not under Miri (.ci/miri): makes a memfd (memfd_create), which Miri does not model
    #[cfg(not(miri))]
    #[test]
    fn items_of_4_gib_are_refused_and_memfds_must_be_sealed() {
        assert_eq!(entry_len(5).unwrap(), 5);
        assert!(matches!(
            entry_len(1 << 32),
            Err(Error::MessageTooLarge { len, .. }) if len == 1 << 32
        ));
        // an unsealed memfd (a foreign writer's) is refused, a sealed one read
        let raw = rustix::fs::memfd_create("t", rustix::fs::MemfdFlags::ALLOW_SEALING).unwrap();
        rustix::io::write(&raw, b"abc").unwrap();
        let dup = rustix::io::fcntl_dupfd_cloexec(&raw, 0).unwrap();
        assert!(matches!(read_memfd(dup, 3), Err(Error::Codec(_))));
        rustix::fs::fcntl_add_seals(&raw, ITEM_SEALS).unwrap();
        let dup = rustix::io::fcntl_dupfd_cloexec(&raw, 0).unwrap();
        assert!(
            matches!(read_memfd(dup, 4), Err(Error::Codec(_))),
            "size checked"
        );
        assert_eq!(read_memfd(raw, 3).unwrap(), b"abc");
        // a big item's memfd is sealed by put
        let e = Encoded::new(&ByteBuf::from(vec![1u8; INLINE_MAX + 1])).unwrap();
        let (fd, _) = e.memfd.as_ref().unwrap();
        assert!(rustix::fs::fcntl_get_seals(fd)
            .unwrap()
            .contains(ITEM_SEALS));
        assert!(rustix::fs::ftruncate(fd, 0).is_err());
    }

    /// A getter woken by a put that dies before it takes the item must not leave the
    /// other sleeping getters asleep with the item in the ring. The "dead" getter is a
    /// thread that counts itself a sleeper, sleeps on the word first (futex wake-ups go
    /// to the longest sleeper first) and never takes anything once woken; a real getter
    /// sleeps behind it. Before puts woke every getter, the real one slept through its
    /// whole timeout.
    #[test]
    fn a_woken_getter_that_dies_does_not_strand_the_others() {
        let r = std::sync::Arc::new(tiny(4096));
        fn asleep(tid: u32) -> bool {
            let stat =
                std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap_or_default();
            // the state is the field after the parenthesised command name
            stat.rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('S'))
        }
        fn until(what: &str, mut f: impl FnMut() -> bool) {
            let dl = Deadline::timeout(Duration::from_secs(10));
            while !f() {
                assert!(!dl.expired(), "timed out waiting for {what}");
                std::thread::yield_now();
            }
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let dead = {
            let (r, tx) = (r.clone(), tx.clone());
            std::thread::spawn(move || {
                tx.send(futex::tid()).unwrap();
                let put = &r.h().put;
                put.sleepers.fetch_add(1, SeqCst);
                let seen = put.seq.load(SeqCst);
                futex::wait(&put.seq, seen, Deadline::timeout(Duration::from_secs(20)));
                // "killed" here: never takes the item, never uncounts itself
            })
        };
        let dead_tid = rx.recv().unwrap();
        until("the dying getter to sleep", || asleep(dead_tid));
        let (got_tx, got_rx) = std::sync::mpsc::channel();
        let getter = {
            let r = r.clone();
            std::thread::spawn(move || {
                tx.send(futex::tid()).unwrap();
                // the getter's own timeout is long: it must be woken by the put, not
                // find the item when its timeout ends
                let got = r.get_wait(Deadline::timeout(Duration::from_secs(20)));
                let _ = got_tx.send(got.map(|(b, _)| b));
            })
        };
        let getter_tid = rx.recv().unwrap();
        until("the real getter to sleep", || {
            r.h().put.sleepers.load(SeqCst) == 2 && asleep(getter_tid)
        });
        let e = item(7, 10);
        assert_eq!(
            r.push_once(&e, Deadline::Now).unwrap(),
            Pushed::Done,
            "the ring has room"
        );
        let got = got_rx.recv_timeout(Duration::from_secs(3));
        assert!(
            matches!(got, Ok(Ok(_))),
            "the live getter slept through the put: {got:?}"
        );
        getter.join().unwrap();
        dead.join().unwrap();
    }
}
