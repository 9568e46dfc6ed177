//! The measurement behind `mp`'s codec choice (see mp/src/codec.rs): encode + decode
//! round trips of ints, strings and a `Vec<f64>` of 1 M items through serde formats.
//!
//! Rows: mp's codec (postcard) beside CPython's pickle (`loads(dumps(x))`, the default
//! protocol, as multiprocessing's ForkingPickler) on the same values; then the other
//! serde formats considered, beside the same pickle numbers.

mod common;
use common::{interleave, med, median, pick, python_args, Report, Row};
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

/// One format's round trip: (median µs, encoded bytes).
type Measure<'a> = Box<dyn Fn() -> (f64, usize) + 'a>;

const PY_PICKLE: &str = r#"
import pickle, sys, time, statistics
x = eval(sys.argv[1]); runs = int(sys.argv[2])
ts = []
for _ in range(runs):
    t = time.perf_counter(); pickle.loads(pickle.dumps(x)); ts.append(time.perf_counter() - t)
print(statistics.median(ts) * 1e6)
"#;

/// mp's row and the other formats' rows of one value (added by `main` area by area).
fn row<T: Serialize + DeserializeOwned + PartialEq>(
    rep: &mut Vec<Row>,
    name: &str,
    py_value: &str,
    value: &T,
    runs: usize,
) {
    let runs = pick(runs, (runs / 20).max(3));
    let py_runs = (runs / 4).max(3).to_string();
    let pickle = || python_args(PY_PICKLE, &[py_value.to_string(), py_runs.clone()]);
    let (p, py) = interleave(
        || {
            bench(
                value,
                runs,
                |v| postcard::to_stdvec(v).unwrap(),
                |b| postcard::from_bytes(b).unwrap(),
            )
            .0
        },
        pickle,
    );
    let size = postcard::to_stdvec(value).unwrap().len();
    rep.push(Row {
        area: "codec",
        workload: format!("{name}: postcard (mp's codec, {size} B) vs pickle"),
        unit: "µs",
        mp: p,
        cpython: py,
        floor: None,
        lower_is_better: true,
    });
    let others: [(&str, Measure); 3] = [
        (
            "rmp-serde",
            Box::new(|| {
                bench(
                    value,
                    runs,
                    |v| rmp_serde::to_vec(v).unwrap(),
                    |b| rmp_serde::from_slice(b).unwrap(),
                )
            }),
        ),
        (
            "bitcode(serde)",
            Box::new(|| {
                bench(
                    value,
                    runs,
                    |v| bitcode::serialize(v).unwrap(),
                    |b| bitcode::deserialize(b).unwrap(),
                )
            }),
        ),
        (
            "serde_json",
            Box::new(|| {
                bench(
                    value,
                    runs,
                    |v| serde_json::to_vec(v).unwrap(),
                    |b| serde_json::from_slice(b).unwrap(),
                )
            }),
        ),
    ];
    for (fmt, f) in others {
        let size = f().1;
        rep.push(Row {
            area: "codec: other formats",
            workload: format!("{name}: {fmt} ({size} B), vs CPython pickle"),
            unit: "µs",
            mp: med(|| f().0),
            cpython: py,
            floor: None,
            lower_is_better: true,
        });
    }
}

fn main() {
    let mut report = Report::new("codec");
    let mut rep = Vec::new();
    row(&mut rep, "u64 (small)", "42", &42u64, 20_000);
    row(
        &mut rep,
        "1000 u64",
        "[i * 7919 for i in range(1000)]",
        &(0..1000u64).map(|i| i * 7919).collect::<Vec<_>>(),
        2_000,
    );
    row(
        &mut rep,
        "(i32, String, bool)",
        "(7, 'hello world', True)",
        &(7i32, "hello world".to_string(), true),
        20_000,
    );
    row(
        &mut rep,
        "1000 Strings of 16",
        "[f'{i:016}' for i in range(1000)]",
        &(0..1000).map(|i| format!("{i:016}")).collect::<Vec<_>>(),
        500,
    );
    let big: usize = pick(1_000_000, 100_000);
    row(
        &mut rep,
        &format!("Vec<f64> of {big}"),
        &format!("[i * 0.5 for i in range({big})]"),
        &(0..big).map(|i| i as f64 * 0.5).collect::<Vec<f64>>(),
        20,
    );
    rep.sort_by_key(|r| r.area != "codec");
    for r in rep {
        report.add(r);
    }
    report.finish();
}
