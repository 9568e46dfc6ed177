//! The expansion of `#[derive(mp::Manager)]`.

use super::ast::{Input, Kind};
use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

pub fn expand(input: &Input) -> TokenStream {
    let ident = input.ident;
    let vis = input.vis;
    let ext = format_ident!("{}Handle", ident);
    let slot = format_ident!("__MP_MANAGER_{}", ident);
    let all_typeids: Vec<_> = input.regs.iter().map(|r| &r.reg.typeid).collect();
    let registers = input
        .regs
        .iter()
        .map(|r| format_ident!("__mp_register_{}", r.method));
    let per_reg = input.regs.iter().map(|r| {
        let typeid = &r.reg.typeid;
        let method = format_ident!("{}", r.method);
        let register = format_ident!("__mp_register_{}", r.method);
        let exposed = match &r.reg.exposed {
            Some(list) => {
                let names = list.iter().map(|i| i.to_string());
                quote!(::core::option::Option::Some(
                    ::std::vec![#(::std::string::String::from(#names)),*]
                ))
            }
            None => quote!(::core::option::Option::None),
        };
        match &r.kind {
            Kind::Proxytype => {
                let proxy = r.reg.proxytype.as_ref().expect("proxytype kind");
                let create = match &r.reg.callable {
                    Some(c) => quote_spanned! {c.span()=>
                        ::core::option::Option::Some(::mp::__private::creator::<#proxy, _>(|| #c()))
                    },
                    None => quote!(::core::option::Option::None),
                };
                let create_method = r.reg.create_method.then(|| {
                    let doc = format!(
                        "Creates an object of typeid \"{}\" and returns its proxy.",
                        typeid.value()
                    );
                    quote! {
                        #[doc = #doc]
                        pub fn #method(&self) -> ::mp::Result<#proxy> {
                            self.handle.create_with::<#proxy>(#typeid, ())
                        }
                    }
                });
                quote! {
                            #[allow(clippy::all)]
                impl #ext {
                                #create_method
                                #[doc(hidden)]
                                pub fn #register(r: &mut ::mp::managers::Registry) {
                                    r.register(#typeid, #create, #exposed);
                                }
                            }
                        }
            }
            Kind::Shared { ty, table } => {
                let callable = r.reg.callable.as_ref().expect("shared kind has a callable");
                let exposed_list = match &r.reg.exposed {
                    Some(list) => quote!([#(#list),*]),
                    None => quote!(default),
                };
                let create_method = r.reg.create_method;
                quote! {
                    const _: () = {
                        fn __mp_is_shareable<T: ::mp::__private::Shareable>() {}
                        #[allow(dead_code)]
                        fn __mp_check() { __mp_is_shareable::<#ty>(); }
                    };
                    #table! {
                        manager = #ident,
                        ext = #ext,
                        typeid = #typeid,
                        callable = #callable,
                        referent = #ty,
                        exposed = #exposed_list,
                        create_method = #create_method,
                        all_typeids = [#(#all_typeids),*],
                    }
                }
            }
            Kind::Unknown => quote!(),
        }
    });
    let doc = format!(
        "The handle of a started [`{ident}`] dereferences to this: one method per registered \
         typeid, returning that registration's proxy."
    );
    quote! {
        #[doc = #doc]
        #vis struct #ext {
            handle: ::mp::__private::ManagerHandle,
        }

        impl ::core::convert::From<::mp::__private::ManagerHandle> for #ext {
            fn from(handle: ::mp::__private::ManagerHandle) -> Self {
                #ext { handle }
            }
        }

        impl ::core::fmt::Debug for #ext {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                ::core::fmt::Debug::fmt(&self.handle, f)
            }
        }

        impl ::mp::managers::ManagerType for #ident {
            type Ext = #ext;
            fn kind() -> &'static str {
                ::core::concat!(::core::module_path!(), "::", ::core::stringify!(#ident))
            }
            fn registry() -> ::mp::managers::Registry {
                let mut r = ::mp::managers::Registry::new();
                #( #ext::#registers(&mut r); )*
                r
            }
        }

        impl #ident {
            /// Starts this manager's server process (a fresh Unix socket, the process's
            /// authkey) and returns the started handle.
            pub fn start() -> ::mp::Result<::mp::managers::BaseManager<#ident>> {
                let m = ::mp::managers::BaseManager::<#ident>::new(::core::option::Option::None, ::core::option::Option::None);
                m.start()?;
                ::core::result::Result::Ok(m)
            }

            /// Python's `MyManager(address, authkey)`: an unstarted handle (then
            /// `start()`, `connect()` or `get_server()`).
            pub fn new(
                address: impl ::mp::managers::AddressArg,
                authkey: impl ::mp::managers::AuthkeyArg,
            ) -> ::mp::managers::BaseManager<#ident> {
                ::mp::managers::BaseManager::<#ident>::new(address, authkey)
            }
        }

        #[::mp::__private::linkme::distributed_slice(::mp::__private::MANAGERS)]
        #[linkme(crate = ::mp::__private::linkme)]
        #[doc(hidden)]
        #[allow(non_upper_case_globals)]
        static #slot: ::mp::__private::ManagerEntry = ::mp::__private::ManagerEntry {
            name: <#ident as ::mp::managers::ManagerType>::kind,
            registry: <#ident as ::mp::managers::ManagerType>::registry,
        };

        #(#per_reg)*
    }
}
