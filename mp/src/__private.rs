//! The interface between `mp-macros`' generated code and the runtime. Not public API:
//! names here may change at any time.

pub use linkme;
pub use serde;

pub use crate::pool::worker::{not_a_pool_task, run_items, ChunkResults, ItemError};
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

/// A value a proxied method takes or returns (what `#[mp::shared]` checks at each type).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot cross a process boundary, so a proxied method cannot take or return it",
    label = "the arguments and result of a proxied method must implement `Serialize + DeserializeOwned + Send + 'static`",
    note = "derive `serde::Serialize` and `serde::Deserialize` for it, or leave the method out of `exposed(..)`"
)]
pub trait ProxiedValue {}

impl<T: serde::Serialize + serde::de::DeserializeOwned + Send + 'static> ProxiedValue for T {}

/// Compile-time check behind `#[mp::shared]`: a proxied method's argument or result.
pub fn assert_proxied<T: ProxiedValue>() {}

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
#[derive(Debug)]
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
    /// A pool chunk's argument tuples, decoded at once.
    fn decode_seq(&self, bytes: &[u8], fds: Vec<std::os::fd::OwnedFd>) -> crate::Result<Vec<T>>;
    /// A pool chunk's results, encoded at once; a result that cannot be encoded fails
    /// only its own item (CPython's `MaybeEncodingError`).
    fn encode_items(&self, out: &ChunkResults<T>) -> crate::Result<Vec<u8>>;
}

impl<T: serde::Serialize + serde::de::DeserializeOwned> ViaCodec<T> for Probe<T> {
    fn decode_args(&self, bytes: &[u8], fds: Vec<std::os::fd::OwnedFd>) -> crate::Result<T> {
        crate::codec::decode_with_fds(bytes, fds)
    }
    fn encode_result(&self, value: &T) -> crate::Result<Vec<u8>> {
        crate::codec::encode_with_fds(value).map(|(b, _)| b)
    }
    fn decode_seq(&self, bytes: &[u8], fds: Vec<std::os::fd::OwnedFd>) -> crate::Result<Vec<T>> {
        crate::pool::worker::decode_items(bytes, fds)
    }
    fn encode_items(&self, out: &ChunkResults<T>) -> crate::Result<Vec<u8>> {
        crate::pool::worker::encode_items(out)
    }
}

pub trait NoCodec<T> {
    fn decode_args(&self, bytes: &[u8], fds: Vec<std::os::fd::OwnedFd>) -> crate::Result<T>;
    fn encode_result(&self, value: &T) -> crate::Result<Vec<u8>>;
    fn decode_seq(&self, bytes: &[u8], fds: Vec<std::os::fd::OwnedFd>) -> crate::Result<Vec<T>>;
    fn encode_items(&self, out: &ChunkResults<T>) -> crate::Result<Vec<u8>>;
}

impl<T> NoCodec<T> for &Probe<T> {
    fn decode_args(&self, _: &[u8], _: Vec<std::os::fd::OwnedFd>) -> crate::Result<T> {
        Err(crate::Error::Codec(
            format!("{} cannot be decoded", std::any::type_name::<T>()).into(),
        ))
    }
    fn encode_result(&self, _: &T) -> crate::Result<Vec<u8>> {
        Err(crate::Error::Codec(
            format!("{} cannot be encoded", std::any::type_name::<T>()).into(),
        ))
    }
    fn decode_seq(&self, _: &[u8], _: Vec<std::os::fd::OwnedFd>) -> crate::Result<Vec<T>> {
        Err(crate::Error::Codec(
            format!("{} cannot be decoded", std::any::type_name::<T>()).into(),
        ))
    }
    fn encode_items(&self, _: &ChunkResults<T>) -> crate::Result<Vec<u8>> {
        Err(crate::Error::Codec(
            format!("{} cannot be encoded", std::any::type_name::<T>()).into(),
        ))
    }
}

/// A `#[derive(mp::Manager)]` type's registry, found by name in the server process.
#[allow(missing_debug_implementations)] // function pointers only
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

pub use mp_macros::__registration as registration;

/// `Debug` of a generated proxy: `<Name typeid 'x' at 0x…>`.
pub fn fmt_proxy_debug(
    base: &BaseProxy,
    name: &str,
    f: &mut std::fmt::Formatter<'_>,
) -> std::fmt::Result {
    base.fmt_debug(name, f)
}

/// `Display` of a generated proxy: the referent's repr.
pub fn fmt_proxy_display(base: &BaseProxy, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    base.fmt_display(f)
}

/// Calls a `method_to_typeid` method: the server made a new object; its proxy.
pub fn call_new<P: Proxy>(
    base: &BaseProxy,
    method: &str,
    args: impl serde::Serialize,
) -> crate::Result<P> {
    let bytes = base.call_raw(method, crate::codec::encode(&args)?)?;
    let token: crate::managers::Token = crate::codec::decode(&bytes)?;
    Ok(P::from_base(BaseProxy::adopt(token, P::ENCODING)))
}

/// Server side: a method's encoded argument tuple (`Codec` failure on bad bytes).
pub fn decode_args<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, Fail> {
    crate::codec::decode(bytes).map_err(Fail::from)
}

/// Server side: a method's encoded result.
pub fn encode_ret<R: serde::Serialize>(r: &R) -> Result<Out, Fail> {
    crate::codec::encode(r).map(Out::Data).map_err(Fail::from)
}

/// Autoref specialisation for `_getvalue()` and `repr()` of a shared type: serialized /
/// `Debug`-formatted when the type allows, an error / its name otherwise.
#[allow(missing_debug_implementations)] // a probe, never printed
pub struct Spec<'a, T>(pub &'a T);

pub trait ViaSerialize {
    fn __mp_value(&self) -> Result<Vec<u8>, Fail>;
}
impl<T: serde::Serialize> ViaSerialize for Spec<'_, T> {
    fn __mp_value(&self) -> Result<Vec<u8>, Fail> {
        crate::codec::encode(self.0).map_err(Fail::from)
    }
}
pub trait NoSerialize {
    fn __mp_value(&self) -> Result<Vec<u8>, Fail>;
}
impl<T> NoSerialize for &Spec<'_, T> {
    fn __mp_value(&self) -> Result<Vec<u8>, Fail> {
        Err(Fail::new(
            "TypeError",
            format!(
                "{} is not serializable: it has no value to copy",
                std::any::type_name::<T>()
            ),
        ))
    }
}
pub trait ViaDebug {
    fn __mp_repr(&self) -> String;
}
impl<T: std::fmt::Debug> ViaDebug for Spec<'_, T> {
    fn __mp_repr(&self) -> String {
        format!("{:?}", self.0)
    }
}
pub trait NoDebug {
    fn __mp_repr(&self) -> String;
}
impl<T> NoDebug for &Spec<'_, T> {
    fn __mp_repr(&self) -> String {
        format!("<{} object>", std::any::type_name::<T>())
    }
}

/// Dispatch function of one registration's proxy.
pub type DispatchFn<T> = fn(&mut T, &str, &[u8]) -> Result<Out, Fail>;

struct RegObj<T> {
    obj: std::sync::Mutex<T>,
    dispatch: DispatchFn<T>,
    methods: &'static [&'static str],
    repr: fn(&T) -> String,
}

impl<T: Shareable> Referent for RegObj<T> {
    fn call(&self, method: &str, args: &[u8]) -> Result<Out, Fail> {
        let mut g = self.obj.lock().unwrap_or_else(|p| p.into_inner());
        (self.dispatch)(&mut g, method, args)
    }
    fn repr(&self) -> String {
        (self.repr)(&self.obj.lock().unwrap_or_else(|p| p.into_inner()))
    }
    fn get_value(&self) -> Result<Vec<u8>, Fail> {
        self.obj
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .__mp_get_value()
    }
    fn methods(&self) -> &'static [&'static str] {
        self.methods
    }
}

/// The server-side object of a registration that exposes its own set of methods.
pub fn reg_referent<T: Shareable>(
    t: T,
    dispatch: DispatchFn<T>,
    methods: &'static [&'static str],
) -> Box<dyn Referent> {
    Box::new(RegObj {
        obj: std::sync::Mutex::new(t),
        dispatch,
        methods,
        repr: T::__mp_repr,
    })
}

/// Wraps a registered callable's result for proxy type `P` (a result of the wrong type
/// is a compile error here, at the callable).
pub fn make_referent<P: MakeReferent<R>, R>(r: R) -> Box<dyn Referent> {
    P::make_referent(r)
}

/// A registry entry's constructor from a zero-argument callable.
pub fn creator<P: MakeReferent<R>, R: 'static>(f: fn() -> R) -> CreateFn {
    std::sync::Arc::new(move |_args: &[u8]| Ok(P::make_referent(f())))
}
