//! `#[derive(mp::Manager)]` with `#[register(..)]` attributes: parse → validate →
//! expand. Declares a custom manager (CPython's `BaseManager` subclass and its
//! `register` calls): the registry its server uses, a handle type whose methods are the
//! typeids in snake_case, and for a `#[mp::shared]` type a call of that type's method
//! table (which expands through [`crate::registration`]).

mod ast;
mod expand;
mod valid;

use crate::internals::Ctxt;
use proc_macro2::TokenStream;

pub fn expand(item: TokenStream) -> syn::Result<TokenStream> {
    let cx = Ctxt::new();
    let input: syn::DeriveInput = syn::parse2(item)?;
    let ast = ast::Input::from_derive(&cx, &input);
    valid::check(&cx, &ast);
    cx.check()?;
    Ok(expand::expand(&ast))
}
