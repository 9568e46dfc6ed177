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
use serde::{de::DeserializeOwned, Serialize};
use std::any::TypeId;
use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::OnceLock;

/// One registered task: what `#[mp::task]` emits.
#[doc(hidden)]
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
    crate::process::bootstrap_if_child();
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
    crate::process::bootstrap_if_child();
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

#[doc(hidden)]
pub mod root_exports {
    pub use super::{bootstrap, freeze_support, Run, TaskFn};
}

/// The trampoline `#[mp::task]` registers for an `impl mp::Run for T` block.
#[doc(hidden)]
pub fn run_entry<T: Run + DeserializeOwned>(args: &[u8], fds: Vec<OwnedFd>) -> Result<Vec<u8>> {
    let value: T = codec::decode_with_fds(args, fds)?;
    value.run();
    codec::encode(&())
}
