//! `mp::dummy` (CPython's `multiprocessing.dummy`): the API of `mp` backed by threads,
//! so code switches between processes and threads by changing one `use`.
//!
//! Here tasks may be closures and values need not be serializable:
//!
//! ```
//! use mp::dummy::{Pool, Process, Queue};
//!
//! let q = Queue::new().unwrap();
//! let q2 = q.clone();
//! let p = Process::new(move |x: i32| q2.put(x * 2).unwrap(), (21,));
//! p.start().unwrap();
//! p.join().unwrap();
//! assert_eq!(q.get().unwrap(), 42);
//!
//! let pool = Pool::new(Some(2)).unwrap();
//! assert_eq!(pool.map(|x: i32| x * x, 0..4).unwrap(), [0, 1, 4, 9]);
//! ```
//!
//! The synchronization primitives are `mp`'s own (they work between threads as between
//! processes); [`Pipe`] is too.

use crate::error::{Error, Result};
use crate::pool::ThreadTask;
use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub use crate::connection::{pipe, Connection, Pipe};
pub use crate::pool::ThreadPool as Pool;
pub use crate::process::cpu_count;
pub use crate::spawn::freeze_support;
pub use crate::synchronize::{
    AnyLock, Barrier, BoundedSemaphore, Condition, Event, Lock, RLock, Semaphore,
};
use crate::util::lock;

// ---------------------------------------------------------------------------------
// Process

struct ProcInner {
    name: Mutex<String>,
    daemon: AtomicBool,
    target: Mutex<Option<Box<dyn FnOnce() + Send>>>,
    handle: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// `None` while running or before start; 0 after a normal end, 1 after a panic.
    exitcode: Mutex<Option<i32>>,
    done: Condvar,
    started: AtomicBool,
}

/// A thread with the [`Process`](crate::Process) API (Python's
/// `multiprocessing.dummy.Process`, a `threading.Thread`).
#[derive(Clone)]
pub struct Process {
    inner: Arc<ProcInner>,
}

static THREADS: AtomicU32 = AtomicU32::new(0);
static LIVE: Mutex<Vec<Process>> = Mutex::new(Vec::new());

impl fmt::Debug for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match (self.inner.started.load(Ordering::Acquire), self.exitcode()) {
            (false, _) => "initial".to_string(),
            (true, None) => "started".to_string(),
            (true, Some(c)) => format!("stopped exitcode={c}"),
        };
        write!(f, "<DummyProcess({}, {state})>", self.name())
    }
}

impl PartialEq for Process {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl Process {
    /// `Process(target=f, args=args)`: `f` is any function or closure.
    pub fn new<F, Args>(f: F, args: Args) -> Self
    where
        F: ThreadTask<Args>,
        Args: Send + 'static,
    {
        let n = THREADS.fetch_add(1, Ordering::Relaxed) + 1;
        Process {
            inner: Arc::new(ProcInner {
                name: Mutex::new(format!("Thread-{n}")),
                daemon: AtomicBool::new(false),
                target: Mutex::new(Some(Box::new(move || {
                    let _ = f.call(args);
                }))),
                handle: Mutex::new(None),
                exitcode: Mutex::new(None),
                done: Condvar::new(),
                started: AtomicBool::new(false),
            }),
        }
    }

    /// Sets the name.
    pub fn with_name(self, name: impl Into<String>) -> Self {
        *lock(&self.inner.name) = name.into();
        self
    }

    /// Sets the daemon flag (kept for the API; a thread does not outlive the program).
    pub fn with_daemon(self, daemon: bool) -> Self {
        self.inner.daemon.store(daemon, Ordering::Relaxed);
        self
    }

    /// `start()`: at most once.
    pub fn start(&self) -> Result<()> {
        let target = lock(&self.inner.target)
            .take()
            .ok_or_else(|| Error::invalid("threads can only be started once"))?;
        self.inner.started.store(true, Ordering::Release);
        let inner = self.inner.clone();
        let handle = std::thread::Builder::new()
            .name(self.name())
            .spawn(move || {
                let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(target)).is_ok();
                *lock(&inner.exitcode) = Some(if ok { 0 } else { 1 });
                inner.done.notify_all();
            })?;
        *lock(&self.inner.handle) = Some(handle);
        lock(&LIVE).push(self.clone());
        Ok(())
    }

    /// `join()`.
    pub fn join(&self) -> Result<()> {
        if !self.inner.started.load(Ordering::Acquire) {
            return Err(Error::invalid("cannot join thread before it is started"));
        }
        if let Some(h) = lock(&self.inner.handle).take() {
            let _ = h.join();
        }
        let mut code = lock(&self.inner.exitcode);
        while code.is_none() {
            code = self
                .inner
                .done
                .wait(code)
                .unwrap_or_else(|p| p.into_inner());
        }
        Ok(())
    }

    /// `join(timeout)`: returns after the timeout too.
    pub fn join_timeout(&self, timeout: Duration) -> Result<()> {
        if !self.inner.started.load(Ordering::Acquire) {
            return Err(Error::invalid("cannot join thread before it is started"));
        }
        // a timeout past what an Instant can hold waits forever
        let deadline = Instant::now().checked_add(timeout);
        let mut code = lock(&self.inner.exitcode);
        while code.is_none() {
            let now = Instant::now();
            let left = match deadline {
                Some(d) if now >= d => return Ok(()),
                Some(d) => d - now,
                None => Duration::from_secs(3600),
            };
            code = self
                .inner
                .done
                .wait_timeout(code, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        drop(code);
        if let Some(h) = lock(&self.inner.handle).take() {
            let _ = h.join();
        }
        Ok(())
    }

    /// `is_alive()`.
    pub fn is_alive(&self) -> bool {
        self.inner.started.load(Ordering::Acquire) && lock(&self.inner.exitcode).is_none()
    }

    /// `exitcode`: `None` while running; 0 after a normal end, 1 after a panic.
    pub fn exitcode(&self) -> Option<i32> {
        *lock(&self.inner.exitcode)
    }

    /// `name`.
    pub fn name(&self) -> String {
        lock(&self.inner.name).clone()
    }

    /// Sets `name`.
    pub fn set_name(&self, name: impl Into<String>) {
        *lock(&self.inner.name) = name.into();
    }

    /// `daemon`.
    pub fn daemon(&self) -> bool {
        self.inner.daemon.load(Ordering::Relaxed)
    }

    /// Sets `daemon`; an error once started.
    pub fn set_daemon(&self, daemon: bool) -> Result<()> {
        if self.inner.started.load(Ordering::Acquire) {
            return Err(Error::invalid("cannot set daemon status of active thread"));
        }
        self.inner.daemon.store(daemon, Ordering::Relaxed);
        Ok(())
    }

    /// The process id (threads share this process's).
    pub fn pid(&self) -> Option<u32> {
        self.inner
            .started
            .load(Ordering::Acquire)
            .then(std::process::id)
    }
}

/// `current_process()`: the calling thread's name, as a [`Process`]-like value.
pub fn current_process() -> Process {
    let name = std::thread::current()
        .name()
        .unwrap_or("MainThread")
        .to_string();
    let p = Process::new(|| {}, ()).with_name(name);
    p.inner.started.store(true, Ordering::Release);
    lock(&p.inner.target).take();
    p
}

/// `active_children()`: the started threads still running (finished ones are forgotten).
pub fn active_children() -> Vec<Process> {
    let mut live = lock(&LIVE);
    live.retain(|p| p.is_alive());
    live.clone()
}

// ---------------------------------------------------------------------------------
// Queues

struct QInner<T> {
    items: Mutex<QState<T>>,
    not_empty: Condvar,
    not_full: Condvar,
    all_done: Condvar,
    maxsize: usize,
}

struct QState<T> {
    items: VecDeque<T>,
    unfinished: usize,
    closed: bool,
}

/// A thread queue with the [`Queue`](crate::Queue) API (Python's `queue.Queue`, which
/// `multiprocessing.dummy.Queue` is). Items need not be serializable.
pub struct Queue<T> {
    inner: Arc<QInner<T>>,
}

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Self {
        Queue {
            inner: self.inner.clone(),
        }
    }
}

impl<T> fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<dummy.Queue qsize={}>", self.qsize())
    }
}

impl<T> Queue<T> {
    /// `Queue()`: unbounded.
    pub fn new() -> Result<Self> {
        Self::with_maxsize(0)
    }

    /// `Queue(maxsize)`: 0 = unbounded.
    pub fn with_maxsize(maxsize: usize) -> Result<Self> {
        Ok(Queue {
            inner: Arc::new(QInner {
                items: Mutex::new(QState {
                    items: VecDeque::new(),
                    unfinished: 0,
                    closed: false,
                }),
                not_empty: Condvar::new(),
                not_full: Condvar::new(),
                all_done: Condvar::new(),
                maxsize,
            }),
        })
    }

    fn put_until(&self, item: T, deadline: Option<Instant>) -> Result<()> {
        let q = &self.inner;
        let mut st = lock(&q.items);
        if st.closed {
            return Err(Error::invalid("Queue is closed"));
        }
        while q.maxsize > 0 && st.items.len() >= q.maxsize {
            match deadline {
                None => st = q.not_full.wait(st).unwrap_or_else(|p| p.into_inner()),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return Err(Error::Full);
                    }
                    st = q
                        .not_full
                        .wait_timeout(st, d - now)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
            }
        }
        st.items.push_back(item);
        st.unfinished += 1;
        drop(st);
        q.not_empty.notify_one();
        Ok(())
    }

    fn get_until(&self, deadline: Option<Instant>) -> Result<T> {
        let q = &self.inner;
        let mut st = lock(&q.items);
        loop {
            if let Some(v) = st.items.pop_front() {
                drop(st);
                q.not_full.notify_one();
                return Ok(v);
            }
            match deadline {
                None => st = q.not_empty.wait(st).unwrap_or_else(|p| p.into_inner()),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return Err(Error::Empty);
                    }
                    st = q
                        .not_empty
                        .wait_timeout(st, d - now)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
            }
        }
    }

    /// `put(item)`: blocks while a bounded queue is full.
    pub fn put(&self, item: T) -> Result<()> {
        self.put_until(item, None)
    }
    /// `put(item, block=False)`: [`Error::Full`] if there is no room.
    pub fn try_put(&self, item: T) -> Result<()> {
        self.put_until(item, Some(Instant::now()))
    }
    /// `put(item, timeout=t)`.
    pub fn put_timeout(&self, item: T, timeout: Duration) -> Result<()> {
        self.put_until(item, Instant::now().checked_add(timeout))
    }
    /// `get()`.
    pub fn get(&self) -> Result<T> {
        self.get_until(None)
    }
    /// `get(block=False)`: [`Error::Empty`] if there is nothing.
    pub fn try_get(&self) -> Result<T> {
        self.get_until(Some(Instant::now()))
    }
    /// `get(timeout=t)`.
    pub fn get_timeout(&self, timeout: Duration) -> Result<T> {
        self.get_until(Instant::now().checked_add(timeout))
    }
    /// `qsize()`.
    pub fn qsize(&self) -> usize {
        lock(&self.inner.items).items.len()
    }
    /// `empty()`.
    pub fn empty(&self) -> bool {
        self.qsize() == 0
    }
    /// `full()`.
    pub fn full(&self) -> bool {
        self.inner.maxsize > 0 && self.qsize() >= self.inner.maxsize
    }
    /// `close()`: no more puts.
    pub fn close(&self) -> Result<()> {
        lock(&self.inner.items).closed = true;
        Ok(())
    }
    /// `join_thread()`: nothing to flush for a thread queue.
    pub fn join_thread(&self) -> Result<()> {
        Ok(())
    }
    /// `cancel_join_thread()`: nothing to cancel for a thread queue.
    pub fn cancel_join_thread(&self) {}

    /// `task_done()`: [`Error::InvalidState`] if called more times than items were put.
    pub fn task_done(&self) -> Result<()> {
        let mut st = lock(&self.inner.items);
        if st.unfinished == 0 {
            return Err(Error::invalid("task_done() called too many times"));
        }
        st.unfinished -= 1;
        if st.unfinished == 0 {
            self.inner.all_done.notify_all();
        }
        Ok(())
    }

    /// `join()`: waits until every item put has been marked done.
    pub fn join(&self) -> Result<()> {
        let mut st = lock(&self.inner.items);
        while st.unfinished > 0 {
            st = self
                .inner
                .all_done
                .wait(st)
                .unwrap_or_else(|p| p.into_inner());
        }
        Ok(())
    }
}

/// `JoinableQueue`: the same thread queue (it always counts unfinished items).
pub type JoinableQueue<T> = Queue<T>;
/// `SimpleQueue`: the same thread queue.
pub type SimpleQueue<T> = Queue<T>;

// ---------------------------------------------------------------------------------
// Values

/// A value shared between threads (Python's `multiprocessing.dummy.Value`).
///
/// ```
/// let v = mp::dummy::Value::new(0i64)?;
/// *v.lock() += 1;
/// assert_eq!(v.get(), 1);
/// # Ok::<(), mp::Error>(())
/// ```
pub struct Value<T> {
    inner: Arc<Mutex<T>>,
}

impl<T> Clone for Value<T> {
    fn clone(&self) -> Self {
        Value {
            inner: self.inner.clone(),
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for Value<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<dummy.Value {:?}>", *lock(&self.inner))
    }
}

impl<T> Value<T> {
    /// `Value(v)`. Never fails; it returns `Result` like [`crate::Value::new`], so code
    /// moves between the two by changing one `use`.
    pub fn new(v: T) -> Result<Self> {
        Ok(Value {
            inner: Arc::new(Mutex::new(v)),
        })
    }
    /// `v.value`.
    pub fn get(&self) -> T
    where
        T: Clone,
    {
        lock(&self.inner).clone()
    }
    /// `v.value = x`.
    pub fn set(&self, v: T) {
        *lock(&self.inner) = v;
    }
    /// `with v.get_lock():` — the guard derefs to the value.
    pub fn lock(&self) -> MutexGuard<'_, T> {
        lock(&self.inner)
    }
}

/// An array shared between threads (Python's `multiprocessing.dummy.Array`).
pub struct Array<T> {
    inner: Arc<Mutex<Vec<T>>>,
}

impl<T> Clone for Array<T> {
    fn clone(&self) -> Self {
        Array {
            inner: self.inner.clone(),
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for Array<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<dummy.Array {:?}>", *lock(&self.inner))
    }
}

impl<T: Clone> Array<T> {
    /// `Array(typecode, n)`: `len` default values. Never fails; it returns `Result` like
    /// [`crate::Array::new`], so code moves between the two by changing one `use`.
    pub fn new(len: usize) -> Result<Self>
    where
        T: Default,
    {
        Self::from_slice(&vec![T::default(); len])
    }
    /// `Array(typecode, items)`.
    pub fn from_slice(items: &[T]) -> Result<Self> {
        Ok(Array {
            inner: Arc::new(Mutex::new(items.to_vec())),
        })
    }
    /// `len(a)`.
    pub fn len(&self) -> usize {
        lock(&self.inner).len()
    }
    /// Whether the array has no items.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// `a[i]`; [`Error::InvalidState`] out of range (Python's `IndexError`).
    pub fn get(&self, i: usize) -> Result<T> {
        lock(&self.inner)
            .get(i)
            .cloned()
            .ok_or_else(|| Error::invalid("array index out of range"))
    }
    /// `a[i] = v`.
    pub fn set(&self, i: usize, v: T) -> Result<()> {
        let mut a = lock(&self.inner);
        let slot = a
            .get_mut(i)
            .ok_or_else(|| Error::invalid("array assignment index out of range"))?;
        *slot = v;
        Ok(())
    }
    /// `a[:]`.
    pub fn to_vec(&self) -> Vec<T> {
        lock(&self.inner).clone()
    }
    /// `with a.get_lock():` — the guard derefs to the items.
    pub fn lock(&self) -> MutexGuard<'_, Vec<T>> {
        lock(&self.inner)
    }
}
