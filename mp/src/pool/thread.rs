//! [`ThreadPool`] (CPython's `multiprocessing.pool.ThreadPool` and
//! `multiprocessing.dummy.Pool`): the [`Pool`](super::Pool) API on threads of this process.
//! Tasks may be closures and values need not be serializable.

use super::result::{
    copy_error, lock, ApplySink, AsyncResult, Callback, ErrorCallback, ImapIter, ImapShared,
    MapSink, Sink,
};
use super::supervisor::Phase;
use super::worker::panic_message;
use super::{check_chunksize, default_chunksize};
use crate::error::{Error, Result};
use std::collections::VecDeque;
use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

/// A function a [`ThreadPool`] can run with arguments `Args` (a tuple): every
/// `Fn(A1, …, An) -> R + Send + Sync + 'static`, closures included, up to 8 arguments.
pub trait ThreadTask<Args>: Send + Sync + 'static {
    /// The function's result.
    type Output;
    /// Calls the function with the tuple's elements.
    fn call(&self, args: Args) -> Self::Output;
}

macro_rules! impl_thread_task {
    ($($a:ident),*) => {
        impl<F, R, $($a,)*> ThreadTask<($($a,)*)> for F
        where
            F: Fn($($a),*) -> R + Send + Sync + 'static,
        {
            type Output = R;
            #[allow(non_snake_case)]
            fn call(&self, ($($a,)*): ($($a,)*)) -> R {
                (self)($($a),*)
            }
        }
    };
}
impl_thread_task!();
impl_thread_task!(A1);
impl_thread_task!(A1, A2);
impl_thread_task!(A1, A2, A3);
impl_thread_task!(A1, A2, A3, A4);
impl_thread_task!(A1, A2, A3, A4, A5);
impl_thread_task!(A1, A2, A3, A4, A5, A6);
impl_thread_task!(A1, A2, A3, A4, A5, A6, A7);
impl_thread_task!(A1, A2, A3, A4, A5, A6, A7, A8);

type Delivery = Box<dyn FnOnce() + Send>;

/// A queued piece of work: `run` computes and returns the delivery for the result
/// thread; `fail` is what happens to it if the pool is terminated first.
struct Job {
    run: Box<dyn FnOnce() -> Delivery + Send>,
    fail: Box<dyn FnOnce(&Error) + Send>,
}

struct State {
    phase: Phase,
    queue: VecDeque<Job>,
    /// `imap` feeders still reading their input.
    feeders: usize,
}

struct Shared {
    state: Mutex<State>,
    work: Condvar,
}

impl Shared {
    fn push(&self, job: Job) -> Result<()> {
        let mut st = lock(&self.state);
        if st.phase != Phase::Running && st.feeders == 0 {
            return Err(Error::invalid("Pool not running"));
        }
        if st.phase == Phase::Terminated {
            return Err(Error::invalid("Pool not running"));
        }
        st.queue.push_back(job);
        drop(st);
        self.work.notify_one();
        Ok(())
    }
}

/// A pool of worker threads with the [`Pool`](super::Pool) API (Python's
/// `multiprocessing.pool.ThreadPool`, and `multiprocessing.dummy.Pool`).
///
/// ```
/// let pool = mp::ThreadPool::new(Some(4)).unwrap();
/// let offset = 10;
/// let out = pool.map(move |x: i32| x + offset, vec![1, 2, 3]).unwrap();
/// assert_eq!(out, [11, 12, 13]);
/// ```
pub struct ThreadPool {
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    results: Mutex<Option<(mpsc::Sender<Delivery>, JoinHandle<()>)>>,
    size: usize,
}

impl std::fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "<multiprocessing.pool.ThreadPool pool_size={}>",
            self.size
        )
    }
}

/// Runs one task; a panic becomes its error and is not printed (CPython's pool reports
/// a task's exception only through its result).
fn run_item<F: ThreadTask<Args>, Args>(f: &F, args: Args) -> Result<F::Output> {
    crate::spawn::catch_quietly(|| f.call(args)).map_err(|(message, backtrace)| {
        Error::TaskPanicked {
            task: std::any::type_name::<F>().to_string(),
            message,
            backtrace,
        }
    })
}

impl ThreadPool {
    /// `ThreadPool(processes)`: `processes` threads (`None` = the CPU count).
    pub fn new(processes: Option<usize>) -> Result<ThreadPool> {
        Self::start(processes, None)
    }

    /// `ThreadPool(processes, initializer)`: every thread runs `init` once first.
    pub fn with_initializer(
        processes: Option<usize>,
        init: impl Fn() + Send + Sync + 'static,
    ) -> Result<ThreadPool> {
        Self::start(processes, Some(Arc::new(init)))
    }

    fn start(
        processes: Option<usize>,
        init: Option<Arc<dyn Fn() + Send + Sync>>,
    ) -> Result<ThreadPool> {
        let size = processes.unwrap_or_else(crate::process::process_cpu_count);
        if size == 0 {
            return Err(Error::invalid("Number of processes must be at least 1"));
        }
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                phase: Phase::Running,
                queue: VecDeque::new(),
                feeders: 0,
            }),
            work: Condvar::new(),
        });
        let (tx, rx) = mpsc::channel::<Delivery>();
        let result_thread = std::thread::Builder::new()
            .name("mp-threadpool-results".into())
            .spawn(move || {
                for d in rx {
                    d();
                }
            })?;
        let mut threads = Vec::with_capacity(size);
        for i in 0..size {
            let sh = shared.clone();
            let tx = tx.clone();
            let init = init.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("Thread-{}", i + 1))
                    .spawn(move || {
                        if let Some(init) = init {
                            if let Err(p) = panic::catch_unwind(AssertUnwindSafe(|| init())) {
                                log::error!(
                                    "thread pool initializer panicked: {}",
                                    panic_message(&*p)
                                );
                            }
                        }
                        worker_loop(&sh, &tx)
                    })?,
            );
        }
        Ok(ThreadPool {
            shared,
            threads: Mutex::new(threads),
            results: Mutex::new(Some((tx, result_thread))),
            size,
        })
    }

    /// The number of worker threads.
    pub fn processes(&self) -> usize {
        self.size
    }

    fn submit(&self, job: Job) {
        if let Err(e) = self.shared.push_running(job) {
            let (job, e) = *e;
            (job.fail)(&e);
        }
    }

    /// `apply(f, args)`.
    pub fn apply<F: ThreadTask<Args>, Args: Send + 'static>(
        &self,
        f: F,
        args: Args,
    ) -> Result<F::Output>
    where
        F::Output: Send + 'static,
    {
        self.apply_async(f, args).get()
    }

    /// `apply_async(f, args)`.
    pub fn apply_async<F: ThreadTask<Args>, Args: Send + 'static>(
        &self,
        f: F,
        args: Args,
    ) -> AsyncResult<F::Output>
    where
        F::Output: Send + 'static,
    {
        self.apply_inner(f, args, None, None)
    }

    /// `apply_async(f, args, callback, error_callback)`.
    pub fn apply_async_with<F, Args, C, E>(
        &self,
        f: F,
        args: Args,
        callback: C,
        error_callback: E,
    ) -> AsyncResult<F::Output>
    where
        F: ThreadTask<Args>,
        Args: Send + 'static,
        F::Output: Send + 'static,
        C: FnOnce(&F::Output) + Send + 'static,
        E: FnOnce(&Error) + Send + 'static,
    {
        self.apply_inner(
            f,
            args,
            Some(Box::new(callback)),
            Some(Box::new(error_callback)),
        )
    }

    fn apply_inner<F: ThreadTask<Args>, Args: Send + 'static>(
        &self,
        f: F,
        args: Args,
        cb: Option<Callback<F::Output>>,
        ecb: Option<ErrorCallback>,
    ) -> AsyncResult<F::Output>
    where
        F::Output: Send + 'static,
    {
        let result = AsyncResult::new(cb, ecb);
        let sink = Arc::new(ApplySink(result.clone()));
        let fail_sink = sink.clone();
        self.submit(Job {
            run: Box::new(move || {
                let out = run_item(&f, args);
                Box::new(move || sink.deliver(0, vec![out]))
            }),
            fail: Box::new(move |e| fail_sink.fail_rest(e)),
        });
        result
    }

    fn map_inner<F, Args, I>(
        &self,
        f: F,
        items: I,
        chunksize: Option<usize>,
        cb: Option<Callback<Vec<F::Output>>>,
        ecb: Option<ErrorCallback>,
    ) -> AsyncResult<Vec<F::Output>>
    where
        F: ThreadTask<Args>,
        Args: Send + 'static,
        I: IntoIterator<Item = Args>,
        F::Output: Send + 'static,
    {
        let result = AsyncResult::new(cb, ecb);
        if let Some(Err(e)) = chunksize.map(check_chunksize) {
            result.complete(Err(e));
            return result;
        }
        let items: Vec<Args> = match super::pull_items(
            &mut items.into_iter(),
            usize::MAX,
            std::any::type_name::<F>(),
        ) {
            Ok(items) => items,
            Err(e) => {
                result.complete(Err(e));
                return result;
            }
        };
        let cs = chunksize.unwrap_or_else(|| default_chunksize(items.len(), self.size));
        let sink = Arc::new(MapSink::new(items.len(), result.clone()));
        let f = Arc::new(f);
        let mut items = items.into_iter();
        let mut start = 0;
        loop {
            let chunk: Vec<Args> = items.by_ref().take(cs).collect();
            if chunk.is_empty() {
                break;
            }
            let n = chunk.len();
            self.submit(chunk_job(f.clone(), start, chunk, sink.clone()));
            start += n;
        }
        result
    }

    /// `map(f, items)`.
    pub fn map<F, A, I>(&self, f: F, items: I) -> Result<Vec<F::Output>>
    where
        F: ThreadTask<(A,)>,
        A: Send + 'static,
        I: IntoIterator<Item = A>,
        F::Output: Send + 'static,
    {
        self.map_async(f, items).get()
    }

    /// `map(f, items, chunksize)`.
    pub fn map_chunked<F, A, I>(&self, f: F, items: I, chunksize: usize) -> Result<Vec<F::Output>>
    where
        F: ThreadTask<(A,)>,
        A: Send + 'static,
        I: IntoIterator<Item = A>,
        F::Output: Send + 'static,
    {
        self.map_inner(
            f,
            items.into_iter().map(|a| (a,)),
            Some(chunksize),
            None,
            None,
        )
        .get()
    }

    /// `map_async(f, items)`.
    pub fn map_async<F, A, I>(&self, f: F, items: I) -> AsyncResult<Vec<F::Output>>
    where
        F: ThreadTask<(A,)>,
        A: Send + 'static,
        I: IntoIterator<Item = A>,
        F::Output: Send + 'static,
    {
        self.map_inner(f, items.into_iter().map(|a| (a,)), None, None, None)
    }

    /// `map_async(f, items, callback, error_callback)`.
    pub fn map_async_with<F, A, I, C, E>(
        &self,
        f: F,
        items: I,
        callback: C,
        error_callback: E,
    ) -> AsyncResult<Vec<F::Output>>
    where
        F: ThreadTask<(A,)>,
        A: Send + 'static,
        I: IntoIterator<Item = A>,
        F::Output: Send + 'static,
        C: FnOnce(&Vec<F::Output>) + Send + 'static,
        E: FnOnce(&Error) + Send + 'static,
    {
        self.map_inner(
            f,
            items.into_iter().map(|a| (a,)),
            None,
            Some(Box::new(callback)),
            Some(Box::new(error_callback)),
        )
    }

    /// `map_async(f, items, chunksize)`.
    pub fn map_async_chunked<F, A, I>(
        &self,
        f: F,
        items: I,
        chunksize: usize,
    ) -> AsyncResult<Vec<F::Output>>
    where
        F: ThreadTask<(A,)>,
        A: Send + 'static,
        I: IntoIterator<Item = A>,
        F::Output: Send + 'static,
    {
        self.map_inner(
            f,
            items.into_iter().map(|a| (a,)),
            Some(chunksize),
            None,
            None,
        )
    }

    /// `starmap(f, tuples, chunksize)`.
    pub fn starmap_chunked<F, Args, I>(
        &self,
        f: F,
        items: I,
        chunksize: usize,
    ) -> Result<Vec<F::Output>>
    where
        F: ThreadTask<Args>,
        Args: Send + 'static,
        I: IntoIterator<Item = Args>,
        F::Output: Send + 'static,
    {
        self.map_inner(f, items, Some(chunksize), None, None).get()
    }

    /// `starmap(f, tuples)`.
    pub fn starmap<F, Args, I>(&self, f: F, items: I) -> Result<Vec<F::Output>>
    where
        F: ThreadTask<Args>,
        Args: Send + 'static,
        I: IntoIterator<Item = Args>,
        F::Output: Send + 'static,
    {
        self.starmap_async(f, items).get()
    }

    /// `starmap_async(f, tuples)`.
    pub fn starmap_async<F, Args, I>(&self, f: F, items: I) -> AsyncResult<Vec<F::Output>>
    where
        F: ThreadTask<Args>,
        Args: Send + 'static,
        I: IntoIterator<Item = Args>,
        F::Output: Send + 'static,
    {
        self.map_inner(f, items, None, None, None)
    }

    fn imap_inner<F, Args, I>(
        &self,
        f: F,
        items: I,
        chunksize: usize,
        ordered: bool,
    ) -> ImapIter<F::Output>
    where
        F: ThreadTask<Args>,
        Args: Send + 'static,
        I: Iterator<Item = Args> + Send + 'static,
        F::Output: Send + 'static,
    {
        let it = ImapShared::<F::Output>::new(ordered);
        let iter = ImapIter::new(it.clone());
        if let Err(e) = check_chunksize(chunksize) {
            it.fail_rest(&e);
            return iter;
        }
        {
            let mut st = lock(&self.shared.state);
            if st.phase != Phase::Running {
                drop(st);
                it.fail_rest(&Error::invalid("Pool not running"));
                return iter;
            }
            st.feeders += 1;
        }
        let shared = self.shared.clone();
        let limit = chunksize.saturating_mul(2 * self.size + 2);
        let f = Arc::new(f);
        let feeder = move || {
            let mut items = items;
            let mut start = 0usize;
            loop {
                if !it.wait_for_room(start, limit) {
                    break;
                }
                let chunk: Vec<Args> =
                    match super::pull_items(&mut items, chunksize, std::any::type_name::<F>()) {
                        Ok(chunk) => chunk,
                        Err(e) => {
                            // the items before arrive; the failure is the next one
                            it.deliver(start, vec![Err(e)]);
                            start += 1;
                            break;
                        }
                    };
                if chunk.is_empty() {
                    break;
                }
                let n = chunk.len();
                let sink: Arc<dyn Sink<F::Output>> = it.clone();
                if let Err(e) = shared.push(chunk_job(f.clone(), start, chunk, sink)) {
                    it.fail_rest(&e);
                    break;
                }
                start += n;
            }
            it.set_total(start);
            lock(&shared.state).feeders -= 1;
            shared.work.notify_all();
        };
        if let Err(e) = std::thread::Builder::new()
            .name("mp-threadpool-feeder".into())
            .spawn(feeder)
        {
            // the closure (and its `feeders` count) is gone with the failed spawn
            lock(&self.shared.state).feeders -= 1;
            let _ = e;
        }
        iter
    }

    /// `imap(f, items)`.
    pub fn imap<F, A, I>(&self, f: F, items: I) -> ImapIter<F::Output>
    where
        F: ThreadTask<(A,)>,
        A: Send + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: Send + 'static,
        F::Output: Send + 'static,
    {
        self.imap_inner(f, items.into_iter().map(|a| (a,)), 1, true)
    }

    /// `imap(f, items, chunksize)`.
    pub fn imap_chunked<F, A, I>(&self, f: F, items: I, chunksize: usize) -> ImapIter<F::Output>
    where
        F: ThreadTask<(A,)>,
        A: Send + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: Send + 'static,
        F::Output: Send + 'static,
    {
        self.imap_inner(f, items.into_iter().map(|a| (a,)), chunksize, true)
    }

    /// `imap_unordered(f, items)`.
    pub fn imap_unordered<F, A, I>(&self, f: F, items: I) -> ImapIter<F::Output>
    where
        F: ThreadTask<(A,)>,
        A: Send + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: Send + 'static,
        F::Output: Send + 'static,
    {
        self.imap_inner(f, items.into_iter().map(|a| (a,)), 1, false)
    }

    /// `imap_unordered(f, items, chunksize)`.
    pub fn imap_unordered_chunked<F, A, I>(
        &self,
        f: F,
        items: I,
        chunksize: usize,
    ) -> ImapIter<F::Output>
    where
        F: ThreadTask<(A,)>,
        A: Send + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: Send + 'static,
        F::Output: Send + 'static,
    {
        self.imap_inner(f, items.into_iter().map(|a| (a,)), chunksize, false)
    }

    /// `close()`: no more tasks; the threads finish the queued work and exit.
    pub fn close(&self) -> Result<()> {
        let mut st = lock(&self.shared.state);
        if st.phase == Phase::Running {
            st.phase = Phase::Closed;
        }
        drop(st);
        self.shared.work.notify_all();
        Ok(())
    }

    /// `terminate()`: queued tasks fail with [`Error::InvalidState`]; running ones
    /// finish (a thread cannot be killed), then the threads exit.
    pub fn terminate(&self) -> Result<()> {
        let queued: Vec<Job> = {
            let mut st = lock(&self.shared.state);
            st.phase = Phase::Terminated;
            st.queue.drain(..).collect()
        };
        self.shared.work.notify_all();
        let err = Error::invalid("the pool was terminated before the task completed");
        for j in queued {
            (j.fail)(&err);
        }
        self.join_threads()
    }

    /// `join()`: waits for the threads; [`Error::InvalidState`] unless closed or terminated.
    pub fn join(&self) -> Result<()> {
        if lock(&self.shared.state).phase == Phase::Running {
            return Err(Error::invalid(
                "Pool is still running: close() or terminate() it first",
            ));
        }
        self.join_threads()
    }

    fn join_threads(&self) -> Result<()> {
        let threads: Vec<JoinHandle<()>> = lock(&self.threads).drain(..).collect();
        for t in threads {
            let _ = t.join();
        }
        if let Some((tx, rt)) = lock(&self.results).take() {
            drop(tx);
            let _ = rt.join();
        }
        Ok(())
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        let _ = self.terminate();
    }
}

impl Shared {
    /// Queues a job of a direct call (not a feeder): refused once the pool is closed.
    fn push_running(&self, job: Job) -> std::result::Result<(), Box<(Job, Error)>> {
        let mut st = lock(&self.state);
        if st.phase != Phase::Running {
            return Err(Box::new((job, Error::invalid("Pool not running"))));
        }
        st.queue.push_back(job);
        drop(st);
        self.work.notify_one();
        Ok(())
    }
}

fn chunk_job<F, Args>(
    f: Arc<F>,
    start: usize,
    chunk: Vec<Args>,
    sink: Arc<dyn Sink<F::Output>>,
) -> Job
where
    F: ThreadTask<Args>,
    Args: Send + 'static,
    F::Output: Send + 'static,
{
    let n = chunk.len();
    let fail_sink = sink.clone();
    Job {
        run: Box::new(move || {
            let outs: Vec<_> = chunk.into_iter().map(|a| run_item(&*f, a)).collect();
            Box::new(move || sink.deliver(start, outs))
        }),
        fail: Box::new(move |e| {
            fail_sink.deliver(start, (0..n).map(|_| Err(copy_error(e))).collect())
        }),
    }
}

fn worker_loop(sh: &Shared, tx: &mpsc::Sender<Delivery>) {
    loop {
        let job = {
            let mut st = lock(&sh.state);
            loop {
                if st.phase == Phase::Terminated {
                    return;
                }
                if let Some(j) = st.queue.pop_front() {
                    break j;
                }
                if st.phase == Phase::Closed && st.feeders == 0 {
                    return;
                }
                st = sh.work.wait(st).unwrap_or_else(|p| p.into_inner());
            }
        };
        let delivery = (job.run)();
        if tx.send(delivery).is_err() {
            return;
        }
    }
}
