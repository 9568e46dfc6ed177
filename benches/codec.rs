//! The measurement behind `mp`'s codec choice (see mp/src/codec.rs): encode + decode
//! round trips of ints, strings and a `Vec<f64>` of 1 M items through serde formats.
//!
//! `cargo bench --bench codec` prints medians (µs) and encoded sizes.

mod common;
use common::median;
use serde::{de::DeserializeOwned, Serialize};
use std::time::Instant;

fn bench<T: Serialize + DeserializeOwned + PartialEq>(
    value: &T,
    runs: usize,
    enc: impl Fn(&T) -> Vec<u8>,
    dec: impl Fn(&[u8]) -> T,
) -> (f64, usize) {
    let bytes = enc(value);
    assert!(dec(&bytes) == *value);
    let times = (0..runs)
        .map(|_| {
            let t = Instant::now();
            let b = enc(value);
            let back = dec(&b);
            std::hint::black_box(back);
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    (median(times), bytes.len())
}

fn row<T: Serialize + DeserializeOwned + PartialEq>(name: &str, value: &T, runs: usize) {
    let p = bench(
        value,
        runs,
        |v| postcard::to_stdvec(v).unwrap(),
        |b| postcard::from_bytes(b).unwrap(),
    );
    let r = bench(
        value,
        runs,
        |v| rmp_serde::to_vec(v).unwrap(),
        |b| rmp_serde::from_slice(b).unwrap(),
    );
    let c = bench(
        value,
        runs,
        |v| bitcode::serialize(v).unwrap(),
        |b| bitcode::deserialize(b).unwrap(),
    );
    let j = bench(
        value,
        runs,
        |v| serde_json::to_vec(v).unwrap(),
        |b| serde_json::from_slice(b).unwrap(),
    );
    println!(
        "{name:<24} {:>10.2} {:>9} | {:>10.2} {:>9} | {:>10.2} {:>9} | {:>10.2} {:>9}",
        p.0, p.1, r.0, r.1, c.0, c.1, j.0, j.1
    );
}

fn main() {
    println!("encode+decode round trip, median µs and encoded bytes");
    println!(
        "{:<24} {:>20} | {:>20} | {:>20} | {:>20}",
        "workload", "postcard", "rmp-serde", "bitcode(serde)", "serde_json"
    );
    row("u64 (small)", &42u64, 20_000);
    row(
        "1000 u64",
        &(0..1000u64).map(|i| i * 7919).collect::<Vec<_>>(),
        2_000,
    );
    row(
        "(i32, String, bool)",
        &(7i32, "hello world".to_string(), true),
        20_000,
    );
    row(
        "1000 Strings of 16",
        &(0..1000).map(|i| format!("{i:016}")).collect::<Vec<_>>(),
        500,
    );
    row(
        "Vec<f64> 1M",
        &(0..1_000_000).map(|i| i as f64 * 0.5).collect::<Vec<f64>>(),
        20,
    );
}
