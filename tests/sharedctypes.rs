#![allow(clippy::approx_constant)] // the docs example writes 3.1415927 literally
mp::test_support!();
use mp::*;
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

fn for_each_method(f: impl Fn(Context)) {
    for m in get_all_start_methods() {
        eprintln!("start method {m}");
        f(get_context(Some(m)).unwrap());
    }
}

fn run(p: Process) {
    p.start().unwrap();
    p.join_timeout(T).unwrap();
    assert_eq!(p.exitcode(), Some(0), "{p:?}");
}

#[mp::task]
fn f(n: Value<f64>, a: Array<i32>) {
    n.set(3.1415927);
    for i in 0..a.len() {
        a.set(i, -a.get(i).unwrap()).unwrap();
    }
}

#[test]
fn docs_value_array_example() {
    for_each_method(|ctx| {
        let num = ctx.value(0.0f64).unwrap();
        let arr = ctx.array((0..10).collect::<Vec<i32>>()).unwrap();
        run(ctx.process(f, (num.clone(), arr.clone())));
        assert_eq!(format!("{}", num.get()), "3.1415927");
        assert_eq!(
            format!("{:?}", arr.to_vec()),
            "[0, -1, -2, -3, -4, -5, -6, -7, -8, -9]"
        );
    });
}

#[derive(Clone, Copy, Debug, PartialEq, mp::Shared)]
#[repr(C)]
struct Point {
    x: f64,
    y: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, mp::Shared)]
#[repr(C)]
struct Segment {
    ends: [Point; 2],
    id: u32,
    flag: bool,
}

#[mp::task]
fn modify(n: Value<i32>, x: RawValue<f64>, s: Array<u8>, a: Array<Point>) {
    *n.lock() = n.get().pow(2);
    x.set(x.get().powi(2));
    let up = s.value().to_ascii_uppercase();
    s.set_value(&up).unwrap();
    for p in a.lock().iter_mut() {
        p.x = p.x.powi(2);
        p.y = p.y.powi(2);
    }
}

#[test]
fn docs_sharedctypes_example() {
    for_each_method(|ctx| {
        let lock = Lock::new().unwrap();
        let n = Value::new(7i32).unwrap();
        let x = RawValue::new(1.0f64 / 3.0).unwrap();
        let s = Array::from_slice_with_lock(b"hello world", lock.clone()).unwrap();
        let pts = [
            Point { x: 1.875, y: -6.25 },
            Point { x: -5.75, y: 2.0 },
            Point { x: 2.375, y: 9.5 },
        ];
        let a = Array::from_slice_with_lock(&pts, lock.clone()).unwrap();
        run(ctx.process(modify, (n.clone(), x.clone(), s.clone(), a.clone())));
        assert_eq!(n.get(), 49);
        assert_eq!(format!("{}", x.get()), "0.1111111111111111");
        assert_eq!(s.value(), b"HELLO WORLD");
        let got: Vec<(f64, f64)> = a.to_vec().iter().map(|p| (p.x, p.y)).collect();
        assert_eq!(
            format!("{got:?}"),
            "[(3.515625, 39.0625), (33.0625, 4.0), (5.640625, 90.25)]"
        );
    });
}

#[mp::task]
fn incr(v: Value<u64>, n: u32) {
    for _ in 0..n {
        *v.lock() += 1;
    }
}

#[test]
fn locked_increment_loses_nothing() {
    for_each_method(|ctx| {
        let v = ctx.value(0u64).unwrap();
        let ps: Vec<_> = (0..4)
            .map(|_| ctx.process(incr, (v.clone(), 10_000)))
            .collect();
        for p in &ps {
            p.start().unwrap();
        }
        for p in &ps {
            p.join_timeout(T).unwrap();
            assert_eq!(p.exitcode(), Some(0));
        }
        assert_eq!(v.get(), 40_000);
    });
}

#[mp::task]
fn sum_values(vs: Vec<Value<u32>>) -> u64 {
    vs.iter().map(|v| v.get() as u64).sum::<u64>()
        + mp::heap::mapping_count() as u64 * 1_000_000_000
}

#[test]
fn ten_thousand_values_use_few_arenas() {
    let before = mp::heap::arena_count();
    let vs: Vec<Value<u32>> = (0..10_000u32).map(|i| Value::new(i).unwrap()).collect();
    assert!(
        mp::heap::arena_count() - before <= 3,
        "{}",
        mp::heap::arena_count()
    );
    let h = mp::spawn(sum_values, (vs.clone(),)).unwrap();
    let out = h.join().unwrap();
    let mappings = out / 1_000_000_000;
    assert_eq!(out % 1_000_000_000, (0..10_000u64).sum::<u64>());
    assert!(mappings <= 4, "child maps {mappings} arenas");
}

#[test]
fn nested_and_arrays_of_structs() {
    let seg = Segment {
        ends: [Point { x: 1.0, y: 2.0 }, Point { x: 3.0, y: 4.0 }],
        id: 7,
        flag: true,
    };
    let v = Value::new(seg).unwrap();
    v.lock().ends[1].y = 5.0;
    assert_eq!(v.get().ends[1].y, 5.0);
    let a = Array::<Segment>::new(4).unwrap();
    assert_eq!(a.get(3).unwrap().id, 0);
    a.set(2, seg).unwrap();
    assert_eq!(a.get(2).unwrap(), seg);
    assert!(a.get(4).is_err() && a.set(4, seg).is_err());
    let m = Value::new([[1u16; 3]; 2]).unwrap();
    m.lock()[1][2] = 9;
    assert_eq!(m.get(), [[1, 1, 1], [1, 1, 9]]);
}

#[test]
fn c_string_view_synchronized_copy() {
    let s = Array::<u8>::new(8).unwrap();
    s.set_value(b"abc").unwrap();
    assert_eq!(s.value(), b"abc");
    assert_eq!(s.raw(), b"abc\0\0\0\0\0");
    assert!(s.set_value(b"123456789").is_err());
    s.set_value(b"12345678").unwrap();
    assert_eq!(s.value(), b"12345678");
    let raw = RawArray::from_slice(&[1.5f32, 2.5]).unwrap();
    let a = synchronized(raw.clone(), Some(Lock::new().unwrap().into())).unwrap();
    a.lock()[0] = 9.0;
    assert_eq!(raw.get(0).unwrap(), 9.0);
    let c = copy(&a).unwrap();
    c.set(0, 1.0).unwrap();
    assert_eq!((a.get(0).unwrap(), c.get(0).unwrap()), (9.0, 1.0));
    let v = Value::with_lock(true, RLock::new().unwrap()).unwrap();
    v.set(false);
    assert!(!copy(&v).unwrap().get());
    assert!(matches!(v.get_lock(), AnyLock::RLock(_)));
    // a handle cannot be copied by another serde format
    assert!(mp::codec::encode(&v).is_err());
}
