//! Procedural macros for `mp` (use them through `mp`: `#[mp::main]`, `#[mp::task]`, …).

use proc_macro::TokenStream;

mod main_attr;
mod task;

/// See `mp::main`.
#[proc_macro_attribute]
pub fn main(attr: TokenStream, item: TokenStream) -> TokenStream {
    let item: proc_macro2::TokenStream = item.into();
    main_attr::expand(attr.into(), item.clone())
        .unwrap_or_else(|e| {
            // keep the original fn so the only error is ours (no "main not found")
            let mut out = e.into_compile_error();
            out.extend(item);
            out
        })
        .into()
}

/// See `mp::task`.
#[proc_macro_attribute]
pub fn task(attr: TokenStream, item: TokenStream) -> TokenStream {
    task::expand(attr.into(), item.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

mod shared;

/// See `mp::Shared`.
#[proc_macro_derive(Shared)]
pub fn derive_shared(item: TokenStream) -> TokenStream {
    shared::expand(item.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// See `mp::shared`.
#[proc_macro_attribute]
pub fn shared(_attr: TokenStream, item: TokenStream) -> TokenStream {
    item
}

/// See `mp::Manager`.
#[proc_macro_derive(Manager, attributes(register))]
pub fn derive_manager(_item: TokenStream) -> TokenStream {
    TokenStream::new()
}
