//! `#[mp::main]`: run the child bootstrap first, the exit handlers last.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Error, ItemFn, Result};

// parse → validate → expand, in one small file: the attribute has no options.
pub fn expand(attr: TokenStream, item: TokenStream) -> Result<TokenStream> {
    if !attr.is_empty() {
        return Err(Error::new(attr.span(), "#[mp::main] takes no arguments"));
    }
    let f: ItemFn = syn::parse2(item)?;
    validate(&f)?;
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
        ..
    } = f;
    let ident = &sig.ident;
    let output = &sig.output;
    let asyncness = &sig.asyncness;
    let inner = quote_spanned!(sig.span()=> __mp_main_body);
    let (outer_attrs, inner_attrs): (Vec<_>, Vec<_>) = attrs
        .into_iter()
        .partition(|a| a.path().is_ident("doc") || a.path().is_ident("allow"));
    Ok(quote! {
        #[::mp::__private::linkme::distributed_slice(::mp::__private::MAIN_BOOTSTRAP)]
        #[linkme(crate = ::mp::__private::linkme)]
        #[doc(hidden)]
        static __MP_MAIN_BOOTSTRAP: u8 = 1;

        #(#outer_attrs)*
        #vis fn #ident() #output {
            ::mp::__private::bootstrap_main();
            #(#inner_attrs)*
            #asyncness fn #inner() #output #block
            ::mp::__private::run_main(#inner)
        }
    })
}

fn validate(f: &ItemFn) -> Result<()> {
    if let Some(arg) = f.sig.inputs.first() {
        return Err(Error::new(
            arg.span(),
            "#[mp::main] functions take no arguments",
        ));
    }
    if !f.sig.generics.params.is_empty() {
        return Err(Error::new(
            f.sig.generics.span(),
            "#[mp::main] functions cannot be generic",
        ));
    }
    if let Some(a) = &f.sig.asyncness {
        // an async main needs a runtime attribute below ours (e.g. #[tokio::main])
        if !f
            .attrs
            .iter()
            .any(|a| !a.path().is_ident("doc") && !a.path().is_ident("allow"))
        {
            return Err(Error::new(
                a.span(),
                "an async #[mp::main] needs a runtime attribute below it, e.g. #[tokio::main]",
            ));
        }
    }
    Ok(())
}
