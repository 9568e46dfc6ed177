//! The parent's side of a job: [`AsyncResult`] (CPython's `ApplyResult`/`MapResult`) and
//! the `imap` iterators (`IMapIterator`/`IMapUnorderedIterator`), shared by the process
//! [`Pool`](super::Pool) and the [`ThreadPool`](super::ThreadPool).
//!
//! A job receives its results in pieces (one per chunk, each a run of per-item
//! outcomes) through the [`Sink`] trait; the pool's result-handling thread delivers them
//! and runs the callbacks, so a callback has always run before `get()` returns.

use crate::error::{Error, Result};
pub(crate) use crate::util::lock;
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A copy of `e` for the second and later items a single failure hits (a chunk whose
/// worker died fails every item of it). `Error` is not `Clone` because of `Io`.
pub(crate) fn copy_error(e: &Error) -> Error {
    match e {
        Error::Timeout => Error::Timeout,
        Error::Empty => Error::Empty,
        Error::Full => Error::Full,
        Error::Eof => Error::Eof,
        Error::BufferTooShort { message } => Error::BufferTooShort {
            message: message.clone(),
        },
        Error::Authentication(m) => Error::Authentication(m.clone()),
        Error::Remote {
            kind,
            message,
            traceback,
        } => Error::Remote {
            kind: kind.clone(),
            message: message.clone(),
            traceback: traceback.clone(),
        },
        Error::TaskPanicked {
            task,
            message,
            backtrace,
        } => Error::TaskPanicked {
            task: task.clone(),
            message: message.clone(),
            backtrace: backtrace.clone(),
        },
        Error::WorkerDied { pid, exitcode } => Error::WorkerDied {
            pid: *pid,
            exitcode: *exitcode,
        },
        Error::BrokenBarrier => Error::BrokenBarrier,
        Error::NotRegistered { name } => Error::NotRegistered { name: name.clone() },
        Error::NotExposed { method } => Error::NotExposed {
            method: method.clone(),
        },
        Error::InvalidState(m) => Error::InvalidState(m.clone()),
        Error::MessageTooLarge { len, max } => Error::MessageTooLarge {
            len: *len,
            max: *max,
        },
        Error::Codec(m) => Error::Codec(m.clone()),
        Error::Io(io) => Error::Io(std::io::Error::new(io.kind(), io.to_string())),
        // variants added later travel as their name and message
        #[allow(unreachable_patterns)]
        other => Error::Remote {
            kind: other.variant_name().to_string(),
            message: other.to_string(),
            traceback: String::new(),
        },
    }
}

/// Where a job's results go: `start` is the index of the first item of the piece.
pub(crate) trait Sink<R>: Send + Sync {
    /// Delivers the outcomes of items `start..start + outcomes.len()`.
    fn deliver(&self, start: usize, outcomes: Vec<Result<R>>);
    /// Delivers a chunk as it came from a worker: `values` are the successful items in
    /// order, `errors` the failed ones by index (sorted) within the chunk.
    fn deliver_chunk(&self, start: usize, values: Vec<R>, errors: Vec<(usize, Error)>) {
        let mut out = Vec::with_capacity(values.len() + errors.len());
        let mut errors = errors.into_iter().peekable();
        for v in values {
            while let Some((_, e)) = errors.next_if(|(i, _)| *i == out.len()) {
                out.push(Err(e));
            }
            out.push(Ok(v));
        }
        out.extend(errors.map(|(_, e)| Err(e)));
        self.deliver(start, out);
    }
    /// The input has `total` items (known once the input iterator is exhausted).
    fn set_total(&self, total: usize);
    /// Every item not delivered yet fails with `err` (pool terminated, input failed).
    fn fail_rest(&self, err: &Error);
    /// The consumer went away: results are no longer wanted.
    fn cancelled(&self) -> bool {
        false
    }
}

// ---------------------------------------------------------------------------------
// AsyncResult

enum Slot<R> {
    Pending,
    Ready(Result<R>),
    /// `get` has moved the value out; `ok` remembers whether it was a success.
    Taken {
        ok: bool,
    },
}

/// A success callback (Python's `callback=`).
pub(crate) type Callback<R> = Box<dyn FnOnce(&R) + Send>;
/// An error callback (Python's `error_callback=`).
pub(crate) type ErrorCallback = Box<dyn FnOnce(&Error) + Send>;
type Callbacks<R> = (Option<Callback<R>>, Option<ErrorCallback>);

struct Shared<R> {
    slot: Mutex<Slot<R>>,
    ready: Condvar,
    callbacks: Mutex<Option<Callbacks<R>>>,
}

impl<R> Shared<R> {
    fn complete(&self, value: Result<R>) {
        // Python runs the callback before the result becomes ready (`_set`).
        if let Some((cb, ecb)) = lock(&self.callbacks).take() {
            match &value {
                Ok(v) => {
                    if let Some(cb) = cb {
                        run_callback(|| cb(v));
                    }
                }
                Err(e) => {
                    if let Some(ecb) = ecb {
                        run_callback(|| ecb(e));
                    }
                }
            }
        }
        let mut s = lock(&self.slot);
        if matches!(*s, Slot::Pending) {
            *s = Slot::Ready(value);
        }
        drop(s);
        self.ready.notify_all();
    }
}

/// A panicking callback must not take the result thread (and with it the pool) down.
fn run_callback(f: impl FnOnce()) {
    if let Err(p) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        let msg = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        log::error!("a pool callback panicked: {msg}");
    }
}

/// The result of an `*_async` call (Python's `AsyncResult`).
///
/// ```
/// # mp::test_support!();
/// #[mp::task]
/// fn square(x: u64) -> u64 { x * x }
///
/// # fn main() -> mp::Result<()> {
/// let pool = mp::Pool::new(Some(2))?;
/// let r = pool.apply_async(square, (7,));
/// assert_eq!(r.get()?, 49);
/// assert!(r.ready());
/// assert!(r.successful()?);
/// # Ok(()) }
/// ```
pub struct AsyncResult<R> {
    shared: Arc<Shared<R>>,
}

impl<R> Clone for AsyncResult<R> {
    fn clone(&self) -> Self {
        AsyncResult {
            shared: self.shared.clone(),
        }
    }
}

impl<R> fmt::Debug for AsyncResult<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &*lock(&self.shared.slot) {
            Slot::Pending => "pending",
            Slot::Ready(Ok(_)) | Slot::Taken { ok: true } => "successful",
            _ => "failed",
        };
        write!(f, "<AsyncResult {state}>")
    }
}

impl<R: Send + 'static> AsyncResult<R> {
    pub(crate) fn new(
        callback: Option<Callback<R>>,
        error_callback: Option<ErrorCallback>,
    ) -> Self {
        AsyncResult {
            shared: Arc::new(Shared {
                slot: Mutex::new(Slot::Pending),
                ready: Condvar::new(),
                callbacks: Mutex::new(Some((callback, error_callback))),
            }),
        }
    }

    /// Completes the result (callbacks first).
    pub(crate) fn complete(&self, value: Result<R>) {
        self.shared.complete(value)
    }
}

impl<R> AsyncResult<R> {
    fn wait_until(&self, deadline: Option<Instant>) -> MutexGuard<'_, Slot<R>> {
        let mut s = lock(&self.shared.slot);
        while matches!(*s, Slot::Pending) {
            match deadline {
                None => s = self.shared.ready.wait(s).unwrap_or_else(|p| p.into_inner()),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        break;
                    }
                    s = self
                        .shared
                        .ready
                        .wait_timeout(s, d - now)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
            }
        }
        s
    }

    fn take(mut s: MutexGuard<'_, Slot<R>>) -> Result<R> {
        match std::mem::replace(&mut *s, Slot::Pending) {
            Slot::Pending => Err(Error::Timeout),
            // an error stays: every later `get` raises it again, as in Python
            Slot::Ready(Err(e)) => {
                let again = copy_error(&e);
                *s = Slot::Ready(Err(e));
                Err(again)
            }
            Slot::Ready(v) => {
                *s = Slot::Taken { ok: v.is_ok() };
                v
            }
            Slot::Taken { ok } => {
                *s = Slot::Taken { ok };
                Err(Error::invalid(
                    "AsyncResult::get: the value was already taken by an earlier get()",
                ))
            }
        }
    }

    /// `get()`: waits for the result and moves it out (the task's error if it failed).
    /// A second `get` after a successful one is [`Error::InvalidState`]: the value
    /// has moved to the first caller (`R` need not be `Clone`). A failed result
    /// returns its error (a copy) on every `get`, as Python re-raises it.
    pub fn get(&self) -> Result<R> {
        Self::take(self.wait_until(None))
    }

    /// `get(timeout)`: as [`get`](Self::get), or [`Error::Timeout`] if the result is not
    /// ready within `timeout`; the result can still be obtained later.
    pub fn get_timeout(&self, timeout: Duration) -> Result<R> {
        Self::take(self.wait_until(Instant::now().checked_add(timeout)))
    }

    /// `wait()`: blocks until the result is ready.
    pub fn wait(&self) {
        drop(self.wait_until(None));
    }

    /// `wait(timeout)`: blocks at most `timeout`; whether the result is ready.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        !matches!(
            *self.wait_until(Instant::now().checked_add(timeout)),
            Slot::Pending
        )
    }

    /// `ready()`: whether the call has completed.
    pub fn ready(&self) -> bool {
        !matches!(*lock(&self.shared.slot), Slot::Pending)
    }

    /// `successful()`: whether the call completed without error;
    /// [`Error::InvalidState`] if it is not ready yet (Python's `ValueError`).
    pub fn successful(&self) -> Result<bool> {
        match &*lock(&self.shared.slot) {
            Slot::Pending => Err(Error::invalid("the AsyncResult is not ready")),
            Slot::Ready(v) => Ok(v.is_ok()),
            Slot::Taken { ok } => Ok(*ok),
        }
    }
}

/// One item's result completes an `apply_async`.
pub(crate) struct ApplySink<R>(pub AsyncResult<R>);

impl<R: Send + 'static> Sink<R> for ApplySink<R> {
    fn deliver(&self, _start: usize, outcomes: Vec<Result<R>>) {
        let v = outcomes
            .into_iter()
            .next()
            .unwrap_or_else(|| Err(Error::invalid("no result for the task")));
        self.0.complete(v);
    }
    fn set_total(&self, _total: usize) {}
    fn fail_rest(&self, err: &Error) {
        if !self.0.ready() {
            self.0.complete(Err(copy_error(err)));
        }
    }
}

/// Collects a `map_async`'s items in order; the first error fails the whole map.
pub(crate) struct MapSink<R> {
    result: AsyncResult<Vec<R>>,
    state: Mutex<MapState<R>>,
}

struct MapState<R> {
    /// Delivered runs of successful items: (first index, values).
    chunks: Vec<(usize, Vec<R>)>,
    total: usize,
    left: usize,
    error: Option<Error>,
    done: bool,
}

impl<R: Send + 'static> MapSink<R> {
    pub(crate) fn new(total: usize, result: AsyncResult<Vec<R>>) -> Self {
        let s = MapSink {
            result,
            state: Mutex::new(MapState {
                chunks: Vec::new(),
                total,
                left: total,
                error: None,
                done: false,
            }),
        };
        if total == 0 {
            s.finish(&mut lock(&s.state));
        }
        s
    }

    fn finish(&self, st: &mut MapState<R>) {
        if st.done {
            return;
        }
        st.done = true;
        let v = match st.error.take() {
            Some(e) => Err(e),
            None => {
                let mut chunks = std::mem::take(&mut st.chunks);
                chunks.sort_unstable_by_key(|(start, _)| *start);
                let mut all = Vec::with_capacity(st.total);
                for (_, values) in chunks {
                    all.extend(values);
                }
                Ok(all)
            }
        };
        self.result.complete(v);
    }

    /// A run of `values.len() + failed` items from `start` on: the successful values
    /// and how many failed (the first failure's error). As CPython's `MapResult`, a
    /// failed map keeps its first error but is only ready once every item is done, so
    /// no task of it still runs when `get` returns (bpo-23992, `test_map_no_failfast`).
    fn accept(&self, start: usize, values: Vec<R>, failed: usize, first_error: Option<Error>) {
        let mut st = lock(&self.state);
        if st.done {
            return;
        }
        // a chunk is delivered once: the supervisor forgets a chunk when it hands it on
        let n = values.len() + failed;
        if n > st.left {
            st.error
                .get_or_insert_with(|| Error::invalid("a map received more results than items"));
            self.finish(&mut st);
            return;
        }
        st.left -= n;
        if let Some(e) = first_error {
            if st.error.is_none() {
                st.error = Some(e);
                // the values are no longer wanted
                st.chunks = Vec::new();
            }
        } else if st.error.is_none() {
            st.chunks.push((start, values));
        }
        if st.left == 0 {
            self.finish(&mut st);
        }
    }
}

impl<R: Send + 'static> Sink<R> for MapSink<R> {
    fn deliver(&self, start: usize, outcomes: Vec<Result<R>>) {
        let mut values = Vec::with_capacity(outcomes.len());
        let mut failed = 0;
        let mut first = None;
        for o in outcomes {
            match o {
                Ok(v) => values.push(v),
                Err(e) => {
                    failed += 1;
                    first.get_or_insert(e);
                }
            }
        }
        self.accept(start, values, failed, first);
    }
    fn deliver_chunk(&self, start: usize, values: Vec<R>, errors: Vec<(usize, Error)>) {
        let failed = errors.len();
        self.accept(
            start,
            values,
            failed,
            errors.into_iter().next().map(|(_, e)| e),
        );
    }
    fn set_total(&self, _total: usize) {}
    fn fail_rest(&self, err: &Error) {
        let mut st = lock(&self.state);
        if !st.done {
            st.error.get_or_insert_with(|| copy_error(err));
            self.finish(&mut st);
        }
    }
}

// ---------------------------------------------------------------------------------
// imap iterators

struct ImapState<R> {
    /// Ordered: results by index; unordered: arrival order (keys are a counter).
    ready: BTreeMap<usize, Result<R>>,
    unordered_queue: VecDeque<Result<R>>,
    /// The next index to yield (ordered) or the number yielded (unordered).
    next: usize,
    total: Option<usize>,
    /// The feeder sleeps until `next` reaches this (room for half a window at once).
    resume_at: Option<usize>,
    /// The consumer sleeps on `cv` (so a delivery must wake it).
    consumer_waiting: bool,
}

pub(crate) struct ImapShared<R> {
    state: Mutex<ImapState<R>>,
    cv: Condvar,
    ordered: bool,
    cancelled: AtomicBool,
    /// Wakes the feeder when the consumer made room (bounded look-ahead).
    pub(crate) room: Condvar,
}

impl<R> ImapShared<R> {
    pub(crate) fn new(ordered: bool) -> Arc<Self> {
        Arc::new(ImapShared {
            state: Mutex::new(ImapState {
                ready: BTreeMap::new(),
                unordered_queue: VecDeque::new(),
                next: 0,
                total: None,
                resume_at: None,
                consumer_waiting: false,
            }),
            cv: Condvar::new(),
            ordered,
            cancelled: AtomicBool::new(false),
            room: Condvar::new(),
        })
    }

    /// Blocks the feeder until fewer than `limit` items are outstanding past the
    /// consumer (or the consumer went away). Returns false when cancelled.
    pub(crate) fn wait_for_room(&self, submitted: usize, limit: usize) -> bool {
        let mut st = lock(&self.state);
        loop {
            if self.cancelled.load(Ordering::Acquire) {
                return false;
            }
            if submitted < st.next + limit {
                return true;
            }
            // wake up once half the window is free, not for every item consumed
            st.resume_at = Some((submitted + 1 + limit / 2).saturating_sub(limit));
            st = self
                .room
                .wait_timeout(st, Duration::from_millis(200))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

impl<R: Send> Sink<R> for ImapShared<R> {
    fn deliver(&self, start: usize, outcomes: Vec<Result<R>>) {
        if self.cancelled.load(Ordering::Acquire) {
            return;
        }
        let mut st = lock(&self.state);
        for (i, o) in outcomes.into_iter().enumerate() {
            if self.ordered {
                st.ready.insert(start + i, o);
            } else {
                st.unordered_queue.push_back(o);
            }
        }
        let wake = st.consumer_waiting;
        drop(st);
        if wake {
            self.cv.notify_all();
        }
    }
    fn set_total(&self, total: usize) {
        lock(&self.state).total = Some(total);
        self.cv.notify_all();
    }
    fn fail_rest(&self, err: &Error) {
        // nothing more will be delivered; a feeder waiting for room gives up
        self.cancelled.store(true, Ordering::Release);
        self.room.notify_all();
        let mut st = lock(&self.state);
        let total = match st.total {
            Some(t) => t,
            None => {
                // input not exhausted: end the iteration after one error
                let n = if self.ordered {
                    let hi = st.ready.keys().next_back().map_or(st.next, |k| k + 1);
                    hi.max(st.next) + 1
                } else {
                    st.next + st.unordered_queue.len() + 1
                };
                st.total = Some(n);
                n
            }
        };
        if self.ordered {
            for i in st.next..total {
                st.ready.entry(i).or_insert_with(|| Err(copy_error(err)));
            }
        } else {
            let have = st.next + st.unordered_queue.len();
            for _ in have..total {
                st.unordered_queue.push_back(Err(copy_error(err)));
            }
        }
        drop(st);
        self.cv.notify_all();
    }
    fn cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }
}

/// The iterator `imap`/`imap_unordered` return (Python's `IMapIterator`): each item is
/// the task's result or its error; a failed item does not end the iteration.
///
/// Dropping it before the end cancels the rest of the input: no more items are pulled.
pub struct ImapIter<R> {
    shared: Arc<ImapShared<R>>,
}

impl<R> fmt::Debug for ImapIter<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = lock(&self.shared.state);
        write!(
            f,
            "<{} yielded={} total={:?}>",
            if self.shared.ordered {
                "IMapIterator"
            } else {
                "IMapUnorderedIterator"
            },
            st.next,
            st.total
        )
    }
}

impl<R> ImapIter<R> {
    pub(crate) fn new(shared: Arc<ImapShared<R>>) -> Self {
        ImapIter { shared }
    }

    fn next_until(&mut self, deadline: Option<Instant>) -> Option<Result<R>> {
        let sh = &self.shared;
        let mut st = lock(&sh.state);
        loop {
            let item = if sh.ordered {
                let n = st.next;
                st.ready.remove(&n)
            } else {
                st.unordered_queue.pop_front()
            };
            if let Some(v) = item {
                st.next += 1;
                let wake_feeder = st.resume_at.is_some_and(|r| st.next >= r);
                if wake_feeder {
                    st.resume_at = None;
                }
                drop(st);
                if wake_feeder {
                    sh.room.notify_all();
                }
                return Some(v);
            }
            if st.total.is_some_and(|t| st.next >= t) {
                return None;
            }
            st.consumer_waiting = true;
            match deadline {
                None => st = sh.cv.wait(st).unwrap_or_else(|p| p.into_inner()),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        st.consumer_waiting = false;
                        return Some(Err(Error::Timeout));
                    }
                    st = sh
                        .cv
                        .wait_timeout(st, d - now)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
            }
            st.consumer_waiting = false;
        }
    }

    /// `next(timeout)`: the next result, waiting at most `timeout`:
    /// `Some(Err(Error::Timeout))` if it is not ready (the item is not skipped: a later
    /// call still returns it), `None` at the end.
    pub fn next_timeout(&mut self, timeout: Duration) -> Option<Result<R>> {
        self.next_until(Instant::now().checked_add(timeout))
    }
}

impl<R> Iterator for ImapIter<R> {
    type Item = Result<R>;
    fn next(&mut self) -> Option<Result<R>> {
        self.next_until(None)
    }
}

impl<R> Drop for ImapIter<R> {
    fn drop(&mut self) {
        self.shared.cancelled.store(true, Ordering::Release);
        self.shared.room.notify_all();
    }
}
