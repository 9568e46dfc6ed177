//! Process-shared synchronization primitives (CPython's `multiprocessing.synchronize`).
//!
//! [`Lock`], [`RLock`], [`Semaphore`], [`BoundedSemaphore`], [`Condition`], [`Event`]
//! and [`Barrier`] live in shared memory (a [`heap`](crate::heap) arena created with
//! `memfd_create`) and block on **shared** futexes, so they work alike between threads
//! and between processes, and nothing named exists that could leak. Every handle is
//! `Clone + Send + Sync + Serialize + Deserialize`: pass it in a `Process`'s args (under
//! every start method), through a `Connection` or a queue; the receiver maps the same
//! memory.
//!
//! Fast paths are a single atomic instruction: an uncontended `Lock` acquire + release
//! is one compare-and-swap and one swap. A contended acquire spins briefly (the holder
//! may be about to release on another CPU), then sleeps in the kernel (`FUTEX_WAIT`);
//! nothing busy-waits.
//!
//! ## A process killed while holding a lock
//! As in CPython, a `Lock` (or a `Semaphore` unit, an `RLock`) held by a process that was
//! killed stays held: nobody can know the protected data is consistent. Waiters using
//! `acquire_timeout` get their timeout (`false`); a plain `acquire()` waits forever, so
//! use the `_timeout` forms where a peer may die.
//!
//! This is a choice, not a limit of the implementation (the queue's internal lock does
//! recover from a dead holder, see [`crate::queues`]): a `Lock` may be released by any
//! thread of any process and a `Semaphore` unit belongs to nobody, so a dead acquirer
//! does not mean an abandoned lock (it may have handed the lock to a peer that releases
//! it later); recording and checking owners would also cost the uncontended path, which
//! is one compare-and-swap. Recovering an `RLock` silently would hand its next owner
//! data the dead one left half-updated, which a Python user cannot expect either.
//!
//! ```
//! # mp::test_support!();
//! #[mp::task]
//! fn work(lock: mp::Lock, event: mp::Event) {
//!     let _g = lock.lock();
//!     event.set();
//! }
//!
//! # fn main() -> mp::Result<()> {
//! let lock = mp::Lock::new()?;
//! let event = mp::Event::new()?;
//! let mut p = mp::Process::new(work, (lock.clone(), event.clone()));
//! p.start()?;
//! assert!(event.wait(Some(std::time::Duration::from_secs(20))));
//! p.join()?;
//! assert!(lock.try_acquire());
//! lock.release()?;
//! # Ok(()) }
//! ```

use crate::error::{Error, Result};
use crate::heap::{Block, SharedHeader};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::*};
use std::time::Duration;

mod barrier;
mod condition;
pub(crate) mod futex;

pub use barrier::Barrier;
pub use condition::Condition;
use futex::{Deadline, RawLock};

pub(super) fn timeout_of(d: Duration) -> Deadline {
    Deadline::timeout(d)
}

/// A handle's block, checked on receipt to hold the header `H` (so a peer cannot make
/// us read past a block it sent).
pub(super) fn checked_block<'de, H: SharedHeader, D: Deserializer<'de>>(
    d: D,
    what: &str,
) -> std::result::Result<Block, D::Error> {
    let block = Block::deserialize(d)?;
    if block.try_header::<H>().is_none() {
        return Err(serde::de::Error::custom(format!("{what} block too small")));
    }
    Ok(block)
}

/// `Serialize`/`Deserialize` for a handle that is one checked block.
macro_rules! block_handle_serde {
    ($ty:ident, $header:ty, $what:literal) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                self.block.serialize(s)
            }
        }
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                Ok($ty {
                    block: checked_block::<$header, D>(d, $what)?,
                })
            }
        }
    };
}

// ---------------------------------------------------------------------------------
// Guards

/// Something with `acquire`/`release`: the locks, semaphores and conditions.
pub trait Acquire {
    /// Blocks until acquired.
    fn acquire(&self) -> bool;
    /// Releases (errors on misuse).
    fn release(&self) -> Result<()>;
}

/// Releases on drop, including during a panic (Python's `with lock:`).
#[must_use = "the lock is released when the guard is dropped"]
pub struct Guard<'a, L: Acquire + ?Sized> {
    lock: &'a L,
}

impl<'a, L: Acquire + ?Sized> Guard<'a, L> {
    pub(super) fn new(lock: &'a L) -> Self {
        lock.acquire();
        Guard { lock }
    }
}

impl<L: Acquire + ?Sized> Drop for Guard<'_, L> {
    fn drop(&mut self) {
        let _ = self.lock.release();
    }
}

impl<L: Acquire + ?Sized> fmt::Debug for Guard<'_, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Guard")
    }
}

macro_rules! acquire_methods {
    () => {
        /// Blocks until acquired (Python: `acquire()`); always `true`.
        #[inline]
        pub fn acquire(&self) -> bool {
            self.acquire_dl(Deadline::Never)
        }
        /// Acquires if possible without blocking (Python: `acquire(False)`).
        pub fn try_acquire(&self) -> bool {
            self.acquire_dl(Deadline::Now)
        }
        /// Blocks at most `timeout` (Python: `acquire(timeout=t)`); `Duration::ZERO`
        /// does not block. `false` on timeout.
        pub fn acquire_timeout(&self, timeout: Duration) -> bool {
            self.acquire_dl($crate::synchronize::futex::Deadline::timeout(timeout))
        }
        /// Acquires and returns a guard that releases on drop (Python: `with x:`).
        pub fn lock(&self) -> Guard<'_, Self> {
            Guard::new(self)
        }
    };
}
use acquire_methods;

// ---------------------------------------------------------------------------------
// Lock

/// A non-recursive lock (Python: `multiprocessing.Lock`). Any process or thread may
/// release it, not only the one that acquired it.
///
/// If the process holding it is killed, the lock stays held, as in CPython: waiters
/// in [`acquire_timeout`](Self::acquire_timeout) get `false` after their timeout, a plain
/// [`acquire`](Self::acquire) waits forever (see the
/// [module docs](self#a-process-killed-while-holding-a-lock) for why it is not
/// recovered).
///
/// ```
/// let lock = mp::Lock::new()?;
/// {
///     let _g = lock.lock();
///     assert!(!lock.try_acquire());
/// }
/// assert!(lock.acquire_timeout(std::time::Duration::ZERO));
/// lock.release()?;
/// assert!(lock.release().is_err()); // not held
/// # Ok::<(), mp::Error>(())
/// ```
#[derive(Clone)]
pub struct Lock {
    block: Block,
}

/// A [`Lock`] in shared memory.
#[repr(C)]
struct LockHeader {
    /// The [`RawLock`] word.
    word: AtomicU32,
    /// The thread that acquired it last (its kernel thread id; 0 once released): only
    /// consulted by a [`Condition`] on this lock, which only its holder may use.
    holder: AtomicU32,
    /// The process of `holder` (for the `Debug` output: CPython's repr tells "some
    /// other thread" of this process from "some other process").
    holder_pid: AtomicU32,
}
// SAFETY: repr(C), atomics only: every bit pattern is valid.
unsafe impl SharedHeader for LockHeader {}

block_handle_serde!(Lock, LockHeader, "lock");

impl Lock {
    /// A new unlocked lock in shared memory.
    pub fn new() -> Result<Lock> {
        Ok(Lock {
            block: Block::new(std::mem::size_of::<LockHeader>())?,
        })
    }
    #[inline]
    fn h(&self) -> &LockHeader {
        self.block.header()
    }
    #[inline]
    fn word(&self) -> &AtomicU32 {
        &self.h().word
    }
    #[inline]
    pub(super) fn acquire_dl(&self, dl: Deadline) -> bool {
        let got = RawLock::lock(self.word(), dl);
        if got {
            self.h().holder.store(futex::tid(), Relaxed);
            self.h().holder_pid.store(futex::pid(), Relaxed);
        }
        got
    }
    acquire_methods!();
    /// Releases; `InvalidState` if the lock is not held.
    #[inline]
    pub fn release(&self) -> Result<()> {
        self.h().holder.store(0, Relaxed);
        if RawLock::unlock(self.word()) {
            Ok(())
        } else {
            Err(Error::InvalidState("release unlocked lock".into()))
        }
    }
    /// Whether some process or thread holds the lock.
    pub fn is_locked(&self) -> bool {
        RawLock::is_locked(self.word())
    }
    /// Python 3.14's `lock.locked()`: the same as [`is_locked`](Self::is_locked).
    pub fn locked(&self) -> bool {
        self.is_locked()
    }
    /// Whether the calling thread acquired the lock (and nobody released it since).
    fn held_by_me(&self) -> bool {
        self.is_locked() && self.h().holder.load(Relaxed) == futex::tid()
    }
}

impl Acquire for Lock {
    fn acquire(&self) -> bool {
        Lock::acquire(self)
    }
    fn release(&self) -> Result<()> {
        Lock::release(self)
    }
}

/// How CPython's `Lock`/`RLock` `__repr__` names the caller when it holds the lock: the
/// process's name, with `|<thread name>` outside the main thread.
fn my_owner_name() -> String {
    let mut name = crate::process::current_process().name();
    if futex::tid() != futex::pid() {
        name.push('|');
        match std::thread::current().name() {
            Some(t) => name.push_str(t),
            None => name.push_str(&format!("Thread-{}", futex::tid())),
        }
    }
    name
}

/// Python's `repr(lock)`: `<Lock(owner=None)>` when free, else the holder:
/// `MainProcess` (the caller's process name, `|thread` outside its main thread),
/// `SomeOtherThread` or `SomeOtherProcess`.
impl fmt::Debug for Lock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let holder = self.h().holder.load(Relaxed);
        let owner = if !self.is_locked() {
            "None".to_string()
        } else if holder == futex::tid() {
            my_owner_name()
        } else if self.h().holder_pid.load(Relaxed) == futex::pid() {
            "SomeOtherThread".to_string()
        } else {
            "SomeOtherProcess".to_string()
        };
        write!(f, "<Lock(owner={owner})>")
    }
}

// ---------------------------------------------------------------------------------
// RLock

/// A recursive lock (Python: `multiprocessing.RLock`): the owning thread (of any
/// process) may acquire it again; it is free after as many releases as acquires. Only
/// the owner may release it.
///
/// ```
/// let r = mp::RLock::new()?;
/// r.acquire();
/// r.acquire();
/// r.release()?;
/// r.release()?;
/// assert!(r.release().is_err());
/// # Ok::<(), mp::Error>(())
/// ```
#[derive(Clone)]
pub struct RLock {
    block: Block,
}

/// An [`RLock`] in shared memory.
#[repr(C)]
struct RLockHeader {
    /// The [`RawLock`] word.
    state: AtomicU32,
    /// The owning thread's kernel thread id, 0 when free.
    owner: AtomicU32,
    /// The recursion depth.
    count: AtomicU32,
    /// The owner's process.
    owner_pid: AtomicU32,
    /// The owner's generation: with the pid, tells the owner from a later thread that
    /// got the same thread id (see [`futex::ThreadIdentity`]).
    owner_generation: AtomicU64,
}
// SAFETY: repr(C), atomics only: every bit pattern is valid.
unsafe impl SharedHeader for RLockHeader {}

block_handle_serde!(RLock, RLockHeader, "rlock");

impl RLock {
    /// A new unowned recursive lock.
    pub fn new() -> Result<RLock> {
        Ok(RLock {
            block: Block::new(std::mem::size_of::<RLockHeader>())?,
        })
    }
    fn h(&self) -> &RLockHeader {
        self.block.header()
    }
    fn state(&self) -> &AtomicU32 {
        &self.h().state
    }
    fn owner(&self) -> &AtomicU32 {
        &self.h().owner
    }
    fn count(&self) -> &AtomicU32 {
        &self.h().count
    }
    /// Whether the owner recorded is `me`.
    fn owned_by(&self, me: &futex::ThreadIdentity) -> bool {
        let h = self.h();
        h.owner.load(Relaxed) == me.tid
            && h.owner_pid.load(Relaxed) == me.pid
            && h.owner_generation.load(Relaxed) == me.generation
    }
    pub(super) fn acquire_dl(&self, dl: Deadline) -> bool {
        let me = futex::identity();
        if self.owned_by(&me) {
            self.count().fetch_add(1, Relaxed);
            return true;
        }
        if !RawLock::lock(self.state(), dl) {
            return false;
        }
        let h = self.h();
        h.owner_generation.store(me.generation, Relaxed);
        h.owner_pid.store(me.pid, Relaxed);
        h.owner.store(me.tid, Relaxed);
        h.count.store(1, Relaxed);
        true
    }
    acquire_methods!();
    /// Releases one level; `InvalidState` if the calling thread does not own it.
    pub fn release(&self) -> Result<()> {
        if !self.is_owned() {
            return Err(Error::InvalidState(
                "cannot release un-acquired lock".into(),
            ));
        }
        let c = self.count().load(Relaxed).saturating_sub(1);
        self.count().store(c, Relaxed);
        if c == 0 {
            self.owner().store(0, Relaxed);
            RawLock::unlock(self.state());
        }
        Ok(())
    }
    /// Whether the calling thread owns the lock (its thread id, process and
    /// generation: a thread that reuses a dead owner's thread id is not the owner).
    pub fn is_owned(&self) -> bool {
        self.owned_by(&futex::identity())
    }
    /// Python 3.14's `rlock.locked()`: whether any thread of any process owns it.
    pub fn locked(&self) -> bool {
        self.recursion_count() != 0
    }
    /// The recursion depth (0 = free).
    pub fn recursion_count(&self) -> u32 {
        if self.state().load(Relaxed) == 0 {
            0
        } else {
            self.count().load(Relaxed)
        }
    }
    /// Releases every level (for `Condition::wait`); returns the depth.
    pub(super) fn release_all(&self) -> u32 {
        let c = self.count().swap(0, Relaxed);
        self.owner().store(0, Relaxed);
        RawLock::unlock(self.state());
        c
    }
    pub(super) fn restore(&self, c: u32) {
        self.acquire_dl(Deadline::Never);
        self.count().store(c.max(1), Relaxed);
    }
}

impl Acquire for RLock {
    fn acquire(&self) -> bool {
        RLock::acquire(self)
    }
    fn release(&self) -> Result<()> {
        RLock::release(self)
    }
}

/// Python's `repr(rlock)`: `<RLock(None, 0)>` when free, `<RLock(MainProcess, 2)>`
/// when the caller owns it (its process name, `|thread` outside its main thread, and
/// the depth), else `<RLock(SomeOtherThread, nonzero)>` or
/// `<RLock(SomeOtherProcess, nonzero)>`.
impl fmt::Debug for RLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.recursion_count();
        if n == 0 {
            write!(f, "<RLock(None, 0)>")
        } else if self.is_owned() {
            write!(f, "<RLock({}, {n})>", my_owner_name())
        } else if self.h().owner_pid.load(Relaxed) == futex::pid() {
            write!(f, "<RLock(SomeOtherThread, nonzero)>")
        } else {
            write!(f, "<RLock(SomeOtherProcess, nonzero)>")
        }
    }
}

// ---------------------------------------------------------------------------------
// AnyLock

/// A `Lock` or an `RLock`: what a [`Condition`] or a [`Value`](crate::Value) is built
/// on. `Lock` and `RLock` convert with `.into()`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum AnyLock {
    /// A plain lock.
    Lock(Lock),
    /// A recursive lock.
    RLock(RLock),
}

impl From<Lock> for AnyLock {
    fn from(l: Lock) -> Self {
        AnyLock::Lock(l)
    }
}
impl From<RLock> for AnyLock {
    fn from(l: RLock) -> Self {
        AnyLock::RLock(l)
    }
}

impl AnyLock {
    pub(super) fn acquire_dl(&self, dl: Deadline) -> bool {
        match self {
            AnyLock::Lock(l) => l.acquire_dl(dl),
            AnyLock::RLock(l) => l.acquire_dl(dl),
        }
    }
    acquire_methods!();
    /// Releases (see [`Lock::release`], [`RLock::release`]).
    pub fn release(&self) -> Result<()> {
        match self {
            AnyLock::Lock(l) => l.release(),
            AnyLock::RLock(l) => l.release(),
        }
    }
    /// Whether the calling thread holds the lock (a `Lock` it acquired, an `RLock` it
    /// owns): what a [`Condition`] checks before `wait` and `notify`.
    pub(super) fn held(&self) -> bool {
        match self {
            AnyLock::Lock(l) => l.held_by_me(),
            AnyLock::RLock(l) => l.is_owned(),
        }
    }
}

impl Acquire for AnyLock {
    fn acquire(&self) -> bool {
        AnyLock::acquire(self)
    }
    fn release(&self) -> Result<()> {
        AnyLock::release(self)
    }
}

// ---------------------------------------------------------------------------------
// Semaphores

/// A counting semaphore (Python: `multiprocessing.Semaphore`).
///
/// ```
/// let s = mp::Semaphore::new(2)?;
/// assert!(s.try_acquire() && s.try_acquire() && !s.try_acquire());
/// s.release()?;
/// assert_eq!(s.get_value(), 1);
/// # Ok::<(), mp::Error>(())
/// ```
#[derive(Clone)]
pub struct Semaphore {
    block: Block,
}

/// A [`Semaphore`] in shared memory.
#[repr(C)]
struct SemaphoreHeader {
    /// The value (a futex word: waiters sleep on it while it is 0).
    value: AtomicU32,
    /// Sleeping waiters (releasers skip the wake-up syscall while 0).
    sleepers: AtomicU32,
    /// 0 = unbounded, else the maximum value + 1 (written once).
    bound: AtomicU32,
}
// SAFETY: repr(C), atomics only: every bit pattern is valid.
unsafe impl SharedHeader for SemaphoreHeader {}

block_handle_serde!(Semaphore, SemaphoreHeader, "semaphore");

impl Semaphore {
    /// A semaphore with initial value `value`.
    pub fn new(value: u32) -> Result<Semaphore> {
        Self::make(value, 0)
    }
    fn make(value: u32, bound: u32) -> Result<Semaphore> {
        if value > i32::MAX as u32 {
            return Err(Error::InvalidState("semaphore value out of range".into()));
        }
        let block = Block::new(std::mem::size_of::<SemaphoreHeader>())?;
        let h = block.header::<SemaphoreHeader>();
        h.value.store(value, SeqCst);
        h.bound.store(bound, SeqCst);
        Ok(Semaphore { block })
    }
    fn h(&self) -> &SemaphoreHeader {
        self.block.header()
    }
    fn value(&self) -> &AtomicU32 {
        &self.h().value
    }
    pub(super) fn acquire_dl(&self, dl: Deadline) -> bool {
        let v = self.value();
        let take = || {
            let mut cur = v.load(Relaxed);
            while cur > 0 {
                match v.compare_exchange_weak(cur, cur - 1, Acquire, Relaxed) {
                    Ok(_) => return true,
                    Err(c) => cur = c,
                }
            }
            false
        };
        if take() {
            return true;
        }
        futex::wait_until(v, &self.h().sleepers, dl, take)
    }
    acquire_methods!();
    /// Adds one unit, waking a waiter. For a bounded semaphore, releasing past the
    /// initial value is `InvalidState`.
    pub fn release(&self) -> Result<()> {
        let v = self.value();
        let bound = self.h().bound.load(Relaxed);
        let mut cur = v.load(Relaxed);
        loop {
            if bound != 0 && cur + 1 >= bound {
                return Err(Error::InvalidState(
                    "semaphore or lock released too many times".into(),
                ));
            }
            if cur >= i32::MAX as u32 {
                return Err(Error::InvalidState("semaphore value overflow".into()));
            }
            match v.compare_exchange_weak(cur, cur + 1, SeqCst, Relaxed) {
                Ok(_) => break,
                Err(c) => cur = c,
            }
        }
        if self.h().sleepers.load(SeqCst) > 0 {
            futex::wake(v, 1);
        }
        Ok(())
    }
    /// The current value (Python: `get_value()`).
    pub fn get_value(&self) -> u32 {
        self.value().load(Relaxed)
    }
}

impl Acquire for Semaphore {
    fn acquire(&self) -> bool {
        Semaphore::acquire(self)
    }
    fn release(&self) -> Result<()> {
        Semaphore::release(self)
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<Semaphore(value={})>", self.get_value())
    }
}

/// A semaphore that may not be released past its initial value (Python:
/// `multiprocessing.BoundedSemaphore`). Derefs to [`Semaphore`] for every method.
///
/// ```
/// let s = mp::BoundedSemaphore::new(1)?;
/// assert!(s.release().is_err());
/// s.acquire();
/// s.release()?;
/// # Ok::<(), mp::Error>(())
/// ```
#[derive(Clone, Serialize, Deserialize)]
pub struct BoundedSemaphore(Semaphore);

impl BoundedSemaphore {
    /// A bounded semaphore with initial (and maximum) value `value`.
    pub fn new(value: u32) -> Result<BoundedSemaphore> {
        Semaphore::make(value, value.saturating_add(1)).map(BoundedSemaphore)
    }
    /// Acquires and returns a guard that releases on drop.
    pub fn lock(&self) -> Guard<'_, Semaphore> {
        self.0.lock()
    }
}

impl std::ops::Deref for BoundedSemaphore {
    type Target = Semaphore;
    fn deref(&self) -> &Semaphore {
        &self.0
    }
}

impl Acquire for BoundedSemaphore {
    fn acquire(&self) -> bool {
        self.0.acquire()
    }
    fn release(&self) -> Result<()> {
        self.0.release()
    }
}

impl fmt::Debug for BoundedSemaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "<BoundedSemaphore(value={}, maxvalue={})>",
            self.get_value(),
            self.0.h().bound.load(Relaxed).saturating_sub(1)
        )
    }
}

// ---------------------------------------------------------------------------------
// Event

/// A flag processes can wait for (Python: `multiprocessing.Event`).
///
/// ```
/// let e = mp::Event::new()?;
/// assert!(!e.wait(Some(std::time::Duration::from_millis(1))));
/// e.set();
/// assert!(e.is_set() && e.wait(None));
/// e.clear();
/// assert!(!e.is_set());
/// # Ok::<(), mp::Error>(())
/// ```
#[derive(Clone)]
pub struct Event {
    block: Block,
}

/// An [`Event`] in shared memory.
#[repr(C)]
struct EventHeader {
    /// 1 while set.
    flag: AtomicU32,
    /// Sleeping waiters (`set` skips the wake-up syscall while 0).
    sleepers: AtomicU32,
    /// Bumped by every `set`: the futex word waiters sleep on. A waiter returns once it
    /// changed, even if `clear` already reset the flag (Python's `wait` returns once
    /// woken by a `set`).
    sets: AtomicU32,
}
// SAFETY: repr(C), atomics only: every bit pattern is valid.
unsafe impl SharedHeader for EventHeader {}

block_handle_serde!(Event, EventHeader, "event");

impl Event {
    /// A new, clear event.
    pub fn new() -> Result<Event> {
        Ok(Event {
            block: Block::new(std::mem::size_of::<EventHeader>())?,
        })
    }
    fn h(&self) -> &EventHeader {
        self.block.header()
    }
    /// Whether the flag is set.
    pub fn is_set(&self) -> bool {
        self.h().flag.load(SeqCst) != 0
    }
    /// Sets the flag, waking every waiter (a waiter woken by this returns `true` even
    /// if the flag is cleared again before it runs).
    pub fn set(&self) {
        let h = self.h();
        h.flag.store(1, SeqCst);
        h.sets.fetch_add(1, SeqCst);
        if h.sleepers.load(SeqCst) > 0 {
            futex::wake(&h.sets, u32::MAX);
        }
    }
    /// Clears the flag.
    pub fn clear(&self) {
        self.h().flag.store(0, SeqCst);
    }
    /// Waits until the flag is set (at most `timeout`); `true` if it was set, or a
    /// `set` happened while waiting.
    pub fn wait(&self, timeout: Option<Duration>) -> bool {
        let h = self.h();
        let sets = h.sets.load(SeqCst);
        futex::wait_until(&h.sets, &h.sleepers, Deadline::after(timeout), || {
            h.flag.load(SeqCst) != 0 || h.sets.load(SeqCst) != sets
        })
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // CPython's repr: `<Event at 0x7f… set>` / `<Event at 0x7f… unset>`
        let s = if self.is_set() { "set" } else { "unset" };
        write!(f, "<Event at {:#x} {s}>", self.block.as_ptr() as usize)
    }
}

// ---------------------------------------------------------------------------------
// Context constructors

impl crate::Context {
    /// `ctx.Lock()`.
    pub fn lock(&self) -> Result<Lock> {
        Lock::new()
    }
    /// `ctx.RLock()`.
    pub fn rlock(&self) -> Result<RLock> {
        RLock::new()
    }
    /// `ctx.Semaphore(value)`.
    pub fn semaphore(&self, value: u32) -> Result<Semaphore> {
        Semaphore::new(value)
    }
    /// `ctx.BoundedSemaphore(value)`.
    pub fn bounded_semaphore(&self, value: u32) -> Result<BoundedSemaphore> {
        BoundedSemaphore::new(value)
    }
    /// `ctx.Condition(lock)`.
    pub fn condition(&self, lock: Option<AnyLock>) -> Result<Condition> {
        Condition::new(lock)
    }
    /// `ctx.Event()`.
    pub fn event(&self) -> Result<Event> {
        Event::new()
    }
    /// `ctx.Barrier(parties, action, timeout)`.
    pub fn barrier(
        &self,
        parties: usize,
        action: Option<fn()>,
        timeout: Option<Duration>,
    ) -> Result<Barrier> {
        Barrier::new(parties, action, timeout)
    }
}

#[doc(hidden)]
pub mod root_exports {
    pub use super::{
        AnyLock, Barrier, BoundedSemaphore, Condition, Event, Guard, Lock, RLock, Semaphore,
    };
}
