//! [`Barrier`]: a barrier in shared memory (CPython's `synchronize.Barrier`).

use super::futex::{self, Deadline, RawLock};
use super::timeout_of;
use crate::error::{Error, Result};
use crate::heap::{Block, SharedHeader};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering::*};
use std::time::Duration;

/// A [`Barrier`]'s shared state.
#[repr(C)]
struct BarrierHeader {
    /// The internal [`RawLock`] word guarding `count`, `generation`, `broken`, `epoch`.
    lock: AtomicU32,
    /// Parties waiting in the current round.
    count: AtomicU32,
    /// Rounds completed (a waiter is released when it changes).
    generation: AtomicU32,
    /// 1 while broken.
    broken: AtomicU32,
    /// Bumped by `reset` (waiters of the old epoch get `BrokenBarrier`).
    epoch: AtomicU32,
    /// Bumped whenever waiters should re-check: the futex word they sleep on.
    seq: AtomicU32,
    /// The number of parties (written once).
    parties: AtomicU32,
    /// Sleeping waiters (wakers skip the syscall while 0).
    sleepers: AtomicU32,
}
// SAFETY: repr(C), atomics only: every bit pattern is valid.
unsafe impl SharedHeader for BarrierHeader {}

/// A barrier for a fixed number of parties (Python: `multiprocessing.Barrier`).
///
/// The optional action is a function of the program (typically a `#[mp::task]` with no
/// arguments); whichever process arrives last runs it, once per round, before the others
/// are released. It travels to children as its offset inside the executable, so it is
/// found again under fork, spawn and forkserver alike (a child running a different
/// executable refuses the barrier with a `Codec` error). An action that panics breaks the
/// barrier. The action runs outside the barrier's internal lock, so it may use the
/// barrier itself: an action that calls [`abort`](Self::abort) or
/// [`reset`](Self::reset) ends the round with `BrokenBarrier` for every party.
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
        let block = Block::new(std::mem::size_of::<BarrierHeader>())?;
        block
            .header::<BarrierHeader>()
            .parties
            .store(parties as u32, SeqCst);
        Ok(Barrier {
            block,
            action,
            timeout,
        })
    }
    fn h(&self) -> &BarrierHeader {
        self.block.header()
    }
    fn ilock(&self) {
        let _ = RawLock::lock(&self.h().lock, Deadline::Never);
    }
    fn iunlock(&self) {
        RawLock::unlock(&self.h().lock);
    }
    fn bump(&self) {
        let h = self.h();
        h.seq.fetch_add(1, SeqCst);
        if h.sleepers.load(SeqCst) > 0 {
            futex::wake(&h.seq, u32::MAX);
        }
    }
    fn break_locked(&self) {
        self.h().broken.store(1, SeqCst);
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
        if self.h().broken.load(SeqCst) != 0 {
            self.iunlock();
            return Err(Error::BrokenBarrier);
        }
        let gen = self.h().generation.load(SeqCst);
        let epoch = self.h().epoch.load(SeqCst);
        let index = self.h().count.load(SeqCst);
        if index + 1 >= self.h().parties.load(SeqCst) {
            // last to arrive: run the action, then release everyone. The action runs
            // outside the internal lock (the round stays full meanwhile), so it may
            // call `abort`, `reset` or any other method of the barrier: either of the
            // first two wins over the round, whose waiters get `BrokenBarrier`.
            if let Some(f) = self.action {
                self.h().count.store(index + 1, SeqCst);
                self.iunlock();
                let ok = std::panic::catch_unwind(f).is_ok();
                self.ilock();
                let h = self.h();
                if h.broken.load(SeqCst) != 0 || h.epoch.load(SeqCst) != epoch {
                    self.iunlock();
                    return Err(Error::BrokenBarrier);
                }
                if !ok {
                    self.break_locked();
                    self.iunlock();
                    return Err(Error::BrokenBarrier);
                }
            }
            self.h().count.store(0, SeqCst);
            self.h().generation.fetch_add(1, SeqCst);
            self.bump();
            self.iunlock();
            return Ok(index as usize);
        }
        self.h().count.store(index + 1, SeqCst);
        self.iunlock();
        let passed = || self.h().generation.load(SeqCst) != gen;
        let broken = || self.h().broken.load(SeqCst) != 0 || self.h().epoch.load(SeqCst) != epoch;
        futex::wait_until(&self.h().seq, &self.h().sleepers, dl, || {
            passed() || broken()
        });
        if passed() {
            return Ok(index as usize);
        }
        if !broken() {
            // timed out: break the barrier for everyone
            self.ilock();
            if self.h().generation.load(SeqCst) != gen {
                self.iunlock();
                return Ok(index as usize);
            }
            if self.h().epoch.load(SeqCst) == epoch {
                self.break_locked();
            }
            self.iunlock();
        }
        Err(Error::BrokenBarrier)
    }

    /// Returns the barrier to its initial state; parties waiting get `BrokenBarrier`.
    pub fn reset(&self) {
        self.ilock();
        self.h().count.store(0, SeqCst);
        self.h().broken.store(0, SeqCst);
        self.h().epoch.fetch_add(1, SeqCst);
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
        self.h().parties.load(Relaxed) as usize
    }

    /// How many parties are currently waiting.
    pub fn n_waiting(&self) -> usize {
        if self.broken() {
            0
        } else {
            self.h().count.load(SeqCst) as usize
        }
    }

    /// Whether the barrier is broken.
    pub fn broken(&self) -> bool {
        self.h().broken.load(SeqCst) != 0
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
        let action = self.action.map(crate::reduction::fn_to_offset);
        (&self.block, action, self.timeout).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Barrier {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let (block, action, timeout) =
            <(Block, Option<(i64, i64)>, Option<Duration>)>::deserialize(d)?;
        if block.try_header::<BarrierHeader>().is_none() {
            return Err(serde::de::Error::custom("barrier block too small"));
        }
        let action = match action {
            None => None,
            Some((off, check)) => Some(crate::reduction::offset_to_fn(off, check).ok_or_else(|| {
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
