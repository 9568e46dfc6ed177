//! `#[derive(Shared)]`: parse → validate → expand.
//!
//! Accepts a `#[repr(C)]` struct whose fields are all plain old data (`ShmSafe`), or a
//! field-less enum with a fixed integer `#[repr(u8/i32/…)]` whose zero value is a variant.
//! Emits `unsafe impl ::mp::sharedctypes::ShmSafe` and, per field, a compile-time
//! assertion (spanned on the field's type) that the field type is `ShmSafe`, so nested
//! derived structs and arrays of them work and anything else is refused where it is
//! written. Obvious non-POD field types (`String`, `Vec`, `Box`, references, pointers …)
//! get a dedicated error naming the field.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields, Type};

const INT_REPRS: &[&str] = &[
    "u8", "i8", "u16", "i16", "u32", "i32", "u64", "i64", "usize", "isize",
];

const NOT_POD: &[&str] = &[
    "String", "Vec", "Box", "Rc", "Arc", "HashMap", "HashSet", "BTreeMap", "BTreeSet", "VecDeque",
    "CString", "OsString", "PathBuf", "Cell", "RefCell", "Mutex", "RwLock", "Option", "str",
    "char",
];

/// The repr idents of the item (`#[repr(C, packed)]` → [C, packed]).
fn reprs(input: &DeriveInput) -> syn::Result<Vec<syn::Ident>> {
    let mut out = Vec::new();
    for attr in &input.attrs {
        if attr.path().is_ident("repr") {
            attr.parse_nested_meta(|m| {
                if let Some(id) = m.path.get_ident() {
                    out.push(id.clone());
                }
                if m.input.peek(syn::token::Paren) {
                    let content;
                    syn::parenthesized!(content in m.input);
                    let _: TokenStream = content.parse()?;
                }
                Ok(())
            })?;
        }
    }
    Ok(out)
}

/// Why a field type can never live in shared memory, if that is obvious from its syntax.
fn not_pod(ty: &Type) -> Option<String> {
    match ty {
        Type::Reference(_) => Some("a reference points into one process's memory".into()),
        Type::Ptr(_) => Some("a raw pointer points into one process's memory".into()),
        Type::Slice(_) | Type::TraitObject(_) | Type::ImplTrait(_) => {
            Some("an unsized type has no fixed layout".into())
        }
        Type::FnPtr(_) => Some("a function pointer differs between processes".into()),
        Type::Tuple(t) if !t.elems.is_empty() => {
            Some("a tuple has no C layout; use a #[repr(C)] struct".into())
        }
        Type::Paren(p) => not_pod(&p.elem),
        Type::Group(g) => not_pod(&g.elem),
        Type::Array(a) => not_pod(&a.elem),
        Type::Path(p) => {
            let last = p.path.segments.last()?;
            let name = last.ident.to_string();
            if NOT_POD.contains(&name.as_str()) {
                Some(format!(
                    "`{name}` owns or points to memory outside the shared block \
                     (or has invalid bit patterns)"
                ))
            } else {
                None
            }
        }
        _ => None,
    }
}

pub fn expand(item: TokenStream) -> syn::Result<TokenStream> {
    let input: DeriveInput = syn::parse2(item)?;
    let name = &input.ident;
    if !input.generics.params.is_empty() {
        return Err(syn::Error::new(
            input.generics.span(),
            "#[derive(Shared)] does not support generic types",
        ));
    }
    let reprs = reprs(&input)?;
    let has = |s: &str| reprs.iter().any(|r| r == s);
    match &input.data {
        Data::Struct(s) => {
            if !has("C") && !has("transparent") {
                return Err(syn::Error::new(
                    name.span(),
                    format!(
                        "#[derive(Shared)] requires #[repr(C)] on `{name}`: Rust's default \
                         layout may differ between builds, a shared-memory layout must not"
                    ),
                ));
            }
            let fields: Vec<_> = match &s.fields {
                Fields::Named(f) => f.named.iter().collect(),
                Fields::Unnamed(f) => f.unnamed.iter().collect(),
                Fields::Unit => Vec::new(),
            };
            let mut errors: Option<syn::Error> = None;
            let mut checks = Vec::new();
            let mut repairs = Vec::new();
            let mut checked = Vec::new();
            for (i, f) in fields.iter().enumerate() {
                let fname = f
                    .ident
                    .as_ref()
                    .map_or_else(|| i.to_string(), |id| id.to_string());
                if let Some(why) = not_pod(&f.ty) {
                    let e = syn::Error::new(
                        f.span(),
                        format!("field `{fname}` of `{name}` cannot live in shared memory: {why}"),
                    );
                    match &mut errors {
                        Some(all) => all.combine(e),
                        None => errors = Some(e),
                    }
                    continue;
                }
                let ty = &f.ty;
                let check = quote_spanned! {ty.span()=>
                    ::mp::sharedctypes::__assert_shm_safe::<#ty>()
                };
                checks.push(quote!(#check;));
                let member: syn::Member = match &f.ident {
                    Some(id) => syn::Member::Named(id.clone()),
                    None => syn::Member::Unnamed(syn::Index::from(i)),
                };
                checked.push(check);
                // through a local copy: a packed struct's field may be unaligned
                repairs.push(quote! {
                    let f = ::core::ptr::addr_of_mut!((*p).#member).cast::<u8>();
                    let mut tmp = ::core::mem::MaybeUninit::<#ty>::uninit();
                    let n = ::core::mem::size_of::<#ty>();
                    ::core::ptr::copy_nonoverlapping(f, tmp.as_mut_ptr().cast::<u8>(), n);
                    let ok = (&::mp::sharedctypes::__Field::<#ty>::new())
                        .__repair_field(tmp.as_mut_ptr());
                    ::core::ptr::copy_nonoverlapping(tmp.as_ptr().cast::<u8>(), f, n);
                    if !ok {
                        return false;
                    }
                });
            }
            if let Some(e) = errors {
                return Err(e);
            }
            Ok(quote! {
                const _: () = {
                    #(#checks)*
                };
                // SAFETY: #[repr(C)], every field ShmSafe (checked above); a field with
                // invalid bit patterns is repaired through its own `__repair`.
                unsafe impl ::mp::sharedctypes::ShmSafe for #name {
                    const __CHECKED: bool = false #(|| #checked)*;
                    #[inline]
                    #[allow(unused_unsafe, unused_variables, unused_imports)]
                    unsafe fn __repair(p: *mut Self) -> bool {
                        use ::mp::sharedctypes::{__NoRepairField as _, __RepairField as _};
                        if !<Self as ::mp::sharedctypes::ShmSafe>::__CHECKED {
                            return true;
                        }
                        // SAFETY: `p` is valid and aligned for a `Self` (the caller's
                        // contract), so each field's bytes are valid for reads and writes;
                        // each is repaired in an aligned local copy.
                        unsafe {
                            #(#repairs)*
                        }
                        true
                    }
                }
            })
        }
        Data::Enum(e) => {
            if !INT_REPRS.iter().any(|r| has(r)) {
                return Err(syn::Error::new(
                    name.span(),
                    format!(
                        "#[derive(Shared)] on enum `{name}` requires a fixed integer repr \
                         such as #[repr(u8)] or #[repr(i32)]"
                    ),
                ));
            }
            for v in &e.variants {
                if !matches!(v.fields, Fields::Unit) {
                    return Err(syn::Error::new(
                        v.span(),
                        format!(
                            "variant `{}` of `{name}` has fields: only field-less enums can \
                             live in shared memory",
                            v.ident
                        ),
                    ));
                }
            }
            let zero = e.variants.first().is_some_and(|v| v.discriminant.is_none())
                || e.variants.iter().any(|v| {
                    matches!(&v.discriminant, Some((_, syn::Expr::Lit(l)))
                        if matches!(&l.lit, syn::Lit::Int(i) if i.base10_digits() == "0"))
                });
            if !zero {
                return Err(syn::Error::new(
                    name.span(),
                    format!(
                        "#[derive(Shared)] on enum `{name}` needs a variant whose value is 0 \
                         (zeroed shared memory must be a valid `{name}`)"
                    ),
                ));
            }
            let repr = reprs
                .iter()
                .find(|r| INT_REPRS.iter().any(|i| *r == i))
                .expect("checked above");
            let variants = e.variants.iter().map(|v| &v.ident);
            Ok(quote! {
                // SAFETY: field-less, fixed integer repr, zero is a variant; bytes another
                // process wrote are checked against the discriminants before a read.
                unsafe impl ::mp::sharedctypes::ShmSafe for #name {
                    const __CHECKED: bool = true;
                    #[inline]
                    unsafe fn __repair(p: *mut Self) -> bool {
                        // SAFETY: `p` is valid and aligned for a `Self`, whose layout is
                        // its integer repr; read as that integer, never as `Self`.
                        let v = unsafe { ::core::ptr::read_volatile(p.cast::<#repr>()) };
                        false #(|| v == #name::#variants as #repr)*
                    }
                }
            })
        }
        Data::Union(_) => Err(syn::Error::new(
            Span::call_site(),
            "#[derive(Shared)] does not support unions",
        )),
    }
}
