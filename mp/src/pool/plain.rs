//! Chunks of plain numbers travel as their bytes.
//!
//! `Pool.map(square, range(100_000))` spent most of its time in the codec: the parent
//! encoded 100 000 arguments, a worker decoded them and encoded 100 000 results, the
//! parent decoded those (four varint passes of 4–5 ns per item). When the items are
//! machine numbers (`u8` … `u128`, `i8` … `i128`, `usize`, `isize`, `f32`, `f64`) or
//! 1-tuples of them (a one-argument task's argument tuple), every bit pattern is a
//! valid value and the two ends are the same program on the same machine, so a chunk's
//! items (and a chunk's results when none failed) go as a memory copy instead.
//!
//! Every chunk's data and every chunk's results start with a tag byte saying which of
//! the two encodings follows; the receiver checks the tag against its own type and
//! the length against the item count, so bytes from a hostile or confused peer are an
//! [`Error::Codec`], never a wrong value.

use crate::error::{Error, Result};
use std::any::TypeId;

/// The tag of a chunk encoded with the codec (postcard).
pub(crate) const CODEC: u8 = 0;
/// The tag of a chunk of plain numbers: their bytes follow, item after item.
pub(crate) const PLAIN: u8 = 1;

/// Whether values of `T` may travel as their bytes: a number type or a 1-tuple of one
/// of the same size (no padding, no pointers, every bit pattern valid).
fn is_plain<T>() -> bool {
    // `typeid::of` because `T` need not be `'static` in the codec's bounds; these
    // types have no lifetimes, so equality with one of them is exact
    let id = typeid::of::<T>();
    macro_rules! one_of {
        // a 1-tuple's layout is not guaranteed: it counts only if it is exactly its
        // field (same size, so no padding byte to read)
        ($($t:ty),*) => {
            $(id == TypeId::of::<$t>()
                || (id == TypeId::of::<($t,)>() && size_of::<($t,)>() == size_of::<$t>()))||*
        };
    }
    one_of!(u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize, f32, f64)
}

/// `items` as bytes, if `T` is plain.
fn bytes_of<T>(items: &[T]) -> Option<&[u8]> {
    if !is_plain::<T>() {
        return None;
    }
    // SAFETY: `T` is a number type or a 1-tuple of one (checked above): it has no
    // padding, so every byte of the slice is initialised, and u8 has no alignment.
    Some(unsafe { std::slice::from_raw_parts(items.as_ptr().cast::<u8>(), size_of_val(items)) })
}

/// Appends `items` to `out` as a tagged plain chunk; `false` (and `out` untouched) if
/// `T` is not plain.
pub(crate) fn encode_into<T>(items: &[T], out: &mut Vec<u8>) -> bool {
    let Some(bytes) = bytes_of(items) else {
        return false;
    };
    out.reserve(1 + bytes.len());
    out.push(PLAIN);
    out.extend_from_slice(bytes);
    true
}

/// Decodes the bytes after a [`PLAIN`] tag as values of `T`: exactly `count` of them
/// if given, else as many as the bytes hold (which must be a whole number of items).
pub(crate) fn decode<T>(bytes: &[u8], count: Option<usize>) -> Result<Vec<T>> {
    if !is_plain::<T>() {
        return Err(Error::Codec(
            format!(
                "a chunk of plain numbers arrived for {}",
                std::any::type_name::<T>()
            )
            .into(),
        ));
    }
    let size = size_of::<T>();
    let n = bytes.len() / size;
    if !bytes.len().is_multiple_of(size) || count.is_some_and(|c| c != n) {
        return Err(Error::Codec(
            format!(
                "a chunk of {} bytes is not {} items of {}",
                bytes.len(),
                count.map_or_else(|| "whole".to_string(), |c| c.to_string()),
                std::any::type_name::<T>()
            )
            .into(),
        ));
    }
    let mut out = Vec::<T>::with_capacity(n);
    // SAFETY: `out` has room for `n` values of `T`, `bytes` holds exactly `n * size`
    // bytes, and every bit pattern is a valid `T` (a plain number type, checked above),
    // so after the copy the first `n` values are initialised.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), out.as_mut_ptr().cast::<u8>(), n * size);
        out.set_len(n);
    }
    Ok(out)
}

/// Splits a tagged chunk into its tag and the bytes after it.
pub(crate) fn split_tag(bytes: &[u8]) -> Result<(u8, &[u8])> {
    match bytes.split_first() {
        Some((&tag @ (CODEC | PLAIN), rest)) => Ok((tag, rest)),
        Some((tag, _)) => Err(Error::Codec(
            format!("a pool chunk with an unknown encoding tag {tag}").into(),
        )),
        None => Err(Error::Codec("an empty pool chunk".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<T: Copy + PartialEq + std::fmt::Debug>(items: &[T]) {
        let mut out = Vec::new();
        assert!(
            encode_into(items, &mut out),
            "{}",
            std::any::type_name::<T>()
        );
        let (tag, rest) = split_tag(&out).unwrap();
        assert_eq!(tag, PLAIN);
        assert_eq!(decode::<T>(rest, Some(items.len())).unwrap(), items);
        assert_eq!(decode::<T>(rest, None).unwrap(), items);
    }

    #[test]
    fn numbers_and_their_one_tuples_round_trip() {
        round_trip(&[0u8, 7, 255]);
        round_trip(&[i64::MIN, -1, 0, i64::MAX]);
        round_trip(&[(u64::MAX,), (3,)]);
        round_trip(&[1.5f64, -0.0, f64::INFINITY]);
        round_trip(&[(2.5f32,)]);
        round_trip(&[u128::MAX, 0]);
        round_trip::<usize>(&[]);
    }

    #[test]
    fn other_types_are_not_plain() {
        let mut out = Vec::new();
        assert!(!encode_into(&[true], &mut out));
        assert!(!encode_into(&['x'], &mut out));
        assert!(!encode_into(&[(1u8, 2u8)], &mut out));
        assert!(!encode_into(&[String::new()], &mut out));
        assert!(out.is_empty());
        assert!(decode::<bool>(&[1], None).is_err());
        assert!(decode::<(u32, u32)>(&[0; 8], None).is_err());
    }

    #[test]
    fn lengths_that_do_not_match_are_refused() {
        assert!(decode::<u64>(&[0; 12], None).is_err());
        assert!(decode::<u64>(&[0; 16], Some(3)).is_err());
        assert!(decode::<u64>(&[0; 16], Some(2)).is_ok());
        assert!(split_tag(&[]).is_err());
        assert!(split_tag(&[9, 1, 2]).is_err());
    }
}
