//! The IR of `#[mp::shared]`: the impl block's methods with the original syn nodes
//! kept for spans.

use crate::internals::attr::SharedArgs;
use crate::internals::{check, Ctxt};
use crate::proxy_gen::MethodSig;
use proc_macro2::{TokenStream, TokenTree};
use quote::ToTokens;
use syn::{FnArg, Ident, ImplItem, ItemImpl, ReturnType, Type, Visibility};

pub struct Method {
    pub sig: MethodSig,
    /// The method's name in the impl block (for spans).
    pub ident: Ident,
}

/// An associated function returning the type (a constructor a registration may name as
/// its callable).
pub struct Ctor {
    pub ident: Ident,
    pub args: Vec<Type>,
}

pub struct Input<'a> {
    pub item: &'a ItemImpl,
    pub args: SharedArgs,
    /// The type's name (last path segment).
    pub self_ident: Ident,
    pub methods: Vec<Method>,
    pub ctors: Vec<Ctor>,
}

/// `Self` replaced by the type's name, so a type means the same outside the impl block.
pub fn replace_self(tokens: TokenStream, with: &Ident) -> TokenStream {
    tokens
        .into_iter()
        .map(|t| match t {
            TokenTree::Ident(i) if i == "Self" => {
                let mut w = with.clone();
                w.set_span(i.span());
                TokenTree::Ident(w)
            }
            TokenTree::Group(g) => {
                let mut ng = proc_macro2::Group::new(g.delimiter(), replace_self(g.stream(), with));
                ng.set_span(g.span());
                TokenTree::Group(ng)
            }
            other => other,
        })
        .collect()
}

fn fix(ty: &Type, with: &Ident) -> Type {
    syn::parse2(replace_self(ty.to_token_stream(), with)).unwrap_or_else(|_| ty.clone())
}

impl<'a> Input<'a> {
    pub fn from_impl(cx: &Ctxt, item: &'a ItemImpl, args: SharedArgs) -> Option<Input<'a>> {
        if let Some((path, _)) = &item.trait_ {
            cx.error_spanned_by(
                path,
                "#[mp::shared] goes on an inherent impl block (`impl Type { .. }`), not a trait impl",
            );
        }
        if !item.generics.params.is_empty() {
            cx.error_spanned_by(
                &item.generics,
                "#[mp::shared] types cannot be generic: a manager's server creates them by typeid",
            );
        }
        let self_ident = match &*item.self_ty {
            Type::Path(p) if p.qself.is_none() => p.path.segments.last().map(|s| s.ident.clone()),
            _ => None,
        };
        let Some(self_ident) = self_ident else {
            cx.error_spanned_by(&item.self_ty, "#[mp::shared] needs a named type");
            return None;
        };
        let mut methods = Vec::new();
        let mut ctors = Vec::new();
        for it in &item.items {
            let ImplItem::Fn(f) = it else { continue };
            let sig = &f.sig;
            let is_pub = matches!(f.vis, Visibility::Public(_));
            let ret = match &sig.output {
                ReturnType::Default => None,
                ReturnType::Type(_, t) => Some(fix(t, &self_ident)),
            };
            let receiver = sig.receiver();
            let typed: Vec<&Type> = sig
                .inputs
                .iter()
                .filter_map(|a| match a {
                    FnArg::Typed(t) => Some(&*t.ty),
                    FnArg::Receiver(_) => None,
                })
                .collect();
            let Some(recv) = receiver else {
                // an associated fn returning the type: a possible callable
                let returns_self = match &sig.output {
                    ReturnType::Type(_, t) => {
                        let s = t.to_token_stream().to_string();
                        s == "Self" || self_ident == s
                    }
                    ReturnType::Default => false,
                };
                if returns_self && sig.generics.params.is_empty() {
                    ctors.push(Ctor {
                        ident: sig.ident.clone(),
                        args: typed.iter().map(|t| fix(t, &self_ident)).collect(),
                    });
                }
                continue;
            };
            let name = sig.ident.to_string();
            let mut bad = None;
            if !matches!(recv.kind, syn::ReceiverKind::Reference(..)) {
                bad = Some(format!(
                    "the proxied method `{name}` takes `self` by value: a referent stays in \
                     the server, so methods take `&self` or `&mut self`"
                ));
            } else if let Some(a) = &sig.asyncness {
                let _ = a;
                bad = Some(format!("the proxied method `{name}` cannot be `async`"));
            } else if !sig.generics.params.is_empty() {
                bad = Some(format!(
                    "the proxied method `{name}` cannot be generic: its proxy method must name \
                     concrete types"
                ));
            }
            let mut problems = Vec::new();
            for t in typed.iter() {
                if let Some((span, why)) = check::not_owned(t) {
                    problems.push((
                        span,
                        format!("an argument of the proxied method `{name}` {why}"),
                    ));
                }
            }
            if let Some(t) = &ret {
                if let ReturnType::Type(_, orig) = &sig.output {
                    if let Some((span, why)) = check::not_owned(orig) {
                        problems.push((
                            span,
                            format!("the result of the proxied method `{name}` {why}"),
                        ));
                    }
                }
                let _ = t;
            }
            if bad.is_none() {
                if let Some((_, msg)) = problems.first() {
                    bad = Some(msg.clone());
                }
            }
            let new_typeid = args
                .method_to_typeid
                .iter()
                .find(|(m, _)| *m == sig.ident)
                .map(|(_, t)| t.clone());
            methods.push((
                Method {
                    sig: MethodSig {
                        ident: sig.ident.clone(),
                        args: typed.iter().map(|t| fix(t, &self_ident)).collect(),
                        ret,
                        new_typeid,
                        default: is_pub && !name.starts_with('_'),
                        bad,
                    },
                    ident: sig.ident.clone(),
                },
                problems,
            ));
        }
        let problems: Vec<_> = methods.iter().map(|(_, p)| p.clone()).collect();
        let methods: Vec<Method> = methods.into_iter().map(|(m, _)| m).collect();
        let input = Input {
            item,
            args,
            self_ident,
            methods,
            ctors,
        };
        // problems of exposed methods are errors (reported at their spans by `valid`)
        for (m, ps) in input.methods.iter().zip(problems) {
            if input.is_exposed(&m.ident) {
                for (span, msg) in ps {
                    cx.error_at(span, msg);
                }
            }
        }
        Some(input)
    }

    /// Whether `#[mp::shared]` exposes `name` (explicitly, or by default).
    pub fn is_exposed(&self, name: &Ident) -> bool {
        match &self.args.exposed {
            Some(list) => list.iter().any(|e| e == name),
            None => self
                .methods
                .iter()
                .any(|m| m.ident == *name && m.sig.default),
        }
    }

    pub fn exposed(&self) -> Vec<&MethodSig> {
        match &self.args.exposed {
            Some(list) => list
                .iter()
                .filter_map(|e| self.methods.iter().find(|m| m.ident == *e).map(|m| &m.sig))
                .collect(),
            None => self
                .methods
                .iter()
                .filter(|m| m.sig.default)
                .map(|m| &m.sig)
                .collect(),
        }
    }
}
