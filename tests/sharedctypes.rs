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

// ------------------------------------------------------------------------------------
// Soundness (issue 9, item 7): no two live `&mut` to one shared value.

/// The message of the panic `f` raised (`None`: it did not panic).
fn panic_message(f: impl FnOnce()) -> Option<String> {
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    std::panic::set_hook(prev);
    r.err().map(|e| {
        e.downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default()
    })
}

fn assert_borrow_panic(what: &str, f: impl FnOnce()) {
    match panic_message(f) {
        Some(m) => assert!(m.contains("already borrowed"), "{what}: {m}"),
        None => panic!("{what} did not panic while a guard of the same value was alive"),
    }
}

#[test]
fn second_access_while_a_guard_lives_panics() {
    let v = Value::new(1i32).unwrap();
    let clone = v.clone();
    // the same memory reached through a received handle (same process)
    let (bytes, fds) = mp::codec::encode_with_fds(&v).unwrap();
    let received: Value<i32> = mp::codec::decode_with_fds(&bytes, fds).unwrap();
    {
        let mut g = v.lock();
        *g += 1;
        assert_borrow_panic("lock", || drop(v.lock()));
        assert_borrow_panic("get", || {
            let _ = v.get();
        });
        assert_borrow_panic("set", || v.set(5));
        assert_borrow_panic("clone.lock", || drop(clone.lock()));
        assert_borrow_panic("clone.get", || {
            let _ = clone.get();
        });
        assert_borrow_panic("received.set", || received.set(5));
        assert_borrow_panic("get_obj().get", || {
            let _ = v.get_obj().get();
        });
        assert_borrow_panic("get_obj().set", || v.get_obj().set(9));
        assert_borrow_panic("copy", || drop(copy(&v)));
        // the guard is still the only writer, and still works after the refusals
        *g += 1;
        assert_eq!(*g, 3);
        assert_eq!(format!("{:?}", v), "<Synchronized wrapper for <borrowed>>");
    }
    // the refused calls left the lock balanced: others can take it
    *v.lock() += 1;
    assert_eq!((v.get(), clone.get(), received.get()), (4, 4, 4));
    // get_lock() stays re-entrant for callers that only lock
    let l1 = v.get_lock().lock();
    let l2 = v.get_lock().lock();
    *v.lock() += 1;
    v.set(v.get() + 1);
    drop((l1, l2));
    assert_eq!(v.get(), 6);
    // a sequence of guards is fine; so are guards of different values on one lock
    let lock = RLock::new().unwrap();
    let a = Value::with_lock(1u8, lock.clone()).unwrap();
    let b = Value::with_lock(2u8, lock).unwrap();
    let (mut ga, mut gb) = (a.lock(), b.lock());
    std::mem::swap(&mut *ga, &mut *gb);
    drop((ga, gb));
    assert_eq!((a.get(), b.get()), (2, 1));
}

#[test]
fn second_access_to_an_array_while_its_guard_lives() {
    let a = Array::from_slice(&[1u32, 2, 3]).unwrap();
    let raw = a.get_obj().clone();
    {
        let mut g = a.lock();
        g[0] = 10;
        assert!(matches!(a.get(0), Err(Error::InvalidState(m)) if m.contains("already borrowed")));
        assert!(matches!(a.set(1, 7), Err(Error::InvalidState(_))));
        assert!(matches!(raw.get(2), Err(Error::InvalidState(_))));
        assert!(matches!(raw.set(2, 7), Err(Error::InvalidState(_))));
        assert_borrow_panic("lock", || drop(a.lock()));
        assert_borrow_panic("to_vec", || drop(a.to_vec()));
        assert_borrow_panic("raw.to_vec", || drop(raw.to_vec()));
        g[1] = 20;
    }
    assert_eq!(a.to_vec(), [10, 20, 3]);
    let s = Array::from_slice(b"abc").unwrap();
    let g = s.lock();
    assert!(s.set_value(b"x").is_err() && s.set_raw(b"x").is_err());
    assert_borrow_panic("value", || drop(s.value()));
    drop(g);
    assert_eq!(s.value(), b"abc");
}

#[test]
fn two_locks_over_one_block_still_exclude_each_other() {
    // `synchronized` twice over one raw value: two different locks, one memory. A guard
    // of one makes the other wait (it never hands out a second `&mut`).
    let raw = RawValue::new(0u64).unwrap();
    let a = synchronized(raw.clone(), None).unwrap();
    let b = synchronized(raw.clone(), None).unwrap();
    let mut g = a.lock();
    let (tx, rx) = std::sync::mpsc::channel();
    let t = std::thread::spawn(move || {
        tx.send(()).unwrap();
        *b.lock() += 1; // waits for `g`
        let after = b.get();
        let r2 = raw.get();
        (after, r2)
    });
    rx.recv_timeout(T).unwrap();
    // give the thread time to reach `b.lock()`: a regression lets it increment first
    std::thread::sleep(Duration::from_millis(100));
    *g = 10;
    drop(g);
    let (after, r2) = t.join().unwrap();
    assert_eq!((after, r2), (11, 11));
}

#[mp::task]
fn reenter_in_child(v: Value<i64>) {
    // the child's handle is a new one, received: the check covers it too
    {
        let _g = v.lock();
        assert!(panic_message(|| {
            let _ = v.get();
        })
        .is_some_and(|m| m.contains("already borrowed")));
    }
    *v.lock() += 1;
}

#[test]
fn borrow_tracking_in_children_every_start_method() {
    for_each_method(|ctx| {
        let v = ctx.value(0i64).unwrap();
        // a guard alive in the parent while the child starts (and, with fork, is
        // copied into it): the child waits for the lock, then takes it normally
        let mut g = v.lock();
        let p = ctx.process(reenter_in_child, (v.clone(),));
        p.start().unwrap();
        *g = 41;
        drop(g);
        p.join_timeout(T).unwrap();
        assert_eq!(p.exitcode(), Some(0), "{p:?}");
        assert_eq!(v.get(), 42);
    });
}

// ------------------------------------------------------------------------------------
// Soundness (issue 9, item 8): a received handle carries its element type.

#[derive(Clone, Copy, Debug, PartialEq, mp::Shared)]
#[repr(u8)]
enum Colour {
    _Red = 0,
    Green = 1,
}

fn resend<A: serde::Serialize, B: serde::de::DeserializeOwned>(a: &A) -> mp::Result<B> {
    let (bytes, fds) = mp::codec::encode_with_fds(a)?;
    mp::codec::decode_with_fds(&bytes, fds)
}

#[test]
fn a_handle_received_as_another_type_is_refused() {
    let byte = RawValue::new(2u8).unwrap();
    assert!(matches!(
        resend::<_, RawValue<bool>>(&byte),
        Err(Error::Codec(_))
    ));
    assert!(matches!(
        resend::<_, RawValue<Colour>>(&byte),
        Err(Error::Codec(_))
    ));
    assert!(matches!(
        resend::<_, RawValue<i8>>(&byte),
        Err(Error::Codec(_))
    ));
    // same size and alignment, another type
    let word = Value::new(7u32).unwrap();
    assert!(matches!(
        resend::<_, Value<f32>>(&word),
        Err(Error::Codec(_))
    ));
    assert!(matches!(
        resend::<_, Value<[u8; 4]>>(&word),
        Err(Error::Codec(_))
    ));
    let arr = RawArray::from_slice(&[0u8, 1, 2]).unwrap();
    assert!(matches!(
        resend::<_, RawArray<bool>>(&arr),
        Err(Error::Codec(_))
    ));
    let arr = Array::from_slice(&[0u16, 1]).unwrap();
    assert!(matches!(resend::<_, Array<u8>>(&arr), Err(Error::Codec(_))));
    // the right type still travels
    assert_eq!(resend::<_, RawValue<u8>>(&byte).unwrap().get(), 2);
    assert_eq!(resend::<_, Value<u32>>(&word).unwrap().get(), 7);
    let c = RawValue::new(Colour::Green).unwrap();
    assert_eq!(
        resend::<_, RawValue<Colour>>(&c).unwrap().get(),
        Colour::Green
    );
}

#[mp::task]
fn receive_as_bool(conn: Connection) {
    assert!(conn.poll(Some(T)).unwrap());
    let r = conn.recv::<RawValue<bool>>();
    assert!(matches!(r, Err(Error::Codec(_))), "{r:?}");
    assert!(conn.poll(Some(T)).unwrap());
    let ok = conn.recv::<RawValue<u8>>().unwrap();
    ok.set(ok.get() + 1);
}

#[test]
fn type_confusion_through_a_pipe_every_start_method() {
    for_each_method(|ctx| {
        let (a, b) = ctx.pipe(true).unwrap();
        let p = ctx.process(receive_as_bool, (b,));
        p.start().unwrap();
        let v = RawValue::new(2u8).unwrap();
        a.send(&v).unwrap();
        a.send(&v).unwrap();
        p.join_timeout(T).unwrap();
        assert_eq!(p.exitcode(), Some(0), "{p:?}");
        assert_eq!(v.get(), 3);
    });
}

/// Writes `bad` over byte `at` of the first copy of `pattern` found in this process's
/// shared arenas, from a Python process with ctypes (a foreign writer that knows nothing
/// of Rust's `bool`).
fn python_overwrites(pattern: &[u8], writes: &[(usize, u8)]) {
    let pid = std::process::id();
    let arenas: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            let target = std::fs::read_link(e.path()).ok()?;
            target
                .to_string_lossy()
                .contains("mp-heap")
                .then(|| format!("/proc/{pid}/fd/{}", e.file_name().to_string_lossy()))
        })
        .collect();
    let hex: String = pattern.iter().map(|b| format!("{b:02x}")).collect();
    let script = format!(
        r#"
import ctypes, mmap, os, sys
pattern = bytes.fromhex("{hex}")
for path in sys.argv[1:]:
    fd = os.open(path, os.O_RDWR)
    size = os.fstat(fd).st_size
    mm = mmap.mmap(fd, size)
    off = mm.find(pattern)
    if off >= 0:
        cells = (ctypes.c_uint8 * len(pattern)).from_buffer(mm, off)
        for at, bad in {writes:?}:
            cells[at] = bad
        del cells
        print("written")
        sys.exit(0)
print("pattern not found")
sys.exit(1)
"#
    );
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(&arenas)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{} {} (arenas {arenas:?})",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn bool_pattern(seed: u64) -> Vec<bool> {
    (0..64).map(|i| (seed >> i) & 1 == 1).collect()
}

#[test]
fn a_foreign_writer_cannot_make_a_bool_invalid() {
    let pattern = bool_pattern(0x9E37_79B9_7F4A_7C15);
    let bytes: Vec<u8> = pattern.iter().map(|b| *b as u8).collect();
    let arr = RawArray::from_slice(&pattern).unwrap();
    python_overwrites(&bytes, &[(5, 2), (6, 255)]);
    // a read gives a valid bool: any non-zero byte is true, as C's _Bool and ctypes' c_bool
    assert_eq!(arr.get(5).unwrap() as u8, 1);
    assert_eq!(arr.get(6).unwrap() as u8, 1);
    let v = arr.to_vec();
    assert!(v.iter().all(|b| *b as u8 <= 1));
    assert_eq!(v[5..7], [true, true]);
    // a guard's `&mut [bool]` sees valid bools too
    let locked = synchronized(arr.clone(), None).unwrap();
    arr.set(5, pattern[5]).unwrap();
    arr.set(6, pattern[6]).unwrap();
    python_overwrites(&bytes, &[(5, 7)]);
    {
        let g = locked.lock();
        assert_eq!(g[5] as u8, 1);
        assert!(g.iter().all(|b| *b as u8 <= 1));
    }
    // an array of bools inside a value
    let pattern2 = bool_pattern(0xC2B2_AE3D_27D4_EB4F);
    let bytes2: Vec<u8> = pattern2.iter().map(|b| *b as u8).collect();
    let mut init = [false; 64];
    init.copy_from_slice(&pattern2);
    let val = Value::new(init).unwrap();
    python_overwrites(&bytes2, &[(9, 0x80)]);
    assert_eq!(val.get()[9] as u8, 1);
    val.set(init);
    python_overwrites(&bytes2, &[(9, 3)]);
    assert_eq!(val.lock()[9] as u8, 1);
}

#[derive(Clone, Copy, Debug, PartialEq, mp::Shared)]
#[repr(u8)]
enum Shade {
    Dark = 0,
    Light = 1,
    Glow = 7,
}

#[derive(Clone, Copy, Debug, PartialEq, mp::Shared)]
#[repr(C)]
struct Lamp {
    id: u64,
    on: bool,
    shade: Shade,
    tag: [u8; 6],
}

#[test]
fn a_foreign_writer_cannot_make_a_derived_type_invalid() {
    let lamp = Lamp {
        id: 0x1122_3344_5566_7788,
        on: true,
        shade: Shade::Glow,
        tag: [0xA1, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6],
    };
    let mut bytes = lamp.id.to_ne_bytes().to_vec();
    bytes.extend([1, 7, 0xA1, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6]);
    let v = Value::new(lamp).unwrap();
    // a bool field of a derived struct is repaired like a plain bool
    python_overwrites(&bytes, &[(8, 2)]);
    let got = v.get();
    assert_eq!(got.on as u8, 1);
    assert_eq!(got, lamp);
    // an enum field holding no discriminant is refused, never read as a `Shade`
    v.set(lamp);
    python_overwrites(&bytes, &[(9, 5)]);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| v.get()));
    let msg = r.expect_err("an invalid discriminant must not be read");
    let msg = msg.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("not a valid"), "{msg}");
    // a valid write makes it readable again
    v.set(lamp);
    assert_eq!(v.get().shade, Shade::Glow);
    assert_eq!(Shade::Dark as u8 + Shade::Light as u8, 1);
}
