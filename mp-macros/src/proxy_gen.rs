//! Code both manager macros generate: a typed proxy struct with one method per exposed
//! method, and the server-side dispatch of those methods. Both work from [`MethodSig`],
//! built from an impl block by `#[mp::shared]` or from its method table by a
//! manager's registration.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Ident, LitStr, Type};

/// A method as the proxy and the dispatch see it.
#[derive(Clone)]
pub struct MethodSig {
    pub ident: Ident,
    /// Argument types, in order.
    pub args: Vec<Type>,
    /// The result type (`None` = `()`).
    pub ret: Option<Type>,
    /// `method_to_typeid`: the result becomes a new object of this typeid.
    pub new_typeid: Option<LitStr>,
    /// Exposed by default (public, not starting with `_`).
    pub default: bool,
    /// Why it cannot be proxied, if it cannot.
    pub bad: Option<String>,
}

impl MethodSig {
    fn arg_names(&self) -> Vec<Ident> {
        (0..self.args.len())
            .map(|i| format_ident!("__mp_a{}", i))
            .collect()
    }

    fn ret_ty(&self) -> TokenStream {
        match &self.ret {
            Some(t) => quote!(#t),
            None => quote!(()),
        }
    }
}

/// `pub struct #name { base }` with its serde, `Debug`, `Display` and `Proxy` impls.
pub fn proxy_struct(name: &Ident, doc: &str, exposed: &[&MethodSig]) -> TokenStream {
    let py = name.to_string();
    let names: Vec<String> = exposed.iter().map(|m| m.ident.to_string()).collect();
    quote! {
        #[doc = #doc]
        #[derive(Clone)]
        pub struct #name {
            base: ::mp::__private::BaseProxy,
        }

        impl ::mp::__private::serde::Serialize for #name {
            fn serialize<S: ::mp::__private::serde::Serializer>(
                &self,
                s: S,
            ) -> ::core::result::Result<S::Ok, S::Error> {
                ::mp::__private::serde::Serialize::serialize(&self.base, s)
            }
        }

        impl<'de> ::mp::__private::serde::Deserialize<'de> for #name {
            fn deserialize<D: ::mp::__private::serde::Deserializer<'de>>(
                d: D,
            ) -> ::core::result::Result<Self, D::Error> {
                ::core::result::Result::Ok(#name {
                    base: ::mp::__private::BaseProxy::deserialize_as(
                        d,
                        ::mp::__private::Encoding::Typed,
                    )?,
                })
            }
        }

        impl ::core::fmt::Debug for #name {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                ::mp::__private::fmt_proxy_debug(&self.base, #py, f)
            }
        }

        impl ::core::fmt::Display for #name {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                ::mp::__private::fmt_proxy_display(&self.base, f)
            }
        }

        impl ::mp::__private::Proxy for #name {
            const ENCODING: ::mp::__private::Encoding = ::mp::__private::Encoding::Typed;
            fn from_base(base: ::mp::__private::BaseProxy) -> Self {
                #name { base }
            }
            fn base(&self) -> &::mp::__private::BaseProxy {
                &self.base
            }
        }

        impl #name {
            /// The methods this proxy may call (Python's `_exposed_`).
            pub const EXPOSED: &'static [&'static str] = &[#(#names),*];

            /// Python's `proxy._exposed_`.
            pub fn exposed(&self) -> &'static [&'static str] {
                Self::EXPOSED
            }

            /// Python's `proxy._callmethod(name, args)`: `args` is the argument tuple; a
            /// method that is not exposed is `Error::NotExposed`.
            pub fn call_method<R: ::mp::__private::serde::de::DeserializeOwned + 'static>(
                &self,
                name: &str,
                args: impl ::mp::__private::serde::Serialize,
            ) -> ::mp::Result<R> {
                self.base.call_method(name, args)
            }

            /// Python's `proxy._getvalue()`: a copy of the referent.
            pub fn get_value<R: ::mp::__private::serde::de::DeserializeOwned + 'static>(
                &self,
            ) -> ::mp::Result<R> {
                self.base.get_value()
            }
        }
    }
}

/// The proxy's methods, one per exposed method, each returning `mp::Result`.
pub fn proxy_methods(name: &Ident, exposed: &[&MethodSig]) -> TokenStream {
    let methods = exposed.iter().map(|m| {
        let ident = &m.ident;
        let method = ident.to_string();
        let names = m.arg_names();
        let tys = &m.args;
        let doc = format!("Calls `{method}` on the referent.");
        match &m.new_typeid {
            Some(t) => {
                let ret = m.ret_ty();
                quote! {
                    #[doc = #doc]
                    pub fn #ident(&self, #(#names: #tys),*) -> ::mp::Result<
                        <#ret as ::mp::__private::Shareable>::Proxy
                    > {
                        let _ = #t;
                        ::mp::__private::call_new(&self.base, #method, (#(#names,)*))
                    }
                }
            }
            None => {
                let ret = m.ret_ty();
                quote! {
                    #[doc = #doc]
                    pub fn #ident(&self, #(#names: #tys),*) -> ::mp::Result<#ret> {
                        // through the codec probe: a type that is not serializable is
                        // reported once, by the checks at its own span
                        #[allow(unused_imports)]
                        use ::mp::__private::{NoCodec as _, ViaCodec as _};
                        let __mp_bytes = (&::mp::__private::Probe::<(#(#tys,)*)>::new())
                            .encode_result(&(#(#names,)*))?;
                        let __mp_out = self.base.call_raw(#method, __mp_bytes)?;
                        (&::mp::__private::Probe::<#ret>::new())
                            .decode_args(&__mp_out, ::std::vec::Vec::new())
                    }
                }
            }
        }
    });
    quote! {
        impl #name {
            #(#methods)*
        }
    }
}

/// The compile-time checks of the proxied methods: every argument and result crosses a
/// process boundary (spanned at the type, so the error points at it).
pub fn cross_process_checks(exposed: &[&MethodSig]) -> TokenStream {
    let checks = exposed.iter().flat_map(|m| {
        let args = m
            .args
            .iter()
            .map(|t| quote_spanned!(t.span()=> ::mp::__private::assert_proxied::<#t>();));
        let ret = match (&m.ret, &m.new_typeid) {
            (Some(t), None) => {
                Some(quote_spanned!(t.span()=> ::mp::__private::assert_proxied::<#t>();))
            }
            _ => None,
        };
        args.chain(ret).collect::<Vec<_>>()
    });
    quote! {
        const _: () = {
            #[allow(dead_code)]
            fn __mp_proxy_checks() {
                #(#checks)*
            }
        };
    }
}

/// `match method { "f" => .., _ => NotExposed }` over `this: &mut #self_ty`.
pub fn dispatch_body(exposed: &[&MethodSig]) -> TokenStream {
    let arms = exposed.iter().map(|m| {
        let ret = m.ret_ty();
        let ident = &m.ident;
        let method = ident.to_string();
        let names = m.arg_names();
        let tys = &m.args;
        let call = quote! {
            #[allow(unused_imports)]
            use ::mp::__private::{NoCodec as _, ViaCodec as _};
            let (#(#names,)*): (#(#tys,)*) = (&::mp::__private::Probe::<(#(#tys,)*)>::new())
                .decode_args(__mp_args, ::std::vec::Vec::new())
                .map_err(::mp::__private::Fail::from)?;
            let __mp_r = __mp_this.#ident(#(#names),*);
        };
        match &m.new_typeid {
            Some(t) => quote! {
                #method => {
                    #call
                    ::core::result::Result::Ok(::mp::__private::Out::New {
                        typeid: ::std::string::String::from(#t),
                        referent: ::mp::__private::shared_referent(__mp_r),
                    })
                }
            },
            None => quote! {
                #method => {
                    #call
                    (&::mp::__private::Probe::<#ret>::new())
                        .encode_result(&__mp_r)
                        .map(::mp::__private::Out::Data)
                        .map_err(::mp::__private::Fail::from)
                }
            },
        }
    });
    quote! {
        match __mp_method {
            #(#arms)*
            other => ::core::result::Result::Err(::mp::__private::Fail::not_exposed(other)),
        }
    }
}
