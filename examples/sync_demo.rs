//! The docs' synchronization test programs (`mp_synchronize.py`): a shared value
//! incremented under its lock, a condition variable handing work to children, and a
//! semaphore limiting how many children run at once.

use mp::{Condition, Process, Semaphore, Value};
use std::time::Duration;

#[mp::task]
fn value_func(running: Value<i32>, n: u32) {
    for _ in 0..n {
        *running.lock() += 1;
    }
    *running.lock() -= 1;
}

fn test_value() -> mp::Result<()> {
    const TASKS: i32 = 10;
    let running = Value::new(TASKS)?;
    let total = Value::new(0i32)?;
    let ps: Vec<Process> = (0..TASKS)
        .map(|_| Process::new(value_func, (total.clone(), 100)))
        .collect();
    for p in &ps {
        p.start()?;
    }
    for p in &ps {
        p.join()?;
        *running.lock() -= 1;
    }
    println!(
        "value: {} increments, {} still running",
        total.get() + TASKS,
        running.get()
    );
    Ok(())
}

#[mp::task]
fn condition_func(cond: Condition, ready: Value<i32>) {
    let _g = cond.lock();
    *ready.lock() += 1;
    cond.notify(1).unwrap();
    // wait for the parent's go
    cond.wait_for(|| ready.get() < 0, Some(Duration::from_secs(30)));
}

fn test_condition() -> mp::Result<()> {
    let cond = Condition::new(None)?;
    let ready = Value::new(0i32)?;
    let ps: Vec<Process> = (0..4)
        .map(|_| Process::new(condition_func, (cond.clone(), ready.clone())))
        .collect();
    for p in &ps {
        p.start()?;
    }
    {
        let _g = cond.lock();
        cond.wait_for(|| ready.get() == 4, Some(Duration::from_secs(30)));
        println!("condition: all {} children ready", ready.get());
        ready.set(-1);
        cond.notify_all()?;
    }
    for p in &ps {
        p.join()?;
    }
    println!("condition: all children released");
    Ok(())
}

#[mp::task]
fn semaphore_func(sema: Semaphore, mutex: mp::Lock, running: Value<i32>, max_seen: Value<i32>) {
    let _s = sema.lock();
    {
        let _m = mutex.lock();
        *running.lock() += 1;
        let r = running.get();
        let mut m = max_seen.lock();
        *m = (*m).max(r);
    }
    std::thread::sleep(Duration::from_millis(50));
    let _m = mutex.lock();
    *running.lock() -= 1;
}

fn test_semaphore() -> mp::Result<()> {
    let sema = Semaphore::new(3)?;
    let mutex = mp::Lock::new()?;
    let running = Value::new(0i32)?;
    let max_seen = Value::new(0i32)?;
    let ps: Vec<Process> = (0..10)
        .map(|_| {
            Process::new(
                semaphore_func,
                (
                    sema.clone(),
                    mutex.clone(),
                    running.clone(),
                    max_seen.clone(),
                ),
            )
        })
        .collect();
    for p in &ps {
        p.start()?;
    }
    for p in &ps {
        p.join()?;
    }
    println!(
        "semaphore: at most {} of 10 children ran at once (limit 3)",
        max_seen.get()
    );
    Ok(())
}

#[mp::main]
fn main() -> mp::Result<()> {
    test_value()?;
    test_condition()?;
    test_semaphore()?;
    Ok(())
}
