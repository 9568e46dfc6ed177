//! `#[mp::shared(exposed(..), method_to_typeid(..))]` on an impl block: parse → validate
//! → expand. Generates the type's full typed proxy (`<Type>Proxy`), its
//! `mp::managers::Shareable` impl (the server-side dispatch) and a hidden method table
//! (`macro_rules! __mp_shared_<Type>`) that a manager's registration reads to build a
//! proxy with only the methods it exposes (the callback-macro pattern).

mod ast;
mod expand;
mod valid;

use crate::internals::attr::SharedArgs;
use crate::internals::Ctxt;
use proc_macro2::TokenStream;

pub fn expand(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let cx = Ctxt::new();
    let args = SharedArgs::parse(&cx, attr);
    let item: syn::ItemImpl = syn::parse2(item)?;
    let input = ast::Input::from_impl(&cx, &item, args);
    if let Some(input) = &input {
        valid::check(&cx, input);
    }
    cx.check()?;
    match input {
        Some(input) => Ok(expand::expand(&input)),
        None => Err(syn::Error::new_spanned(
            &item.self_ty,
            "#[mp::shared] could not read this impl block",
        )),
    }
}
