//! Process pools (CPython's `multiprocessing.pool`): [`Pool`], [`AsyncResult`], the
//! `imap` iterators, and [`ThreadPool`] with the same API on threads.
//!
//! ```
//! # mp::test_support!();
//! #[mp::task]
//! fn square(x: u64) -> u64 {
//!     x * x
//! }
//!
//! # fn main() -> mp::Result<()> {
//! let pool = mp::Pool::new(Some(2))?;
//! assert_eq!(pool.map(square, 0..10)?, [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]);
//! let r = pool.apply_async(square, (7,));
//! assert_eq!(r.get()?, 49);
//! let mut total = 0;
//! for x in pool.imap_unordered(square, 0..100) {
//!     total += x?;
//! }
//! assert_eq!(total, 328350);
//! pool.close()?;
//! pool.join()?;
//! # Ok(()) }
//! ```
//!
//! How it works: each worker is a daemonic [`Process`](crate::Process) with a duplex
//! connection of its own. One supervisor thread in the parent hands a chunk of encoded
//! arguments to a worker only when that worker is idle, so the pool always knows who holds
//! what: a worker that dies (killed, aborted, `exit`) fails exactly its chunk with
//! [`Error::WorkerDied`] and is replaced, a chunk that overruns
//! [`task_timeout`](PoolBuilder::task_timeout) fails with [`Error::Timeout`] and its
//! worker is killed and replaced, and the pool never hangs (CPython's does). A task that
//! panics fails its own item with [`Error::TaskPanicked`]; the worker carries on.
//! `imap*` pull their input lazily from a feeder thread, a bounded number of items ahead
//! of the consumer.

mod plain;
mod result;
mod supervisor;
mod thread;
pub(crate) mod worker;

pub use result::{AsyncResult, ImapIter};
pub use thread::{ThreadPool, ThreadTask};

use crate::context::Context;
use crate::error::{Error, Result};
use crate::spawn::TaskFn;
use result::{copy_error, lock, ApplySink, Callback, ErrorCallback, ImapShared, MapSink, Sink};
use serde::{de::DeserializeOwned, Serialize};
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use supervisor::{Chunk, JobSink, Phase, Shared, WorkerSpec};
use worker::{fill_chunk, ItemError};

/// Python's default chunk size for `map`: `ceil(len / (4 * workers))`.
pub(crate) fn default_chunksize(len: usize, workers: usize) -> usize {
    len.div_ceil(workers.max(1) * 4).max(1)
}

/// Pulls up to `n` items from a caller's input iterator. A panic in it (Python: the
/// input iterable raising, `test_imap_handle_iterable_exception`) becomes an error of
/// the job instead of killing the pool thread that pulls (which left `imap` hanging).
pub(crate) fn pull_items<T>(
    items: &mut impl Iterator<Item = T>,
    n: usize,
    task: &str,
) -> Result<Vec<T>> {
    crate::spawn::catch_quietly(|| items.by_ref().take(n).collect()).map_err(
        |(message, backtrace)| Error::TaskPanicked {
            task: task.to_string(),
            message: format!("the input iterator panicked: {message}"),
            backtrace,
        },
    )
}

fn check_chunksize(chunksize: usize) -> Result<()> {
    if chunksize == 0 {
        Err(Error::invalid("chunksize must be a positive number, not 0"))
    } else {
        Ok(())
    }
}

/// Decodes a worker's outcomes into the job's type and hands them to its sink.
struct Typed<R> {
    sink: Arc<dyn Sink<R>>,
    _r: PhantomData<fn() -> R>,
}

impl<R: DeserializeOwned + Send + 'static> Typed<R> {
    fn sink(sink: Arc<dyn Sink<R>>) -> Arc<dyn JobSink> {
        Arc::new(Typed {
            sink,
            _r: PhantomData,
        })
    }
}

/// Decodes a worker's results for a chunk of `count` items and checks them against
/// the chunk (what the worker sent is not trusted; `__fuzz::pool_result` drives this).
pub(crate) fn decode_chunk<R: DeserializeOwned>(
    bytes: &[u8],
    count: usize,
) -> Result<worker::ChunkResults<R>> {
    let (values, errors): worker::ChunkResults<R> = match plain::split_tag(bytes)? {
        (plain::PLAIN, bytes) => (plain::decode(bytes, Some(count))?, Vec::new()),
        (_, bytes) => crate::codec::decode(bytes)?,
    };
    // failed items by strictly increasing index within the chunk
    let in_range = errors.iter().all(|(i, _)| (*i as usize) < count)
        && errors.windows(2).all(|w| w[0].0 < w[1].0);
    if values.len() + errors.len() == count && in_range {
        Ok((values, errors))
    } else {
        Err(Error::Codec(
            format!(
                "a worker sent {} results for a chunk of {count}",
                values.len() + errors.len()
            )
            .into(),
        ))
    }
}

impl<R: DeserializeOwned + Send + 'static> JobSink for Typed<R> {
    fn deliver(
        &self,
        start: usize,
        count: usize,
        results: std::result::Result<&[u8], ItemError>,
        task: &str,
    ) {
        let decoded = results
            .map_err(|e| e.into_error(task))
            .and_then(|bytes| decode_chunk(bytes, count));
        match decoded {
            Ok((values, errors)) => {
                let errors = errors
                    .into_iter()
                    .map(|(i, e)| (i as usize, e.into_error(task)))
                    .collect();
                self.sink.deliver_chunk(start, values, errors)
            }
            Err(e) => self.fail(start, count, &e),
        }
    }
    fn fail(&self, start: usize, count: usize, err: &Error) {
        self.sink
            .deliver(start, (0..count).map(|_| Err(copy_error(err))).collect());
    }
    fn fail_rest(&self, err: &Error) {
        self.sink.fail_rest(err)
    }
    fn set_total(&self, total: usize) {
        self.sink.set_total(total)
    }
    fn cancelled(&self) -> bool {
        self.sink.cancelled()
    }
}

/// Configures a [`Pool`] (Python's `Pool(processes, initializer, initargs,
/// maxtasksperchild, context)`), plus a per-task timeout Python lacks.
///
/// ```
/// # mp::test_support!();
/// use std::time::Duration;
///
/// #[mp::task]
/// fn init(greeting: String) {
///     let _ = greeting;
/// }
///
/// #[mp::task]
/// fn double(x: i32) -> i32 { 2 * x }
///
/// # fn main() -> mp::Result<()> {
/// let pool = mp::Pool::builder()
///     .processes(2)
///     .initializer(init, ("hello".to_string(),))
///     .maxtasksperchild(100)
///     .task_timeout(Duration::from_secs(60))
///     .build()?;
/// assert_eq!(pool.map(double, [1, 2, 3])?, [2, 4, 6]);
/// # Ok(()) }
/// ```
#[must_use = "a builder does nothing until build() is called"]
pub struct PoolBuilder {
    processes: Option<usize>,
    init: Option<Result<supervisor::Init>>,
    maxtasks: Option<usize>,
    ctx: Context,
    task_timeout: Option<Duration>,
}

impl std::fmt::Debug for PoolBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolBuilder")
            .field("processes", &self.processes)
            .field("maxtasksperchild", &self.maxtasks)
            .field("context", &self.ctx)
            .field("task_timeout", &self.task_timeout)
            .finish()
    }
}

impl PoolBuilder {
    /// The number of worker processes (default: [`process_cpu_count`](crate::process_cpu_count)).
    pub fn processes(mut self, n: usize) -> Self {
        self.processes = Some(n);
        self
    }

    /// `initializer`/`initargs`: a `#[mp::task]` every worker runs once before its first
    /// task. Its arguments may carry handles (a `Lock`, a `Queue` …), as in Python.
    pub fn initializer<F, Args>(mut self, init: F, args: Args) -> Self
    where
        F: TaskFn<Args>,
        Args: Serialize + Send + 'static,
    {
        let _ = init;
        self.init = Some((|| {
            let name = crate::spawn::task_name_of::<F>()?;
            let (bytes, fds) = crate::codec::encode_with_fds(&args)?;
            Ok((name, bytes, fds))
        })());
        self
    }

    /// `maxtasksperchild`: a worker exits after this many tasks (chunks) and is replaced.
    pub fn maxtasksperchild(mut self, k: usize) -> Self {
        self.maxtasks = Some(k);
        self
    }

    /// The start method context the workers are started with.
    pub fn context(mut self, ctx: Context) -> Self {
        self.ctx = ctx;
        self
    }

    /// A task running longer than `d` fails with [`Error::Timeout`]; its worker is
    /// killed and replaced. With a task timeout every task is handed to a worker on its
    /// own (any `chunksize` is taken as 1), so the limit applies to each task rather than
    /// to a chunk of them, and only the task that overran fails.
    pub fn task_timeout(mut self, d: Duration) -> Self {
        self.task_timeout = Some(d);
        self
    }

    /// Starts the workers and returns the running pool. `processes(0)` and
    /// `maxtasksperchild(0)` are [`Error::InvalidState`].
    pub fn build(self) -> Result<Pool> {
        let size = self
            .processes
            .unwrap_or_else(crate::process::process_cpu_count);
        if size == 0 {
            return Err(Error::invalid("Number of processes must be at least 1"));
        }
        if self.maxtasks == Some(0) {
            return Err(Error::invalid(
                "maxtasksperchild must be a positive int or None",
            ));
        }
        if crate::process::current_process().daemon() {
            return Err(Error::invalid(
                "daemonic processes are not allowed to have children",
            ));
        }
        let init = self.init.transpose()?;
        let spec = WorkerSpec {
            ctx: self.ctx,
            init,
            maxtasks: self.maxtasks.map(|k| k as u64),
            task_timeout: self.task_timeout,
        };
        let shared = Shared::new()?;
        let mut workers = Vec::with_capacity(size);
        for _ in 0..size {
            match spec.start_worker() {
                Ok(w) => workers.push(w),
                Err(e) => {
                    workers.iter().for_each(supervisor::Worker::abandon);
                    return Err(e);
                }
            }
        }
        let sh = shared.clone();
        let handle = std::thread::Builder::new()
            .name("mp-pool".into())
            .spawn(move || supervisor::run(sh, spec, workers, size))?;
        Ok(Pool {
            shared,
            supervisor: Mutex::new(Some(handle)),
            size,
            ctx: self.ctx,
            task_timeout: self.task_timeout,
        })
    }
}

/// A pool of worker processes (Python's `multiprocessing.Pool`).
///
/// Tasks are `#[mp::task]` functions, passed plain: `pool.map(square, 0..10)`. Every
/// call that runs tasks has a blocking form, an `_async` form returning an
/// [`AsyncResult`], and the `imap` family returns lazy iterators of `Result<R>`.
/// Dropping the pool terminates it (Python's `with Pool() as p:` exit).
///
/// Beyond Python: a worker that dies mid-task fails that task with
/// [`Error::WorkerDied`] and is replaced; a handle (a `Queue`, a `Lock` …) may be passed in
/// a task's arguments.
pub struct Pool {
    shared: Arc<Shared>,
    supervisor: Mutex<Option<JoinHandle<()>>>,
    size: usize,
    ctx: Context,
    task_timeout: Option<Duration>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let phase = match lock(&self.shared.state).phase {
            Phase::Running => "RUN",
            Phase::Closed => "CLOSE",
            Phase::Terminated => "TERMINATE",
        };
        write!(
            f,
            "<multiprocessing.pool.Pool state={phase} pool_size={} method={}>",
            self.size,
            self.ctx.get_start_method()
        )
    }
}

impl Pool {
    /// `Pool(processes)`: starts `processes` workers (`None` = the CPUs this process
    /// may use) under the default start method.
    pub fn new(processes: Option<usize>) -> Result<Pool> {
        let mut b = Pool::builder();
        b.processes = processes;
        b.build()
    }

    /// A [`PoolBuilder`] for the other options.
    pub fn builder() -> PoolBuilder {
        PoolBuilder {
            processes: None,
            init: None,
            maxtasks: None,
            ctx: Context::default(),
            task_timeout: None,
        }
    }

    /// The number of worker processes.
    pub fn processes(&self) -> usize {
        self.size
    }

    fn task_name<F: 'static>() -> Result<&'static str> {
        crate::spawn::task_name_of::<F>()
    }

    fn async_with<F, Args>(
        &self,
        args: Args,
        callback: Option<Callback<F::Output>>,
        error_callback: Option<ErrorCallback>,
    ) -> AsyncResult<F::Output>
    where
        F: TaskFn<Args>,
        Args: Serialize + Send + 'static,
        F::Output: DeserializeOwned + Send + 'static,
    {
        let result = AsyncResult::new(callback, error_callback);
        let submitted = (|| {
            let task = Self::task_name::<F>()?;
            let id = self.shared.new_job_id();
            let mut c = Chunk::new(id, 0, task);
            fill_chunk(&mut c, std::slice::from_ref(&args))?;
            let sink = Typed::sink(Arc::new(ApplySink(result.clone())));
            self.shared.submit(sink, vec![c], false, id)
        })();
        if let Err(e) = submitted {
            result.complete(Err(e));
        }
        result
    }

    /// `apply(f, args)`: runs `f(args…)` in a worker and waits for its result.
    pub fn apply<F, Args>(&self, f: F, args: Args) -> Result<F::Output>
    where
        F: TaskFn<Args>,
        Args: Serialize + Send + 'static,
        F::Output: DeserializeOwned + Send + 'static,
    {
        self.apply_async(f, args).get()
    }

    /// `apply_async(f, args)`.
    pub fn apply_async<F, Args>(&self, f: F, args: Args) -> AsyncResult<F::Output>
    where
        F: TaskFn<Args>,
        Args: Serialize + Send + 'static,
        F::Output: DeserializeOwned + Send + 'static,
    {
        let _ = f;
        self.async_with::<F, Args>(args, None, None)
    }

    /// `apply_async(f, args, callback=…, error_callback=…)`: the callback (or the error
    /// callback) runs once, in the pool's result thread, before the result is ready.
    pub fn apply_async_with<F, Args, C, E>(
        &self,
        f: F,
        args: Args,
        callback: C,
        error_callback: E,
    ) -> AsyncResult<F::Output>
    where
        F: TaskFn<Args>,
        Args: Serialize + Send + 'static,
        F::Output: DeserializeOwned + Send + 'static,
        C: FnOnce(&F::Output) + Send + 'static,
        E: FnOnce(&Error) + Send + 'static,
    {
        let _ = f;
        self.async_with::<F, Args>(
            args,
            Some(Box::new(callback)),
            Some(Box::new(error_callback)),
        )
    }

    fn map_inner<F, Args, I>(
        &self,
        items: I,
        chunksize: Option<usize>,
        callback: Option<Callback<Vec<F::Output>>>,
        error_callback: Option<ErrorCallback>,
    ) -> AsyncResult<Vec<F::Output>>
    where
        F: TaskFn<Args>,
        Args: Serialize,
        I: IntoIterator<Item = Args>,
        F::Output: DeserializeOwned + Send + 'static,
    {
        let result = AsyncResult::new(callback, error_callback);
        let submitted = (|| {
            let task = Self::task_name::<F>()?;
            if let Some(cs) = chunksize {
                check_chunksize(cs)?;
            }
            let items: Vec<Args> = pull_items(&mut items.into_iter(), usize::MAX, task)?;
            let cs = match (self.task_timeout, chunksize) {
                (Some(_), _) => 1,
                (None, Some(cs)) => cs,
                (None, None) => default_chunksize(items.len(), self.size),
            };
            let id = self.shared.new_job_id();
            let sink = Typed::sink(Arc::new(MapSink::new(items.len(), result.clone())));
            // each chunk goes to the workers as soon as it is encoded, so that they run
            // while the rest is encoded (encoding all first left a CPU idle)
            let mut parts = items.chunks(cs).enumerate();
            let encode = |(k, part): (usize, &[Args])| {
                let mut c = Chunk::new(id, k * cs, task);
                fill_chunk(&mut c, part).map(|()| c)
            };
            let first = parts.next().map(encode).transpose()?;
            self.shared
                .submit(sink, first.into_iter().collect(), true, id)?;
            for part in parts {
                let pushed = encode(part).and_then(|c| self.shared.push_chunk(c));
                if let Err(e) = pushed {
                    self.shared.abort_feeding(id, &e);
                    return Ok(());
                }
            }
            self.shared.finish_feeding(id, items.len());
            Ok(())
        })();
        if let Err(e) = submitted {
            result.complete(Err(e));
        }
        result
    }

    /// `map(f, items)`: `f` over every item in the workers, results in input order;
    /// the first failed item fails the whole map (as Python's `map` raises), reported
    /// once every item is done, as CPython does (no task of the map still runs then).
    pub fn map<F, A, I>(&self, f: F, items: I) -> Result<Vec<F::Output>>
    where
        F: TaskFn<(A,)>,
        A: Serialize,
        I: IntoIterator<Item = A>,
        F::Output: DeserializeOwned + Send + 'static,
    {
        self.map_async(f, items).get()
    }

    /// `map(f, items, chunksize)`.
    pub fn map_chunked<F, A, I>(&self, f: F, items: I, chunksize: usize) -> Result<Vec<F::Output>>
    where
        F: TaskFn<(A,)>,
        A: Serialize,
        I: IntoIterator<Item = A>,
        F::Output: DeserializeOwned + Send + 'static,
    {
        let _ = f;
        self.map_inner::<F, (A,), _>(items.into_iter().map(|a| (a,)), Some(chunksize), None, None)
            .get()
    }

    /// `map_async(f, items)`.
    pub fn map_async<F, A, I>(&self, f: F, items: I) -> AsyncResult<Vec<F::Output>>
    where
        F: TaskFn<(A,)>,
        A: Serialize,
        I: IntoIterator<Item = A>,
        F::Output: DeserializeOwned + Send + 'static,
    {
        let _ = f;
        self.map_inner::<F, (A,), _>(items.into_iter().map(|a| (a,)), None, None, None)
    }

    /// `map_async(f, items, chunksize)`.
    pub fn map_async_chunked<F, A, I>(
        &self,
        f: F,
        items: I,
        chunksize: usize,
    ) -> AsyncResult<Vec<F::Output>>
    where
        F: TaskFn<(A,)>,
        A: Serialize,
        I: IntoIterator<Item = A>,
        F::Output: DeserializeOwned + Send + 'static,
    {
        let _ = f;
        self.map_inner::<F, (A,), _>(items.into_iter().map(|a| (a,)), Some(chunksize), None, None)
    }

    /// `map_async(f, items, callback=…, error_callback=…)`.
    pub fn map_async_with<F, A, I, C, E>(
        &self,
        f: F,
        items: I,
        callback: C,
        error_callback: E,
    ) -> AsyncResult<Vec<F::Output>>
    where
        F: TaskFn<(A,)>,
        A: Serialize,
        I: IntoIterator<Item = A>,
        F::Output: DeserializeOwned + Send + 'static,
        C: FnOnce(&Vec<F::Output>) + Send + 'static,
        E: FnOnce(&Error) + Send + 'static,
    {
        let _ = f;
        self.map_inner::<F, (A,), _>(
            items.into_iter().map(|a| (a,)),
            None,
            Some(Box::new(callback)),
            Some(Box::new(error_callback)),
        )
    }

    /// `starmap(f, tuples)`: `f(a, b, …)` for every tuple, results in order.
    pub fn starmap<F, Args, I>(&self, f: F, items: I) -> Result<Vec<F::Output>>
    where
        F: TaskFn<Args>,
        Args: Serialize,
        I: IntoIterator<Item = Args>,
        F::Output: DeserializeOwned + Send + 'static,
    {
        self.starmap_async(f, items).get()
    }

    /// `starmap(f, tuples, chunksize)`.
    pub fn starmap_chunked<F, Args, I>(
        &self,
        f: F,
        items: I,
        chunksize: usize,
    ) -> Result<Vec<F::Output>>
    where
        F: TaskFn<Args>,
        Args: Serialize,
        I: IntoIterator<Item = Args>,
        F::Output: DeserializeOwned + Send + 'static,
    {
        let _ = f;
        self.map_inner::<F, Args, _>(items, Some(chunksize), None, None)
            .get()
    }

    /// `starmap_async(f, tuples)`.
    pub fn starmap_async<F, Args, I>(&self, f: F, items: I) -> AsyncResult<Vec<F::Output>>
    where
        F: TaskFn<Args>,
        Args: Serialize,
        I: IntoIterator<Item = Args>,
        F::Output: DeserializeOwned + Send + 'static,
    {
        let _ = f;
        self.map_inner::<F, Args, _>(items, None, None, None)
    }

    fn imap_inner<F, Args, I>(
        &self,
        items: I,
        chunksize: usize,
        ordered: bool,
    ) -> ImapIter<F::Output>
    where
        F: TaskFn<Args>,
        Args: Serialize + Send + 'static,
        I: Iterator<Item = Args> + Send + 'static,
        F::Output: DeserializeOwned + Send + 'static,
    {
        let it = ImapShared::<F::Output>::new(ordered);
        let iter = ImapIter::new(it.clone());
        let fail = |e: Error| {
            it.fail_rest(&e);
            it.set_total(0);
        };
        let task = match Self::task_name::<F>().and_then(|t| check_chunksize(chunksize).map(|_| t))
        {
            Ok(t) => t,
            Err(e) => {
                fail(e);
                return iter;
            }
        };
        // with a task timeout, the limit is per task: one task per chunk
        let chunksize = if self.task_timeout.is_some() {
            1
        } else {
            chunksize
        };
        let id = self.shared.new_job_id();
        let sink: Arc<dyn Sink<F::Output>> = it.clone();
        if let Err(e) = self.shared.submit(Typed::sink(sink), Vec::new(), true, id) {
            fail(e);
            return iter;
        }
        let shared = self.shared.clone();
        // items may run ahead of the consumer by this much: enough to keep every worker
        // holding two chunks with more ready, so the feeder runs in bursts
        let limit = chunksize.saturating_mul(4 * self.size + 4).max(32);
        let feeder = move || {
            let mut items = items;
            let mut start = 0usize;
            loop {
                if !it.wait_for_room(start, limit) {
                    shared.finish_feeding(id, start);
                    return;
                }
                let mut c = Chunk::new(id, start, task);
                let part: Vec<Args> = match pull_items(&mut items, chunksize, task) {
                    Ok(part) => part,
                    Err(e) => {
                        // the items before arrive; the failure is the next one
                        shared.input_failed(id, start, &e);
                        return;
                    }
                };
                if let Err(e) = fill_chunk(&mut c, &part) {
                    shared.abort_feeding(id, &e);
                    return;
                }
                drop(part);
                if c.len() == 0 {
                    shared.finish_feeding(id, start);
                    return;
                }
                start += c.len();
                if let Err(e) = shared.push_chunk(c) {
                    shared.abort_feeding(id, &e);
                    return;
                }
            }
        };
        if let Err(e) = std::thread::Builder::new()
            .name("mp-pool-feeder".into())
            .spawn(feeder)
        {
            self.shared.abort_feeding(id, &Error::Io(e));
        }
        iter
    }

    /// `imap(f, items)`: a lazy `map` whose results come in input order as they are
    /// ready. `items` is pulled as workers free up, so an endless iterator works.
    pub fn imap<F, A, I>(&self, f: F, items: I) -> ImapIter<F::Output>
    where
        F: TaskFn<(A,)>,
        A: Serialize + Send + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: Send + 'static,
        F::Output: DeserializeOwned + Send + 'static,
    {
        let _ = f;
        self.imap_inner::<F, (A,), _>(items.into_iter().map(|a| (a,)), 1, true)
    }

    /// `imap(f, items, chunksize)`.
    pub fn imap_chunked<F, A, I>(&self, f: F, items: I, chunksize: usize) -> ImapIter<F::Output>
    where
        F: TaskFn<(A,)>,
        A: Serialize + Send + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: Send + 'static,
        F::Output: DeserializeOwned + Send + 'static,
    {
        let _ = f;
        self.imap_inner::<F, (A,), _>(items.into_iter().map(|a| (a,)), chunksize, true)
    }

    /// `imap_unordered(f, items)`: as [`imap`](Self::imap), results in completion order.
    pub fn imap_unordered<F, A, I>(&self, f: F, items: I) -> ImapIter<F::Output>
    where
        F: TaskFn<(A,)>,
        A: Serialize + Send + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: Send + 'static,
        F::Output: DeserializeOwned + Send + 'static,
    {
        let _ = f;
        self.imap_inner::<F, (A,), _>(items.into_iter().map(|a| (a,)), 1, false)
    }

    /// `imap_unordered(f, items, chunksize)`.
    pub fn imap_unordered_chunked<F, A, I>(
        &self,
        f: F,
        items: I,
        chunksize: usize,
    ) -> ImapIter<F::Output>
    where
        F: TaskFn<(A,)>,
        A: Serialize + Send + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: Send + 'static,
        F::Output: DeserializeOwned + Send + 'static,
    {
        let _ = f;
        self.imap_inner::<F, (A,), _>(items.into_iter().map(|a| (a,)), chunksize, false)
    }

    /// `close()`: no more tasks; the workers exit once the queued work is done.
    pub fn close(&self) -> Result<()> {
        let mut st = lock(&self.shared.state);
        if st.phase == Phase::Running {
            st.phase = Phase::Closed;
        }
        drop(st);
        self.shared.wake();
        Ok(())
    }

    /// `terminate()`: stops the workers at once; outstanding tasks fail with
    /// [`Error::InvalidState`].
    pub fn terminate(&self) -> Result<()> {
        lock(&self.shared.state).phase = Phase::Terminated;
        self.shared.wake();
        self.join_supervisor()
    }

    /// `join()`: waits for the workers to exit; [`Error::InvalidState`] unless
    /// [`close`](Self::close) or [`terminate`](Self::terminate) was called.
    pub fn join(&self) -> Result<()> {
        if lock(&self.shared.state).phase == Phase::Running {
            return Err(Error::invalid(
                "Pool is still running: close() or terminate() it first",
            ));
        }
        self.join_supervisor()
    }

    fn join_supervisor(&self) -> Result<()> {
        let handle = lock(&self.supervisor).take();
        match handle {
            Some(h) => h
                .join()
                .map_err(|_| Error::invalid("the pool's supervisor thread panicked")),
            None => {
                // another thread joins it: wait until it has finished
                let mut st = lock(&self.shared.state);
                while !st.finished {
                    st = self
                        .shared
                        .finished_cv
                        .wait(st)
                        .unwrap_or_else(|p| p.into_inner());
                }
                Ok(())
            }
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let _ = self.terminate();
    }
}

impl Context {
    /// `ctx.Pool(processes)`: a [`Pool`] whose workers use this context's start method.
    pub fn pool(&self, processes: Option<usize>) -> Result<Pool> {
        let mut b = Pool::builder().context(*self);
        b.processes = processes;
        b.build()
    }

    /// `ctx.Pool(...)` with options: a [`PoolBuilder`] bound to this context.
    pub fn pool_builder(&self) -> PoolBuilder {
        Pool::builder().context(*self)
    }
}

#[doc(hidden)]
pub mod root_exports {
    pub use super::{AsyncResult, ImapIter, Pool, PoolBuilder, ThreadPool};
}
