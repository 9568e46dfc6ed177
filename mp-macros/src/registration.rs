//! The second half of the callback-macro pattern: `#[derive(mp::Manager)]` calls a
//! `#[mp::shared]` type's method table (`__mp_shared_<Type>!{ .. }`), which expands
//! to this macro with the registration and the table. Here the registration's
//! `exposed(..)` and the table's `method_to_typeid` targets are checked against what
//! exists, and the registration's own proxy (only its exposed methods), its
//! server-side dispatch, the per-typeid method and the registry entry are generated.

use crate::internals::{camel_case, snake_case, Ctxt};
use crate::proxy_gen::{self, MethodSig};
use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{Ident, LitBool, LitStr, Path, Token, TraitItem, Type};

struct Input {
    manager: Ident,
    ext: Ident,
    typeid: LitStr,
    callable: Path,
    referent: Path,
    exposed: Option<Vec<Ident>>,
    create_method: bool,
    all_typeids: Vec<LitStr>,
    full_proxy: Ident,
    methods: Vec<MethodSig>,
    ctors: Vec<(Ident, Vec<Type>)>,
}

fn bracketed<T: Parse>(input: ParseStream) -> syn::Result<Vec<T>> {
    let content;
    syn::bracketed!(content in input);
    let p = content.parse_terminated(T::parse, Token![,])?;
    Ok(p.into_iter().collect())
}

fn attr_str(a: &syn::Attribute) -> Option<LitStr> {
    match &a.meta {
        syn::Meta::NameValue(nv) => match &nv.value {
            syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(s),
                ..
            }) => Some(s.clone()),
            _ => None,
        },
        _ => None,
    }
}

impl Parse for Input {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let mut manager = None;
        let mut ext = None;
        let mut typeid = None;
        let mut callable = None;
        let mut referent = None;
        let mut exposed = None;
        let mut create_method = true;
        let mut all_typeids = Vec::new();
        let mut full_proxy = None;
        let mut methods = Vec::new();
        let mut ctors = Vec::new();
        while !input.is_empty() {
            let key: Ident = input.parse()?;
            input.parse::<Token![=]>()?;
            match key.to_string().as_str() {
                "manager" => manager = Some(input.parse()?),
                "ext" => ext = Some(input.parse()?),
                "typeid" => typeid = Some(input.parse()?),
                "callable" => callable = Some(input.parse()?),
                "referent" => referent = Some(input.parse()?),
                "exposed" => {
                    if input.peek(Ident) {
                        input.parse::<Ident>()?;
                    } else {
                        exposed = Some(bracketed::<Ident>(input)?);
                    }
                }
                "create_method" => create_method = input.parse::<LitBool>()?.value,
                "all_typeids" => all_typeids = bracketed::<LitStr>(input)?,
                "full_proxy" => full_proxy = Some(input.parse()?),
                "table" => {
                    let content;
                    syn::braced!(content in input);
                    let t: syn::ItemTrait = content.parse()?;
                    for item in t.items {
                        let TraitItem::Fn(f) = item else { continue };
                        let args: Vec<Type> = f
                            .sig
                            .inputs
                            .iter()
                            .filter_map(|a| match a {
                                syn::FnArg::Typed(t) => Some((*t.ty).clone()),
                                syn::FnArg::Receiver(_) => None,
                            })
                            .collect();
                        let has = |n: &str| f.attrs.iter().any(|a| a.path().is_ident(n));
                        if has("mp_ctor") {
                            ctors.push((f.sig.ident.clone(), args));
                            continue;
                        }
                        let find = |n: &str| {
                            f.attrs
                                .iter()
                                .find(|a| a.path().is_ident(n))
                                .and_then(attr_str)
                        };
                        methods.push(MethodSig {
                            ident: f.sig.ident.clone(),
                            args,
                            ret: match &f.sig.output {
                                syn::ReturnType::Default => None,
                                syn::ReturnType::Type(_, t) => Some((**t).clone()),
                            },
                            new_typeid: find("mp_new"),
                            default: has("mp_default"),
                            bad: find("mp_bad").map(|s| s.value()),
                        });
                    }
                }
                other => return Err(syn::Error::new(key.span(), format!("unexpected `{other}`"))),
            }
            if input.is_empty() {
                break;
            }
            input.parse::<Token![,]>()?;
        }
        let missing =
            |what: &str| syn::Error::new(proc_macro2::Span::call_site(), format!("missing {what}"));
        Ok(Input {
            manager: manager.ok_or_else(|| missing("manager"))?,
            ext: ext.ok_or_else(|| missing("ext"))?,
            typeid: typeid.ok_or_else(|| missing("typeid"))?,
            callable: callable.ok_or_else(|| missing("callable"))?,
            referent: referent.ok_or_else(|| missing("referent"))?,
            exposed,
            create_method,
            all_typeids,
            full_proxy: full_proxy.ok_or_else(|| missing("full_proxy"))?,
            methods,
            ctors,
        })
    }
}

pub fn expand(tokens: TokenStream) -> syn::Result<TokenStream> {
    let input: Input = syn::parse2(tokens)?;
    let cx = Ctxt::new();
    let typeid = &input.typeid;
    let tv = typeid.value();
    let ty_name = input
        .referent
        .segments
        .last()
        .map(|s| s.ident.to_string())
        .unwrap_or_default();
    // the registration's exposed methods exist and can be proxied
    let exposed: Vec<&MethodSig> = match &input.exposed {
        Some(list) => list
            .iter()
            .filter_map(|e| match input.methods.iter().find(|m| m.ident == *e) {
                None => {
                    cx.error_spanned_by(
                        e,
                        format!("typeid \"{tv}\" exposes `{e}`, which is not a method of `{ty_name}`'s #[mp::shared] impl block"),
                    );
                    None
                }
                Some(m) => {
                    if let Some(bad) = &m.bad {
                        cx.error_spanned_by(e, format!("typeid \"{tv}\" exposes `{e}`: {bad}"));
                        None
                    } else {
                        Some(m)
                    }
                }
            })
            .collect(),
        None => input.methods.iter().filter(|m| m.default && m.bad.is_none()).collect(),
    };
    // every method_to_typeid target is registered by this manager
    for m in &input.methods {
        if let Some(t) = &m.new_typeid {
            if !input.all_typeids.iter().any(|r| r.value() == t.value()) {
                cx.error_spanned_by(
                    t,
                    format!(
                        "method_to_typeid maps `{}` to typeid \"{}\", which `{}` does not register",
                        m.ident,
                        t.value(),
                        input.manager
                    ),
                );
            }
        }
    }
    let ext = &input.ext;
    let register = format_ident!("__mp_register_{}", snake_case(&tv));
    if let Err(e) = cx.check() {
        // the registry still finds its entry, so the only errors are these
        let mut out = e.into_compile_error();
        out.extend(quote! {
            impl #ext {
                #[doc(hidden)]
                pub fn #register(_: &mut ::mp::managers::Registry) {}
            }
        });
        return Ok(out);
    }

    let referent = &input.referent;
    let callable = &input.callable;
    let method = format_ident!("{}", snake_case(&tv));

    // the full proxy lives beside the type: the referent's path with `<Type>Proxy`
    let mut full_proxy_path = input.referent.clone();
    if let Some(last) = full_proxy_path.segments.last_mut() {
        last.ident = input.full_proxy.clone();
        last.arguments = syn::PathArguments::None;
    }
    let mut out = TokenStream::new();
    let proxy: Path = if input.exposed.is_some() {
        let mut name = format_ident!("{}Proxy", camel_case(&tv));
        if name == input.full_proxy {
            name = format_ident!("{}{}Proxy", input.manager, camel_case(&tv));
        }
        let names: Vec<String> = exposed.iter().map(|m| m.ident.to_string()).collect();
        let doc = format!(
            "The proxy of typeid \"{tv}\" of [`{}`] (a `{ty_name}`): only the methods it exposes ({}).",
            input.manager,
            names.join(", ")
        );
        out.extend(proxy_gen::proxy_struct(&name, &doc, &exposed));
        out.extend(proxy_gen::proxy_methods(&name, &exposed));
        out.extend(proxy_gen::cross_process_checks(&exposed));
        let dispatch = proxy_gen::dispatch_body(&exposed);
        out.extend(quote! {
            impl #name {
                #[doc(hidden)]
                fn __mp_dispatch(
                    __mp_this: &mut #referent,
                    __mp_method: &str,
                    __mp_args: &[u8],
                ) -> ::core::result::Result<::mp::__private::Out, ::mp::__private::Fail> {
                    #dispatch
                }
            }
            impl ::mp::__private::MakeReferent<#referent> for #name {
                fn make_referent(r: #referent) -> ::std::boxed::Box<dyn ::mp::__private::Referent> {
                    ::mp::__private::reg_referent(r, #name::__mp_dispatch, #name::EXPOSED)
                }
            }
        });
        name.into()
    } else {
        full_proxy_path
    };

    // the callable's arguments, when it is a constructor of the impl block
    let last = callable.segments.last().map(|s| s.ident.clone());
    let args: Vec<Type> = input
        .ctors
        .iter()
        .find(|(c, _)| Some(c) == last.as_ref())
        .map(|(_, a)| a.clone())
        .unwrap_or_default();
    let names: Vec<Ident> = (0..args.len())
        .map(|i| format_ident!("__mp_a{}", i))
        .collect();
    let make = quote_spanned! {callable.span()=>
        ::mp::__private::make_referent::<#proxy, _>(#callable(#(#names),*))
    };
    let exposed_rt = match &input.exposed {
        Some(list) => {
            let n = list.iter().map(|i| i.to_string());
            quote!(::core::option::Option::Some(
                ::std::vec![#(::std::string::String::from(#n)),*]
            ))
        }
        None => quote!(::core::option::Option::None),
    };
    let create_method = input.create_method.then(|| {
        let doc = format!("Creates a `{ty_name}` as typeid \"{tv}\" (CPython's `manager.{tv}(..)`) and returns its proxy.");
        quote! {
            #[doc = #doc]
            pub fn #method(&self, #(#names: #args),*) -> ::mp::Result<#proxy> {
                self.handle.create_with::<#proxy>(#typeid, (#(#names,)*))
            }
        }
    });
    out.extend(quote! {
        #[allow(clippy::all)]
        impl #ext {
            #create_method
            #[doc(hidden)]
            pub fn #register(r: &mut ::mp::managers::Registry) {
                r.register(
                    #typeid,
                    ::core::option::Option::Some(::std::sync::Arc::new(|__mp_bytes: &[u8]| {
                        let (#(#names,)*): (#(#args,)*) = ::mp::__private::decode_args(__mp_bytes)?;
                        ::core::result::Result::Ok(#make)
                    })),
                    #exposed_rt,
                );
            }
        }
    });
    let _ = Spanned::span(&input.manager);
    Ok(out)
}
