//! The shared-memory arena behind locks, values and arrays (CPython's
//! `multiprocessing.heap`).
//!
//! An [`Arena`] is an anonymous file (`memfd_create`) of a fixed size, mapped
//! `MAP_SHARED` by every process that holds a handle into it. Nothing named exists, so
//! nothing can leak: the memory goes back to the system when the last process holding a
//! descriptor or a mapping of it goes away.
//!
//! A [`Block`] is a piece of an arena: (arena, offset, length). Blocks come from a small
//! per-process allocator, like CPython's `heap.py`: arenas of growing size (1 MiB,
//! doubling up to 64 MiB; a request bigger than that gets an arena of its own), carved
//! by a bump pointer, with per-size free lists. So ten thousand `Value`s share a handful
//! of arenas and descriptors.
//!
//! A block serializes as (the arena's descriptor, offset, length); the descriptor travels
//! beside the bytes through `mp`'s transports and is sent once per message however many
//! blocks of the arena the message carries ([`crate::reduction::serialize_shared_fd`]).
//! A process that receives a descriptor of an arena it already maps (same
//! `st_dev`/`st_ino`) reuses its mapping (a process-wide cache of weak references), so
//! passing ten thousand values to a child costs the child one mapping per arena.
//!
//! ## When memory is reused
//! A block is returned to its process's free list when the last handle to it in the
//! process that allocated it is dropped, **unless** the block has been sent to another
//! process (serialized) or the process has forked since the allocation: then another
//! process may still use it, and it is not reused (it is freed with its arena, when every
//! process has dropped every block of that arena). This never hands out memory another
//! process still reads, at the price of not recycling blocks that were shared.

use crate::error::{Error, Result};
use serde::{de, Deserialize, Deserializer, Serialize, Serializer};
use std::collections::{BTreeMap, HashMap};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

/// The seals every arena carries once its size is set.
const SIZE_SEALS: rustix::fs::SealFlags =
    rustix::fs::SealFlags::SHRINK.union(rustix::fs::SealFlags::GROW);

/// Alignment (and size granularity) of every block.
const ALIGN: usize = 16;
const FIRST_ARENA: usize = 1 << 20;
const MAX_ARENA: usize = 64 << 20;

/// One shared mapping of a memfd (CPython: `heap.Arena`).
pub struct Arena {
    fd: OwnedFd,
    ptr: *mut u8,
    size: usize,
    key: (u64, u64),
}

// SAFETY: the mapping is shared memory accessed only through atomics or raw pointers by
// the types built on it; the pointer itself is valid for the arena's lifetime.
unsafe impl Send for Arena {}
// SAFETY: as for Send: shared access goes through atomics or the users' own locks.
unsafe impl Sync for Arena {}

impl Drop for Arena {
    fn drop(&mut self) {
        #[cfg(miri)]
        // SAFETY: allocated by `Arena::new` with this layout; no block outlives its arena.
        unsafe {
            std::alloc::dealloc(self.ptr, miri_layout(self.size));
        }
        #[cfg(not(miri))]
        // SAFETY: `ptr`/`size` come from our own successful mmap; no block outlives its
        // arena (blocks hold an `Arc<Arena>`).
        unsafe {
            let _ = rustix::mm::munmap(self.ptr.cast(), self.size);
        }
    }
}

/// Under Miri (`.ci/miri`), which models neither `memfd_create` nor shared file
/// mappings, an arena is zeroed process memory of this layout, with a `/dev/null`
/// descriptor standing in for the memfd: the allocator's bookkeeping and everything
/// built on blocks (the queue ring) run unchanged; sending an arena to another process
/// does not (no test does that under Miri).
#[cfg(miri)]
fn miri_layout(size: usize) -> std::alloc::Layout {
    std::alloc::Layout::from_size_align(size, 4096).expect("an arena's layout")
}

impl std::fmt::Debug for Arena {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<Arena size={} ino={}>", self.size, self.key.1)
    }
}

use crate::util::lock;

/// Mappings of this process, by (st_dev, st_ino): a received arena fd that is already
/// mapped reuses the mapping.
type Mappings = Option<HashMap<(u64, u64), Weak<Arena>>>;
static MAPPINGS: Mutex<Mappings> = Mutex::new(None);

fn file_key(fd: &OwnedFd) -> Result<((u64, u64), usize)> {
    let st = rustix::fs::fstat(fd).map_err(std::io::Error::from)?;
    Ok(((st.st_dev as u64, st.st_ino as u64), st.st_size as usize))
}

impl Arena {
    /// Creates a new arena of `size` bytes (rounded up to a page).
    pub fn new(size: usize) -> Result<Arc<Arena>> {
        let page = 4096;
        let size = size.max(page).div_ceil(page) * page;
        #[cfg(miri)]
        return Self::in_memory(size);
        #[cfg(not(miri))]
        {
            let fd = rustix::fs::memfd_create(
                "mp-heap",
                rustix::fs::MemfdFlags::CLOEXEC | rustix::fs::MemfdFlags::ALLOW_SEALING,
            )
            .map_err(std::io::Error::from)?;
            rustix::fs::ftruncate(&fd, size as u64).map_err(std::io::Error::from)?;
            // the size is final: no process holding the descriptor may shrink it (every
            // mapping would take SIGBUS) or grow it
            rustix::fs::fcntl_add_seals(&fd, SIZE_SEALS).map_err(std::io::Error::from)?;
            Self::map(fd, size)
        }
    }

    /// See [`miri_layout`].
    #[cfg(miri)]
    fn in_memory(size: usize) -> Result<Arc<Arena>> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        // SAFETY: a non-zero size (at least a page).
        let ptr = unsafe { std::alloc::alloc_zeroed(miri_layout(size)) };
        assert!(!ptr.is_null(), "out of memory");
        let fd = std::fs::File::open("/dev/null")?.into();
        let key = (u64::MAX, NEXT.fetch_add(1, Ordering::Relaxed));
        Ok(Arc::new(Arena { fd, ptr, size, key }))
    }

    /// Maps `fd` (or reuses this process's mapping of the same file). A received
    /// arena must be size-sealed: an unsealed one could be truncated under our
    /// mapping by whoever else holds it.
    fn from_fd(fd: OwnedFd) -> Result<Arc<Arena>> {
        let seals = rustix::fs::fcntl_get_seals(&fd).map_err(std::io::Error::from)?;
        if !seals.contains(SIZE_SEALS) {
            return Err(Error::Codec(
                "a shared-memory arena arrived without its size seals".into(),
            ));
        }
        let (key, size) = file_key(&fd)?;
        if let Some(a) = lock(&MAPPINGS)
            .get_or_insert_with(HashMap::new)
            .get(&key)
            .and_then(Weak::upgrade)
        {
            return Ok(a);
        }
        Self::map(fd, size)
    }

    fn map(fd: OwnedFd, size: usize) -> Result<Arc<Arena>> {
        use rustix::mm::{MapFlags, ProtFlags};
        let (key, _) = file_key(&fd)?;
        if size == 0 {
            return Err(Error::InvalidState("empty shared-memory arena".into()));
        }
        // SAFETY: a fresh shared mapping of a file we hold; nothing else aliases it in
        // Rust's sense (all accesses go through raw pointers / atomics).
        let ptr = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                size,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                &fd,
                0,
            )
        }
        .map_err(std::io::Error::from)?;
        let arena = Arc::new(Arena {
            fd,
            ptr: ptr.cast(),
            size,
            key,
        });
        let mut m = lock(&MAPPINGS);
        let m = m.get_or_insert_with(HashMap::new);
        m.retain(|_, w| w.strong_count() > 0);
        m.insert(key, Arc::downgrade(&arena));
        Ok(arena)
    }

    /// Size in bytes.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Maps the pages of `[offset, offset + len)` now, with one `madvise(
    /// MADV_POPULATE_READ)` (Linux 5.14+; silently nothing before), instead of a minor
    /// fault per page at first touch: a child summing an 8 MB array it received took
    /// ~2 048 faults, more than the sum itself. The memory is shared, so the pages
    /// mapped are the sender's (a page it never touched is allocated, as the first
    /// touch would). Only for blocks of [`POPULATE_MIN`] bytes and more, and only their
    /// first [`POPULATE_MAX`] bytes: a huge block the receiver touches a corner of must
    /// not cost it (or the machine, for pages the sender never wrote) the whole block.
    fn populate(&self, offset: usize, len: usize) {
        let page = rustix::param::page_size();
        let start = offset / page * page;
        let end = offset
            .saturating_add(len.min(POPULATE_MAX))
            .div_ceil(page)
            .saturating_mul(page)
            .min(self.size);
        // SAFETY: `[start, end)` lies inside this arena's mapping (the caller checked
        // offset + len <= size; rounding stays within the page-aligned mapping), and
        // MADV_POPULATE_READ only faults pages in: it changes no contents.
        let _ = unsafe {
            rustix::mm::madvise(
                self.ptr.add(start).cast(),
                end - start,
                rustix::mm::Advice::LinuxPopulateRead,
            )
        };
    }
}

/// Blocks at least this long are [`Arena::populate`]d when another process's block
/// arrives: below, the faults a first touch takes are too few to matter.
const POPULATE_MIN: usize = 256 << 10;
/// At most this much of a block is [`Arena::populate`]d (the rest faults in as touched).
const POPULATE_MAX: usize = 64 << 20;

/// Bumped in the parent at every fork (pthread_atfork): blocks allocated before a fork
/// may be used by the child, so they are never recycled.
static FORK_EPOCH: AtomicU64 = AtomicU64::new(0);
static ATFORK: std::sync::Once = std::sync::Once::new();

type HeapGuards = (MutexGuard<'static, Heap>, MutexGuard<'static, Mappings>);

thread_local! {
    /// The allocator's and the mapping cache's locks, held by the forking thread from
    /// the `pthread_atfork` prepare handler until the parent or child handler.
    static HELD_ACROSS_FORK: std::cell::RefCell<Option<HeapGuards>> =
        const { std::cell::RefCell::new(None) };
}

/// Before any fork (mp's or not): take the allocator's locks, so no other thread holds
/// them mid-update when the child is copied.
extern "C" fn before_fork() {
    let heap = lock(&HEAP);
    let maps = lock(&MAPPINGS);
    HELD_ACROSS_FORK.with(|h| *h.borrow_mut() = Some((heap, maps)));
}

extern "C" fn after_fork_in_parent() {
    FORK_EPOCH.fetch_add(1, Ordering::Relaxed);
    HELD_ACROSS_FORK.with(|h| drop(h.borrow_mut().take()));
}

/// In any forked child: an empty allocator (the parent's arenas are the parent's to
/// carve; carving them here too would hand out memory the parent hands out as well).
/// The mappings stay: the child still maps every arena its inherited blocks live in.
extern "C" fn after_fork_in_child() {
    HELD_ACROSS_FORK.with(|h| {
        if let Some((mut heap, maps)) = h.borrow_mut().take() {
            std::mem::forget(std::mem::take(&mut heap.arenas)); // the parent's blocks still point into them
            heap.bump = None;
            heap.free = BTreeMap::new();
            heap.next_size = FIRST_ARENA;
            drop(maps);
        }
    });
}

/// Registers the fork handlers (once, before the first allocation).
fn ensure_atfork() {
    if cfg!(miri) {
        return; // Miri models neither fork nor pthread_atfork; nothing forks under it
    }
    ATFORK.call_once(|| {
        // SAFETY: registers plain extern "C" handlers; they only take and release this
        // module's locks on the forking thread and reset the allocator's bookkeeping.
        unsafe {
            libc::pthread_atfork(
                Some(before_fork),
                Some(after_fork_in_parent),
                Some(after_fork_in_child),
            );
        }
    });
}

struct Heap {
    arenas: Vec<Arc<Arena>>,
    /// (arena index, next free offset) of the arena being carved.
    bump: Option<(usize, usize)>,
    next_size: usize,
    /// size → (arena index, offset) of freed blocks.
    free: BTreeMap<usize, Vec<(usize, usize)>>,
}

static HEAP: Mutex<Heap> = Mutex::new(Heap {
    arenas: Vec::new(),
    bump: None,
    next_size: FIRST_ARENA,
    free: BTreeMap::new(),
});

fn allocate(len: usize, align: usize) -> Result<(Arc<Arena>, usize, usize)> {
    ensure_atfork();
    let align = align.max(ALIGN);
    let size = len.max(1).div_ceil(align) * align;
    let mut h = lock(&HEAP);
    if let Some(list) = h.free.get_mut(&size) {
        if let Some(i) = list.iter().rposition(|&(_, off)| off.is_multiple_of(align)) {
            let (ai, off) = list.swap_remove(i);
            let a = h.arenas[ai].clone();
            return Ok((a, off, size));
        }
    }
    if let Some((ai, off)) = h.bump {
        let off = off.div_ceil(align) * align;
        if off + size <= h.arenas[ai].size {
            h.bump = Some((ai, off + size));
            return Ok((h.arenas[ai].clone(), off, size));
        }
    }
    if size > MAX_ARENA / 2 {
        // a big block gets an arena of its own (the current one keeps being carved)
        let a = Arena::new(size)?;
        h.arenas.push(a.clone());
        return Ok((a, 0, size));
    }
    let mut asize = h.next_size;
    while asize < size {
        asize *= 2;
    }
    h.next_size = (asize * 2).min(MAX_ARENA);
    let a = Arena::new(asize)?;
    h.arenas.push(a.clone());
    let ai = h.arenas.len() - 1;
    h.bump = Some((ai, size));
    Ok((a, 0, size))
}

struct Alloc {
    /// `arena.ptr + offset`, cached: the fast paths of locks read it on every call.
    base: *mut u8,
    arena: Arc<Arena>,
    offset: usize,
    len: usize,
    /// Allocated by this process (and recyclable if never shared).
    local: bool,
    epoch: u64,
    shared: AtomicBool,
}

impl Drop for Alloc {
    fn drop(&mut self) {
        if !self.local
            || self.shared.load(Ordering::Relaxed)
            || FORK_EPOCH.load(Ordering::Relaxed) != self.epoch
        {
            return;
        }
        let mut h = lock(&HEAP);
        if let Some(ai) = h.arenas.iter().position(|a| Arc::ptr_eq(a, &self.arena)) {
            h.free.entry(self.len).or_default().push((ai, self.offset));
        }
    }
}

// SAFETY: `base` points into the arena the Alloc keeps alive; shared memory is accessed
// through atomics or under the caller's synchronization.
unsafe impl Send for Alloc {}
// SAFETY: as for Send.
unsafe impl Sync for Alloc {}

/// A `#[repr(C)]` header of atomics that lives at the start of a [`Block`] and is
/// reached through [`Block::header`].
///
/// # Safety
/// Implementors are `#[repr(C)]`, valid for every bit pattern (in particular all
/// zeroes: a fresh block is zeroed; another process may write anything), have no drop
/// glue and no pointers, and are only ever accessed through shared references (their
/// fields are atomics).
pub(crate) unsafe trait SharedHeader: Sync + Sized {}

/// A `#[repr(C)]` wrapper aligning its content to a cache line (64 bytes), so that
/// fields written by different parties do not share one (crossbeam's `CachePadded`).
#[repr(C, align(64))]
#[derive(Debug, Default)]
pub(crate) struct CachePadded<T>(pub T);

impl<T> std::ops::Deref for CachePadded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// A piece of shared memory in an [`Arena`] (CPython: `heap.BufferWrapper`). Cloning
/// shares the same memory; the block is valid as long as any clone lives.
#[derive(Clone)]
pub struct Block(Arc<Alloc>);

impl std::fmt::Debug for Block {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "<Block offset={} len={} in {:?}>",
            self.0.offset, self.0.len, self.0.arena
        )
    }
}

impl Block {
    /// Allocates `len` zeroed bytes (16-byte aligned).
    pub fn new(len: usize) -> Result<Block> {
        Self::new_aligned(len, ALIGN)
    }

    /// Allocates `len` zeroed bytes aligned to `align` (a power of two; at least 16),
    /// e.g. a cache line for a header of [`CachePadded`] fields.
    pub(crate) fn new_aligned(len: usize, align: usize) -> Result<Block> {
        debug_assert!(align.is_power_of_two() && align <= 4096);
        let (arena, offset, size) = allocate(len, align)?;
        let b = Block(Arc::new(Alloc {
            // SAFETY: offset + size <= arena size (the allocator's invariant).
            base: unsafe { arena.ptr.add(offset) },
            arena,
            offset,
            len: size,
            local: true,
            epoch: FORK_EPOCH.load(Ordering::Relaxed),
            shared: AtomicBool::new(false),
        }));
        // SAFETY: the range is inside the arena and ours (fresh or recycled).
        unsafe { std::ptr::write_bytes(b.as_ptr(), 0, size) };
        Ok(b)
    }

    /// Start of the block. Valid for [`len`](Self::len) bytes while `self` lives; other
    /// processes may access the memory concurrently.
    #[inline]
    pub fn as_ptr(&self) -> *mut u8 {
        self.0.base
    }

    /// Length in bytes (the requested length rounded up to 16).
    #[inline]
    pub fn len(&self) -> usize {
        self.0.len
    }

    /// Whether the block is empty (never: blocks are at least 16 bytes).
    pub fn is_empty(&self) -> bool {
        self.0.len == 0
    }

    /// The arena holding the block.
    pub fn arena(&self) -> &Arc<Arena> {
        &self.0.arena
    }

    /// Which bytes the block is, whatever handle or mapping it was reached through:
    /// (st_dev, st_ino) of its arena's file and its offset there. Two blocks with the
    /// same identity are the same memory (sharedctypes keys its borrow tracking on it).
    pub(crate) fn identity(&self) -> (u64, u64, usize) {
        (self.0.arena.key.0, self.0.arena.key.1, self.0.offset)
    }

    /// Copies `src` into the block at byte `offset`. Other processes may read the same
    /// bytes: callers order access with a lock or atomics in the block (the queue's ring
    /// does it under its futex lock).
    ///
    /// Panics if the range is outside the block (an internal layout bug).
    pub(crate) fn write_bytes(&self, offset: usize, src: &[u8]) {
        assert!(
            offset
                .checked_add(src.len())
                .is_some_and(|e| e <= self.len()),
            "write out of block"
        );
        // SAFETY: in bounds; the caller synchronizes access to this range.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), self.as_ptr().add(offset), src.len()) }
    }

    /// Copies bytes at `offset` out of the block into `dst` (see [`write_bytes`](Self::write_bytes)).
    pub(crate) fn read_bytes(&self, offset: usize, dst: &mut [u8]) {
        assert!(
            offset
                .checked_add(dst.len())
                .is_some_and(|e| e <= self.len()),
            "read out of block"
        );
        // SAFETY: in bounds; the caller synchronizes access to this range.
        unsafe {
            std::ptr::copy_nonoverlapping(self.as_ptr().add(offset), dst.as_mut_ptr(), dst.len())
        }
    }

    /// The 32-bit atomic at byte offset `4 * i` (a futex word).
    ///
    /// Panics if `4 * i + 4 > len()` (an internal layout bug, never user input).
    #[inline]
    pub fn atomic_u32(&self, i: usize) -> &AtomicU32 {
        assert!(4 * i + 4 <= self.len(), "atomic out of block");
        // SAFETY: aligned (blocks are 16-aligned), in bounds, lives as long as &self;
        // shared memory is only accessed atomically at these offsets.
        unsafe { &*(self.as_ptr().add(4 * i) as *const AtomicU32) }
    }

    /// The 64-bit atomic at byte offset `8 * i`.
    ///
    /// Panics if `8 * i + 8 > len()` (an internal layout bug, never user input).
    pub fn atomic_u64(&self, i: usize) -> &AtomicU64 {
        assert!(8 * i + 8 <= self.len(), "atomic out of block");
        // SAFETY: as for atomic_u32, 8-aligned.
        unsafe { &*(self.as_ptr().add(8 * i) as *const AtomicU64) }
    }

    /// The start of the block seen as the shared header `H`: the one checked cast from
    /// shared memory to a typed `#[repr(C)]` struct of atomics (queue, condition,
    /// barrier … headers). `None` if `H` does not fit (a block received from another
    /// process is checked this way before use).
    #[inline]
    pub(crate) fn try_header<H: SharedHeader>(&self) -> Option<&H> {
        if std::mem::size_of::<H>() > self.len()
            || !(self.as_ptr() as usize).is_multiple_of(std::mem::align_of::<H>())
        {
            return None;
        }
        // SAFETY: in bounds and aligned (both checked above); `H` is
        // valid for every bit pattern and only accessed through shared references to
        // its atomics (the `SharedHeader` contract); the memory lives as long as `self`.
        Some(unsafe { &*(self.as_ptr() as *const H) })
    }

    /// [`try_header`](Self::try_header) for a block whose size was checked when it was
    /// made or received. Panics if `H` does not fit (an internal layout bug).
    #[inline]
    pub(crate) fn header<H: SharedHeader>(&self) -> &H {
        self.try_header()
            .expect("shared header larger than its block")
    }

    /// Whether `n` values of `T` fit in the block at its (16-byte) alignment.
    pub fn fits<T>(&self, n: usize) -> bool {
        std::mem::align_of::<T>() <= ALIGN
            && std::mem::size_of::<T>()
                .checked_mul(n)
                .is_some_and(|s| s <= self.len())
    }

    /// Reads element `i` of the block seen as an array of `T` (a volatile copy: another
    /// process may write concurrently; synchronize through a lock for consistency).
    ///
    /// # Safety
    /// The block must have been written with valid `T`s (`T` plain old data).
    pub(crate) unsafe fn read<T>(&self, i: usize) -> T {
        assert!(self.fits::<T>(i + 1));
        // SAFETY: element i is inside the block (asserted) and aligned (blocks are
        // 16-aligned, T's alignment is at most 16: `fits`); the caller guarantees the
        // bytes are a valid T.
        unsafe { std::ptr::read_volatile((self.as_ptr() as *const T).add(i)) }
    }

    /// Writes element `i` of the block seen as an array of `T` (volatile).
    ///
    /// # Safety
    /// `T` must be plain old data without drop glue.
    pub(crate) unsafe fn write<T>(&self, i: usize, v: T) {
        assert!(self.fits::<T>(i + 1));
        // SAFETY: in bounds and aligned as for `read`; T is plain old data (the
        // caller's contract), so overwriting needs no drop.
        unsafe { std::ptr::write_volatile((self.as_ptr() as *mut T).add(i), v) }
    }

    /// The block as a mutable slice of `n` `T`s.
    ///
    /// # Safety
    /// The caller holds the lock that guards the block (no other access while the slice
    /// lives) and the block holds valid `T`s.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn slice_mut<T>(&self, n: usize) -> &mut [T] {
        assert!(self.fits::<T>(n));
        // SAFETY: n elements fit in the block and are aligned (`fits`); the caller
        // holds the lock guarding the block and the memory holds valid Ts.
        unsafe { std::slice::from_raw_parts_mut(self.as_ptr() as *mut T, n) }
    }
}

impl Serialize for Block {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        self.0.shared.store(true, Ordering::Relaxed);
        struct Fd<'a>(&'a Arena);
        impl Serialize for Fd<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                crate::reduction::serialize_shared_fd(self.0.fd.as_fd(), s)
            }
        }
        let mut t = s.serialize_tuple(3)?;
        t.serialize_element(&Fd(&self.0.arena))?;
        t.serialize_element(&(self.0.offset as u64))?;
        t.serialize_element(&(self.0.len as u64))?;
        t.end()
    }
}

impl<'de> Deserialize<'de> for Block {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Fd(OwnedFd);
        impl<'de> Deserialize<'de> for Fd {
            fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                crate::reduction::deserialize_shared_fd(d).map(Fd)
            }
        }
        let (Fd(fd), offset, len) = <(Fd, u64, u64)>::deserialize(d)?;
        let arena = Arena::from_fd(fd).map_err(de::Error::custom)?;
        let (offset, len) = (offset as usize, len as usize);
        if offset & (ALIGN - 1) != 0 || offset.checked_add(len).is_none_or(|e| e > arena.size) {
            return Err(de::Error::custom("shared-memory block outside its arena"));
        }
        if len >= POPULATE_MIN {
            arena.populate(offset, len);
        }
        Ok(Block(Arc::new(Alloc {
            // SAFETY: offset + len <= arena size, checked just above.
            base: unsafe { arena.ptr.add(offset) },
            arena,
            offset,
            len,
            local: false,
            epoch: 0,
            shared: AtomicBool::new(true),
        })))
    }
}

/// Number of arenas this process allocated (for tests and diagnostics).
pub fn arena_count() -> usize {
    lock(&HEAP).arenas.len()
}

/// Number of distinct arena mappings alive in this process (allocated or received).
pub fn mapping_count() -> usize {
    lock(&MAPPINGS)
        .as_ref()
        .map_or(0, |m| m.values().filter(|w| w.strong_count() > 0).count())
}

#[doc(hidden)]
pub mod root_exports {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_blocks_share_arenas() {
        let blocks: Vec<_> = (0..10_000).map(|_| Block::new(24).unwrap()).collect();
        assert!(arena_count() <= 3, "{}", arena_count());
        let p0 = blocks[0].as_ptr() as usize;
        let p1 = blocks[1].as_ptr() as usize;
        assert!(p0 & 15 == 0 && p1 & 15 == 0 && p0 != p1);
        blocks[0].atomic_u32(0).store(7, Ordering::SeqCst);
        assert_eq!(blocks[0].atomic_u32(0).load(Ordering::SeqCst), 7);
        assert_eq!(blocks[1].atomic_u32(0).load(Ordering::SeqCst), 0);
    }

    // not under Miri (.ci/miri): receives an arena's descriptor (memfd seals, fstat), which Miri does not model
    #[cfg(not(miri))]
    #[test]
    fn roundtrip_reuses_mapping() {
        let b = Block::new(64).unwrap();
        b.atomic_u32(1).store(42, Ordering::SeqCst);
        let v = vec![b.clone(), b.clone(), Block::new(8).unwrap()];
        let (bytes, fds) = crate::codec::encode_with_fds(&v).unwrap();
        assert_eq!(fds.len(), 1);
        let back: Vec<Block> = crate::codec::decode_with_fds(&bytes, fds).unwrap();
        assert!(Arc::ptr_eq(back[0].arena(), b.arena()));
        assert_eq!(back[0].atomic_u32(1).load(Ordering::SeqCst), 42);
        assert!(crate::codec::encode(&b).is_err());
    }
}
