//! [`Condition`]: a condition variable in shared memory (CPython's
//! `synchronize.Condition`).

use super::futex::{self, Deadline};
use super::{acquire_methods, checked_block, Acquire, AnyLock, Guard, RLock};
use crate::error::{Error, Result};
use crate::heap::{Block, SharedHeader};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::*};
use std::time::{Duration, Instant};

/// A [`Condition`]'s shared state.
#[repr(C)]
struct ConditionHeader {
    /// Bumped by every notification: the futex word waiters sleep on.
    seq: AtomicU32,
    /// Bumped when the last outstanding token is taken: the futex word a notifier
    /// sleeps on until the waiters it woke have taken their tokens.
    ack: AtomicU32,
    /// [`Counts`], packed.
    counts: AtomicU64,
    /// The thread ids of (up to [`SLOTS`]) registered waiters, 0 = free slot: a
    /// notifier whose tokens are not taken checks them, and unregisters a waiter that
    /// was killed while it waited (its wake-up would otherwise stall every notify and
    /// then go to a later waiter). Waiters beyond `SLOTS` register without a slot and
    /// are only covered by the notifier's overall bound.
    slots: [AtomicU32; SLOTS],
}

/// Waiter slots of a condition.
const SLOTS: usize = 16;
/// How long a notifier waits for its tokens to be taken before it checks the slots.
const CHECK_AFTER: Duration = Duration::from_millis(2);
// SAFETY: repr(C), atomics only: every bit pattern is valid.
unsafe impl SharedHeader for ConditionHeader {}

/// The registered waiters and the tokens handed out to them, packed in one word so
/// both change in one atomic operation (high half: waiters, low half: tokens; rayon's
/// `sleep/counters.rs` packs its counters the same way).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Counts(u64);

impl Counts {
    const WAITERS_SHIFT: u32 = 32;
    const ONE_WAITER: u64 = 1 << Self::WAITERS_SHIFT;
    const TOKENS_MASK: u64 = (1 << Self::WAITERS_SHIFT) - 1;

    fn waiters(self) -> u64 {
        self.0 >> Self::WAITERS_SHIFT
    }
    fn tokens(self) -> u64 {
        self.0 & Self::TOKENS_MASK
    }
    /// A waiter leaves without a token.
    fn remove_waiter(self) -> Counts {
        Counts(self.0.saturating_sub(Self::ONE_WAITER))
    }
    /// A dead waiter is unregistered: one waiter fewer, and no more tokens than
    /// waiters (a token handed to it is withdrawn).
    fn remove_dead(self) -> Counts {
        let waiters = self.waiters().saturating_sub(1);
        Counts((waiters << Self::WAITERS_SHIFT) | self.tokens().min(waiters))
    }
    /// A waiter leaves with a token.
    fn take_token(self) -> Counts {
        Counts(self.0 - Self::ONE_WAITER - 1)
    }
    /// `k` more tokens.
    fn add_tokens(self, k: u64) -> Counts {
        Counts(self.0 + k)
    }
}

/// A condition variable on a [`Lock`](super::Lock) or [`RLock`] (Python:
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
#[derive(Clone)]
pub struct Condition {
    lock: AnyLock,
    block: Block,
}

impl Serialize for Condition {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        (&self.lock, &self.block).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Condition {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct B(Block);
        impl<'de> Deserialize<'de> for B {
            fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                checked_block::<ConditionHeader, D>(d, "condition").map(B)
            }
        }
        let (lock, B(block)) = <(AnyLock, B)>::deserialize(d)?;
        Ok(Condition { lock, block })
    }
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
            block: Block::new(std::mem::size_of::<ConditionHeader>())?,
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

    fn h(&self) -> &ConditionHeader {
        self.block.header()
    }
    fn seq(&self) -> &AtomicU32 {
        &self.h().seq
    }
    /// Futex word the notifier sleeps on until its tokens are taken.
    fn ack(&self) -> &AtomicU32 {
        &self.h().ack
    }
    fn counts(&self) -> Counts {
        Counts(self.h().counts.load(SeqCst))
    }
    /// Compare-and-swap on the packed counts.
    fn cas_counts(&self, old: Counts, new: Counts) -> std::result::Result<(), Counts> {
        self.h()
            .counts
            .compare_exchange_weak(old.0, new.0, SeqCst, SeqCst)
            .map(drop)
            .map_err(Counts)
    }

    /// Tells a notifier waiting in `notify` that a token was consumed.
    fn acked(&self, after: Counts) {
        if after.tokens() == 0 {
            self.ack().fetch_add(1, SeqCst);
            futex::wake(self.ack(), u32::MAX);
        }
    }

    fn take_token(&self) -> bool {
        let mut w = self.counts();
        while w.tokens() != 0 {
            let new = w.take_token();
            match self.cas_counts(w, new) {
                Ok(()) => {
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
        let mut w = self.counts();
        loop {
            let (new, got) = if w.tokens() >= w.waiters() && w.tokens() > 0 {
                (w.take_token(), true)
            } else {
                (w.remove_waiter(), false)
            };
            match self.cas_counts(w, new) {
                Ok(()) => {
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
        self.h().counts.fetch_add(Counts::ONE_WAITER, SeqCst);
        let mut slot = self.claim_slot();
        let depth = match &self.lock {
            AnyLock::Lock(l) => {
                let _ = l.release();
                0
            }
            AnyLock::RLock(r) => r.release_all(),
        };
        let notified = loop {
            let s = self.seq().load(SeqCst);
            // the slot is given up before the counts change: a kill in between leaves
            // a registration without a slot (covered by the notifier's bound), never a
            // slot naming a waiter that already left
            if self.counts().tokens() != 0 {
                self.release_slot(slot.take());
                if self.take_token() {
                    break true;
                }
                slot = self.claim_slot();
            }
            if dl.expired() {
                self.release_slot(slot.take());
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
    ///
    /// Without the lock held by the caller it returns the predicate's value at once
    /// (Python raises `RuntimeError`; waiting could never be woken correctly).
    pub fn wait_for(&self, mut predicate: impl FnMut() -> bool, timeout: Option<Duration>) -> bool {
        let dl = Deadline::after(timeout);
        let mut result = predicate();
        if !self.lock.held() {
            return result;
        }
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
        let mut w = self.counts();
        let k = loop {
            let k = n.min(w.waiters().saturating_sub(w.tokens()));
            if k == 0 {
                return Ok(());
            }
            match self.cas_counts(w, w.add_tokens(k)) {
                Ok(()) => break k,
                Err(x) => w = x,
            }
        };
        self.seq().fetch_add(1, SeqCst);
        futex::wake(self.seq(), k as u32);
        // As CPython's notify waits on `_woken_count`: wait (still holding the lock, so
        // no new waiter can register) until the woken waiters took their tokens. A
        // waiter that starts waiting after this call returns can then never steal a
        // wake-up meant for an earlier one. Bounded, in case a waiter was killed.
        // Bounded, and a waiter killed while it waited is unregistered on the way.
        let dl = Deadline::after(Some(Duration::from_secs(2)));
        let mut check = Deadline::timeout(CHECK_AFTER);
        loop {
            let a = self.ack().load(SeqCst);
            if self.counts().tokens() == 0 || dl.expired() {
                break;
            }
            if check.expired() {
                self.remove_dead_waiters();
                check = Deadline::timeout(futex::OWNER_CHECK);
                continue;
            }
            futex::wait(self.ack(), a, check.min(dl));
        }
        Ok(())
    }

    /// Takes a free waiter slot for the calling thread, if one is left.
    fn claim_slot(&self) -> Option<usize> {
        let me = futex::tid();
        self.h()
            .slots
            .iter()
            .position(|s| s.compare_exchange(0, me, SeqCst, Relaxed).is_ok())
    }

    fn release_slot(&self, slot: Option<usize>) {
        if let Some(i) = slot {
            self.h().slots[i].store(0, SeqCst);
        }
    }

    /// Unregisters the waiters whose thread is gone (killed while waiting).
    fn remove_dead_waiters(&self) {
        for slot in &self.h().slots {
            let tid = slot.load(SeqCst);
            if tid == 0 || futex::thread_alive(tid) {
                continue;
            }
            if slot.compare_exchange(tid, 0, SeqCst, Relaxed).is_err() {
                continue;
            }
            let mut w = self.counts();
            while let Err(x) = self.cas_counts(w, w.remove_dead()) {
                w = x;
            }
            self.acked(w.remove_dead());
        }
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
        let w = self.counts();
        write!(
            f,
            "<Condition({:?}, {})>",
            self.lock,
            w.waiters().saturating_sub(w.tokens())
        )
    }
}
