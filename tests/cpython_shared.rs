//! Ports of CPython's `_TestValue`, `_TestArray`, `_TestSharedCTypes`, `_TestHeap` and
//! `_TestSharedMemory` (Lib/test/_test_multiprocessing.py), written against API.md's
//! names and run under every start method with real processes.
mp::test_support!();

mod common;
#[allow(unused_imports)]
use common::*;

use mp::shared_memory::Item;
use mp::*;

fn run(ctx: &Context, p: Process) {
    let _ = ctx;
    p.start().unwrap();
    join_ok(&p);
}

fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

// ------------------------------------------------------------------------ _TestValue

// ('i', 4343, 24234), ('d', 3.625, -4.25), ('h', -232, 234), ('q', 2**33, 2**34),
// ('c', b'x', b'y'). CPython runs one test_value(raw=False|True); here one macro
// makes the test and its child task for `Value` and for `RawValue` (tasks cannot be
// generic), whose get/set are the same.
macro_rules! value_test {
    ($test:ident, $task:ident, $V:ident) => {
        #[mp::task]
        fn $task(i: $V<i32>, d: $V<f64>, h: $V<i16>, q: $V<i64>, c: $V<u8>) {
            i.set(24234);
            d.set(-4.25);
            h.set(234);
            q.set(1 << 34);
            c.set(b'y');
        }

        #[test]
        fn $test() {
            for_each_method(|ctx| {
                let (i, d, h, q, c) = (
                    $V::new(4343i32).unwrap(),
                    $V::new(3.625f64).unwrap(),
                    $V::new(-232i16).unwrap(),
                    $V::new(1i64 << 33).unwrap(),
                    $V::new(b'x').unwrap(),
                );
                assert_eq!(
                    (i.get(), d.get(), h.get(), q.get(), c.get()),
                    (4343, 3.625, -232, 1 << 33, b'x')
                );
                let args = (i.clone(), d.clone(), h.clone(), q.clone(), c.clone());
                run(&ctx, ctx.process($task, args));
                assert_eq!(
                    (i.get(), d.get(), h.get(), q.get(), c.get()),
                    (24234, -4.25, 234, 1 << 34, b'y')
                );
            });
        }
    };
}

value_test!(test_value, set_values, Value);
value_test!(test_rawvalue, set_raw_values, RawValue);

#[test]
fn test_getobj_getlock() {
    let val1 = Value::new(5i32).unwrap();
    let lock1 = val1.get_lock();
    let obj1 = val1.get_obj();
    assert_eq!(obj1.get(), 5);
    {
        // the default lock is an RLock: the guard's owner may take it again
        let _g = val1.lock();
        assert!(lock1.try_acquire());
        lock1.release().unwrap();
    }

    let lock = Lock::new().unwrap();
    let val3 = Value::with_lock(5i32, lock.clone()).unwrap();
    let lock3 = val3.get_lock();
    // the same lock
    assert!(lock.try_acquire());
    assert!(!lock3.try_acquire());
    lock.release().unwrap();
    {
        let mut g = val3.lock();
        *g += 1;
        assert!(!lock.try_acquire());
    }
    assert_eq!(val3.get_obj().get(), 6);

    let r = RLock::new().unwrap();
    let val4 = Value::with_lock(1.5f64, r).unwrap();
    *val4.lock() *= 2.0;
    assert_eq!(val4.get(), 3.0);

    let raw = RawValue::new(5i32).unwrap();
    let synced = synchronized(raw.clone(), None).unwrap();
    *synced.lock() += 1;
    assert_eq!(raw.get(), 6);
}

#[mp::task]
fn add_many(v: Value<i64>, n: u32) {
    for _ in 0..n {
        *v.lock() += 1;
    }
}

#[test]
fn value_lock_is_atomic_across_processes() {
    for_each_method(|ctx| {
        let v = ctx.value(0i64).unwrap();
        let ps: Vec<_> = (0..3)
            .map(|_| ctx.process(add_many, (v.clone(), 2000)))
            .collect();
        for p in &ps {
            p.start().unwrap();
        }
        add_many(v.clone(), 2000);
        for p in &ps {
            join_ok(p);
        }
        assert_eq!(v.get(), 8000);
    });
}

// ------------------------------------------------------------------------ _TestArray

#[mp::task]
fn prefix_sum(seq: Array<i32>) {
    let mut g = seq.lock();
    for i in 1..g.len() {
        g[i] += g[i - 1];
    }
}

#[mp::task]
fn prefix_sum_raw(seq: RawArray<i32>) {
    for i in 1..seq.len() {
        let v = seq.get(i).unwrap() + seq.get(i - 1).unwrap();
        seq.set(i, v).unwrap();
    }
}

fn prefix_sum_vec(seq: &mut [i32]) {
    for i in 1..seq.len() {
        seq[i] += seq[i - 1];
    }
}

const SEQ: [i32; 10] = [680, 626, 934, 821, 150, 233, 548, 982, 714, 831];

/// CPython's test_array(raw=False|True): one body for `Array` and `RawArray` (whose
/// `get`/`set`/`to_vec` are the same); `$task` is the child's prefix sum.
macro_rules! array_test {
    ($test:ident, $task:ident, $A:ident) => {
        #[test]
        fn $test() {
            for_each_method(|ctx| {
                let mut seq = SEQ.to_vec();
                let arr = $A::from_slice(&seq).unwrap();
                assert_eq!(arr.len(), seq.len());
                assert_eq!(arr.get(3).unwrap(), seq[3]);
                for (i, v) in [1, 2, 3, 4].into_iter().enumerate() {
                    arr.set(4 + i, v).unwrap();
                }
                seq[4..8].copy_from_slice(&[1, 2, 3, 4]);
                assert_eq!(arr.to_vec(), seq);
                prefix_sum_vec(&mut seq);
                run(&ctx, ctx.process($task, (arr.clone(),)));
                assert_eq!(arr.to_vec(), seq);
                assert!(arr.get(10).is_err());
                assert!(arr.set(10, 1).is_err());
            });
        }
    };
}

array_test!(test_array, prefix_sum, Array);
array_test!(test_rawarray, prefix_sum_raw, RawArray);

#[test]
fn test_array_guard_slices() {
    // the locked array's guard is a `&mut [T]`: slicing and copying, as Python does
    let mut seq = SEQ.to_vec();
    let arr = Array::from_slice(&seq).unwrap();
    assert_eq!(arr.lock()[2..7], seq[2..7]);
    arr.lock()[4..8].copy_from_slice(&[1, 2, 3, 4]);
    seq[4..8].copy_from_slice(&[1, 2, 3, 4]);
    assert_eq!(arr.to_vec(), seq);
}

#[test]
fn test_array_from_size() {
    for _ in 0..3 {
        let arr: Array<i32> = Array::new(10).unwrap();
        assert_eq!(arr.len(), 10);
        assert_eq!(arr.to_vec(), vec![0; 10]);
        for (i, x) in arr.lock().iter_mut().enumerate() {
            *x = i as i32;
        }
        assert_eq!(arr.to_vec(), (0..10).collect::<Vec<_>>());
        drop(arr);
    }
    let raw: RawArray<f64> = RawArray::new(7).unwrap();
    assert_eq!(raw.to_vec(), vec![0.0; 7]);
}

#[test]
fn test_getobj_getlock_obj() {
    let arr1 = Array::from_slice(&(0..10).collect::<Vec<i32>>()).unwrap();
    let _lock1 = arr1.get_lock();
    assert_eq!(arr1.get_obj().to_vec(), (0..10).collect::<Vec<_>>());

    let lock = Lock::new().unwrap();
    let arr3 = Array::from_slice_with_lock(&[1i32, 2, 3], lock.clone()).unwrap();
    assert!(lock.try_acquire());
    assert!(!arr3.get_lock().try_acquire());
    lock.release().unwrap();
    let arr4: Array<i64> = Array::with_lock(3, lock.clone()).unwrap();
    {
        let mut g = arr4.lock();
        g[0] = 9;
        assert!(!lock.try_acquire());
    }
    assert_eq!(arr4.to_vec(), [9, 0, 0]);

    let raw = RawArray::from_slice(&[1u16, 2]).unwrap();
    let synced = synchronized(raw.clone(), Some(RLock::new().unwrap().into())).unwrap();
    synced.lock()[1] = 7;
    assert_eq!(raw.to_vec(), [1, 7]);
}

// ----------------------------------------------------------------- _TestSharedCTypes

#[derive(Clone, Copy, Debug, PartialEq, mp::Shared)]
#[repr(C)]
struct Foo {
    x: i32,
    y: f64,
    z: i64,
}

// CPython's test_sharedctypes(lock=False|True): one macro makes the child task and
// the test for the locked types (`Value`, `Array`: test_synchronize) and the raw ones.
macro_rules! sharedctypes_test {
    ($test:ident, $task:ident, $V:ident, $A:ident) => {
        #[mp::task]
        fn $task(x: $V<i32>, y: $V<f64>, z: $V<i64>, st: $V<Foo>, arr: $A<f64>, string: $A<u8>) {
            x.set(x.get() * 2);
            y.set(y.get() * 2.0);
            z.set(z.get() * 2);
            let mut f = st.get();
            f.x *= 2;
            f.y *= 2.0;
            st.set(f);
            let s = string.value();
            string.set_value(&[s.clone(), s].concat()).unwrap();
            for i in 0..arr.len() {
                arr.set(i, arr.get(i).unwrap() * 2.0).unwrap();
            }
        }

        #[test]
        fn $test() {
            for_each_method(|ctx| {
                let x = $V::new(7i32).unwrap();
                let y = $V::new(1.0f64 / 3.0).unwrap();
                let z = $V::new(1i64 << 33).unwrap();
                let foo = $V::new(Foo { x: 3, y: 2.0, z: 0 }).unwrap();
                let arr = $A::from_slice(&(0..10).map(|i| i as f64).collect::<Vec<_>>()).unwrap();
                let string: $A<u8> = $A::new(20).unwrap();
                string.set_value(b"hello").unwrap();
                let args = (
                    x.clone(),
                    y.clone(),
                    z.clone(),
                    foo.clone(),
                    arr.clone(),
                    string.clone(),
                );
                run(&ctx, ctx.process($task, args));
                assert_eq!(x.get(), 14);
                assert!((y.get() - 2.0 / 3.0).abs() < 1e-12);
                assert_eq!(z.get(), 1 << 34);
                assert_eq!(foo.get(), Foo { x: 6, y: 4.0, z: 0 });
                assert_eq!(
                    arr.to_vec(),
                    (0..10).map(|i| i as f64 * 2.0).collect::<Vec<_>>()
                );
                assert_eq!(string.value(), b"hellohello");
                // a C string longer than the array is refused
                assert!(string.set_value(&[b'a'; 21]).is_err());
            });
        }
    };
}

sharedctypes_test!(test_synchronize, double, Value, Array);
sharedctypes_test!(test_sharedctypes, double_raw, RawValue, RawArray);

#[mp::task]
fn double_under_guards(x: Value<i32>, st: Value<Foo>, arr: Array<f64>) {
    *x.lock() *= 2;
    {
        let mut f = st.lock();
        f.x *= 2;
        f.y *= 2.0;
    }
    for v in arr.lock().iter_mut() {
        *v *= 2.0;
    }
}

#[test]
fn test_synchronize_guards_in_a_child() {
    // the locked types' guards, used in a child (what test_synchronize's `with` does)
    for_each_method(|ctx| {
        let x = Value::new(7i32).unwrap();
        let foo = Value::new(Foo { x: 3, y: 2.0, z: 0 }).unwrap();
        let arr = ctx
            .array((0..4).map(|i| i as f64).collect::<Vec<_>>())
            .unwrap();
        run(
            &ctx,
            ctx.process(double_under_guards, (x.clone(), foo.clone(), arr.clone())),
        );
        assert_eq!(x.get(), 14);
        assert_eq!(foo.get(), Foo { x: 6, y: 4.0, z: 0 });
        assert_eq!(arr.to_vec(), [0.0, 2.0, 4.0, 6.0]);
    });
}

#[test]
fn test_copy() {
    let foo = Value::new(Foo {
        x: 2,
        y: 5.0,
        z: 1 << 33,
    })
    .unwrap();
    let bar = copy(&foo).unwrap();
    foo.set(Foo { x: 0, y: 0.0, z: 0 });
    assert_eq!(
        bar.get(),
        Foo {
            x: 2,
            y: 5.0,
            z: 1 << 33
        }
    );
    let arr = Array::from_slice(&[1u8, 2, 3]).unwrap();
    let arr2 = copy(&arr).unwrap();
    arr.set(0, 9).unwrap();
    assert_eq!(arr2.to_vec(), [1, 2, 3]);
}

// ------------------------------------------------------------------------- _TestHeap

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn test_heap() {
    // Many allocations of varied sizes, freed in random order, never overlap and keep
    // their contents (CPython's test_heap checks the free/occupied block lists).
    let before = open_fds();
    let mut seed = 12345u64;
    let mut rand = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let mut blocks: Vec<(u8, Array<u8>)> = vec![];
    for i in 0..3000 {
        let size = 1 + rand(2000) as usize;
        let a: Array<u8> = Array::new(size).unwrap();
        assert!(a.to_vec().iter().all(|&b| b == 0), "not zeroed");
        let tag = (i % 251) as u8;
        a.lock().fill(tag);
        blocks.push((tag, a));
        if blocks.len() > 50 {
            let (tag, a) = blocks.swap_remove(rand(blocks.len() as u64) as usize);
            assert!(a.to_vec().iter().all(|&b| b == tag), "block overwritten");
        }
    }
    for (tag, a) in &blocks {
        assert!(a.to_vec().iter().all(|b| b == tag), "block overwritten");
    }
    drop(blocks);

    // Ten thousand Values cost a handful of descriptors, not ten thousand.
    let values: Vec<Value<i64>> = (0..10_000).map(|i| Value::new(i).unwrap()).collect();
    assert!(open_fds() < before + 64, "{} fds", open_fds() - before);
    for (i, v) in values.iter().enumerate() {
        assert_eq!(v.get(), i as i64);
    }
}

#[mp::task]
fn sum_values(values: Vec<Value<i64>>) -> i64 {
    values.iter().map(|v| v.get()).sum()
}

#[test]
fn many_values_travel_to_a_child() {
    for_each_method(|ctx| {
        let values: Vec<Value<i64>> = (0..2000).map(|i| ctx.value(i).unwrap()).collect();
        let p = ctx.process(sum_values, (values.clone(),));
        run(&ctx, p);
    });
}

// ----------------------------------------------------------------- _TestSharedMemory

#[test]
fn test_shared_memory_basics() {
    let name = unique("test01_tsmb");
    let mut sms = SharedMemory::create(Some(&name), 512).unwrap();
    assert_eq!(sms.name(), name);
    assert!(sms.size() >= 512);
    assert!(sms.buf().len() >= sms.size());
    let repr = format!("{sms:?}");
    assert!(repr.contains(sms.name()), "{repr}");
    assert!(repr.contains(&sms.size().to_string()), "{repr}");

    sms.buf_mut()[0] = 42;
    assert_eq!(sms.buf()[0], 42);

    let also = SharedMemory::attach(&name).unwrap();
    assert_eq!(also.buf()[0], 42);
    also.close().unwrap();

    // size 0 is refused
    assert!(SharedMemory::create(None, 0).is_err());

    // double unlink: FileNotFoundError
    let name2 = unique("test01_dblunlink");
    let uno = SharedMemory::create(Some(&name2), 5000).unwrap();
    assert!(uno.size() >= 5000);
    let duo = SharedMemory::attach(&name2).unwrap();
    duo.unlink().unwrap();
    duo.close().unwrap();
    uno.close().unwrap();
    match uno.unlink() {
        Err(Error::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::NotFound),
        other => panic!("{other:?}"),
    }

    // the name is taken: FileExistsError
    match SharedMemory::create(Some(&name), 512) {
        Err(Error::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists),
        other => panic!("{other:?}"),
    }

    // no such segment: FileNotFoundError
    match SharedMemory::attach("test01_notthere") {
        Err(Error::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::NotFound),
        other => panic!("{other:?}"),
    }

    // an embedded NUL is refused (3.13: ValueError)
    assert!(SharedMemory::attach(&format!("{name}\0a")).is_err());
    assert!(SharedMemory::create(Some("bad\0name"), 10).is_err());

    sms.close().unwrap();
    sms.unlink().unwrap();
}

#[test]
fn test_shared_memory_unnamed_names_differ() {
    let a = SharedMemory::create(None, 1).unwrap();
    let b = SharedMemory::create(None, 1).unwrap();
    assert_ne!(a.name(), b.name());
    assert!(!a.name().is_empty());
    let c = SharedMemory::attach(a.name()).unwrap();
    assert_eq!(c.name(), a.name());
    a.unlink().unwrap();
    b.unlink().unwrap();
}

#[test]
fn test_shared_memory_clone_shares_the_segment() {
    // CPython's pickle/unpickle test: the copy is the same segment.
    let mut sms = SharedMemory::create(None, 512).unwrap();
    sms.buf_mut()[..6].copy_from_slice(b"pickle");
    let mut sms2 = sms.clone();
    assert_eq!(sms.name(), sms2.name());
    assert_eq!(&sms2.buf()[..6], b"pickle");
    sms.buf_mut()[..6].copy_from_slice(b"newval");
    assert_eq!(&sms2.buf()[..6], b"newval");
    sms2.buf_mut()[..6].copy_from_slice(b"oldval");
    assert_eq!(&sms.buf()[..6], b"oldval");
    sms.unlink().unwrap();
}

#[mp::task]
fn attach_then_write(name: String, data: Vec<u8>) {
    let mut local = SharedMemory::attach(&name).unwrap();
    local.buf_mut()[..data.len()].copy_from_slice(&data);
    local.close().unwrap();
}

#[mp::task]
fn write_through(mut local: SharedMemory, data: Vec<u8>) {
    local.buf_mut()[..data.len()].copy_from_slice(&data);
    local.close().unwrap();
}

#[test]
fn test_shared_memory_across_processes() {
    for_each_method(|ctx| {
        let sms = SharedMemory::create(None, 512).unwrap();
        run(
            &ctx,
            ctx.process(
                attach_then_write,
                (sms.name().to_string(), b"howdy".to_vec()),
            ),
        );
        assert_eq!(&sms.buf()[..5], b"howdy");
        run(
            &ctx,
            ctx.process(write_through, (sms.clone(), b"HELLO".to_vec())),
        );
        assert_eq!(&sms.buf()[..5], b"HELLO");
        sms.close().unwrap();
        sms.unlink().unwrap();
    });
}

#[test]
fn test_shared_memory_dead_object() {
    // CPython: unpickling a SharedMemory whose segment was unlinked → FileNotFoundError.
    let sms = SharedMemory::create(None, 512).unwrap();
    let q: SimpleQueue<SharedMemory> = SimpleQueue::new().unwrap();
    q.put(sms.clone()).unwrap();
    sms.close().unwrap();
    sms.unlink().unwrap();
    assert!(q.get().is_err());
}

fn docs_list() -> ShareableList<Item> {
    ShareableList::new(&[
        Item::Str("howdy".into()),
        Item::Bytes(b"HoWdY".to_vec()),
        Item::Float(-273.154),
        Item::Int(100),
        Item::None,
        Item::Bool(true),
        Item::Int(42),
    ])
    .unwrap()
}

#[test]
fn test_shared_memory_shareable_list_basics() {
    let sl = docs_list();
    let repr = format!("{sl:?}");
    assert!(repr.contains(sl.shm().name()), "{repr}");
    assert!(
        repr.contains("['howdy', b'HoWdY', -273.154, 100, None, True, 42]"),
        "{repr}"
    );

    // index out of range
    assert!(sl.get(7).is_err());
    assert!(sl.set(7, Item::Int(2)).is_err());

    sl.set(0, Item::Str("howdy".into())).unwrap();
    assert_eq!(sl.format(), "8s8sdqxxxxxx?xxxxxxxx?q");
    assert_eq!(sl.len(), 7);

    assert!(sl.index(&Item::Str("100".into())).is_err());
    assert_eq!(sl.index(&Item::Int(100)).unwrap(), 3);

    assert_eq!(sl.get(0).unwrap(), Item::Str("howdy".into()));
    assert_eq!(sl.get(5).unwrap(), Item::Bool(true));

    let all: Vec<Item> = (0..sl.len()).map(|i| sl.get(i).unwrap()).collect();
    assert_eq!(
        all,
        vec![
            Item::Str("howdy".into()),
            Item::Bytes(b"HoWdY".to_vec()),
            Item::Float(-273.154),
            Item::Int(100),
            Item::None,
            Item::Bool(true),
            Item::Int(42),
        ]
    );

    sl.set(3, Item::Int(42)).unwrap();
    assert_eq!(sl.get(3).unwrap(), Item::Int(42));
    sl.set(4, Item::Str("some".into())).unwrap(); // type change
    assert_eq!(sl.get(4).unwrap(), Item::Str("some".into()));
    assert_eq!(sl.format(), "8s8sdq8sxxxxxxx?q");
    assert!(sl.set(4, Item::Str("far too many".into())).is_err());
    assert_eq!(sl.get(4).unwrap(), Item::Str("some".into()));
    sl.set(0, Item::Str("encodés".into())).unwrap(); // exactly 8 bytes of UTF-8
    assert_eq!(sl.get(0).unwrap(), Item::Str("encodés".into()));
    assert_eq!(sl.get(1).unwrap(), Item::Bytes(b"HoWdY".to_vec()));
    assert!(sl.set(0, Item::Str("encodées".into())).is_err()); // 9 bytes
    assert_eq!(sl.get(1).unwrap(), Item::Bytes(b"HoWdY".to_vec()));
    assert!(sl.set(1, Item::Bytes(b"123456789".to_vec())).is_err());
    assert_eq!(sl.get(1).unwrap(), Item::Bytes(b"HoWdY".to_vec()));

    assert_eq!(sl.count(&Item::Int(42)).unwrap(), 2);
    assert_eq!(sl.count(&Item::Bytes(b"HoWdY".to_vec())).unwrap(), 1);
    assert_eq!(sl.count(&Item::Bytes(b"adios".to_vec())).unwrap(), 0);

    // a duplicate under another name
    let name_duplicate = unique("test03_duplicate");
    let items: Vec<Item> = (0..sl.len()).map(|i| sl.get(i).unwrap()).collect();
    let sl_copy = ShareableList::create(Some(&name_duplicate), &items).unwrap();
    assert_ne!(sl.shm().name(), sl_copy.shm().name());
    assert_eq!(sl_copy.shm().name(), name_duplicate);
    assert_eq!(sl.format(), sl_copy.format());
    sl_copy.set(6, Item::Int(77)).unwrap();
    assert_eq!(sl_copy.get(6).unwrap(), Item::Int(77));
    assert_ne!(sl.get(6).unwrap(), Item::Int(77));
    sl_copy.shm().close().unwrap();
    sl_copy.shm().unlink().unwrap();

    // a second handle on the same list
    let tethered: ShareableList<Item> = ShareableList::attach(sl.shm().name()).unwrap();
    assert_eq!(tethered.shm().name(), sl.shm().name());
    tethered.set(6, Item::Int(880)).unwrap();
    assert_eq!(sl.get(6).unwrap(), Item::Int(880));
    tethered.shm().close().unwrap();

    sl.shm().close().unwrap();
    sl.shm().unlink().unwrap();

    // an empty list
    let empty: ShareableList<Item> = ShareableList::new(&[]).unwrap();
    assert_eq!(empty.len(), 0);
    assert_eq!(empty.format(), "");
    assert_eq!(empty.count(&Item::Str("any".into())).unwrap(), 0);
    assert!(empty.index(&Item::None).is_err());
    empty.shm().close().unwrap();
    empty.shm().unlink().unwrap();
}

#[test]
fn shareable_list_typed() {
    let sl = ShareableList::new(&(0..10i64).collect::<Vec<_>>()).unwrap();
    assert_eq!(sl.get(9).unwrap(), 9);
    sl.set(3, -3).unwrap();
    assert_eq!(sl.index(&-3).unwrap(), 3);
    assert_eq!(sl.count(&-3).unwrap(), 1);
    assert_eq!(sl.format(), "q".repeat(10));
    sl.shm().unlink().unwrap();
    let s = ShareableList::new(&["a".to_string(), "bc".to_string()]).unwrap();
    assert_eq!(s.get(1).unwrap(), "bc");
    s.shm().unlink().unwrap();
}

#[mp::task]
fn change_list(sl: ShareableList<Item>) {
    assert_eq!(sl.get(9).unwrap(), Item::Int(9));
    sl.set(4, Item::Str("changed".into())).unwrap();
}

#[test]
fn test_shared_memory_shareable_list_pickling() {
    for_each_method(|ctx| {
        let items: Vec<Item> = (0..10).map(Item::Int).collect();
        let sl = ShareableList::new(&items).unwrap();
        run(&ctx, ctx.process(change_list, (sl.clone(),)));
        assert_eq!(sl.get(4).unwrap(), Item::Str("changed".into()));
        sl.shm().close().unwrap();
        sl.shm().unlink().unwrap();
    });
}

#[test]
fn test_shared_memory_shareable_list_dead_object() {
    let sl = ShareableList::new(&(0..10i64).collect::<Vec<_>>()).unwrap();
    let q: SimpleQueue<ShareableList<i64>> = SimpleQueue::new().unwrap();
    q.put(sl.clone()).unwrap();
    sl.shm().close().unwrap();
    sl.shm().unlink().unwrap();
    assert!(q.get().is_err());
}

// ------------------------------------------------------------------------ the docs

/// The docs' literal (`n.value = 3.1415927`).
#[allow(clippy::approx_constant)]
const DOCS_PI: f64 = 3.1415927;

#[mp::task]
fn docs_f(n: Value<f64>, a: Array<i32>) {
    n.set(DOCS_PI);
    for x in a.lock().iter_mut() {
        *x = -*x;
    }
}

/// "Sharing state between processes: shared memory".
#[test]
fn docs_sharing_state_value_array() {
    for_each_method(|ctx| {
        let num = ctx.value(0.0f64).unwrap();
        let arr = ctx.array((0..10).collect::<Vec<i32>>()).unwrap();
        run(&ctx, ctx.process(docs_f, (num.clone(), arr.clone())));
        assert_eq!(num.get(), DOCS_PI);
        assert_eq!(arr.to_vec(), (0..10).map(|x: i32| -x).collect::<Vec<_>>());
    });
}

#[derive(Clone, Copy, Debug, PartialEq, mp::Shared)]
#[repr(C)]
struct Point {
    x: f64,
    y: f64,
}

#[mp::task]
fn docs_modify(n: Value<i32>, x: RawValue<f64>, s: Array<u8>, points: Array<Point>) {
    {
        let mut g = n.lock();
        *g = g.pow(2);
    }
    x.set(x.get().powi(2));
    let upper = s.value().to_ascii_uppercase();
    s.set_value(&upper).unwrap();
    for p in points.lock().iter_mut() {
        p.x = p.x.powi(2);
        p.y = p.y.powi(2);
    }
}

/// The docs' `multiprocessing.sharedctypes` example (Point structure, shared lock).
#[test]
fn docs_sharedctypes_example() {
    for_each_method(|ctx| {
        let lock = ctx.lock().unwrap();
        let n = Value::new(7i32).unwrap();
        let x = RawValue::new(1.0f64 / 3.0).unwrap();
        let s = Array::from_slice_with_lock(b"hello world", lock.clone()).unwrap();
        let points = Array::from_slice_with_lock(
            &[
                Point { x: 1.875, y: -6.25 },
                Point { x: -5.75, y: 2.0 },
                Point { x: 2.375, y: 9.5 },
            ],
            lock,
        )
        .unwrap();
        run(
            &ctx,
            ctx.process(
                docs_modify,
                (n.clone(), x.clone(), s.clone(), points.clone()),
            ),
        );
        assert_eq!(n.get(), 49);
        assert_eq!(x.get(), 0.1111111111111111);
        assert_eq!(s.value(), b"HELLO WORLD");
        let got: Vec<(f64, f64)> = points.to_vec().iter().map(|p| (p.x, p.y)).collect();
        assert_eq!(
            got,
            [(3.515625, 39.0625), (33.0625, 4.0), (5.640625, 90.25)]
        );
    });
}
