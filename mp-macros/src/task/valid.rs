//! The checks of a `#[mp::task]` function: not async, not generic, no `self`, owned
//! argument and result types. Every problem is recorded, not just the first.

use super::ast::Input;
use crate::internals::{check, Ctxt};
use syn::{FnArg, ReturnType};

pub fn check(cx: &Ctxt, input: &Input) {
    let Input::Fn(f) = input else { return };
    let sig = &f.sig;
    if let Some(a) = &sig.asyncness {
        cx.error_spanned_by(
            a,
            "#[mp::task] cannot be an `async fn`: a task runs to completion in its own process; \
             start a runtime inside a plain fn instead",
        );
    }
    if let Some(lt) = sig.generics.lifetimes().next() {
        cx.error_spanned_by(
            lt,
            "#[mp::task] functions cannot have lifetime parameters: arguments crossing into \
             another process must be owned (`'static`)",
        );
    } else if !sig.generics.params.is_empty() {
        cx.error_spanned_by(
            &sig.generics.params,
            "#[mp::task] functions cannot be generic: a spawned child resolves a task by its \
             path, which must name one concrete function",
        );
    }
    if let Some(v) = &sig.variadic {
        cx.error_spanned_by(v, "#[mp::task] functions cannot be variadic");
    }
    for arg in &sig.inputs {
        match arg {
            FnArg::Receiver(r) => cx.error_spanned_by(
                r,
                "#[mp::task] functions cannot take `self`: tasks are free functions \
                 (for a Process subclass, put #[mp::task] on an `impl mp::Run for T` block)",
            ),
            FnArg::Typed(t) => {
                if let Some((span, why)) = check::not_owned(&t.ty) {
                    cx.error_at(span, format!("#[mp::task] argument types {why}"));
                }
            }
        }
    }
    if let ReturnType::Type(_, ty) = &sig.output {
        if let Some((span, why)) = check::not_owned(ty) {
            cx.error_at(span, format!("#[mp::task] result types {why}"));
        }
    }
}
