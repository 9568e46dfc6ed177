//! `mp::dummy`: the same names backed by threads (CPython's `multiprocessing.dummy`,
//! run by its test suite as the "threads" flavour).

use mp::dummy::{active_children, Array, JoinableQueue, Lock, Pool, Process, Queue, Value};
use mp::Error;
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

#[test]
fn process_runs_a_closure_and_reports_its_end() {
    let q = Queue::new().unwrap();
    let q2 = q.clone();
    let unserializable = std::sync::Arc::new(std::sync::Mutex::new(vec![1]));
    let u2 = unserializable.clone();
    let p = Process::new(
        move |x: i32| {
            u2.lock().unwrap().push(x);
            q2.put(x * 2).unwrap();
        },
        (21,),
    )
    .with_name("worker");
    assert!(!p.is_alive());
    assert_eq!(p.exitcode(), None);
    p.start().unwrap();
    assert!(matches!(p.start(), Err(Error::InvalidState(_))));
    assert_eq!(q.get_timeout(T).unwrap(), 42);
    p.join().unwrap();
    assert_eq!(p.exitcode(), Some(0));
    assert_eq!(p.name(), "worker");
    assert_eq!(*unserializable.lock().unwrap(), [1, 21]);
    assert!(!active_children().contains(&p));

    let bad = Process::new(|| panic!("thread fails"), ());
    bad.start().unwrap();
    bad.join_timeout(T).unwrap();
    assert_eq!(bad.exitcode(), Some(1));
}

#[test]
fn queue_semantics_match_the_process_queue() {
    let q = Queue::with_maxsize(2).unwrap();
    q.put(1).unwrap();
    q.try_put(2).unwrap();
    assert!(q.full());
    assert!(matches!(q.try_put(3), Err(Error::Full)));
    assert!(matches!(
        q.put_timeout(3, Duration::from_millis(50)),
        Err(Error::Full)
    ));
    assert_eq!(q.qsize(), 2);
    assert_eq!(q.get().unwrap(), 1);
    assert_eq!(q.try_get().unwrap(), 2);
    assert!(matches!(q.try_get(), Err(Error::Empty)));
    assert!(matches!(
        q.get_timeout(Duration::from_millis(50)),
        Err(Error::Empty)
    ));
    assert!(q.empty());

    let jq: JoinableQueue<i32> = JoinableQueue::new().unwrap();
    for i in 0..5 {
        jq.put(i).unwrap();
    }
    let worker_q = jq.clone();
    let p = Process::new(
        move || {
            while let Ok(_x) = worker_q.get_timeout(Duration::from_millis(200)) {
                worker_q.task_done().unwrap();
            }
        },
        (),
    );
    p.start().unwrap();
    jq.join().unwrap();
    p.join().unwrap();
    assert!(matches!(jq.task_done(), Err(Error::InvalidState(_))));
}

#[test]
fn values_arrays_and_locks_between_threads() {
    let v = Value::new(0i64).unwrap();
    let a = Array::from_slice(&[0i64; 4]).unwrap();
    let lock = Lock::new().unwrap();
    let ps: Vec<Process> = (0..4)
        .map(|i| {
            let (v, a, lock) = (v.clone(), a.clone(), lock.clone());
            Process::new(
                move || {
                    for _ in 0..1000 {
                        *v.lock() += 1;
                    }
                    let _g = lock.lock();
                    a.set(i, i as i64 * 10).unwrap();
                },
                (),
            )
        })
        .collect();
    for p in &ps {
        p.start().unwrap();
    }
    for p in &ps {
        p.join().unwrap();
    }
    assert_eq!(v.get(), 4000);
    assert_eq!(a.to_vec(), [0, 10, 20, 30]);
    assert!(a.get(9).is_err());
}

#[test]
fn the_dummy_pool_is_the_thread_pool() {
    let pool = Pool::new(Some(2)).unwrap();
    let data = std::rc::Rc::new(0); // not Send: the closure below may not capture it
    let not_send_data = [1, 2, 3];
    let r = pool.map(move |i: usize| not_send_data[i], 0..3).unwrap();
    assert_eq!(r, [1, 2, 3]);
    assert_eq!(*data, 0);
    pool.close().unwrap();
    pool.join().unwrap();
}
