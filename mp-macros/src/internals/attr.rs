//! The attribute model both manager macros share (serde_derive's `internals/attr.rs`):
//! `exposed(a, b)`, `method_to_typeid(m = "Typeid")`, and a manager's
//! `#[register("Typeid", callable, exposed(..), proxytype = .., create_method = ..)]`.
//! Parsing keeps the original tokens so that errors point at what the user wrote.

use super::Ctxt;
use proc_macro2::TokenStream;
use syn::parse::{ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::{Attribute, Ident, LitBool, LitStr, Path, Token, Type};

/// `exposed(a, b, _c)`: method names.
pub fn parse_exposed(input: ParseStream) -> syn::Result<Vec<Ident>> {
    let content;
    syn::parenthesized!(content in input);
    let names = Punctuated::<Ident, Token![,]>::parse_terminated(&content)?;
    Ok(names.into_iter().collect())
}

/// `method_to_typeid(m = "Typeid", ..)`.
pub fn parse_method_to_typeid(input: ParseStream) -> syn::Result<Vec<(Ident, LitStr)>> {
    let content;
    syn::parenthesized!(content in input);
    let mut out = Vec::new();
    while !content.is_empty() {
        let m: Ident = content.parse()?;
        content.parse::<Token![=]>()?;
        let t: LitStr = content.parse()?;
        out.push((m, t));
        if content.is_empty() {
            break;
        }
        content.parse::<Token![,]>()?;
    }
    Ok(out)
}

/// The arguments of `#[mp::shared(..)]`.
#[derive(Default)]
pub struct SharedArgs {
    /// `exposed(..)`, when given.
    pub exposed: Option<Vec<Ident>>,
    /// `method_to_typeid(..)`.
    pub method_to_typeid: Vec<(Ident, LitStr)>,
}

impl SharedArgs {
    /// Parses the attribute's tokens, recording problems in `cx`.
    pub fn parse(cx: &Ctxt, tokens: TokenStream) -> SharedArgs {
        let mut out = SharedArgs::default();
        let parser = |input: ParseStream| -> syn::Result<()> {
            while !input.is_empty() {
                let key: Ident = input.parse()?;
                if key == "exposed" {
                    if out.exposed.is_some() {
                        cx.error_spanned_by(&key, "`exposed` given twice");
                    }
                    out.exposed = Some(parse_exposed(input)?);
                } else if key == "method_to_typeid" {
                    out.method_to_typeid.extend(parse_method_to_typeid(input)?);
                } else {
                    return Err(syn::Error::new(
                        key.span(),
                        format!(
                            "unknown #[mp::shared] argument `{key}`: expected `exposed(..)` or \
                             `method_to_typeid(..)`"
                        ),
                    ));
                }
                if input.is_empty() {
                    break;
                }
                input.parse::<Token![,]>()?;
            }
            Ok(())
        };
        if let Err(e) = parser.parse2(tokens) {
            cx.syn_error(e);
        }
        out
    }
}

/// One `#[register(..)]` of a manager.
pub struct Register {
    /// The typeid.
    pub typeid: LitStr,
    /// The callable that makes the referent (absent on a client-side registration).
    pub callable: Option<Path>,
    /// `exposed(..)`.
    pub exposed: Option<Vec<Ident>>,
    /// `proxytype = T`.
    pub proxytype: Option<Type>,
    /// `create_method = false` leaves out the per-typeid method.
    pub create_method: bool,
    /// The attribute, for errors about it as a whole.
    pub attr: Attribute,
}

impl Register {
    /// Parses every `#[register(..)]` among `attrs`.
    pub fn parse_all(cx: &Ctxt, attrs: &[Attribute]) -> Vec<Register> {
        let mut out = Vec::new();
        for attr in attrs.iter().filter(|a| a.path().is_ident("register")) {
            match attr.parse_args_with(|input: ParseStream| Register::parse(input, attr)) {
                Ok(r) => out.push(r),
                Err(e) => cx.syn_error(e),
            }
        }
        out
    }

    fn parse(input: ParseStream, attr: &Attribute) -> syn::Result<Register> {
        let typeid: LitStr = input.parse()?;
        let mut r = Register {
            typeid,
            callable: None,
            exposed: None,
            proxytype: None,
            create_method: true,
            attr: attr.clone(),
        };
        while !input.is_empty() {
            input.parse::<Token![,]>()?;
            if input.is_empty() {
                break;
            }
            let fork = input.fork();
            let key = fork.parse::<Ident>().ok();
            let is_kw = |s: &str| key.as_ref().is_some_and(|k| k == s);
            if is_kw("exposed") && fork.peek(syn::token::Paren) {
                input.parse::<Ident>()?;
                r.exposed = Some(parse_exposed(input)?);
            } else if is_kw("proxytype") && fork.peek(Token![=]) {
                input.parse::<Ident>()?;
                input.parse::<Token![=]>()?;
                r.proxytype = Some(input.parse()?);
            } else if is_kw("create_method") && fork.peek(Token![=]) {
                input.parse::<Ident>()?;
                input.parse::<Token![=]>()?;
                r.create_method = input.parse::<LitBool>()?.value;
            } else if r.callable.is_none() {
                r.callable = Some(input.parse()?);
            } else {
                return Err(input.error(
                    "expected `exposed(..)`, `proxytype = ..` or `create_method = ..` \
                     (the callable was already given)",
                ));
            }
        }
        Ok(r)
    }
}
