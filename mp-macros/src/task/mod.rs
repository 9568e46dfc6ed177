//! `#[mp::task]`: register a function (or a `Run` impl) by path so a spawned child can
//! find it. Parse ([`ast`]) → validate ([`valid`], every problem reported at once at its
//! span) → expand ([`expand`]); a rejected item is still emitted (`crate::fallback`).

mod ast;
mod expand;
mod valid;

use crate::internals::Ctxt;
use proc_macro2::TokenStream;
use syn::spanned::Spanned;

pub fn expand(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let cx = Ctxt::new();
    if !attr.is_empty() {
        cx.error_at(attr.span(), "#[mp::task] takes no arguments");
    }
    let input = ast::Input::parse(&cx, item)?;
    valid::check(&cx, &input);
    cx.check()?;
    Ok(match &input {
        ast::Input::Fn(f) => expand::expand_fn(f),
        ast::Input::Run { item, ty } => expand::expand_run_impl(item, ty),
    })
}
