//! The first Pool example of Python's docs ("Using a pool of workers"): `map`,
//! `imap_unordered`, `apply_async` of a value and of the workers' pids, and a 10 s sleep
//! that we lack the patience for.
//!
//! `cargo run --example pool`

use mp::{Error, Pool};
use std::time::Duration;

#[mp::task]
fn f(x: u64) -> u64 {
    x * x
}

#[mp::task]
fn getpid() -> u32 {
    std::process::id()
}

#[mp::task]
fn sleep(secs: u64) {
    std::thread::sleep(Duration::from_secs(secs));
}

#[mp::main]
fn main() -> mp::Result<()> {
    let timeout = Duration::from_secs(1);
    {
        // start 4 worker processes
        let pool = Pool::new(Some(4))?;

        // prints "[0, 1, 4,..., 81]"
        println!("{:?}", pool.map(f, 0..10)?);

        // prints the same numbers in arbitrary order
        for i in pool.imap_unordered(f, 0..10) {
            println!("{}", i?);
        }

        // evaluates "f(20)" asynchronously, in only one process
        let res = pool.apply_async(f, (20,));
        println!("{}", res.get_timeout(timeout)?); // prints "400"

        // evaluates getpid() asynchronously, in only one process
        let res = pool.apply_async(getpid, ());
        println!("{}", res.get_timeout(timeout)?); // prints the PID of that process

        // launching multiple evaluations asynchronously *may* use more processes
        let multiple: Vec<_> = (0..4).map(|_| pool.apply_async(getpid, ())).collect();
        let pids: mp::Result<Vec<u32>> = multiple.iter().map(|r| r.get_timeout(timeout)).collect();
        println!("{:?}", pids?);

        // makes a single worker sleep for 10 seconds
        let res = pool.apply_async(sleep, (10,));
        match res.get_timeout(timeout) {
            Err(Error::Timeout) => {
                println!("We lacked patience and got a multiprocessing.TimeoutError")
            }
            other => println!("{other:?}"),
        }

        println!("For the moment, the pool remains available for more work");
        // leaving the block drops the pool, which terminates it (Python's `with`)
    }
    println!("Now the pool is closed and no longer available");
    Ok(())
}
