//! [`spawn()`]: the `std::thread::spawn`-like shortcut that runs one task in a new
//! process and returns its value through a [`JoinHandle`] (no CPython counterpart: the
//! closest is `Pool(1).apply`). Kept apart from [`crate::spawn`], the child bootstrap
//! (CPython's `multiprocessing.spawn`), which it only shares a word with.

use crate::codec;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::process::Process;
use crate::spawn::{self, Outcome, TaskFn};
use serde::{de::DeserializeOwned, Serialize};
use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

/// The handle [`spawn()`](spawn()) returns: join it for the task's value.
pub struct JoinHandle<R> {
    process: Process,
    task: &'static str,
    _r: PhantomData<fn() -> R>,
}

impl<R: DeserializeOwned> JoinHandle<R> {
    /// Waits for the task and returns its value; a panic gives
    /// [`Error::TaskPanicked`], a child that died gives [`Error::WorkerDied`].
    pub fn join(self) -> Result<R> {
        self.join_inner(None)
    }

    /// As [`join`](Self::join), failing with [`Error::Timeout`] after `timeout`
    /// (the child keeps running; it is joined when the program exits).
    pub fn join_timeout(self, timeout: Duration) -> Result<R> {
        self.join_inner(Some(timeout))
    }

    fn join_inner(self, timeout: Option<Duration>) -> Result<R> {
        let outcome = self.process.take_result(timeout)?;
        let _ = self.process.join_timeout(Duration::from_secs(10));
        match outcome {
            Outcome::Ok(bytes) => codec::decode(&bytes),
            Outcome::Panicked { message, backtrace } => Err(Error::TaskPanicked {
                task: self.task.to_string(),
                message,
                backtrace,
            }),
            Outcome::Failed(msg) => Err(Error::Remote {
                kind: "Error".into(),
                message: msg,
                traceback: String::new(),
            }),
        }
    }

    /// The process running the task.
    pub fn process(&self) -> &Process {
        &self.process
    }
}

/// Runs `f(args)` in a new process and returns a handle to its value, like
/// `std::thread::spawn` (default start method).
///
/// ```
/// # mp::test_support!();
/// #[mp::task]
/// fn square(x: u64) -> u64 { x * x }
///
/// # fn main() -> mp::Result<()> {
/// let h = mp::spawn(square, (7,))?;
/// assert_eq!(h.join()?, 49);
/// # Ok(()) }
/// ```
pub fn spawn<F, Args>(f: F, args: Args) -> Result<JoinHandle<F::Output>>
where
    F: TaskFn<Args>,
    Args: Serialize + Send + 'static,
    F::Output: DeserializeOwned,
{
    spawn_in(None, f, args)
}

fn spawn_in<F, Args>(ctx: Option<Context>, f: F, args: Args) -> Result<JoinHandle<F::Output>>
where
    F: TaskFn<Args>,
    Args: Serialize + Send + 'static,
    F::Output: DeserializeOwned,
{
    let task = spawn::task_name_of::<F>()?;
    let mut process = Process::new(f, args).want_result();
    if let Some(ctx) = ctx {
        process = process.with_context(ctx);
    }
    process.start()?;
    Ok(JoinHandle {
        process,
        task,
        _r: PhantomData,
    })
}

impl<R> fmt::Debug for JoinHandle<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("task", &self.task)
            .field("process", &self.process)
            .finish()
    }
}

impl Context {
    /// [`spawn()`](crate::spawn()) under this context's start method.
    pub fn spawn<F, Args>(&self, f: F, args: Args) -> Result<JoinHandle<F::Output>>
    where
        F: TaskFn<Args>,
        Args: Serialize + Send + 'static,
        F::Output: DeserializeOwned,
    {
        spawn_in(Some(*self), f, args)
    }
}
