//! The futex core every waiter of `mp` uses: shared-futex wait/wake, the deadline type,
//! the one spin policy, the two lock words, and the thread identity locks record.
//!
//! Everything here waits on **shared** futexes (no `FUTEX_PRIVATE_FLAG`): the words live
//! in shared memory (a [`heap`](crate::heap) block) and the waiter and the waker may be in
//! different processes. (`atomic-wait` and `parking_lot` use private futexes, which never
//! wake a waiter in another process.)
//!
//! ## One spin policy
//! Before any sleep, a waiter spins for at most [`SPIN_FOR`] re-checking its condition
//! ([`spin_until`]): a futex sleep and wake-up across CPUs costs 20–25 µs on the VMs this
//! runs on, so a critical section or a hand-over that ends sooner is cheaper to spin
//! through. The first rounds busy-wait (exponentially longer), the later ones
//! `sched_yield`, so on a single CPU the party being waited for runs instead of being
//! watched. A non-blocking attempt ([`Deadline::Now`]) never spins. This is the only
//! spin loop of `mp`: the locks, the semaphore, the condition, the event, the barrier
//! and the queue all go through it (parking_lot's `SpinWait` plays the same role there).
//!
//! ## Two lock words
//! - [`RawLock`]: `0` free, `1` held, `2` held with (possible) sleepers: the classic
//!   three-state futex mutex. It records no owner because a `Lock` may be released by
//!   any thread or process (Python's `Lock` is a binary semaphore), so nobody can tell
//!   a dead holder from one that handed the lock over on purpose.
//! - [`OwnedLock`]: the word holds the holder's kernel thread id (and a waiters bit), for
//!   the internal locks that are always released by the thread that took them (the
//!   queue's ring lock). A waiter that has waited [`OWNER_CHECK`] checks the holder is
//!   still alive; if it died (killed at any instant inside its critical section), the
//!   waiter takes the lock over and is told so, to repair what the dead holder may have
//!   left half-done. The fast path stays one compare-and-swap.
//!
//! Both have an inline fast path and a `#[cold]` slow path, as parking_lot's
//! `raw_mutex.rs`.

use std::cell::Cell;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::*};
use std::time::{Duration, Instant};

use rustix::thread::futex::{self, Flags, Timespec};

/// How long a wait may last.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Deadline {
    /// Wait as long as it takes.
    Never,
    /// Wait until this instant.
    At(Instant),
    /// Do not wait at all (a `try_` call, or a zero timeout).
    Now,
}

impl Deadline {
    /// The deadline `d` from now (`None` = never; zero = now).
    pub(crate) fn after(d: Option<Duration>) -> Deadline {
        match d {
            None => Deadline::Never,
            Some(d) if d.is_zero() => Deadline::Now,
            Some(d) => Instant::now()
                .checked_add(d)
                .map_or(Deadline::Never, Deadline::At),
        }
    }

    /// The deadline `d` from now.
    pub(crate) fn timeout(d: Duration) -> Deadline {
        Deadline::after(Some(d))
    }

    /// Whether it has passed.
    pub(crate) fn expired(self) -> bool {
        match self {
            Deadline::Never => false,
            Deadline::Now => true,
            Deadline::At(t) => Instant::now() >= t,
        }
    }

    /// The earlier of this deadline and `d` from now.
    pub(crate) fn min_after(self, d: Duration) -> Deadline {
        let soon = Deadline::timeout(d);
        match (self, soon) {
            (Deadline::Now, _) | (_, Deadline::Now) => Deadline::Now,
            (Deadline::Never, s) => s,
            (s, Deadline::Never) => s,
            (Deadline::At(a), Deadline::At(b)) => Deadline::At(a.min(b)),
        }
    }

    /// The earlier of two deadlines.
    pub(crate) fn min(self, other: Deadline) -> Deadline {
        match (self, other) {
            (Deadline::Now, _) | (_, Deadline::Now) => Deadline::Now,
            (Deadline::Never, d) | (d, Deadline::Never) => d,
            (Deadline::At(a), Deadline::At(b)) => Deadline::At(a.min(b)),
        }
    }

    /// What is left of it: `None` = forever.
    pub(crate) fn remaining(self) -> Option<Duration> {
        match self {
            Deadline::Never => None,
            Deadline::Now => Some(Duration::ZERO),
            Deadline::At(t) => Some(t.saturating_duration_since(Instant::now())),
        }
    }
}

/// Sleeps while `*w == val` (a shared futex: works across processes), at most until
/// the deadline. Spurious returns are allowed: callers re-check their condition.
pub(crate) fn wait(w: &AtomicU32, val: u32, dl: Deadline) {
    let ts = match dl.remaining() {
        None => None,
        Some(left) if left.is_zero() => return,
        Some(left) => Some(Timespec {
            tv_sec: left.as_secs() as _,
            tv_nsec: left.subsec_nanos() as _,
        }),
    };
    // EAGAIN (value changed), EINTR, ETIMEDOUT: all mean "re-check"
    let _ = futex::wait(w, Flags::empty(), val, ts.as_ref());
}

/// Wakes up to `n` sleepers on `w`.
pub(crate) fn wake(w: &AtomicU32, n: u32) {
    let _ = futex::wake(w, Flags::empty(), n.min(i32::MAX as u32));
}

/// How long a waiter spins before it sleeps: about the cost of a futex wake-up on
/// another CPU, so spinning never costs more than sleeping would have.
pub const SPIN_FOR: Duration = Duration::from_micros(20);

/// The spin policy: re-checks `pred` for at most [`SPIN_FOR`] (never with
/// [`Deadline::Now`], where it checks once). `true` as soon as `pred` holds.
#[inline]
pub(crate) fn spin_until(dl: Deadline, mut pred: impl FnMut() -> bool) -> bool {
    if pred() {
        return true;
    }
    if dl == Deadline::Now {
        return false;
    }
    spin_slow(&mut pred, SPIN_FOR)
}

/// The same spin policy with a caller's bound instead of [`SPIN_FOR`]: a
/// `Connection`'s opt-in low-latency mode spins on a non-blocking read this way.
pub(crate) fn spin_for(limit: Duration, mut pred: impl FnMut() -> bool) -> bool {
    pred() || spin_slow(&mut pred, limit)
}

#[cold]
fn spin_slow(pred: &mut dyn FnMut() -> bool, limit: Duration) -> bool {
    // parking_lot's SpinWait shape: a few rounds of exponentially longer busy-waits,
    // then `sched_yield`s, so that on a single CPU (or an oversubscribed machine) the
    // party we wait for gets to run instead of watching us spin; all within SPIN_FOR.
    let start = Instant::now();
    let mut round = 0u32;
    loop {
        if round < SPIN_ROUNDS {
            for _ in 0..(8u32 << round) {
                std::hint::spin_loop();
            }
        } else {
            std::thread::yield_now();
        }
        if pred() {
            return true;
        }
        round += 1;
        if start.elapsed() >= limit {
            return false;
        }
    }
}

/// Busy-wait rounds (8, then 16 `pause`s) before the spin policy yields instead: on one
/// CPU, every busy round only delays the party being waited for.
const SPIN_ROUNDS: u32 = 2;

/// Waits until `pred()` holds, sleeping on `w` (whose value changes whenever `pred`
/// may have become true). `waiters` counts sleepers so wakers can skip the syscall.
/// `false` if the deadline passed first. Its wakers always bump `w` (then wake if
/// `waiters` is not 0); see [`wait_until_counted`] for wakers that skip the bump.
pub(crate) fn wait_until(
    w: &AtomicU32,
    waiters: &AtomicU32,
    dl: Deadline,
    mut pred: impl FnMut() -> bool,
) -> bool {
    if spin_until(dl, &mut pred) {
        return true;
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

/// [`wait_until`] for wakers that write nothing while nobody sleeps: the waiter counts
/// itself in `waiters` *before* it reads `w` and checks `pred` for the last time, so a
/// waker may make its change, issue a `SeqCst` fence and bump `w` (and wake) only if
/// `waiters` is not 0; one of the two always sees the other. The queue's ring does
/// this, so a producer and a consumer on two CPUs do not pull a shared cache line back
/// and forth on every item.
pub(crate) fn wait_until_counted(
    w: &AtomicU32,
    waiters: &AtomicU32,
    dl: Deadline,
    mut pred: impl FnMut() -> bool,
) -> bool {
    if spin_until(dl, &mut pred) {
        return true;
    }
    wait_counted(w, waiters, dl, pred)
}

/// [`wait_until_counted`] without the spin first: for a waiter that was just woken and
/// lost the race for what woke it (one of several woken at once), whose spinning would
/// only burn a CPU while the winner works.
pub(crate) fn wait_counted(
    w: &AtomicU32,
    waiters: &AtomicU32,
    dl: Deadline,
    mut pred: impl FnMut() -> bool,
) -> bool {
    loop {
        waiters.fetch_add(1, SeqCst);
        std::sync::atomic::fence(SeqCst);
        let seen = w.load(SeqCst);
        let done = pred();
        if done || dl.expired() {
            waiters.fetch_sub(1, SeqCst);
            return done;
        }
        wait(w, seen, dl);
        waiters.fetch_sub(1, SeqCst);
    }
}

// ---------------------------------------------------------------------------------
// RawLock

/// The three-state mutex word (see the module docs): any thread may unlock it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RawLock;

impl RawLock {
    const FREE: u32 = 0;
    const HELD: u32 = 1;
    const CONTENDED: u32 = 2;

    /// Takes the lock, waiting at most until `dl`; `false` on timeout.
    #[inline]
    pub(crate) fn lock(w: &AtomicU32, dl: Deadline) -> bool {
        if w.compare_exchange(Self::FREE, Self::HELD, Acquire, Relaxed)
            .is_ok()
        {
            return true;
        }
        Self::lock_slow(w, dl)
    }

    #[cold]
    fn lock_slow(w: &AtomicU32, dl: Deadline) -> bool {
        let take = || {
            w.load(Relaxed) == Self::FREE
                && w.compare_exchange(Self::FREE, Self::HELD, Acquire, Relaxed)
                    .is_ok()
        };
        if spin_until(dl, take) {
            return true;
        }
        loop {
            if w.swap(Self::CONTENDED, Acquire) == Self::FREE {
                return true;
            }
            if dl.expired() {
                return false;
            }
            wait(w, Self::CONTENDED, dl);
        }
    }

    /// Releases the word; `false` if it was not held.
    #[inline]
    pub(crate) fn unlock(w: &AtomicU32) -> bool {
        match w.swap(Self::FREE, Release) {
            Self::FREE => false,
            Self::HELD => true,
            _ => {
                wake(w, 1);
                true
            }
        }
    }

    /// Whether the word is held.
    pub(crate) fn is_locked(w: &AtomicU32) -> bool {
        w.load(Relaxed) != Self::FREE
    }
}

// ---------------------------------------------------------------------------------
// OwnedLock

/// How [`OwnedLock::lock`] got the lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub(crate) enum Locked {
    /// The normal case.
    Yes,
    /// Taken over from a holder that died holding it: the data it guards may be
    /// half-updated; the caller repairs it before use.
    FromDeadOwner,
    /// The deadline passed.
    TimedOut,
}

/// How long a waiter waits before it checks that the holder of an [`OwnedLock`] is
/// alive (and again every time this passes). The ring lock's critical sections last
/// microseconds, so a holder still there after this is almost certainly dead.
pub const OWNER_CHECK: Duration = Duration::from_millis(20);

/// How many single `pause`s a waiter for an [`OwnedLock`] re-checks the word after,
/// before the common spin policy: the ring lock's critical sections last tens of
/// nanoseconds, shorter than the policy's first busy round (8 `pause`s, 0.2 µs on the
/// EPYC VMs this runs on), so a producer and a consumer that meet at the lock would
/// each wait out a whole round per item.
const HOLD_SPINS: u32 = 32;

/// A mutex word holding its holder's thread id (see the module docs).
#[derive(Clone, Copy, Debug)]
pub(crate) struct OwnedLock;

impl OwnedLock {
    /// Set while somebody may sleep on the word.
    const WAITERS: u32 = 1 << 31;
    /// The holder's kernel thread id (Linux tids fit in 22 bits).
    const TID_MASK: u32 = (1 << 30) - 1;

    /// Takes the lock, waiting at most until `dl`.
    #[inline]
    pub(crate) fn lock(w: &AtomicU32, dl: Deadline) -> Locked {
        let me = tid();
        if w.compare_exchange(0, me, Acquire, Relaxed).is_ok() {
            return Locked::Yes;
        }
        Self::lock_slow(w, me, dl)
    }

    #[cold]
    fn lock_slow(w: &AtomicU32, me: u32, dl: Deadline) -> Locked {
        let take = || w.load(Relaxed) == 0 && w.compare_exchange(0, me, Acquire, Relaxed).is_ok();
        if dl != Deadline::Now {
            for _ in 0..HOLD_SPINS {
                std::hint::spin_loop();
                if take() {
                    return Locked::Yes;
                }
            }
        }
        if spin_until(dl, take) {
            return Locked::Yes;
        }
        let mut check_at = Instant::now() + OWNER_CHECK;
        loop {
            let cur = w.load(Relaxed);
            if cur == 0 {
                // taken with the waiters bit: others may still sleep behind us
                if w.compare_exchange(0, me | Self::WAITERS, Acquire, Relaxed)
                    .is_ok()
                {
                    return Locked::Yes;
                }
                continue;
            }
            if dl.expired() {
                return Locked::TimedOut;
            }
            if Instant::now() >= check_at {
                let holder = cur & Self::TID_MASK;
                if holder != me && !thread_alive(holder) {
                    // keep the waiters bit: the dead holder's sleepers must be woken later
                    if w.compare_exchange(cur, me | (cur & Self::WAITERS), Acquire, Relaxed)
                        .is_ok()
                    {
                        return Locked::FromDeadOwner;
                    }
                    continue;
                }
                check_at = Instant::now() + OWNER_CHECK;
            }
            let want = cur | Self::WAITERS;
            if cur != want && w.compare_exchange(cur, want, Relaxed, Relaxed).is_err() {
                continue;
            }
            wait(
                w,
                want,
                dl.min_after(check_at.saturating_duration_since(Instant::now())),
            );
        }
    }

    /// Releases the word (held by the calling thread).
    #[inline]
    pub(crate) fn unlock(w: &AtomicU32) {
        if w.swap(0, Release) & Self::WAITERS != 0 {
            wake(w, 1);
        }
    }
}

// ---------------------------------------------------------------------------------
// Thread identity

thread_local! {
    static TID: Cell<u32> = const { Cell::new(0) };
    static GENERATION: Cell<u64> = const { Cell::new(0) };
    static PID: Cell<u32> = const { Cell::new(0) };
}
static ATFORK: std::sync::Once = std::sync::Once::new();
/// Hands out thread generations; seeded at random once per program.
static NEXT_GENERATION: AtomicU64 = AtomicU64::new(0);

extern "C" fn reset_tid() {
    TID.with(|t| t.set(0));
    GENERATION.with(|g| g.set(0));
    PID.with(|p| p.set(0));
}

/// This thread's kernel thread id (unique among the live threads of a machine), cached
/// (and re-read in a forked child).
#[inline]
pub(crate) fn tid() -> u32 {
    TID.with(|t| {
        let v = t.get();
        if v != 0 {
            return v;
        }
        ATFORK.call_once(|| {
            // SAFETY: registers a handler that only resets thread-local cells.
            unsafe {
                libc::pthread_atfork(None, None, Some(reset_tid));
            }
        });
        let v = rustix::thread::gettid().as_raw_nonzero().get() as u32;
        t.set(v);
        v
    })
}

/// This process's id, cached per thread (and re-read in a forked child): `getpid` is a
/// system call (glibc stopped caching it), too dear for every lock acquire.
#[inline]
pub(crate) fn pid() -> u32 {
    let _ = tid(); // registers the fork handler that resets the cache
    PID.with(|p| {
        if p.get() == 0 {
            p.set(std::process::id());
        }
        p.get()
    })
}

/// Who a thread is, for an owner that must not be confused with a later thread that
/// reuses its kernel thread id (ids are recycled once `pid_max` wraps): the id, the
/// process, and a generation no other thread of the process was given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ThreadIdentity {
    pub tid: u32,
    pub pid: u32,
    pub generation: u64,
}

/// The calling thread's [`ThreadIdentity`].
pub(crate) fn identity() -> ThreadIdentity {
    let tid = tid();
    let generation = GENERATION.with(|g| {
        if g.get() == 0 {
            if NEXT_GENERATION.load(Relaxed) == 0 {
                let mut seed = [0u8; 8];
                let _ = getrandom::fill(&mut seed);
                let _ = NEXT_GENERATION.compare_exchange(
                    0,
                    u64::from_le_bytes(seed) | 1,
                    Relaxed,
                    Relaxed,
                );
            }
            g.set(NEXT_GENERATION.fetch_add(2, Relaxed) | 1);
        }
        g.get()
    });
    let pid = pid();
    ThreadIdentity {
        tid,
        pid,
        generation,
    }
}

/// Whether the thread `tid` (of any process) is alive: it exists and is not a zombie
/// (the main thread of a killed process stays a zombie until its parent reaps it).
/// A thread we cannot inspect counts as alive.
pub(crate) fn thread_alive(tid: u32) -> bool {
    match std::fs::read(format!("/proc/{tid}/stat")) {
        Ok(stat) => {
            // "pid (comm) S ...": the state follows the last ')'
            let state = stat
                .iter()
                .rposition(|&b| b == b')')
                .and_then(|i| stat.get(i + 2).copied());
            !matches!(state, Some(b'Z') | Some(b'X') | Some(b'x'))
        }
        Err(e) => e.kind() != std::io::ErrorKind::NotFound,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_lock_and_deadlines() {
        let w = AtomicU32::new(0);
        assert!(RawLock::lock(&w, Deadline::Now));
        assert!(!RawLock::lock(&w, Deadline::Now));
        let t = Instant::now();
        assert!(!RawLock::lock(
            &w,
            Deadline::timeout(Duration::from_millis(30))
        ));
        assert!(t.elapsed() >= Duration::from_millis(30));
        assert!(RawLock::unlock(&w));
        assert!(!RawLock::unlock(&w));
    }

    #[test]
    fn owned_lock_records_the_holder() {
        let w = AtomicU32::new(0);
        assert_eq!(OwnedLock::lock(&w, Deadline::Now), Locked::Yes);
        assert_eq!(w.load(Relaxed), tid());
        OwnedLock::unlock(&w);
        assert_eq!(w.load(Relaxed), 0);
    }

    // not under Miri (.ci/miri): looks a thread up in /proc/self/task, where Miri's virtual thread ids are not
    #[cfg(not(miri))]
    #[test]
    fn owned_lock_taken_over_from_a_dead_thread() {
        let dead = std::thread::spawn(tid).join().unwrap();
        assert!(!thread_alive(dead));
        assert!(thread_alive(tid()));
        let w = AtomicU32::new(dead);
        let t = Instant::now();
        assert_eq!(
            OwnedLock::lock(&w, Deadline::timeout(Duration::from_secs(10))),
            Locked::FromDeadOwner
        );
        assert!(t.elapsed() < Duration::from_secs(5));
        OwnedLock::unlock(&w);
    }

    // not under Miri (.ci/miri): asks /proc/self/task whether the holder lives, where Miri's virtual thread ids are not
    #[cfg(not(miri))]
    #[test]
    fn owned_lock_times_out_behind_a_live_holder() {
        let w = AtomicU32::new(tid());
        std::thread::spawn(move || {
            let t = Instant::now();
            let r = OwnedLock::lock(&w, Deadline::timeout(Duration::from_millis(60)));
            assert_eq!(r, Locked::TimedOut);
            assert!(t.elapsed() >= Duration::from_millis(60));
            assert!(t.elapsed() < Duration::from_secs(5));
        })
        .join()
        .unwrap();
    }
}
