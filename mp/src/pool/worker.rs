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

/// A chunk of items of one task: `data[ends[i-1]..ends[i]]` is item `i`'s encoded
/// argument tuple; `item_fds[i]` (when not empty) how many of `fds` belong to item `i`.
#[derive(Serialize, Deserialize, Debug)]
pub(crate) struct TaskMsg {
    pub job: u64,
    pub start: u64,
    pub task: String,
    pub data: ByteBuf,
    pub ends: Vec<u32>,
    pub item_fds: Vec<u32>,
    pub fds: Vec<SharedFd>,
}

#[derive(Serialize, Deserialize, Debug)]
pub(crate) enum ToWorker {
    Task(TaskMsg),
    /// Finish: the pool is closing (Python's `None` sentinel on the task queue).
    Exit,
}

/// One item's outcome as it travels back.
#[derive(Serialize, Deserialize, Debug)]
pub(crate) enum Outcome {
    Ok(ByteBuf),
    Panicked { message: String },
    Failed { kind: String, message: String },
}

#[derive(Serialize, Deserialize, Debug)]
pub(crate) enum FromWorker {
    Done {
        job: u64,
        start: u64,
        outcomes: Vec<Outcome>,
        /// The worker reached `maxtasksperchild` and exits after this message.
        retiring: bool,
    },
    /// The initializer panicked (or could not run); the worker exits.
    InitFailed { message: String },
}

impl Outcome {
    /// The outcome of a failed call as the parent will see it.
    fn failed(e: Error) -> Outcome {
        let kind = e.variant_name().to_string();
        let message = match e {
            Error::NotRegistered { name } => name,
            Error::Codec(m) => m.into(),
            other => other.to_string(),
        };
        Outcome::Failed { kind, message }
    }

    /// Back to an [`Error`] in the parent (`task` names the task for a panic).
    pub(crate) fn into_error(self, task: &str) -> Error {
        match self {
            Outcome::Ok(_) => Error::invalid("not an error"),
            Outcome::Panicked { message } => Error::TaskPanicked {
                task: task.to_string(),
                message,
                backtrace: String::new(),
            },
            Outcome::Failed { kind, message } => match kind.as_str() {
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

pub(crate) fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "Box<dyn Any>".to_string()
    }
}

/// Runs one registered task call, a panic becoming its outcome.
fn call(task: &str, args: &[u8], fds: Vec<OwnedFd>) -> Outcome {
    let entry = match crate::spawn::task_by_name(task) {
        Ok(e) => e,
        Err(e) => return Outcome::failed(e),
    };
    match panic::catch_unwind(AssertUnwindSafe(|| (entry.call)(args, fds))) {
        Ok(Ok(bytes)) => Outcome::Ok(ByteBuf::from(bytes)),
        Ok(Err(e)) => Outcome::failed(e),
        Err(p) => Outcome::Panicked {
            message: panic_message(&*p),
        },
    }
}

fn run_chunk(t: TaskMsg) -> Vec<Outcome> {
    let mut fds = t.fds.into_iter().map(SharedFd::into_owned);
    let mut out = Vec::with_capacity(t.ends.len());
    let mut begin = 0usize;
    for (i, &end) in t.ends.iter().enumerate() {
        let end = end as usize;
        let Some(args) = t.data.get(begin..end) else {
            out.push(Outcome::failed(Error::Codec("malformed pool chunk".into())));
            continue;
        };
        begin = end;
        let n = t.item_fds.get(i).copied().unwrap_or(0) as usize;
        let item_fds: Vec<OwnedFd> = fds.by_ref().take(n).collect();
        out.push(call(&t.task, args, item_fds));
    }
    out
}

/// The worker's main loop: run the initializer, then chunks until told to exit, the
/// parent goes away, or `maxtasks` chunks are done.
#[crate::task]
pub(crate) fn pool_worker(conn: Connection, init: Option<InitSpec>, maxtasks: Option<u64>) {
    if let Some(init) = init {
        let fds = init.fds.into_iter().map(SharedFd::into_owned).collect();
        let message = match call(&init.task, &init.args, fds) {
            Outcome::Ok(_) => None,
            Outcome::Panicked { message } => Some(message),
            Outcome::Failed { kind, message } => Some(format!("{kind}: {message}")),
        };
        if let Some(message) = message {
            let _ = conn.send(&FromWorker::InitFailed { message });
            return;
        }
    }
    let mut done = 0u64;
    loop {
        let t = match conn.recv::<ToWorker>() {
            Ok(ToWorker::Task(t)) => t,
            // Exit, the parent closed the connection, or a message we cannot read
            Ok(ToWorker::Exit) | Err(_) => return,
        };
        let (job, start) = (t.job, t.start);
        let outcomes = run_chunk(t);
        done += 1;
        let retiring = maxtasks.is_some_and(|m| done >= m);
        let msg = FromWorker::Done {
            job,
            start,
            outcomes,
            retiring,
        };
        if conn.send(&msg).is_err() || retiring {
            return;
        }
    }
}

/// Encodes `args` (a task's argument tuple) into `data`, recording its end and the
/// descriptors its handles carry.
pub(crate) fn encode_item<A: Serialize>(
    args: &A,
    data: &mut Vec<u8>,
    ends: &mut Vec<u32>,
    item_fds: &mut Vec<u32>,
    fds: &mut Vec<OwnedFd>,
) -> Result<()> {
    let guard = crate::reduction::EncodeFds::begin();
    crate::codec::encode_into(args, data)?;
    let item = guard.finish();
    let end = u32::try_from(data.len()).map_err(|_| {
        Error::invalid("a pool chunk may not exceed 4 GiB: use a smaller chunksize")
    })?;
    ends.push(end);
    if !item.is_empty() || !item_fds.is_empty() {
        // first item with descriptors: earlier items had none
        item_fds.resize(ends.len() - 1, 0);
        item_fds.push(item.len() as u32);
        fds.extend(item);
    }
    Ok(())
}
