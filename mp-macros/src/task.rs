//! `#[mp::task]`: register a function (or a `Run` impl) by path so a spawned child can
//! find it. Parse → validate → expand; every error carries the offending token's span.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::{Error, FnArg, Item, ItemFn, ItemImpl, Result, ReturnType, Type};

pub fn expand(attr: TokenStream, item: TokenStream) -> Result<TokenStream> {
    if !attr.is_empty() {
        return Err(Error::new(attr.span(), "#[mp::task] takes no arguments"));
    }
    match syn::parse2::<Item>(item)? {
        Item::Fn(f) => {
            validate_fn(&f)?;
            Ok(expand_fn(&f))
        }
        Item::Impl(i) => expand_run_impl(&i),
        other => Err(Error::new(
            other.span(),
            "#[mp::task] goes on a free function or on an `impl mp::Run for T` block",
        )),
    }
}

/// Finds a lifetime (or reference) anywhere inside a type.
struct Borrows(Option<Span>);

impl<'ast> Visit<'ast> for Borrows {
    fn visit_type_reference(&mut self, r: &'ast syn::TypeReference) {
        self.0.get_or_insert(r.span());
    }
    fn visit_lifetime(&mut self, l: &'ast syn::Lifetime) {
        if l.ident != "static" {
            self.0.get_or_insert(l.span());
        }
    }
    fn visit_type_ptr(&mut self, p: &'ast syn::TypePtr) {
        self.0.get_or_insert(p.span());
    }
}

fn validate_fn(f: &ItemFn) -> Result<()> {
    let sig = &f.sig;
    if let Some(a) = &sig.asyncness {
        return Err(Error::new(
            a.span(),
            "#[mp::task] cannot be an `async fn`: a task runs to completion in its own process; \
             start a runtime inside a plain fn instead",
        ));
    }
    if let Some(lt) = sig.generics.lifetimes().next() {
        return Err(Error::new(
            lt.span(),
            "#[mp::task] functions cannot have lifetime parameters: arguments crossing into \
             another process must be owned (`'static`)",
        ));
    }
    if !sig.generics.params.is_empty() {
        return Err(Error::new(
            sig.generics.params.span(),
            "#[mp::task] functions cannot be generic: a spawned child resolves a task by its \
             path, which must name one concrete function",
        ));
    }
    if let Some(v) = &sig.variadic {
        return Err(Error::new(
            v.span(),
            "#[mp::task] functions cannot be variadic",
        ));
    }
    for arg in &sig.inputs {
        match arg {
            FnArg::Receiver(r) => {
                return Err(Error::new(
                    r.span(),
                    "#[mp::task] functions cannot take `self`: tasks are free functions \
                     (for a Process subclass, put #[mp::task] on an `impl mp::Run for T` block)",
                ))
            }
            FnArg::Typed(t) => check_owned(&t.ty, "argument")?,
        }
    }
    if let ReturnType::Type(_, ty) = &sig.output {
        check_owned(ty, "result")?;
    }
    Ok(())
}

fn check_owned(ty: &Type, what: &str) -> Result<()> {
    if let Type::ImplTrait(i) = ty {
        return Err(Error::new(
            i.span(),
            format!("#[mp::task] {what} types must be concrete, not `impl Trait`"),
        ));
    }
    let mut b = Borrows(None);
    b.visit_type(ty);
    match b.0 {
        Some(span) => Err(Error::new(
            span,
            format!(
                "#[mp::task] {what} types must be owned (`'static`): a value crossing into \
                 another process cannot borrow from this one (use e.g. `String` for `&str`, \
                 `Vec<T>` for `&[T]`)"
            ),
        )),
        None => Ok(()),
    }
}

fn expand_fn(f: &ItemFn) -> TokenStream {
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

fn expand_run_impl(i: &ItemImpl) -> Result<TokenStream> {
    let Some((_, path, _)) = &i.trait_ else {
        return Err(Error::new(
            i.self_ty.span(),
            "#[mp::task] on an impl block needs `impl mp::Run for T`",
        ));
    };
    if path.segments.last().is_none_or(|s| s.ident != "Run") {
        return Err(Error::new(
            path.span(),
            "#[mp::task] on an impl block needs `impl mp::Run for T`",
        ));
    }
    if !i.generics.params.is_empty() {
        return Err(Error::new(
            i.generics.params.span(),
            "#[mp::task] Run types cannot be generic",
        ));
    }
    let ty = &i.self_ty;
    let Type::Path(tp) = &**ty else {
        return Err(Error::new(
            ty.span(),
            "#[mp::task] Run types must be named types",
        ));
    };
    let last = &tp.path.segments.last().expect("non-empty path").ident;
    let name = last.to_string();
    let static_name = format_ident!("__MP_RUN_{}", last);
    let check = quote_spanned!(ty.span()=> ::mp::__private::assert_arg::<#ty>(););
    Ok(quote! {
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
    })
}
