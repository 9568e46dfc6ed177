//! When a macro rejects its input it still emits the item (thiserror's `fallback.rs`),
//! so the user sees the macro's errors and not a cascade of "cannot find function"
//! errors from code that uses the item.

use proc_macro2::TokenStream;

/// The errors, then the original item unchanged.
pub fn with_item(err: syn::Error, item: TokenStream) -> TokenStream {
    let mut out = err.into_compile_error();
    out.extend(item);
    out
}
