//! The owned-type check shared by `#[mp::task]` and the proxied methods of
//! `#[mp::shared]`: a value that crosses into another process cannot borrow.

use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::Type;

/// Finds a lifetime (or reference, or raw pointer) anywhere inside a type.
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

/// Why `ty` cannot cross a process boundary, if its syntax shows it: `impl Trait`, or a
/// borrow. The span points at the offending part.
pub fn not_owned(ty: &Type) -> Option<(Span, &'static str)> {
    if let Type::ImplTrait(i) = ty {
        return Some((i.span(), "must be a concrete type, not `impl Trait`"));
    }
    let mut b = Borrows(None);
    b.visit_type(ty);
    b.0.map(|span| {
        (
            span,
            "must be owned (`'static`): a value crossing into another process cannot borrow \
             from this one (use e.g. `String` for `&str`, `Vec<T>` for `&[T]`)",
        )
    })
}
