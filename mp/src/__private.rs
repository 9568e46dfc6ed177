//! The interface between `mp-macros`' generated code and the runtime. Not public API:
//! names here may change at any time.

pub use linkme;
pub use serde;

pub use crate::spawn::{
    bootstrap_main, run_entry, run_main, task_entry, TaskEntry, MAIN_BOOTSTRAP, TASKS,
};

/// Compile-time check behind `#[mp::task]`: every argument crosses a process boundary.
pub fn assert_arg<T: serde::Serialize + serde::de::DeserializeOwned + Send + 'static>() {}

/// Compile-time check behind `#[mp::task]`: the result crosses back to the parent.
pub fn assert_ret<T: serde::Serialize + serde::de::DeserializeOwned + Send + 'static>() {}

/// `TypeId` of the (unnameable) type of a function item.
pub fn type_id_of_val<T: 'static>(_: &T) -> std::any::TypeId {
    std::any::TypeId::of::<T>()
}
