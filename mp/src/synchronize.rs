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
use crate::heap::Block;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::cell::Cell;
use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering::*};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------
// The futex core

pub(crate) mod futex {
    use super::*;
    use rustix::thread::futex::{self, Flags, Timespec};

    /// How long a wait may last.
    #[derive(Clone, Copy, PartialEq, Eq)]
    pub(crate) enum Deadline {
        Never,
        At(Instant),
        Now,
    }

    impl Deadline {
        pub(crate) fn after(d: Option<Duration>) -> Deadline {
            match d {
                None => Deadline::Never,
                Some(d) if d.is_zero() => Deadline::Now,
                Some(d) => Instant::now()
                    .checked_add(d)
                    .map_or(Deadline::Never, Deadline::At),
            }
        }
        pub(crate) fn expired(self) -> bool {
            match self {
                Deadline::Never => false,
                Deadline::Now => true,
                Deadline::At(t) => Instant::now() >= t,
            }
        }
    }

    /// Sleeps while `*w == val` (a shared futex: works across processes), at most until
    /// the deadline. Spurious returns are allowed: callers re-check their condition.
    pub(crate) fn wait(w: &AtomicU32, val: u32, dl: Deadline) {
        let ts = match dl {
            Deadline::Never => None,
            Deadline::Now => return,
            Deadline::At(t) => {
                let left = t.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return;
                }
                Some(Timespec {
                    tv_sec: left.as_secs() as _,
                    tv_nsec: left.subsec_nanos() as _,
                })
            }
        };
        // EAGAIN (value changed), EINTR, ETIMEDOUT: all mean "re-check"
        let _ = futex::wait(w, Flags::empty(), val, ts.as_ref());
    }

    /// Wakes up to `n` sleepers on `w`.
    pub(crate) fn wake(w: &AtomicU32, n: u32) {
        let _ = futex::wake(w, Flags::empty(), n.min(i32::MAX as u32));
    }

    /// Spin iterations before sleeping (the holder may be releasing on another CPU).
    const SPIN: u32 = 100;

    /// Mutex word: 0 free, 1 held, 2 held with (possible) sleepers.
    #[inline]
    pub(crate) fn lock(w: &AtomicU32, dl: Deadline) -> bool {
        if w.compare_exchange(0, 1, Acquire, Relaxed).is_ok() {
            return true;
        }
        if dl == Deadline::Now {
            return false;
        }
        for _ in 0..SPIN {
            std::hint::spin_loop();
            if w.load(Relaxed) == 0 && w.compare_exchange(0, 1, Acquire, Relaxed).is_ok() {
                return true;
            }
        }
        loop {
            if w.swap(2, Acquire) == 0 {
                return true;
            }
            if dl.expired() {
                return false;
            }
            wait(w, 2, dl);
        }
    }

    /// Releases a mutex word; `false` if it was not held.
    #[inline]
    pub(crate) fn unlock(w: &AtomicU32) -> bool {
        match w.swap(0, Release) {
            0 => false,
            1 => true,
            _ => {
                wake(w, 1);
                true
            }
        }
    }

    /// Waits until `pred()` holds, sleeping on `w` (whose value changes whenever `pred`
    /// may have become true). `waiters` counts sleepers so wakers can skip the syscall.
    pub(crate) fn wait_until(
        w: &AtomicU32,
        waiters: &AtomicU32,
        dl: Deadline,
        mut pred: impl FnMut() -> bool,
    ) -> bool {
        for _ in 0..SPIN / 4 {
            if pred() {
                return true;
            }
            if dl == Deadline::Now {
                return false;
            }
            std::hint::spin_loop();
        }
        loop {
            let seen = w.load(SeqCst);
            if pred() {
                return true;
            }
            if dl.expired() {
                return false;
            }
            waiters.fetch_add(1, SeqCst);
            if w.load(SeqCst) == seen {
                wait(w, seen, dl);
            }
            waiters.fetch_sub(1, SeqCst);
        }
    }

    /// A function of this binary serialized as an offset from an anchor function: the
    /// same executable (fork, spawn and forkserver children all run it) maps it at the
    /// same offset, whatever the load address.
    #[inline(never)]
    fn anchor() {}

    pub(super) fn fn_to_offset(f: fn()) -> (i64, i64) {
        let a = anchor as fn() as usize as i64;
        // a second function checks that the receiver runs the same build
        let check = crate::spawn::freeze_support as fn() as usize as i64;
        ((f as usize as i64).wrapping_sub(a), check.wrapping_sub(a))
    }

    pub(super) fn offset_to_fn(off: i64, check: i64) -> Option<fn()> {
        let a = anchor as fn() as usize as i64;
        let mine = (crate::spawn::freeze_support as fn() as usize as i64).wrapping_sub(a);
        if mine != check {
            return None;
        }
        let p = a.wrapping_add(off) as usize;
        // SAFETY: the sender computed `off` from a `fn()` of the same executable (the
        // check offset matches, so the code layout is the same); the same offset from
        // the same anchor is that function here.
        Some(unsafe { std::mem::transmute::<usize, fn()>(p) })
    }

    thread_local! {
        static TID: Cell<u32> = const { Cell::new(0) };
    }
    static ATFORK: std::sync::Once = std::sync::Once::new();
    extern "C" fn reset_tid() {
        TID.with(|t| t.set(0));
    }

    /// This thread's kernel thread id (unique across the processes of a machine), cached.
    pub(super) fn tid() -> u32 {
        TID.with(|t| {
            let v = t.get();
            if v != 0 {
                return v;
            }
            ATFORK.call_once(|| {
                // SAFETY: registers a handler that only resets a thread-local cell.
                unsafe {
                    libc::pthread_atfork(None, None, Some(reset_tid));
                }
            });
            let v = rustix::thread::gettid().as_raw_nonzero().get() as u32;
            t.set(v);
            v
        })
    }
}

use futex::Deadline;

fn timeout_of(d: Duration) -> Deadline {
    Deadline::after(Some(d))
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
    fn new(lock: &'a L) -> Self {
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
            self.acquire_dl(timeout_of(timeout))
        }
        /// Acquires and returns a guard that releases on drop (Python: `with x:`).
        pub fn lock(&self) -> Guard<'_, Self> {
            Guard::new(self)
        }
    };
}

// ---------------------------------------------------------------------------------
// Lock

/// A non-recursive lock (Python: `multiprocessing.Lock`). Any process or thread may
/// release it, not only the one that acquired it.
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
#[derive(Clone, Serialize, Deserialize)]
pub struct Lock {
    block: Block,
}

impl Lock {
    /// A new unlocked lock in shared memory.
    pub fn new() -> Result<Lock> {
        Ok(Lock {
            block: Block::new(4)?,
        })
    }
    #[inline]
    fn word(&self) -> &AtomicU32 {
        self.block.atomic_u32(0)
    }
    #[inline]
    fn acquire_dl(&self, dl: Deadline) -> bool {
        futex::lock(self.word(), dl)
    }
    acquire_methods!();
    /// Releases; `InvalidState` if the lock is not held.
    #[inline]
    pub fn release(&self) -> Result<()> {
        if futex::unlock(self.word()) {
            Ok(())
        } else {
            Err(Error::InvalidState("release unlocked lock".into()))
        }
    }
    /// Whether some process or thread holds the lock.
    pub fn is_locked(&self) -> bool {
        self.word().load(Relaxed) != 0
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

impl fmt::Debug for Lock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = if self.is_locked() {
            "locked"
        } else {
            "unlocked"
        };
        write!(f, "<Lock({s})>")
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
#[derive(Clone, Serialize, Deserialize)]
pub struct RLock {
    block: Block,
}

impl RLock {
    /// A new unowned recursive lock.
    pub fn new() -> Result<RLock> {
        Ok(RLock {
            block: Block::new(12)?,
        })
    }
    fn state(&self) -> &AtomicU32 {
        self.block.atomic_u32(0)
    }
    fn owner(&self) -> &AtomicU32 {
        self.block.atomic_u32(1)
    }
    fn count(&self) -> &AtomicU32 {
        self.block.atomic_u32(2)
    }
    fn acquire_dl(&self, dl: Deadline) -> bool {
        let me = futex::tid();
        if self.owner().load(Relaxed) == me {
            self.count().fetch_add(1, Relaxed);
            return true;
        }
        if !futex::lock(self.state(), dl) {
            return false;
        }
        self.owner().store(me, Relaxed);
        self.count().store(1, Relaxed);
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
            futex::unlock(self.state());
        }
        Ok(())
    }
    /// Whether the calling thread owns the lock.
    pub fn is_owned(&self) -> bool {
        self.owner().load(Relaxed) == futex::tid()
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
    fn release_all(&self) -> u32 {
        let c = self.count().swap(0, Relaxed);
        self.owner().store(0, Relaxed);
        futex::unlock(self.state());
        c
    }
    fn restore(&self, c: u32) {
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

impl fmt::Debug for RLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.recursion_count() {
            0 => write!(f, "<RLock(None, 0)>"),
            n => write!(f, "<RLock({}, {n})>", self.owner().load(Relaxed)),
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
    fn acquire_dl(&self, dl: Deadline) -> bool {
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
    /// For a `Lock`: held by anyone; for an `RLock`: owned by the caller.
    fn held(&self) -> bool {
        match self {
            AnyLock::Lock(l) => l.is_locked(),
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
#[derive(Clone, Serialize, Deserialize)]
pub struct Semaphore {
    // [0] value, [1] sleepers, [2] bound (0 = unbounded, else max value + 1)
    block: Block,
}

impl Semaphore {
    /// A semaphore with initial value `value`.
    pub fn new(value: u32) -> Result<Semaphore> {
        Self::make(value, 0)
    }
    fn make(value: u32, bound: u32) -> Result<Semaphore> {
        if value > i32::MAX as u32 {
            return Err(Error::InvalidState("semaphore value out of range".into()));
        }
        let block = Block::new(12)?;
        block.atomic_u32(0).store(value, SeqCst);
        block.atomic_u32(2).store(bound, SeqCst);
        Ok(Semaphore { block })
    }
    fn value(&self) -> &AtomicU32 {
        self.block.atomic_u32(0)
    }
    fn acquire_dl(&self, dl: Deadline) -> bool {
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
        futex::wait_until(v, self.block.atomic_u32(1), dl, take)
    }
    acquire_methods!();
    /// Adds one unit, waking a waiter. For a bounded semaphore, releasing past the
    /// initial value is `InvalidState`.
    pub fn release(&self) -> Result<()> {
        let v = self.value();
        let bound = self.block.atomic_u32(2).load(Relaxed);
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
        if self.block.atomic_u32(1).load(SeqCst) > 0 {
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
            self.0.block.atomic_u32(2).load(Relaxed).saturating_sub(1)
        )
    }
}

// ---------------------------------------------------------------------------------
// Condition

/// A condition variable on a [`Lock`] or [`RLock`] (Python:
/// `multiprocessing.Condition`; an `RLock` by default).
///
/// `notify(n)` wakes at most `n` waiters: each notification hands out "tokens" to
/// waiters that are registered, and a waiter returns `true` only with a token.
///
/// ```
/// let c = mp::Condition::new(None)?;
/// let _g = c.lock();
/// assert!(!c.wait(Some(std::time::Duration::from_millis(10)))); // nobody notifies
/// # Ok::<(), mp::Error>(())
/// ```
#[derive(Clone, Serialize, Deserialize)]
pub struct Condition {
    lock: AnyLock,
    // u32[0]: sequence (futex word); u32[1]: ack (futex word of a notifier waiting for
    // its tokens to be taken); u64[1]: waiters << 32 | tokens
    block: Block,
}

impl Condition {
    /// A condition on `lock` (a new `RLock` when `None`).
    pub fn new(lock: Option<AnyLock>) -> Result<Condition> {
        let lock = match lock {
            Some(l) => l,
            None => RLock::new()?.into(),
        };
        Ok(Condition {
            lock,
            block: Block::new(16)?,
        })
    }
    fn acquire_dl(&self, dl: Deadline) -> bool {
        self.lock.acquire_dl(dl)
    }
    acquire_methods!();
    /// Releases the underlying lock.
    pub fn release(&self) -> Result<()> {
        self.lock.release()
    }
    /// The underlying lock.
    pub fn get_lock(&self) -> &AnyLock {
        &self.lock
    }

    fn seq(&self) -> &AtomicU32 {
        self.block.atomic_u32(0)
    }
    fn counts(&self) -> &std::sync::atomic::AtomicU64 {
        self.block.atomic_u64(1)
    }

    /// Futex word the notifier sleeps on until its tokens are taken.
    fn ack(&self) -> &AtomicU32 {
        self.block.atomic_u32(1)
    }

    /// Tells a notifier waiting in `notify` that a token was consumed.
    fn acked(&self, w_after: u64) {
        if w_after & 0xffff_ffff == 0 {
            self.ack().fetch_add(1, SeqCst);
            futex::wake(self.ack(), u32::MAX);
        }
    }

    fn take_token(&self) -> bool {
        let c = self.counts();
        let mut w = c.load(SeqCst);
        while w & 0xffff_ffff != 0 {
            let new = w - (1 << 32) - 1;
            match c.compare_exchange_weak(w, new, SeqCst, SeqCst) {
                Ok(_) => {
                    self.acked(new);
                    return true;
                }
                Err(x) => w = x,
            }
        }
        false
    }

    /// Leaves after a timeout; `true` if a token was meant for us after all.
    fn leave(&self) -> bool {
        let c = self.counts();
        let mut w = c.load(SeqCst);
        loop {
            let (waiters, tokens) = (w >> 32, w & 0xffff_ffff);
            let (new, got) = if tokens >= waiters && tokens > 0 {
                (w - (1 << 32) - 1, true)
            } else {
                (w.saturating_sub(1 << 32), false)
            };
            match c.compare_exchange_weak(w, new, SeqCst, SeqCst) {
                Ok(_) => {
                    if got {
                        self.acked(new);
                    }
                    return got;
                }
                Err(x) => w = x,
            }
        }
    }

    /// Releases the lock, sleeps until notified or `timeout` passes, re-acquires the
    /// lock. `true` if notified, `false` on timeout (or if the caller did not hold the
    /// lock: Python raises there).
    pub fn wait(&self, timeout: Option<Duration>) -> bool {
        if !self.lock.held() {
            return false;
        }
        let dl = Deadline::after(timeout);
        self.counts().fetch_add(1 << 32, SeqCst);
        let depth = match &self.lock {
            AnyLock::Lock(l) => {
                let _ = l.release();
                0
            }
            AnyLock::RLock(r) => r.release_all(),
        };
        let notified = loop {
            let s = self.seq().load(SeqCst);
            if self.take_token() {
                break true;
            }
            if dl.expired() {
                break self.leave();
            }
            futex::wait(self.seq(), s, dl);
        };
        match &self.lock {
            AnyLock::Lock(l) => {
                l.acquire();
            }
            AnyLock::RLock(r) => r.restore(depth),
        }
        notified
    }

    /// Waits until `predicate()` is true, at most `timeout` in all (Python:
    /// `wait_for`). Returns the predicate's last value.
    pub fn wait_for(&self, mut predicate: impl FnMut() -> bool, timeout: Option<Duration>) -> bool {
        let dl = Deadline::after(timeout);
        let mut result = predicate();
        while !result {
            let left = match dl {
                Deadline::Never => None,
                Deadline::Now => break,
                Deadline::At(t) => {
                    let left = t.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    Some(left)
                }
            };
            self.wait(left);
            result = predicate();
        }
        result
    }

    /// Wakes at most `n` of the waiting processes/threads. `InvalidState` if the caller
    /// does not hold the lock.
    pub fn notify(&self, n: usize) -> Result<()> {
        if !self.lock.held() {
            return Err(Error::InvalidState(
                "cannot notify on un-acquired lock".into(),
            ));
        }
        let n = n.min(u32::MAX as usize) as u64;
        let c = self.counts();
        let mut w = c.load(SeqCst);
        let k = loop {
            let (waiters, tokens) = (w >> 32, w & 0xffff_ffff);
            let k = n.min(waiters.saturating_sub(tokens));
            if k == 0 {
                return Ok(());
            }
            match c.compare_exchange_weak(w, w + k, SeqCst, SeqCst) {
                Ok(_) => break k,
                Err(x) => w = x,
            }
        };
        self.seq().fetch_add(1, SeqCst);
        futex::wake(self.seq(), k as u32);
        // As CPython's notify waits on `_woken_count`: wait (still holding the lock, so
        // no new waiter can register) until the woken waiters took their tokens. A
        // waiter that starts waiting after this call returns can then never steal a
        // wake-up meant for an earlier one. Bounded, in case a waiter was killed.
        let dl = Deadline::after(Some(Duration::from_secs(2)));
        loop {
            let a = self.ack().load(SeqCst);
            if c.load(SeqCst) & 0xffff_ffff == 0 || dl.expired() {
                break;
            }
            futex::wait(self.ack(), a, dl);
        }
        Ok(())
    }

    /// Wakes every waiter.
    pub fn notify_all(&self) -> Result<()> {
        self.notify(usize::MAX)
    }
}

impl Acquire for Condition {
    fn acquire(&self) -> bool {
        Condition::acquire(self)
    }
    fn release(&self) -> Result<()> {
        Condition::release(self)
    }
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = self.counts().load(Relaxed);
        write!(
            f,
            "<Condition({:?}, {})>",
            self.lock,
            (w >> 32) - (w & 0xffff_ffff)
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
#[derive(Clone, Serialize, Deserialize)]
pub struct Event {
    // [0] flag, [1] sleepers
    block: Block,
}

impl Event {
    /// A new, clear event.
    pub fn new() -> Result<Event> {
        Ok(Event {
            block: Block::new(8)?,
        })
    }
    /// Whether the flag is set.
    pub fn is_set(&self) -> bool {
        self.block.atomic_u32(0).load(SeqCst) != 0
    }
    /// Sets the flag, waking every waiter.
    pub fn set(&self) {
        let f = self.block.atomic_u32(0);
        f.store(1, SeqCst);
        if self.block.atomic_u32(1).load(SeqCst) > 0 {
            futex::wake(f, u32::MAX);
        }
    }
    /// Clears the flag.
    pub fn clear(&self) {
        self.block.atomic_u32(0).store(0, SeqCst);
    }
    /// Waits until the flag is set (at most `timeout`); returns the flag.
    pub fn wait(&self, timeout: Option<Duration>) -> bool {
        let f = self.block.atomic_u32(0);
        futex::wait_until(
            f,
            self.block.atomic_u32(1),
            Deadline::after(timeout),
            || f.load(SeqCst) != 0,
        )
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
// Barrier

/// A barrier for a fixed number of parties (Python: `multiprocessing.Barrier`).
///
/// The optional action is a function of the program (typically a `#[mp::task]` with no
/// arguments); whichever process arrives last runs it, once per round, before the others
/// are released. It travels to children as its offset inside the executable, so it is
/// found again under fork, spawn and forkserver alike (a child running a different
/// executable refuses the barrier with a `Codec` error). An action that panics breaks the
/// barrier.
///
/// ```
/// let b = mp::Barrier::new(1, None, None)?;
/// assert_eq!(b.wait()?, 0);
/// b.abort();
/// assert!(matches!(b.wait(), Err(mp::Error::BrokenBarrier)));
/// b.reset();
/// assert_eq!(b.wait()?, 0);
/// # Ok::<(), mp::Error>(())
/// ```
#[derive(Clone)]
pub struct Barrier {
    // [0] lock, [1] count, [2] generation, [3] broken, [4] epoch, [5] seq, [6] parties,
    // [7] sleepers
    block: Block,
    action: Option<fn()>,
    timeout: Option<Duration>,
}

impl Barrier {
    /// A barrier for `parties` parties (at least 1), with an optional action and a
    /// default timeout for [`wait`](Self::wait).
    pub fn new(parties: usize, action: Option<fn()>, timeout: Option<Duration>) -> Result<Barrier> {
        if parties == 0 || parties > u32::MAX as usize / 2 {
            return Err(Error::InvalidState("parties must be at least 1".into()));
        }
        let block = Block::new(32)?;
        block.atomic_u32(6).store(parties as u32, SeqCst);
        Ok(Barrier {
            block,
            action,
            timeout,
        })
    }
    fn w(&self, i: usize) -> &AtomicU32 {
        self.block.atomic_u32(i)
    }
    fn ilock(&self) {
        futex::lock(self.w(0), Deadline::Never);
    }
    fn iunlock(&self) {
        futex::unlock(self.w(0));
    }
    fn bump(&self) {
        self.w(5).fetch_add(1, SeqCst);
        if self.w(7).load(SeqCst) > 0 {
            futex::wake(self.w(5), u32::MAX);
        }
    }
    fn break_locked(&self) {
        self.w(3).store(1, SeqCst);
        self.bump();
    }

    /// Waits for all parties (with the barrier's default timeout); returns this party's
    /// index, distinct in `0..parties`. `BrokenBarrier` if the barrier is or gets broken
    /// (abort, reset, a timeout or a panicking action).
    pub fn wait(&self) -> Result<usize> {
        self.wait_dl(Deadline::after(self.timeout))
    }

    /// Like [`wait`](Self::wait) with a timeout; the timeout breaks the barrier.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<usize> {
        self.wait_dl(timeout_of(timeout))
    }

    fn wait_dl(&self, dl: Deadline) -> Result<usize> {
        self.ilock();
        if self.w(3).load(SeqCst) != 0 {
            self.iunlock();
            return Err(Error::BrokenBarrier);
        }
        let gen = self.w(2).load(SeqCst);
        let epoch = self.w(4).load(SeqCst);
        let index = self.w(1).load(SeqCst);
        if index + 1 >= self.w(6).load(SeqCst) {
            // last to arrive: run the action, then release everyone
            let ok = match self.action {
                Some(f) => std::panic::catch_unwind(f).is_ok(),
                None => true,
            };
            if !ok {
                self.break_locked();
                self.iunlock();
                return Err(Error::BrokenBarrier);
            }
            self.w(1).store(0, SeqCst);
            self.w(2).fetch_add(1, SeqCst);
            self.bump();
            self.iunlock();
            return Ok(index as usize);
        }
        self.w(1).store(index + 1, SeqCst);
        self.iunlock();
        let passed = || self.w(2).load(SeqCst) != gen;
        let broken = || self.w(3).load(SeqCst) != 0 || self.w(4).load(SeqCst) != epoch;
        futex::wait_until(self.w(5), self.w(7), dl, || passed() || broken());
        if passed() {
            return Ok(index as usize);
        }
        if !broken() {
            // timed out: break the barrier for everyone
            self.ilock();
            if self.w(2).load(SeqCst) != gen {
                self.iunlock();
                return Ok(index as usize);
            }
            if self.w(4).load(SeqCst) == epoch {
                self.break_locked();
            }
            self.iunlock();
        }
        Err(Error::BrokenBarrier)
    }

    /// Returns the barrier to its initial state; parties waiting get `BrokenBarrier`.
    pub fn reset(&self) {
        self.ilock();
        self.w(1).store(0, SeqCst);
        self.w(3).store(0, SeqCst);
        self.w(4).fetch_add(1, SeqCst);
        self.bump();
        self.iunlock();
    }

    /// Breaks the barrier: current and future waiters get `BrokenBarrier` until `reset`.
    pub fn abort(&self) {
        self.ilock();
        self.break_locked();
        self.iunlock();
    }

    /// The number of parties.
    pub fn parties(&self) -> usize {
        self.w(6).load(Relaxed) as usize
    }

    /// How many parties are currently waiting.
    pub fn n_waiting(&self) -> usize {
        if self.broken() {
            0
        } else {
            self.w(1).load(SeqCst) as usize
        }
    }

    /// Whether the barrier is broken.
    pub fn broken(&self) -> bool {
        self.w(3).load(SeqCst) != 0
    }
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "<Barrier(parties={}, n_waiting={}, broken={})>",
            self.parties(),
            self.n_waiting(),
            self.broken()
        )
    }
}

impl Serialize for Barrier {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let action = self.action.map(futex::fn_to_offset);
        (&self.block, action, self.timeout).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Barrier {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let (block, action, timeout) =
            <(Block, Option<(i64, i64)>, Option<Duration>)>::deserialize(d)?;
        if block.len() < 32 {
            return Err(serde::de::Error::custom("barrier block too small"));
        }
        let action = match action {
            None => None,
            Some((off, check)) => Some(futex::offset_to_fn(off, check).ok_or_else(|| {
                serde::de::Error::custom(
                    "a Barrier's action can only be passed to a process running the same executable",
                )
            })?),
        };
        Ok(Barrier {
            block,
            action,
            timeout,
        })
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
