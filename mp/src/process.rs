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
use crate::popen_fork::{self, exit_now, wait_readable, ForkWork, Popen};
use crate::reduction::{read_exact_fds, read_frame, write_frame, FdKind};
use crate::spawn::{self, TaskFn};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::fmt;
use std::marker::PhantomData;
use std::os::fd::{AsFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

/// Environment marker of a spawned child: the payload socket's descriptor number.
pub(crate) const ENV_CHILD: &str = "MP_SPAWN_CHILD_FD";
/// Environment marker of the fork server: the control socket's descriptor number.
pub(crate) const ENV_FORKSERVER: &str = "MP_FORKSERVER_FD";

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
}

static CURRENT: Mutex<Option<Meta>> = Mutex::new(None);
static COUNTER: AtomicU32 = AtomicU32::new(0);
static CHILDREN: Mutex<Vec<Arc<Inner>>> = Mutex::new(Vec::new());

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

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
        };
        let want_result = self.inner.want_result.load(Ordering::Relaxed);
        let popen = match (method, target) {
            (StartMethod::Fork, Target::Closure(f)) => {
                launch_fork(meta, ForkWork::Closure(f), want_result)?
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
                        launch_fork(meta, ForkWork::Payload(bytes, fds), want_result)?
                    }
                    StartMethod::Spawn | StartMethod::ForkServer => {
                        launch_exec(method, &payload, fds, want_result)?
                    }
                }
            }
        };
        let _ = self.inner.popen.set(popen);
        lock(&CHILDREN).push(self.inner.clone());
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
    fn take_result(&self, timeout: Option<Duration>) -> Result<Outcome> {
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
// Launching

/// Everything a child started by spawn or forkserver receives on its socket (the
/// descriptors its arguments carry travel beside it).
#[derive(Serialize, Deserialize)]
pub(crate) struct Payload {
    meta: Meta,
    task: String,
    args: Vec<u8>,
}

/// What a child sends back on its socket when it ends (read by [`JoinHandle`]).
#[derive(Serialize, Deserialize)]
enum Outcome {
    Ok(Vec<u8>),
    Panicked { message: String, backtrace: String },
    Failed(String),
}

/// The socket a task's result comes back on, when it is wanted (`mp::spawn`).
fn result_pair(want: bool) -> Result<(Option<OwnedFd>, Option<OwnedFd>)> {
    if !want {
        return Ok((None, None));
    }
    let (ours, theirs) = UnixStream::pair()?;
    Ok((Some(ours.into()), Some(theirs.into())))
}

fn launch_fork(meta: Meta, work: ForkWork, want_result: bool) -> Result<Popen> {
    ensure_panic_hook(); // before the fork: see ensure_panic_hook
    let (ours, theirs) = result_pair(want_result)?;
    // Hold our locks across fork so the child never inherits one mid-update.
    let mut current = lock(&CURRENT);
    let mut children = lock(&CHILDREN);
    let server = crate::popen_forkserver::lock_for_fork();
    let pid = match popen_fork::fork() {
        Ok(None) => {
            drop(ours);
            *current = Some(meta.clone());
            children.clear();
            server.in_child();
            drop(children);
            drop(current);
            after_fork_child(&meta);
            match work {
                ForkWork::Payload(bytes, fds) => match codec::decode::<Payload>(&bytes) {
                    Ok(p) => run_task(p, fds, theirs),
                    Err(e) => {
                        eprintln!("mp: bad payload: {e}");
                        exit_now(1)
                    }
                },
                ForkWork::Closure(f) => {
                    let code = run_guarded(&meta.name, AssertUnwindSafe(f))
                        .map(|_| 0)
                        .unwrap_or(1);
                    finish_child(code)
                }
            }
        }
        other => other,
    };
    drop(server);
    drop(children);
    drop(current);
    let pid = pid?.expect("parent side of fork");
    drop(theirs);
    let popen = Popen::direct(pid);
    *lock(&popen.result_sock) = ours;
    Ok(popen)
}

fn launch_exec(
    method: StartMethod,
    payload: &Payload,
    fds: Vec<OwnedFd>,
    want_result: bool,
) -> Result<Popen> {
    let bytes = codec::encode(payload)?;
    if method == StartMethod::ForkServer {
        // the request carries the payload: the server's forked child has it in memory
        let (ours, theirs) = result_pair(want_result)?;
        let popen = crate::popen_forkserver::launch(&bytes, fds, theirs)?;
        *lock(&popen.result_sock) = ours;
        return Ok(popen);
    }
    let (ours, theirs) = UnixStream::pair()?;
    let (ours, theirs): (OwnedFd, OwnedFd) = (ours.into(), theirs.into());
    let popen = crate::popen_spawn::launch(theirs)?;
    let borrowed: Vec<_> = fds.iter().map(|f| f.as_fd()).collect();
    // The child acknowledges its payload with one byte; end of file instead means it
    // died (or was not an mp program) before reading it: an error, never a hang.
    let sent = write_frame(ours.as_fd(), FdKind::Socket, &bytes, &borrowed)
        .map_err(Error::from)
        .and_then(|()| {
            let mut ack = [0u8; 1];
            match read_exact_fds(ours.as_fd(), FdKind::Socket, &mut ack, &mut Vec::new())? {
                true => Ok(()),
                false => Err(Error::Eof),
            }
        });
    if let Err(e) = sent {
        let code = popen.wait(Some(Duration::from_secs(10)))?;
        return Err(Error::Io(std::io::Error::other(format!(
            "child process {} exited (exit code {}) before reading its payload: {e}",
            popen.pid,
            code.map_or("unknown".to_string(), |c| c.to_string())
        ))));
    }
    drop(fds);
    if want_result {
        *lock(&popen.result_sock) = Some(ours);
    }
    Ok(popen)
}

// ---------------------------------------------------------------------------------
// The child side

/// In a forked child: reset what belongs to the parent.
fn after_fork_child(meta: &Meta) {
    COUNTER.store(0, Ordering::Relaxed);
    crate::util::after_fork_child();
    crate::util::set_inherited_log_level(meta.log_level);
    popen_fork::child_signals();
}

/// Installs, once per program, the panic hook that prints `Process <name>:` above a
/// task's panic and keeps its backtrace for [`Error::TaskPanicked`]. It is installed
/// in the parent *before* a fork, never in a forked child: `take_hook`/`set_hook` take
/// the hook's write lock, and a child forked while another parent thread was reading
/// the hook (any panic, e.g. while it prints a backtrace) inherits that lock held and
/// would block forever.
fn ensure_panic_hook() {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            // only the thread running a task reports as the process
            if let Some(name) = TASK_NAME.with(|n| n.borrow().clone()) {
                let bt = std::backtrace::Backtrace::capture();
                LAST_BACKTRACE.with(|b| *b.borrow_mut() = bt.to_string());
                eprintln!("Process {name}:");
            }
            default(info);
        }));
    });
}

thread_local! {
    static LAST_BACKTRACE: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
    static TASK_NAME: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "Box<dyn Any>".to_string()
    }
}

/// Runs `f` with the child's panic hook; `Err((message, backtrace))` if it panicked.
fn run_guarded<R>(
    name: &str,
    f: impl FnOnce() -> R + panic::UnwindSafe,
) -> std::result::Result<R, (String, String)> {
    ensure_panic_hook();
    TASK_NAME.with(|n| *n.borrow_mut() = Some(name.to_string()));
    panic::catch_unwind(f).map_err(|p| {
        (
            panic_message(&*p),
            LAST_BACKTRACE.with(|b| b.borrow().clone()),
        )
    })
}

fn finish_child(code: i32) -> ! {
    crate::util::run_exit_handlers();
    exit_now(code)
}

fn run_task(payload: Payload, fds: Vec<OwnedFd>, sock: Option<OwnedFd>) -> ! {
    let name = payload.meta.name.clone();
    let outcome = match spawn::task_by_name(&payload.task) {
        Err(e) => {
            eprintln!("Process {name}:\n{e}");
            Outcome::Failed(e.to_string())
        }
        Ok(entry) => {
            match run_guarded(&name, AssertUnwindSafe(|| (entry.call)(&payload.args, fds))) {
                Ok(Ok(bytes)) => Outcome::Ok(bytes),
                Ok(Err(e)) => {
                    eprintln!("Process {name}:\n{e}");
                    Outcome::Failed(e.to_string())
                }
                Err((message, backtrace)) => Outcome::Panicked { message, backtrace },
            }
        }
    };
    let code = match outcome {
        Outcome::Ok(_) => 0,
        _ => 1,
    };
    if let Some(sock) = sock {
        if let Ok(bytes) = codec::encode(&outcome) {
            let _ = write_frame(sock.as_fd(), FdKind::Socket, &bytes, &[]);
        }
    }
    finish_child(code)
}

/// A spawned child: read the payload from `sock`, acknowledge it, run, exit.
pub(crate) fn child_from_socket(sock: OwnedFd) -> ! {
    popen_fork::child_signals();
    let (bytes, fds) = match read_frame(sock.as_fd(), FdKind::Socket, usize::MAX) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("mp: child could not read its payload: {e}");
            exit_now(1)
        }
    };
    let _ = rustix::io::write(&sock, &[1]); // the acknowledgement launch_exec waits for
    child_from_payload(&bytes, fds, Some(sock))
}

/// A child of spawn or the fork server with its payload in hand: become the process
/// it describes, run the task, exit. `sock` carries the result back, if wanted.
pub(crate) fn child_from_payload(bytes: &[u8], fds: Vec<OwnedFd>, sock: Option<OwnedFd>) -> ! {
    popen_fork::child_signals();
    let payload: Payload = match codec::decode(bytes) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("mp: child received a malformed payload: {e}");
            exit_now(1)
        }
    };
    COUNTER.store(0, Ordering::Relaxed);
    *lock(&CURRENT) = Some(payload.meta.clone());
    crate::util::after_fork_child();
    if payload.meta.tracker {
        crate::resource_tracker::join_parents_tracker();
    }
    if let Some(m) = payload.meta.start_method {
        crate::context::set_start_method_force(Some(m));
    }
    crate::util::set_inherited_log_level(payload.meta.log_level);
    run_task(payload, fds, sock)
}

fn take_marker(var: &str) -> Option<OwnedFd> {
    let v = std::env::var_os(var)?;
    // SAFETY: called once at start-up (in a constructor or first thing in main), while
    // the process is single-threaded; clearing the marker lets this child start children.
    unsafe { std::env::remove_var(var) };
    let fd: RawFd = v.to_str()?.parse().ok()?;
    // SAFETY: the parent placed this descriptor here for us alone.
    Some(unsafe { crate::reduction::owned_from_raw(fd) })
}

/// If this process is a child started by spawn or forkserver (or the fork server
/// itself), run its work and exit; otherwise return.
pub(crate) fn bootstrap_if_child() {
    keep_bootstrap_linked();
    if let Some(fd) = take_marker(ENV_FORKSERVER) {
        crate::forkserver::serve(fd);
    }
    if let Some(fd) = take_marker(ENV_CHILD) {
        child_from_socket(fd);
    }
    if let Some(fd) = take_marker(crate::resource_tracker::ENV_TRACKER) {
        crate::resource_tracker::serve(fd);
    }
}

extern "C" fn bootstrap_ctor() {
    if spawn::MAIN_BOOTSTRAP.is_empty() {
        bootstrap_if_child();
    }
    let child = [
        ENV_CHILD,
        ENV_FORKSERVER,
        crate::resource_tracker::ENV_TRACKER,
    ]
    .iter()
    .any(|m| std::env::var_os(m).is_some());
    if !child {
        start_watchdog_if_asked();
    }
}

/// Environment variable: abort any program that links `mp` (not its children) once it
/// has run this many seconds. CI sets it so that a hung test fails its test binary
/// with a message instead of hanging the whole run.
pub const ENV_WATCHDOG: &str = "MP_WATCHDOG_SECS";

fn start_watchdog_if_asked() {
    let Some(secs) = std::env::var_os(ENV_WATCHDOG).and_then(|v| v.to_str()?.parse::<u64>().ok())
    else {
        return;
    };
    let _ = std::thread::Builder::new()
        .name("mp-watchdog".into())
        .spawn(move || {
            std::thread::sleep(Duration::from_secs(secs));
            let exe = std::env::args().next().unwrap_or_default();
            eprintln!("mp watchdog: {exe} ran longer than {secs} s ({ENV_WATCHDOG}); aborting");
            std::process::abort();
        });
}

/// The pre-`main` bootstrap for binaries without `#[mp::main]` (tests, doctests).
#[used]
#[link_section = ".init_array"]
static BOOTSTRAP_CTOR: extern "C" fn() = bootstrap_ctor;

/// Referenced from every path that starts a binary again, so the linker keeps the
/// constructor above in every program that can be a spawned child.
pub(crate) fn keep_bootstrap_linked() {
    std::hint::black_box(&BOOTSTRAP_CTOR);
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

// ---------------------------------------------------------------------------------
// mp::spawn

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

#[doc(hidden)]
pub mod root_exports {
    pub use super::{
        active_children, cpu_count, current_process, parent_process, process_cpu_count, spawn,
        JoinHandle, Process,
    };
}
