//! (in progress)

#[doc(hidden)]
pub mod root_exports {}
