//! Procedural macros for `mp` (use them through `mp`: `#[mp::main]`, `#[mp::task]`,
//! `#[derive(mp::Shared)]`, `#[mp::shared]`, `#[derive(mp::Manager)]`).
//!
//! Shape (after serde_derive and thiserror): `internals` holds what the macros share —
//! the error accumulator (`internals::Ctxt`: every mistake is reported at once, at its
//! span), the attribute model of `exposed(..)` / `method_to_typeid(..)` /
//! `#[register(..)]`, and the owned-type check. Each macro parses into an IR that keeps
//! the original syn nodes, validates it, then expands; an attribute macro that rejects
//! its input still emits the item (`fallback`), so users see one error, not a cascade.

use proc_macro::TokenStream;

mod fallback;
mod internals;
mod main_attr;
mod manager;
mod proxy_gen;
mod registration;
mod shared;
mod shared_impl;
mod task;

/// See `mp::main`.
#[proc_macro_attribute]
pub fn main(attr: TokenStream, item: TokenStream) -> TokenStream {
    let item: proc_macro2::TokenStream = item.into();
    main_attr::expand(attr.into(), item.clone())
        // keep the original fn so the only error is ours (no "main not found")
        .unwrap_or_else(|e| fallback::with_item(e, item))
        .into()
}

/// See `mp::task`.
#[proc_macro_attribute]
pub fn task(attr: TokenStream, item: TokenStream) -> TokenStream {
    let item: proc_macro2::TokenStream = item.into();
    task::expand(attr.into(), item.clone())
        // the function still exists, so its callers do not add errors of their own
        .unwrap_or_else(|e| fallback::with_item(e, item))
        .into()
}

/// See `mp::Shared`.
#[proc_macro_derive(Shared)]
pub fn derive_shared(item: TokenStream) -> TokenStream {
    shared::expand(item.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// `#[mp::shared(exposed(..), method_to_typeid(method = "Typeid"))]` on an inherent
/// impl block: makes the type shareable through a manager (CPython: a class passed to
/// `BaseManager.register`) and generates its typed proxy `<Type>Proxy`.
///
/// - One proxy method per exposed method, same arguments, returning `mp::Result<R>`.
///   Default exposure: the `pub` methods with a receiver whose name does not start with
///   `_` (CPython's `public_methods`); `exposed(a, b)` names them instead.
/// - `method_to_typeid(m = "T")`: `m` returns a new object that stays in the server;
///   the proxy method returns the proxy of its type (`T` must be registered by the
///   manager that serves the type: checked when the manager is declared).
/// - Errors, all reported at once at their spans: a name in `exposed(..)` or a
///   `method_to_typeid` key that is not a method; an exposed method taking `self` by
///   value, generic or `async`; an exposed method whose argument or result borrows or is
///   not `Serialize + DeserializeOwned + Send + 'static`.
/// - Also emits a hidden method table (`__mp_shared_<Type>!`) that
///   `#[derive(mp::Manager)]` reads to give each registration its own proxy; declare the
///   manager in the same module as the type, or name the callable by its full path.
///
/// See `mp::managers` for an example.
#[proc_macro_attribute]
pub fn shared(attr: TokenStream, item: TokenStream) -> TokenStream {
    let item: proc_macro2::TokenStream = item.into();
    shared_impl::expand(attr.into(), item.clone())
        .unwrap_or_else(|e| fallback::with_item(e, item))
        .into()
}

/// `#[derive(mp::Manager)]` with `#[register(..)]` attributes: declares a custom manager
/// (CPython: a `BaseManager` subclass and its `register` calls).
///
/// ```text
/// #[derive(mp::Manager)]
/// #[register("Maths", Maths::default)]                 // typeid, callable
/// #[register("Foo2", Foo::new, exposed(g, _h))]        // its own proxy: g and _h only
/// #[register("baz", baz, proxytype = IteratorProxy<u64>)]
/// #[register("get_queue", proxytype = QueueProxy<String>)]  // client side: no callable
/// #[register("Hidden", Maths::default, create_method = false)]
/// struct MyManager;
/// ```
///
/// Generates `MyManager::start() -> mp::Result<BaseManager<MyManager>>`,
/// `MyManager::new(address, authkey)` (unstarted: then `start()`, `connect()` or
/// `get_server()`), and `MyManagerHandle`, which the started handle dereferences to: one
/// method per typeid in snake_case (`m.maths()`, `m.foo2()`, `m.get_queue()`), taking the
/// callable's arguments when it is a constructor of the `#[mp::shared]` impl block, and
/// returning that registration's proxy. A registration with `exposed(..)` gets its own
/// proxy type (`Foo2Proxy`) holding only those methods; without it, the type's full
/// proxy. The callable is `Type::function` for a `#[mp::shared]` type; anything else
/// names its `proxytype`.
///
/// Compile errors: a typeid registered twice; an unknown or unproxiable method in
/// `exposed(..)`; a `method_to_typeid` target the manager does not register; a callable
/// whose result is not the registration's referent (the `#[mp::shared]` type, an
/// `Iterator` for `IteratorProxy<T>`, a queue for `QueueProxy<T>`).
///
/// Clippy's `duplicated_attributes` reads two registrations naming the same callable as
/// duplicates; allow it on the struct.
#[proc_macro_derive(Manager, attributes(register))]
pub fn derive_manager(item: TokenStream) -> TokenStream {
    manager::expand(item.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// The second half of `#[derive(mp::Manager)]` for a `#[mp::shared]` type (called
/// through that type's method table). Not public API.
#[doc(hidden)]
#[proc_macro]
pub fn __registration(input: TokenStream) -> TokenStream {
    registration::expand(input.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
