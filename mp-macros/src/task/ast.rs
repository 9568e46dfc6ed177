//! The IR of `#[mp::task]`: a free function, or an `impl mp::Run for T` block and its
//! type.

use crate::internals::Ctxt;
use proc_macro2::TokenStream;
use syn::spanned::Spanned;
use syn::{Item, ItemFn, ItemImpl, Type, TypePath};

pub enum Input {
    Fn(ItemFn),
    Run { item: ItemImpl, ty: TypePath },
}

impl Input {
    pub fn parse(cx: &Ctxt, item: TokenStream) -> syn::Result<Input> {
        match syn::parse2::<Item>(item)? {
            Item::Fn(f) => Ok(Input::Fn(f)),
            Item::Impl(i) => {
                let run = i
                    .trait_
                    .as_ref()
                    .is_some_and(|(p, _)| p.segments.last().is_some_and(|s| s.ident == "Run"));
                if !run {
                    let span = match &i.trait_ {
                        Some((p, _)) => p.span(),
                        None => i.self_ty.span(),
                    };
                    return Err(syn::Error::new(
                        span,
                        "#[mp::task] on an impl block needs `impl mp::Run for T`",
                    ));
                }
                if !i.generics.params.is_empty() {
                    cx.error_spanned_by(
                        &i.generics.params,
                        "#[mp::task] Run types cannot be generic",
                    );
                }
                match &*i.self_ty {
                    Type::Path(tp) if !tp.path.segments.is_empty() => {
                        let ty = tp.clone();
                        Ok(Input::Run { item: i, ty })
                    }
                    other => Err(syn::Error::new(
                        other.span(),
                        "#[mp::task] Run types must be named types",
                    )),
                }
            }
            other => Err(syn::Error::new(
                other.span(),
                "#[mp::task] goes on a free function or on an `impl mp::Run for T` block",
            )),
        }
    }
}
