//! Managers across real processes, under every start method: CPython's
//! `_TestContainers`, `_TestNamespace`, `_TestManagerRestart`, `_TestZZZNumberOfObjects`
//! and the docs' manager examples; the sync and queue proxies across processes.

// the tests pass items both by reference and by value, as porters will
#![allow(clippy::needless_borrows_for_generic_args)]

mod common;

use common::{for_each_method, join_ok, JOIN_TIMEOUT};
use mp::managers::{
    BarrierProxy, ConditionProxy, DictProxy, EventProxy, JoinableQueueProxy, ListProxy, LockProxy,
    NamespaceProxy, QueueProxy, SemaphoreProxy, SyncManager, Value, ValueProxy,
};
use mp::{Context, Error, Process};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(10);

fn manager(ctx: Context) -> SyncManager {
    ctx.manager().unwrap()
}

/// The docs' mixed keys, as a user would spell them.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
enum K {
    I(i64),
    S(String),
    F(f64),
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
enum V {
    S(String),
    I(i64),
    None,
}

#[mp::task]
fn docs_f(d: DictProxy<K, V>, l: ListProxy<i32>) {
    d.insert(K::I(1), V::S("1".into())).unwrap();
    d.insert(K::S("2".into()), V::I(2)).unwrap();
    d.insert(K::F(0.25), V::None).unwrap();
    l.reverse().unwrap();
}

#[test]
fn docs_example_dict_and_list_from_a_child() {
    for_each_method(|ctx| {
        let m = manager(ctx);
        let d = m.dict::<K, V>().unwrap();
        let l = m.list((0..10).collect()).unwrap();
        let p = ctx.process(docs_f, (d.clone(), l.clone()));
        p.start().unwrap();
        join_ok(&p);
        assert_eq!(d.to_string(), "{1: '1', '2': 2, 0.25: None}");
        assert_eq!(l.to_string(), "[9, 8, 7, 6, 5, 4, 3, 2, 1, 0]");
        assert_eq!(l.to_vec().unwrap(), (0..10).rev().collect::<Vec<_>>());
        assert_eq!(d.get(&K::S("2".into())).unwrap(), Some(V::I(2)));
        m.shutdown().unwrap();
    });
}

#[test]
fn dynamic_values_as_keys() {
    let m = mp::Manager::new().unwrap();
    let d = m.dict::<Value, Value>().unwrap();
    d.insert(1.into(), "1".into()).unwrap();
    d.insert("2".into(), 2.into()).unwrap();
    d.insert(0.25.into(), Value::None).unwrap();
    assert_eq!(d.to_string(), "{1: '1', '2': 2, 0.25: None}");
    assert_eq!(d.len().unwrap(), 3);
}

#[test]
fn list_methods() {
    let m = mp::Manager::new().unwrap();
    let a = m.list((0..10).collect::<Vec<i64>>()).unwrap();
    assert_eq!(a.to_string(), "[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]");
    let b = m.list(Vec::<i64>::new()).unwrap();
    assert_eq!(b.to_vec().unwrap(), Vec::<i64>::new());
    b.extend(0..5).unwrap();
    assert_eq!(b.to_vec().unwrap(), vec![0, 1, 2, 3, 4]);
    assert_eq!(b.get(-1).unwrap(), 4);
    assert_eq!(b.slice(2..4).unwrap(), vec![2, 3]);
    b.set(0, 10).unwrap();
    b.insert(1, 7).unwrap();
    assert_eq!(b.to_vec().unwrap(), vec![10, 7, 1, 2, 3, 4]);
    b.sort().unwrap();
    assert_eq!(b.to_vec().unwrap(), vec![1, 2, 3, 4, 7, 10]);
    assert_eq!(b.index(&7).unwrap(), 4);
    assert_eq!(b.count(&7).unwrap(), 1);
    assert_eq!(b.count(7).unwrap(), 1, "by value too");
    assert!(b.contains(&3).unwrap());
    b.remove(&3).unwrap();
    assert_eq!(b.pop().unwrap(), 10);
    assert_eq!(b.len().unwrap(), 4);
    assert!(matches!(b.get(10), Err(Error::Remote { kind, .. }) if kind == "IndexError"));
    assert!(matches!(b.index(&99), Err(Error::Remote { kind, .. }) if kind == "ValueError"));
    assert!(matches!(b.remove(&99), Err(Error::Remote { kind, .. }) if kind == "ValueError"));
    b.clear().unwrap();
    assert!(matches!(b.pop(), Err(Error::Remote { kind, .. }) if kind == "IndexError"));
    // the server keeps serving after errors
    b.append(1).unwrap();
    assert_eq!(b.get_value().unwrap(), vec![1]);
    assert_eq!(b.call_method::<usize>("__len__", ()).unwrap(), 1);
    assert!(matches!(
        b.call_method::<()>("no_such_method", ()),
        Err(Error::NotExposed { method }) if method == "no_such_method"
    ));
    let dbg = format!("{b:?}");
    assert!(dbg.starts_with("<ListProxy typeid 'list' at 0x"), "{dbg}");
    // mixed types do not sort: TypeError
    let c = m.list(vec![Value::from(1), Value::from("a")]).unwrap();
    assert!(matches!(c.sort(), Err(Error::Remote { kind, .. }) if kind == "TypeError"));
}

#[test]
fn nested_proxies() {
    let m = mp::Manager::new().unwrap();
    let a = m.list(Vec::<ListProxy<String>>::new()).unwrap();
    let b = m.list(Vec::<String>::new()).unwrap();
    a.append(b.clone()).unwrap();
    b.append("hello".into()).unwrap();
    assert_eq!(a.get(0).unwrap().to_string(), "['hello']");
    assert_eq!(b.to_string(), "['hello']");

    let d1 = m
        .dict_from([("a".to_string(), 1), ("b".to_string(), 2)])
        .unwrap();
    let d2 = m.dict_from([("c".to_string(), 3)]).unwrap();
    d2.clear().unwrap();
    let outer = m.list(vec![d1, d2]).unwrap();
    outer.get(1).unwrap().insert("c".into(), 3).unwrap();
    assert_eq!(outer.get(0).unwrap().to_string(), "{'a': 1, 'b': 2}");
    assert_eq!(outer.get(1).unwrap().to_string(), "{'c': 3}");
}

/// CPython's `test_dict_proxy_nested`.
#[test]
fn dict_proxy_nested() {
    let m = mp::Manager::new().unwrap();
    let pets = m
        .dict_from([("ferrets".to_string(), 2), ("hamsters".to_string(), 4)])
        .unwrap();
    let supplies = m
        .dict_from([("water".to_string(), 10), ("feed".to_string(), 3)])
        .unwrap();
    let d = m
        .dict_from([
            ("pets".to_string(), pets.clone()),
            ("supplies".to_string(), supplies.clone()),
        ])
        .unwrap();
    let key = |s: &str| s.to_string();
    assert_eq!(supplies.get_item(&key("water")).unwrap(), 10);
    assert_eq!(
        d.get_item(&key("supplies"))
            .unwrap()
            .get_item(&key("water"))
            .unwrap(),
        10
    );
    d.get_item(&key("supplies"))
        .unwrap()
        .insert(key("blankets"), 5)
        .unwrap();
    assert_eq!(supplies.get_item(&key("blankets")).unwrap(), 5);
    d.get_item(&key("supplies"))
        .unwrap()
        .insert(key("water"), 7)
        .unwrap();
    assert_eq!(supplies.get_item(&key("water")).unwrap(), 7);
    drop(pets);
    drop(supplies);
    assert_eq!(
        d.get_item(&key("pets"))
            .unwrap()
            .get_item(&key("ferrets"))
            .unwrap(),
        2
    );
    d.get_item(&key("supplies"))
        .unwrap()
        .insert(key("blankets"), 11)
        .unwrap();
    assert_eq!(
        d.get_item(&key("supplies"))
            .unwrap()
            .get_item(&key("blankets"))
            .unwrap(),
        11
    );
    let pets = d.get_item(&key("pets")).unwrap();
    let supplies = d.get_item(&key("supplies")).unwrap();
    d.clear().unwrap();
    assert_eq!(d.len().unwrap(), 0);
    assert_eq!(supplies.get_item(&key("water")).unwrap(), 7);
    assert_eq!(pets.get_item(&key("hamsters")).unwrap(), 4);
    let l = m.list(vec![pets.clone(), supplies.clone()]).unwrap();
    l.get(0).unwrap().insert(key("marmots"), 1).unwrap();
    assert_eq!(pets.get_item(&key("marmots")).unwrap(), 1);
    drop(pets);
    drop(supplies);
    assert_eq!(l.get(0).unwrap().get_item(&key("marmots")).unwrap(), 1);
    // a plain list inside stays a list; the proxy inside stays a proxy
    let outer = m
        .list(vec![
            Value::from(vec![88, 99]),
            mp::managers::to_value(&l).unwrap(),
        ])
        .unwrap();
    assert!(matches!(outer.get(0).unwrap(), Value::List(_)));
    let inner: ListProxy<DictProxy<String, i32>> =
        mp::managers::from_value(outer.get(-1).unwrap()).unwrap();
    assert_eq!(inner.get(-1).unwrap().get_item(&key("feed")).unwrap(), 3);
    drop((l, inner, outer, d));
    assert_eq!(m.number_of_objects().unwrap(), 0);
}

/// CPython's `test_list_proxy_in_list`.
#[test]
fn list_proxy_in_list() {
    let m = mp::Manager::new().unwrap();
    let a = m
        .list(
            (0..3)
                .map(|_| m.list((0..3).collect::<Vec<i32>>()).unwrap())
                .collect(),
        )
        .unwrap();
    assert_eq!(
        a.to_vec()
            .unwrap()
            .iter()
            .map(|l| l.to_vec().unwrap())
            .collect::<Vec<_>>(),
        vec![vec![0, 1, 2]; 3]
    );
    a.get(-1).unwrap().append(5).unwrap();
    a.get(-1).unwrap().set(-1, 6).unwrap();
    assert_eq!(a.get(-1).unwrap().to_vec().unwrap(), vec![0, 1, 2, 6]);
    assert_eq!(a.get(0).unwrap().to_string(), "[0, 1, 2]");
    let b = m.list(vec![a.clone()]).unwrap();
    b.get(0).unwrap().get(0).unwrap().append(4).unwrap();
    assert_eq!(a.get(0).unwrap().to_vec().unwrap(), vec![0, 1, 2, 4]);
}

#[mp::task]
fn proxy_from_queue(q: mp::Queue<ListProxy<i32>>, done: mp::Connection) {
    let l = q.get().unwrap();
    l.append(42).unwrap();
    done.send(&()).unwrap();
}

#[test]
fn proxies_travel_through_queues_and_pipes() {
    for_each_method(|ctx| {
        let m = manager(ctx);
        let l = m.list(Vec::<i32>::new()).unwrap();
        let q = mp::Queue::new().unwrap();
        let (ours, theirs) = mp::Pipe().unwrap();
        let p = ctx.process(proxy_from_queue, (q.clone(), theirs));
        p.start().unwrap();
        q.put(l.clone()).unwrap();
        assert!(ours.poll(Some(T)).unwrap());
        ours.recv::<()>().unwrap();
        join_ok(&p);
        assert_eq!(l.to_vec().unwrap(), vec![42]);
        // and over a pipe within this process
        let (a, b) = mp::Pipe().unwrap();
        a.send(&l).unwrap();
        let back: ListProxy<i32> = b.recv().unwrap();
        back.append(43).unwrap();
        assert_eq!(l.to_vec().unwrap(), vec![42, 43]);
        drop(back);
        drop(l);
        assert_eq!(m.number_of_objects().unwrap(), 0);
    });
}

#[test]
fn dict_methods() {
    let m = mp::Manager::new().unwrap();
    let d = m.dict::<String, i32>().unwrap();
    for (i, c) in "abcde".chars().enumerate() {
        d.insert(c.to_string(), i as i32).unwrap();
    }
    assert_eq!(d.keys().unwrap(), vec!["a", "b", "c", "d", "e"]);
    assert_eq!(d.values().unwrap(), vec![0, 1, 2, 3, 4]);
    assert_eq!(d.get_item(&"c".into()).unwrap(), 2);
    assert!(
        matches!(d.get_item(&"z".into()), Err(Error::Remote { kind, .. }) if kind == "KeyError")
    );
    assert!(matches!(d.pop(&"z".into()), Err(Error::Remote { kind, .. }) if kind == "KeyError"));
    assert_eq!(d.pop(&"a".into()).unwrap(), 0);
    assert_eq!(d.remove(&"b".into()).unwrap(), Some(1));
    assert_eq!(d.remove(&"b".into()).unwrap(), None);
    assert!(d.contains_key(&"c".into()).unwrap());
    assert!(d.contains_key("c".to_string()).unwrap());
    assert_eq!(d.setdefault("c".into(), 9).unwrap(), 2);
    assert_eq!(d.setdefault("f".into(), 9).unwrap(), 9);
    d.update([("g".to_string(), 7)]).unwrap();
    assert_eq!(d.len().unwrap(), 5);
    assert_eq!(d.to_map().unwrap().get("g"), Some(&7));
    assert_eq!(d.items().unwrap()[0], ("c".to_string(), 2));
    assert_eq!(d.to_string(), "{'c': 2, 'd': 3, 'e': 4, 'f': 9, 'g': 7}");
    d.clear().unwrap();
    assert_eq!(d.to_string(), "{}");
}

#[mp::task]
fn ns_child(ns: NamespaceProxy) {
    ns.set("x", 10).unwrap();
    ns.set("y", "hello").unwrap();
}

#[test]
fn namespace_from_a_child() {
    for_each_method(|ctx| {
        let m = manager(ctx);
        let ns = m.namespace().unwrap();
        ns.set("name", "Bob").unwrap();
        ns.set("_hidden", 1).unwrap();
        let p = ctx.process(ns_child, (ns.clone(),));
        p.start().unwrap();
        join_ok(&p);
        assert_eq!(ns.get::<i32>("x").unwrap(), 10);
        assert_eq!(ns.get::<String>("y").unwrap(), "hello");
        assert_eq!(ns.to_string(), "Namespace(name='Bob', x=10, y='hello')");
        assert!(
            matches!(ns.get::<i32>("zz"), Err(Error::Remote { kind, .. }) if kind == "AttributeError")
        );
        ns.remove("name").unwrap();
        assert!(!ns.contains("name").unwrap());
    });
}

#[test]
fn value_and_array() {
    let m = mp::Manager::new().unwrap();
    let v = m.value(1.5f64).unwrap();
    v.set(2.5).unwrap();
    assert_eq!(v.get().unwrap(), 2.5);
    let a = m.array(vec![1i32, 2, 3]).unwrap();
    a.set(0, 9).unwrap();
    assert_eq!(a.len().unwrap(), 3);
    assert_eq!(a.get(0).unwrap(), 9);
    assert_eq!(a.to_vec().unwrap(), vec![9, 2, 3]);
    assert!(matches!(a.get(3), Err(Error::Remote { kind, .. }) if kind == "IndexError"));
}

#[test]
fn refcounts_free_referents() {
    let m = mp::Manager::new().unwrap();
    assert_eq!(m.number_of_objects().unwrap(), 0);
    let l = m.list(vec![1]).unwrap();
    let d = m.dict::<i32, i32>().unwrap();
    assert_eq!(m.number_of_objects().unwrap(), 2);
    let l2 = l.clone();
    drop(l);
    assert_eq!(m.number_of_objects().unwrap(), 2);
    drop(l2);
    drop(d);
    assert_eq!(m.number_of_objects().unwrap(), 0);
    // a nested proxy is held by its container
    let outer = m.list(Vec::<ListProxy<i32>>::new()).unwrap();
    let inner = m.list(vec![5]).unwrap();
    outer.append(inner).unwrap();
    assert_eq!(m.number_of_objects().unwrap(), 2);
    assert_eq!(outer.get(0).unwrap().to_vec().unwrap(), vec![5]);
    outer.clear().unwrap();
    assert_eq!(m.number_of_objects().unwrap(), 1);
    drop(outer);
    assert_eq!(m.number_of_objects().unwrap(), 0);
}

#[test]
fn proxies_inside_dynamic_values_are_counted() {
    let m = mp::Manager::new().unwrap();
    {
        let outer = m.list(Vec::<Value>::new()).unwrap();
        let inner = m.dict::<String, i32>().unwrap();
        inner.insert("a".into(), 1).unwrap();
        outer
            .append(mp::managers::to_value(&inner).unwrap())
            .unwrap();
        drop(inner);
        assert_eq!(m.number_of_objects().unwrap(), 2);
        // an item read back as a plain Value holds a reference while it lives
        let item: Value = outer.get(0).unwrap();
        assert!(matches!(item, Value::Proxy(_)));
        assert_eq!(outer.to_string(), format!("[{}]", item.repr()));
        drop(item);
        let copies = outer.to_vec().unwrap();
        drop(copies);
        // and as a proxy: a reference of its own
        let d: DictProxy<String, i32> = mp::managers::from_value(outer.get(0).unwrap()).unwrap();
        assert_eq!(d.get_item(&"a".into()).unwrap(), 1);
        outer.clear().unwrap();
        assert_eq!(m.number_of_objects().unwrap(), 2);
        drop(d);
        assert_eq!(m.number_of_objects().unwrap(), 1);
    }
    assert_eq!(m.number_of_objects().unwrap(), 0);
}

#[mp::task]
fn hold_and_drop(l: ListProxy<i32>) {
    l.append(2).unwrap();
}

#[test]
fn child_proxies_count_and_drop() {
    for_each_method(|ctx| {
        let m = manager(ctx);
        let l = m.list(vec![1]).unwrap();
        let p = ctx.process(hold_and_drop, (l.clone(),));
        p.start().unwrap();
        join_ok(&p);
        assert_eq!(l.to_vec().unwrap(), vec![1, 2]);
        assert_eq!(m.number_of_objects().unwrap(), 1);
        drop(l);
        assert_eq!(m.number_of_objects().unwrap(), 0);
    });
}

#[test]
fn shutdown_is_idempotent_and_restart_address_reusable() {
    let m = mp::Manager::new().unwrap();
    let l = m.list(vec![1]).unwrap();
    m.shutdown().unwrap();
    m.shutdown().unwrap();
    assert!(l.len().is_err());
    assert!(m.list(vec![1]).is_err());
    // _TestManagerRestart: a new manager on the same address after shutdown
    let port = {
        let s = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap().port()
    };
    let addr = mp::connection::Address::Inet("127.0.0.1".into(), port);
    let m1 = SyncManager::new(addr.clone(), b"abc");
    m1.start().unwrap();
    let q = m1.queue::<i32>(0).unwrap();
    q.put(1).unwrap();
    m1.shutdown().unwrap();
    let m2 = SyncManager::new(addr, b"abc");
    m2.start().unwrap();
    let q = m2.queue::<i32>(0).unwrap();
    q.put(2).unwrap();
    assert_eq!(q.get().unwrap(), 2);
}

#[test]
fn blocked_call_fails_on_shutdown() {
    let m = mp::Manager::new().unwrap();
    let q = m.queue::<i32>(0).unwrap();
    let q2 = q.clone();
    let t = std::thread::spawn(move || {
        let start = Instant::now();
        let r = q2.get();
        (r, start.elapsed())
    });
    // give the getter time to block in the server (nothing to wait on: it is blocked),
    // then shutting down must release it within a bound
    std::thread::sleep(Duration::from_millis(200));
    let t0 = Instant::now();
    m.shutdown().unwrap();
    let (r, _) = t.join().unwrap();
    assert!(r.is_err(), "{r:?}");
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());

    // the same with a server in a thread of this process
    let m = SyncManager::new(None, None);
    let server = m.get_server().unwrap();
    let s2 = server.clone();
    let st = std::thread::spawn(move || s2.serve_forever());
    let c = SyncManager::new(server.address(), m.authkey());
    c.connect().unwrap();
    let q = c.queue::<i32>(0).unwrap();
    let e = c.event().unwrap();
    let t = std::thread::spawn(move || (q.get(), e.wait(None)));
    std::thread::sleep(Duration::from_millis(200));
    let t0 = Instant::now();
    server.shutdown();
    let (r, w) = t.join().unwrap();
    assert!(r.is_err(), "{r:?}");
    assert!(w.is_err(), "{w:?}");
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    st.join().unwrap().unwrap();
}

#[test]
fn misuse_is_an_error() {
    let m = mp::Manager::new().unwrap();
    assert!(
        matches!(m.start(), Err(Error::InvalidState(_))),
        "started twice"
    );
    assert!(matches!(m.connect(), Err(Error::InvalidState(_))));
    let unstarted = SyncManager::new(None, None);
    assert!(matches!(
        unstarted.list(vec![1]),
        Err(Error::InvalidState(_))
    ));
    assert!(unstarted.number_of_objects().is_err());
    unstarted.shutdown().unwrap();
    // nothing listens there
    let dir = tempfile::tempdir().unwrap();
    let nowhere = SyncManager::new(mp::connection::Address::Unix(dir.path().join("none")), b"k");
    assert!(matches!(nowhere.connect(), Err(Error::Io(_))));
    // a barrier of no parties is Python's ValueError
    assert!(matches!(m.barrier(0), Err(Error::Remote { kind, .. }) if kind == "ValueError"));
}

#[test]
fn drop_is_shutdown() {
    let m = mp::Manager::new().unwrap();
    let l = m.list(vec![1]).unwrap();
    let ns = m.namespace().unwrap();
    drop(m);
    assert!(l.len().is_err());
    assert!(ns.get::<i32>("x").is_err());
    // dropping proxies of a stopped server is quiet
    drop(l);
    drop(ns);
}

#[test]
fn connected_handle_leaves_server_running() {
    let m = mp::Manager::new().unwrap();
    let l = m.list(vec![1]).unwrap();
    {
        let c = SyncManager::new(m.address(), m.authkey());
        c.connect().unwrap();
        let l2 = c.list(vec![2]).unwrap();
        assert_eq!(l2.to_vec().unwrap(), vec![2]);
    }
    assert_eq!(l.to_vec().unwrap(), vec![1]);
    let bad = SyncManager::new(m.address(), b"wrong key");
    assert!(matches!(bad.connect(), Err(Error::Authentication(_))));
    assert_eq!(l.to_vec().unwrap(), vec![1]);
}

#[mp::task]
fn locker(l: LockProxy, v: ValueProxy<i64>, n: u32) {
    for _ in 0..n {
        let _g = l.lock().unwrap();
        let x = v.get().unwrap();
        v.set(x + 1).unwrap();
    }
}

#[test]
fn lock_across_processes() {
    for_each_method(|ctx| {
        let m = manager(ctx);
        let l = m.lock().unwrap();
        let v = m.value(0i64).unwrap();
        let ps: Vec<Process> = (0..3)
            .map(|_| ctx.process(locker, (l.clone(), v.clone(), 30)))
            .collect();
        for p in &ps {
            p.start().unwrap();
        }
        // and threads of this process at the same time
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let (l, v) = (l.clone(), v.clone());
                std::thread::spawn(move || {
                    for _ in 0..30 {
                        let _g = l.lock().unwrap();
                        let x = v.get().unwrap();
                        v.set(x + 1).unwrap();
                    }
                })
            })
            .collect();
        for p in &ps {
            join_ok(p);
        }
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(v.get().unwrap(), 150);
    });
}

#[test]
fn lock_and_rlock_semantics() {
    let m = mp::Manager::new().unwrap();
    let l = m.lock().unwrap();
    assert!(
        format!("{l:?}").starts_with("<LockProxy typeid 'Lock' at 0x"),
        "{l:?}"
    );
    assert!(l.acquire().unwrap());
    assert!(!l.try_acquire().unwrap());
    let t0 = Instant::now();
    assert!(!l.acquire_timeout(Duration::from_millis(100)).unwrap());
    assert!(t0.elapsed() >= Duration::from_millis(95));
    l.release().unwrap();
    assert!(matches!(l.release(), Err(Error::InvalidState(_))));
    let r = m.rlock().unwrap();
    assert!(r.acquire().unwrap());
    assert!(r.acquire().unwrap());
    let r2 = r.clone();
    // another thread does not own it
    std::thread::spawn(move || {
        assert!(!r2.try_acquire().unwrap());
        assert!(matches!(r2.release(), Err(Error::InvalidState(_))));
    })
    .join()
    .unwrap();
    r.release().unwrap();
    r.release().unwrap();
    assert!(r.release().is_err());
    let s = m.bounded_semaphore(2).unwrap();
    assert!(s.acquire().unwrap());
    assert_eq!(s.get_value().unwrap(), 1);
    s.release().unwrap();
    assert!(matches!(s.release(), Err(Error::InvalidState(_))));
    let s = m.semaphore(0).unwrap();
    assert!(!s.acquire_timeout(Duration::from_millis(50)).unwrap());
    s.release().unwrap();
    assert!(s.try_acquire().unwrap());
}

#[mp::task]
fn cond_child(c: ConditionProxy, state: ValueProxy<i32>) {
    let _g = c.lock().unwrap();
    state.set(1).unwrap();
    c.notify_all().unwrap();
}

#[test]
fn condition_across_processes() {
    for_each_method(|ctx| {
        let m = manager(ctx);
        let c = m.condition(None).unwrap();
        let state = m.value(0).unwrap();
        let guard = c.lock().unwrap();
        let p = ctx.process(cond_child, (c.clone(), state.clone()));
        p.start().unwrap();
        let ok = c.wait_for(|| state.get().unwrap() == 1, Some(T)).unwrap();
        assert!(ok);
        drop(guard);
        join_ok(&p);
        // a condition on a given lock; wait without notify times out
        let l = m.lock().unwrap();
        let c2 = m.condition(Some(l.clone().into())).unwrap();
        c2.acquire().unwrap();
        assert!(!c2.wait(Some(Duration::from_millis(50))).unwrap());
        assert!(!l.try_acquire().unwrap(), "the condition holds its lock");
        c2.release().unwrap();
        assert!(
            c2.wait(Some(Duration::from_millis(10))).is_err(),
            "wait needs the lock"
        );
    });
}

#[mp::task]
fn event_child(e: EventProxy) {
    e.set().unwrap();
}

#[test]
fn event_across_processes() {
    for_each_method(|ctx| {
        let m = manager(ctx);
        let e = m.event().unwrap();
        assert!(!e.is_set().unwrap());
        assert!(!e.wait(Some(Duration::from_millis(50))).unwrap());
        let p = ctx.process(event_child, (e.clone(),));
        p.start().unwrap();
        assert!(e.wait(Some(T)).unwrap());
        join_ok(&p);
        e.clear().unwrap();
        assert!(!e.is_set().unwrap());
    });
}

#[mp::task]
fn barrier_child(b: BarrierProxy, out: ListProxy<usize>) {
    let i = b.wait_timeout(Duration::from_secs(10)).unwrap();
    out.append(i).unwrap();
}

#[test]
fn barrier_across_processes() {
    for_each_method(|ctx| {
        let m = manager(ctx);
        let b = m.barrier(3).unwrap();
        assert_eq!(b.parties().unwrap(), 3);
        let out = m.list(Vec::<usize>::new()).unwrap();
        let ps: Vec<Process> = (0..2)
            .map(|_| ctx.process(barrier_child, (b.clone(), out.clone())))
            .collect();
        for p in &ps {
            p.start().unwrap();
        }
        let i = b.wait_timeout(T).unwrap();
        for p in &ps {
            join_ok(p);
        }
        let mut all = out.to_vec().unwrap();
        all.push(i);
        all.sort();
        assert_eq!(all, vec![0, 1, 2]);
        // a lone waiter times out and breaks it
        assert!(matches!(
            b.wait_timeout(Duration::from_millis(50)),
            Err(Error::BrokenBarrier)
        ));
        assert!(b.broken().unwrap());
        b.reset().unwrap();
        assert!(!b.broken().unwrap());
        b.abort().unwrap();
        assert!(matches!(b.wait(), Err(Error::BrokenBarrier)));
    });
}

#[mp::task]
fn producer(q: QueueProxy<String>, n: usize) {
    for i in 0..n {
        q.put(format!("item {i}")).unwrap();
    }
}

#[mp::task]
fn worker(q: JoinableQueueProxy<i64>, out: QueueProxy<i64>) {
    loop {
        let x = q.get_timeout(Duration::from_secs(10)).unwrap();
        if x < 0 {
            q.task_done().unwrap();
            return;
        }
        out.put(x * x).unwrap();
        q.task_done().unwrap();
    }
}

#[test]
fn queues_across_processes() {
    for_each_method(|ctx| {
        let m = manager(ctx);
        let q = m.queue::<String>(0).unwrap();
        let ps: Vec<Process> = (0..2)
            .map(|_| ctx.process(producer, (q.clone(), 20)))
            .collect();
        for p in &ps {
            p.start().unwrap();
        }
        let mut got: Vec<String> = (0..40).map(|_| q.get_timeout(T).unwrap()).collect();
        for p in &ps {
            join_ok(p);
        }
        got.sort();
        got.dedup();
        assert_eq!(got.len(), 20);
        assert!(matches!(q.try_get(), Err(Error::Empty)));
        let t0 = Instant::now();
        assert!(matches!(
            q.get_timeout(Duration::from_millis(100)),
            Err(Error::Empty)
        ));
        assert!(t0.elapsed() >= Duration::from_millis(95));

        let bounded = m.queue::<i32>(1).unwrap();
        bounded.put(1).unwrap();
        assert_eq!(bounded.get_value().unwrap(), vec![1]);
        assert!(bounded.full().unwrap());
        assert!(matches!(bounded.try_put(2), Err(Error::Full)));
        assert!(matches!(
            bounded.put_timeout(2, Duration::from_millis(50)),
            Err(Error::Full)
        ));
        assert_eq!(bounded.qsize().unwrap(), 1);

        let jq = m.joinable_queue::<i64>(0).unwrap();
        let out = m.queue::<i64>(0).unwrap();
        let w = ctx.process(worker, (jq.clone(), out.clone()));
        w.start().unwrap();
        for i in 0..10 {
            jq.put(i).unwrap();
        }
        jq.put(-1).unwrap();
        assert!(jq.join_timeout(T).unwrap());
        join_ok(&w);
        let mut squares: Vec<i64> = (0..10).map(|_| out.get_timeout(T).unwrap()).collect();
        squares.sort();
        assert_eq!(squares, (0..10).map(|i| i * i).collect::<Vec<_>>());
        assert!(matches!(jq.task_done(), Err(Error::InvalidState(_))));
    });
}

#[mp::task]
fn appender(l: ListProxy<i64>, base: i64) {
    for i in 0..50 {
        l.append(base + i).unwrap();
    }
}

#[test]
fn many_threads_and_processes_at_once() {
    let m = mp::Manager::new().unwrap();
    let l = m.list(Vec::<i64>::new()).unwrap();
    let ps: Vec<Process> = (0..3)
        .map(|k| Process::new(appender, (l.clone(), k * 1000)))
        .collect();
    for p in &ps {
        p.start().unwrap();
    }
    let ts: Vec<_> = (3..6)
        .map(|k| {
            let l = l.clone();
            std::thread::spawn(move || {
                for i in 0..50 {
                    l.append(k * 1000 + i).unwrap();
                }
            })
        })
        .collect();
    for p in &ps {
        p.join_timeout(JOIN_TIMEOUT).unwrap();
    }
    for t in ts {
        t.join().unwrap();
    }
    let mut all = l.to_vec().unwrap();
    assert_eq!(all.len(), 300);
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 300);
}

#[mp::task]
fn set_flag(path: String) {
    std::fs::write(path, b"initialized").unwrap();
}

#[test]
fn start_with_initializer_and_thread_server() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flag").to_string_lossy().into_owned();
    let m = SyncManager::new(None, None);
    m.start_with(set_flag, (path.clone(),)).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"initialized");
    m.shutdown().unwrap();

    // a server in a thread of this process (get_server().serve_forever())
    let m = SyncManager::new(("127.0.0.1", 0), b"key");
    let server = m.get_server().unwrap();
    let addr = server.address();
    let s2 = server.clone();
    let t = std::thread::spawn(move || s2.serve_forever());
    let c = SyncManager::new(addr, b"key");
    c.connect().unwrap();
    let l = c.list(vec!["x".to_string()]).unwrap();
    assert_eq!(l.to_string(), "['x']");
    assert_eq!(server.number_of_objects(), 1);
    drop(l);
    assert_eq!(c.number_of_objects().unwrap(), 0);
    server.shutdown();
    t.join().unwrap().unwrap();
}

#[test]
fn semaphore_proxy_from_threads() {
    let m = mp::Manager::new().unwrap();
    let s: SemaphoreProxy = m.semaphore(1).unwrap();
    let counter = m.value(0i32).unwrap();
    let ts: Vec<_> = (0..4)
        .map(|_| {
            let (s, c) = (s.clone(), counter.clone());
            std::thread::spawn(move || {
                for _ in 0..10 {
                    assert!(s.acquire_timeout(T).unwrap());
                    c.set(c.get().unwrap() + 1).unwrap();
                    s.release().unwrap();
                }
            })
        })
        .collect();
    for t in ts {
        t.join().unwrap();
    }
    assert_eq!(counter.get().unwrap(), 40);
}

#[test]
fn proxies_are_send_sync_clone_serde() {
    fn check<T: Clone + Send + Sync + Serialize + for<'de> Deserialize<'de> + 'static>() {}
    check::<ListProxy<i32>>();
    check::<DictProxy<String, i32>>();
    check::<NamespaceProxy>();
    check::<LockProxy>();
    check::<mp::managers::RLockProxy>();
    check::<SemaphoreProxy>();
    check::<ConditionProxy>();
    check::<EventProxy>();
    check::<BarrierProxy>();
    check::<QueueProxy<i32>>();
    check::<JoinableQueueProxy<i32>>();
    check::<ValueProxy<i32>>();
    check::<mp::managers::ArrayProxy<i32>>();
}
