//! Logging and exit handling (CPython's `multiprocessing.util`).
//!
//! [`log_to_stderr`] installs a [`log`] logger that formats records as Python's
//! multiprocessing logger does, `[LEVEL/ProcessName] message`; children inherit the level.
//!
//! Exit handlers run once when the program's `main` returns or unwinds (through
//! [`#[mp::main]`](macro@crate::main)) or when the process exits (`atexit`): join
//! non-daemonic children, terminate daemonic ones, run what other parts of `mp`
//! registered (queues flushing, managers shutting down, the resource tracker), and
//! stop the fork server.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::Mutex;

type Hook = Box<dyn FnOnce() + Send>;

static HOOKS: Mutex<Vec<(i32, Hook)>> = Mutex::new(Vec::new());
static ATEXIT_INSTALLED: AtomicBool = AtomicBool::new(false);
/// The pid whose exit handlers already ran (0 = none yet).
static RAN_IN: AtomicU32 = AtomicU32::new(0);

/// Locks `m`, ignoring poisoning: mp's process-wide state stays usable after a panic
/// elsewhere (every critical section leaves it consistent, or is written to be
/// re-entered), as a Python program carries on after an exception in another thread.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Registers `f` to run at exit (Python's `util.Finalize(None, f, exitpriority=p)`):
/// higher priorities first; children are joined before priority 0 and after
/// positive priorities. Hooks belong to the process that registered them: a forked
/// child starts with none.
pub fn register_exit_hook(priority: i32, f: impl FnOnce() + Send + 'static) {
    ensure_exit_handlers();
    ensure_atfork_handlers();
    lock(&HOOKS).push((priority, Box::new(f)));
}

extern "C" fn atexit_handler() {
    run_exit_handlers();
}

/// Makes sure the exit handlers run when the process exits.
pub(crate) fn ensure_exit_handlers() {
    if !ATEXIT_INSTALLED.swap(true, Ordering::AcqRel) {
        // SAFETY: registering a plain extern "C" fn.
        unsafe { libc::atexit(atexit_handler) };
    }
}

/// Runs the exit handlers once per process.
pub(crate) fn run_exit_handlers() {
    let me = std::process::id();
    if RAN_IN.swap(me, Ordering::AcqRel) == me {
        return;
    }
    log::info!("process shutting down");
    let mut hooks = std::mem::take(&mut *lock(&HOOKS));
    hooks.sort_by_key(|(p, _)| -*p);
    let mut rest = Vec::new();
    for (p, f) in hooks {
        if p > 0 {
            f();
        } else {
            rest.push(f);
        }
    }
    crate::process::finish_children();
    for f in rest {
        f();
    }
    crate::popen_forkserver::stop();
}

/// In a forked or freshly started child: forget the parent's exit hooks (a forked
/// child's were already dropped by the fork handler, see [`ensure_atfork_handlers`]).
pub(crate) fn after_fork_child() {
    if let Ok(mut h) = HOOKS.try_lock() {
        // leak, don't run or drop: they belong to the parent
        std::mem::forget(std::mem::take(&mut *h));
    }
    RAN_IN.store(0, Ordering::Release);
}

type HooksGuard = std::sync::MutexGuard<'static, Vec<(i32, Hook)>>;

thread_local! {
    /// The exit hooks' lock, held by the forking thread across `fork()`.
    static HOOKS_ACROSS_FORK: std::cell::RefCell<Option<HooksGuard>> =
        const { std::cell::RefCell::new(None) };
}

extern "C" fn hooks_before_fork() {
    let g = lock(&HOOKS);
    HOOKS_ACROSS_FORK.with(|h| *h.borrow_mut() = Some(g));
}

extern "C" fn hooks_after_fork_in_parent() {
    HOOKS_ACROSS_FORK.with(|h| drop(h.borrow_mut().take()));
}

/// Any forked child (mp's fork or not) starts with no exit hooks: they belong to the
/// parent (a fork made by a C library must not join the parent's children or flush
/// its queues at exit).
extern "C" fn hooks_after_fork_in_child() {
    HOOKS_ACROSS_FORK.with(|h| {
        if let Some(mut hooks) = h.borrow_mut().take() {
            std::mem::forget(std::mem::take(&mut *hooks));
        }
    });
    RAN_IN.store(0, Ordering::Release);
}

/// Holds the exit hooks' lock across every fork, so a child never inherits it held by
/// another thread (the allocator registers its own handlers, see [`crate::heap`]).
pub(crate) fn ensure_atfork_handlers() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: registers plain extern "C" handlers that take and release this
        // module's lock on the forking thread and clear the child's hooks.
        unsafe {
            libc::pthread_atfork(
                Some(hooks_before_fork),
                Some(hooks_after_fork_in_parent),
                Some(hooks_after_fork_in_child),
            );
        }
    });
}

// ---------------------------------------------------------------------------------
// Logging

/// Python's `SUBDEBUG` and friends map onto `log`'s levels: DEBUG → Debug, INFO → Info …
static LEVEL: AtomicUsize = AtomicUsize::new(0); // 0 = not set
static INSTALLED: AtomicBool = AtomicBool::new(false);

struct MpLogger;

impl log::Log for MpLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }
    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            let name = crate::process::current_meta().name;
            // one write, errors ignored, past any test harness's output capture (see
            // `to_stderr`): logging never panics a process whose stderr is broken
            crate::spawn::to_stderr(&format!(
                "[{}/{}] {}\n",
                python_level_name(record.level()),
                name,
                record.args()
            ));
        }
    }
    fn flush(&self) {}
}

static LOGGER: MpLogger = MpLogger;

/// The level's name as Python's `logging` spells it (`WARNING`, not `log`'s `WARN`),
/// so records read `[WARNING/MainProcess] doomed` as in the docs' logging example.
fn python_level_name(level: log::Level) -> &'static str {
    match level {
        log::Level::Error => "ERROR",
        log::Level::Warn => "WARNING",
        log::Level::Info => "INFO",
        log::Level::Debug => "DEBUG",
        log::Level::Trace => "TRACE",
    }
}

fn level_index(l: log::LevelFilter) -> usize {
    l as usize + 1
}

/// Python's `get_logger()`: the `log` facade is the logger; this returns the current
/// maximum level (records below it are dropped).
pub fn get_logger() -> log::LevelFilter {
    log::max_level()
}

/// Python's `log_to_stderr(level)`: send `mp`'s (and the program's) `log` records to
/// standard error as `[LEVEL/ProcessName] message`. Children started afterwards log
/// at the same level.
///
/// ```
/// mp::log_to_stderr(log::LevelFilter::Info);
/// log::info!("hello");   // [INFO/MainProcess] hello
/// ```
pub fn log_to_stderr(level: log::LevelFilter) -> log::LevelFilter {
    if !INSTALLED.swap(true, Ordering::AcqRel) {
        // another logger may already be installed; ours then stays unused
        let _ = log::set_logger(&LOGGER);
    }
    log::set_max_level(level);
    LEVEL.store(level_index(level), Ordering::Release);
    level
}

pub(crate) fn current_log_level() -> Option<usize> {
    match LEVEL.load(Ordering::Acquire) {
        0 => None,
        n => Some(n),
    }
}

pub(crate) fn set_inherited_log_level(level: Option<usize>) {
    let Some(n) = level else { return };
    let filter = match n {
        1 => log::LevelFilter::Off,
        2 => log::LevelFilter::Error,
        3 => log::LevelFilter::Warn,
        4 => log::LevelFilter::Info,
        5 => log::LevelFilter::Debug,
        _ => log::LevelFilter::Trace,
    };
    log_to_stderr(filter);
}

#[doc(hidden)]
pub mod root_exports {
    pub use super::{get_logger, log_to_stderr};
}

// ---------------------------------------------------------------------------------
// Python's repr() of basic values, for Display of shared lists and manager proxies

/// Python's `repr(float)`: `2.0`, `1e+20`, `1.5e-07`, `nan`, `inf`.
pub(crate) fn py_float_repr(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf".into() } else { "-inf".into() };
    }
    let exp = if f == 0.0 {
        0
    } else {
        f.abs().log10().floor() as i32
    };
    if (-4..16).contains(&exp) {
        let s = format!("{f}");
        if s.contains('.') {
            s
        } else {
            format!("{s}.0")
        }
    } else {
        // Rust: 1e20 / 1.5e-7; Python: 1e+20 / 1.5e-07
        let s = format!("{f:e}");
        match s.split_once('e') {
            Some((m, e)) => {
                let (sign, digits) = match e.strip_prefix('-') {
                    Some(d) => ('-', d),
                    None => ('+', e),
                };
                format!("{m}e{sign}{digits:0>2}")
            }
            None => s,
        }
    }
}

/// Python's `repr(str)`: single quotes unless the text holds one and no double quote.
pub(crate) fn py_str_repr(s: &str) -> String {
    let q = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(q);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == q => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push(q);
    out
}

/// Python's `repr(bytes)`: `b'…'` with `\\xNN` escapes.
pub(crate) fn py_bytes_repr(b: &[u8]) -> String {
    let q = if b.contains(&b'\'') && !b.contains(&b'"') {
        b'"'
    } else {
        b'\''
    };
    let mut out = String::from("b");
    out.push(q as char);
    for &c in b {
        match c {
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            c if c == q => {
                out.push('\\');
                out.push(c as char);
            }
            0x20..=0x7e => out.push(c as char),
            c => out.push_str(&format!("\\x{c:02x}")),
        }
    }
    out.push(q as char);
    out
}
