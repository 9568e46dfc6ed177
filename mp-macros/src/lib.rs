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

/// See `mp::shared`.
#[proc_macro_attribute]
pub fn shared(attr: TokenStream, item: TokenStream) -> TokenStream {
    let item: proc_macro2::TokenStream = item.into();
    shared_impl::expand(attr.into(), item.clone())
        .unwrap_or_else(|e| fallback::with_item(e, item))
        .into()
}

/// See `mp::Manager`.
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
