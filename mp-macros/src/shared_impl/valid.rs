//! The checks of `#[mp::shared]`: every name in `exposed(..)` and every
//! `method_to_typeid` key is a method of the impl block, and every exposed method can be
//! proxied (owned arguments and result; serializability is checked by the generated
//! assertions, at each type).

use super::ast::Input;
use crate::internals::Ctxt;

pub fn check(cx: &Ctxt, input: &Input) {
    let ty = &input.self_ident;
    let find = |name: &syn::Ident| input.methods.iter().find(|m| m.ident == *name);
    if let Some(list) = &input.args.exposed {
        for (i, e) in list.iter().enumerate() {
            match find(e) {
                None => cx.error_spanned_by(
                    e,
                    format!("exposed method `{e}` is not a method (with `&self` or `&mut self`) of `{ty}`'s impl block"),
                ),
                Some(m) => {
                    if let Some(bad) = &m.sig.bad {
                        // owned-type problems were reported at their types already
                        if !bad.contains("must be owned") && !bad.contains("concrete type") {
                            cx.error_spanned_by(e, bad);
                        }
                    }
                }
            }
            if list[..i].iter().any(|p| p == e) {
                cx.error_spanned_by(e, format!("method `{e}` is exposed twice"));
            }
        }
    } else {
        for m in &input.methods {
            if m.sig.default {
                if let Some(bad) = &m.sig.bad {
                    if !bad.contains("must be owned") && !bad.contains("concrete type") {
                        cx.error_spanned_by(
                            &m.ident,
                            format!("{bad} (leave it out with `exposed(..)`)"),
                        );
                    }
                }
            }
        }
    }
    for (m, _) in &input.args.method_to_typeid {
        if find(m).is_none() {
            cx.error_spanned_by(
                m,
                format!(
                    "method_to_typeid names `{m}`, which is not a method of `{ty}`'s impl block"
                ),
            );
        }
    }
}
