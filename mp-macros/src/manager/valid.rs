//! The checks of `#[derive(mp::Manager)]`: each typeid once, each per-typeid method name
//! a usable identifier and unique, each registration able to tell its referent.

use super::ast::{Input, Kind};
use crate::internals::{is_keyword, Ctxt};

pub fn check(cx: &Ctxt, input: &Input) {
    for (i, r) in input.regs.iter().enumerate() {
        let typeid = r.reg.typeid.value();
        if typeid.is_empty() {
            cx.error_spanned_by(&r.reg.typeid, "a typeid cannot be empty");
            continue;
        }
        if input.regs[..i]
            .iter()
            .any(|p| p.reg.typeid.value() == typeid)
        {
            cx.error_spanned_by(
                &r.reg.typeid,
                format!("typeid \"{typeid}\" is registered twice"),
            );
            continue;
        }
        if let Some(p) = input.regs[..i].iter().find(|p| p.method == r.method) {
            cx.error_spanned_by(
                &r.reg.typeid,
                format!(
                    "typeids \"{}\" and \"{typeid}\" both make the method `{}`",
                    p.reg.typeid.value(),
                    r.method
                ),
            );
        }
        let starts_ok = r
            .method
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
        if r.reg.create_method && (!starts_ok || is_keyword(&r.method)) {
            cx.error_spanned_by(
                &r.reg.typeid,
                format!(
                    "typeid \"{typeid}\" cannot name a method (`{}`): use `create_method = false`",
                    r.method
                ),
            );
        }
        if let Kind::Unknown = r.kind {
            match &r.reg.callable {
                Some(c) => cx.error_spanned_by(
                    c,
                    format!(
                        "cannot tell the referent of typeid \"{typeid}\" from the callable: name a \
                         `#[mp::shared]` type's function (`Type::new`) or add `proxytype = ..`"
                    ),
                ),
                None => cx.error_spanned_by(
                    &r.reg.attr,
                    format!(
                        "typeid \"{typeid}\" needs a callable or, for a client-side registration, \
                         `proxytype = ..`"
                    ),
                ),
            }
        }
    }
}
