//! The parent's view of a started child ([`Popen`]) and the fork start method.
//!
//! A child started by fork or spawn is our direct child: its sentinel is a `pidfd`
//! (readable once it exits) and its exit status comes from `waitpid`. A child of the
//! fork server is the server's: its sentinel is the status socket the server writes
//! the exit code to (see `popen_forkserver`).

use crate::codec;
use crate::error::{Error, Result};
use crate::process::Meta;
use crate::spawn::{self, Payload};
use crate::util::lock;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// How a child's exit status is collected.
pub(crate) enum Reaper {
    /// Our own child: `waitpid`.
    Direct,
    /// A child of the fork server: a 4-byte exit code arrives on the sentinel socket.
    Server,
}

/// A started child, as its parent sees it.
pub(crate) struct Popen {
    pub pid: u32,
    /// The pidfd (opened at start) or the fork server's status socket.
    sentinel: OwnedFd,
    /// For a fork-server child: a pidfd to signal it through (`None` if it had already
    /// ended when we tried). A direct child is signalled through its sentinel pidfd.
    /// Signals go through `pidfd_send_signal`, never to another process that reused
    /// the pid.
    signal_fd: Option<OwnedFd>,
    reaper: Reaper,
    returncode: Mutex<Option<i32>>,
    /// The parent's end of the payload socket, kept when the task's result is wanted.
    pub result_sock: Mutex<Option<OwnedFd>>,
}

/// Converts a `waitpid` status to Python's convention: the exit code, or `-N` for signal N.
pub(crate) fn decode_status(status: libc::c_int) -> i32 {
    if libc::WIFSIGNALED(status) {
        -libc::WTERMSIG(status)
    } else {
        libc::WEXITSTATUS(status)
    }
}

/// Waits until `fd` is readable (or hung up) or `timeout` passes. EINTR is retried
/// with the remaining time. `None` waits forever.
pub(crate) fn wait_readable(
    fd: BorrowedFd<'_>,
    timeout: Option<Duration>,
) -> std::io::Result<bool> {
    match crate::reduction::poll_fds(&[fd.as_raw_fd()], timeout) {
        Ok(ready) => Ok(!ready.is_empty()),
        Err(Error::Io(e)) => Err(e),
        Err(e) => Err(std::io::Error::other(e.to_string())),
    }
}

/// `pidfd_open(pid)`.
pub(crate) fn pidfd(pid: u32) -> Result<OwnedFd> {
    let p = rustix::process::Pid::from_raw(pid as i32)
        .ok_or_else(|| Error::invalid(format!("invalid pid {pid}")))?;
    Ok(rustix::process::pidfd_open(
        p,
        rustix::process::PidfdFlags::empty(),
    )?)
}

impl Popen {
    /// A child of ours, just started (not yet reaped, so `pid` is still ours): its
    /// pidfd is opened now, so the sentinel and signals name this child for good,
    /// whatever happens to the pid after it is reaped.
    pub(crate) fn direct(pid: u32) -> Result<Self> {
        match pidfd(pid) {
            Ok(fd) => Ok(Self::with_sentinel(pid, fd, None, Reaper::Direct)),
            Err(e) => {
                // no handle on it (EMFILE …): do not leave it running unreaped
                // SAFETY: plain syscalls on our own, unreaped child.
                unsafe {
                    libc::kill(pid as libc::pid_t, libc::SIGKILL);
                    libc::waitpid(pid as libc::pid_t, std::ptr::null_mut(), 0);
                }
                Err(e)
            }
        }
    }

    /// A child of the fork server, whose exit code arrives on `status`. Its pidfd (for
    /// signals) is opened now; it names the child as long as the server has not
    /// reported its exit, which is checked right after opening it.
    pub(crate) fn server(pid: u32, status: OwnedFd) -> Self {
        let signal_fd = pidfd(pid)
            .ok()
            .filter(|_| !wait_readable(status.as_fd(), Some(Duration::ZERO)).unwrap_or(true));
        Self::with_sentinel(pid, status, signal_fd, Reaper::Server)
    }

    fn with_sentinel(
        pid: u32,
        sentinel: OwnedFd,
        signal_fd: Option<OwnedFd>,
        reaper: Reaper,
    ) -> Self {
        Popen {
            pid,
            sentinel,
            signal_fd,
            reaper,
            returncode: Mutex::new(None),
            result_sock: Mutex::new(None),
        }
    }

    fn sentinel_fd(&self) -> Result<BorrowedFd<'_>> {
        Ok(self.sentinel.as_fd())
    }

    /// A descriptor readable once the child ended.
    pub(crate) fn sentinel(&self) -> Result<RawFd> {
        Ok(self.sentinel_fd()?.as_raw_fd())
    }

    /// The exit code if the child has ended (never blocks).
    pub(crate) fn poll(&self) -> Option<i32> {
        let mut rc = lock(&self.returncode);
        if rc.is_some() {
            return *rc;
        }
        match self.reaper {
            Reaper::Direct => {
                let mut status = 0;
                // SAFETY: plain syscall on our own child's pid.
                let r =
                    unsafe { libc::waitpid(self.pid as libc::pid_t, &mut status, libc::WNOHANG) };
                if r == self.pid as libc::pid_t {
                    *rc = Some(decode_status(status));
                } else if r < 0 {
                    // ECHILD: someone else reaped it (SIGCHLD ignored?); report unknown.
                    if std::io::Error::last_os_error().raw_os_error() == Some(libc::ECHILD) {
                        *rc = Some(255);
                    }
                }
            }
            Reaper::Server => {
                let status = &self.sentinel;
                if let Ok(true) = wait_readable(status.as_fd(), Some(Duration::ZERO)) {
                    let mut buf = [0u8; 4];
                    let mut fds = Vec::new();
                    *rc = Some(
                        match crate::reduction::read_exact_fds(
                            status.as_fd(),
                            crate::reduction::FdKind::Socket,
                            &mut buf,
                            &mut fds,
                        ) {
                            Ok(true) => i32::from_be_bytes(buf),
                            // the fork server died before reporting: unknown (as CPython: 255)
                            _ => 255,
                        },
                    );
                    // The status is consumed; the server may not have closed its end
                    // yet. Shutting down our reading side keeps the sentinel readable
                    // from now on (as a child's pidfd stays readable), so `wait()` on
                    // a joined process reports it ready, never blocks.
                    let _ = rustix::net::shutdown(status, rustix::net::Shutdown::Read);
                }
            }
        }
        *rc
    }

    /// Waits for the child to end, at most `timeout`; its exit code if it did.
    pub(crate) fn wait(&self, timeout: Option<Duration>) -> Result<Option<i32>> {
        if let Some(rc) = self.poll() {
            return Ok(Some(rc));
        }
        if let (Reaper::Direct, None) = (&self.reaper, timeout) {
            // Block until it exits without reaping (WNOWAIT), so concurrent joiners
            // never race: whoever polls first reaps, the others see the stored code.
            loop {
                // SAFETY: zeroed siginfo_t is valid; waitid on our own child.
                let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
                // SAFETY: `info` is a valid out-parameter; waitid on our own child.
                let r = unsafe {
                    libc::waitid(
                        libc::P_PID,
                        self.pid as libc::id_t,
                        &mut info,
                        libc::WEXITED | libc::WNOWAIT,
                    )
                };
                if r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                    break;
                }
            }
            return Ok(self.poll());
        }
        if !wait_readable(self.sentinel_fd()?, timeout)? {
            return Ok(None);
        }
        Ok(self.poll())
    }

    /// Sends `sig` unless the child has already been reaped.
    pub(crate) fn signal(&self, sig: libc::c_int) -> Result<()> {
        if self.poll().is_some() {
            return Ok(());
        }
        let fd = match self.reaper {
            Reaper::Direct => &self.sentinel,
            Reaper::Server => match &self.signal_fd {
                Some(fd) => fd,
                None => return Ok(()), // it had ended before we could open a pidfd
            },
        };
        let sig = rustix::process::Signal::from_named_raw(sig)
            .ok_or_else(|| Error::invalid(format!("invalid signal {sig}")))?;
        match rustix::process::pidfd_send_signal(fd, sig) {
            // ESRCH: it has exited (not yet reaped): nothing to do, as for kill(2)
            Ok(()) | Err(rustix::io::Errno::SRCH) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// What a forked child does.
pub(crate) enum ForkWork {
    /// Run a registered task from an encoded payload held in memory.
    Payload(Vec<u8>, Vec<OwnedFd>),
    /// Run a closure (`Process::from_closure`).
    Closure(Box<dyn FnOnce() + Send>),
}

/// The socket a task's result comes back on, when it is wanted (`mp::spawn`).
pub(crate) fn result_pair(want: bool) -> Result<(Option<OwnedFd>, Option<OwnedFd>)> {
    if !want {
        return Ok((None, None));
    }
    let (ours, theirs) = UnixStream::pair()?;
    Ok((Some(ours.into()), Some(theirs.into())))
}

/// Forks a child running `work` (CPython's `popen_fork.Popen._launch`).
pub(crate) fn launch(meta: Meta, work: ForkWork, want_result: bool) -> Result<Popen> {
    spawn::ensure_panic_hook(); // before the fork: see ensure_panic_hook
    record_stdin(); // normally done at start-up already
    let (ours, theirs) = result_pair(want_result)?;
    // Hold mp's locks across fork so the child never inherits one mid-update.
    let locks = crate::process::lock_for_fork();
    let pid = match fork() {
        Ok(None) => {
            drop(ours);
            locks.in_child(Some(meta.clone()));
            spawn::after_fork_child(&meta);
            crate::process::watch_parent(&meta);
            match work {
                ForkWork::Payload(bytes, fds) => match codec::decode::<Payload>(&bytes) {
                    Ok(p) => spawn::run_task(p, fds, theirs),
                    Err(e) => {
                        eprintln!("mp: bad payload: {e}");
                        exit_now(1)
                    }
                },
                ForkWork::Closure(f) => {
                    log::info!("child process calling self.run()");
                    let code = spawn::run_guarded(&meta.name, AssertUnwindSafe(f))
                        .map(|_| 0)
                        .unwrap_or(1);
                    spawn::finish_child(code)
                }
            }
        }
        other => other,
    };
    drop(locks);
    let pid = pid?.expect("parent side of fork");
    drop(theirs);
    let popen = Popen::direct(pid)?;
    *lock(&popen.result_sock) = ours;
    Ok(popen)
}

/// Forks: `Ok(None)` in the child, `Ok(Some(pid))` in the parent. The child must end
/// in [`exit_now`].
pub(crate) fn fork() -> Result<Option<u32>> {
    // SAFETY: fork itself is sound; callers run only fork-safe work in the child
    // (their own locks are held across the call) and end it with _exit.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(Error::last_os());
    }
    Ok((pid > 0).then_some(pid as u32))
}

/// Ends the current process at once: flush stdio, `_exit(code)` (no atexit handlers,
/// which belong to the parent a forked child was copied from).
pub(crate) fn exit_now(code: i32) -> ! {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: terminates the process.
    unsafe { libc::_exit(code) }
}

/// Ignores SIGPIPE as Rust's runtime does before `main` (a child bootstrapped in a
/// constructor runs before it) and restores default SIGINT handling.
pub(crate) fn child_signals() {
    // SAFETY: setting dispositions to SIG_IGN / SIG_DFL is always sound.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        libc::signal(libc::SIGINT, libc::SIG_DFL);
    }
}

/// Whether fd 0 was open when mp first looked ([`record_stdin`]: at start-up, before
/// any descriptor of mp's could take the number 0).
static STDIN_OPEN: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

/// Records whether this program has a standard input (once per program; a forked
/// child inherits the record, a spawned one records its own at start-up).
pub(crate) fn record_stdin() {
    // SAFETY: F_GETFD only queries the descriptor's flags.
    STDIN_OPEN.get_or_init(|| unsafe { libc::fcntl(0, libc::F_GETFD) } >= 0);
}

/// Replaces the child's standard input with `/dev/null`, as CPython's
/// `BaseProcess._bootstrap` does (`_close_stdin`): a child never competes with its
/// parent for a terminal or a pipe, and reading its stdin gives end of file at once.
/// Not when the program started without a stdin (CPython leaves a `None` `sys.stdin`
/// alone), nor when fd 0 is now a socket: a program that closed its stdin may have fd
/// 0 reused by one of mp's connection ends, which a forked child still needs.
pub(crate) fn stdin_from_devnull() {
    if STDIN_OPEN.get() != Some(&true) {
        return;
    }
    // SAFETY: fstat on fd 0 only fills the local struct.
    let is_socket = unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        libc::fstat(0, &mut st) == 0 && st.st_mode & libc::S_IFMT == libc::S_IFSOCK
    };
    if is_socket {
        return;
    }
    // SAFETY: opens a fresh descriptor and moves it onto fd 0, this process's standard
    // input (checked above).
    unsafe {
        let fd = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return;
        }
        if fd == 0 {
            libc::fcntl(0, libc::F_SETFD, 0);
        } else {
            libc::dup2(fd, 0);
            libc::close(fd);
        }
    }
}

/// Ignores SIGINT (the fork server, like CPython's, leaves Ctrl-C to its children's parent).
pub(crate) fn ignore_sigint() {
    // SAFETY: as above.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}

/// Sets `fd`'s number to at least `min` (`F_DUPFD_CLOEXEC`).
pub(crate) fn dup_above(fd: BorrowedFd<'_>, min: RawFd) -> Result<OwnedFd> {
    Ok(rustix::io::fcntl_dupfd_cloexec(fd, min)?)
}

// ---------------------------------------------------------------------------------
// Per-process state that a forked child must not inherit

/// Bumped in every forked child (a `pthread_atfork` child handler: mp's forks and any
/// other), so [`ForkLocal`]s notice they were copied.
static FORK_GENERATION: AtomicU64 = AtomicU64::new(0);

/// This process's fork generation: equal in two places only if they are the same
/// process, or the value was read before the fork that separated them. (Bumped in
/// every forked child once the handler is installed: the first call installs it.)
pub(crate) fn fork_generation() -> u64 {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: registers a plain extern "C" child handler that bumps an atomic.
        unsafe {
            libc::pthread_atfork(None, None, Some(bump_fork_generation));
        }
    });
    FORK_GENERATION.load(Ordering::Acquire)
}
/// Set in [`ForkLocal::get`]'s generation while one thread installs the fresh value.
const RENEWING: u64 = 1 << 63;

extern "C" fn bump_fork_generation() {
    FORK_GENERATION.fetch_add(1, Ordering::AcqRel);
}

/// A value private to one process (a queue's feeder buffer and thread, its `closed`
/// flag …): a forked child sees a fresh `T::default()` instead of its parent's copy,
/// whose items are the parent's to deliver and whose locks another parent thread may
/// have held at the moment of the fork. The parent's copy is leaked in the child,
/// never dropped or used: its state belongs to threads that do not exist there.
pub(crate) struct ForkLocal<T> {
    value: AtomicPtr<T>,
    generation: AtomicU64,
}

impl<T: Default> ForkLocal<T> {
    pub(crate) fn new() -> Self {
        ForkLocal {
            value: AtomicPtr::new(Box::into_raw(Box::default())),
            generation: AtomicU64::new(fork_generation()),
        }
    }

    /// This process's value.
    #[inline]
    pub(crate) fn get(&self) -> &T {
        let now = FORK_GENERATION.load(Ordering::Acquire);
        if self.generation.load(Ordering::Acquire) != now {
            self.renew(now);
        }
        // SAFETY: `value` always points to a live, leaked-or-owned `Box<T>`: it is only
        // replaced by `renew` (which never frees the old one) and freed by `drop`,
        // which `&self` excludes.
        unsafe { &*self.value.load(Ordering::Acquire) }
    }

    #[cold]
    fn renew(&self, now: u64) {
        loop {
            let seen = self.generation.load(Ordering::Acquire);
            if seen == now {
                return;
            }
            if seen & RENEWING == 0
                && self
                    .generation
                    .compare_exchange(seen, now | RENEWING, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
            {
                // the parent's value is leaked (see the type's docs)
                self.value
                    .store(Box::into_raw(Box::default()), Ordering::Release);
                self.generation.store(now, Ordering::Release);
                return;
            }
            std::thread::yield_now(); // another thread of this child is renewing it
        }
    }
}

impl<T: Default> Default for ForkLocal<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// Whether this process is the one that made a value: `true` where it was made, `false`
/// in any forked child's copy (whatever pid the child has: a pid can be reused, by a
/// descendant that inherited the copy too). What CPython's `Finalize` checks with
/// `os.getpid()`.
#[derive(Debug)]
pub(crate) struct MadeHere(u64);

impl MadeHere {
    pub(crate) fn new() -> Self {
        MadeHere(fork_generation())
    }

    /// Whether the calling process made it.
    pub(crate) fn here(&self) -> bool {
        self.0 == fork_generation()
    }
}

impl<T> Drop for ForkLocal<T> {
    fn drop(&mut self) {
        // Only the value of this process is freed; a copy inherited from a parent was
        // never ours. A value renewed in this process, or never renewed: ours.
        if self.generation.load(Ordering::Acquire) == FORK_GENERATION.load(Ordering::Acquire) {
            // SAFETY: `value` came from `Box::into_raw` in this process and nobody
            // else can reach it any more (`&mut self`).
            drop(unsafe { Box::from_raw(*self.value.get_mut()) });
        }
    }
}

impl<T> std::fmt::Debug for ForkLocal<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ForkLocal")
    }
}

// SAFETY: it hands out `&T` to any thread: T must be Sync (and Send, as it is dropped
// by whichever thread drops the ForkLocal).
unsafe impl<T: Send + Sync> Sync for ForkLocal<T> {}
// SAFETY: as above.
unsafe impl<T: Send + Sync> Send for ForkLocal<T> {}
