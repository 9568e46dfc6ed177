//! The synchronization objects of a [`SyncManager`](super::SyncManager) (CPython's
//! `threading.Lock`, `RLock`, `Semaphore`, `BoundedSemaphore`, `Condition`, `Event`,
//! `Barrier` held by the server, and `AcquirerProxy`, `ConditionProxy`, `EventProxy`,
//! `BarrierProxy`).
//!
//! The objects live in the server process only, so they are plain in-process
//! primitives (a mutex and a condvar each). An owner is the server thread serving one
//! client connection, that is one client thread, as in CPython. Every wait wakes in
//! slices to notice a shutdown, so a client blocked in `acquire` when the server stops
//! gets an error instead of hanging.

use super::builtins::{args_of, opt_arg, ret, unit};
use super::proxy::{BaseProxy, Encoding, Proxy};
use super::server::{lock, shut_down, stopping, Fail, Out, Referent, SLICE};
use super::value::Value;
use crate::error::Result;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

type FResult<T> = std::result::Result<T, Fail>;

/// Waits on `cv` until `ready` holds, the deadline passes (`Ok(false)`), or the server
/// shuts down (`Err`).
pub(crate) fn wait_until<'a, T>(
    mut g: MutexGuard<'a, T>,
    cv: &Condvar,
    deadline: Option<Instant>,
    mut ready: impl FnMut(&mut T) -> bool,
) -> FResult<(MutexGuard<'a, T>, bool)> {
    loop {
        if ready(&mut g) {
            return Ok((g, true));
        }
        let slice = match deadline {
            Some(d) => {
                let now = Instant::now();
                if now >= d {
                    return Ok((g, false));
                }
                (d - now).min(SLICE)
            }
            None => SLICE,
        };
        if stopping() {
            return Err(shut_down());
        }
        g = cv
            .wait_timeout(g, slice)
            .unwrap_or_else(|p| p.into_inner())
            .0;
    }
}

/// `timeout` in seconds as it travels (`None` = forever).
/// A timeout a peer sent that is not a number of seconds (NaN, infinite, too large)
/// means forever.
pub(crate) fn deadline(timeout: Option<f64>) -> Option<Instant> {
    let d = Duration::try_from_secs_f64(timeout?.max(0.0)).ok()?;
    Instant::now().checked_add(d)
}

pub(crate) fn secs(d: Option<Duration>) -> Value {
    d.map_or(Value::None, |d| Value::Float(d.as_secs_f64()))
}

// ---------------------------------------------------------------------------------
// server side

#[derive(Debug)]
struct LockSt {
    owner: Option<ThreadId>,
    count: usize,
}

/// A `Lock` or `RLock` in the server.
#[doc(hidden)]
#[derive(Debug)]
pub struct LockCore {
    st: Mutex<LockSt>,
    cv: Condvar,
    reentrant: bool,
}

impl LockCore {
    pub(crate) fn new(reentrant: bool) -> Arc<Self> {
        Arc::new(LockCore {
            st: Mutex::new(LockSt {
                owner: None,
                count: 0,
            }),
            cv: Condvar::new(),
            reentrant,
        })
    }

    fn acquire(&self, timeout: Option<f64>) -> FResult<bool> {
        let me = std::thread::current().id();
        let g = lock(&self.st);
        if self.reentrant && g.owner == Some(me) {
            let mut g = g;
            g.count += 1;
            return Ok(true);
        }
        let (mut g, ok) = wait_until(g, &self.cv, deadline(timeout), |s| s.count == 0)?;
        if ok {
            g.count = 1;
            g.owner = Some(me);
        }
        Ok(ok)
    }

    fn release(&self) -> FResult<()> {
        let me = std::thread::current().id();
        let mut g = lock(&self.st);
        if g.count == 0 {
            return Err(Fail::new(
                "InvalidState",
                if self.reentrant {
                    "cannot release un-acquired lock"
                } else {
                    "release unlocked lock"
                },
            ));
        }
        if self.reentrant && g.owner != Some(me) {
            return Err(Fail::new("InvalidState", "cannot release un-acquired lock"));
        }
        g.count -= 1;
        if g.count == 0 {
            g.owner = None;
            self.cv.notify_one();
        }
        Ok(())
    }

    /// Releases completely (a condition's wait); the count to restore.
    fn release_save(&self) -> FResult<usize> {
        let me = std::thread::current().id();
        let mut g = lock(&self.st);
        if g.count == 0 || (self.reentrant && g.owner != Some(me)) {
            return Err(Fail::new("InvalidState", "cannot wait on un-acquired lock"));
        }
        let n = g.count;
        g.count = 0;
        g.owner = None;
        self.cv.notify_one();
        Ok(n)
    }

    fn acquire_restore(&self, n: usize) -> FResult<()> {
        let me = std::thread::current().id();
        let (mut g, _) = wait_until(lock(&self.st), &self.cv, None, |s| s.count == 0)?;
        g.count = n;
        g.owner = Some(me);
        Ok(())
    }

    fn owned(&self) -> bool {
        let g = lock(&self.st);
        g.count > 0 && (!self.reentrant || g.owner == Some(std::thread::current().id()))
    }
}

fn acquire_args(a: &mut [Value]) -> FResult<Option<f64>> {
    let blocking: bool = opt_arg(a, 0)?.unwrap_or(true);
    let timeout: Option<f64> = opt_arg(a, 1)?;
    Ok(if blocking { timeout } else { Some(0.0) })
}

pub(crate) struct LockRef(pub(crate) Arc<LockCore>);

impl Referent for LockRef {
    fn call(&self, method: &str, args: &[u8]) -> FResult<Out> {
        let mut a = args_of(args)?;
        match method {
            "acquire" => ret(self.0.acquire(acquire_args(&mut a)?)?),
            "release" => {
                self.0.release()?;
                unit()
            }
            "locked" => ret(lock(&self.0.st).count > 0),
            _ => Err(Fail::not_exposed(method)),
        }
    }
    fn repr(&self) -> String {
        let g = lock(&self.0.st);
        let state = if g.count > 0 { "locked" } else { "unlocked" };
        if self.0.reentrant {
            format!("<RLock {state} count={}>", g.count)
        } else {
            format!("<Lock {state}>")
        }
    }
    fn get_value(&self) -> FResult<Vec<u8>> {
        super::builtins::encode_value(Value::Bool(lock(&self.0.st).count > 0))
    }
    fn methods(&self) -> &'static [&'static str] {
        &["acquire", "release", "locked"]
    }
    fn lock_core(&self) -> Option<Arc<LockCore>> {
        Some(self.0.clone())
    }
}

pub(crate) struct SemRef {
    st: Mutex<u64>,
    cv: Condvar,
    bound: Option<u64>,
}

impl SemRef {
    pub(crate) fn new(value: u64, bounded: bool) -> Self {
        SemRef {
            st: Mutex::new(value),
            cv: Condvar::new(),
            bound: bounded.then_some(value),
        }
    }
}

impl Referent for SemRef {
    fn call(&self, method: &str, args: &[u8]) -> FResult<Out> {
        let mut a = args_of(args)?;
        match method {
            "acquire" => {
                let t = acquire_args(&mut a)?;
                let (mut g, ok) = wait_until(lock(&self.st), &self.cv, deadline(t), |v| *v > 0)?;
                if ok {
                    *g -= 1;
                }
                ret(ok)
            }
            "release" => {
                let mut g = lock(&self.st);
                if self.bound.is_some_and(|b| *g >= b) {
                    return Err(Fail::new(
                        "InvalidState",
                        "semaphore or lock released too many times",
                    ));
                }
                *g += 1;
                self.cv.notify_one();
                unit()
            }
            "get_value" => ret(*lock(&self.st)),
            _ => Err(Fail::not_exposed(method)),
        }
    }
    fn repr(&self) -> String {
        let kind = if self.bound.is_some() {
            "BoundedSemaphore"
        } else {
            "Semaphore"
        };
        format!("<{kind}(value={})>", *lock(&self.st))
    }
    fn get_value(&self) -> FResult<Vec<u8>> {
        super::builtins::encode_value(Value::from(*lock(&self.st)))
    }
    fn methods(&self) -> &'static [&'static str] {
        &["acquire", "release", "get_value"]
    }
}

/// One waiter of a condition: set when notified.
struct Waiter {
    st: Mutex<bool>,
    cv: Condvar,
}

pub(crate) struct CondRef {
    lock: Arc<LockCore>,
    waiters: Mutex<VecDeque<Arc<Waiter>>>,
}

impl CondRef {
    pub(crate) fn new(lock: Arc<LockCore>) -> Self {
        CondRef {
            lock,
            waiters: Mutex::new(VecDeque::new()),
        }
    }

    fn wait(&self, timeout: Option<f64>) -> FResult<bool> {
        if !self.lock.owned() {
            return Err(Fail::new("InvalidState", "cannot wait on un-acquired lock"));
        }
        let w = Arc::new(Waiter {
            st: Mutex::new(false),
            cv: Condvar::new(),
        });
        lock(&self.waiters).push_back(w.clone());
        let saved = self.lock.release_save()?;
        let waited = wait_until(lock(&w.st), &w.cv, deadline(timeout), |s| *s);
        let notified = match &waited {
            Ok((_, ok)) => *ok,
            Err(_) => false,
        };
        drop(waited);
        if !notified {
            lock(&self.waiters).retain(|x| !Arc::ptr_eq(x, &w));
        }
        self.lock.acquire_restore(saved)?;
        Ok(notified || *lock(&w.st))
    }

    fn notify(&self, n: usize) -> FResult<()> {
        if !self.lock.owned() {
            return Err(Fail::new(
                "InvalidState",
                "cannot notify on un-acquired lock",
            ));
        }
        let mut ws = lock(&self.waiters);
        for _ in 0..n {
            let Some(w) = ws.pop_front() else { break };
            *lock(&w.st) = true;
            w.cv.notify_one();
        }
        Ok(())
    }
}

impl Referent for CondRef {
    fn call(&self, method: &str, args: &[u8]) -> FResult<Out> {
        let mut a = args_of(args)?;
        match method {
            "acquire" => ret(self.lock.acquire(acquire_args(&mut a)?)?),
            "release" => {
                self.lock.release()?;
                unit()
            }
            "wait" => ret(self.wait(opt_arg(&mut a, 0)?)?),
            "notify" => {
                let n: usize = opt_arg(&mut a, 0)?.unwrap_or(1);
                self.notify(n)?;
                unit()
            }
            "notify_all" => {
                self.notify(usize::MAX)?;
                unit()
            }
            _ => Err(Fail::not_exposed(method)),
        }
    }
    fn repr(&self) -> String {
        format!("<Condition({} waiters)>", lock(&self.waiters).len())
    }
    fn get_value(&self) -> FResult<Vec<u8>> {
        super::builtins::encode_value(Value::None)
    }
    fn methods(&self) -> &'static [&'static str] {
        &["acquire", "release", "wait", "notify", "notify_all"]
    }
}

pub(crate) struct EventRef {
    st: Mutex<bool>,
    cv: Condvar,
}

impl EventRef {
    pub(crate) fn new() -> Self {
        EventRef {
            st: Mutex::new(false),
            cv: Condvar::new(),
        }
    }
}

impl Referent for EventRef {
    fn call(&self, method: &str, args: &[u8]) -> FResult<Out> {
        let mut a = args_of(args)?;
        match method {
            "is_set" => ret(*lock(&self.st)),
            "set" => {
                *lock(&self.st) = true;
                self.cv.notify_all();
                unit()
            }
            "clear" => {
                *lock(&self.st) = false;
                unit()
            }
            "wait" => {
                let t: Option<f64> = opt_arg(&mut a, 0)?;
                let (g, ok) = wait_until(lock(&self.st), &self.cv, deadline(t), |s| *s)?;
                drop(g);
                ret(ok)
            }
            _ => Err(Fail::not_exposed(method)),
        }
    }
    fn repr(&self) -> String {
        format!("<Event {}>", if *lock(&self.st) { "set" } else { "unset" })
    }
    fn get_value(&self) -> FResult<Vec<u8>> {
        super::builtins::encode_value(Value::Bool(*lock(&self.st)))
    }
    fn methods(&self) -> &'static [&'static str] {
        &["is_set", "set", "clear", "wait"]
    }
}

/// CPython's `threading.Barrier` state: filling, draining (a round completed and its
/// waiters are leaving), resetting (a `reset` while parties waited: they leave with
/// `BrokenBarrier`), broken.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum BarrierState {
    Filling,
    Draining,
    Resetting,
    Broken,
}

struct BarrierSt {
    count: usize,
    state: BarrierState,
}

pub(crate) struct BarrierRef {
    parties: usize,
    timeout: Option<f64>,
    st: Mutex<BarrierSt>,
    cv: Condvar,
}

impl BarrierRef {
    pub(crate) fn new(parties: usize, timeout: Option<f64>) -> Self {
        BarrierRef {
            parties,
            timeout,
            st: Mutex::new(BarrierSt {
                count: 0,
                state: BarrierState::Filling,
            }),
            cv: Condvar::new(),
        }
    }

    /// `threading.Barrier.wait`, step for step: wait for the previous round to drain (or
    /// a reset to finish), arrive, then either release the round (the last party) or
    /// wait for it to be released, reset, aborted or to time out (which breaks it).
    fn wait(&self, timeout: Option<f64>) -> FResult<usize> {
        use BarrierState::*;
        let broken = || Fail::new("BrokenBarrier", "barrier is broken");
        let (mut g, _) = wait_until(lock(&self.st), &self.cv, None, |s| {
            !matches!(s.state, Draining | Resetting)
        })?;
        if g.state == Broken {
            return Err(broken());
        }
        let index = g.count;
        g.count += 1;
        let outcome = if index + 1 == self.parties {
            g.state = Draining;
            self.cv.notify_all();
            Ok(index)
        } else {
            let deadline = deadline(timeout.or(self.timeout));
            match wait_until(g, &self.cv, deadline, |s| s.state != Filling) {
                Ok((back, released)) => {
                    g = back;
                    if !released {
                        g.state = Broken;
                        self.cv.notify_all();
                    }
                    if matches!(g.state, Broken | Resetting) {
                        Err(broken())
                    } else {
                        Ok(index)
                    }
                }
                Err(f) => return Err(f),
            }
        };
        // leaving: the last one out of a drained or reset round reopens the barrier
        g.count -= 1;
        if g.count == 0 && matches!(g.state, Draining | Resetting) {
            g.state = Filling;
            self.cv.notify_all();
        }
        outcome
    }

    fn reset(&self) {
        use BarrierState::*;
        let mut g = lock(&self.st);
        if g.count > 0 {
            if matches!(g.state, Filling | Broken) {
                g.state = Resetting;
            }
        } else {
            g.state = Filling;
        }
        self.cv.notify_all();
    }
}

impl Referent for BarrierRef {
    fn call(&self, method: &str, args: &[u8]) -> FResult<Out> {
        let mut a = args_of(args)?;
        match method {
            "wait" => ret(self.wait(opt_arg(&mut a, 0)?)? as u64),
            "reset" => {
                self.reset();
                unit()
            }
            "abort" => {
                lock(&self.st).state = BarrierState::Broken;
                self.cv.notify_all();
                unit()
            }
            "parties" => ret(self.parties as u64),
            "n_waiting" => {
                let g = lock(&self.st);
                ret(if g.state == BarrierState::Filling {
                    g.count as u64
                } else {
                    0
                })
            }
            "broken" => ret(lock(&self.st).state == BarrierState::Broken),
            _ => Err(Fail::not_exposed(method)),
        }
    }
    fn repr(&self) -> String {
        let g = lock(&self.st);
        format!(
            "<Barrier parties={} waiting={} broken={}>",
            self.parties,
            g.count,
            g.state == BarrierState::Broken
        )
    }
    fn get_value(&self) -> FResult<Vec<u8>> {
        super::builtins::encode_value(Value::None)
    }
    fn methods(&self) -> &'static [&'static str] {
        &["wait", "reset", "abort", "parties", "n_waiting", "broken"]
    }
}

/// Builds a `Condition`'s referent from its arguments (an optional lock proxy).
pub(crate) fn new_condition(a: &mut [Value]) -> FResult<CondRef> {
    let lock_core = match a.first() {
        Some(Value::Proxy(t)) => super::server::referent_of(t)
            .and_then(|r| r.lock_core())
            .ok_or_else(|| Fail::new("TypeError", "a Condition needs a Lock or RLock proxy"))?,
        _ => LockCore::new(true),
    };
    Ok(CondRef::new(lock_core))
}

// ---------------------------------------------------------------------------------
// client side

/// The guard of a lock proxy's [`lock`](LockProxy::lock): releases on drop (Python's
/// `with proxy:`).
#[must_use = "the lock is released when the guard drops"]
pub struct ProxyGuard<'a> {
    base: &'a BaseProxy,
}

impl Drop for ProxyGuard<'_> {
    fn drop(&mut self) {
        let _ = self.base.call_values("release", Vec::new());
    }
}

impl fmt::Debug for ProxyGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ProxyGuard")
    }
}

fn call<R: DeserializeOwned + 'static>(b: &BaseProxy, m: &str, args: Vec<Value>) -> Result<R> {
    super::value::from_value(b.call_values(m, args)?)
}

macro_rules! acquirer_methods {
    () => {
        /// `acquire()`: blocks until acquired; `Ok(true)`.
        pub fn acquire(&self) -> Result<bool> {
            call(&self.base, "acquire", vec![Value::Bool(true)])
        }
        /// `acquire(blocking=False)`.
        pub fn try_acquire(&self) -> Result<bool> {
            call(&self.base, "acquire", vec![Value::Bool(false)])
        }
        /// `acquire(timeout=t)`: `Ok(false)` when it timed out.
        pub fn acquire_timeout(&self, timeout: Duration) -> Result<bool> {
            call(
                &self.base,
                "acquire",
                vec![Value::Bool(true), secs(Some(timeout))],
            )
        }
        /// `release()`: releasing an unlocked lock is [`Error::InvalidState`](crate::Error::InvalidState).
        pub fn release(&self) -> Result<()> {
            call(&self.base, "release", Vec::new())
        }
        /// `with proxy:`: acquires and returns a guard that releases on drop.
        pub fn lock(&self) -> Result<ProxyGuard<'_>> {
            self.acquire()?;
            Ok(ProxyGuard { base: &self.base })
        }
    };
}

macro_rules! sync_proxy {
    ($(#[$doc:meta])* $name:ident, $py:literal) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name {
            base: BaseProxy,
        }
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                self.base.serialize(s)
            }
        }
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                Ok($name { base: BaseProxy::deserialize_as(d, Encoding::Dynamic)? })
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.base.fmt_debug($py, f)
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.base.fmt_display(f)
            }
        }
        impl Proxy for $name {
            const ENCODING: Encoding = Encoding::Dynamic;
            fn from_base(base: BaseProxy) -> Self {
                $name { base }
            }
            fn base(&self) -> &BaseProxy {
                &self.base
            }
        }
        impl $name {
            /// Python's `_callmethod(name, args)`.
            pub fn call_method<R: DeserializeOwned + 'static>(
                &self,
                name: &str,
                args: impl Serialize,
            ) -> Result<R> {
                self.base.call_method(name, args)
            }
        }
    };
}

sync_proxy!(
    /// A proxy to a manager's `threading.Lock` (Python's `AcquirerProxy`), made by
    /// [`SyncManager::lock`](super::SyncManager::lock). Any thread or process may
    /// release it.
    ///
    /// ```
    /// # mp::test_support!();
    /// # fn main() -> mp::Result<()> {
    /// let m = mp::Manager::new()?;
    /// let l = m.lock()?;
    /// assert!(l.acquire()?);
    /// assert!(!l.try_acquire()?);
    /// l.release()?;
    /// assert!(l.release().is_err());
    /// # Ok(()) }
    /// ```
    LockProxy,
    "LockProxy"
);
impl LockProxy {
    acquirer_methods!();
    /// `locked()` (Python 3.14): whether some client holds the lock.
    pub fn locked(&self) -> Result<bool> {
        call(&self.base, "locked", Vec::new())
    }
    /// A copy of the lock's state: `true` when it is held.
    pub fn get_value(&self) -> Result<bool> {
        self.base.get_value()
    }
}

sync_proxy!(
    /// A proxy to a manager's `threading.RLock` (Python's `AcquirerProxy`): owned by the
    /// client thread that acquired it, re-entrant.
    RLockProxy,
    "RLockProxy"
);
impl RLockProxy {
    acquirer_methods!();
    /// `locked()` (Python 3.14): whether some client holds the lock.
    pub fn locked(&self) -> Result<bool> {
        call(&self.base, "locked", Vec::new())
    }
    /// A copy of the lock's state: `true` when it is held.
    pub fn get_value(&self) -> Result<bool> {
        self.base.get_value()
    }
}

sync_proxy!(
    /// A proxy to a manager's `threading.Semaphore` or `BoundedSemaphore` (Python's
    /// `AcquirerProxy`).
    SemaphoreProxy,
    "SemaphoreProxy"
);
impl SemaphoreProxy {
    acquirer_methods!();
    /// The semaphore's current value (also Python's `_getvalue()` here).
    pub fn get_value(&self) -> Result<u32> {
        call(&self.base, "get_value", Vec::new())
    }
}

sync_proxy!(
    /// A proxy to a manager's `threading.Condition` (Python's `ConditionProxy`).
    ///
    /// ```
    /// # mp::test_support!();
    /// # fn main() -> mp::Result<()> {
    /// use std::time::Duration;
    /// let m = mp::Manager::new()?;
    /// let c = m.condition(None)?;
    /// let _g = c.lock()?;
    /// assert!(!c.wait(Some(Duration::from_millis(10)))?);
    /// # Ok(()) }
    /// ```
    ConditionProxy,
    "ConditionProxy"
);
impl ConditionProxy {
    acquirer_methods!();
    /// `wait(timeout)`, called while holding the lock: `Ok(false)` when it timed out.
    pub fn wait(&self, timeout: Option<Duration>) -> Result<bool> {
        call(&self.base, "wait", vec![secs(timeout)])
    }
    /// `wait_for(predicate, timeout)`: waits until `predicate()` holds (evaluated here,
    /// with the lock held); its last value.
    pub fn wait_for(
        &self,
        mut predicate: impl FnMut() -> bool,
        timeout: Option<Duration>,
    ) -> Result<bool> {
        // a timeout past what an Instant can hold waits forever
        let end = timeout.and_then(|t| Instant::now().checked_add(t));
        let mut result = predicate();
        while !result {
            let left = match end {
                Some(e) => {
                    let now = Instant::now();
                    if now >= e {
                        break;
                    }
                    Some(e - now)
                }
                None => None,
            };
            self.wait(left)?;
            result = predicate();
        }
        Ok(result)
    }
    /// `notify(n)`.
    pub fn notify(&self, n: usize) -> Result<()> {
        call(&self.base, "notify", vec![Value::from(n)])
    }
    /// `notify_all()`.
    pub fn notify_all(&self) -> Result<()> {
        call(&self.base, "notify_all", Vec::new())
    }
    /// Python's `_getvalue()`: a condition has no state to copy (`Value::None`).
    pub fn get_value(&self) -> Result<Value> {
        self.base.get_value()
    }
}

sync_proxy!(
    /// A proxy to a manager's `threading.Event` (Python's `EventProxy`).
    EventProxy,
    "EventProxy"
);
impl EventProxy {
    /// `is_set()`.
    pub fn is_set(&self) -> Result<bool> {
        call(&self.base, "is_set", Vec::new())
    }
    /// `set()`.
    pub fn set(&self) -> Result<()> {
        call(&self.base, "set", Vec::new())
    }
    /// `clear()`.
    pub fn clear(&self) -> Result<()> {
        call(&self.base, "clear", Vec::new())
    }
    /// `wait(timeout)`: `Ok(false)` when it timed out.
    pub fn wait(&self, timeout: Option<Duration>) -> Result<bool> {
        call(&self.base, "wait", vec![secs(timeout)])
    }
    /// A copy of the flag.
    pub fn get_value(&self) -> Result<bool> {
        self.base.get_value()
    }
}

sync_proxy!(
    /// A proxy to a manager's `threading.Barrier` (Python's `BarrierProxy`).
    BarrierProxy,
    "BarrierProxy"
);
impl BarrierProxy {
    /// `wait()`: the arrival index; [`Error::BrokenBarrier`](crate::Error::BrokenBarrier)
    /// when broken.
    pub fn wait(&self) -> Result<usize> {
        call(&self.base, "wait", Vec::new())
    }
    /// `wait(timeout)`: a timeout breaks the barrier.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<usize> {
        call(&self.base, "wait", vec![secs(Some(timeout))])
    }
    /// `reset()`.
    pub fn reset(&self) -> Result<()> {
        call(&self.base, "reset", Vec::new())
    }
    /// `abort()`.
    pub fn abort(&self) -> Result<()> {
        call(&self.base, "abort", Vec::new())
    }
    /// `parties`.
    pub fn parties(&self) -> Result<usize> {
        call(&self.base, "parties", Vec::new())
    }
    /// `n_waiting`.
    pub fn n_waiting(&self) -> Result<usize> {
        call(&self.base, "n_waiting", Vec::new())
    }
    /// `broken`.
    pub fn broken(&self) -> Result<bool> {
        call(&self.base, "broken", Vec::new())
    }
    /// Python's `_getvalue()`: a barrier has no state to copy (`Value::None`).
    pub fn get_value(&self) -> Result<Value> {
        self.base.get_value()
    }
}

/// A lock proxy a [`ConditionProxy`] can be built on
/// ([`SyncManager::condition`](super::SyncManager::condition)).
#[derive(Clone, Debug)]
pub enum AnyLockProxy {
    /// A `Lock`.
    Lock(LockProxy),
    /// An `RLock`.
    RLock(RLockProxy),
}

impl From<LockProxy> for AnyLockProxy {
    fn from(l: LockProxy) -> Self {
        AnyLockProxy::Lock(l)
    }
}

impl From<RLockProxy> for AnyLockProxy {
    fn from(l: RLockProxy) -> Self {
        AnyLockProxy::RLock(l)
    }
}

impl AnyLockProxy {
    pub(crate) fn base(&self) -> &BaseProxy {
        match self {
            AnyLockProxy::Lock(l) => &l.base,
            AnyLockProxy::RLock(l) => &l.base,
        }
    }
}
