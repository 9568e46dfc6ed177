//! The IR of `#[derive(mp::Manager)]`: the registrations as written.

use crate::internals::attr::Register;
use crate::internals::{snake_case, Ctxt};
use syn::{DeriveInput, Ident, Path, Visibility};

pub enum Kind {
    /// A `#[mp::shared]` type: its path and the path of its method table macro.
    Shared { ty: Path, table: Path },
    /// A registration naming its proxy type.
    Proxytype,
    /// Neither a proxy type nor a callable naming a type.
    Unknown,
}

pub struct Registration {
    pub reg: Register,
    /// The typeid in snake_case: the handle's method.
    pub method: String,
    pub kind: Kind,
}

pub struct Input<'a> {
    pub ident: &'a Ident,
    pub vis: &'a Visibility,
    pub regs: Vec<Registration>,
}

impl<'a> Input<'a> {
    pub fn from_derive(cx: &Ctxt, input: &'a DeriveInput) -> Input<'a> {
        if !input.generics.params.is_empty() {
            cx.error_spanned_by(&input.generics, "a manager type cannot be generic");
        }
        let regs = Register::parse_all(cx, &input.attrs)
            .into_iter()
            .map(|reg| {
                let kind = match (&reg.proxytype, &reg.callable) {
                    (Some(_), _) => Kind::Proxytype,
                    (None, Some(c)) if c.segments.len() >= 2 => {
                        let n = c.segments.len();
                        let ty = Path {
                            leading_colon: c.leading_colon,
                            segments: c.segments.iter().take(n - 1).cloned().collect(),
                        };
                        let name = ty
                            .segments
                            .last()
                            .map(|s| s.ident.to_string())
                            .unwrap_or_default();
                        let mut segs: Vec<syn::PathSegment> =
                            ty.segments.iter().take(n - 2).cloned().collect();
                        let mut id = quote::format_ident!("__mp_shared_{}", name);
                        if let Some(last) = ty.segments.last() {
                            id.set_span(last.ident.span());
                        }
                        segs.push(syn::PathSegment::from(id));
                        let table = Path {
                            leading_colon: c.leading_colon,
                            segments: segs.into_iter().collect(),
                        };
                        Kind::Shared { ty, table }
                    }
                    _ => Kind::Unknown,
                };
                Registration {
                    method: snake_case(&reg.typeid.value()),
                    reg,
                    kind,
                }
            })
            .collect();
        Input {
            ident: &input.ident,
            vis: &input.vis,
            regs,
        }
    }
}
