//! The parent's side of a process [`Pool`](super::Pool): one thread that hands chunks to
//! idle workers, reads their results, runs callbacks, and replaces workers that retire
//! (`maxtasksperchild`), die or overrun the task timeout (CPython's `_handle_tasks`,
//! `_handle_results` and `_handle_workers` in one `poll(2)` loop).
//!
//! It waits on one descriptor per worker connection, one sentinel per worker and a wake
//! pipe that submissions write to, so a worker that dies at any instant is seen at once:
//! the chunk it held fails with [`Error::WorkerDied`] and a replacement starts.

use super::result::{copy_error, lock};
use super::worker::{pool_worker, FromWorker, InitSpec, ItemError, TaskMsg, ToWorker};
use crate::codec::ByteBuf;
use crate::connection::Connection;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::process::Process;
use crate::reduction::SharedFd;
use serde_bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// A job's results as they come back from workers: decoded into the job's type by the
/// typed wrapper in `mod.rs`.
pub(crate) trait JobSink: Send + Sync {
    /// `results` holds the encoded results of the `count` items from `start` on, or
    /// why the whole chunk failed.
    fn deliver(
        &self,
        start: usize,
        count: usize,
        results: std::result::Result<&[u8], ItemError>,
        task: &str,
    );
    fn fail(&self, start: usize, count: usize, err: &Error);
    fn fail_rest(&self, err: &Error);
    fn set_total(&self, total: usize);
    fn cancelled(&self) -> bool;
}

/// Encoded items of one task, ready to go to a worker.
pub(crate) struct Chunk {
    pub job: u64,
    pub start: usize,
    pub task: &'static str,
    /// The items' argument tuples, encoded as one sequence.
    pub data: Vec<u8>,
    pub count: usize,
    pub fds: Vec<OwnedFd>,
}

impl Chunk {
    pub(crate) fn new(job: u64, start: usize, task: &'static str) -> Self {
        Chunk {
            job,
            start,
            task,
            data: Vec::new(),
            count: 0,
            fds: Vec::new(),
        }
    }
    pub(crate) fn len(&self) -> usize {
        self.count
    }
}

struct Job {
    sink: Arc<dyn JobSink>,
    /// Chunks queued or running.
    in_flight: usize,
    /// More chunks may come (an `imap` feeder is still reading its input).
    feeding: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Phase {
    Running,
    Closed,
    Terminated,
}

pub(crate) struct State {
    pub phase: Phase,
    pending: VecDeque<Chunk>,
    jobs: HashMap<u64, Job>,
    next_job: u64,
    /// Set when the initializer failed: every task fails with (a copy of) it.
    broken: Option<Error>,
    /// The supervisor has finished (all workers gone).
    pub finished: bool,
}

/// What the pool handle, the feeders and the supervisor share.
pub(crate) struct Shared {
    pub state: Mutex<State>,
    pub finished_cv: Condvar,
    wake_tx: UnixStream,
    wake_rx: UnixStream,
    /// A wake-up byte is in the pipe and not drained yet: later wakes need not write.
    wake_pending: AtomicBool,
}

impl Shared {
    pub(crate) fn new() -> Result<Arc<Self>> {
        let (wake_tx, wake_rx) = UnixStream::pair()?;
        wake_tx.set_nonblocking(true)?;
        wake_rx.set_nonblocking(true)?;
        Ok(Arc::new(Shared {
            state: Mutex::new(State {
                phase: Phase::Running,
                pending: VecDeque::new(),
                jobs: HashMap::new(),
                next_job: 0,
                broken: None,
                finished: false,
            }),
            finished_cv: Condvar::new(),
            wake_tx,
            wake_rx,
            wake_pending: AtomicBool::new(false),
        }))
    }

    pub(crate) fn wake(&self) {
        if self.wake_pending.swap(true, Ordering::AcqRel) {
            return; // the supervisor has a wake-up coming and reads the state after it
        }
        // a full pipe already holds a wake-up
        let _ = (&self.wake_tx).write(&[1]);
    }

    fn drain_wake(&self) {
        let mut buf = [0u8; 64];
        while let Ok(n) = (&self.wake_rx).read(&mut buf) {
            if n < buf.len() {
                break;
            }
        }
        // cleared after draining (a wake that skipped its write before this point changed
        // the state before it, and the loop reads the state after this); a wake after
        // this point writes again. Clearing first would let a byte written meanwhile be
        // drained while the flag stays set, and every later wake would be skipped.
        self.wake_pending.store(false, Ordering::Release);
    }

    fn not_running(st: &State) -> Option<Error> {
        if let Some(e) = &st.broken {
            return Some(copy_error(e));
        }
        match st.phase {
            Phase::Running => None,
            _ => Some(Error::invalid("Pool not running")),
        }
    }

    /// Registers a job whose chunks follow (`feeding`) or are all given now.
    pub(crate) fn submit(
        &self,
        sink: Arc<dyn JobSink>,
        chunks: Vec<Chunk>,
        feeding: bool,
        id: u64,
    ) -> Result<()> {
        let mut st = lock(&self.state);
        if let Some(e) = Self::not_running(&st) {
            return Err(e);
        }
        if feeding || !chunks.is_empty() {
            st.jobs.insert(
                id,
                Job {
                    sink,
                    in_flight: chunks.len(),
                    feeding,
                },
            );
        }
        st.pending.extend(chunks);
        drop(st);
        self.wake();
        Ok(())
    }

    pub(crate) fn new_job_id(&self) -> u64 {
        let mut st = lock(&self.state);
        st.next_job += 1;
        st.next_job
    }

    /// One more chunk of a feeding job. `Err` when the pool stopped (the feeder ends).
    pub(crate) fn push_chunk(&self, chunk: Chunk) -> Result<()> {
        let mut st = lock(&self.state);
        if st.phase == Phase::Terminated || st.broken.is_some() {
            return Err(
                Self::not_running(&st).unwrap_or_else(|| Error::invalid("Pool not running"))
            );
        }
        let Some(job) = st.jobs.get_mut(&chunk.job) else {
            return Err(Error::invalid("job gone"));
        };
        job.in_flight += 1;
        st.pending.push_back(chunk);
        drop(st);
        self.wake();
        Ok(())
    }

    /// The feeder of `job` has read its whole input (`total` items).
    pub(crate) fn finish_feeding(&self, job: u64, total: usize) {
        let mut st = lock(&self.state);
        if let Some(j) = st.jobs.get_mut(&job) {
            j.sink.set_total(total);
            j.feeding = false;
        }
        Self::forget_if_done(&mut st, job);
        drop(st);
        self.wake();
    }

    fn forget_if_done(st: &mut State, job: u64) {
        if st
            .jobs
            .get(&job)
            .is_some_and(|j| j.in_flight == 0 && !j.feeding)
        {
            st.jobs.remove(&job);
        }
    }

    /// The input of an `imap` job failed after `at` items: those still arrive, the
    /// item at `at` is `err`, and the iteration ends there.
    pub(crate) fn input_failed(&self, job: u64, at: usize, err: &Error) {
        let mut st = lock(&self.state);
        if let Some(j) = st.jobs.get_mut(&job) {
            j.sink.fail(at, 1, err);
            j.sink.set_total(at + 1);
            j.feeding = false;
        }
        Self::forget_if_done(&mut st, job);
        drop(st);
        self.wake();
    }

    /// The feeder of `job` failed (input or encoding error): the job ends with `err`.
    pub(crate) fn abort_feeding(&self, job: u64, err: &Error) {
        let mut st = lock(&self.state);
        if let Some(j) = st.jobs.get_mut(&job) {
            j.sink.fail_rest(err);
            j.feeding = false;
        }
        Self::forget_if_done(&mut st, job);
        drop(st);
        self.wake();
    }
}

/// An initializer: its registered name, its encoded arguments and their descriptors.
pub(crate) type Init = (&'static str, Vec<u8>, Vec<OwnedFd>);

/// How workers are started (kept for replacements).
pub(crate) struct WorkerSpec {
    pub ctx: Context,
    pub init: Option<Init>,
    pub maxtasks: Option<u64>,
    pub task_timeout: Option<Duration>,
}

static WORKER_COUNTER: AtomicU32 = AtomicU32::new(0);

struct Busy {
    job: u64,
    start: usize,
    count: usize,
    task: &'static str,
    since: Instant,
}

pub(crate) struct Worker {
    process: Process,
    conn: Connection,
    busy: Option<Busy>,
    /// Retiring, killed or told to exit: takes no more chunks.
    stopping: bool,
}

impl Worker {
    fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// Kills and reaps a worker the pool gives up on (a failed pool start).
    pub(crate) fn abandon(&self) {
        let _ = self.process.kill();
        let _ = self.process.join_timeout(Duration::from_secs(5));
    }
}

impl WorkerSpec {
    pub(crate) fn start_worker(&self) -> Result<Worker> {
        let (ours, theirs) = crate::connection::pipe(true)?;
        let init = match &self.init {
            None => None,
            Some((task, args, fds)) => Some(InitSpec {
                task: task.to_string(),
                args: ByteBuf::from(args.clone()),
                fds: fds
                    .iter()
                    .map(|f| f.try_clone().map(SharedFd::new))
                    .collect::<std::io::Result<_>>()?,
            }),
        };
        let n = WORKER_COUNTER.fetch_add(1, Ordering::Relaxed) + 1;
        let method = self.ctx.get_start_method().as_str();
        let mut kind = method.to_string();
        if let Some(first) = kind.get_mut(0..1) {
            first.make_ascii_uppercase();
        }
        let process = Process::new(pool_worker, (theirs, init, self.maxtasks))
            .with_context(self.ctx)
            .with_daemon(true)
            .with_name(format!("{kind}PoolWorker-{n}"));
        process.start()?;
        Ok(Worker {
            process,
            conn: ours,
            busy: None,
            stopping: false,
        })
    }
}

/// The supervisor thread's loop; returns once the pool is closed and drained, or
/// terminated. Every worker is gone when it returns.
pub(crate) fn run(shared: Arc<Shared>, spec: WorkerSpec, mut workers: Vec<Worker>, size: usize) {
    let mut sup = Supervisor {
        shared,
        spec,
        size,
        early_deaths: 0,
        rbuf: Vec::new(),
    };
    sup.main_loop(&mut workers);
    sup.shutdown(&mut workers);
    let mut st = lock(&sup.shared.state);
    st.finished = true;
    drop(st);
    sup.shared.finished_cv.notify_all();
}

struct Supervisor {
    shared: Arc<Shared>,
    spec: WorkerSpec,
    size: usize,
    /// Workers that died holding no task, in a row: a start that keeps failing stops
    /// the respawning instead of looping forever.
    early_deaths: u32,
    /// Where workers' messages are read into (grown to the largest one so far).
    rbuf: Vec<u8>,
}

/// The largest read buffer the supervisor keeps between messages.
const MAX_KEPT_BUFFER: usize = 16 << 20;

enum Event {
    Wake,
    Conn(usize),
    Sentinel(usize),
}

impl Supervisor {
    fn main_loop(&mut self, workers: &mut Vec<Worker>) {
        loop {
            // replacements first, so that they get chunks in this round: a worker that
            // sends nothing would not wake the wait below
            self.top_up(workers);
            // hand chunks to idle workers
            let mut sends = Vec::new();
            {
                let mut st = lock(&self.shared.state);
                if st.phase == Phase::Terminated {
                    return;
                }
                for (i, w) in workers.iter_mut().enumerate() {
                    if w.busy.is_some() || w.stopping {
                        continue;
                    }
                    let chunk = loop {
                        let Some(c) = st.pending.pop_front() else {
                            break None;
                        };
                        let cancelled = st.jobs.get(&c.job).is_none_or(|j| j.sink.cancelled());
                        if cancelled {
                            Self::chunk_done(&mut st, c.job);
                            continue;
                        }
                        break Some(c);
                    };
                    let Some(c) = chunk else { break };
                    w.busy = Some(Busy {
                        job: c.job,
                        start: c.start,
                        count: c.len(),
                        task: c.task,
                        since: Instant::now(),
                    });
                    sends.push((i, c));
                }
                let idle = workers.iter().all(|w| w.busy.is_none());
                if st.phase == Phase::Closed && st.pending.is_empty() && st.jobs.is_empty() && idle
                {
                    return;
                }
            }
            for (i, c) in sends {
                let msg = ToWorker::Task(TaskMsg {
                    job: c.job,
                    start: c.start as u64,
                    task: c.task.to_string(),
                    count: c.count as u32,
                    data: ByteBuf::from(c.data),
                    fds: c.fds.into_iter().map(SharedFd::new).collect(),
                });
                if let Err(e) = workers[i].conn.send(&msg) {
                    // the worker is dying: its sentinel will fail the chunk
                    log::debug!("pool: sending a task to a worker failed: {e}");
                }
            }
            match self.wait(workers) {
                Ok(events) => {
                    for ev in events {
                        match ev {
                            Event::Wake => self.shared.drain_wake(),
                            Event::Conn(i) => {
                                // a connection reads ahead: a second message that came
                                // with the first is already in its buffer, and poll(2)
                                // on the descriptor would not report it
                                let w = &mut workers[i];
                                self.read_result(w);
                                while !w.conn.closed() && w.conn.buffered_message() {
                                    self.read_result(w);
                                }
                            }
                            Event::Sentinel(i) => self.worker_exited(&mut workers[i]),
                        }
                    }
                    // forget workers that are gone and accounted for
                    workers.retain(|w| {
                        !(w.stopping
                            && w.busy.is_none()
                            && w.conn.closed()
                            && w.process.exitcode().is_some())
                    });
                }
                Err(e) => {
                    log::error!("pool supervisor: wait failed: {e}");
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            self.check_timeouts(workers);
        }
    }

    /// Starts workers until the pool has `size` that take tasks.
    fn top_up(&mut self, workers: &mut Vec<Worker>) {
        {
            let st = lock(&self.shared.state);
            if st.phase == Phase::Terminated || st.broken.is_some() {
                return;
            }
        }
        while workers.iter().filter(|w| !w.stopping).count() < self.size {
            if self.early_deaths >= 20 {
                self.break_pool(Error::invalid(
                    "pool workers keep dying before taking a task; the pool stopped \
                     replacing them",
                ));
                return;
            }
            match self.spec.start_worker() {
                Ok(w) => workers.push(w),
                Err(e) => {
                    self.early_deaths += 1;
                    log::error!("pool: could not start a worker: {e}");
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
    }

    fn wait(&self, workers: &[Worker]) -> Result<Vec<Event>> {
        let mut fds: Vec<RawFd> = vec![self.shared.wake_rx.as_raw_fd()];
        let mut map = vec![Event::Wake];
        for (i, w) in workers.iter().enumerate() {
            if !w.conn.closed() {
                if let Ok(fd) = w.conn.fileno() {
                    fds.push(fd);
                    map.push(Event::Conn(i));
                }
            }
            // an exited worker stays readable here until worker_exited() has
            // accounted for it and the loop forgets it
            if let Ok(fd) = w.process.sentinel() {
                fds.push(fd);
                map.push(Event::Sentinel(i));
            }
        }
        let timeout = self.spec.task_timeout.and_then(|t| {
            workers
                .iter()
                .filter_map(|w| w.busy.as_ref())
                .map(|b| (b.since + t).saturating_duration_since(Instant::now()))
                .min()
        });
        let ready = crate::reduction::poll_fds(&fds, timeout)?;
        // results before deaths: a worker that sent its result and exited delivered it
        let mut events: Vec<Event> = Vec::new();
        let mut deaths = Vec::new();
        for i in ready {
            match std::mem::replace(&mut map[i], Event::Wake) {
                Event::Sentinel(w) => deaths.push(Event::Sentinel(w)),
                ev => events.push(ev),
            }
        }
        events.extend(deaths);
        Ok(events)
    }

    fn read_result(&mut self, w: &mut Worker) {
        // read into the supervisor's own buffer, reused from message to message (a
        // fresh buffer per chunk was faulted in page by page every time), and decoded in
        // place: the results stay borrowed from it. A worker's message carries no
        // descriptors.
        let mut rbuf = std::mem::take(&mut self.rbuf);
        let len = w.conn.recv_bytes_into_vec(&mut rbuf, usize::MAX);
        let msg = len.and_then(|n| crate::codec::decode_borrowed::<FromWorker<&Bytes>>(&rbuf[..n]));
        match msg {
            Ok(FromWorker::Done {
                job,
                start,
                results,
                retiring,
            }) => {
                self.early_deaths = 0;
                if retiring {
                    w.stopping = true;
                }
                // our own record of what the worker held decides where results go
                let Some(b) = w.busy.take() else {
                    log::error!("pool: a worker sent results it was not asked for");
                    return;
                };
                if (job, start) != (b.job, b.start as u64) {
                    log::error!("pool: a worker answered for another chunk");
                }
                let mut st = lock(&self.shared.state);
                if let Some(j) = st.jobs.get(&b.job) {
                    let sink = j.sink.clone();
                    drop(st);
                    sink.deliver(b.start, b.count, results.map(|r| &**r), b.task);
                    st = lock(&self.shared.state);
                }
                Self::chunk_done(&mut st, b.job);
            }
            Ok(FromWorker::InitFailed { message }) => {
                let task = self.spec.init.as_ref().map_or("", |i| i.0).to_string();
                let err = Error::TaskPanicked {
                    task,
                    message: format!("pool initializer failed: {message}"),
                    backtrace: String::new(),
                };
                w.stopping = true;
                if let Some(b) = w.busy.take() {
                    self.fail_chunk(&b, &err);
                }
                self.break_pool(err);
            }
            Err(_) => {
                // end of file or garbage: the worker is gone or unusable
                let _ = w.conn.close();
                w.stopping = true;
                let _ = w.process.kill();
            }
        }
        // a buffer grown for one huge chunk is not kept
        if rbuf.capacity() <= MAX_KEPT_BUFFER {
            self.rbuf = rbuf;
        }
    }

    fn worker_exited(&mut self, w: &mut Worker) {
        // read a result it sent just before exiting
        while !w.conn.closed() && w.conn.poll(Some(Duration::ZERO)).unwrap_or(false) {
            self.read_result(w);
        }
        let _ = w.process.join_timeout(Duration::from_millis(100));
        let exitcode = w.process.exitcode().unwrap_or(-libc::SIGKILL);
        let pid = w.pid().unwrap_or(0);
        let _ = w.conn.close();
        if let Some(b) = w.busy.take() {
            self.fail_chunk(&b, &Error::WorkerDied { pid, exitcode });
        } else if !w.stopping {
            self.early_deaths += 1;
        }
        w.stopping = true;
    }

    fn fail_chunk(&self, b: &Busy, err: &Error) {
        let mut st = lock(&self.shared.state);
        if let Some(j) = st.jobs.get(&b.job) {
            let sink = j.sink.clone();
            drop(st);
            sink.fail(b.start, b.count, err);
            st = lock(&self.shared.state);
        }
        Self::chunk_done(&mut st, b.job);
    }

    fn chunk_done(st: &mut State, job: u64) {
        if let Some(j) = st.jobs.get_mut(&job) {
            j.in_flight = j.in_flight.saturating_sub(1);
        }
        Shared::forget_if_done(st, job);
    }

    fn check_timeouts(&mut self, workers: &mut [Worker]) {
        let Some(limit) = self.spec.task_timeout else {
            return;
        };
        let now = Instant::now();
        for w in workers.iter_mut() {
            let overdue = w.busy.as_ref().is_some_and(|b| now >= b.since + limit);
            if overdue {
                let b = w.busy.take().expect("checked");
                let _ = w.process.kill();
                w.stopping = true;
                self.fail_chunk(&b, &Error::Timeout);
            }
        }
    }

    /// The initializer failed: fail everything outstanding and every later submission.
    fn break_pool(&self, err: Error) {
        let mut st = lock(&self.shared.state);
        let jobs: Vec<Arc<dyn JobSink>> = st.jobs.drain().map(|(_, j)| j.sink).collect();
        st.pending.clear();
        if st.broken.is_none() {
            st.broken = Some(copy_error(&err));
        }
        drop(st);
        for s in jobs {
            s.fail_rest(&err);
        }
    }

    fn shutdown(&mut self, workers: &mut Vec<Worker>) {
        let terminated = lock(&self.shared.state).phase == Phase::Terminated;
        if terminated {
            for w in workers.iter() {
                let _ = w.process.terminate();
            }
        } else {
            for w in workers.iter() {
                let _ = w.conn.send(&ToWorker::Exit);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        for w in workers.iter() {
            let left = deadline.saturating_duration_since(Instant::now());
            let _ = w.process.join_timeout(left);
            if w.process.exitcode().is_none() {
                let _ = w.process.kill();
                let _ = w.process.join_timeout(Duration::from_secs(5));
            }
        }
        workers.clear();
        // whatever is left fails: the pool was terminated with work outstanding
        let mut st = lock(&self.shared.state);
        let jobs: Vec<Arc<dyn JobSink>> = st.jobs.drain().map(|(_, j)| j.sink).collect();
        st.pending.clear();
        drop(st);
        let err = Error::invalid("the pool was terminated before the task completed");
        for s in jobs {
            s.fail_rest(&err);
        }
    }
}
