//! Start methods and contexts (CPython's `multiprocessing.context`).
//!
//! A [`Context`] fixes the start method for everything created through it, so one
//! program can use fork, spawn and forkserver side by side:
//!
//! ```
//! # mp::test_support!();
//! #[mp::task]
//! fn noop() {}
//!
//! # fn main() -> mp::Result<()> {
//! for method in mp::get_all_start_methods() {
//!     let ctx = mp::get_context(Some(method))?;
//!     let mut p = ctx.process(noop, ());
//!     p.start()?;
//!     p.join()?;
//!     assert_eq!(p.exitcode(), Some(0));
//! }
//! # Ok(()) }
//! ```

use crate::error::{Error, Result};
use crate::process::Process;
use crate::spawn::TaskFn;
use serde::Serialize;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Mutex;

/// How a child process is started (Python's start method names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum StartMethod {
    /// `"fork"`: `fork()` the parent. Fast, but forking a multi-threaded program is
    /// unsafe (only the calling thread survives, locks held by others stay held), so
    /// it is never the default.
    Fork,
    /// `"spawn"`: execute the program's binary again; only the task runs in it.
    Spawn,
    /// `"forkserver"` (the default): a small single-threaded server, spawned on first
    /// use, forks each child: safe like spawn, close to fork in speed.
    ForkServer,
}

impl StartMethod {
    /// Python's name: `"fork"`, `"spawn"` or `"forkserver"`.
    pub fn as_str(self) -> &'static str {
        match self {
            StartMethod::Fork => "fork",
            StartMethod::Spawn => "spawn",
            StartMethod::ForkServer => "forkserver",
        }
    }
}

impl fmt::Display for StartMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for StartMethod {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "fork" => Ok(StartMethod::Fork),
            "spawn" => Ok(StartMethod::Spawn),
            "forkserver" => Ok(StartMethod::ForkServer),
            other => Err(Error::invalid(format!("cannot find context for {other:?}"))),
        }
    }
}

static START_METHOD: Mutex<Option<StartMethod>> = Mutex::new(None);
static EXECUTABLE: Mutex<Option<PathBuf>> = Mutex::new(None);
static PRELOAD: Mutex<Vec<String>> = Mutex::new(Vec::new());

use crate::util::lock;

/// Python's `multiprocessing.get_all_start_methods()`: the default first.
pub fn get_all_start_methods() -> Vec<StartMethod> {
    vec![
        StartMethod::ForkServer,
        StartMethod::Spawn,
        StartMethod::Fork,
    ]
}

/// Python's `get_start_method()`: the global start method, fixing it to the default
/// (forkserver) if it was not set.
pub fn get_start_method() -> StartMethod {
    *lock(&START_METHOD).get_or_insert(StartMethod::ForkServer)
}

/// Python's `get_start_method(allow_none=True)`: the start method if it was set or fixed.
pub fn start_method_if_set() -> Option<StartMethod> {
    *lock(&START_METHOD)
}

/// Python's `set_start_method(method)`: an error if it was already set (or fixed by
/// use); see [`set_start_method_force`].
pub fn set_start_method(method: StartMethod) -> Result<()> {
    let mut m = lock(&START_METHOD);
    if m.is_some() {
        return Err(Error::invalid("context has already been set"));
    }
    *m = Some(method);
    Ok(())
}

/// Python's `set_start_method(method, force=True)`; `None` unsets it.
pub fn set_start_method_force(method: Option<StartMethod>) {
    *lock(&START_METHOD) = method;
}

/// Python's `get_context(method)`: `None` is the default context, which follows
/// [`set_start_method`]; `Some(m)` always uses `m`.
pub fn get_context(method: Option<StartMethod>) -> Result<Context> {
    Ok(Context { method })
}

/// Python's `set_executable(path)`: the binary spawn executes (and the fork server
/// started after the call). By default, the running program's own binary.
pub fn set_executable(path: impl AsRef<Path>) {
    *lock(&EXECUTABLE) = Some(path.as_ref().to_path_buf());
}

/// The binary a spawned child executes.
pub(crate) fn executable() -> Result<PathBuf> {
    match lock(&EXECUTABLE).clone() {
        Some(p) => Ok(p),
        None => Ok(std::env::current_exe()?),
    }
}

/// Python's `set_forkserver_preload(names)`: names of registered zero-argument tasks
/// that the fork server runs once when it starts (a server started later picks them up).
pub fn set_forkserver_preload(names: &[&str]) {
    *lock(&PRELOAD) = names.iter().map(|s| s.to_string()).collect();
}

pub(crate) fn forkserver_preload() -> Vec<String> {
    lock(&PRELOAD).clone()
}

/// A start method bound to the constructors of `mp` (Python's context objects).
/// Every constructor of the crate is a method here: `ctx.process(f, args)`,
/// `ctx.pipe(duplex)`, `ctx.queue()`, `ctx.lock()`, `ctx.value(v)` …
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Context {
    method: Option<StartMethod>,
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<Context {}>", self.get_start_method())
    }
}

impl Context {
    /// The start method this context uses.
    pub fn get_start_method(&self) -> StartMethod {
        self.method.unwrap_or_else(get_start_method)
    }

    /// The start method if this context fixes one (`None` for the default context).
    pub fn fixed_method(&self) -> Option<StartMethod> {
        self.method
    }

    /// `ctx.Process(target=f, args=args)`.
    pub fn process<F, Args>(&self, f: F, args: Args) -> Process
    where
        F: TaskFn<Args>,
        Args: Serialize + Send + 'static,
    {
        Process::new(f, args).with_context(*self)
    }

    /// `ctx.Manager()`: a started [`SyncManager`](crate::managers::SyncManager) whose
    /// server process uses this context's start method.
    pub fn manager(&self) -> Result<crate::managers::SyncManager> {
        let m = crate::managers::SyncManager::with_context(None, None, *self);
        m.start()?;
        Ok(m)
    }

    /// `ctx.cpu_count()`.
    pub fn cpu_count(&self) -> usize {
        crate::process::cpu_count()
    }
}

#[doc(hidden)]
pub mod root_exports {
    pub use super::{
        get_all_start_methods, get_context, get_start_method, set_executable,
        set_forkserver_preload, set_start_method, set_start_method_force, start_method_if_set,
        Context, StartMethod,
    };
}
