//! A tour of `mp`: what Python's multiprocessing offers, in Rust. Grows with each area.

use mp::{
    Array, Connection, Event, JoinableQueue, Lock, Process, Queue, SharedMemory, StartMethod, Value,
};
use std::time::{Duration, Instant};

#[mp::task]
fn greet(name: String) {
    let me = mp::current_process();
    println!(
        "  hello {name} from {} (pid {}, parent {:?})",
        me.name(),
        me.pid().unwrap_or(0),
        mp::parent_process().and_then(|p| p.pid())
    );
}

#[mp::task]
fn square(x: u64) -> u64 {
    x * x
}

#[mp::task]
fn crash() {
    panic!("a worker crashes; the parent carries on")
}

#[mp::task]
fn sleep_forever() {
    std::thread::sleep(Duration::from_secs(3600));
}

#[mp::task]
fn pipe_child(conn: Connection) {
    conn.send(&(42, None::<i32>, "hello".to_string())).unwrap();
    let question: String = conn.recv().unwrap();
    conn.send(&format!("you asked: {question}")).unwrap();
}

#[mp::task]
fn count_up(counter: Value<i64>, lock: Lock, n: u32) {
    for _ in 0..n {
        let _g = lock.lock();
        *counter.lock() += 1;
    }
}

#[mp::task]
fn negate(arr: Array<i32>, done: Event) {
    for i in 0..arr.len() {
        arr.set(i, -arr.get(i).unwrap()).unwrap();
    }
    done.set();
}

#[mp::task]
fn square_worker(tasks: JoinableQueue<Option<u64>>, results: Queue<(u64, u64)>) {
    while let Ok(Some(x)) = tasks.get() {
        results.put((x, x * x)).unwrap();
        tasks.task_done().unwrap();
    }
    tasks.task_done().unwrap();
}

#[mp::task]
fn fill(d: mp::managers::DictProxy<String, u64>, l: mp::managers::ListProxy<u64>) {
    let me = mp::current_process().name();
    d.insert(me, std::process::id() as u64).unwrap();
    l.reverse().unwrap();
}

#[mp::task]
fn shout(mut shm: SharedMemory) {
    let buf = shm.buf_mut();
    buf[..5].make_ascii_uppercase();
}

fn section(title: &str) {
    println!("== {title}");
}

#[mp::main]
fn main() -> mp::Result<()> {
    println!("== processes under the three start methods");
    println!(
        "  cpu_count = {}, process_cpu_count = {}",
        mp::cpu_count(),
        mp::process_cpu_count()
    );
    for method in [
        StartMethod::Fork,
        StartMethod::Spawn,
        StartMethod::ForkServer,
    ] {
        let ctx = mp::get_context(Some(method))?;
        let t = Instant::now();
        let p = ctx.process(greet, (method.to_string(),));
        p.start()?;
        p.join()?;
        println!("  {method}: {p:?} in {:.2?}", t.elapsed());
    }

    println!("== mp::spawn returns the task's value");
    let handles: Vec<_> = (1..=4)
        .map(|x| mp::spawn(square, (x,)))
        .collect::<mp::Result<_>>()?;
    let squares: Vec<u64> = handles
        .into_iter()
        .map(|h| h.join())
        .collect::<mp::Result<_>>()?;
    println!("  squares: {squares:?}");

    println!("== crash isolation");
    match mp::spawn(crash, ())?.join() {
        Err(e) => println!("  the child panicked, we got: {e}"),
        Ok(()) => println!("  unexpected success"),
    }
    let p = Process::new(sleep_forever, ()).with_name("sleeper");
    p.start()?;
    p.terminate()?;
    p.join()?;
    println!("  terminated: {p:?}");

    section("pipes: a child sends, the parent asks back");
    let (a, b) = mp::Pipe()?;
    let p = Process::new(pipe_child, (b,));
    p.start()?;
    let (n, none, s): (i32, Option<i32>, String) = a.recv()?;
    println!("  received ({n}, {none:?}, {s:?})");
    a.send(&"how are you?".to_string())?;
    println!("  {}", a.recv::<String>()?);
    p.join()?;

    section("locks and shared values: 4 processes x 10 000 increments");
    let counter = Value::new(0i64)?;
    let lock = Lock::new()?;
    let t = Instant::now();
    let ps: Vec<_> = (0..4)
        .map(|_| Process::new(count_up, (counter.clone(), lock.clone(), 10_000)))
        .collect();
    for p in &ps {
        p.start()?;
    }
    for p in &ps {
        p.join()?;
    }
    println!(
        "  counter = {} (expected 40000) in {:.2?}",
        counter.get(),
        t.elapsed()
    );
    let arr = Array::from_slice(&(0..10).collect::<Vec<i32>>())?;
    let done = Event::new()?;
    let p = Process::new(negate, (arr.clone(), done.clone()));
    p.start()?;
    done.wait(Some(Duration::from_secs(30)));
    p.join()?;
    println!("  array negated by a child: {:?}", arr.to_vec());

    section("queues: a joinable task queue, two workers");
    let tasks = JoinableQueue::new()?;
    let results = Queue::new()?;
    let workers: Vec<_> = (0..2)
        .map(|_| Process::new(square_worker, (tasks.clone(), results.clone())))
        .collect();
    for w in &workers {
        w.start()?;
    }
    for x in 1..=6u64 {
        tasks.put(Some(x))?;
    }
    tasks.join()?;
    let mut got: Vec<(u64, u64)> = (0..6).map(|_| results.get()).collect::<mp::Result<_>>()?;
    got.sort();
    println!("  results: {got:?}");
    for _ in &workers {
        tasks.put(None)?;
    }
    for w in &workers {
        w.join()?;
    }

    section("named shared memory");
    let mut shm = SharedMemory::create(None, 16)?;
    shm.buf_mut()[..5].copy_from_slice(b"hello");
    let p = Process::new(shout, (shm.clone(),));
    p.start()?;
    p.join()?;
    println!(
        "  {} now holds {:?}",
        shm.name(),
        std::str::from_utf8(&shm.buf()[..5]).unwrap_or("?")
    );
    shm.unlink()?;

    section("a pool of workers: map, imap_unordered, a crash and a timeout");
    let pool = mp::Pool::builder()
        .processes(2)
        .task_timeout(Duration::from_millis(500))
        .build()?;
    println!("  map(square, 0..10) = {:?}", pool.map(square, 0..10)?);
    // a pool with a task timeout sends its tasks one at a time (each is timed on its
    // own): the bulk work goes to a pool without one, in chunks of 1000
    let bulk = mp::Pool::new(Some(2))?;
    let t = Instant::now();
    let total: u64 = bulk
        .imap_unordered_chunked(square, 0..100_000u64, 1000)
        .sum::<mp::Result<u64>>()?;
    println!("  sum of 100 000 squares = {total} in {:.1?}", t.elapsed());
    bulk.close()?;
    bulk.join()?;
    match pool.apply(crash, ()) {
        Err(e) => println!("  a task that panics: {e}"),
        Ok(()) => println!("  the crash did not happen?"),
    }
    match pool.apply(sleep_forever, ()) {
        Err(e) => println!("  a task past the timeout: {e}; its worker was replaced"),
        Ok(()) => println!("  the sleeper returned?"),
    }
    println!(
        "  the pool carries on: apply(square, (12,)) = {}",
        pool.apply(square, (12,))?
    );
    pool.close()?;
    pool.join()?;

    section("a manager: a dict and a list in a server process, changed by a child");
    let manager = mp::Manager::new()?;
    let d = manager.dict::<String, u64>()?;
    let l = manager.list((0..5).collect())?;
    let p = Process::new(fill, (d.clone(), l.clone())).with_name("filler");
    p.start()?;
    p.join()?;
    println!("  the child reversed the list: {l}");
    println!("  and signed the dict: {:?}", d.keys()?);
    println!("  objects in the manager: {}", manager.number_of_objects()?);
    Ok(())
}
