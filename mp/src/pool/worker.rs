//! The worker process of a [`Pool`](super::Pool) (CPython's `pool.worker`) and the
//! messages it exchanges with the parent over its own duplex connection.
//!
//! The parent sends a worker one chunk at a time and only when it is idle, so it always
//! knows which chunk a worker holds: a worker that dies fails exactly that chunk
//! (`WorkerDied`), and a chunk that runs past the pool's task timeout is failed and its
//! worker killed. Each item runs under `catch_unwind`, so a panic fails only its item.

use crate::codec::ByteBuf;
use crate::connection::Connection;
use crate::error::{Error, Result};
use crate::reduction::SharedFd;
pub(crate) use crate::spawn::panic_message;
use serde::{Deserialize, Serialize};
use std::os::fd::OwnedFd;
use std::panic::{self, AssertUnwindSafe};

/// The initializer a worker runs before its first task: a registered task's name and
/// its encoded arguments, with the descriptors those carry.
#[derive(Serialize, Deserialize, Debug)]
pub(crate) struct InitSpec {
    pub task: String,
    pub args: ByteBuf,
    pub fds: Vec<SharedFd>,
}

/// A chunk of items of one task: `data` is the postcard encoding of the sequence of its
/// `count` argument tuples, `fds` the descriptors their handles carry, in order.
#[derive(Serialize, Deserialize, Debug)]
pub(crate) struct TaskMsg {
    pub job: u64,
    pub start: u64,
    pub task: String,
    pub count: u32,
    pub data: ByteBuf,
    pub fds: Vec<SharedFd>,
}

#[derive(Serialize, Deserialize, Debug)]
pub(crate) enum ToWorker {
    Task(TaskMsg),
    /// Finish: the pool is closing (Python's `None` sentinel on the task queue).
    Exit,
}

/// Why one item (or a whole chunk) failed, as it travels back to the parent.
#[doc(hidden)]
#[derive(Serialize, Deserialize, Debug)]
pub enum ItemError {
    /// The task panicked with this message (and this backtrace, when captured).
    Panicked { message: String, backtrace: String },
    /// An [`Error`] of this variant name, with its message.
    Failed { kind: String, message: String },
}

/// What a worker sends back. `B` is the chunk's encoded results: a [`ByteBuf`] as the
/// worker sends them, a `&Bytes` borrowed from the received message in the parent (so
/// the supervisor does not copy every chunk's results once more).
#[derive(Serialize, Deserialize, Debug)]
pub(crate) enum FromWorker<B> {
    Done {
        job: u64,
        start: u64,
        /// The encoded [`ChunkResults`] of the chunk, or why the whole chunk failed
        /// (its arguments could not be decoded, the task is not registered …).
        results: std::result::Result<B, ItemError>,
        /// The worker reached `maxtasksperchild` and exits after this message.
        retiring: bool,
    },
    /// The initializer panicked (or could not run); the worker exits.
    InitFailed { message: String },
}

impl ItemError {
    /// The error of a failed call as the parent will see it.
    pub(crate) fn failed(e: Error) -> ItemError {
        let kind = e.variant_name().to_string();
        let message = match e {
            Error::NotRegistered { name } => name,
            Error::Codec(m) => m.into(),
            other => other.to_string(),
        };
        ItemError::Failed { kind, message }
    }

    /// Back to an [`Error`] in the parent (`task` names the task for a panic).
    pub(crate) fn into_error(self, task: &str) -> Error {
        match self {
            ItemError::Panicked { message, backtrace } => Error::TaskPanicked {
                task: task.to_string(),
                message,
                backtrace,
            },
            ItemError::Failed { kind, message } => match kind.as_str() {
                "NotRegistered" => Error::NotRegistered { name: message },
                "Codec" => Error::Codec(message.into()),
                _ => Error::Remote {
                    kind,
                    message,
                    traceback: String::new(),
                },
            },
        }
    }
}

/// Runs `f` on every item of a chunk, a panic failing only its own item (what
/// `#[mp::task]`'s chunk trampoline calls).
#[doc(hidden)]
pub fn run_items<A, R>(items: Vec<A>, f: impl Fn(A) -> R) -> ChunkResults<R> {
    let mut values = Vec::with_capacity(items.len());
    let mut errors = Vec::new();
    crate::spawn::quietly(|| {
        for (i, a) in items.into_iter().enumerate() {
            match crate::spawn::catch_recorded(|| f(a)) {
                Ok(v) => values.push(v),
                Err((message, backtrace)) => {
                    errors.push((i as u32, ItemError::Panicked { message, backtrace }))
                }
            }
        }
    });
    (values, errors)
}

/// A chunk's results, as they travel: the successful values in item order, then the
/// failed items by index (increasing). A chunk without failures is a plain `Vec<R>` on
/// the wire, with no per-item tag.
pub type ChunkResults<R> = (Vec<R>, Vec<(u32, ItemError)>);

/// Encodes a chunk's results in one go; when that fails (a result whose `Serialize`
/// errs), each unencodable result becomes its item's error, so the others still arrive
/// (CPython's `MaybeEncodingError` fails only that item).
pub(crate) fn encode_items<R: Serialize>(out: &ChunkResults<R>) -> Result<Vec<u8>> {
    let (values, errors) = out;
    let mut buf = Vec::new();
    if errors.is_empty() && super::plain::encode_into(values, &mut buf) {
        return Ok(buf);
    }
    buf.reserve(capacity_for::<R>(values.len()));
    buf.push(super::plain::CODEC);
    if crate::codec::encode_into(out, &mut buf).is_ok() {
        return Ok(buf);
    }
    // item index of each value: the indices the errors leave free, in order
    let mut failed = errors.iter().map(|(i, _)| *i).peekable();
    let mut next = 0u32;
    let mut index_of_value = Vec::with_capacity(values.len());
    for _ in values {
        while failed.next_if(|&i| i == next).is_some() {
            next += 1;
        }
        index_of_value.push(next);
        next += 1;
    }
    let mut kept: Vec<&R> = Vec::with_capacity(values.len());
    let mut all_errors: Vec<(u32, &ItemError)> = errors.iter().map(|(i, e)| (*i, e)).collect();
    let mut unencodable = Vec::new();
    for (v, &i) in values.iter().zip(&index_of_value) {
        match crate::codec::encode(v) {
            Ok(_) => kept.push(v),
            Err(e) => unencodable.push((
                i,
                ItemError::failed(Error::Codec(
                    format!("the task's result could not be encoded: {e}").into(),
                )),
            )),
        }
    }
    all_errors.extend(unencodable.iter().map(|(i, e)| (*i, e)));
    all_errors.sort_by_key(|(i, _)| *i);
    buf.clear();
    buf.push(super::plain::CODEC);
    crate::codec::encode_into(&(kept, all_errors), &mut buf)?;
    Ok(buf)
}

/// A first guess at the encoded size of `n` values of `T` (postcard's varints make
/// plain numbers at most about their in-memory size), capped at 64 MiB.
fn capacity_for<T>(n: usize) -> usize {
    n.saturating_mul(std::mem::size_of::<T>() + 2)
        .saturating_add(16)
        .min(64 << 20)
}

/// `call_chunk` of a registration that is not a function (a `Run` type).
#[doc(hidden)]
pub fn not_a_pool_task(_: &[u8], _: Vec<OwnedFd>) -> Result<Vec<u8>> {
    Err(Error::invalid("a Run type cannot be a pool task"))
}

/// Runs one registered task call (the initializer), a panic becoming its error.
fn call(task: &str, args: &[u8], fds: Vec<OwnedFd>) -> std::result::Result<(), ItemError> {
    let entry = crate::spawn::task_by_name(task).map_err(ItemError::failed)?;
    match panic::catch_unwind(AssertUnwindSafe(|| (entry.call)(args, fds))) {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(ItemError::failed(e)),
        Err(p) => Err(ItemError::Panicked {
            message: panic_message(&*p),
            backtrace: String::new(),
        }),
    }
}

fn run_chunk(t: TaskMsg) -> std::result::Result<ByteBuf, ItemError> {
    let entry = crate::spawn::task_by_name(&t.task).map_err(ItemError::failed)?;
    let fds = t.fds.into_iter().map(SharedFd::into_owned).collect();
    // a panic outside any item (decoding a handle, say) fails the chunk, not the worker;
    // like the items' own panics it is reported through the results, not printed
    match crate::spawn::catch_quietly(|| (entry.call_chunk)(&t.data, fds)) {
        Ok(Ok(bytes)) => Ok(ByteBuf::from(bytes)),
        Ok(Err(e)) => Err(ItemError::failed(e)),
        Err((message, backtrace)) => Err(ItemError::Panicked { message, backtrace }),
    }
}

/// The worker's main loop: run the initializer, then chunks until told to exit, the
/// parent goes away, or `maxtasks` chunks are done.
#[crate::task]
pub(crate) fn pool_worker(conn: Connection, init: Option<InitSpec>, maxtasks: Option<u64>) {
    keep_heap();
    if let Some(init) = init {
        let fds = init.fds.into_iter().map(SharedFd::into_owned).collect();
        let message = match call(&init.task, &init.args, fds) {
            Ok(()) => None,
            Err(ItemError::Panicked { message, .. }) => Some(message),
            Err(ItemError::Failed { kind, message }) => Some(format!("{kind}: {message}")),
        };
        if let Some(message) = message {
            let _ = conn.send(&FromWorker::<ByteBuf>::InitFailed { message });
            return;
        }
    }
    let mut done = 0u64;
    // tasks are read into one buffer, reused (a fresh one per chunk cost a copy into
    // new memory every time)
    let mut rbuf = Vec::new();
    loop {
        let t = match conn.recv_via::<ToWorker>(&mut rbuf) {
            Ok(ToWorker::Task(t)) => t,
            // Exit, the parent closed the connection, or a message we cannot read
            Ok(ToWorker::Exit) | Err(_) => return,
        };
        let (job, start) = (t.job, t.start);
        let results = run_chunk(t);
        done += 1;
        let retiring = maxtasks.is_some_and(|m| done >= m);
        let msg = FromWorker::Done {
            job,
            start,
            results,
            retiring,
        };
        if conn.send(&msg).is_err() || retiring {
            return;
        }
        if rbuf.capacity() > KEPT_TASK_BUFFER {
            rbuf = Vec::new();
        }
    }
}

/// The largest task buffer a worker keeps between chunks.
const KEPT_TASK_BUFFER: usize = 16 << 20;

/// Tells glibc's malloc to keep freed memory (up to 64 MiB) in this worker's heap
/// instead of handing it back to the kernel after every chunk: each chunk allocates its
/// message, argument, value and result buffers afresh, and with the default thresholds
/// (128 KiB) every one of them was faulted in again page by page (`perf record` of
/// `Pool(2).map` of 100 000 items: a quarter of all CPU time in `exc_page_fault`, plus
/// `brk`/`madvise`). The worker's peak RSS is unchanged: only what a chunk used stays.
fn keep_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator tunables, under glibc's own arena lock (the
    // worker's parent-watch thread may already run: it does not allocate).
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 64 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
    }
}

/// Decodes a chunk's argument tuples (what `#[mp::task]`'s chunk trampoline calls):
/// plain numbers as their bytes, anything else with the codec (see [`super::plain`]).
pub(crate) fn decode_items<A: serde::de::DeserializeOwned>(
    data: &[u8],
    fds: Vec<OwnedFd>,
) -> Result<Vec<A>> {
    match super::plain::split_tag(data)? {
        (super::plain::PLAIN, bytes) => super::plain::decode(bytes, None),
        (_, bytes) => crate::codec::decode_with_fds(bytes, fds),
    }
}

/// Encodes a chunk's argument tuples as one sequence, with the descriptors their
/// handles carry: after a tag byte, their bytes if they are plain numbers, else their
/// codec encoding (see [`super::plain`]).
pub(crate) fn fill_chunk<A: Serialize>(
    c: &mut super::supervisor::Chunk,
    items: &[A],
) -> Result<()> {
    let mut data = Vec::new();
    let mut fds = Vec::new();
    if !super::plain::encode_into(items, &mut data) {
        // sized up front: growing the buffer by doubling cost more than the encoding
        let guard = crate::reduction::EncodeFds::begin();
        data.reserve(capacity_for::<A>(items.len()));
        data.push(super::plain::CODEC);
        let encoded = crate::codec::encode_into(items, &mut data);
        fds = guard.finish();
        encoded?;
    }
    if u32::try_from(data.len()).is_err() || u32::try_from(items.len()).is_err() {
        return Err(Error::invalid(
            "a pool chunk may not exceed 4 GiB: use a smaller chunksize",
        ));
    }
    c.data = data;
    c.count = items.len();
    c.fds = fds;
    Ok(())
}
