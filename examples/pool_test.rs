//! The docs' pool test program (`mp_pool.py`): apply_async, imap, imap_unordered, map,
//! error handling, timeouts, callbacks, close and terminate, on worker processes.
//! `--threads` runs the very same code on `mp::dummy` (threads), as Python's
//! `multiprocessing.dummy` does: only the pool type changes.
//!
//! `cargo run --example pool_test [-- --threads]`

use mp::Error;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[mp::task]
fn calculate(func: String, args: (i64, i64)) -> String {
    let result = match func.as_str() {
        "mul" => mul(args.0, args.1),
        _ => plus(args.0, args.1),
    };
    format!(
        "{} says that {func}{args:?} = {result}",
        mp::current_process().name()
    )
}

#[mp::task]
fn calculatestar(args: (String, (i64, i64))) -> String {
    calculate(args.0, args.1)
}

#[mp::task]
fn mul(a: i64, b: i64) -> i64 {
    std::thread::sleep(Duration::from_millis(5));
    a * b
}

#[mp::task]
fn plus(a: i64, b: i64) -> i64 {
    std::thread::sleep(Duration::from_millis(5));
    a + b
}

#[mp::task]
fn pow3(x: i64) -> i64 {
    x * x * x
}

#[mp::task]
fn f(x: i64) -> f64 {
    if x == 5 {
        panic!("float division by zero");
    }
    1.0 / (x - 5) as f64
}

#[mp::task]
fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

macro_rules! test_program {
    ($pool:expr) => {{
        let pool = $pool;
        println!("Creating pool with 4 workers\n");

        let tasks: Vec<(String, (i64, i64))> = (0..10)
            .map(|i| ("mul".to_string(), (i, 7)))
            .chain((0..10).map(|i| ("plus".to_string(), (i, 8))))
            .collect();

        let results: Vec<_> = tasks
            .iter()
            .cloned()
            .map(|(func, args)| pool.apply_async(calculate, (func, args)))
            .collect();
        let imap_it: Vec<String> = pool
            .imap(calculatestar, tasks.clone())
            .collect::<mp::Result<_>>()?;
        let mut imap_unordered_it: Vec<String> = pool
            .imap_unordered(calculatestar, tasks.clone())
            .collect::<mp::Result<_>>()?;

        println!("Ordered results using pool.apply_async():");
        for r in &results {
            println!("\t{}", r.get()?);
        }
        println!();
        println!("Ordered results using pool.imap():");
        for x in &imap_it {
            println!("\t{x}");
        }
        println!();
        println!("Unordered results using pool.imap_unordered():");
        imap_unordered_it.sort();
        for x in &imap_unordered_it {
            println!("\t{x}");
        }
        println!();
        println!("Ordered results using pool.map() --- will block till complete:");
        for x in pool.map(calculatestar, tasks.clone())? {
            println!("\t{x}");
        }
        println!();

        // Test error handling
        println!("Testing error handling:");
        match pool.apply(f, (5,)) {
            Err(Error::TaskPanicked { message, .. }) => {
                println!("\tGot TaskPanicked as expected from pool.apply(): {message}")
            }
            other => panic!("expected TaskPanicked from pool.apply(), got {other:?}"),
        }
        match pool.map(f, 0..10) {
            Err(Error::TaskPanicked { .. }) => {
                println!("\tGot TaskPanicked as expected from pool.map()")
            }
            other => panic!("expected TaskPanicked from pool.map(), got {other:?}"),
        }
        let mut it = pool.imap(f, 0..10);
        for i in 0..10 {
            match it.next() {
                Some(Err(Error::TaskPanicked { .. })) if i == 5 => {}
                Some(Err(e)) => panic!("unexpected error {e}"),
                Some(Ok(_)) if i == 5 => panic!("expected TaskPanicked"),
                Some(Ok(_)) => {}
                None => panic!("imap ended early"),
            }
        }
        assert!(it.next().is_none());
        println!("\tGot TaskPanicked as expected from list(pool.imap())");
        println!();

        // Testing timeouts
        println!("Testing ApplyResult.get() with timeout:");
        let res = pool.apply_async(calculate, ("mul".to_string(), (20, 3)));
        let mut timeouts = 0;
        let answer = loop {
            match res.get_timeout(Duration::from_millis(2)) {
                Ok(v) => break v,
                Err(Error::Timeout) => timeouts += 1,
                Err(e) => return Err(e),
            }
        };
        println!("\t{answer} (after {timeouts} timeouts)");
        println!();

        println!("Testing IMapIterator.next() with timeout:");
        let mut it = pool.imap(calculatestar, tasks.clone());
        loop {
            match it.next_timeout(Duration::from_millis(2)) {
                None => break,
                Some(Err(Error::Timeout)) => print!("."),
                Some(r) => println!("\t{}", r?),
            }
        }
        println!();

        // Testing callback
        println!("Testing callback:");
        let a = Arc::new(Mutex::new(Vec::<i64>::new()));
        let b = vec![56, 0, 1, 8, 27, 64, 125, 216, 343, 512, 729];
        let a1 = a.clone();
        let r = pool.apply_async_with(mul, (7, 8), move |x| a1.lock().unwrap().push(*x), |_| {});
        r.wait();
        let a2 = a.clone();
        let r = pool.map_async_with(
            pow3,
            0..10,
            move |v| a2.lock().unwrap().extend_from_slice(v),
            |_| {},
        );
        r.wait();
        if *a.lock().unwrap() == b {
            println!("\tcallbacks succeeded\n");
        } else {
            println!(
                "\t*** callbacks failed\n\t\t{:?} != {b:?}\n",
                a.lock().unwrap()
            );
        }

        // Check close
        println!("Testing close():");
        let results: Vec<_> = (0..4).map(|_| pool.apply_async(sleep_ms, (50,))).collect();
        pool.close()?;
        pool.join()?;
        for r in &results {
            assert_eq!(r.get_timeout(Duration::ZERO)?, 50);
        }
        println!("\tclose() succeeded\n");
    }};
}

macro_rules! test_terminate {
    ($pool:expr) => {{
        // Check terminate
        println!("Testing terminate():");
        let pool = $pool;
        for _ in 0..4 {
            let _ = pool.apply_async(sleep_ms, (500,));
        }
        let t = Instant::now();
        pool.terminate()?;
        pool.join()?;
        println!(
            "\tterminate() succeeded (in {:.1?})\n",
            t.elapsed().min(Duration::from_secs(1))
        );
    }};
}

#[mp::main]
fn main() -> mp::Result<()> {
    if std::env::args().any(|a| a == "--threads") {
        println!("Using multiprocessing.dummy (threads)\n");
        test_program!(mp::dummy::Pool::new(Some(4))?);
        test_terminate!(mp::dummy::Pool::new(Some(4))?);
    } else {
        test_program!(mp::Pool::new(Some(4))?);
        test_terminate!(mp::Pool::new(Some(4))?);
    }
    Ok(())
}
