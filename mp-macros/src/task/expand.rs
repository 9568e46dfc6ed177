//! The expansion of `#[mp::task]`: the item, its registration in the task table and
//! the compile-time checks of its argument and result types.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{FnArg, ItemFn, ItemImpl, ReturnType, Type};

pub fn expand_fn(f: &ItemFn) -> TokenStream {
    let ident = &f.sig.ident;
    let name = ident.to_string();
    let static_name = format_ident!("__MP_TASK_{}", ident);
    let arg_checks = f.sig.inputs.iter().filter_map(|a| match a {
        FnArg::Typed(t) => {
            let ty = &t.ty;
            Some(quote_spanned!(ty.span()=> ::mp::__private::assert_arg::<#ty>();))
        }
        FnArg::Receiver(_) => None,
    });
    let types: Vec<&Type> = f
        .sig
        .inputs
        .iter()
        .filter_map(|a| match a {
            FnArg::Typed(t) => Some(&*t.ty),
            FnArg::Receiver(_) => None,
        })
        .collect();
    let names: Vec<_> = (0..types.len())
        .map(|i| format_ident!("__mp_arg{}", i))
        .collect();
    let ret = match &f.sig.output {
        ReturnType::Type(_, ty) => quote!(#ty),
        ReturnType::Default => quote!(()),
    };
    let ret_check = match &f.sig.output {
        ReturnType::Type(_, ty) => {
            quote_spanned!(ty.span()=> ::mp::__private::assert_ret::<#ty>();)
        }
        ReturnType::Default => quote!(),
    };
    quote! {
        #f

        #[::mp::__private::linkme::distributed_slice(::mp::__private::TASKS)]
        #[linkme(crate = ::mp::__private::linkme)]
        #[doc(hidden)]
        #[allow(non_upper_case_globals)]
        static #static_name: ::mp::__private::TaskEntry = ::mp::__private::TaskEntry {
            name: ::core::concat!(::core::module_path!(), "::", #name),
            type_id: || ::mp::__private::type_id_of_val(&#ident),
            call: |args, fds| {
                #[allow(unused_imports)]
                use ::mp::__private::{NoCodec as _, ViaCodec as _};
                let (#(#names,)*): (#(#types,)*) =
                    (&::mp::__private::Probe::<(#(#types,)*)>::new()).decode_args(args, fds)?;
                let out: #ret = #ident(#(#names),*);
                (&::mp::__private::Probe::<#ret>::new()).encode_result(&out)
            },
            call_chunk: |data, fds| {
                #[allow(unused_imports)]
                use ::mp::__private::{NoCodec as _, ViaCodec as _};
                let items: ::std::vec::Vec<(#(#types,)*)> =
                    (&::mp::__private::Probe::<(#(#types,)*)>::new()).decode_seq(data, fds)?;
                let out = ::mp::__private::run_items(
                    items,
                    |(#(#names,)*): (#(#types,)*)| -> #ret { #ident(#(#names),*) },
                );
                (&::mp::__private::Probe::<#ret>::new()).encode_items(&out)
            },
        };

        const _: () = {
            #[allow(dead_code)]
            fn __mp_task_checks() {
                #(#arg_checks)*
                #ret_check
            }
        };
    }
}

pub fn expand_run_impl(i: &ItemImpl, tp: &syn::TypePath) -> TokenStream {
    let ty = &i.self_ty;
    let Some(last) = tp.path.segments.last().map(|s| &s.ident) else {
        return quote!(#i);
    };
    let name = last.to_string();
    let static_name = format_ident!("__MP_RUN_{}", last);
    let check = quote_spanned!(ty.span()=> ::mp::__private::assert_arg::<#ty>(););
    quote! {
        #i

        #[::mp::__private::linkme::distributed_slice(::mp::__private::TASKS)]
        #[linkme(crate = ::mp::__private::linkme)]
        #[doc(hidden)]
        #[allow(non_upper_case_globals)]
        static #static_name: ::mp::__private::TaskEntry = ::mp::__private::TaskEntry {
            name: ::core::concat!(::core::module_path!(), "::", #name),
            type_id: || ::core::any::TypeId::of::<#ty>(),
            call: |args, fds| ::mp::__private::run_entry::<#ty>(args, fds),
            call_chunk: ::mp::__private::not_a_pool_task,
        };

        const _: () = {
            #[allow(dead_code)]
            fn __mp_task_checks() { #check }
        };
    }
}
