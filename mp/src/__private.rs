//! The interface between `mp-macros`' generated code and the runtime. Not public API:
//! names here may change at any time.

pub use linkme;
pub use serde;

pub use crate::spawn::{
    bootstrap_main, run_entry, run_main, task_entry, TaskEntry, MAIN_BOOTSTRAP, TASKS,
};

/// A value that can cross a process boundary (what task arguments and results must be).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot cross a process boundary",
    label = "a task's argument and result types must implement `Serialize + DeserializeOwned + Send + 'static`",
    note = "derive `serde::Serialize` and `serde::Deserialize` for it, or pass something that does"
)]
pub trait CrossProcess {}

impl<T: serde::Serialize + serde::de::DeserializeOwned + Send + 'static> CrossProcess for T {}

/// Compile-time check behind `#[mp::task]`: every argument crosses a process boundary.
pub fn assert_arg<T: CrossProcess>() {}

/// Compile-time check behind `#[mp::task]`: the result crosses back to the parent.
pub fn assert_ret<T: CrossProcess>() {}

/// `TypeId` of the (unnameable) type of a function item.
pub fn type_id_of_val<T: 'static>(_: &T) -> std::any::TypeId {
    std::any::TypeId::of::<T>()
}

/// Autoref specialisation used by `#[mp::task]`'s trampolines: a type that crosses
/// processes is decoded/encoded with the codec; any other type falls back to a run-time
/// error. The fallback only exists so that a non-serializable type is reported once,
/// by `assert_arg`/`assert_ret` at the type's own span, instead of again at the
/// attribute.
pub struct Probe<T>(std::marker::PhantomData<T>);

impl<T> Probe<T> {
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        Probe(std::marker::PhantomData)
    }
}

pub trait ViaCodec<T> {
    fn decode_args(&self, bytes: &[u8], fds: Vec<std::os::fd::OwnedFd>) -> crate::Result<T>;
    fn encode_result(&self, value: &T) -> crate::Result<Vec<u8>>;
}

impl<T: serde::Serialize + serde::de::DeserializeOwned> ViaCodec<T> for Probe<T> {
    fn decode_args(&self, bytes: &[u8], fds: Vec<std::os::fd::OwnedFd>) -> crate::Result<T> {
        crate::codec::decode_with_fds(bytes, fds)
    }
    fn encode_result(&self, value: &T) -> crate::Result<Vec<u8>> {
        crate::codec::encode_with_fds(value).map(|(b, _)| b)
    }
}

pub trait NoCodec<T> {
    fn decode_args(&self, bytes: &[u8], fds: Vec<std::os::fd::OwnedFd>) -> crate::Result<T>;
    fn encode_result(&self, value: &T) -> crate::Result<Vec<u8>>;
}

impl<T> NoCodec<T> for &Probe<T> {
    fn decode_args(&self, _: &[u8], _: Vec<std::os::fd::OwnedFd>) -> crate::Result<T> {
        Err(crate::Error::Codec(format!(
            "{} cannot be decoded",
            std::any::type_name::<T>()
        )))
    }
    fn encode_result(&self, _: &T) -> crate::Result<Vec<u8>> {
        Err(crate::Error::Codec(format!(
            "{} cannot be encoded",
            std::any::type_name::<T>()
        )))
    }
}

/// A `#[derive(mp::Manager)]` type's registry, found by name in the server process.
pub struct ManagerEntry {
    /// The manager type's path (`std::any::type_name`).
    pub name: fn() -> &'static str,
    /// Its registrations.
    pub registry: fn() -> crate::managers::Registry,
}

#[linkme::distributed_slice]
pub static MANAGERS: [ManagerEntry];

pub use crate::managers::proxy::Encoding;
pub use crate::managers::server::{CreateFn, Fail, Out, Referent};
pub use crate::managers::{
    shared_referent, BaseProxy, MakeReferent, ManagerHandle, Proxy, Shareable,
};
