//! The codec: how every value that crosses a process boundary is encoded.
//!
//! One format for everything (Process args, task results, `Connection::send`, queue
//! items, manager calls): serde with [`postcard`], a compact, maintained binary format
//! (bincode is unmaintained; its last release is a `compile_error!` tombstone).
//!
//! Decoding is bounded: a frame is never larger than its transport's limit, and
//! postcard decodes from a slice, so a corrupt length prefix cannot make it allocate
//! more than the bytes at hand (serde caps preallocation). Malformed bytes are an
//! [`Error::Codec`], never a panic.
//!
//! Handles that own file descriptors (connections, queues, locks, shared memory …)
//! serialize as an index into a list of descriptors that travels beside the bytes
//! (see [`crate::reduction`]); [`encode_with_fds`] / [`decode_with_fds`] set that list up.
//! [`encode`] alone refuses handles with a clear error.
//!
//! Measured on this machine (2 vCPUs, release build, `cargo bench --bench codec`:
//! encode + decode round trip, median µs, and encoded bytes):
//!
//! | workload | postcard | rmp-serde | bitcode (serde) | serde_json |
//! |---|---|---|---|---|
//! | one small `u64` | 0.05 µs, 1 B | 0.03 µs, 1 B | 0.11 µs, 2 B | 0.04 µs, 2 B |
//! | `(i32, String, bool)` | 0.08 µs, 14 B | 0.09 µs, 15 B | 0.35 µs, 15 B | 0.09 µs, 22 B |
//! | 1 000 `u64` | 7.2 µs, 3.7 KB | 6.0 µs, 5.0 KB | 2.7 µs, 4.0 KB | 14.8 µs, 7.9 KB |
//! | 1 000 16-char `String`s | 33 µs, 17 KB | 36 µs, 17 KB | 25 µs, 16 KB | 51 µs, 19 KB |
//! | `Vec<f64>` of 1 M | 7.7 ms, 8 MB | 4.5 ms, 9 MB | 1.7 ms, 8 MB | 27 ms, 8.8 MB |
//!
//! postcard is the fastest and most compact on the small messages that dominate
//! (queue items, pool tasks, manager calls: 2–4× bitcode's serde mode there) and has a
//! small, stable wire format; bitcode wins on bulk numeric vectors (4×), which belong in
//! shared memory ([`Array`](crate::Array)) or `send_bytes` anyway.

/// Bytes that encode and decode with one `memcpy` (a plain `Vec<u8>` goes through serde
/// byte by byte, about 1 ns a byte): use it for bulk binary data in queue items,
/// `Connection::send` or task arguments. Derefs to `Vec<u8>`.
///
/// ```
/// let b = mp::codec::ByteBuf::from(vec![1u8, 2, 3]);
/// let bytes = mp::codec::encode(&b).unwrap();
/// assert_eq!(mp::codec::decode::<mp::codec::ByteBuf>(&bytes).unwrap().as_slice(), &[1, 2, 3]);
/// ```
pub use serde_bytes::ByteBuf;

use crate::error::{CodecError, Error, Result};
use crate::reduction::{DecodeFds, EncodeFds};
use serde::{de::DeserializeOwned, Serialize};
use std::os::fd::OwnedFd;

/// Encodes `value`; a handle inside it is an error (use [`encode_with_fds`]).
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    postcard::to_stdvec(value).map_err(codec_err)
}

/// Appends the encoding of `value` to `out`.
pub fn encode_into<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<()> {
    let bytes = postcard::to_extend(value, std::mem::take(out)).map_err(codec_err)?;
    *out = bytes;
    Ok(())
}

/// Decodes a `T`; trailing bytes are an error.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    decode_borrowed(bytes)
}

/// [`decode`] for a `T` that borrows from `bytes` (a `&Bytes` field stays in the
/// buffer instead of being copied out); trailing bytes are an error.
pub(crate) fn decode_borrowed<'a, T: serde::Deserialize<'a>>(bytes: &'a [u8]) -> Result<T> {
    let (v, rest) = postcard::take_from_bytes(bytes).map_err(codec_err)?;
    if !rest.is_empty() {
        return Err(Error::Codec(
            format!("{} trailing bytes after the value", rest.len()).into(),
        ));
    }
    Ok(v)
}

/// Encodes `value` and collects (duplicates of) the file descriptors its handles own.
pub fn encode_with_fds<T: Serialize + ?Sized>(value: &T) -> Result<(Vec<u8>, Vec<OwnedFd>)> {
    let guard = EncodeFds::begin();
    let bytes = encode(value);
    let fds = guard.finish();
    Ok((bytes?, fds))
}

/// Decodes a `T` whose handles take their descriptors from `fds`.
/// Descriptors no handle claimed are closed.
pub fn decode_with_fds<T: DeserializeOwned>(bytes: &[u8], fds: Vec<OwnedFd>) -> Result<T> {
    let _guard = DecodeFds::begin(fds);
    decode(bytes)
}

pub(crate) fn codec_err(e: postcard::Error) -> Error {
    match e {
        postcard::Error::SerdeSerCustom | postcard::Error::SerdeDeCustom => {
            match crate::reduction::take_custom_error() {
                Some(msg) => Error::Codec(CodecError::with_cause(msg, e)),
                None => Error::Codec(CodecError::from_error(e)),
            }
        }
        other => Error::Codec(CodecError::from_error(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_malformed() {
        let v = (1u32, "hi".to_string(), vec![1.5f64, 2.5]);
        let b = encode(&v).unwrap();
        let back: (u32, String, Vec<f64>) = decode(&b).unwrap();
        assert_eq!(back, v);
        // truncated input → Codec error, not a panic
        for cut in 0..b.len() {
            assert!(decode::<(u32, String, Vec<f64>)>(&b[..cut]).is_err());
        }
        // a huge length prefix does not allocate unbounded memory
        let evil = [0xff, 0xff, 0xff, 0xff, 0x0f];
        assert!(matches!(decode::<Vec<u64>>(&evil), Err(Error::Codec(_))));
        // trailing garbage
        let mut t = b.clone();
        t.push(0);
        assert!(decode::<(u32, String, Vec<f64>)>(&t).is_err());
    }
}
