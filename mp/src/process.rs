//! [`Process`] and the process model (CPython's `multiprocessing.process`).
//!
//! ```
//! # mp::test_support!();
//! use std::time::Duration;
//!
//! #[mp::task]
//! fn f(name: String) {
//!     println!("hello {name}");
//! }
//!
//! # fn main() -> mp::Result<()> {
//! let mut p = mp::Process::new(f, ("bob".to_string(),)).with_name("worker");
//! p.start()?;
//! p.join_timeout(Duration::from_secs(30))?;
//! assert_eq!(p.exitcode(), Some(0));
//! assert_eq!(p.name(), "worker");
//! # Ok(()) }
//! ```

use crate::codec;
use crate::context::{Context, StartMethod};
use crate::error::{Error, Result};
use crate::popen_fork::{self, wait_readable, ForkWork, Popen};
use crate::reduction::{read_frame, FdKind};
use crate::spawn::{self, Outcome, Payload, TaskFn};
use crate::util::lock;
use crate::{popen_forkserver, popen_spawn};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::fmt;
use std::os::fd::{AsFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

pub use crate::join_handle::{spawn, JoinHandle};
pub use crate::spawn::ENV_WATCHDOG;

// ---------------------------------------------------------------------------------
// The current process

/// What a child knows about itself, sent in its payload.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Meta {
    pub name: String,
    pub identity: Vec<u32>,
    pub authkey: Vec<u8>,
    pub daemon: bool,
    pub parent: Option<(u32, String)>,
    pub start_method: Option<StartMethod>,
    pub log_level: Option<usize>,
    /// The parent is connected to its program's resource tracker.
    #[serde(default)]
    pub tracker: bool,
    /// End this process when its parent ends ([`Process::with_die_with_parent`]; always
    /// for a daemonic one).
    #[serde(default)]
    pub die_with_parent: bool,
    /// The parent's start time (`/proc/<pid>/stat` field 22), so the child can tell its
    /// parent from a process that reused the pid; 0 = unknown.
    #[serde(default)]
    pub parent_start: u64,
}

static CURRENT: Mutex<Option<Meta>> = Mutex::new(None);
static COUNTER: AtomicU32 = AtomicU32::new(0);
static CHILDREN: Mutex<Vec<Arc<Inner>>> = Mutex::new(Vec::new());

fn random_authkey() -> Vec<u8> {
    let mut k = vec![0u8; 32];
    if getrandom::fill(&mut k).is_err() {
        // never fails on Linux; fall back to something unique rather than panic
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        k[..16].copy_from_slice(&t.to_le_bytes());
    }
    k
}

fn with_current<R>(f: impl FnOnce(&mut Meta) -> R) -> R {
    let mut g = lock(&CURRENT);
    let meta = g.get_or_insert_with(|| Meta {
        name: "MainProcess".into(),
        identity: Vec::new(),
        authkey: random_authkey(),
        daemon: false,
        parent: None,
        start_method: None,
        log_level: None,
        tracker: false,
        die_with_parent: false,
        parent_start: 0,
    });
    f(meta)
}

pub(crate) fn current_meta() -> Meta {
    with_current(|m| m.clone())
}

/// The current process's authkey (Python: `current_process().authkey`).
pub fn current_authkey() -> Vec<u8> {
    with_current(|m| m.authkey.clone())
}

// ---------------------------------------------------------------------------------
// Process

/// Encodes a process's arguments (consuming, so they are dropped right after).
type EncodeArgs = Box<dyn FnOnce() -> Result<(Vec<u8>, Vec<OwnedFd>)> + Send>;

enum Target {
    Task {
        name: fn() -> Result<&'static str>,
        encode: EncodeArgs,
    },
    Closure(Box<dyn FnOnce() + Send>),
}

enum Role {
    /// A process this one created (or will create).
    Child,
    /// `current_process()`.
    Current,
    /// `parent_process()`: its pid and a pidfd, when one could be opened.
    Parent(u32, Option<OwnedFd>),
}

struct Inner {
    role: Role,
    ctx: Mutex<Context>,
    identity: Vec<u32>,
    creator: u32,
    name: Mutex<String>,
    daemon: AtomicBool,
    die_with_parent: AtomicBool,
    /// The child watches its parent by its own means (see `watching_its_parent_itself`).
    own_watch: AtomicBool,
    authkey: Mutex<Vec<u8>>,
    target: Mutex<Option<Target>>,
    want_result: AtomicBool,
    popen: OnceLock<Popen>,
    closed: AtomicBool,
}

/// A process object (Python's `multiprocessing.Process`): a registered task with its
/// arguments, started under the context's start method.
///
/// Cloning gives another handle to the same process (as Python's objects are shared
/// references); [`active_children`] returns such handles.
#[derive(Clone)]
pub struct Process {
    inner: Arc<Inner>,
}

fn my_pid() -> u32 {
    std::process::id()
}

/// This process's [`start_time`], read from `/proc` once per process (every `start()`
/// records it in the child's [`Meta::parent_start`]).
fn own_start_time() -> u64 {
    // per process by fork generation, not by pid (a descendant may reuse our pid)
    static START: std::sync::LazyLock<popen_fork::ForkLocal<OnceLock<u64>>> =
        std::sync::LazyLock::new(popen_fork::ForkLocal::new);
    *START
        .get()
        .get_or_init(|| start_time(my_pid()).unwrap_or(0))
}

impl Process {
    fn with_target(target: Target) -> Self {
        let (identity, authkey, daemon) = with_current(|m| {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed) + 1;
            let mut id = m.identity.clone();
            id.push(n);
            (id, m.authkey.clone(), m.daemon)
        });
        let name = format!(
            "Process-{}",
            identity
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(":")
        );
        Process {
            inner: Arc::new(Inner {
                role: Role::Child,
                ctx: Mutex::new(Context::default()),
                identity,
                creator: my_pid(),
                name: Mutex::new(name),
                daemon: AtomicBool::new(daemon),
                die_with_parent: AtomicBool::new(false),
                own_watch: AtomicBool::new(false),
                authkey: Mutex::new(authkey),
                target: Mutex::new(Some(target)),
                want_result: AtomicBool::new(false),
                popen: OnceLock::new(),
                closed: AtomicBool::new(false),
            }),
        }
    }

    /// `Process(target=f, args=args)`: `f` is a `#[mp::task]` function, `args` a tuple
    /// of its arguments (moved in; dropped in the parent after [`start`](Self::start)).
    /// An unregistered `f` is refused by `start` with [`Error::NotRegistered`].
    pub fn new<F, Args>(f: F, args: Args) -> Self
    where
        F: TaskFn<Args>,
        Args: Serialize + Send + 'static,
    {
        let _ = f;
        Self::with_target(Target::Task {
            name: spawn::task_name_of::<F>,
            encode: Box::new(move || codec::encode_with_fds(&args)),
        })
    }

    /// A Python `Process` subclass: `value.run()` runs in the child. `T`'s
    /// `impl mp::Run` block must carry `#[mp::task]`.
    pub fn from_run<T>(value: T) -> Self
    where
        T: spawn::Run + Serialize + DeserializeOwned + Send + 'static,
    {
        Self::with_target(Target::Task {
            name: spawn::task_name_of::<T>,
            encode: Box::new(move || codec::encode_with_fds(&value)),
        })
    }

    /// Runs any closure in the child. Works with the fork start method only (a closure
    /// cannot be sent to a freshly executed binary); `start` refuses it elsewhere.
    pub fn from_closure(f: impl FnOnce() + Send + 'static) -> Self {
        Self::with_target(Target::Closure(Box::new(f)))
    }

    /// Sets the name (builder form of [`set_name`](Self::set_name)).
    pub fn with_name(self, name: impl Into<String>) -> Self {
        *lock(&self.inner.name) = name.into();
        self
    }

    /// Sets the daemon flag (builder form of [`set_daemon`](Self::set_daemon)).
    pub fn with_daemon(self, daemon: bool) -> Self {
        self.inner.daemon.store(daemon, Ordering::Relaxed);
        self
    }

    /// Ends the child as soon as its parent (the process that started it) ends, however
    /// it ends — a `SIGKILL` included — with `SIGKILL`: a child that must never outlive
    /// its parent (Linux's `PR_SET_PDEATHSIG`, made reliable).
    ///
    /// A daemonic child ([`with_daemon`](Self::with_daemon), every pool worker, a
    /// manager's server) always behaves so; this option extends it to a non-daemonic
    /// one, which otherwise keeps running after its parent was killed (and is joined at
    /// a normal exit). It works with every start method: the child watches its parent
    /// through a `pidfd` on a small thread of its own (not `PR_SET_PDEATHSIG`, which
    /// fires when the *thread* that started the child ends, and would watch the fork
    /// server instead of the parent under forkserver). A parent that is already gone
    /// when the child starts ends the child at once.
    ///
    /// Python has nothing of the kind: a child of a killed CPython parent, daemonic or
    /// not, runs on (reparented to init) until it ends by itself; only pool workers
    /// notice, when they next read from their task queue.
    pub fn with_die_with_parent(self, on: bool) -> Self {
        self.inner.die_with_parent.store(on, Ordering::Relaxed);
        self
    }

    /// Whether the child ends when its parent ends: set by
    /// [`with_die_with_parent`](Self::with_die_with_parent), always for a daemonic one.
    pub fn die_with_parent(&self) -> bool {
        (self.inner.die_with_parent.load(Ordering::Relaxed) || self.daemon())
            && !self.inner.own_watch.load(Ordering::Relaxed)
    }

    /// A daemonic child that notices its parent's end by its own means and cleans up
    /// before it exits (a manager's server: its socket file), instead of being killed.
    pub(crate) fn watching_its_parent_itself(self) -> Self {
        self.inner.own_watch.store(true, Ordering::Relaxed);
        self
    }

    /// Sets the start method context used by [`start`](Self::start).
    pub fn with_context(self, ctx: Context) -> Self {
        *lock(&self.inner.ctx) = ctx;
        self
    }

    pub(crate) fn want_result(self) -> Self {
        self.inner.want_result.store(true, Ordering::Relaxed);
        self
    }

    fn check_closed(&self) -> Result<()> {
        if self.inner.closed.load(Ordering::Acquire) {
            Err(Error::invalid("process object is closed"))
        } else {
            Ok(())
        }
    }

    fn popen(&self) -> Option<&Popen> {
        self.inner.popen.get()
    }

    /// `start()`: starts the child. At most once; a daemonic process cannot start
    /// children; the arguments are dropped in the parent afterwards.
    pub fn start(&self) -> Result<()> {
        self.check_closed()?;
        if !matches!(self.inner.role, Role::Child) {
            return Err(Error::invalid("cannot start a process twice"));
        }
        if self.popen().is_some() {
            return Err(Error::invalid("cannot start a process twice"));
        }
        if self.inner.creator != my_pid() {
            return Err(Error::invalid(
                "can only start a process object created by current process",
            ));
        }
        if with_current(|m| m.daemon) {
            return Err(Error::invalid(
                "daemonic processes are not allowed to have children",
            ));
        }
        let target = lock(&self.inner.target)
            .take()
            .ok_or_else(|| Error::invalid("cannot start a process twice"))?;
        reap_finished();
        crate::util::ensure_exit_handlers();
        let method = lock(&self.inner.ctx).get_start_method();
        let meta = Meta {
            name: self.name(),
            identity: self.inner.identity.clone(),
            authkey: self.authkey(),
            daemon: self.daemon(),
            parent: Some((my_pid(), with_current(|m| m.name.clone()))),
            start_method: crate::context::start_method_if_set(),
            log_level: crate::util::current_log_level(),
            tracker: crate::resource_tracker::is_connected(),
            die_with_parent: self.die_with_parent(),
            parent_start: own_start_time(),
        };
        let want_result = self.inner.want_result.load(Ordering::Relaxed);
        let popen = match (method, target) {
            (StartMethod::Fork, Target::Closure(f)) => {
                popen_fork::launch(meta, ForkWork::Closure(f), want_result)?
            }
            (_, Target::Closure(_)) => {
                return Err(Error::invalid(format!(
                    "Process::from_closure needs the fork start method, not {method}: \
                     use a #[mp::task] function with Process::new"
                )))
            }
            (method, Target::Task { name, encode }) => {
                let name = name()?;
                let (args, fds) = encode()?; // the arguments are dropped here
                let payload = Payload {
                    meta: meta.clone(),
                    task: name.to_string(),
                    args,
                };
                match method {
                    StartMethod::Fork => {
                        let bytes = codec::encode(&payload)?;
                        popen_fork::launch(meta, ForkWork::Payload(bytes, fds), want_result)?
                    }
                    StartMethod::Spawn => popen_spawn::launch(&payload, fds, want_result)?,
                    StartMethod::ForkServer => {
                        popen_forkserver::launch(&payload, fds, want_result)?
                    }
                }
            }
        };
        let _ = self.inner.popen.set(popen);
        remember_child(&self.inner);
        Ok(())
    }

    fn check_child(&self, what: &str) -> Result<&Popen> {
        self.check_closed()?;
        match self.inner.role {
            Role::Child if self.inner.creator == my_pid() => {}
            _ => return Err(Error::invalid(format!("can only {what} a child process"))),
        }
        self.popen()
            .ok_or_else(|| Error::invalid(format!("can only {what} a started process")))
    }

    /// `join()`: waits until the child ends.
    pub fn join(&self) -> Result<()> {
        if let Role::Parent(..) = self.inner.role {
            self.wait_parent(None)?;
            return Ok(());
        }
        let popen = self.check_child("join")?;
        popen.wait(None)?;
        forget_child(&self.inner);
        Ok(())
    }

    /// `join(timeout)`: waits at most `timeout`; returns `Ok` after the timeout too
    /// (check [`exitcode`](Self::exitcode) or [`is_alive`](Self::is_alive)).
    pub fn join_timeout(&self, timeout: Duration) -> Result<()> {
        if let Role::Parent(..) = self.inner.role {
            self.wait_parent(Some(timeout))?;
            return Ok(());
        }
        let popen = self.check_child("join")?;
        if popen.wait(Some(timeout))?.is_some() {
            forget_child(&self.inner);
        }
        Ok(())
    }

    fn wait_parent(&self, timeout: Option<Duration>) -> Result<bool> {
        match &self.inner.role {
            Role::Parent(_, Some(fd)) => Ok(wait_readable(fd.as_fd(), timeout)?),
            Role::Parent(pid, None) => Ok(!pid_alive(*pid)),
            _ => Ok(false),
        }
    }

    /// `is_alive()`: true between a successful start and the child's end (the current
    /// process is always alive).
    pub fn is_alive(&self) -> bool {
        match &self.inner.role {
            Role::Current => true,
            Role::Parent(..) => !self.wait_parent(Some(Duration::ZERO)).unwrap_or(true),
            Role::Child => match self.popen() {
                _ if self.inner.closed.load(Ordering::Acquire) => false,
                None => false,
                Some(p) => p.poll().is_none(),
            },
        }
    }

    /// `pid` / `ident`: `None` before start (and after [`close`](Self::close)).
    pub fn pid(&self) -> Option<u32> {
        match &self.inner.role {
            Role::Current => Some(my_pid()),
            Role::Parent(pid, _) => Some(*pid),
            Role::Child => {
                if self.inner.closed.load(Ordering::Acquire) {
                    return None;
                }
                self.popen().map(|p| p.pid)
            }
        }
    }

    /// Python's `ident` (the same as [`pid`](Self::pid)).
    pub fn ident(&self) -> Option<u32> {
        self.pid()
    }

    /// `exitcode`: `None` while running or before start; the exit code, or `-N` if
    /// signal N ended the child (`-15` after `terminate`, `-9` after `kill`).
    pub fn exitcode(&self) -> Option<i32> {
        if self.inner.closed.load(Ordering::Acquire) {
            return None;
        }
        let code = self.popen()?.poll();
        if code.is_some() {
            forget_child(&self.inner);
        }
        code
    }

    /// `name`.
    pub fn name(&self) -> String {
        match self.inner.role {
            Role::Current => with_current(|m| m.name.clone()),
            _ => lock(&self.inner.name).clone(),
        }
    }

    /// Sets `name`.
    pub fn set_name(&self, name: impl Into<String>) {
        let name = name.into();
        match self.inner.role {
            Role::Current => with_current(|m| m.name = name),
            _ => *lock(&self.inner.name) = name,
        }
    }

    /// `daemon`: a daemonic process is terminated when its parent exits, and cannot
    /// start children.
    pub fn daemon(&self) -> bool {
        match self.inner.role {
            Role::Current => with_current(|m| m.daemon),
            _ => self.inner.daemon.load(Ordering::Relaxed),
        }
    }

    /// Sets `daemon`; an error once the process has started.
    pub fn set_daemon(&self, daemon: bool) -> Result<()> {
        if self.popen().is_some() || !matches!(self.inner.role, Role::Child) {
            return Err(Error::invalid("process has already started"));
        }
        self.inner.daemon.store(daemon, Ordering::Relaxed);
        Ok(())
    }

    /// `authkey`: inherited from the creating process (32 random bytes in the main process).
    pub fn authkey(&self) -> Vec<u8> {
        match self.inner.role {
            Role::Current => with_current(|m| m.authkey.clone()),
            _ => lock(&self.inner.authkey).clone(),
        }
    }

    /// Sets `authkey`.
    pub fn set_authkey(&self, key: impl Into<Vec<u8>>) {
        let key = key.into();
        match self.inner.role {
            Role::Current => with_current(|m| m.authkey = key),
            _ => *lock(&self.inner.authkey) = key,
        }
    }

    /// `sentinel`: a descriptor that becomes readable when the child ends (for
    /// `poll`/`select` or [`wait`](crate::connection::wait)). An error before start.
    pub fn sentinel(&self) -> Result<RawFd> {
        self.check_closed()?;
        match &self.inner.role {
            Role::Parent(_, Some(fd)) => Ok(std::os::fd::AsRawFd::as_raw_fd(fd)),
            _ => self
                .popen()
                .ok_or_else(|| Error::invalid("process not started"))?
                .sentinel(),
        }
    }

    /// `terminate()`: SIGTERM (nothing if the child already ended).
    pub fn terminate(&self) -> Result<()> {
        self.check_child("terminate")?.signal(libc::SIGTERM)
    }

    /// `kill()`: SIGKILL (nothing if the child already ended).
    pub fn kill(&self) -> Result<()> {
        self.check_child("kill")?.signal(libc::SIGKILL)
    }

    /// `close()`: releases the process's resources; an error while it runs. Later
    /// calls that need the process give [`Error::InvalidState`].
    pub fn close(&self) -> Result<()> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Ok(());
        }
        if let Some(p) = self.popen() {
            if p.poll().is_none() {
                return Err(Error::invalid(
                    "Cannot close a process while it is still running. \
                     You should first call join() or terminate().",
                ));
            }
        }
        self.inner.closed.store(true, Ordering::Release);
        forget_child(&self.inner);
        Ok(())
    }

    /// The start method this process uses (or used).
    pub fn start_method(&self) -> StartMethod {
        lock(&self.inner.ctx).get_start_method()
    }

    /// Reads the task's result (for [`JoinHandle`]).
    pub(crate) fn take_result(&self, timeout: Option<Duration>) -> Result<Outcome> {
        let popen = self.check_child("join")?;
        let sock = lock(&popen.result_sock)
            .take()
            .ok_or_else(|| Error::invalid("the result was already taken"))?;
        if !wait_readable(sock.as_fd(), timeout)? {
            *lock(&popen.result_sock) = Some(sock);
            return Err(Error::Timeout);
        }
        match read_frame(sock.as_fd(), FdKind::Socket, usize::MAX) {
            Ok((bytes, _)) => codec::decode(&bytes),
            Err(Error::Eof) => {
                let code = popen.wait(Some(Duration::from_secs(5)))?.unwrap_or(255);
                Err(Error::WorkerDied {
                    pid: popen.pid,
                    exitcode: code,
                })
            }
            Err(e) => Err(e),
        }
    }
}

impl fmt::Debug for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let closed = self.inner.closed.load(Ordering::Acquire);
        let mut exitcode = None;
        let status = match self.inner.role {
            Role::Current => "started",
            Role::Parent(..) => "unknown",
            Role::Child if closed => "closed",
            Role::Child if self.inner.creator != my_pid() => "unknown",
            Role::Child => match self.popen() {
                None => "initial",
                Some(p) => match p.poll() {
                    Some(c) => {
                        exitcode = Some(c);
                        "stopped"
                    }
                    None => "started",
                },
            },
        };
        write!(f, "<Process name='{}'", self.name())?;
        if let (false, Some(pid)) = (closed, self.pid()) {
            if !matches!(self.inner.role, Role::Parent(..)) {
                write!(f, " pid={pid}")?;
            }
        }
        let parent = match &self.inner.role {
            Role::Child => Some(self.inner.creator),
            Role::Current => with_current(|m| m.parent.as_ref().map(|p| p.0)),
            Role::Parent(..) => None,
        };
        match parent {
            Some(p) => write!(f, " parent={p}")?,
            None => write!(f, " parent=None")?,
        }
        write!(f, " {status}")?;
        if let Some(c) = exitcode {
            write!(f, " exitcode={}", exitcode_name(c))?;
        }
        if self.daemon() {
            write!(f, " daemon")?;
        }
        write!(f, ">")
    }
}

/// Python compares process objects by identity: two handles are equal when they name
/// the same process (so `active_children().contains(&p)` works as `p in
/// active_children()` does).
impl PartialEq for Process {
    fn eq(&self, other: &Self) -> bool {
        if Arc::ptr_eq(&self.inner, &other.inner) {
            return true;
        }
        match (&self.inner.role, &other.inner.role) {
            (Role::Child, Role::Child) => false,
            (Role::Current, Role::Current) => true,
            (Role::Parent(a, _), Role::Parent(b, _)) => a == b,
            _ => false,
        }
    }
}

impl Eq for Process {}

/// A process is ready for [`wait`](crate::connection::wait) once it ended (its
/// sentinel is readable), as CPython's `wait([p.sentinel])`.
impl crate::connection::Waitable for Process {
    fn wait_fd(&self) -> Result<RawFd> {
        self.sentinel()
    }
}

/// `-SIGTERM` for -15 and so on, as CPython's `_exitcode_to_name`.
fn exitcode_name(code: i32) -> String {
    if code >= 0 {
        return code.to_string();
    }
    let name = match -code {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGCHLD => "SIGCHLD",
        _ => return code.to_string(),
    };
    format!("-{name}")
}

fn pid_alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks for existence.
    unsafe { libc::kill(pid as libc::pid_t, 0) == 0 }
}

fn forget_child(inner: &Arc<Inner>) {
    lock(&CHILDREN).retain(|c| !Arc::ptr_eq(c, inner));
}

/// Reaps children that ended (Python's `_cleanup`).
fn reap_finished() {
    let children: Vec<_> = lock(&CHILDREN).clone();
    let done: Vec<_> = children
        .into_iter()
        .filter(|c| c.popen.get().is_some_and(|p| p.poll().is_some()))
        .collect();
    if !done.is_empty() {
        lock(&CHILDREN).retain(|c| !done.iter().any(|d| Arc::ptr_eq(c, d)));
    }
}

// ---------------------------------------------------------------------------------
// Forking

/// The process-wide locks of this module and of the fork server's state, held across
/// every `fork()` mp makes ([`lock_for_fork`]), so a child never inherits one held by
/// another thread mid-update. The allocator's, the mapping cache's and the exit hooks'
/// locks are held across *every* fork, mp's or not, by `pthread_atfork` handlers (see
/// [`crate::util`] and [`crate::heap`]).
pub(crate) struct ForkLocks {
    current: MutexGuard<'static, Option<Meta>>,
    children: MutexGuard<'static, Vec<Arc<Inner>>>,
    server: crate::popen_forkserver::ForkGuard,
}

/// Takes the locks every fork site holds across `fork()` (always in this order).
pub(crate) fn lock_for_fork() -> ForkLocks {
    crate::util::ensure_atfork_handlers();
    ForkLocks {
        current: lock(&CURRENT),
        children: lock(&CHILDREN),
        server: crate::popen_forkserver::lock_for_fork(),
    }
}

impl ForkLocks {
    /// In the forked child: become the process `meta` describes (when mp starts it as a
    /// `Process`), forget the parent's children and fork server, release the locks.
    pub(crate) fn in_child(mut self, meta: Option<Meta>) {
        if let Some(meta) = meta {
            *self.current = Some(meta);
        }
        self.children.clear();
        COUNTER.store(0, Ordering::Relaxed);
        self.server.in_child();
    }
}

/// A child started by spawn or the fork server becomes the process `meta` describes.
pub(crate) fn become_child(meta: Meta) {
    COUNTER.store(0, Ordering::Relaxed);
    watch_parent(&meta);
    *lock(&CURRENT) = Some(meta);
}

/// The start time of process `pid` (field 22 of `/proc/<pid>/stat`, in clock ticks
/// since boot): with the pid, it names one process for good.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // the command name (field 2) may hold spaces and parentheses: skip past its end
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// In a child that must not outlive its parent ([`Meta::die_with_parent`]): ends it
/// now if the parent is already gone, else watches the parent's pidfd on a thread and
/// ends the child with `SIGKILL` once it becomes readable (the parent ended).
pub(crate) fn watch_parent(meta: &Meta) {
    if !meta.die_with_parent {
        return;
    }
    let (fd, ppid) = match parent_pidfd(meta) {
        ParentFd::Gone => die_now(),
        ParentFd::Unwatchable => return,
        ParentFd::Open(fd, ppid) => (fd, ppid),
    };
    let watcher = without_signals(|| {
        std::thread::Builder::new()
            .name("mp-parent-watch".into())
            // it only polls: a small stack keeps a daemonic child's start cheap
            .stack_size(64 << 10)
            .spawn(move || loop {
                match wait_readable(fd.as_fd(), None) {
                    Ok(true) => die_now(),
                    Ok(false) => continue,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        log::warn!("cannot watch the parent process {ppid}: {e}");
                        return;
                    }
                }
            })
    });
    if let Err(e) = watcher {
        log::warn!("cannot watch the parent process {ppid}: {e}");
    }
}

/// Runs `f` (which starts a thread) with every signal blocked on this thread, so the
/// thread it starts inherits a full mask: a helper thread must never be the one a
/// process-directed signal is delivered to (a task that blocks `SIGTERM` and waits for
/// it with `sigwait` would otherwise be killed by the default action on the helper).
pub(crate) fn without_signals<R>(f: impl FnOnce() -> R) -> R {
    // SAFETY: sigset_t is plain data that sigfillset initialises; pthread_sigmask only
    // changes this thread's mask, restored below.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        let r = f();
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        r
    }
}

/// What [`parent_pidfd`] found.
pub(crate) enum ParentFd {
    /// The parent has already ended (or its pid now names another process).
    Gone,
    /// It cannot be watched (no parent recorded, or `pidfd_open` failed: logged).
    Unwatchable,
    /// A pidfd of the parent (readable once it ends) and its pid.
    Open(OwnedFd, u32),
}

/// A pidfd of the parent `meta` names, checked to be that process (its start time
/// matches the one recorded at `start()`, so a reused pid is not mistaken for it).
pub(crate) fn parent_pidfd(meta: &Meta) -> ParentFd {
    let Some((ppid, _)) = meta.parent else {
        return ParentFd::Unwatchable;
    };
    // SAFETY: getppid has no preconditions.
    let is_our_parent = || unsafe { libc::getppid() } as u32 == ppid;
    match popen_fork::pidfd(ppid) {
        // the pid is the parent's only if the process holding it started when it did;
        // or, cheaper, if it is still our parent after the pidfd was opened (had it
        // died, we would have been handed to an older ancestor): true under fork and
        // spawn, never under the fork server (whose children are its own)
        Ok(fd)
            if is_our_parent()
                || meta.parent_start == 0
                || start_time(ppid) == Some(meta.parent_start) =>
        {
            ParentFd::Open(fd, ppid)
        }
        Ok(_) => ParentFd::Gone,
        Err(Error::Io(e)) if e.raw_os_error() == Some(libc::ESRCH) => ParentFd::Gone,
        Err(e) => {
            log::warn!("cannot watch the parent process {ppid}: {e}");
            ParentFd::Unwatchable
        }
    }
}

/// Ends this process with `SIGKILL` (its parent died: nothing of it is worth finishing).
fn die_now() -> ! {
    // SAFETY: signals this very process.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
    }
    popen_fork::exit_now(-libc::SIGKILL)
}

/// Records a started child (for `active_children` and the exit handlers).
fn remember_child(inner: &Arc<Inner>) {
    lock(&CHILDREN).push(inner.clone());
}

// ---------------------------------------------------------------------------------
// Exit handling (called by util's exit handler)

/// Joins non-daemonic children and terminates daemonic ones (Python's `_exit_function`).
pub(crate) fn finish_children() {
    let children: Vec<_> = std::mem::take(&mut *lock(&CHILDREN));
    for c in &children {
        if let Some(p) = c.popen.get() {
            if c.daemon.load(Ordering::Relaxed) && p.poll().is_none() {
                let _ = p.signal(libc::SIGTERM);
            }
        }
    }
    for c in &children {
        if let Some(p) = c.popen.get() {
            let _ = p.wait(None);
        }
    }
}

// ---------------------------------------------------------------------------------
// Free functions

/// Python's `current_process()`: this process (`MainProcess` in the main process).
pub fn current_process() -> Process {
    let meta = current_meta();
    Process {
        inner: Arc::new(Inner {
            role: Role::Current,
            ctx: Mutex::new(Context::default()),
            identity: meta.identity.clone(),
            creator: my_pid(),
            name: Mutex::new(meta.name.clone()),
            daemon: AtomicBool::new(meta.daemon),
            die_with_parent: AtomicBool::new(meta.die_with_parent),
            own_watch: AtomicBool::new(false),
            authkey: Mutex::new(meta.authkey.clone()),
            target: Mutex::new(None),
            want_result: AtomicBool::new(false),
            popen: OnceLock::new(),
            closed: AtomicBool::new(false),
        }),
    }
}

/// Python's `parent_process()`: `None` in the main process.
pub fn parent_process() -> Option<Process> {
    let meta = current_meta();
    let (pid, name) = meta.parent?;
    let fd = popen_fork::pidfd(pid).ok();
    Some(Process {
        inner: Arc::new(Inner {
            role: Role::Parent(pid, fd),
            ctx: Mutex::new(Context::default()),
            identity: Vec::new(),
            creator: my_pid(),
            name: Mutex::new(name),
            daemon: AtomicBool::new(false),
            die_with_parent: AtomicBool::new(false),
            own_watch: AtomicBool::new(false),
            authkey: Mutex::new(meta.authkey),
            target: Mutex::new(None),
            want_result: AtomicBool::new(false),
            popen: OnceLock::new(),
            closed: AtomicBool::new(false),
        }),
    })
}

/// Python's `active_children()`: the live children of this process (finished ones
/// are reaped as a side effect).
pub fn active_children() -> Vec<Process> {
    reap_finished();
    lock(&CHILDREN)
        .iter()
        .map(|c| Process { inner: c.clone() })
        .collect()
}

/// Python's `cpu_count()`: the number of CPUs in the system.
pub fn cpu_count() -> usize {
    // SAFETY: plain sysconf query.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    if n > 0 {
        n as usize
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }
}

/// Python's `process_cpu_count()` (3.13): the CPUs this process may run on (its
/// affinity mask).
pub fn process_cpu_count() -> usize {
    std::thread::available_parallelism().map_or_else(|_| cpu_count(), |n| n.get())
}

impl Context {
    /// `ctx.current_process()`: see [`current_process`].
    pub fn current_process(&self) -> Process {
        current_process()
    }

    /// `ctx.parent_process()`: see [`parent_process`].
    pub fn parent_process(&self) -> Option<Process> {
        parent_process()
    }

    /// `ctx.active_children()`: see [`active_children`].
    pub fn active_children(&self) -> Vec<Process> {
        active_children()
    }

    /// `ctx.process_cpu_count()`: see [`process_cpu_count`].
    pub fn process_cpu_count(&self) -> usize {
        process_cpu_count()
    }

    /// `ctx.freeze_support()`: a no-op, as [`crate::freeze_support`].
    pub fn freeze_support(&self) {}

    /// `ctx.set_executable(path)`: see [`crate::set_executable`].
    pub fn set_executable(&self, path: impl AsRef<std::path::Path>) {
        crate::context::set_executable(path)
    }

    /// `ctx.set_forkserver_preload(names)`: see [`crate::set_forkserver_preload`].
    pub fn set_forkserver_preload(&self, names: &[&str]) {
        crate::context::set_forkserver_preload(names)
    }

    /// `ctx.get_logger()`: see [`crate::get_logger`].
    pub fn get_logger(&self) -> log::LevelFilter {
        crate::util::get_logger()
    }

    /// `ctx.log_to_stderr(level)`: see [`crate::log_to_stderr`].
    pub fn log_to_stderr(&self, level: log::LevelFilter) -> log::LevelFilter {
        crate::util::log_to_stderr(level)
    }
}

#[doc(hidden)]
pub mod root_exports {
    pub use super::{
        active_children, cpu_count, current_process, parent_process, process_cpu_count, spawn,
        JoinHandle, Process,
    };
}
