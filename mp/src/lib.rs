//! # mp: Python's `multiprocessing`, rebuilt in Rust
//!
//! Run work in separate processes — for crash isolation, C code that is not
//! thread-safe, memory that must go back to the OS, or data parallelism on all cores —
//! with the names and semantics of Python's `multiprocessing`:
//! [`Process`] under the fork, spawn and forkserver start methods, contexts, pipes and
//! connections, queues, locks and the other synchronization primitives, shared values,
//! arrays and shared memory, pools and managers.
//!
//! ```
//! # mp::test_support!();
//! #[mp::task]
//! fn greet(name: String) {
//!     println!("hello {name}");
//! }
//!
//! # fn main() -> mp::Result<()> {
//! let mut p = mp::Process::new(greet, ("bob".to_string(),));
//! p.start()?;
//! p.join()?;
//! assert_eq!(p.exitcode(), Some(0));
//! # Ok(()) }
//! ```
//!
//! A program's `main` carries [`#[mp::main]`](macro@main): in a child started by spawn or
//! forkserver the binary is executed again and only the child's task runs (Python's
//! `if __name__ == '__main__':` guard). Test binaries and doctests need nothing: `mp`
//! bootstraps them before `main` (see [`test_support!`]).

#![warn(missing_docs)]
// Lint gates (as rayon-core's lib.rs): every unsafe operation sits in an explicit
// `unsafe` block with a `// SAFETY:` line saying why it is sound, and every public
// type can be debug-printed.
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]
#![warn(missing_debug_implementations)]
#![allow(clippy::new_without_default)]

pub mod codec;
pub mod connection;
pub mod context;
pub mod dummy;
pub mod error;
mod forkserver;
pub mod heap;
mod join_handle;
pub mod managers;
pub mod pool;
mod popen_fork;
mod popen_forkserver;
mod popen_spawn;
pub mod process;
pub mod queues;
pub mod reduction;
pub mod resource_tracker;
pub mod shared_memory;
pub mod sharedctypes;
pub mod spawn;
pub mod synchronize;
pub mod util;

/// Python's `multiprocessing.queues` is also reachable as `mp::queue`.
pub use queues as queue;

#[allow(unused_imports)] // filled in as each area lands
mod reexports {
    pub use crate::connection::root_exports::*;
    pub use crate::managers::root_exports::*;
    pub use crate::pool::root_exports::*;
    pub use crate::queues::root_exports::*;
    pub use crate::shared_memory::root_exports::*;
    pub use crate::sharedctypes::root_exports::*;
    pub use crate::synchronize::root_exports::*;
}
pub use context::root_exports::*;
pub use error::{CodecError, Error, Result};
pub use process::root_exports::*;
#[allow(unused_imports)]
pub use reexports::*;
pub use spawn::root_exports::*;
pub use util::root_exports::*;

pub use mp_macros::{main, task, Shared};
// `#[mp::shared]` on an impl block, `#[derive(mp::Manager)]` (beside the `mp::Manager` struct)
pub use mp_macros::{shared, Manager};

// lets `mp`'s own code and doctests use its macros, whose expansions name `::mp`
extern crate self as mp;

/// What the macros' generated code calls. Not a public API.
#[doc(hidden)]
pub mod __private;

// Fuzzing entry points (the targets in `fuzz/`, replayed by
// `tests/fuzz_regressions.rs`). Not a public API.
#[doc(hidden)]
pub mod __fuzz;
