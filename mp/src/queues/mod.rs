//! Queues shared between processes (CPython's `multiprocessing.queues`): [`Queue`],
//! [`SimpleQueue`] and [`JoinableQueue`].
//!
//! ```
//! # mp::test_support!();
//! #[mp::task]
//! fn f(q: mp::Queue<(i32, Option<i32>, String)>) {
//!     q.put((42, None, "hello".to_string())).unwrap();
//! }
//!
//! # fn main() -> mp::Result<()> {
//! let q = mp::Queue::new()?;
//! let p = mp::Process::new(f, (q.clone(),));
//! p.start()?;
//! assert_eq!(q.get()?, (42, None, "hello".to_string()));
//! p.join()?;
//! # Ok(()) }
//! ```
//!
//! # Design
//! A queue is a ring buffer in shared memory (a [`heap`](crate::heap) block: one header
//! of futex words and counters, then the data ring), protected by a futex lock, with
//! futex wake-ups for blocked getters and putters. Putting or getting an item is a
//! memory copy under a lock: no system call unless somebody sleeps, which is how a queue
//! moves millions of small items a second (a pipe write per item, CPython's design,
//! tops out near 2 M/s here).
//!
//! - Items bigger than [`INLINE_MAX`] do not go through the ring: their bytes are
//!   written to an anonymous file (`memfd`) whose descriptor travels on a side
//!   channel (a Unix socket pair every holder of the queue has); the ring holds a small
//!   record. So a 16 MiB item costs two copies and never fills the ring, and a child
//!   that put a large item can exit before anybody reads it: the kernel holds the
//!   in-flight descriptor (the docs' "joining processes that use queues" deadlock does
//!   not happen).
//! - Items that carry handles (a `Connection`, another `Queue`, a `Lock` …) send their
//!   descriptors on the same side channel, each message tagged with its entry's sequence
//!   number, so descriptors always reach the consumer of their item.
//! - An unbounded queue's `put` never blocks: if the ring is full, the item waits in a
//!   per-process buffer that a feeder thread moves into the ring as consumers make room
//!   (CPython's feeder thread, needed here only when the 1 MiB ring is full). At exit the
//!   feeder is joined ([`Queue::join_thread`]) unless [`Queue::cancel_join_thread`] was
//!   called, as in CPython.
//! - A consumer killed while it sleeps in `get`, or a producer killed between two puts,
//!   holds nothing: the others carry on.
//!
//! # A process killed while it holds the queue
//! The ring lock records its holder's thread id. A process killed in the middle of a
//! put or a get (while holding the lock, a few microseconds) is detected by the next
//! process that waits for the lock, within 20 ms: it takes the lock over and repairs the ring before going on. What the dead
//! process was doing is then either complete or never happened:
//! - a put that had not committed (advanced the tail) is dropped: its item is lost,
//!   never delivered torn;
//! - a get that had not committed leaves its item in the queue, delivered to the next
//!   getter; if the dead consumer had already taken the item's descriptors (a large
//!   item, or one carrying handles), the next getter gets [`Error::Codec`] for that one
//!   item instead, and the queue carries on;
//! - items a killed producer had buffered in its own feeder (the ring was full) are
//!   lost with it.
//!
//! Every timed call (`get_timeout`, `put_timeout`, `try_put`, `try_get`) returns by its
//! deadline whatever state a kill left behind. (The limit of the scheme: a holder's
//! thread id reused by a new thread before anyone waited would keep the lock looking
//! held; Linux hands out ids in increasing order, so that takes the whole pid range to
//! wrap first.)
//!
//! # Files
//! - `ring.rs`: the shared-memory ring (layout, entries, push/pop, validation);
//! - `feeder.rs`: this process's buffer and feeder thread;
//! - this file: [`Queue`], [`SimpleQueue`], [`JoinableQueue`] and their context
//!   constructors.

mod feeder;
mod ring;

use crate::error::{Error, Result};
use crate::popen_fork::ForkLocal;
use crate::synchronize::futex::{self, Deadline};
use feeder::Local;
pub(crate) use ring::fuzz_entries;
use ring::{decode_recycle, Encoded, Ring, RING};
use serde::{de::DeserializeOwned, Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::atomic::Ordering::*;
use std::sync::Arc;
use std::time::Duration;

pub use ring::INLINE_MAX;

/// A queue as this process holds it: the shared ring and this process's own state
/// (fresh in a forked child: the parent's buffered items and feeder are the parent's).
struct Core {
    ring: Ring,
    local: ForkLocal<Local>,
}

impl Core {
    fn create(maxsize: usize, ring: usize) -> Result<Arc<Core>> {
        Ok(Arc::new(Core {
            ring: Ring::create(maxsize, ring)?,
            local: ForkLocal::new(),
        }))
    }

    /// This process's state of the queue.
    #[inline]
    fn local(&self) -> &Local {
        self.local.get()
    }

    fn maxsize(&self) -> usize {
        self.ring.maxsize()
    }

    fn count(&self) -> usize {
        self.ring.count()
    }

    fn check_open(&self) -> Result<()> {
        if self.local().closed.load(Acquire) {
            Err(Error::invalid("Queue is closed"))
        } else {
            Ok(())
        }
    }

    /// Before a put: closed, or an earlier buffered item failed for good.
    fn check_put(&self) -> Result<()> {
        self.check_open()?;
        self.take_failure()
    }
}

fn deadline(timeout: Duration) -> Deadline {
    Deadline::after(Some(timeout))
}

/// Python's `multiprocessing.Queue`: a multi-producer, multi-consumer FIFO shared
/// between processes. Cloning gives another handle to the same queue; pass it to a
/// child in a `Process`'s arguments (any start method), through a `Connection`, or in
/// another queue. Items from one producer arrive in order.
///
/// A process killed while using the queue leaves it usable for the others: see the
/// [module docs](self#a-process-killed-while-it-holds-the-queue) for what happens to
/// the item it was putting or getting.
///
/// `put` on an unbounded queue never blocks; on a queue made with
/// [`with_maxsize`](Queue::with_maxsize) it waits for room (`try_put` fails with
/// [`Error::Full`], `put_timeout` after its timeout). `get` waits for an item
/// (`try_get` / `get_timeout` fail with [`Error::Empty`]).
pub struct Queue<T> {
    core: Arc<Core>,
    _t: PhantomData<fn(T) -> T>,
}

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Self {
        Queue {
            core: self.core.clone(),
            _t: PhantomData,
        }
    }
}

impl<T> fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "<Queue qsize={} maxsize={}>",
            self.core.count(),
            self.core.maxsize()
        )
    }
}

impl<T> Serialize for Queue<T> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.core.ring.serialize(s)
    }
}

impl<'de, T> Deserialize<'de> for Queue<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let ring = Ring::deserialize(d)?;
        ring.validate().map_err(serde::de::Error::custom)?;
        Ok(Queue {
            core: Arc::new(Core {
                ring,
                local: ForkLocal::new(),
            }),
            _t: PhantomData,
        })
    }
}

impl<T: Serialize + DeserializeOwned + Send + 'static> Queue<T> {
    /// `Queue()`: an unbounded queue.
    pub fn new() -> Result<Self> {
        Self::with_maxsize(0)
    }

    /// `Queue(maxsize)`: at most `maxsize` items at a time (0 = unbounded).
    pub fn with_maxsize(maxsize: usize) -> Result<Self> {
        Ok(Queue {
            core: Core::create(maxsize, RING)?,
            _t: PhantomData,
        })
    }

    /// `put(item)`: never blocks on an unbounded queue; waits for room on a bounded one.
    /// [`Error::InvalidState`] after [`close`](Self::close).
    pub fn put(&self, item: T) -> Result<()> {
        self.core.check_put()?;
        let e = Encoded::new(&item)?;
        drop(item);
        if self.core.maxsize() == 0 {
            self.core.put_nowait_unbounded(e, Deadline::Never)
        } else {
            self.core.ring.put_wait(e, Deadline::Never)
        }
    }

    /// `put(item, block=False)`: [`Error::Full`] if a bounded queue has no room.
    pub fn try_put(&self, item: T) -> Result<()> {
        self.core.check_put()?;
        let e = Encoded::new(&item)?;
        if self.core.maxsize() == 0 {
            return self.core.put_nowait_unbounded(e, Deadline::Now);
        }
        self.core.ring.put_wait(e, Deadline::Now)
    }

    /// `put(item, timeout=t)`: [`Error::Full`] if a bounded queue had no room in time.
    pub fn put_timeout(&self, item: T, timeout: Duration) -> Result<()> {
        self.core.check_put()?;
        let e = Encoded::new(&item)?;
        if self.core.maxsize() == 0 {
            return self.core.put_nowait_unbounded(e, deadline(timeout));
        }
        self.core.ring.put_wait(e, deadline(timeout))
    }

    /// `get()`: waits for an item.
    pub fn get(&self) -> Result<T> {
        self.core.check_open()?;
        let (bytes, fds) = self.core.ring.get_wait(Deadline::Never)?;
        decode_recycle(bytes, fds)
    }

    /// `get(block=False)` / `get_nowait()`: [`Error::Empty`] if there is no item.
    pub fn try_get(&self) -> Result<T> {
        self.core.check_open()?;
        let (bytes, fds) = self.core.ring.get_wait(Deadline::Now)?;
        decode_recycle(bytes, fds)
    }

    /// `get(timeout=t)`: [`Error::Empty`] if no item came in time; never blocks longer.
    pub fn get_timeout(&self, timeout: Duration) -> Result<T> {
        self.core.check_open()?;
        let (bytes, fds) = self.core.ring.get_wait(deadline(timeout))?;
        decode_recycle(bytes, fds)
    }

    /// `qsize()`: the approximate number of items (in the queue, plus those this
    /// process's feeder has not yet moved in).
    pub fn qsize(&self) -> usize {
        self.core.count() + self.core.local().pending_len.load(Acquire)
    }

    /// `empty()`: whether the queue holds no item (approximate, as in Python).
    pub fn empty(&self) -> bool {
        self.core.count() == 0
    }

    /// `full()`: whether a bounded queue is at its maximum size.
    pub fn full(&self) -> bool {
        let max = self.core.maxsize();
        max > 0 && self.qsize() >= max
    }

    /// The `maxsize` given at creation (0 = unbounded).
    pub fn maxsize(&self) -> usize {
        self.core.maxsize()
    }

    /// `close()`: this process will put no more items; buffered ones are still
    /// flushed by the feeder. Returns (once) the error a buffered item was dropped
    /// with, if the feeder met a permanent failure (as `put` and `join_thread` do). Later `put`/`get` through this process's handles give
    /// [`Error::InvalidState`]. Other processes are not affected.
    pub fn close(&self) -> Result<()> {
        self.core.local().closed.store(true, Release);
        self.core.take_failure()
    }

    /// `join_thread()`: waits until the items this process put are all in the queue
    /// (the feeder has flushed its buffer). Only after [`close`](Self::close).
    pub fn join_thread(&self) -> Result<()> {
        if !self.core.local().closed.load(Acquire) {
            return Err(Error::invalid("Queue.join_thread() called before close()"));
        }
        self.core.join_feeder();
        self.core.take_failure()
    }

    /// `cancel_join_thread()`: at exit, do not wait for buffered items to reach the
    /// queue (they are dropped). Needed only when the ring is full and nobody reads.
    pub fn cancel_join_thread(&self) {
        self.core.local().cancel_join.store(true, Release);
    }
}

/// `Clone` and the handle's serde impls for a type wrapping a [`Queue`] as `inner`.
macro_rules! queue_wrapper {
    ($name:ident) => {
        impl<T> Clone for $name<T> {
            fn clone(&self) -> Self {
                $name {
                    inner: self.inner.clone(),
                }
            }
        }

        impl<T> Serialize for $name<T> {
            fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                self.inner.serialize(s)
            }
        }

        impl<'de, T> Deserialize<'de> for $name<T> {
            fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                Ok($name {
                    inner: Queue::deserialize(d)?,
                })
            }
        }
    };
}

/// Python's `multiprocessing.SimpleQueue`: a queue without a feeder thread or size
/// limit; `put` writes the item straight into the shared ring (waiting if the ring
/// itself is full).
pub struct SimpleQueue<T> {
    inner: Queue<T>,
}

impl<T> fmt::Debug for SimpleQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<SimpleQueue qsize={}>", self.inner.core.count())
    }
}

queue_wrapper!(SimpleQueue);

impl<T: Serialize + DeserializeOwned + Send + 'static> SimpleQueue<T> {
    /// `SimpleQueue()`.
    pub fn new() -> Result<Self> {
        Ok(SimpleQueue {
            inner: Queue::new()?,
        })
    }

    /// `put(item)`.
    pub fn put(&self, item: T) -> Result<()> {
        self.inner.core.check_put()?;
        let e = Encoded::new(&item)?;
        self.inner.core.ring.put_wait(e, Deadline::Never)
    }

    /// `get()`: waits for an item.
    pub fn get(&self) -> Result<T> {
        self.inner.get()
    }

    /// `get` with a timeout ([`Error::Empty`] after it; beyond CPython's SimpleQueue).
    pub fn get_timeout(&self, timeout: Duration) -> Result<T> {
        self.inner.get_timeout(timeout)
    }

    /// `empty()`.
    pub fn empty(&self) -> bool {
        self.inner.empty()
    }

    /// `close()`: this process's handles refuse further use.
    pub fn close(&self) -> Result<()> {
        self.inner.close()
    }
}

/// Python's `multiprocessing.JoinableQueue`: a [`Queue`] whose consumers call
/// [`task_done`](Self::task_done) for every item, so producers can
/// [`join`](Self::join) until all items are processed. Every other method is the
/// `Queue`'s (through `Deref`).
pub struct JoinableQueue<T> {
    inner: Queue<T>,
}

impl<T> fmt::Debug for JoinableQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "<JoinableQueue qsize={} unfinished={}>",
            self.inner.core.count(),
            self.inner.core.ring.h().join.unfinished.load(Relaxed)
        )
    }
}

queue_wrapper!(JoinableQueue);

impl<T> Deref for JoinableQueue<T> {
    type Target = Queue<T>;
    fn deref(&self) -> &Queue<T> {
        &self.inner
    }
}

impl<T: Serialize + DeserializeOwned + Send + 'static> JoinableQueue<T> {
    /// `JoinableQueue()`.
    pub fn new() -> Result<Self> {
        Self::with_maxsize(0)
    }

    /// `JoinableQueue(maxsize)`.
    pub fn with_maxsize(maxsize: usize) -> Result<Self> {
        Ok(JoinableQueue {
            inner: Queue::with_maxsize(maxsize)?,
        })
    }

    fn counted(&self, put: impl FnOnce() -> Result<()>) -> Result<()> {
        let unfinished = &self.inner.core.ring.h().join.unfinished;
        unfinished.fetch_add(1, SeqCst);
        let r = put();
        if r.is_err() {
            self.undo_count();
        }
        r
    }

    fn undo_count(&self) {
        let core = &self.inner.core;
        if core.ring.h().join.unfinished.fetch_sub(1, SeqCst) == 1 {
            Ring::bump(&core.ring.h().join.done, u32::MAX);
        }
    }

    /// `put(item)` (counts one more unfinished task).
    pub fn put(&self, item: T) -> Result<()> {
        self.counted(|| self.inner.put(item))
    }

    /// `put(item, block=False)`.
    pub fn try_put(&self, item: T) -> Result<()> {
        self.counted(|| self.inner.try_put(item))
    }

    /// `put(item, timeout=t)`.
    pub fn put_timeout(&self, item: T, timeout: Duration) -> Result<()> {
        self.counted(|| self.inner.put_timeout(item, timeout))
    }

    /// `task_done()`: one item got by a consumer is processed.
    /// [`Error::InvalidState`] if called more times than items were put.
    pub fn task_done(&self) -> Result<()> {
        let w = &self.inner.core.ring.h().join.unfinished;
        let mut cur = w.load(SeqCst);
        loop {
            if cur == 0 {
                return Err(Error::invalid("task_done() called too many times"));
            }
            match w.compare_exchange(cur, cur - 1, SeqCst, SeqCst) {
                Ok(_) => break,
                Err(now) => cur = now,
            }
        }
        if cur == 1 {
            Ring::bump(&self.inner.core.ring.h().join.done, u32::MAX);
        }
        Ok(())
    }

    /// `join()`: waits until every item put has been marked [`task_done`](Self::task_done).
    pub fn join(&self) -> Result<()> {
        self.join_deadline(Deadline::Never);
        Ok(())
    }

    /// `join()` with a timeout: `false` if items were still unfinished when it passed.
    pub fn join_timeout(&self, timeout: Duration) -> bool {
        self.join_deadline(deadline(timeout))
    }

    fn join_deadline(&self, dl: Deadline) -> bool {
        let core = &self.inner.core;
        let done = &core.ring.h().join.done;
        futex::wait_until_counted(&done.seq, &done.sleepers, dl, || {
            core.ring.h().join.unfinished.load(SeqCst) == 0
        })
    }
}

impl crate::context::Context {
    /// `ctx.Queue()`.
    pub fn queue<T: Serialize + DeserializeOwned + Send + 'static>(&self) -> Result<Queue<T>> {
        Queue::new()
    }

    /// `ctx.Queue(maxsize)`.
    pub fn queue_with_maxsize<T: Serialize + DeserializeOwned + Send + 'static>(
        &self,
        maxsize: usize,
    ) -> Result<Queue<T>> {
        Queue::with_maxsize(maxsize)
    }

    /// `ctx.SimpleQueue()`.
    pub fn simple_queue<T: Serialize + DeserializeOwned + Send + 'static>(
        &self,
    ) -> Result<SimpleQueue<T>> {
        SimpleQueue::new()
    }

    /// `ctx.JoinableQueue()`.
    pub fn joinable_queue<T: Serialize + DeserializeOwned + Send + 'static>(
        &self,
    ) -> Result<JoinableQueue<T>> {
        JoinableQueue::new()
    }

    /// `ctx.JoinableQueue(maxsize)`.
    pub fn joinable_queue_with_maxsize<T: Serialize + DeserializeOwned + Send + 'static>(
        &self,
        maxsize: usize,
    ) -> Result<JoinableQueue<T>> {
        JoinableQueue::with_maxsize(maxsize)
    }
}

#[doc(hidden)]
pub mod root_exports {
    pub use super::{JoinableQueue, Queue, SimpleQueue};
}
