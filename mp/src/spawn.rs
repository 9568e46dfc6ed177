//! The child bootstrap and the task registry (CPython's `multiprocessing.spawn`).
//!
//! A child started by spawn or forkserver executes the program's binary again. Before
//! anything else of the program runs, the bootstrap sees the marker in the environment,
//! reads its payload (task name, encoded arguments, process metadata and the
//! descriptors the arguments carry) from one inherited Unix socket, resolves the task by
//! name in the registry, runs it and exits: `main`'s body never runs in a child.
//!
//! Where the bootstrap runs:
//! - in a binary whose `main` carries [`#[mp::main]`](macro@crate::main): first thing in `main`;
//! - anywhere else (test binaries, doctests, a `main` without the attribute): in a
//!   constructor that runs before `main`, which is why the task registry is a `linkme`
//!   distributed slice (complete at link time) rather than an `inventory` (whose
//!   registrations are themselves constructors, run in link order).

use crate::codec;
use crate::error::{Error, Result};
use crate::popen_fork::{self, exit_now};
use crate::process::Meta;
use crate::reduction::{read_frame, write_frame, FdKind};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::any::TypeId;
use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd, RawFd};
use std::panic::{self, AssertUnwindSafe};
use std::sync::OnceLock;
use std::time::Duration;

/// Environment marker of a spawned child: the payload socket's descriptor number.
pub(crate) const ENV_CHILD: &str = "MP_SPAWN_CHILD_FD";
/// Environment marker of the fork server: the control socket's descriptor number.
pub(crate) const ENV_FORKSERVER: &str = "MP_FORKSERVER_FD";

/// One registered task: what `#[mp::task]` emits.
#[doc(hidden)]
#[derive(Debug)]
pub struct TaskEntry {
    /// `module_path!()::name` (or the type path for a `Run` impl).
    pub name: &'static str,
    /// `TypeId` of the function item (or of the `Run` type).
    pub type_id: fn() -> TypeId,
    /// Decodes the arguments, runs the task, encodes its result.
    pub call: fn(&[u8], Vec<OwnedFd>) -> Result<Vec<u8>>,
    /// A pool chunk: decodes a sequence of argument tuples, runs the task on each (a
    /// panic failing only its item), encodes the sequence of `Result<R, ItemError>`.
    /// One decode and one encode per chunk, not per item.
    pub call_chunk: fn(&[u8], Vec<OwnedFd>) -> Result<Vec<u8>>,
}

/// Every task of the program, collected at link time.
#[doc(hidden)]
#[linkme::distributed_slice]
pub static TASKS: [TaskEntry];

/// Non-empty when the binary's `main` carries `#[mp::main]` (the bootstrap then runs
/// in `main` rather than in the pre-`main` constructor).
#[doc(hidden)]
#[linkme::distributed_slice]
pub static MAIN_BOOTSTRAP: [u8];

struct Registry {
    by_type: HashMap<TypeId, &'static TaskEntry>,
    by_name: HashMap<&'static str, &'static TaskEntry>,
}

fn registry() -> &'static Registry {
    static REG: OnceLock<Registry> = OnceLock::new();
    REG.get_or_init(|| {
        let mut by_type = HashMap::new();
        let mut by_name = HashMap::new();
        for e in TASKS.iter() {
            by_type.insert((e.type_id)(), e);
            by_name.insert(e.name, e);
        }
        Registry { by_type, by_name }
    })
}

/// The registered name of the task whose function item (or `Run` type) is `T`.
pub(crate) fn task_name_of<T: 'static>() -> Result<&'static str> {
    registry()
        .by_type
        .get(&TypeId::of::<T>())
        .map(|e| e.name)
        .ok_or_else(|| Error::NotRegistered {
            name: std::any::type_name::<T>().to_string(),
        })
}

/// The registry entry named `name`.
pub(crate) fn task_by_name(name: &str) -> Result<&'static TaskEntry> {
    registry()
        .by_name
        .get(name)
        .copied()
        .ok_or_else(|| Error::NotRegistered {
            name: name.to_string(),
        })
}

/// Whether `T` (a function item or `Run` type) is registered.
pub fn is_registered<T: 'static>() -> bool {
    registry().by_type.contains_key(&TypeId::of::<T>())
}

/// A function usable as a task with arguments `Args` (a tuple): implemented for every
/// `Fn(A1, …, An) -> R` with up to 12 arguments. Call sites pass the plain function.
pub trait TaskFn<Args>: Copy + Send + Sync + 'static {
    /// The function's result.
    type Output;
    /// Calls the function with the tuple's elements.
    fn call(&self, args: Args) -> Self::Output;
}

macro_rules! impl_task_fn {
    ($($a:ident),*) => {
        impl<F, R, $($a,)*> TaskFn<($($a,)*)> for F
        where
            F: Fn($($a),*) -> R + Copy + Send + Sync + 'static,
        {
            type Output = R;
            #[allow(non_snake_case)]
            fn call(&self, ($($a,)*): ($($a,)*)) -> R {
                (self)($($a),*)
            }
        }
    };
}
impl_task_fn!();
impl_task_fn!(A1);
impl_task_fn!(A1, A2);
impl_task_fn!(A1, A2, A3);
impl_task_fn!(A1, A2, A3, A4);
impl_task_fn!(A1, A2, A3, A4, A5);
impl_task_fn!(A1, A2, A3, A4, A5, A6);
impl_task_fn!(A1, A2, A3, A4, A5, A6, A7);
impl_task_fn!(A1, A2, A3, A4, A5, A6, A7, A8);
impl_task_fn!(A1, A2, A3, A4, A5, A6, A7, A8, A9);
impl_task_fn!(A1, A2, A3, A4, A5, A6, A7, A8, A9, A10);
impl_task_fn!(A1, A2, A3, A4, A5, A6, A7, A8, A9, A10, A11);
impl_task_fn!(A1, A2, A3, A4, A5, A6, A7, A8, A9, A10, A11, A12);

/// The trampoline `#[mp::task]` registers: decode `Args`, call `f`, encode the result.
#[doc(hidden)]
pub fn task_entry<F, Args>(f: F, args: &[u8], fds: Vec<OwnedFd>) -> Result<Vec<u8>>
where
    F: TaskFn<Args>,
    Args: crate::__private::CrossProcess + DeserializeOwned,
    F::Output: crate::__private::CrossProcess + Serialize,
{
    let args: Args = codec::decode_with_fds(args, fds)?;
    let out = f.call(args);
    let (bytes, _fds) = codec::encode_with_fds(&out)?;
    Ok(bytes)
}

/// A Python `Process` subclass with a `run()` method: a serializable value whose
/// `impl mp::Run for T` block carries `#[mp::task]`, started with
/// [`Process::from_run`](crate::Process::from_run).
///
/// ```
/// # mp::test_support!();
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Counter { upto: u32 }
///
/// #[mp::task]
/// impl mp::Run for Counter {
///     fn run(self) {
///         let total: u32 = (1..=self.upto).sum();
///         assert_eq!(total, 55);
///     }
/// }
///
/// # fn main() -> mp::Result<()> {
/// let mut p = mp::Process::from_run(Counter { upto: 10 });
/// p.start()?;
/// p.join()?;
/// assert_eq!(p.exitcode(), Some(0));
/// # Ok(()) }
/// ```
pub trait Run {
    /// The child's work (Python's `Process.run`).
    fn run(self);
}

/// What `#[mp::main]` calls first: in a child, run its work and exit; in the parent,
/// return at once.
#[doc(hidden)]
pub fn bootstrap_main() {
    bootstrap_if_child();
}

/// What `#[mp::main]` wraps `main`'s body in: the exit handlers (join non-daemonic
/// children, terminate daemonic ones, stop the fork server) run when it returns or
/// unwinds.
#[doc(hidden)]
pub fn run_main<R>(body: impl FnOnce() -> R) -> R {
    struct AtExit;
    impl Drop for AtExit {
        fn drop(&mut self) {
            crate::util::run_exit_handlers();
        }
    }
    let _guard = AtExit;
    body()
}

/// Python's `multiprocessing.freeze_support()`: a no-op, kept for familiarity (the
/// bootstrap is [`#[mp::main]`](macro@crate::main) or the pre-`main` constructor).
pub fn freeze_support() {}

/// The bootstrap for a `main` that cannot carry `#[mp::main]`: call it first thing.
/// In a child started by spawn or forkserver it runs the child's work and exits; in
/// the parent it returns at once. (A binary that links `mp` also runs it in a
/// constructor before `main`, so this is a belt-and-braces call.)
pub fn bootstrap() {
    bootstrap_if_child();
}

/// The bootstrap for test binaries and doctests. Since `mp` runs its bootstrap in a
/// constructor before `main` in every binary that starts children, this expands to a
/// reference that keeps that constructor linked; it is harmless to use more than once
/// per crate.
///
/// ```
/// mp::test_support!();
/// ```
#[macro_export]
macro_rules! test_support {
    () => {
        const _: () = {
            #[used]
            static __MP_KEEP_BOOTSTRAP: fn() = $crate::bootstrap;
        };
    };
}

/// The trampoline `#[mp::task]` registers for an `impl mp::Run for T` block.
#[doc(hidden)]
pub fn run_entry<T: Run + DeserializeOwned>(args: &[u8], fds: Vec<OwnedFd>) -> Result<Vec<u8>> {
    let value: T = codec::decode_with_fds(args, fds)?;
    value.run();
    codec::encode(&())
}

// ---------------------------------------------------------------------------------
// The child side (CPython's `spawn._main` / `prepare`)

/// Everything a child started by spawn or forkserver receives on its socket (the
/// descriptors its arguments carry travel beside it).
#[derive(Serialize, Deserialize)]
pub(crate) struct Payload {
    pub meta: Meta,
    pub task: String,
    pub args: Vec<u8>,
}

/// What a child sends back on its socket when it ends (read by [`JoinHandle`]).
#[derive(Serialize, Deserialize)]
pub(crate) enum Outcome {
    Ok(Vec<u8>),
    Panicked { message: String, backtrace: String },
    Failed(String),
}

/// In a child forked by mp: reset what belongs to the parent (the process locks were
/// reset by [`ForkLocks::in_child`](crate::process::ForkLocks::in_child)).
pub(crate) fn after_fork_child(meta: &Meta) {
    crate::util::after_fork_child();
    crate::util::set_inherited_log_level(meta.log_level);
    popen_fork::child_signals();
    popen_fork::stdin_from_devnull();
}

/// Installs, once per program, the panic hook that prints `Process <name>:` above a
/// task's panic and keeps its backtrace for [`Error::TaskPanicked`]. It is installed
/// in the parent *before* a fork, never in a forked child: `take_hook`/`set_hook` take
/// the hook's write lock, and a child forked while another parent thread was reading
/// the hook (any panic, e.g. while it prints a backtrace) inherits that lock held and
/// would block forever.
pub(crate) fn ensure_panic_hook() {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if QUIET.with(std::cell::Cell::get) {
                // a pool task: its panic travels back in its result, nothing is printed
                let bt = std::backtrace::Backtrace::capture();
                LAST_BACKTRACE.with(|b| *b.borrow_mut() = bt.to_string());
                return;
            }
            // only the thread running a task reports as the process
            if let Some(name) = TASK_NAME.with(|n| n.borrow().clone()) {
                let bt = std::backtrace::Backtrace::capture();
                let bt_text = bt.to_string();
                let thread = std::thread::current();
                let mut report = format!(
                    "Process {name}:\nthread '{}' panicked at {}:\n{}\n",
                    thread.name().unwrap_or("<unnamed>"),
                    info.location()
                        .map_or_else(|| "<unknown>".to_string(), |l| l.to_string()),
                    panic_message(info.payload()),
                );
                if bt.status() == std::backtrace::BacktraceStatus::Captured {
                    report.push_str("stack backtrace:\n");
                    report.push_str(&bt_text);
                } else {
                    report.push_str(
                        "note: run with `RUST_BACKTRACE=1` environment variable to display \
                         a backtrace\n",
                    );
                }
                LAST_BACKTRACE.with(|b| *b.borrow_mut() = bt_text);
                to_stderr(&report);
                return;
            }
            default(info);
        }));
    });
}

/// Writes `text` to the process's standard error in one write, ignoring errors: a
/// child's report must neither panic on a closed or broken stderr (as `eprintln!` does)
/// nor vanish into the output capture a forked child inherits from a `cargo test`
/// thread (which `eprintln!` and the default panic hook honour), so that a child's
/// panic report reaches its fd 2 as CPython's traceback reaches `sys.stderr`.
pub(crate) fn to_stderr(text: &str) {
    use std::io::Write;
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// Runs `f` with this thread's panics recorded, not printed: a pool task's panic reaches
/// the parent as [`Error::TaskPanicked`] with its message and backtrace, as CPython's pool
/// reports a task's exception only through its result. `Err((message, backtrace))` if
/// `f` panicked.
pub(crate) fn catch_quietly<R>(f: impl FnOnce() -> R) -> std::result::Result<R, (String, String)> {
    quietly(|| catch_recorded(f))
}

/// Runs `f` with this thread's panics recorded, not printed (what [`catch_quietly`]
/// sets up), for a loop of [`catch_recorded`] calls: a pool chunk sets this up once,
/// not once per item.
pub(crate) fn quietly<R>(f: impl FnOnce() -> R) -> R {
    ensure_panic_hook();
    let was = QUIET.with(|q| q.replace(true));
    // restored even if `f` unwinds
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            QUIET.with(|q| q.set(self.0));
        }
    }
    let _restore = Restore(was);
    f()
}

/// Inside [`quietly`]: runs `f`, `Err((message, backtrace))` if it panicked.
pub(crate) fn catch_recorded<R>(f: impl FnOnce() -> R) -> std::result::Result<R, (String, String)> {
    panic::catch_unwind(panic::AssertUnwindSafe(f)).map_err(|p| {
        (
            panic_message(&*p),
            LAST_BACKTRACE.with(|b| std::mem::take(&mut *b.borrow_mut())),
        )
    })
}

thread_local! {
    static QUIET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    static LAST_BACKTRACE: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
    static TASK_NAME: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// The message a panic carried (`Box<dyn Any>` when it is neither `&str` nor `String`).
pub(crate) fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "Box<dyn Any>".to_string()
    }
}

/// Runs `f` with the child's panic hook; `Err((message, backtrace))` if it panicked.
pub(crate) fn run_guarded<R>(
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

pub(crate) fn finish_child(code: i32) -> ! {
    crate::util::run_exit_handlers();
    log::info!("process exiting with exitcode {code}");
    exit_now(code)
}

pub(crate) fn run_task(payload: Payload, fds: Vec<OwnedFd>, sock: Option<OwnedFd>) -> ! {
    let name = payload.meta.name.clone();
    let outcome = match task_by_name(&payload.task) {
        Err(e) => {
            to_stderr(&format!("Process {name}:\n{e}\n"));
            Outcome::Failed(e.to_string())
        }
        Ok(entry) => {
            log::info!("child process calling self.run()");
            match run_guarded(&name, AssertUnwindSafe(|| (entry.call)(&payload.args, fds))) {
                Ok(Ok(bytes)) => Outcome::Ok(bytes),
                Ok(Err(e)) => {
                    to_stderr(&format!("Process {name}:\n{e}\n"));
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
    crate::process::become_child(payload.meta.clone());
    crate::util::after_fork_child();
    popen_fork::stdin_from_devnull();
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
    // before a child receives any descriptor that could take the number 0
    popen_fork::record_stdin();
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

#[cfg_attr(miri, allow(dead_code))] // see BOOTSTRAP_CTOR
extern "C" fn bootstrap_ctor() {
    if MAIN_BOOTSTRAP.is_empty() {
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
/// Not under Miri (`.ci/miri`): it reads linkme's section-bounded statics, which Miri
/// does not support, and no test under Miri starts a process.
#[cfg(not(miri))]
#[used]
#[link_section = ".init_array"]
static BOOTSTRAP_CTOR: extern "C" fn() = bootstrap_ctor;

/// Referenced from every path that starts a binary again, so the linker keeps the
/// constructor above in every program that can be a spawned child.
pub(crate) fn keep_bootstrap_linked() {
    #[cfg(not(miri))]
    std::hint::black_box(&BOOTSTRAP_CTOR);
}
#[doc(hidden)]
pub mod root_exports {
    pub use super::{bootstrap, freeze_support, Run, TaskFn};
}
